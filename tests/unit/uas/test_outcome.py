"""What Engine.handle reports for each way a message can go (uas/outcome.Outcome)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.outcome import Outcome
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[3]
UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
RINGING = """
[settings]
rate_limit = 1
rate_limit_action = "503"
[[rule]]
name = "ring"
match = { method = "INVITE" }
provisional = [180]
delay = 2.0
code = 200
[default]
code = 200
"""


def default() -> Engine:
    return Engine(load_scenario(ROOT / "scenarios" / "default.toml"))


def test_answered_by_a_rule() -> None:
    e = default()
    data = make_request("OPTIONS", "sip:a@x")
    out = e.handle(data, UDP, 3.0)
    assert isinstance(out, Outcome)
    assert (out.data, out.source, out.time, out.scenario) == (data, UDP, 3.0, e.scenario)
    assert out.request is not None and out.request.method == "OPTIONS"
    assert out.rule is not None and out.rule.name == "options"
    assert out.note is None and out.transaction is None and len(out.sends) == 1


def test_rejected_and_dropped() -> None:
    e = default()
    out = e.handle(make_request("FOO", "sip:a@x"), UDP, 0.0)
    assert out.note == "rejected: 501 Not Implemented" and out.rule is None
    assert out.request is not None and len(out.sends) == 1
    out = e.handle(b"SIP/2.0 200 OK\r\n\r\n", UDP, 0.0)
    assert out.note is not None and out.note.startswith("dropped: not a request")
    assert out.request is None and out.sends == []


def test_ack_is_absorbed() -> None:
    out = default().handle(make_request("ACK", "sip:a@x"), UDP, 0.0)
    assert out.note == "ACK absorbed" and out.sends == [] and out.request is not None


def test_transaction_started_retransmission_and_cancel() -> None:
    e = Engine(parse_scenario(RINGING.replace("rate_limit = 1", "rate_limit = 0"), "<t>"))
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-o1", call_id="o1")
    out = e.handle(invite, UDP, 0.0)
    txn = out.transaction
    assert txn is not None and out.rule is not None and out.rule.name == "ring"
    assert txn.responses == [s.data for s in out.sends]
    again = e.handle(invite, UDP, 0.5)
    assert again.note == "retransmission: the last response again"
    assert again.transaction is None and again.rule is None
    cancel = e.handle(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-o1", call_id="o1"),
                      UDP, 1.0)
    assert cancel.note == "CANCEL of a pending INVITE" and len(cancel.sends) == 2
    assert txn.responses[-1] is cancel.sends[1].data  # the 487 reaches the INVITE's list
    # ... and is the INVITE's: the CANCEL's Outcome names the transaction it ended.
    assert cancel.ended is txn and cancel.transaction is None and txn.cancelled
    assert again.ended is None


def test_rate_limit_drop_then_503() -> None:
    e = Engine(parse_scenario(RINGING, "<t>"))
    e.handle(make_request("MESSAGE", "sip:a@x"), UDP, 0.0)
    over = e.handle(make_request("MESSAGE", "sip:a@x"), UDP, 0.1)
    assert over.note == "rejected: 503 Service Unavailable" and len(over.sends) == 1
    dropped = e.handle(make_request("MESSAGE", "sip:a@x"), UDP, 0.2)
    assert dropped.note == "dropped: over the per-source rate limit"
    assert dropped.request is None and dropped.sends == []
    assert e.counters["rate_limited"] == 2


def test_an_internal_error_costs_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    e = default()

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(e, "_code", boom)
    out = e.handle(make_request("OPTIONS", "sip:a@x"), UDP, 0.0)
    assert out.sends == [] and out.request is None and out.note is None and out.rule is None
    assert e.counters["internal_errors"] == 1


@pytest.mark.parametrize(("note", "has_rule", "kind"), [
    (None, True, "answered"),
    (None, False, "dropped"),  # an internal error cost the message
    ("ACK absorbed", False, "absorbed"),
    ("retransmission: the last response again", False, "retransmission"),
    ("not answered", True, "not-answered"),
    ("not answered (probability 0.5)", True, "not-answered"),
    ("not answered: provisional responses only", True, "not-answered"),
    ("rejected: 400 Bad Request", False, "rejected"),
    ("dropped: not a request (empty)", False, "dropped"),
    ("fault: truncated", True, "fault"),
    ("fault: close-before (UDP has no connection: not answered)", True, "fault"),
    ("choice[1]; fault: random-bytes", True, "fault"),
    ("choice[0]", True, "answered"),
    ("CANCEL of a pending INVITE", False, "answered"),
    ("cancelled", True, "cancelled"),  # what the journal writes on the INVITE's entry
])
def test_kind(note: str | None, has_rule: bool, kind: str) -> None:
    e = default()
    rule = e.scenario.default if has_rule else None
    out = Outcome(b"", UDP, 0.0, e.scenario, [], None, rule, note)
    assert out.kind == kind


def test_kind_of_real_outcomes() -> None:
    e = default()
    assert e.handle(make_request("OPTIONS", "sip:a@x"), UDP, 0.0).kind == "answered"
    assert e.handle(make_request("ACK", "sip:a@x"), UDP, 0.0).kind == "absorbed"
    assert e.handle(make_request("FOO", "sip:a@x"), UDP, 0.0).kind == "rejected"
    assert e.handle(b"garbage\r\n\r\n", UDP, 0.0).kind == "dropped"
