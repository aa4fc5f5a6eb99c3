"""Where each request went (uas/fast.py): the compiled table, or the engine and why.

Each test drives an engine as ``Server.receive`` does (the table first; on a miss the
engine, whose answer teaches the table) with a scenario that produces one reason, and
reads the ``path:engine:*`` counters and ops/metrics.py's split of them.
"""

from __future__ import annotations

import pytest

from sipresponder.ops.metrics import path_counts, path_summary
from sipresponder.scenario.loader import parse_scenario
from sipresponder.uas import engine as engine_module
from sipresponder.uas.compiled import STATUS, speedups
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source

SOURCE = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
compiled_only = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")


def request(method: str = "OPTIONS", user: str = "alice", n: int = 1,
            extra: str = "", body: str = "") -> bytes:
    cseq = f"{n} {'INVITE' if method == 'ACK' else method}"
    content = "Content-Type: application/sdp\r\n" if body else ""
    return (
        f"{method} sip:{user}@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{method}-{n}\r\n"
        f"From: <sip:bob@127.0.0.1>;tag=f{n}\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: call-{method}-{n}@127.0.0.1\r\n"
        f"CSeq: {cseq}\r\n"
        f"Max-Forwards: 70\r\n{extra}{content}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def drive(engine: Engine, data: bytes, now: float = 0.0) -> None:
    """One request as Server.receive handles it."""
    path = engine.fast
    missed = None
    if path is not None:
        got = path.answer(data, SOURCE, now, None)
        if isinstance(got, bytes):
            return
        missed = got
    outcome = engine.handle(data, SOURCE, now)
    if missed is not None and path is not None:
        path.learn(outcome, missed)


def reasons(engine: Engine) -> dict[str, int]:
    return dict(path_counts(engine.counters)["reasons"])


def engine_for(text: str) -> Engine:
    return Engine(parse_scenario(text, "<test>"))


@compiled_only
def test_a_learned_line_is_compiled_after_its_first_request() -> None:
    engine = engine_for('[[rule]]\nname = "o"\nmatch = { method = "OPTIONS" }\ncode = 200\n')
    for n in range(5):
        drive(engine, request(n=n))
    assert path_counts(engine.counters) == {"compiled": 4, "engine": 1,
                                            "reasons": {"not-learned": 1}}


@compiled_only
@pytest.mark.parametrize(("scenario", "send", "reason"), [
    # An INVITE's 200 carries an SDP answer.
    ('[[rule]]\nname = "i"\nmatch = { method = "INVITE" }\ncode = 200\n',
     lambda n: request("INVITE", n=n, body=OFFER), "sdp-answer"),
    # A Digest-protected rule: the challenge depends on the clock.
    ('[auth]\nrealm = "lab"\n[auth.credentials]\n"bob" = "pw"\n'
     '[[rule]]\nname = "r"\nmatch = { method = "REGISTER" }\nauth = "www"\ncode = 200\n',
     lambda n: request("REGISTER", n=n), "digest"),
    # A sequence: each request moves it on.
    ('[[rule]]\nname = "s"\nmatch = { method = "OPTIONS" }\nsequence = [486, 200]\n',
     lambda n: request(n=n), "stateful"),
    # Provisional responses start a transaction.
    ('[[rule]]\nname = "p"\nmatch = { method = "OPTIONS" }\nprovisional = [180]\n'
     'code = 200\n', lambda n: request(n=n), "provisional"),
    ('[[rule]]\nname = "d"\nmatch = { method = "OPTIONS" }\ndelay = 0.5\ncode = 200\n',
     lambda n: request(n=n), "delay"),
    ('[[rule]]\nname = "b"\nmatch = { method = "OPTIONS" }\naction = "none"\n',
     lambda n: request(n=n), "behaviour"),
    # A condition on a header field: the request line does not decide the rule.
    ('[[rule]]\nname = "h"\nmatch = { method = "OPTIONS", headers = { Subject = "x*" } }\n'
     'code = 486\n', lambda n: request(n=n, extra="Subject: xy\r\n"), "conditions"),
    # An earlier rule reads a header: a later rule's answer cannot be kept for the line.
    ('[[rule]]\nname = "h"\nmatch = { headers = { Subject = "x*" } }\ncode = 486\n'
     '[[rule]]\nname = "o"\nmatch = { method = "OPTIONS" }\ncode = 200\n',
     lambda n: request(n=n), "earlier-rule"),
    # A header field built from the request (its Call-ID).
    ('[[rule]]\nname = "t"\nmatch = { method = "OPTIONS" }\ncode = 200\n'
     'headers = { X-Call = "{call_id}" }\n', lambda n: request(n=n), "dynamic-response"),
])
def test_each_reason_is_counted_for_every_request_it_keeps_off_the_table(
        scenario: str, send: object, reason: str) -> None:
    engine = engine_for(scenario)
    assert callable(send)
    for n in range(4):
        drive(engine, send(n), now=n * 100.0)  # past every timer of the one before
    assert reasons(engine) == {reason: 4}, engine.counters
    assert path_counts(engine.counters)["compiled"] == 0


@compiled_only
def test_validation_transaction_and_ack_reasons() -> None:
    engine = engine_for('[[rule]]\nname = "p"\nmatch = { method = "INVITE" }\n'
                        'provisional = [180]\ncode = 486\n')
    invite = request("INVITE")
    drive(engine, invite)  # a transaction: provisional
    drive(engine, invite)  # its retransmission: transaction
    drive(engine, request("ACK"))  # with a live transaction the table defers ACKs
    no_cseq = request("OPTIONS", n=8).replace(b"CSeq: 8 OPTIONS\r\n", b"")
    drive(engine, no_cseq)  # 400: a mandatory header missing
    assert reasons(engine) == {"provisional": 1, "transaction": 1, "ack": 1,
                               "validation": 1}, engine.counters


@pytest.mark.parametrize(("setting", "reason"), [
    ("rate_limit = 1000", "rate-limit"),
    ('response_routing = "via"', "via-routing"),
])
def test_a_scenario_the_table_never_serves_counts_why(setting: str, reason: str) -> None:
    engine = engine_for(f'[settings]\n{setting}\n[[rule]]\nname = "o"\ncode = 200\n')
    assert engine.fast is None
    for n in range(3):
        drive(engine, request(n=n))
    if speedups is None:
        reason = "no-extension"  # the first reason: nothing could be compiled anyway
    assert path_counts(engine.counters) == {"compiled": 0, "engine": 3,
                                            "reasons": {reason: 3}}


def test_without_the_extension_every_request_counts_as_no_extension(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "speedups", None)
    engine = engine_for('[[rule]]\nname = "o"\ncode = 200\n')
    for n in range(2):
        drive(engine, request(n=n))
    assert reasons(engine) == {"no-extension": 2}


def test_the_summary_line_names_each_reason_by_share() -> None:
    paths = {"compiled": 91, "engine": 9, "reasons": {"sdp-answer": 6, "digest": 3}}
    assert path_summary(paths) == "compiled 91 %, engine 9 %: sdp-answer 6 %, digest 3 %"
    assert path_summary({"compiled": 0, "engine": 0, "reasons": {}}) == "no requests yet"
    # A rare reason never reads as 0 %.
    rare = path_summary({"compiled": 999, "engine": 1, "reasons": {"digest": 1}})
    assert rare == "compiled 99.9 %, engine 0.1 %: digest 0.1 %"


def test_the_split_counts_compiled_answers_as_the_requests_the_engine_did_not() -> None:
    counters = {"request:OPTIONS": 10, "request:INVITE": 5, "response:200": 15,
                "path:engine:sdp-answer": 5, "dropped": 2}
    assert path_counts(counters) == {"compiled": 10, "engine": 5,
                                     "reasons": {"sdp-answer": 5}}


@compiled_only
def test_a_learned_line_after_a_refused_one_counts_as_not_learned() -> None:
    """The rule's first line is refused (an earlier rule reads a header for OPTIONS);
    its next line (MESSAGE) is learned: that first MESSAGE was not compiled only because
    it was the first, and the MESSAGEs after it are compiled."""
    engine = engine_for('[[rule]]\nname = "h"\nmatch = { method = "OPTIONS", headers = '
                        '{ Subject = "x*" } }\ncode = 486\n'
                        '[[rule]]\nname = "any"\ncode = 200\n')
    for n in range(2):
        drive(engine, request("OPTIONS", n=n))
    for n in range(3):
        drive(engine, request("MESSAGE", n=10 + n))
    assert path_counts(engine.counters) == {
        "compiled": 2, "engine": 3, "reasons": {"earlier-rule": 2, "not-learned": 1}}
