"""scenario.rules: one [[rule]] table and the [default] table read into Rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sipresponder.auth.guard import AuthConfig, Guard
from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.files import FileAccess
from sipresponder.scenario.rules import build_default, build_rule

HERE = FileAccess.anywhere(Path("."))


def rule_error(raw: dict[str, Any], auth: AuthConfig | None = None) -> FieldError:
    with pytest.raises(FieldError) as info:
        build_rule(raw, 1, auth, HERE)
    return info.value


def test_a_full_rule() -> None:
    config = AuthConfig()
    rule = build_rule({
        "name": "busy", "match": {"method": ["INVITE", "MESSAGE"], "user": "bob",
                                  "transport": "udp"},
        "code": 486, "provisional": [180], "auth": "proxy",
    }, 3, config, HERE)
    assert (rule.name, rule.number, rule.label) == ("busy", 3, "rule 'busy' (#3)")
    assert rule.methods == frozenset({"INVITE", "MESSAGE"})
    assert [c.what for c in rule.conditions] == ["user 'bob'", "transport in ['udp']"]
    assert rule.final.code == 486 and [p.code for p in rule.provisional] == [180]
    assert isinstance(rule.auth, Guard) and rule.auth.kind == "proxy"
    assert rule.auth.config is config
    assert rule.user == "bob"


def test_defaults_any_method_no_name_no_auth() -> None:
    rule = build_rule({"code": 200}, 2, None, HERE)
    assert rule.name == "" and rule.label == "rule #2"
    assert rule.methods is None and rule.conditions == [] and rule.auth is None


@pytest.mark.parametrize(("match", "user"), [
    ({"user": "bob"}, "bob"),
    ({"user": "b*"}, None),  # a glob: no exact user to index by
    ({"user_regex": "^bob$"}, None),
    ({}, None),
])
def test_only_an_exact_user_is_indexed(match: dict[str, Any], user: str | None) -> None:
    assert build_rule({"match": match, "code": 200}, 1, None, HERE).user == user


def test_a_star_method_is_any_method() -> None:
    assert build_rule({"match": {"method": ["INVITE", "*"]}, "code": 200}, 1, None, HERE
                      ).methods is None


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({"code": 200, "uri": "x"}, "uri",
     "unknown key (match conditions go in the rule's `match` table: match = { uri = ... })"),
    ({"code": 200, "colour": 1}, "colour", "unknown key (no known key is close to it; "),
    ({"cdoe": 200}, "cdoe", "unknown key (did you mean 'code'?)"),
    ({"code": 200, "name": ""}, "name", "must be a non-empty string"),
    ({"code": 200, "name": 5}, "name", "must be a non-empty string"),
    ({"code": 200, "match": "INVITE"}, "match", "must be a table"),
    ({"code": 200, "match": {"verb": "x"}}, "match.verb", "unknown condition (expected one of"),
    ({"code": 200, "match": {"method": []}}, "match.method", "must be a method name, a list"),
    ({"code": 200, "match": {"method": "IN VITE"}}, "match.method",
     "'IN VITE' is not a valid SIP method token"),
    ({"code": 200, "match": {"headers": {"X": "("}}}, "match.headers.X",
     "invalid regular expression"),
    ({"code": 200, "auth": "www"}, "auth", "needs an [auth] table"),
    ({"code": 99}, "code", "99 is not a SIP status code"),
])
def test_errors_name_the_key_inside_the_rule(raw: dict[str, Any], field: str,
                                             message: str) -> None:
    error = rule_error(raw)
    assert error.field == field
    assert error.message.startswith(message)


def test_default_is_rule_zero() -> None:
    default = build_default({"code": 480, "provisional": [180]}, HERE)
    assert default.number == 0 and default.label == "[default]"
    assert default.final.code == 480 and default.methods is None
    with pytest.raises(FieldError) as info:
        build_default({"code": 480, "match": {}}, HERE)
    assert info.value.field == "match"
    with pytest.raises(FieldError) as info:
        build_default([], HERE)
    assert (info.value.field, info.value.message) == (None, "must be a table")
