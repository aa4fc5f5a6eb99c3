"""The journal records Outcomes (journal/record.py), sans I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sipresponder.journal.record import (
    FILTERS,
    FilterError,
    Journal,
    JournalEntry,
    Query,
    check_keys,
    rfc3339,
)
from sipresponder.scenario.globs import compile_glob
from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[3]
UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)


class Clock:
    """The journal's clock, set by the test (the engine's ``now`` is not the journal's)."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
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
    journal = Journal(size=2, clock=Clock(5.0))
    seen: list[JournalEntry] = []
    journal.listeners.append(seen.append)
    data = make_request("OPTIONS", "sip:a@x")
    journal.record(e.handle(data, UDP, 1.0))
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


def test_cancel_entry_holds_its_200_and_the_invite_entry_the_487() -> None:
    """The wire: INVITE, 180, CANCEL, 200, 487. Before, the 487 was on both entries
    (the ladder and the pcap showed two, the first before the CANCEL)."""
    e = Engine(parse_scenario(RINGING, "<t>"))
    clock = Clock(10.0)
    journal = Journal(clock=clock)
    told: list[tuple[int, str]] = []
    journal.listeners.append(lambda entry: told.append((entry.seq, "entry")))
    journal.update_listeners.append(lambda entry: told.append((entry.seq, "update")))
    journal.record(e.handle(make_request("INVITE", "sip:a@x", branch="z9hG4bK-j2",
                                         call_id="j2"), UDP, 0.0))
    clock.now = 11.0
    journal.record(e.handle(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-j2",
                                         call_id="j2"), UDP, 1.0))
    invite, cancel = list(journal)
    assert invite.codes == [180, 487] and invite.retransmitted == [False, False]
    assert (invite.outcome, invite.kind, invite.rule) == ("cancelled", "cancelled",
                                                          "rule 'ring' (#1)")
    assert cancel.codes == [200] and cancel.outcome == "CANCEL of a pending INVITE"
    # In the wire's order: the CANCEL, its 200, then the INVITE's 487.
    assert cancel.time < cancel.response_times[0] < invite.response_times[1]
    assert told == [(1, "entry"), (2, "entry"), (1, "update")]


def test_cancel_after_the_final_leaves_the_invite_as_it_was() -> None:
    e = Engine(parse_scenario(RINGING.replace("provisional = [180]\ndelay = 2.0\n", ""),
                              "<t>"))
    journal = Journal()
    journal.record(e.handle(make_request("INVITE", "sip:a@x", branch="z9hG4bK-j9",
                                         call_id="j9"), UDP, 0.0))
    journal.record(e.handle(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-j9",
                                         call_id="j9"), UDP, 0.1))
    invite, cancel = list(journal)
    assert invite.kind == "answered" and invite.codes == [200] and cancel.codes == [200]


def test_timer_g_retransmissions_are_journaled_as_retransmissions() -> None:
    """The client received the 200 three times: the entry shows three, the last two
    marked; ``codes`` (what the request was answered) stays [180, 200]."""
    e = Engine(parse_scenario(RINGING, "<t>"))
    clock = Clock(100.0)
    journal = Journal(clock=clock)
    updated: list[int] = []
    journal.update_listeners.append(lambda entry: updated.append(len(entry.responses)))
    journal.record(e.handle(make_request("INVITE", "sip:a@x", branch="z9hG4bK-g1",
                                         call_id="g1"), UDP, 0.0))
    for now in (2.0, 2.5, 3.5):  # the 200, then Timer G at T1 and 2*T1
        clock.now = 100.0 + now
        e.fire(now)
    [entry] = list(journal)
    assert entry.responses[1] == entry.responses[2] == entry.responses[3]
    assert entry.retransmitted == [False, False, True, True]
    assert entry.codes == [180, 200]
    assert entry.response_times == [100.000001, 102.0, 102.5, 103.5]
    assert updated == [2, 3, 4]
    journal.record(e.handle(make_request("ACK", "sip:a@x", branch="z9hG4bK-g1a",
                                         call_id="g1"), UDP, 3.6))
    e.fire(10.0)
    assert len(entry.responses) == 4  # the ACK ended Timer G


