"""RFC 3261 17.1 client transactions on a fake clock: every transition and timer, over
UDP (retransmitted) and TCP (never retransmitted), with lost copies."""

from __future__ import annotations

import random

import pytest

from sipresponder.sip.transports import Transport
from sipresponder.uac.responses import Response, parse_response
from sipresponder.uac.transactions import (
    Actions,
    ClientRequest,
    ClientTransactions,
    Destination,
    InviteClientTransaction,
    NonInviteClientTransaction,
    Received,
    Terminated,
    TimedOut,
    Timers,
    TooManyTransactions,
    TransportFailed,
    build_ack,
    new_branch,
)

BRANCH = "z9hG4bKfar1"
UDP = Destination("udp", ("127.0.0.1", 5070))
TCP = Destination("tcp", ("127.0.0.1", 5070), conn=7)


def request(method: str = "INVITE", branch: str = BRANCH, cseq: int = 1) -> ClientRequest:
    data = (
        f"{method} sip:alice@127.0.0.1:5070;transport=udp SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKbelow\r\n"
        "Max-Forwards: 70\r\n"
        "Route: <sip:p1.example.net;lr>\r\n"
        "Route: <sip:p2.example.net;lr>\r\n"
        "From: \"Far End\" <sip:far@127.0.0.1>;tag=ft1\r\n"
        "To: <sip:alice@127.0.0.1>\r\n"
        "Call-ID: c1@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:far@127.0.0.1:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        "Content-Length: 4\r\n\r\nv=0\n"
    ).encode()
    return ClientRequest(data, method, branch, cseq)


