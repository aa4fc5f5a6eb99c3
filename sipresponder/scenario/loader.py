"""Load a TOML scenario and validate it; every error names the file, the rule and the field."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..auth.config import parse_auth
from ..auth.guard import AuthConfig
from ..sip.abnf import STANDARD_METHODS
from ..uas.validation import BODY_CHECKS, CHECKS, enabled_checks
from .fields import FieldError, key_list
from .files import FileAccess
from .model import Rule, Scenario, Settings
from .nesting import TooDeep, check_toml_depth
from .responses import check_required
from .rules import build_default, build_rule, check_states
from .settings import build_settings

TOP_KEYS = frozenset({"settings", "auth", "rule", "default"})


class ScenarioError(ValueError):
    """A scenario that cannot be used; str() is one line naming file, rule and field."""

    def __init__(self, path: str, where: str, field: str | None, message: str) -> None:
        self.path, self.where, self.field, self.message = path, where, field, message
        loc = f"{path}: {where}" if where else path
        if field:
            loc += f": field '{field}'"
        super().__init__(f"{loc}: {message}")


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in a TOML file (relative ``body_file`` paths from its folder)."""
    return read_scenario(path)[0]


def read_scenario(path: str | Path) -> tuple[Scenario, str]:
    """The scenario in a TOML file and the file's text (served by GET /api/scenario)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), "", None, f"cannot read: {exc.strerror}") from None
    scenario = parse_scenario(data, str(path), base_dir=path.parent)
    return scenario, data.decode("utf-8", "replace")


def parse_scenario(
    text: bytes | str, path: str = "<scenario>", base_dir: Path | None = None,
    *, files: FileAccess | None = None,
) -> Scenario:
    """The scenario in ``text``. ``files`` says which ``body_file``s it may read (a
    scenario from the admin API: ``FileAccess.within``); without it, any regular file,
    relative names from ``base_dir``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScenarioError(path, "", None, f"not UTF-8 ({exc.reason})") from None
    try:
        check_toml_depth(text)  # before tomllib, which recurses (and is quadratic) on it
        doc = tomllib.loads(text)
    except TooDeep as exc:
        raise ScenarioError(path, "", None, f"the scenario is {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, "", None, f"invalid TOML: {exc}") from None
    return _Loader(path, files or FileAccess.anywhere(base_dir)).build(doc)


def body_files(doc: object, files: FileAccess) -> list[Path]:
    """Every ``body_file`` of a parsed (valid) scenario document, resolved as
    responses.py reads them, in file order without repeats."""
    found: list[Path] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "body_file" and isinstance(value, str):
                    file = files.path(value)
                    if file not in found:
                        found.append(file)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return found


class _Loader:
    """Reads the sections of one file in order, keeping which one it is in (``where``)
    so that a FieldError from a builder becomes a ScenarioError naming file and rule."""

    def __init__(self, path: str, files: FileAccess) -> None:
        self.path = path
        self.files = files
        self.where = ""

    def fail(self, error: FieldError) -> ScenarioError:
        return ScenarioError(self.path, self.where, error.field, error.message)

    def build(self, doc: dict[str, object]) -> Scenario:
        try:
            for key in doc:
                if key not in TOP_KEYS:
                    raise FieldError(
                        key, f"unknown top-level key (expected one of {key_list(TOP_KEYS)})"
                    )
            self.where = "[settings]"
            settings = build_settings(doc.get("settings", {}))
            self.files = self.files.with_limit(settings.max_body_file)
            self.where = "[auth]"
            auth = parse_auth(doc["auth"]) if "auth" in doc else None
            rules = self.rules(doc.get("rule", []), auth)
            self.where = "[default]"
            default = build_default(doc.get("default", {"code": 404}), self.files)
            for rule in [*rules, default]:
                self.where = rule.label
                check_required(rule)
                check_states(rule, rules)
        except FieldError as exc:
            raise self.fail(exc) from None
        scenario = assemble(self.path, settings, rules, default)
        scenario.body_files = tuple(body_files(doc, self.files))
        return scenario

    def rules(self, raw_rules: object, auth: AuthConfig | None) -> list[Rule]:
        if not isinstance(raw_rules, list):
            raise ScenarioError(self.path, "", "rule", "must be an array of tables ([[rule]])")
        rules = []
        names: set[str] = set()
        for number, raw in enumerate(raw_rules, 1):
            name = raw.get("name") if isinstance(raw, dict) else None
            self.where = (
                f"rule {name!r} (#{number})" if isinstance(name, str) else f"rule #{number}"
            )
            if not isinstance(raw, dict):
                raise FieldError(None, "must be a table")
            rule = build_rule(raw, number, auth, self.files)
            if rule.name and rule.name in names:
                raise FieldError("name", f"duplicate rule name {rule.name!r}")
            names.add(rule.name)
            rules.append(rule)
        return rules


def assemble(path: str, settings: Settings, rules: list[Rule], default: Rule) -> Scenario:
    """A Scenario from its parts, with what derives from them: the Allow list and the
    known methods (from the rules' methods), the request checks of uas.validation
    switched by ``settings.checks``. Code that builds a scenario without a file uses it."""
    named = {m for r in rules if r.methods for m in r.methods}
    if "INVITE" in named:
        named |= {"ACK", "CANCEL"}
    ordered = [m for m in STANDARD_METHODS if m in named] + sorted(named - set(STANDARD_METHODS))
    checks = enabled_checks(settings.checks)
    return Scenario(
        path,
        settings,
        rules,
        default,
        allow=tuple(ordered) if ordered else STANDARD_METHODS,
        known_methods=frozenset(STANDARD_METHODS) | named,
        checks=checks,
        switches={name: settings.checks.get(name, info.default) for name, info in CHECKS.items()},
        bodyless_checks=tuple(c for c in checks if c not in BODY_CHECKS),
    )