def test_a_retransmitted_request_answered_again_is_marked() -> None:
    e = Engine(parse_scenario(RINGING, "<t>"))
    journal = Journal()
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-r1", call_id="r1")
    journal.record(e.handle(invite, UDP, 0.0))
    journal.record(e.handle(invite, UDP, 0.5))
    first, again = list(journal)
    assert again.kind == "retransmission" and again.retransmitted == [True]
    assert again.responses == first.responses and again.codes == []
    assert first.retransmitted == [False]


def test_every_time_is_in_microseconds_and_in_the_wire_order() -> None:
    """uvloop's clock has whole milliseconds: the journal keeps its own, rounded to the
    microsecond, each stamp later than the last, so nothing ties or goes backwards."""
    e = Engine(parse_scenario(RINGING, "<t>"))
    clock = Clock(50.0000004)
    journal = Journal(clock=clock)
    options = make_request("OPTIONS", "sip:a@x", call_id="t1")
    journal.record(e.handle(options, UDP, 7.0))
    clock.now = 50.0123456789
    journal.record(e.handle(options, UDP, 7.0))  # the engine's clock has not moved
    clock.now = 49.0  # a clock that went back does not take the journal with it
    journal.record_answered(options, UDP, 7.0, e.scenario, e.scenario.default, b"x", None)
    first, second, third = list(journal)
    assert (first.time, first.response_times) == (50.0, [50.000001])
    assert (second.time, second.response_times) == (50.012346, [50.012347])
    assert (third.time, third.response_times) == (50.012348, [50.012349])
    assert third.retransmitted == [False]


def test_entry_fields_of_the_console() -> None:
    e = Engine(parse_scenario(RINGING, "<t>"))
    clock = Clock(1.0)
    journal = Journal(clock=clock)
    updated: list[JournalEntry] = []
    journal.update_listeners.append(updated.append)
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-j3", call_id="j3")
    journal.record(e.handle(invite, UDP, 1.0))
    clock.now = 1.5
    journal.record(e.handle(make_request("OPTIONS", "sip:a@x", call_id="o1"), UDP, 1.5))
    journal.record(e.handle(b"garbage\r\n\r\n", UDP, 1.6))
    ring, options, garbage = list(journal)
    assert (ring.local, ring.call_id, ring.cseq, ring.kind, ring.rule_number) == (
        UDP.local, "j3", "1 INVITE", "answered", 1)
    assert ring.response_times == [1.000001] and options.response_times == [1.500001]
    assert (options.rule_number, garbage.rule_number, garbage.kind) == (0, None, "dropped")
    assert updated == []
    clock.now = 3.0
    e.fire(3.0)
    assert updated == [ring] and ring.response_times == [1.000001, 3.0]
    assert journal.hits == {1: 1, 0: 1} and journal.hits_scenario is e.scenario


def test_hits_restart_with_another_scenario_and_clear_tells_its_listeners() -> None:
    journal = Journal()
    first = Engine(parse_scenario(RINGING, "<t>"))
    journal.record(first.handle(make_request("OPTIONS", "sip:a@x"), UDP, 0.0))
    second = Engine(parse_scenario(RINGING, "<t>"))
    journal.record(second.handle(make_request("INVITE", "sip:a@x"), UDP, 0.0))
    assert journal.hits == {1: 1} and journal.hits_scenario is second.scenario
    cleared: list[int] = []
    journal.clear_listeners.append(lambda: cleared.append(len(journal)))
    journal.clear()
    assert cleared == [0] and journal.hits == {1: 1}  # hits count since the scenario loaded


# -- queries (Query: the filter the Python API, the admin API and verify share) -----------
def _entry(uri: str = "sip:alice@[::1]:42005", headers: list[tuple[str, str]] | None = None,
           seq: int = 1) -> JournalEntry:
    return JournalEntry(seq, 0.0, "udp", ("::1", 5060), b"", method="INVITE", uri=uri,
                        headers=headers or [("User-Agent", "Phone [beta]")],
                        rule="rule 'busy' (#1)")


