"""The compiled path's entry points (uas/fast.py ``FastPath``), without sockets: one
message (``answer``), a stream read (``answer_stream``), and learning from the engine's
``Outcome`` and the plan it carries. The UDP batch is tests/unit/transport's.
"""

from __future__ import annotations

from typing import Any

import pytest

from sipresponder.ops.metrics import path_counts
from sipresponder.scenario.loader import parse_scenario
from sipresponder.uas.compiled import STATUS, speedups
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.fast import FastPath

pytestmark = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
TCP = Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7)
SCENARIO = """
[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200
[[rule]]
name = "later"
match = { method = "MESSAGE" }
delay = 0.5
code = 200
[[rule]]
name = "text"
match = { method = "INFO" }
code = 200
body = "hello"
content_type = "text/plain"
"""


def request(method: str = "OPTIONS", n: int = 1, transport: str = "UDP",
            extra: str = "") -> bytes:
    cseq = f"{n} {method}"
    return (
        f"{method} sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:40000;branch=z9hG4bK-{method}-{n}\r\n"
        f"From: <sip:bob@127.0.0.1>;tag=f{n}\r\n"
        "To: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: call-{method}-{n}@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n"
        f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def setup() -> tuple[Engine, FastPath]:
    engine = Engine(parse_scenario(SCENARIO, "<test>"))
    assert engine.fast is not None
    return engine, engine.fast


def teach(engine: Engine, path: FastPath, data: bytes, source: Source) -> None:
    """The first request of a line: the table misses, the engine answers and teaches."""
    missed = path.answer(data, source, 0.0, None)
    assert missed == path.local_id(source)
    assert isinstance(missed, int)
    path.learn(engine.handle(data, source, 0.0), missed)


class Journal:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> None:
        self.calls.append(args)


def test_one_message_misses_then_answers_with_the_engines_octets() -> None:
    engine, path = setup()
    teach(engine, path, request(n=1), UDP)
    journal = Journal()
    got = path.answer(request(n=2), UDP, 1.0, journal)
    assert got == Engine(engine.scenario).handle(request(n=2), UDP, 1.0).sends[0].data
    [(data, source, now, scenario, rule, response, note)] = journal.calls
    assert (data, source, now, scenario, rule.name, response, note) == (
        request(n=2), UDP, 1.0, engine.scenario, "options", got, None)
    assert path_counts(engine.counters)["compiled"] == 1


def test_one_message_the_table_knows_to_defer_teaches_nothing() -> None:
    engine, path = setup()
    teach(engine, path, request("MESSAGE", n=1), UDP)  # a delay: left to the engine
    assert path.answer(request("MESSAGE", n=2), UDP, 0.0, None) is None


def test_an_ack_absorbed_is_journaled_without_a_response() -> None:
    _engine, path = setup()
    journal = Journal()
    assert path.answer(request("ACK"), UDP, 2.0, journal) == b""
    [(_data, _source, _now, _scenario, rule, response, note)] = journal.calls
    assert (rule, response, note) == (None, None, "ACK absorbed")


def test_a_stream_read_answers_its_learned_head_and_leaves_the_rest() -> None:
    engine, path = setup()
    teach(engine, path, request(n=1, transport="TCP"), TCP)
    first, second = request(n=2, transport="TCP"), request(n=3, transport="TCP")
    rest = request("MESSAGE", n=4, transport="TCP")
    journal = Journal()
    out, used, count = path.answer_stream(first + second + rest, TCP, 3.0, journal)
    reference = Engine(engine.scenario)
    assert out == b"".join(reference.handle(m, TCP, 3.0).sends[0].data
                           for m in (first, second))
    assert (used, count) == (len(first) + len(second), 2)
    assert [call[0] for call in journal.calls] == [first, second]


def test_a_stream_read_on_an_unlearned_line_answers_nothing() -> None:
    _engine, path = setup()
    assert path.answer_stream(request(n=1, transport="TCP"), TCP, 0.0, None) == (b"", 0, 0)


def test_the_outcome_carries_the_plan_its_answer_was_rendered_from() -> None:
    engine, _path = setup()
    outcome = engine.handle(request(n=1), UDP, 0.0)
    assert outcome.plan is not None and outcome.rule is not None
    assert outcome.plan is engine.plans.get(
        (id(outcome.rule.final), 200, "OPTIONS", "udp", UDP.local))
    assert outcome.sends[0].data.startswith(outcome.plan.head.encode())


def test_a_406_in_place_of_the_plans_body_carries_no_plan() -> None:
    engine, _path = setup()
    outcome = engine.handle(request("INFO", extra="Accept: application/sdp\r\n"), UDP, 0.0)
    assert outcome.sends[0].data.startswith(b"SIP/2.0 406 ")
    assert outcome.plan is None


def test_learning_reads_the_outcomes_plan_not_the_plan_cache() -> None:
    """The answer is learned from the plan the Outcome carries, even when the plan
    cache has since let it go (it clears when full): nothing is looked up again."""
    engine, path = setup()
    missed = path.answer(request(n=1), UDP, 0.0, None)
    assert isinstance(missed, int)
    outcome = engine.handle(request(n=1), UDP, 0.0)
    engine.plans = type(engine.plans)(engine.scenario)
    path.learn(outcome, missed)
    assert isinstance(path.answer(request(n=2), UDP, 0.0, None), bytes)


def test_an_outcome_without_a_plan_is_not_learned() -> None:
    engine, path = setup()
    missed = path.answer(request(n=1), UDP, 0.0, None)
    assert isinstance(missed, int)
    outcome = engine.handle(request(n=1), UDP, 0.0)
    outcome.plan = None
    path.learn(outcome, missed)
    assert path.answer(request(n=2), UDP, 0.0, None) is None
    assert path_counts(engine.counters)["reasons"] == {"unusual-answer": 1}


def test_a_wildcard_listener_is_known_by_its_number() -> None:
    """serve_udp names a 0.0.0.0 listener by the wildcard address; learn then keeps
    only answers that name no local address, with no flag from the transport."""
    engine = Engine(parse_scenario(
        '[[rule]]\nname = "m"\nmatch = { method = "INVITE" }\ncode = 302\n'
        'contacts = ["<sip:elsewhere@{local.hostport}>"]\n'
        '[[rule]]\nname = "o"\nmatch = { method = "OPTIONS" }\ncode = 200\n', "<test>"))
    path = engine.fast
    assert path is not None
    wildcard = path.listener_id("udp", ("0.0.0.0", 5060))
    assert wildcard is not None
    invite = request("INVITE", extra="Contact: <sip:bob@127.0.0.1:40000>\r\n")
    path.learn(engine.handle(invite, UDP, 0.0), wildcard)
    assert path_counts(engine.counters)["reasons"] == {"local-address": 1}
    path.learn(engine.handle(request(n=1), UDP, 0.0), wildcard)
    on_wildcard = Source("udp", UDP.remote, ("0.0.0.0", 5060), 1)
    assert isinstance(path.answer(request(n=2), on_wildcard, 0.0, None), bytes)
