"""One ``[[rule]]`` table: its name, its ``match`` conditions, its responses and its
``auth``; errors raise ``FieldError`` naming the key inside the rule."""

from __future__ import annotations

from pathlib import Path

from ..auth.config import rule_guard
from ..auth.guard import AuthConfig
from ..sip.abnf import TOKEN
from .fields import FieldError, key_list
from .matcher import compile_conditions
from .model import Rule
from .responses import RESPONSE_KEYS, build_provisionals, build_response

RULE_KEYS = RESPONSE_KEYS | {"name", "match", "provisional", "auth"}
MATCH_KEYS = frozenset(
    {"method", "uri", "uri_regex", "user", "user_regex", "headers", "source", "transport",
     "body", "sdp"}
)


def build_rule(
    raw: dict[str, object], number: int, auth: AuthConfig | None, base_dir: Path
) -> Rule:
    """Rule ``number`` (1-based) of the file; ``auth`` is the scenario's [auth] table."""
    for key in raw:
        if key not in RULE_KEYS:
            hint = " (match conditions go in the rule's `match` table)" if key in MATCH_KEYS else ""
            raise FieldError(key, f"unknown key{hint} (expected one of {key_list(RULE_KEYS)})")
    name = raw.get("name", "")
    if not isinstance(name, str) or ("name" in raw and not name):
        raise FieldError("name", "must be a non-empty string")
    match = _match_table(raw.get("match", {}))
    methods = _methods(match.get("method", "*"))
    try:
        conditions = compile_conditions(match)
    except FieldError as exc:
        raise exc.within("match") from None
    user = match.get("user")
    return Rule(
        name,
        number,
        conditions,
        methods,
        build_provisionals(raw, base_dir),
        build_response(raw, base_dir),
        rule_guard(raw["auth"], auth) if "auth" in raw else None,
        # An exact user (a glob without '*') lets the scenario skip this rule for
        # every request to another user without testing it.
        user if isinstance(user, str) and "*" not in user else None,
    )


def build_default(raw: object, base_dir: Path) -> Rule:
    """The ``[default]`` table: the response when no rule matches (rule number 0)."""
    if not isinstance(raw, dict):
        raise FieldError(None, "must be a table")
    for key in raw:
        if key not in RESPONSE_KEYS and key != "provisional":
            raise FieldError(key, f"unknown key (expected one of {key_list(RESPONSE_KEYS)})")
    return Rule("", 0, [], None, build_provisionals(raw, base_dir), build_response(raw, base_dir))


def _match_table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise FieldError("match", "must be a table")
    for key in value:
        if key not in MATCH_KEYS:
            raise FieldError(
                f"match.{key}", f"unknown condition (expected one of {key_list(MATCH_KEYS)})"
            )
    return value


def _methods(value: object) -> frozenset[str] | None:
    """``match.method``: a name, a list of them, or "*" (None: any method)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(m, str) for m in items):
        raise FieldError("match.method", 'must be a method name, a list of them, or "*"')
    if "*" in items:
        return None
    for m in items:
        if not TOKEN.fullmatch(m):
            raise FieldError("match.method", f"{m!r} is not a valid SIP method token")
    return frozenset(items)