def response(code: int, method: str = "INVITE", branch: str = BRANCH, cseq: int = 1,
             to_tag: str | None = "tt9") -> Response:
    tag = f";tag={to_tag}" if to_tag else ""
    return parse_response((
        f"SIP/2.0 {code} Whatever\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport=5060;received=127.0.0.1\r\n"
        "From: \"Far End\" <sip:far@127.0.0.1>;tag=ft1\r\n"
        f"To: <sip:alice@127.0.0.1>{tag}\r\n"
        "Call-ID: c1@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode())


def sends_until(txns: ClientTransactions, end: float) -> tuple[list[float], Actions]:
    """Run the fake clock to ``end``, deadline by deadline: when each send left, and
    everything that happened."""
    times: list[float] = []
    out = Actions()
    while (deadline := txns.next_deadline()) is not None and deadline <= end:
        actions = txns.fire(deadline)
        times.extend(deadline for _ in actions.sends)
        out.extend(actions)
    return times, out


# -- INVITE client transaction (17.1.1) -----------------------------------------------------


def test_invite_over_udp_retransmits_doubling_from_t1_then_times_out_with_timer_b() -> None:
    txns = ClientTransactions()
    first = txns.start(request(), UDP, 0.0)
    assert [s.data for s in first.sends] == [request().data]
    assert first.sends[0].transport == "udp" and first.sends[0].remote == UDP.remote
    assert txns.get(request().key).state == "calling"  # type: ignore[union-attr]
    times, out = sends_until(txns, 100.0)
    # Timer A: 0.5, 1, 2, 4, 8, 16 s apart; Timer B (64*T1 = 32 s) ends it.
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(s.data == request().data for s in out.sends)
    assert out.events == [TimedOut(request().key, "B"), Terminated(request().key)]
    assert out.events[0].status == 408  # type: ignore[union-attr]
    assert len(txns) == 0 and txns.next_deadline() is None


def test_invite_over_tcp_is_never_retransmitted_and_times_out_at_64_t1() -> None:
    txns = ClientTransactions()
    assert len(txns.start(request(), TCP, 0.0).sends) == 1
    assert txns.next_deadline() == 32.0
    times, out = sends_until(txns, 100.0)
    assert times == []
    assert out.events == [TimedOut(request().key, "B"), Terminated(request().key)]


def test_invite_timers_follow_t1() -> None:
    txns = ClientTransactions(Timers(t1=0.1))
    txns.start(request(), UDP, 10.0)
    times, out = sends_until(txns, 100.0)
    assert times == pytest.approx([10.1, 10.3, 10.7, 11.5, 13.1, 16.3])
    assert out.events[0] == TimedOut(request().key, "B")
    assert txns.next_deadline() is None


def test_invite_lost_copies_then_180_stops_timer_a_and_timer_b() -> None:
    """The first three copies are 'dropped' (no answer); the fourth gets a 180."""
    txns = ClientTransactions()
    txns.start(request(), UDP, 0.0)
    times, _ = sends_until(txns, 3.5)
    assert times == [0.5, 1.5, 3.5]
    ringing = txns.receive(response(180, to_tag=None), 3.6)
    assert ringing is not None
    assert ringing.sends == [] and ringing.events == [Received(request().key, response(180,
                                                                                      to_tag=None))]
    assert txns.get(request().key).state == "proceeding"  # type: ignore[union-attr]
    # Proceeding: no retransmission, no Timer B; it waits for the final.
    assert txns.next_deadline() is None
    assert txns.fire(1000.0) == Actions()
    again = txns.receive(response(183), 5.0)
    assert again is not None and [type(e) for e in again.events] == [Received]


def test_invite_2xx_goes_up_enters_accepted_and_2xx_retransmissions_go_up_until_timer_m(
) -> None:
    txns = ClientTransactions()
    txns.start(request(), UDP, 0.0)
    ok = txns.receive(response(200), 0.2)
    assert ok is not None
    assert ok.sends == []  # the ACK of a 2xx is the dialog's
    assert ok.events == [Received(request().key, response(200))]
    assert txns.get(request().key).state == "accepted"  # type: ignore[union-attr]
    assert txns.next_deadline() == pytest.approx(0.2 + 32.0)  # Timer M, no more Timer A
    again = txns.receive(response(200), 1.0)
    assert again is not None and again.events == [Received(request().key, response(200))]
    late = txns.receive(response(486), 1.5)  # a non-2xx after a 2xx: absorbed
    assert late == Actions()
    times, out = sends_until(txns, 100.0)
    assert times == [] and out.events == [Terminated(request().key)]
    assert txns.receive(response(200), 40.0) is None  # now a stray, for the core


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_invite_non_2xx_final_is_acked_by_the_transaction(transport: Transport) -> None:
    dest = UDP if transport == "udp" else TCP
    txns = ClientTransactions()
    txns.start(request(), dest, 0.0)
    txns.receive(response(100, to_tag=None), 0.1)
    busy = txns.receive(response(486), 0.3)
    assert busy is not None
    assert busy.events[0] == Received(request().key, response(486))
    assert len(busy.sends) == 1
    ack = busy.sends[0]
    assert ack.data.startswith(b"ACK ")
    assert (ack.transport, ack.remote, ack.conn) == (dest.transport, dest.remote, dest.conn)
    if transport == "tcp":
        # Timer D is 0 over reliable transports: over at once.
        assert busy.events[1:] == [Terminated(request().key)]
        assert len(txns) == 0
        return
    txn = txns.get(request().key)
    assert txn is not None and txn.state == "completed"
    assert txns.next_deadline() == pytest.approx(0.3 + 32.0)  # Timer D
    # A retransmitted 486 gets the same ACK again and does not go up.
    repeat = txns.receive(response(486), 1.0)
    assert repeat is not None and repeat.events == [] and [s.data for s in repeat.sends] == [
        ack.data]
    times, out = sends_until(txns, 100.0)
    assert times == [] and out.events == [Terminated(request().key)]


def test_ack_for_486_field_by_field_per_17_1_1_3() -> None:
    ack = build_ack(request().data, 1, response(486)).decode()
    head, _, body = ack.partition("\r\n\r\n")
    assert body == ""
    lines = head.split("\r\n")
    # Same Request-URI as the INVITE.
    assert lines[0] == "ACK sip:alice@127.0.0.1:5070;transport=udp SIP/2.0"
    fields = [(name, value) for name, _, value in (line.partition(": ") for line in lines[1:])]
    names = [name for name, _ in fields]
    by_name = dict(fields)
    # Only the single top Via of the request, with its branch.
    assert [v for n, v in fields if n == "Via"] == [
        f"SIP/2.0/UDP 127.0.0.1:5060;branch={BRANCH};rport"]
    # The Route header fields of the request, in order.
    assert [v for n, v in fields if n == "Route"] == [
        "<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    assert by_name["From"] == "\"Far End\" <sip:far@127.0.0.1>;tag=ft1"
    # The To of the response, with its tag.
    assert by_name["To"] == "<sip:alice@127.0.0.1>;tag=tt9"
    assert by_name["Call-ID"] == "c1@127.0.0.1"
    # The CSeq number of the INVITE, method ACK.
    assert by_name["CSeq"] == "1 ACK"
    assert by_name["Max-Forwards"] == "70"
    assert by_name["Content-Length"] == "0"
    assert "Contact" not in names and "Content-Type" not in names
    assert names.count("Via") == 1


def test_ack_keeps_the_invite_cseq_number() -> None:
    ack = build_ack(request(cseq=42).data, 42, response(603, cseq=42))
    assert b"\r\nCSeq: 42 ACK\r\n" in ack


# -- non-INVITE client transaction (17.1.2) -------------------------------------------------


def test_non_invite_over_udp_doubles_up_to_t2_then_times_out_with_timer_f() -> None:
    bye = request("BYE", cseq=2)
    txns = ClientTransactions()
    txns.start(bye, UDP, 0.0)
    assert txns.get(bye.key).state == "trying"  # type: ignore[union-attr]
    times, out = sends_until(txns, 100.0)
    # Timer E: 0.5, 1, 2, then T2 = 4 s apart; Timer F at 64*T1 = 32 s.
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert out.events == [TimedOut(bye.key, "F"), Terminated(bye.key)]
    assert out.events[0].status == 408  # type: ignore[union-attr]
    assert len(txns) == 0


def test_non_invite_over_tcp_is_never_retransmitted() -> None:
    bye = request("BYE", cseq=2)
    txns = ClientTransactions()
    txns.start(bye, TCP, 0.0)
    times, out = sends_until(txns, 100.0)
    assert times == [] and out.events == [TimedOut(bye.key, "F"), Terminated(bye.key)]


def test_non_invite_provisional_moves_to_proceeding_and_timer_e_continues_at_t2() -> None:
    """Two copies lost, then a 100 Trying: retransmissions go on, every T2."""
    info = request("INFO", cseq=3)
    txns = ClientTransactions()
    txns.start(info, UDP, 0.0)
    times, _ = sends_until(txns, 1.5)
    assert times == [0.5, 1.5]
    trying = txns.receive(response(100, "INFO", cseq=3, to_tag=None), 1.6)
    assert trying is not None and [type(e) for e in trying.events] == [Received]
    assert txns.get(info.key).state == "proceeding"  # type: ignore[union-attr]
    # The pending Timer E (set at 1.5 for 2 s) fires at 3.5; from then on T2 apart.
    times, _ = sends_until(txns, 12.0)
    assert times == [3.5, 7.5, 11.5]


@pytest.mark.parametrize("code", [200, 481, 503])
def test_non_invite_final_over_udp_completes_and_timer_k_absorbs(code: int) -> None:
    bye = request("BYE", cseq=2)
    txns = ClientTransactions()
    txns.start(bye, UDP, 0.0)
    sends_until(txns, 0.5)
    final = txns.receive(response(code, "BYE", cseq=2), 0.7)
    assert final is not None and final.sends == []
    assert final.events == [Received(bye.key, response(code, "BYE", cseq=2))]
    assert txns.get(bye.key).state == "completed"  # type: ignore[union-attr]
    assert txns.next_deadline() == pytest.approx(0.7 + 5.0)  # Timer K = T4, no more E
    assert txns.receive(response(code, "BYE", cseq=2), 1.0) == Actions()
    times, out = sends_until(txns, 100.0)
    assert times == [] and out.events == [Terminated(bye.key)]
    assert len(txns) == 0


def test_non_invite_final_over_tcp_terminates_at_once() -> None:
    bye = request("BYE", cseq=2)
    txns = ClientTransactions()
    txns.start(bye, TCP, 0.0)
    final = txns.receive(response(200, "BYE", cseq=2), 0.1)
    assert final is not None
    assert final.events == [Received(bye.key, response(200, "BYE", cseq=2)),
                            Terminated(bye.key)]
    assert len(txns) == 0 and txns.next_deadline() is None


@pytest.mark.parametrize("name", ["t1", "t2", "t4", "d"])
def test_timers_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=f"timer {name} must be a positive"):
        Timers(**{name: 0.0})


def test_timer_k_follows_t4() -> None:
    bye = request("BYE", cseq=2)
    txns = ClientTransactions(Timers(t4=2.5))
    txns.start(bye, UDP, 0.0)
    txns.receive(response(200, "BYE", cseq=2), 0.1)
    assert txns.next_deadline() == pytest.approx(2.6)


# -- transport errors (17.1.4) --------------------------------------------------------------


@pytest.mark.parametrize("method", ["INVITE", "BYE"])
def test_transport_error_terminates_and_tells_the_tu(method: str) -> None:
    req = request(method)
    txns = ClientTransactions()
    txns.start(req, TCP, 0.0)
    out = txns.transport_error(req.key, "connection refused")
    assert out.events == [TransportFailed(req.key, "connection refused"), Terminated(req.key)]
    assert out.events[0].status == 503  # type: ignore[union-attr]
    assert len(txns) == 0 and txns.next_deadline() is None
    assert txns.transport_error(req.key, "again") == Actions()


def test_transport_error_on_a_lone_transaction() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), UDP)
    txn.start(0.0)
    assert [type(e) for e in txn.transport_error("ICMP port unreachable").events] == [
        TransportFailed, Terminated]
    assert txn.transport_error("again") == Actions()
    assert txn.fire(100.0) == Actions()


