"""Stateful transactions without an engine: a fake responder, a fake clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from sipresponder.scenario.loader import parse_scenario
from sipresponder.scenario.model import ResponseSpec
from sipresponder.sip.headers import Via
from sipresponder.sip.message import Request, parse_request
from sipresponder.sip.response import Echo
from sipresponder.uas.events import Send, Source
from sipresponder.uas.limits import LimitLog
from sipresponder.uas.transactions import (
    TimerQueue,
    Transactions,
    dialog_key,
    transaction_key,
)
from tests.sipclient import make_request

UDP = Source("udp", ("192.0.2.1", 5070), ("192.0.2.9", 5060), 1)
TCP = Source("tcp", ("192.0.2.1", 5071), ("192.0.2.9", 5060), 7)
SCENARIO = parse_scenario(
    "[settings]\ntimer_t1 = 0.5\ntimer_t2 = 4.0\nmax_transactions = 2\n[default]\ncode = 200\n",
    "<test>",
)


def parse(data: bytes) -> Request:
    return parse_request(data, datagram=True)


class Harness:
    """Transactions whose responses are b"<code> <method>", so tests read them."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.txns = Transactions(SCENARIO, self.respond, self.counters, LimitLog())

    def respond(
        self, spec: ResponseSpec, code: int, request: Request, source: Source, via: Via,
        echo: Echo,
    ) -> Send:
        return Send(f"{code} {request.method}".encode(), source.transport, source.remote,
                    source.conn)

    def start(self, data: bytes, delays: list[tuple[float, int]], source: Source = UDP,
              now: float = 0.0) -> tuple[list[bytes], Request]:
        request = parse(data)
        steps = [(ResponseSpec(code, delay=delay), code) for delay, code in delays]
        echo = Echo(request, source.remote, SCENARIO.tag_key)
        sends, txn = self.txns.start(steps, request, source, request.top_via_lenient(), echo,
                                     now)
        assert txn is not None
        return [s.data for s in sends], request

    def fire_all(self, until: float) -> list[tuple[float, bytes]]:
        out = []
        while (deadline := self.txns.next_deadline()) is not None and deadline <= until:
            out += [(deadline, s.data) for s in self.txns.fire(deadline)]
        return out


def test_timer_g_doubles_up_to_t2_and_stops_at_64_t1() -> None:
    h = Harness()
    sent, _ = h.start(make_request("INVITE", "sip:a@x"), [(0.0, 486)])
    assert sent == [b"486 INVITE"]
    fired = h.fire_all(100.0)
    times = [t for t, _ in fired]
    # RFC 3261 17.2.1: T1, then doubling, capped at T2, until Timer H (64*T1) ends it.
    assert times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert all(data == b"486 INVITE" for _, data in fired)
    assert times[-1] <= 64 * 0.5
    assert h.counters["retransmissions"] == len(fired)
    assert len(h.txns) == 0 and not h.txns.by_dialog
    assert h.txns.next_deadline() is None


def test_ack_stops_retransmission_but_keeps_the_transaction() -> None:
    h = Harness()
    h.start(make_request("INVITE", "sip:a@x", call_id="ack-1"), [(0.0, 486)])
    assert h.fire_all(0.5) == [(0.5, b"486 INVITE")]
    h.txns.absorb_ack(parse(make_request("ACK", "sip:a@x", call_id="ack-1")))
    assert h.fire_all(31.9) == []
    assert len(h.txns) == 1  # still absorbs retransmitted INVITEs
    h.fire_all(32.0)
    assert len(h.txns) == 0


def test_no_timer_g_over_tcp_nor_for_non_invite() -> None:
    h = Harness()
    h.start(make_request("INVITE", "sip:a@x", transport="TCP"), [(0.0, 486)], TCP)
    h.start(make_request("MESSAGE", "sip:a@x"), [(0.0, 200)])
    assert h.fire_all(100.0) == []
    assert h.counters["retransmissions"] == 0 and len(h.txns) == 0


def test_steps_are_sent_after_their_cumulative_delays_with_100_trying() -> None:
    h = Harness()
    sent, _ = h.start(make_request("INVITE", "sip:a@x", transport="TCP"),
                      [(1.0, 180), (2.0, 200)], TCP)
    assert sent == [b"100 INVITE"]  # RFC 3261 17.2.1: the TU will not answer at once
    assert h.fire_all(10.0) == [(1.0, b"180 INVITE"), (3.0, b"200 INVITE")]


def test_responses_list_follows_the_transaction() -> None:
    h = Harness()
    data = make_request("INVITE", "sip:a@x", transport="TCP")
    h.start(data, [(0.0, 180), (2.0, 200)], TCP)
    txn = h.txns.table[transaction_key(parse(data), "INVITE")]
    assert txn.responses == [b"180 INVITE"]
    h.fire_all(2.0)
    assert txn.responses == [b"180 INVITE", b"200 INVITE"]


def test_each_later_response_tells_the_observer() -> None:
    h = Harness()
    data = make_request("INVITE", "sip:a@x", transport="TCP")
    h.start(data, [(0.0, 180), (2.0, 200)], TCP)
    txn = h.txns.table[transaction_key(parse(data), "INVITE")]
    told: list[int] = []
    txn.on_response = lambda: told.append(len(txn.responses))
    h.fire_all(5.0)
    assert told == [2] and txn.retransmitted == [False, False]


