"""The commands that read files only: check, schema, codes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..scenario.bundled import scenario_path
from ..scenario.loader import ScenarioError, read_scenario
from ..scenario.model import Scenario
from ..scenario.positions import error_position, rule_tables
from ..scenario.schema import schema_text
from ..scenario.shadow import shadow_warnings, shadowed
from ..sip.codes import CODES, HEADER_FIELDS

log = logging.getLogger("sipresponder")


def check(paths: list[str], strict: bool = False) -> int:
    """Each file's result, named: every error and warning of it, one line each with
    its place in the file; 1 if any file fails (with --strict, or has a warning)."""
    failed = 0
    for name in paths:
        path = scenario_path(name)
        try:
            scenario, text = read_scenario(path)
        except ScenarioError as exc:
            text = _readable(path)
            for error in exc.errors:
                print(f"error: {_located(error, text)}", file=sys.stderr)
            failed += 1
            continue
        warnings = shadowed(scenario.rules)
        heads = rule_tables(text)
        for shadow in warnings:
            number = shadow.rule.number
            where = f":{heads[number - 1].line}:1" if len(heads) == len(scenario.rules) else ""
            print(f"warning: {path}{where}: {shadow}", file=sys.stderr)
        failed += bool(strict and warnings)
        # What the responder derives rather than reads: a 405 leaves out the method
        # it refuses from this list.
        noted = f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else ""
        print(f"{name}: OK ({len(scenario.rules)} rules{noted}); derived Allow: "
              f"{', '.join(scenario.allow)}")
    if failed and len(paths) > 1:
        print(f"{failed} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failed else 0


def warn_shadowed(scenario: Scenario) -> None:
    """Served all the same, a rule that can never match is worth a line at each load
    (the one place a `serve` user sees what `check` would have said)."""
    for warning in shadow_warnings(scenario.rules):
        log.warning("%s: %s", scenario.path, warning,
                    extra={"event": "rule_shadowed", "path": scenario.path})


def _readable(path: Path) -> str:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return ""


def _located(error: ScenarioError, text: str) -> str:
    """The error's one line with the file's name as FILE:LINE:COLUMN where the place
    is known (the form editors and CI annotations jump to)."""
    line, column = error_position(error, text) if text else (None, None)
    if line is None:
        return str(error)
    return f"{error.path}:{line}:{column or 1}{str(error)[len(error.path):]}"


def schema(output: str | None) -> int:
    text = schema_text()
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def print_codes() -> None:
    for entry in CODES.values():
        needs = []
        for req in entry.requires:
            names = " or ".join(req.headers)
            field = " / ".join(HEADER_FIELDS[h].field for h in req.headers)
            needs.append(f"{names} ({req.level.upper()}, {req.rfc}; field {field})")
        print(f"{entry.code} {entry.reason:<40} {entry.rfc:<24} {'; '.join(needs)}".rstrip())
