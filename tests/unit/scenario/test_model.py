"""scenario.model: the plain dataclasses the engine reads (no loader, no sockets)."""

from __future__ import annotations

import hashlib

import pytest

from sipresponder.scenario.loader import assemble
from sipresponder.scenario.model import (
    AuthCheck,
    Condition,
    ResponseSpec,
    Rule,
    Scenario,
    Settings,
)
from sipresponder.scenario.template import compile_template
from sipresponder.sip.message import Request, parse_request
from sipresponder.uas.events import Source
from sipresponder.uas.validation import CHECKS
from tests.sipclient import make_request

UDP = Source("udp", ("192.0.2.7", 5070), ("127.0.0.1", 5060))


def request(method: str = "INVITE", uri: str = "sip:bob@example.com") -> Request:
    return parse_request(make_request(method, uri), datagram=True)


def rule(name: str, number: int, *conditions: Condition, methods: set[str] | None = None,
         user: str | None = None, code: int = 200) -> Rule:
    return Rule(name, number, list(conditions), frozenset(methods) if methods else None, [],
                ResponseSpec(code), user=user)


def to_user(user: str) -> Condition:
    def test(r: Request, s: Source) -> bool:
        return r.uri.user == user

    return Condition(f"user {user!r}", test)


NEVER = Condition("never", lambda r, s: False)
DEFAULT = rule("", 0, code=404)


def scenario(*rules: Rule, settings: Settings | None = None) -> Scenario:
    return assemble("<test>", settings or Settings(), list(rules), DEFAULT)


def test_the_first_matching_rule_in_file_order_wins() -> None:
    first, second = rule("a", 1, code=486), rule("b", 2, code=480)
    assert scenario(first, second).match(request(), UDP) is first
    assert scenario(rule("x", 1, NEVER), second).match(request(), UDP) is second


def test_no_match_gives_the_default() -> None:
    assert scenario(rule("x", 1, NEVER)).match(request(), UDP) is DEFAULT
    assert scenario().match(request(), UDP) is DEFAULT


def test_methods_are_tested_before_the_conditions() -> None:
    called: list[str] = []

    def spy(r: Request, s: Source) -> bool:
        called.append(r.method)
        return True

    only_invite = rule("i", 1, Condition("spy", spy), methods={"INVITE"})
    s = scenario(only_invite)
    assert s.match(request("OPTIONS"), UDP) is DEFAULT
    assert called == []
    assert s.match(request("INVITE"), UDP) is only_invite
    assert called == ["INVITE"]


def test_every_condition_must_hold() -> None:
    always = Condition("always", lambda r, s: True)
    both = rule("both", 1, always, NEVER)
    assert not both.matches(request(), UDP)
    assert rule("one", 1, always).matches(request(), UDP)


def test_per_user_rules_are_tried_only_for_their_user_in_file_order() -> None:
    generic_late = rule("generic", 3, code=480)
    alice = rule("alice", 1, to_user("alice"), user="alice", code=486)
    bob = rule("bob", 2, to_user("bob"), user="bob", code=603)
    s = scenario(alice, bob, generic_late)
    assert s.match(request(uri="sip:alice@example.com"), UDP) is alice
    assert s.match(request(uri="sip:bob@example.com"), UDP) is bob
    assert s.match(request(uri="sip:carol@example.com"), UDP) is generic_late


def test_the_per_user_index_skips_other_users_rules_without_testing_them() -> None:
    tested: list[str] = []

    def spy(r: Request, s: Source) -> bool:
        tested.append("alice")
        return True

    alice = rule("alice", 1, Condition("spy", spy), user="alice")
    generic = rule("generic", 2)
    s = scenario(alice, generic)
    assert s.match(request(uri="sip:bob@example.com"), UDP) is generic
    assert tested == []