def test_timer_g_retransmissions_join_the_responses_marked() -> None:
    """The wire carries every Timer G retransmission: so does the transaction's list,
    each marked, and the observer hears of each one (before: only the first 200)."""
    h = Harness()
    data = make_request("INVITE", "sip:a@x", call_id="g-1")
    h.start(data, [(0.0, 180), (1.0, 200)])
    txn = h.txns.table[transaction_key(parse(data), "INVITE")]
    told: list[int] = []
    txn.on_response = lambda: told.append(len(txn.responses))
    assert [d for _, d in h.fire_all(3.5)] == [b"200 INVITE"] * 3  # at 1.0, 1.5, 2.5
    assert txn.responses == [b"180 INVITE"] + [b"200 INVITE"] * 3
    assert txn.retransmitted == [False, False, True, True]
    assert told == [2, 3, 4]
    assert txn.last is not None and txn.last.data == b"200 INVITE"
    h.txns.absorb_ack(parse(make_request("ACK", "sip:a@x", call_id="g-1")))
    assert h.fire_all(20.0) == [] and len(txn.responses) == 4


def test_retransmitted_request_gets_the_last_response() -> None:
    h = Harness()
    data = make_request("INVITE", "sip:a@x")
    h.start(data, [(0.0, 180), (5.0, 200)])
    again = parse(data)
    found = h.txns.match(again, UDP, again.top_via_lenient(), 1.0)
    assert found is not None
    sends, note, ended = found
    assert [s.data for s in sends] == [b"180 INVITE"]
    assert note.startswith("retransmission") and ended is None
    assert h.counters["retransmitted_requests"] == 1


def test_cancel_of_pending_invite_answers_200_and_487() -> None:
    h = Harness()
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-can", call_id="can")
    _, request = h.start(invite, [(0.0, 180), (5.0, 200)])
    cancel = parse(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-can",
                                        call_id="can"))
    txn = h.txns.table[transaction_key(request, "INVITE")]
    told: list[int] = []
    txn.on_response = lambda: told.append(len(txn.responses))
    found = h.txns.match(cancel, UDP, cancel.top_via_lenient(), 1.0)
    assert found is not None
    assert [s.data for s in found[0]] == [b"200 CANCEL", b"487 INVITE"]
    assert found[2] is txn and txn.cancelled
    assert txn.final_sent and txn.responses == [b"180 INVITE", b"487 INVITE"]
    # The 487 joined unannounced: the CANCEL's recorder announces it (Outcome.ended).
    assert told == []
    # The 200 step is cancelled; the 487 is retransmitted (Timer G) instead.
    assert h.fire_all(1.5) == [(1.5, b"487 INVITE")]
    assert txn.retransmitted == [False, False, True] and told == [3]


def test_cancel_after_the_final_only_gets_200() -> None:
    h = Harness()
    invite = make_request("INVITE", "sip:a@x", branch="z9hG4bK-late", call_id="late")
    h.start(invite, [(0.0, 486)])
    cancel = parse(make_request("CANCEL", "sip:a@x", branch="z9hG4bK-late",
                                        call_id="late"))
    found = h.txns.match(cancel, UDP, cancel.top_via_lenient(), 1.0)
    assert found is not None and [s.data for s in found[0]] == [b"200 CANCEL"]
    assert found[2] is None


def test_unrelated_request_matches_nothing() -> None:
    h = Harness()
    h.start(make_request("INVITE", "sip:a@x"), [(0.0, 180), (5.0, 200)])
    other = parse(make_request("CANCEL", "sip:a@x"))
    assert h.txns.match(other, UDP, other.top_via_lenient(), 1.0) is None


def test_max_transactions_answers_503_without_a_transaction() -> None:
    h = Harness()
    for _ in range(2):
        h.start(make_request("MESSAGE", "sip:a@x"), [(1.0, 200)])
    request = parse(make_request("MESSAGE", "sip:a@x"))
    echo = Echo(request, UDP.remote, SCENARIO.tag_key)
    sends, txn = h.txns.start([(ResponseSpec(200, delay=1.0), 200)], request, UDP,
                              request.top_via_lenient(), echo, 0.0)
    assert txn is None and [s.data for s in sends] == [b"503 MESSAGE"]


def test_keys_rfc3261_branch_and_rfc2543_fallback() -> None:
    modern = parse(make_request("INVITE", "sip:a@x", branch="z9hG4bK-k1"))
    assert transaction_key(modern, "INVITE") == ("z9hG4bK-k1", "127.0.0.1:5999", "INVITE")
    old = parse(make_request("INVITE", "sip:a@x", branch="1234", call_id="c@x"))
    key = transaction_key(old, "INVITE")
    assert key[0] == "c@x" and key[-1] == "INVITE"
    assert dialog_key(old) == ("c@x", "fromtag1", "1")


def test_timer_queue_orders_cancels_and_counts() -> None:
    q = TimerQueue()
    seen: list[str] = []

    def cb(name: str) -> Callable[[float], list[Send]]:
        def fire(now: float) -> list[Send]:
            seen.append(name)
            return []
        return fire

    q.add(2.0, cb("b"))
    first = q.add(1.0, cb("a"))
    q.add(3.0, cb("c"))
    q.cancel(first)
    assert len(q) == 2 and q.next_deadline() == 2.0
    q.fire(2.5)
    assert seen == ["b"] and q.next_deadline() == 3.0
    q.fire(3.0)
    assert seen == ["b", "c"] and q.next_deadline() is None
