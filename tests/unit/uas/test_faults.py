"""Not answering, ringing forever, faults and chance in the engine, with a fake clock."""

from __future__ import annotations

import random

import pytest

from sipresponder.scenario.loader import parse_scenario
from sipresponder.scenario.model import Behaviour
from sipresponder.uas import faults
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Send, Source
from tests.sipclient import make_request, parse_response

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
TCP = Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7)

SCENARIO = """
[settings]
ring_timeout = 60
seed = 7

[[rule]]
name = "timeout"
match.user = "timeout"
action = "none"

[[rule]]
name = "ring"
match.user = "ring"
action = "provisional-only"
provisional = [180]

[[rule]]
name = "ring-later"
match.user = "ring-later"
action = "provisional-only"
provisional = [{code = 180, delay = 1}]

[[rule]]
name = "twice"
match.user = "twice"
code = 200
repeat_final = true

[[rule]]
name = "lossy"
match.user = "lossy"
code = 200
probability = 0.5

[[rule]]
name = "late-close"
match.user = "late-close"
code = 486
delay = 1
fault = "close-after"

[default]
code = 404
"""

FAULT_RULES = "".join(
    f'[[rule]]\nmatch.user = "{f}"\ncode = 200\nbody = "hello"\n'
    f'content_type = "text/plain"\nfault = "{f}"\n'
    for f in ("close-before", "close-after", "reset-before", "reset-after", "truncated",
              "bad-content-length", "broken-header", "random-bytes")
) + "[default]\ncode = 404\n"


def engine(text: str = SCENARIO) -> Engine:
    return Engine(parse_scenario(text, "<test>"))


def codes(sends: list[Send]) -> list[int]:
    return [parse_response(s.data).code for s in sends]


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER", "BYE"])
def test_action_none_sends_nothing_not_even_100_trying(method: str) -> None:
    e = engine()
    request = make_request(method, "sip:timeout@x")
    outcome = e.handle(request, UDP, 0.0)
    assert outcome.sends == []
    assert outcome.note == "not answered"
    assert outcome.rule is not None and outcome.rule.name == "timeout"
    # Retransmissions get nothing either, and no state is kept for any of them.
    for t in (0.5, 1.5, 3.5):
        assert e.handle(request, UDP, t).sends == []
    assert not e.transactions and e.next_deadline() is None


def test_ring_forever_sends_180_then_nothing() -> None:
    e = engine()
    invite = make_request("INVITE", "sip:ring@x", branch="z9hG4bK-r1", call_id="r1")
    outcome = e.handle(invite, UDP, 0.0)
    assert codes(outcome.sends) == [180]
    assert outcome.note == "not answered: provisional responses only"
    assert e.fire(30.0) == []
    # A retransmitted INVITE gets the 180 again.
    assert codes(e.handle(invite, UDP, 31.0).sends) == [180]


def test_ring_forever_cancel_gets_200_and_487() -> None:
    e = engine()
    invite = make_request("INVITE", "sip:ring@x", branch="z9hG4bK-r2", call_id="r2")
    e.handle(invite, UDP, 0.0)
    assert e.fire(20.0) == []
    cancel = make_request("CANCEL", "sip:ring@x", branch="z9hG4bK-r2", call_id="r2")
    responses = [parse_response(s.data) for s in e.handle(cancel, UDP, 25.0).sends]
    assert [(r.code, r.get("CSeq")) for r in responses] == [(200, "1 CANCEL"), (487, "1 INVITE")]


def test_ring_forever_is_forgotten_after_ring_timeout() -> None:
    e = engine()
    e.handle(make_request("INVITE", "sip:ring@x"), UDP, 0.0)
    assert len(e.transactions) == 1
    assert e.fire(59.0) == []
    assert len(e.transactions) == 1
    assert e.fire(61.0) == []  # silently: no final response ever
    assert not e.transactions and e.next_deadline() is None


def test_ring_forever_with_a_delayed_180_sends_100_trying_first() -> None:
    e = engine()
    assert codes(e.handle(make_request("INVITE", "sip:ring-later@x"), UDP, 0.0).sends) == [100]
    assert codes(e.fire(1.0)) == [180]
    assert e.fire(30.0) == []