# -- matching (17.1.3) and the table --------------------------------------------------------


def test_response_to_cancel_matches_the_cancel_not_the_invite() -> None:
    txns = ClientTransactions()
    invite = request("INVITE")
    cancel = ClientRequest(request("CANCEL").data, "CANCEL", BRANCH, 1)
    txns.start(invite, UDP, 0.0)
    txns.start(cancel, UDP, 0.1)
    ok = txns.receive(response(200, "CANCEL"), 0.2)
    assert ok is not None and ok.events == [Received(cancel.key, response(200, "CANCEL"))]
    assert txns.get(cancel.key).state == "completed"  # type: ignore[union-attr]
    assert txns.get(invite.key).state == "calling"  # type: ignore[union-attr]
    terminated = txns.receive(response(487, "INVITE"), 0.3)
    assert terminated is not None and terminated.sends[0].data.startswith(b"ACK ")
    assert txns.get(invite.key).state == "completed"  # type: ignore[union-attr]


def test_unmatched_and_unparseable_responses_are_strays() -> None:
    txns = ClientTransactions()
    txns.start(request(), UDP, 0.0)
    assert txns.receive(response(200, branch="z9hG4bKother"), 0.1) is None
    assert txns.receive(response(200, "BYE"), 0.1) is None
    assert txns.receive(b"garbage", 0.1) is None
    assert txns.receive(b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n", 0.1) is None
    # The octets route as the parsed response does.
    raw = txns.receive(response(180).raw, 0.2)
    assert raw is not None and [type(e) for e in raw.events] == [Received]


def test_every_truncation_and_corruption_of_a_response_is_handled() -> None:
    """Bad input never crashes: a response cut anywhere, or with one octet changed,
    is either routed or a stray (None)."""
    whole = response(486).raw
    for end in range(len(whole) + 1):
        txns = ClientTransactions()
        txns.start(request(), UDP, 0.0)
        txns.receive(whole[:end], 0.1)
    for at in range(len(whole)):
        for octet in (0, 0x0A, 0x0D, 0x3A, 0x3B, 0xFF):
            txns = ClientTransactions()
            txns.start(request(), UDP, 0.0)
            txns.receive(whole[:at] + bytes([octet]) + whole[at + 1:], 0.1)


def test_the_table_is_bounded_and_refuses_bad_requests() -> None:
    txns = ClientTransactions(max_transactions=2)
    txns.start(request(branch="z9hG4bKa"), UDP, 0.0)
    txns.start(request("BYE", branch="z9hG4bKb"), UDP, 0.0)
    with pytest.raises(TooManyTransactions, match=r"limit \(2\) reached"):
        txns.start(request(branch="z9hG4bKc"), UDP, 0.0)
    txns.receive(response(200, "BYE", branch="z9hG4bKb"), 0.1)
    txns.fire(0.1 + 5.0)  # Timer K frees a place
    txns.start(request(branch="z9hG4bKc"), UDP, 6.0)
    big = ClientTransactions()
    with pytest.raises(ValueError, match="magic cookie"):
        big.start(request(branch="old1"), UDP, 0.0)
    with pytest.raises(ValueError, match="outside any client transaction"):
        big.start(request("ACK"), UDP, 0.0)
    with pytest.raises(ValueError, match="do not start with its method"):
        big.start(ClientRequest(request().data, "BYE", BRANCH, 1), UDP, 0.0)
    big.start(request(), UDP, 0.0)
    with pytest.raises(ValueError, match="already live"):
        big.start(request(), UDP, 0.0)


def test_the_table_interleaves_the_timers_of_many_transactions() -> None:
    txns = ClientTransactions()
    txns.start(request(branch="z9hG4bKa"), UDP, 0.0)
    txns.start(request("OPTIONS", branch="z9hG4bKb"), UDP, 0.25)
    txns.start(request("MESSAGE", branch="z9hG4bKc"), TCP, 0.3)
    order: list[tuple[float, bytes]] = []
    while (deadline := txns.next_deadline()) is not None and deadline <= 4.0:
        order.extend((deadline, s.data.split(b" ", 1)[0]) for s in txns.fire(deadline).sends)
    assert order == [(0.5, b"INVITE"), (0.75, b"OPTIONS"), (1.5, b"INVITE"),
                     (1.75, b"OPTIONS"), (3.5, b"INVITE"), (3.75, b"OPTIONS")]
    # A clock that jumps fires everything due at once, in one call.
    out = txns.fire(1000.0)
    assert {e.key for e in out.events if isinstance(e, TimedOut)} == {
        ("z9hG4bKa", "INVITE"), ("z9hG4bKb", "OPTIONS"), ("z9hG4bKc", "MESSAGE")}
    assert len(txns) == 0 and txns.next_deadline() is None


def test_retransmitted_responses_do_not_grow_the_timer_heap() -> None:
    txns = ClientTransactions()
    txns.start(request("BYE"), UDP, 0.0)
    txns.receive(response(200, "BYE"), 0.1)
    for i in range(1000):
        txns.receive(response(200, "BYE"), 0.2 + i / 10_000)
    assert len(txns._heap) <= 3


def test_a_stalled_clock_gets_one_late_copy_not_a_burst() -> None:
    txns = ClientTransactions()
    txns.start(request("OPTIONS"), UDP, 0.0)
    late = txns.fire(10.0)  # Timer E was due at 0.5
    assert len(late.sends) == 1 and late.events == []
    assert txns.next_deadline() == pytest.approx(11.0)  # doubled, counted from now
    out = txns.fire(1000.0)  # past Timer F (32 s): one copy, then the timeout
    assert len(out.sends) == 1
    assert [type(e) for e in out.events] == [TimedOut, Terminated]


def test_lone_invite_transaction_without_a_table() -> None:
    txn = InviteClientTransaction(request(), UDP)
    assert len(txn.start(0.0).sends) == 1
    assert txn.next_deadline() == 0.5
    assert txn.fire(0.4) == Actions()
    assert len(txn.fire(0.5).sends) == 1
    assert txn.next_deadline() == 1.5


# -- branches and responses -----------------------------------------------------------------


def test_new_branch_has_the_magic_cookie_and_follows_the_random_source() -> None:
    first = new_branch(random.Random(1))
    assert first.startswith("z9hG4bK") and len(first) == 7 + 16
    assert first == new_branch(random.Random(1))
    rng = random.Random(2)
    assert len({new_branch(rng) for _ in range(1000)}) == 1000


@pytest.mark.parametrize(("data", "cause"), [
    (b"", "Status-Line"),
    (b"INVITE sip:a@b SIP/2.0\r\n\r\n", "Status-Line"),
    (b"SIP/2.0 20 OK\r\n\r\n", "Status-Code"),
    (b"SIP/2.0 800 Odd\r\n\r\n", "outside 100-699"),
    (b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n", "no Via"),
    (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=x\r\nCSeq: 1 INVITE\r\n\r\n", "branch"),
    (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n\r\n", "no CSeq"),
    (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nCSeq: x\r\n\r\n", "CSeq"),
    (b"SIP/2.0 200 OK\r\nVia: \xff\r\nCSeq: 1 INVITE\r\n\r\n", "Via"),
])
def test_malformed_responses_raise_one_line_naming_the_cause(data: bytes, cause: str) -> None:
    with pytest.raises(ValueError, match=cause) as info:
        parse_response(data)
    assert "\n" not in str(info.value)


def test_parse_response_reads_folding_compact_names_and_the_body() -> None:
    parsed = parse_response(
        b"SIP/2.0 183 Session Progress\r\n"
        b"v: SIP/2.0/TCP h:5060\r\n ;branch=z9hG4bKq\r\n"
        b"CSeq: 5 INVITE\r\nt: <sip:a@b>;tag=x\r\nl: 3\r\nnot a header\r\n\r\nabcdef")
    assert (parsed.status, parsed.reason, parsed.branch, parsed.cseq) == (
        183, "Session Progress", "z9hG4bKq", (5, "INVITE"))
    assert parsed.get("To") == "<sip:a@b>;tag=x"
    assert parsed.body == b"abc" and parsed.provisional


def test_response_values_split_list_headers_in_order() -> None:
    parsed = parse_response(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKq\r\nCSeq: 1 INVITE\r\n"
        b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n"
        b"m: <sip:alice@10.0.0.1:5062>\r\n\r\n")
    assert parsed.values("record-route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert parsed.values("Contact") == ["<sip:alice@10.0.0.1:5062>"]
    assert parsed.values("Route") == [] and parsed.get("Route") is None
    assert not parsed.provisional
