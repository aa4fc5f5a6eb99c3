"""Reading TOML values into typed ones; a value that does not fit raises ``FieldError``.

Builders name fields relative to the table they read (``code``, ``ha1.MD5``); the
caller that knows the enclosing table prefixes it with ``FieldError.within``, and the
loader adds the file and the rule (``ScenarioError``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .template import Template, TemplateError, compile_template


class FieldError(ValueError):
    """A value that cannot be used: which field (None: the table itself) and why."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def within(self, table: str) -> FieldError:
        """The same error, named from the table that holds this one's field."""
        return FieldError(f"{table}.{self.field}" if self.field else table, self.message)


def kind(value: object) -> str:
    """How errors name a TOML value's type: "a boolean", "a table"..."""
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def key_list(keys: Iterable[str]) -> str:
    """Known keys, for an error message: sorted, comma-separated."""
    return ", ".join(sorted(keys))


def table(field: str | None, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise FieldError(field, "must be a table")
    return value


# Up to this many known keys an error lists them all; past it, one long line helps
# less than a near miss (did you mean) and a pointer to where they are listed.
LISTED_KEYS = 12


def unknown(field: str, key: str, known: Iterable[str], what: str = "key",
            hint: str = "") -> FieldError:
    """The error for ``key``, not one of ``known``: "did you mean" when one is close
    (a typo), else the known keys when they are few."""
    allowed = sorted(known)
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        advice = f"did you mean {close[0]!r}?"
    elif len(allowed) <= LISTED_KEYS:
        advice = f"expected one of {key_list(allowed)}"
    else:
        advice = (f"no known {what} is close to it; `sipresponder schema` lists all "
                  f"{len(allowed)}")
    return FieldError(field, f"unknown {what}{hint} ({advice})")


def reject_unknown(raw: dict[str, object], known: Iterable[str], what: str = "key") -> None:
    """Refuse the first key of ``raw`` not in ``known`` (see ``unknown``)."""
    allowed = frozenset(known)
    for key in raw:
        if key not in allowed:
            raise unknown(key, key, allowed, what)


def string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise FieldError(field, f"must be a string, not {kind(value)}")
    return value


def boolean(field: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FieldError(field, f"must be true or false, not {kind(value)}")
    return value


def str_list(field: str, value: object) -> list[str]:
    """A string or a list of strings, as a list."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise FieldError(field, "must be a string or a list of strings")
    return items


def template(field: str, text: str) -> Template:
    try:
        return compile_template(text)
    except TemplateError as exc:
        raise FieldError(field, str(exc)) from None
