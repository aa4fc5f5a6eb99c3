"""Where in a scenario's TOML text a rule's table is, and where a ScenarioError points.

For the console's editor and rule list (``POST /api/scenario/check``, ``GET /api/rules``):
tomllib gives a syntax error's line and column in its message; a semantic error names
the section (``rule 'busy' (#2)``, ``[settings]``) and the field, so its line is that
section's table header, or the line of the field's key inside it when there is one.
A plain line scan, not a second TOML parser: lines inside multi-line strings are
skipped, and whatever cannot be found is None, never a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .loader import ScenarioError

_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
# No two parts of it can take the same character (the name's spaces are stripped after):
# the lazy name between optional spaces took cubic time on "[" and spaces (issue 18).
_HEADER = re.compile(r"^\s*(\[\[?)([^\[\]#]+)(\]\]?)\s*(#.*)?$")
_RULE_WHERE = re.compile(r"^rule (?:.* )?\(?#(\d+)\)?$")
_SECTION_WHERE = re.compile(r"^\[(\w+)\]$")


@dataclass(frozen=True, slots=True)
class Table:
    """One table header: its 1-based line, its dotted name, [[array]] or [table]."""

    line: int
    name: tuple[str, ...]
    array: bool


def _code_lines(text: str) -> list[tuple[int, str]]:
    """(1-based number, line) of every line not inside a multi-line string."""
    out: list[tuple[int, str]] = []
    inside: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if inside is None:
            out.append((number, line))
        for quote in ('"""', "'''"):
            if inside in (None, quote) and line.count(quote) % 2 == 1:
                inside = quote if inside is None else None
    return out


def tables(text: str) -> list[Table]:
    """The table headers of ``text`` in order."""
    found = []
    for number, line in _code_lines(text):
        match = _HEADER.match(line)
        if match and len(match[1]) == len(match[3]):
            name = tuple(part.strip().strip("\"'") for part in match[2].split("."))
            found.append(Table(number, name, len(match[1]) == 2))
    return found


def _section(text: str, start: Table) -> tuple[int, int]:
    """The lines (first, last) of ``start``'s table with its sub-tables."""
    heads = tables(text)
    last = len(text.splitlines())
    after = False
    for table in heads:
        if table == start:
            after = True
            continue
        if after and (table.name[0] != start.name[0] or table.name == start.name):
            last = table.line - 1
            break
    return start.line, last


def rule_tables(text: str) -> list[Table]:
    """The ``[[rule]]`` headers, rule #1 first."""
    return [t for t in tables(text) if t.name == ("rule",) and t.array]


def section_start(text: str, where: str) -> Table | None:
    """The header of the section a ScenarioError's ``where`` names: ``rule 'x' (#2)``,
    ``rule #2``, ``[settings]``, ``[auth]``, ``[default]``."""
    rule = _RULE_WHERE.match(where)
    if rule:
        rules = rule_tables(text)
        number = int(rule[1])
        return rules[number - 1] if 0 < number <= len(rules) else None
    section = _SECTION_WHERE.match(where)
    if section:
        for table in tables(text):
            if table.name == (section[1],) and not table.array:
                return table
    return None


def rule_text(text: str, number: int) -> tuple[int, str] | None:
    """The line and the TOML text of rule ``number``'s table (0: ``[default]``), with
    its sub-tables (``[rule.match]``, ``[[rule.choice]]``); None when not found."""
    start = section_start(text, "[default]" if number == 0 else f"rule #{number}")
    if start is None:
        return None
    first, last = _section(text, start)
    lines = text.splitlines()[first - 1:last]
    while lines and not lines[-1].strip():
        lines.pop()
    return first, "\n".join(lines) + "\n"


def _key_position(text: str, first: int, last: int, key: str) -> tuple[int, int] | None:
    pattern = re.compile(rf"^(\s*)(\[\[?\s*[\w.]*\b)?[\"']?{re.escape(key)}[\"']?\s*(=|[.\]])")
    for number, line in _code_lines(text):
        if first <= number <= last:
            match = pattern.match(line)
            if match:
                return number, len(match[1]) + 1
    return None


def error_position(error: ScenarioError, text: str) -> tuple[int | None, int | None]:
    """(line, column) of ``error`` in ``text``, 1-based; None where it cannot be told."""
    at = _AT.search(error.message)
    if at:
        return int(at[1]), int(at[2])
    if "(at end of document)" in error.message:
        lines = text.splitlines() or [""]
        return len(lines), len(lines[-1]) + 1
    field = re.split(r"[.\[]", error.field)[0] if error.field else None
    if not error.where:
        if field is None:
            return None, None
        last_top = next((t.line - 1 for t in tables(text)), len(text.splitlines()))
        found = _key_position(text, 1, last_top, field)
        if found is None:  # a top-level key given as a table: [name] or [[name]]
            heads = [t for t in tables(text) if t.name[0] == field]
            return (heads[0].line, 1) if heads else (None, None)
        return found
    start = section_start(text, error.where)
    if start is None:
        return None, None
    if field is not None:
        first, last = _section(text, start)
        found = _key_position(text, first + 1, last, field)
        if found is not None:
            return found
    return start.line, 1