def test_a_generic_rule_before_a_per_user_rule_still_wins() -> None:
    generic = rule("generic", 1)
    alice = rule("alice", 2, user="alice")
    assert scenario(generic, alice).match(request(uri="sip:alice@example.com"), UDP) is generic


def test_an_unparsable_request_uri_falls_back_to_the_generic_rules() -> None:
    alice = rule("alice", 1, user="alice")
    generic = rule("generic", 2, code=480)
    bad = request(uri="sip:alice@example.com")
    bad.uri_raw = "sip:"  # no host: URI parsing raises ValueError
    bad._uri = None
    assert scenario(alice, generic).match(bad, UDP) is generic


@pytest.mark.parametrize(("name", "number", "label"), [
    ("busy", 3, "rule 'busy' (#3)"),
    ("", 4, "rule #4"),
    ("", 0, "[default]"),
])
def test_label(name: str, number: int, label: str) -> None:
    assert rule(name, number).label == label


def test_stateful_when_a_response_waits_or_is_computed() -> None:
    assert not rule("r", 1).stateful
    with_provisional = rule("p", 1)
    with_provisional.provisional.append(ResponseSpec(180))
    assert with_provisional.stateful
    assert Rule("d", 1, [], None, [], ResponseSpec(200, delay=0.5)).stateful
    templated = ResponseSpec(compile_template("{ruri.user}"), fill_required=True)
    assert Rule("t", 1, [], None, [], templated).stateful


def test_response_sets_names_headers_case_blind_and_typed_fields_exactly() -> None:
    spec = ResponseSpec(302, headers=[("X-Tag", compile_template("a"))],
                        typed={"Contact": [compile_template("<sip:x@y>")]})
    assert spec.sets("x-tag") and spec.sets("X-TAG")
    assert spec.sets("Contact")
    assert not spec.sets("Retry-After")


def test_switch_gives_each_check_its_default_unless_the_settings_say() -> None:
    s = scenario()
    assert s.switch("max_forwards") is False and s.switch("require") is True
    assert set(s.switches) == set(CHECKS)
    assert {name: s.switch(name) for name in CHECKS} == {
        name: info.default for name, info in CHECKS.items()}
    turned = scenario(settings=Settings(checks={"max_forwards": True, "require": False}))
    assert turned.switch("max_forwards") is True and turned.switch("require") is False


def test_bodyless_checks_are_the_enabled_checks_less_the_body_ones() -> None:
    on = scenario(settings=Settings(checks={"content_language": True}))
    assert on.checks[: len(on.bodyless_checks)] == on.bodyless_checks
    body_only = [c for c in on.checks if c not in on.bodyless_checks]
    assert [c.__name__ for c in body_only] == [
        "_content_type", "_content_encoding", "_content_language"]
    off = scenario(settings=Settings(checks={"content_type": False, "require": False}))
    assert len(off.checks) == len(on.checks) - 3


def test_tag_key_is_the_blake2s_digest_of_the_setting() -> None:
    s = scenario(settings=Settings(tag_key="secret"))
    assert s.tag_key == hashlib.blake2s(b"secret").digest()
    assert len(s.tag_key) == 32


def test_allow_and_known_methods_come_from_the_rules() -> None:
    s = scenario(rule("i", 1, methods={"INVITE"}), rule("p", 2, methods={"PUBLISH", "FOO"}))
    assert s.allow == ("INVITE", "ACK", "CANCEL", "PUBLISH", "FOO")
    assert "FOO" in s.known_methods and "OPTIONS" in s.known_methods
    assert "BAR" not in s.known_methods


def test_a_guard_is_any_object_with_check() -> None:
    class Stand:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def check(self, rule: Rule, request: Request, now: float) -> Rule:
            self.seen.append(now)
            return rule

    guard: AuthCheck = Stand()
    guarded = Rule("g", 1, [], None, [], ResponseSpec(200), auth=guard)
    assert guarded.auth is not None
    assert guarded.auth.check(guarded, request(), 12.5) is guarded
