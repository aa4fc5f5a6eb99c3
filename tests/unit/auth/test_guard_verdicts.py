"""auth.guard called directly, as the engine does (``Guard.check``), without the engine:
the verdict for each kind of credentials and the stand-in rule that answers it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sipresponder.auth.config import parse_auth
from sipresponder.auth.guard import Guard
from sipresponder.scenario.model import AuthCheck, ResponseSpec, Rule
from sipresponder.scenario.template import RenderContext
from sipresponder.sip.message import Request, parse_request
from sipresponder.uas.events import Source
from tests.digest_client import authorization, parse_challenge
from tests.sipclient import make_request

URI = "sip:pbx.lab"
NOW = 1000.0
UDP = Source("udp", ("192.0.2.7", 5070), ("127.0.0.1", 5060))
CONFIG = parse_auth({"realm": "pbx.lab", "algorithms": ["SHA-256", "MD5"], "nonce_lifetime": 60,
                     "unknown_user": 404, "credentials": {"100": "s3cret"}})
RULE = Rule("register", 2, [], frozenset({"REGISTER"}), [], ResponseSpec(200))


def request(headers: list[tuple[str, str]] | None = None, method: str = "REGISTER") -> Request:
    return parse_request(make_request(method, URI, headers=headers), datagram=True)


def challenge_rows(rule: Rule, header: str = "WWW-Authenticate") -> list[dict[str, str]]:
    ctx = RenderContext(request(), UDP)
    return [parse_challenge(t.render(ctx)) for n, t in rule.final.headers if n == header]


def credentials(guard: Guard, *, password: str = "s3cret", username: str = "100",
                now: float = NOW, header: str = "Authorization") -> list[tuple[str, str]]:
    [first, _] = challenge_rows(guard.check(RULE, request(), now))
    value = authorization(first, username=username, password=password, method="REGISTER",
                          uri=URI)
    return [(header, value)]


def test_a_guard_is_what_a_rule_expects() -> None:
    guard: AuthCheck = Guard("www", CONFIG)
    assert guard.check(RULE, request(method="CANCEL"), NOW) is RULE


def test_no_credentials_earn_a_challenge_per_algorithm_in_order() -> None:
    guard = Guard("www", CONFIG)
    assert guard.verify(request(), NOW).outcome == "challenge"
    stand_in = guard.check(RULE, request(), NOW)
    assert stand_in is not RULE
    assert stand_in.final.code == 401 and stand_in.final.sdp is False
    assert stand_in.name == "register: auth challenge" and stand_in.number == 2
    assert stand_in.methods == RULE.methods and stand_in.conditions == []
    rows = challenge_rows(stand_in)
    assert [r["algorithm"] for r in rows] == ["SHA-256", "MD5"]
    assert {r["realm"] for r in rows} == {"pbx.lab"} and {r["qop"] for r in rows} == {"auth"}
    assert rows[0]["nonce"] == rows[1]["nonce"]
    assert CONFIG.signer.check(rows[0]["nonce"], NOW) == "valid"


def test_right_credentials_give_the_rule_itself() -> None:
    guard = Guard("www", CONFIG)
    req = request(credentials(guard))
    assert guard.verify(req, NOW).outcome == "ok"
    assert guard.check(RULE, req, NOW) is RULE


def test_proxy_guard_uses_407_and_proxy_authorization() -> None:
    guard = Guard("proxy", CONFIG)
    stand_in = guard.check(RULE, request(), NOW)
    assert stand_in.final.code == 407
    [first, _] = challenge_rows(stand_in, "Proxy-Authenticate")
    value = authorization(first, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert guard.check(RULE, request([("Proxy-Authorization", value)]), NOW) is RULE
    # Credentials in the other header field are not looked at.
    assert guard.verify(request([("Authorization", value)]), NOW).outcome == "challenge"


@pytest.mark.parametrize(("kwargs", "outcome", "code"), [
    ({"password": "nope"}, "wrong-password", 403),
    ({"username": "999"}, "unknown-user", 404),
])
def test_refusals_use_the_configured_codes(kwargs: dict[str, str], outcome: str,
                                           code: int) -> None:
    guard = Guard("www", CONFIG)
    req = request(credentials(guard, **kwargs))
    assert guard.verify(req, NOW).outcome == outcome
    refusal = guard.check(RULE, req, NOW)
    assert refusal.final.code == code and refusal.final.headers == []
    assert refusal.name == f"register: auth {outcome}"
    assert guard.check(RULE, req, NOW) is refusal  # compiled once per outcome


def test_an_expired_nonce_with_the_right_digest_is_stale() -> None:
    guard = Guard("www", CONFIG)
    req = request(credentials(guard, now=NOW))
    later = NOW + 61
    verdict = guard.verify(req, later)
    assert verdict.outcome == "stale"
    rows = challenge_rows(guard.check(RULE, req, later))
    assert {r["stale"] for r in rows} == {"true"}


def test_an_expired_nonce_with_a_wrong_digest_is_a_wrong_password() -> None:
    guard = Guard("www", CONFIG)
    req = request(credentials(guard, password="nope"))
    assert guard.verify(req, NOW + 61).outcome == "wrong-password"


def test_malformed_credentials_get_a_400_naming_the_field() -> None:
    guard = Guard("www", CONFIG)
    req = request([("Authorization", 'Digest username="100", realm')])
    verdict = guard.verify(req, NOW)
    assert verdict.outcome == "malformed"
    assert verdict.detail.startswith("Malformed Authorization header field (")
    answer = guard.check(RULE, req, NOW)
    assert answer.final.code == 400
    assert answer.final.reason is not None and answer.final.reason.source == verdict.detail


@pytest.mark.parametrize(("change", "detail"), [
    (lambda v: v.replace('realm="pbx.lab"', 'realm="other"'), "no credentials for this realm"),
    (lambda v: v.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
     "algorithm SHA-512-256 not offered"),
    (lambda v: v.replace("qop=auth", "qop=auth-int"), "qop auth-int not offered"),
    (lambda v: v.replace('nonce="', 'nonce="0'), "nonce not issued here"),
])
def test_credentials_we_cannot_use_earn_a_fresh_challenge(change: Callable[[str], str],
                                                          detail: str) -> None:
    guard = Guard("www", CONFIG)
    [(name, value)] = credentials(guard)
    verdict = guard.verify(request([(name, change(value))]), NOW)
    assert (verdict.outcome, verdict.detail) == ("challenge", detail)


def test_challenges_in_one_second_are_one_compiled_rule() -> None:
    guard = Guard("www", CONFIG)
    first = guard.check(RULE, request(), NOW + 0.1)
    assert guard.check(RULE, request(), NOW + 0.9) is first
    assert guard.check(RULE, request(), NOW + 1.0) is not first
