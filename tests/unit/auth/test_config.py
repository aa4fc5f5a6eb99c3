"""auth.config: the [auth] table and a rule's ``auth`` key, read without the loader."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from sipresponder.auth.config import parse_auth, rule_guard
from sipresponder.auth.digest import ALGORITHMS
from sipresponder.auth.guard import AuthConfig, Guard
from sipresponder.scenario.fields import FieldError

CREDS = {"credentials": {"alice": "pw"}}


def error_of(raw: object) -> FieldError:
    with pytest.raises(FieldError) as info:
        parse_auth(raw)
    return info.value


def test_defaults() -> None:
    config = parse_auth(CREDS)
    assert config.realm == "sipresponder"
    assert config.algorithms == (ALGORITHMS["md5"],)
    assert config.qop is True
    assert config.nonce_lifetime == 300.0
    assert (config.wrong_password, config.unknown_user) == (403, 403)
    assert set(config.users) == {"alice"}


def test_a_password_is_stored_as_ha1_of_every_family_with_the_realm() -> None:
    config = parse_auth({"realm": "pbx.lab", **CREDS})
    ha1 = config.users["alice"].ha1
    assert ha1 == {
        "MD5": hashlib.md5(b"alice:pbx.lab:pw").hexdigest(),
        "SHA-256": hashlib.sha256(b"alice:pbx.lab:pw").hexdigest(),
        "SHA-512-256": hashlib.new("sha512_256", b"alice:pbx.lab:pw").hexdigest(),
    }


def test_ha1_tables_are_taken_as_given_lower_cased_by_canonical_family() -> None:
    md5 = hashlib.md5(b"bob:sipresponder:x").hexdigest()
    config = parse_auth({"credentials": {"bob": {"ha1": {"md5": md5.upper()}}}})
    assert config.users["bob"].ha1 == {"MD5": md5}


def test_settings_are_read() -> None:
    config = parse_auth({
        "realm": "r", "algorithms": ["sha-256", "MD5-sess"], "qop": True,
        "nonce_lifetime": 30, "wrong_password": 401, "unknown_user": 404,
        "secret": "s", **CREDS,
    })
    assert [a.name for a in config.algorithms] == ["SHA-256", "MD5-sess"]
    assert config.nonce_lifetime == 30.0 and isinstance(config.nonce_lifetime, float)
    assert (config.wrong_password, config.unknown_user) == (401, 404)
    assert config.secret == "s"


def test_the_secret_keys_the_nonces() -> None:
    one = parse_auth({"secret": "shared", **CREDS})
    two = parse_auth({"secret": "shared", **CREDS})
    other = parse_auth({"secret": "other", **CREDS})
    nonce = one.signer.make(1000.0)
    assert two.signer.check(nonce, 1001.0) == "valid"
    assert other.signer.check(nonce, 1001.0) == "invalid"


@pytest.mark.parametrize(("raw", "field", "message"), [
    ("x", None, "must be a table"),
    ({"relam": "x", **CREDS}, "relam", "unknown key (did you mean 'realm'?)"),
    ({"realm": "", **CREDS}, "realm", "must be a non-empty string on one line"),
    ({"realm": "a\nb", **CREDS}, "realm", "must be a non-empty string on one line"),
    ({"realm": 5, **CREDS}, "realm", "must be a string, not an integer"),
    ({"algorithms": [], **CREDS}, "algorithms", "must name at least one algorithm"),
    ({"algorithms": ["SHA-1"], **CREDS}, "algorithms", "unknown algorithm 'SHA-1' (known: MD5,"),
    ({"algorithms": ["MD5", "md5"], **CREDS}, "algorithms", "MD5 is listed twice"),
    ({"qop": "yes", **CREDS}, "qop", "must be true or false, not a string"),
    ({"qop": False, "algorithms": ["SHA-256-sess"], **CREDS}, "qop",
     "SHA-256-sess needs qop = true"),
    ({"nonce_lifetime": True, **CREDS}, "nonce_lifetime", "must be a positive number"),
    ({"nonce_lifetime": -1, **CREDS}, "nonce_lifetime", "must be a positive number"),
    ({"wrong_password": 302, **CREDS}, "wrong_password", "must be a status code from 400"),
    ({"unknown_user": 499, **CREDS}, "unknown_user", "499 is not in the response-code registry"),
    ({"unknown_user": 423, **CREDS}, "unknown_user",
     "423 Interval Too Brief requires a Min-Expires header field"),
    ({"secret": 1, **CREDS}, "secret", "must be a string"),
    ({}, "credentials", 'must be a table of user = "password"'),
    ({"credentials": {}}, "credentials", 'must be a table of user = "password"'),
    ({"credentials": {"a": 5}}, "credentials.a", "must be a password string or a table"),
    ({"credentials": {"a": {"pw": "x"}}}, "credentials.a.pw", "unknown key (expected password"),
    ({"credentials": {"a": {}}}, "credentials.a", "give either password or ha1"),
    ({"credentials": {"a": {"password": 1}}}, "credentials.a.password", "must be a string"),
    ({"credentials": {"a": {"ha1": {}}}}, "credentials.a.ha1", "must be a table like"),
    ({"credentials": {"a": {"ha1": {"SHA1": "0"}}}}, "credentials.a.ha1.SHA1", "unknown hash"),
    ({"credentials": {"a": {"ha1": {"MD5": "0" * 31 + "g"}}}}, "credentials.a.ha1.MD5",
     "must be 32 hex digits: H(username:realm:password) with realm 'sipresponder'"),
    ({"algorithms": ["MD5", "SHA-512-256-sess"],
      "credentials": {"a": {"ha1": {"MD5": "0" * 32}}}},
     "credentials.a.ha1", "no HA1 for SHA-512-256, which auth.algorithms offers"),
])
def test_errors_name_the_field_inside_the_auth_table(raw: Any, field: str | None,
                                                     message: str) -> None:
    error = error_of(raw)
    assert error.field == field
    assert error.message.startswith(message)


def test_a_challenge_code_is_a_valid_refusal() -> None:
    assert parse_auth({"wrong_password": 407, **CREDS}).wrong_password == 407


@pytest.mark.parametrize("kind", ["www", "proxy"])
def test_rule_guard(kind: str) -> None:
    config = AuthConfig()
    guard = rule_guard(kind, config)
    assert isinstance(guard, Guard)
    assert guard.kind == kind and guard.config is config


@pytest.mark.parametrize(("value", "config", "message"), [
    ("digest", AuthConfig(), '"www" (401, WWW-Authenticate) or "proxy"'),
    (["www"], AuthConfig(), '"www" (401, WWW-Authenticate) or "proxy"'),
    ("www", None, "needs an [auth] table with the credentials to check"),
])
def test_rule_guard_errors_name_the_auth_key(value: object, config: AuthConfig | None,
                                             message: str) -> None:
    with pytest.raises(FieldError) as info:
        rule_guard(value, config)
    assert info.value.field == "auth"
    assert info.value.message.startswith(message)
