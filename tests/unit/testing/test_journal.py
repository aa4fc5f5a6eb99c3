"""The journal records Outcomes (testing/journal.py), sans I/O."""

from __future__ import annotations

from pathlib import Path

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.testing.journal import Journal, JournalEntry
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[3]
UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
RINGING = """
[[rule]]
name = "ring"
match = { method = "INVITE" }
provisional = [180]
delay = 2.0
code = 200
[default]
code = 200
"""


def test_entry_of_a_rule_answer_and_listeners() -> None:
    e = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    journal = Journal(size=2)
    seen: list[JournalEntry] = []
    journal.listeners.append(seen.append)
    data = make_request("OPTIONS", "sip:a@x")
    journal.record(e.handle(data, UDP, 5.0))
    [entry] = list(journal)
    assert seen == [entry]
    assert (entry.seq, entry.time, entry.transport, entry.remote, entry.raw) == (
        1, 5.0, "udp", UDP.remote, data)
    assert (entry.method, entry.uri, entry.rule) == ("OPTIONS", "sip:a@x", "rule 'options' (#3)")
    assert entry.outcome == entry.rule and entry.codes == [200]
    assert entry.header("call-id") is not None
    for _ in range(3):
        journal.record(e.handle(data, UDP, 6.0))
    assert len(journal) == 2 and [x.seq for x in journal] == [3, 4]


def test_entry_of_a_drop_has_no_request() -> None:
    e = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    journal = Journal()
    journal.record(e.handle(b"garbage\r\n\r\n", UDP, 0.0))
    [entry] = list(journal)
    assert entry.method is None and entry.rule is None and entry.responses == []
    assert entry.outcome.startswith("dropped: not a request")


def test_later_responses_of_a_transaction_reach_its_entry() -> None:
    e = Engine(parse_scenario(RINGING, "<t>"))
    journal = Journal()
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-j1", call_id="j1")
    journal.record(e.handle(invite, UDP, 0.0))
    [entry] = list(journal)
    assert entry.codes == [180]
    e.fire(2.0)
    assert entry.codes == [180, 200]
    e.fire(2.5)  # Timer G retransmissions are not new responses
    assert entry.codes == [180, 200]


def test_cancel_487_reaches_the_invite_entry() -> None:
    e = Engine(parse_scenario(RINGING, "<t>"))
    journal = Journal()
    journal.record(e.handle(make_request("INVITE", "sip:a@x", branch="z9hG4bK-j2",
                                         call_id="j2"), UDP, 0.0))
    journal.record(e.handle(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-j2",
                                         call_id="j2"), UDP, 1.0))
    invite, cancel = list(journal)
    assert invite.codes == [180, 487]
    assert cancel.codes == [200, 487] and cancel.outcome == "CANCEL of a pending INVITE"
