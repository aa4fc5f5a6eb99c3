"""Load a TOML scenario and validate it; every error names the file, the rule and the field."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from ..auth.config import AUTH_KEYS, parse_auth
from ..auth.guard import AuthConfig
from ..sip.abnf import STANDARD_METHODS
from ..uas.validation import BODY_CHECKS, CHECKS, enabled_checks
from .bundled import missing_hint
from .fields import FieldError, unknown
from .files import FileAccess
from .model import Rule, Scenario, Settings
from .nesting import TooDeep, check_toml_depth
from .responses import check_required
from .rules import (
    DEFAULT_KEYS,
    MATCH_KEYS,
    RULE_KEYS,
    build_default,
    build_rule,
    check_states,
    unknown_rule_key,
)
from .settings import SETTING_KEYS, build_settings

TOP_KEYS = frozenset({"settings", "auth", "rule", "default"})
T = TypeVar("T")


class ScenarioError(ValueError):
    """A scenario that cannot be used; str() is one line naming file, rule and field.

    ``errors`` is every error the loader found in the file, this one (the first)
    first: a file with three typos gets all three at once (``sipresponder check``
    prints them, the admin API returns them in its ``errors`` list)."""

    def __init__(self, path: str, where: str, field: str | None, message: str,
                 more: Sequence[ScenarioError] = ()) -> None:
        self.path, self.where, self.field, self.message = path, where, field, message
        loc = f"{path}: {where}" if where else path
        if field:
            loc += f": field '{field}'"
        super().__init__(f"{loc}: {message}")
        self.errors: tuple[ScenarioError, ...] = (self, *more)


# Reading stops at this many errors: each costs the reader a line and the loader a
# did-you-mean, and a generated file can hold thousands of the same mistake (a scenario
# PUT over the admin API must not buy seconds of CPU with them).
MAX_ERRORS = 100


class _Enough(Exception):
    """MAX_ERRORS were found: stop reading."""


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in a TOML file (relative ``body_file`` paths from its folder)."""
    return read_scenario(path)[0]


def read_scenario(path: str | Path) -> tuple[Scenario, str]:
    """The scenario in a TOML file and the file's text (served by GET /api/scenario)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), "", None,
                            f"cannot read: {exc.strerror}{missing_hint(path)}") from None
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
    so that a FieldError from a builder becomes a ScenarioError naming file and rule.

    It goes on past an error to report every one the file has: each section (top
    level, [settings], [auth], each rule, [default]) gives every unknown key it holds
    or else the first error its builder raises. The checks across rules
    (``when_state``) run only when every rule was read, so that a broken rule
    causes no second error in another."""

    def __init__(self, path: str, files: FileAccess) -> None:
        self.path = path
        self.files = files
        self.where = ""
        self.errors: list[ScenarioError] = []

    def fail(self, error: FieldError) -> ScenarioError:
        return ScenarioError(self.path, self.where, error.field, error.message)

    def note(self, error: FieldError) -> None:
        self.errors.append(self.fail(error))
        if len(self.errors) == MAX_ERRORS:
            raise _Enough

    def section(self, where: str, raw: object, known: Iterable[str], what: str,
                build: Callable[[], T]) -> T | None:
        """``build()``, or None after noting its error or the table's unknown keys."""
        self.where = where
        known = frozenset(known)
        if isinstance(raw, dict):
            bad = [key for key in raw if key not in known]
            for key in bad:
                self.note(unknown(key, key, known, what))
            if bad:
                return None
        try:
            return build()
        except FieldError as exc:
            self.note(exc)
            return None

    def build(self, doc: dict[str, object]) -> Scenario:
        try:
            return self._build(doc)
        except _Enough:
            raise self.collected() from None

    def _build(self, doc: dict[str, object]) -> Scenario:
        for key in doc:
            if key not in TOP_KEYS:
                self.note(unknown(key, key, TOP_KEYS, "top-level key"))
        raw_settings = doc.get("settings", {})
        settings = self.section("[settings]", raw_settings, SETTING_KEYS, "setting",
                                lambda: build_settings(raw_settings))
        if settings is not None:
            self.files = self.files.with_limit(settings.max_body_file)
        auth = None
        if "auth" in doc:
            auth = self.section("[auth]", doc["auth"], AUTH_KEYS, "key",
                                lambda: parse_auth(doc["auth"]))
        rules, complete = self.rules(doc.get("rule", []), auth, "auth" in doc and auth is None)
        raw_default = doc.get("default", {"code": 404})
        default = self.section("[default]", raw_default, DEFAULT_KEYS, "key",
                               lambda: _required(build_default(raw_default, self.files)))
        for rule in rules if complete else []:
            self.where = rule.label
            try:
                check_states(rule, rules)
            except FieldError as exc:
                self.note(exc)
        if self.errors or settings is None or default is None:
            raise self.collected()
        scenario = assemble(self.path, settings, rules, default)
        scenario.body_files = tuple(body_files(doc, self.files))
        return scenario

    def collected(self) -> ScenarioError:
        """One ScenarioError, the first, carrying all (reading stops at MAX_ERRORS)."""
        found = list(self.errors)
        if len(found) >= MAX_ERRORS:
            found.append(ScenarioError(self.path, "", None, f"stopped after {MAX_ERRORS} "
                                       "errors; the rest of the file was not checked"))
        first = found[0]
        return ScenarioError(first.path, first.where, first.field, first.message, found[1:])

    def rules(self, raw_rules: object, auth: AuthConfig | None, auth_failed: bool
              ) -> tuple[list[Rule], bool]:
        """The rules that could be read, and whether that is all of them."""
        if not isinstance(raw_rules, list):
            self.where = ""
            self.note(FieldError("rule", "must be an array of tables ([[rule]])"))
            return [], False
        rules = []
        names: set[str] = set()
        complete = True
        for number, raw in enumerate(raw_rules, 1):
            name = raw.get("name") if isinstance(raw, dict) else None
            self.where = (
                f"rule {name!r} (#{number})" if isinstance(name, str) else f"rule #{number}"
            )
            rule = self.rule(raw, number, auth, auth_failed)
            if rule is None:
                complete = False
                continue
            if rule.name and rule.name in names:
                self.note(FieldError("name", f"duplicate rule name {rule.name!r}"))
            names.add(rule.name)
            rules.append(rule)
        return rules, complete

    def rule(self, raw: object, number: int, auth: AuthConfig | None, auth_failed: bool
             ) -> Rule | None:
        if not isinstance(raw, dict):
            self.note(FieldError(None, "must be a table"))
            return None
        bad = [unknown_rule_key(key) for key in raw if key not in RULE_KEYS]
        match = raw.get("match")
        if isinstance(match, dict):
            bad += [unknown(f"match.{key}", key, MATCH_KEYS, "condition")
                    for key in match if key not in MATCH_KEYS]
        for error in bad:
            self.note(error)
        if bad:
            return None
        try:
            return _required(build_rule(raw, number, auth, self.files))
        except FieldError as exc:
            # A rule's auth cannot be read against an [auth] table that was refused:
            # that error is [auth]'s, already reported.
            if not (auth_failed and exc.field is not None and exc.field.startswith("auth")):
                self.note(exc)
            return None


def _required(rule: Rule) -> Rule:
    check_required(rule)
    return rule


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