@pytest.mark.parametrize(("pattern", "matches"), [
    ("sip:alice@[::1]:42005", True),  # an IPv6 reference matches itself: '[' is literal
    ("sip:alice@[::1]*", True),
    ("sip:alice@[:]:42005", False),  # fnmatch would have read a character class here
    ("sip:alice@?::1]:42005", False),  # '?' is literal too
    ("sip:*", True),
    ("SIP:*", False),  # case-sensitive, as in scenarios
])
def test_uri_filter_uses_the_scenario_glob(pattern: str, matches: bool) -> None:
    assert Query.build(uri=pattern).matches(_entry()) is matches
    assert compile_glob(pattern).matches(_entry().uri or "") is matches


def test_header_filters_use_the_same_glob_and_both_shapes() -> None:
    entry = _entry()
    assert Query.build(headers={"user-agent": "Phone [beta]"}).matches(entry)
    assert Query.build(headers=["User-Agent:Phone [b*"]).matches(entry)
    assert not Query.build(headers={"User-Agent": "Phone [ab]eta]"}).matches(entry)
    assert not Query.build(headers={"X-Missing": "*"}).matches(entry)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"headers": "User-Agent:x"}, "headers: expected"),
    ({"headers": ["NoColon"]}, "Name:glob"),
    ({"headers": [":x"]}, "empty name"),
    ({"headers": {"User-Agent": 5}}, "both strings"),
    ({"method": ["INVITE"]}, "method: expected a string"),
    ({"uri": 5}, "uri: expected a string"),
    ({"since": "3"}, "since: expected a sequence number"),
    ({"since": True}, "since"),
])
def test_query_refuses_bad_shapes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(FilterError, match=message):
        Query.build(**kwargs)


def test_unknown_keys_are_named_with_the_valid_ones() -> None:
    check_keys(["method", "uri"], FILTERS)
    with pytest.raises(FilterError) as info:
        check_keys(["method", "metod"], FILTERS)
    assert str(info.value) == ("unknown filter 'metod' (did you mean 'method'?); valid: "
                               "method, uri, headers, rule, since, direction, code, dtmf")
    with pytest.raises(FilterError, match="unknown filter 'zzz'; valid: method"):
        check_keys(["zzz"], FILTERS)


def test_query_describe_and_since() -> None:
    assert Query.build().describe() == "anything"
    query = Query.build("INVITE", "sip:*", {"To": "*"}, "busy", 3)
    assert query.describe() == ("method='INVITE', uri='sip:*', headers={'To': '*'}, "
                                "rule='busy', since=3")
    assert not query.matches(_entry(headers=[("To", "x")], seq=3))
    assert query.matches(_entry(headers=[("To", "x")], seq=4))


def test_entries_carry_wall_clock_time_beside_the_monotonic_one() -> None:
    e = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    journal = Journal(wall_clock=lambda: 1_800_000_000.25, clock=Clock(7.0))
    journal.record(e.handle(make_request("OPTIONS", "sip:a@x"), UDP, 3.0))
    [entry] = list(journal)
    assert entry.time == 7.0
    assert entry.received_at == datetime(2027, 1, 15, 8, 0, 0, 250000, tzinfo=UTC)
    assert entry.received_at_text == "2027-01-15T08:00:00.250000Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-02T01:04:05.000000Z")


def test_call_id_in_its_compact_form_and_kind_read_off_the_entry() -> None:
    entry = JournalEntry(1, 0.0, "udp", ("::1", 5060), b"", headers=[("i", "abc")],
                         rule="rule #1", outcome="fault: truncated")
    assert (entry.call_id, entry.cseq, entry.kind) == ("abc", None, "fault")
    entry.outcome = "rule #1"
    assert entry.kind == "answered"


def test_the_first_module_names_still_import() -> None:
    # The journal moved out of testing/ (production --admin reads it); code that
    # imported it, or the failure text, from there keeps working.
    from sipresponder.journal import failure, record
    from sipresponder.testing import failure as old_failure
    from sipresponder.testing import journal as old_journal

    assert old_journal.Journal is record.Journal and old_journal.Query is record.Query
    assert old_failure.describe is failure.describe
