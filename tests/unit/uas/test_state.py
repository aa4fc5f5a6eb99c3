"""uas.state and the engine's stateful rules: sequences per scope, named states, the
bounded tables, reset; all sans-I/O through Engine.handle."""

from __future__ import annotations

from typing import Any

import pytest

from sipresponder.scenario.loader import parse_scenario
from sipresponder.sip.message import parse_request
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.state import States, scope_key
from tests.sipclient import make_request, parse_response

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
OTHER = Source("udp", ("127.0.0.2", 40000), ("127.0.0.1", 5060), 1)

FLAKY = """
[[rule]]
name = "flaky"
match.user = "flaky"
scope = "{scope}"
after = "{after}"
sequence = [{{ code = 503, retry_after = 5 }}, 200]

[[rule]]
match.user = "flaky"
code = 486
"""

REGISTRAR = """
[[rule]]
name = "register"
match.method = "REGISTER"
scope = "source"
code = 200
new_state = "registered"

[[rule]]
name = "until-registered"
match.method = "INVITE"
scope = "source"
when_state = "start"
code = 401
www_authenticate = 'Digest realm="x", nonce="1"'

[[rule]]
name = "registered"
match.method = "INVITE"
scope = "source"
when_state = "registered"
code = 200
"""


def codes(e: Engine, method: str = "OPTIONS", uri: str = "sip:flaky@h", n: int = 1,
          source: Source = UDP, **kw: Any) -> list[int]:
    out = []
    for _ in range(n):
        sends = e.handle(make_request(method, uri, **kw), source, 0.0).sends
        out.append(parse_response(sends[-1].data).code)
    return out


def flaky(scope: str = "global", after: str = "repeat-last") -> Engine:
    return Engine(parse_scenario(FLAKY.format(scope=scope, after=after), "<test>"))


def test_503_with_retry_after_then_200_then_repeat_the_last() -> None:
    e = flaky()
    first = parse_response(e.handle(make_request("OPTIONS", "sip:flaky@h"), UDP, 0.0).sends[0].data)
    assert (first.code, first.get("Retry-After")) == (503, "5")
    assert codes(e, n=3) == [200, 200, 200]


def test_cycle_starts_over() -> None:
    assert codes(flaky(after="cycle"), n=5) == [503, 200, 503, 200, 503]


def test_fall_through_goes_to_the_next_matching_rule() -> None:
    assert codes(flaky(after="fall-through"), n=4) == [503, 200, 486, 486]


def test_counted_per_call_id() -> None:
    e = flaky(scope="call-id")
    assert codes(e, call_id="a@x", n=2) == [503, 200]
    assert codes(e, call_id="b@x", n=2) == [503, 200]
    assert codes(e, call_id="a@x") == [200]


def test_counted_per_source_address() -> None:
    e = flaky(scope="source")
    assert codes(e) == [503]
    assert codes(e, source=OTHER) == [503]
    assert codes(e) == [200]


def test_a_retransmission_is_not_counted_again() -> None:
    e = flaky(scope="call-id")
    data = make_request("INVITE", "sip:flaky@h", call_id="r@x")
    first = e.handle(data, UDP, 0.0).sends[-1].data
    assert parse_response(first).code == 503
    assert [parse_response(s.data).code for s in e.handle(data, UDP, 0.1).sends] == [503]
    assert codes(e, "INVITE", call_id="r@x") == [200]


def test_401_until_registered_then_200_per_source() -> None:
    e = Engine(parse_scenario(REGISTRAR, "<test>"))
    assert codes(e, "INVITE", "sip:bob@h") == [401]
    assert codes(e, "REGISTER", "sip:h") == [200]
    assert codes(e, "INVITE", "sip:bob@h", n=2) == [200, 200]
    assert codes(e, "INVITE", "sip:bob@h", source=OTHER) == [401]
    assert e.states.state("source", "127.0.0.1") == "registered"


def test_swapping_the_scenario_and_reset_start_over() -> None:
    e = flaky()
    assert codes(e) == [503]
    e.states.reset()
    assert codes(e) == [503]
    e.scenario = e.scenario
    assert codes(e) == [503]
    assert e.states.snapshot()["counters"] == [
        {"rule": 1, "scope": "global", "key": "", "count": 1}
    ]


def test_tables_are_bounded_oldest_forgotten_first() -> None:
    e = flaky(scope="call-id")
    e.states = States(limit=2)
    for call in ("a", "b", "c"):
        assert codes(e, call_id=call) == [503]
    assert [k for (_, _, k) in e.states.counts] == ["b", "c"]
    assert codes(e, call_id="a") == [503]  # forgotten: starts again


def test_a_cycle_counter_stays_small() -> None:
    e = flaky(after="cycle")
    codes(e, n=101)
    assert max(e.states.counts.values()) <= 2


@pytest.mark.parametrize(("scope", "key"), [
    ("global", ""),
    ("call-id", "k@x"),
    ("source", "127.0.0.1"),
    ("from", "sip:tester@example.com"),
    ("to", "sip:alice@example.org"),
])
def test_scope_keys(scope: str, key: str) -> None:
    data = make_request("OPTIONS", "sip:alice@EXAMPLE.org:5070;transport=udp", call_id="k@x")
    assert scope_key(scope, parse_request(data, datagram=True), UDP) == key


def test_stateless_rules_keep_the_stateless_path() -> None:
    e = Engine(parse_scenario('[[rule]]\ncode = 200\n', "<test>"))
    assert not e.scenario.stateful_rules
    assert codes(e, n=2) == [200, 200]
    assert not e.states.counts and not e.states.states
