"""Requests the responder sent, in the journal (Journal.record_sent), their filters and
the ordered verification (journal/expect.py verify_sequence), sans I/O: fabricated
Exchanges, no far end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sipresponder.journal import expect
from sipresponder.journal.expect import VerifyFailed, follow, steps_of
from sipresponder.journal.failure import describe
from sipresponder.journal.record import FILTERS, FilterError, Journal, JournalEntry, Query
from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.uac.exchange import Exchange
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.outcome import KINDS
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ("127.0.0.1", 40000)
LOCAL = ("127.0.0.1", 5060)
UDP = Source("udp", CLIENT, LOCAL, 1)


RINGING = """
[[rule]]
name = "ring"
match = { method = "INVITE" }
provisional = [180]
delay = 2.0
code = 200
"""


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def response(code: int, reason: str, method: str = "BYE", call_id: str = "call-a") -> bytes:
    return (f"SIP/2.0 {code} {reason}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-s\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n").encode()


def sent(method: str = "BYE", call_id: str = "call-a", note: str = "rule 'hangup' (#1), step 1"
         ) -> Exchange:
    data = make_request(method, "sip:alice@127.0.0.1:40000", call_id=call_id, cseq=2,
                        via_host="127.0.0.1:5060", to_tag="theirs", from_tag="ours")
    return Exchange(data, method, "udp", CLIENT, LOCAL, call_id, note)


def received(journal: Journal, engine: Engine, method: str, call_id: str = "call-a",
             user: str = "alice") -> JournalEntry:
    journal.record(engine.handle(make_request(method, f"sip:{user}@127.0.0.1",
                                              call_id=call_id), UDP, 0.0))
    return list(journal)[-1]


def test_a_sent_request_is_an_entry_that_later_responses_reach() -> None:
    clock = Clock()
    journal = Journal(clock=clock)
    seen: list[JournalEntry] = []
    updated: list[JournalEntry] = []
    journal.listeners.append(seen.append)
    journal.update_listeners.append(updated.append)
    exchange = sent()
    journal.record_sent(exchange)
    [entry] = list(journal)
    assert seen == [entry] and entry.direction == "sent" and entry.kind == "sent"
    assert (entry.transport, entry.remote, entry.local, entry.raw) == (
        "udp", CLIENT, LOCAL, exchange.data)
    assert (entry.method, entry.uri, entry.call_id) == ("BYE", "sip:alice@127.0.0.1:40000",
                                                        "call-a")
    assert entry.rule is None and entry.outcome == "rule 'hangup' (#1), step 1"
    assert entry.responses == [] and entry.codes == [] and entry.time == 100.0
    clock.now = 100.5
    exchange.received(response(200, "OK"))
    exchange.received(response(200, "OK"), repeat=True)
    assert updated == [entry, entry]
    assert entry.codes == [200] and len(entry.responses) == 2
    assert entry.retransmission(1) and not entry.retransmission(0)
    assert entry.response_times == [100.5, 100.500001]  # stamped, later than the last


def test_a_sent_request_that_timed_out_says_so() -> None:
    journal = Journal()
    exchange = sent(note="admin API")
    journal.record_sent(exchange)
    exchange.ended("timed out (Timer F)")
    [entry] = list(journal)
    assert entry.outcome == "admin API; timed out (Timer F)" and entry.codes == []


def test_octets_that_do_not_parse_still_make_an_entry() -> None:
    journal = Journal()
    journal.record_sent(Exchange(b"\x00garbage", "INFO", "tcp", CLIENT, LOCAL, "c"))
    [entry] = list(journal)
    assert (entry.method, entry.uri, entry.headers, entry.direction) == (
        "INFO", None, [], "sent")


def test_sent_is_a_kind_and_received_entries_keep_theirs() -> None:
    assert "sent" in KINDS
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    entry = received(journal, engine, "OPTIONS")
    assert entry.direction == "received" and entry.kind == "answered"


def test_direction_and_code_filter() -> None:
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    options = received(journal, engine, "OPTIONS")
    exchange = sent()
    journal.record_sent(exchange)
    exchange.received(response(200, "OK"))
    bye = list(journal)[-1]
    assert Query.build(direction="sent").select(journal) == [bye]
    assert Query.build(direction="received").select(journal) == [options]
    assert Query.build(method="BYE", direction="sent", code=200).select(journal) == [bye]
    assert Query.build(code=481).select(journal) == []
    assert Query.build(code=200).select(journal) == [options, bye]
    assert FILTERS[-3:] == ("direction", "code", "dtmf")
    assert (Query.build(method="BYE", direction="sent", code=200).describe()
            == "method='BYE', direction='sent', code=200")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("direction", "out", "direction: expected 'received' or 'sent', got 'out'"),
    ("code", "200", "code: expected a status code 100-699, got '200'"),
    ("code", 99, "code: expected a status code 100-699, got 99"),
    ("code", True, "code: expected a status code 100-699, got True"),
])
def test_bad_direction_or_code_is_a_filter_error(key: str, value: object, message: str) -> None:
    with pytest.raises(FilterError) as failure:
        Query.build(**{key: value})  # type: ignore[arg-type]
    assert str(failure.value) == message


def test_query_of_a_dict_checks_its_keys() -> None:
    assert Query.of({"method": "BYE", "direction": "sent"}) == Query("BYE", direction="sent")
    with pytest.raises(FilterError, match="unknown filter 'directon'"):
        Query.of({"directon": "sent"})
    with pytest.raises(FilterError, match="step 2: expected a Query"):
        steps_of([{"method": "INVITE"}, "ACK"])
    with pytest.raises(FilterError, match="non-empty list"):
        steps_of([])


def test_listing_names_where_a_sent_request_went() -> None:
    journal = Journal()
    journal.record_sent(sent())
    assert "#1 sent to udp:127.0.0.1:40000 BYE sip:alice@127.0.0.1:40000 ->" in describe(
        list(journal))


# -- verify_sequence -------------------------------------------------------------------
def a_call(journal: Journal, engine: Engine, call_id: str, bye_code: int | None) -> None:
    """INVITE and ACK received, then a BYE sent (answered ``bye_code``)."""
    received(journal, engine, "INVITE", call_id)
    received(journal, engine, "ACK", call_id)
    exchange = sent(call_id=call_id)
    journal.record_sent(exchange)
    if bye_code is not None:
        exchange.received(response(bye_code, "X", call_id=call_id))


STEPS = [{"method": "INVITE"}, {"method": "ACK"},
         {"method": "BYE", "direction": "sent", "code": 200}]


async def no_wait(journal: Journal, query: Query, deadline: float,
                  done: expect.Done) -> list[JournalEntry]:
    found = query.select(journal)
    done(len(found))
    return found


def run(journal: Journal, steps: list[Query], call_id: str | None = None
        ) -> list[JournalEntry]:
    async def watcher(query: Query, deadline: float, done: expect.Done) -> list[JournalEntry]:
        return await no_wait(journal, query, deadline, done)

    return asyncio.run(expect.verify_sequence(journal, watcher, steps, call_id, 0.0))


def test_a_sequence_in_one_call_passes() -> None:
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    a_call(journal, engine, "one", 481)
    a_call(journal, engine, "two", 200)
    found = run(journal, steps_of(STEPS))
    assert [(e.method, e.call_id) for e in found] == [
        ("INVITE", "two"), ("ACK", "two"), ("BYE", "two")]
    assert run(journal, steps_of(STEPS), "two") == found
    progress = follow(journal, steps_of(STEPS), "one")
    assert [e.method for e in progress.matched] == ["INVITE", "ACK"]


def test_steps_spread_over_two_calls_do_not_pass() -> None:
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    received(journal, engine, "INVITE", "one")
    received(journal, engine, "ACK", "two")
    with pytest.raises(VerifyFailed) as failure:
        run(journal, steps_of([{"method": "INVITE"}, {"method": "ACK"}]))
    assert failure.value.headline == (
        "expected (method='INVITE') then (method='ACK') in one call within 0 s; "
        "call 'one' got to step 1 (#1 INVITE sip:alice@127.0.0.1), "
        "then step 2 (method='ACK') was not found after #1")


def test_a_failed_sequence_says_which_step_after_which_entry() -> None:
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    a_call(journal, engine, "one", 481)
    with pytest.raises(VerifyFailed) as failure:
        run(journal, steps_of(STEPS))
    exc = failure.value
    assert exc.headline == (
        "expected (method='INVITE') then (method='ACK') then "
        "(method='BYE', direction='sent', code=200) in one call within 0 s; "
        "call 'one' got to step 2 (#2 ACK sip:alice@127.0.0.1), then step 3 "
        "(method='BYE', direction='sent', code=200) was not found after #2; "
        "closest: #3 sent BYE sip:alice@127.0.0.1:40000 had codes [481], not 200")
    assert [e.method for e in exc.entries] == ["INVITE", "ACK"] and not exc.too_many
    lines = str(exc).splitlines()
    assert lines[1] == "call 'one' (--> received, <-- sent):"
    assert lines[2].startswith("  #1 --> INVITE sip:alice@127.0.0.1 -> ")
    assert lines[2].endswith("(step 1)")
    assert lines[4].startswith("  #3 <-- BYE sip:alice@127.0.0.1:40000 -> rule 'hangup'")
    assert lines[4].endswith("answered [481]")


def test_the_order_matters() -> None:
    journal = Journal()
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    a_call(journal, engine, "one", 200)
    with pytest.raises(VerifyFailed, match=r"step 2 \(method='INVITE'\) was not found after #2"):
        run(journal, steps_of([{"method": "ACK"}, {"method": "INVITE"}]))


def test_a_sequence_in_a_call_that_never_came_or_an_empty_journal() -> None:
    journal = Journal()
    with pytest.raises(VerifyFailed, match="in one call within 0 s; no call arrived at all"):
        run(journal, steps_of(STEPS))
    engine = Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    a_call(journal, engine, "one", 200)
    with pytest.raises(VerifyFailed, match="in call 'nope' within 0 s; no entry of that call"):
        run(journal, steps_of(STEPS), "nope")
    with pytest.raises(VerifyFailed) as failure:
        run(journal, steps_of([{"method": "REFER"}]))
    assert "; no call has step 1 (method='REFER'); closest: #1 INVITE" in failure.value.headline
    assert "the journal holds:" in str(failure.value)


def test_a_retransmitted_request_is_no_step() -> None:
    journal = Journal()
    engine = Engine(parse_scenario(RINGING, "<t>"))
    data = make_request("INVITE", "sip:a@127.0.0.1", call_id="r", branch="z9hG4bK-r")
    journal.record(engine.handle(data, UDP, 0.0))
    journal.record(engine.handle(data, UDP, 0.1))
    assert list(journal)[-1].kind == "retransmission"
    with pytest.raises(VerifyFailed, match=r"then step 2 .* was not found after #1"):
        run(journal, steps_of([{"method": "INVITE"}, {"method": "INVITE"}]))