def test_repeat_final_sends_the_final_twice() -> None:
    e = engine()
    outcome = e.handle(make_request("OPTIONS", "sip:twice@x"), UDP, 0.0)
    assert codes(outcome.sends) == [200, 200]
    assert outcome.sends[0].data == outcome.sends[1].data
    assert outcome.note == "final response sent twice"


def test_probability_same_seed_same_choices() -> None:
    def run() -> list[bool]:
        e = engine()
        return [bool(e.handle(make_request("OPTIONS", "sip:lossy@x"), UDP, 0.0).sends)
                for _ in range(200)]

    first = run()
    assert first == run()
    assert 50 < sum(first) < 150  # about half answered
    notes = {engine().handle(make_request("OPTIONS", "sip:lossy@x"), UDP, 0.0).note}
    assert notes <= {None, "not answered (probability 0.5)"}


def test_seed_restarts_when_the_scenario_is_swapped() -> None:
    e = engine()
    request = make_request("OPTIONS", "sip:lossy@x")
    first = [bool(e.handle(request, UDP, 0.0).sends) for _ in range(50)]
    e.scenario = parse_scenario(SCENARIO, "<test>")
    assert [bool(e.handle(request, UDP, 0.0).sends) for _ in range(50)] == first


def test_probability_zero_and_one() -> None:
    text = ('[[rule]]\nmatch.user = "never"\ncode = 200\nprobability = 0\n'
            '[[rule]]\nmatch.user = "always"\ncode = 200\nprobability = 1.0\n'
            '[default]\ncode = 404\n')
    e = engine(text)
    for _ in range(20):
        assert e.handle(make_request("OPTIONS", "sip:never@x"), UDP, 0.0).sends == []
        assert codes(e.handle(make_request("OPTIONS", "sip:always@x"), UDP, 0.0).sends) == [200]


@pytest.mark.parametrize(("fault", "data", "close", "reset"), [
    ("close-before", False, True, False),
    ("close-after", True, True, False),
    ("reset-before", False, True, True),
    ("reset-after", True, True, True),
])
def test_connection_faults_on_tcp(fault: str, data: bool, close: bool, reset: bool) -> None:
    e = engine(FAULT_RULES)
    outcome = e.handle(make_request("OPTIONS", f"sip:{fault}@x", transport="TCP"), TCP, 0.0)
    [send] = outcome.sends
    assert bool(send.data) == data
    if data:
        assert parse_response(send.data).code == 200
    assert (send.close_after, send.reset) == (close, reset)
    assert outcome.note == f"fault: {fault}"


@pytest.mark.parametrize("fault", ["close-before", "close-after", "reset-before", "reset-after"])
def test_connection_faults_on_udp_mean_not_answered(fault: str) -> None:
    e = engine(FAULT_RULES)
    outcome = e.handle(make_request("OPTIONS", f"sip:{fault}@x"), UDP, 0.0)
    assert outcome.sends == []
    assert outcome.note is not None and "not answered" in outcome.note


@pytest.mark.parametrize(
    "fault", ["truncated", "bad-content-length", "broken-header", "random-bytes"]
)
@pytest.mark.parametrize("source", [UDP, TCP])
def test_malformed_responses_are_refused_by_a_strict_parser(fault: str, source: Source) -> None:
    e = engine(FAULT_RULES)
    transport = "TCP" if source is TCP else "UDP"
    outcome = e.handle(make_request("OPTIONS", f"sip:{fault}@x", transport=transport),
                       source, 0.0)
    [send] = outcome.sends
    assert send.data and not send.close_after
    with pytest.raises(AssertionError):
        parse_response(send.data)
    assert outcome.note == f"fault: {fault}"


def test_random_bytes_are_the_same_for_the_same_seed() -> None:
    text = "[settings]\nseed = 42\n" + FAULT_RULES
    request = make_request("OPTIONS", "sip:random-bytes@x")
    first = engine(text).handle(request, UDP, 0.0).sends[0].data
    assert engine(text).handle(request, UDP, 0.0).sends[0].data == first


def test_malform_kinds() -> None:
    response = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello"
    rng = random.Random(1)
    truncated = faults.malform("truncated", response, rng)
    assert response.startswith(truncated) and b"\r\n\r\n" not in truncated
    assert b"Content-Length: 105\r\n" in faults.malform("bad-content-length", response, rng)
    broken = faults.malform("broken-header", response, rng)
    assert broken.split(b"\r\n")[1] == faults.BROKEN_LINE.rstrip()
    noise = faults.malform("random-bytes", response, rng)
    assert len(noise) == len(response) and not noise.startswith(b"S")
    with pytest.raises(ValueError, match="unknown fault"):
        faults.malform("nonsense", response, rng)


def test_apply_leaves_a_withheld_response_alone() -> None:
    empty = Send(b"", "udp", ("127.0.0.1", 1))
    assert faults.apply(Behaviour(fault="truncated", repeat_final=True), empty,
                        random.Random(0)) == [Send(b"", "udp", ("127.0.0.1", 1))]


def test_fault_on_a_delayed_final_applies_when_it_is_sent() -> None:
    e = engine()
    outcome = e.handle(make_request("INVITE", "sip:late-close@x", transport="TCP"), TCP, 0.0)
    assert codes(outcome.sends) == [100]
    [final] = e.fire(1.0)
    assert parse_response(final.data).code == 486 and final.close_after and not final.reset


def test_plain_rules_have_no_behaviour() -> None:
    scenario = parse_scenario('[[rule]]\nmatch.user = "a"\ncode = 200\n[default]\ncode = 404\n',
                              "<test>")
    assert scenario.rules[0].behaviour is None and scenario.default.behaviour is None


def test_default_can_be_not_answered() -> None:
    e = engine('[default]\naction = "none"\n')
    assert e.handle(make_request("INVITE", "sip:anyone@x"), UDP, 0.0).sends == []


DRAWN = """
[settings]
seed = 3

[[rule]]
match.user = "uniform"
code = 486
delay = {uniform = [0.1, 0.5]}

[[rule]]
match.user = "lognormal"
code = 486
delay = {lognormal = {median = 0.2, sigma = 0.5}}

[default]
code = 404
"""


def final_times(e: Engine, user: str, n: int) -> list[float]:
    """When each of ``n`` INVITEs (each sent at time 0) got its final response."""
    for i in range(n):
        e.handle(make_request("INVITE", f"sip:{user}@x", call_id=f"{user}-{i}"), UDP, 0.0)
    times = []
    while (deadline := e.next_deadline()) is not None and len(times) < n:
        times += [deadline for s in e.fire(deadline) if parse_response(s.data).code == 486]
    return times


def test_uniform_delays_are_in_range_and_replayed_by_the_seed() -> None:
    times = final_times(engine(DRAWN), "uniform", 50)
    assert len(times) == 50 and all(0.1 <= t <= 0.5 for t in times)
    assert len(set(times)) > 40  # drawn, not fixed
    assert final_times(engine(DRAWN), "uniform", 50) == times


def test_lognormal_delays_center_on_the_median() -> None:
    times = sorted(final_times(engine(DRAWN), "lognormal", 101))
    assert 0.12 < times[50] < 0.33  # the sample median is near 0.2
    assert sorted(final_times(engine(DRAWN), "lognormal", 101)) == times


def test_drawn_delay_sends_100_trying_to_an_invite() -> None:
    e = engine(DRAWN)
    assert codes(e.handle(make_request("INVITE", "sip:uniform@x"), UDP, 0.0).sends) == [100]


CHOICE = """
[settings]
seed = 11

[[rule]]
match.user = "weighted"

[[rule.choice]]
weight = 3
code = 200

[[rule.choice]]
weight = 1
code = 503
retry_after = 5

[default]
code = 404
"""


def test_weighted_choice_follows_the_weights_and_the_seed() -> None:
    def run() -> list[int]:
        e = engine(CHOICE)
        return [codes(e.handle(make_request("OPTIONS", "sip:weighted@x"), UDP, 0.0).sends)[0]
                for _ in range(400)]

    first = run()
    assert set(first) == {200, 503}
    assert 240 < first.count(200) < 360  # about three in four
    assert run() == first


def test_weighted_choice_notes_which_was_sent() -> None:
    e = engine(CHOICE)
    for _ in range(20):
        outcome = e.handle(make_request("OPTIONS", "sip:weighted@x"), UDP, 0.0)
        [response] = [parse_response(s.data) for s in outcome.sends]
        assert outcome.note == ("choice[0]" if response.code == 200 else "choice[1]")
        if response.code == 503:
            assert response.get("Retry-After") == "5"
