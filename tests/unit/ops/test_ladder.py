"""The ladder model: lanes per peer, calls by Call-ID, arrows in time order with their
labels, classes, deltas and outcomes."""

from __future__ import annotations

from typing import Any

from sipresponder.journal.record import JournalEntry
from sipresponder.ops.ladder import ladder, status_line
from tests.unit.ops.exchanges import (
    CANCEL_FRAMES,
    HANGUP_FRAMES,
    TIMER_G_FRAMES,
    Frame,
    cancelled_call,
    hangup_call,
    timer_g_call,
)

PEER = ("127.0.0.1", 40000)
# A kind as the journal has it: the outcome's note and the matched rule's label.
NOTES: dict[str, tuple[str | None, str | None]] = {
    "answered": (None, "rule #1"),
    "absorbed": ("ACK absorbed", None),
    "not-answered": ("not answered", "rule #1"),
    "retransmission": ("retransmission: the last response again", None),
    "rejected": ("rejected: 400 Missing Call-ID", None),
    "dropped": ("dropped: not a request (garbage)", None),
    "fault": ("fault: random-bytes", "rule #1"),
}
LOCAL = ("127.0.0.1", 5060)


def response(code: int, reason: str) -> bytes:
    return f"SIP/2.0 {code} {reason}\r\nContent-Length: 0\r\n\r\n".encode()


def entry(seq: int, method: str | None, call_id: str | None, time: float,
          responses: list[tuple[bytes, float]] = (), kind: str = "answered",  # type: ignore[assignment]
          transport: str = "udp", remote: tuple[str, int] = PEER,
          uri: str = "sip:486@127.0.0.1") -> JournalEntry:
    note, rule = NOTES[kind]
    return JournalEntry(
        seq, time, transport, remote, b"x", method=method, uri=uri if method else None,
        headers=[("Call-ID", call_id)] if call_id else [], rule=rule,
        outcome=note or rule or "", local=LOCAL, responses=[r for r, _ in responses],
        response_times=[t for _, t in responses])


def rows(model: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(a["id"], a["from"], a["to"], a["label"], a["class"], a["outcome"])
            for a in model["arrows"]]


def test_a_busy_call_then_options_on_two_transports() -> None:
    entries = [
        entry(1, "INVITE", "c1", 10.0, [(response(100, "Trying"), 10.0),
                                        (response(486, "Busy Here"), 10.5)]),
        entry(2, "ACK", "c1", 10.6, kind="absorbed"),
        entry(3, "OPTIONS", "c2", 11.0, [(response(200, "OK"), 11.0)], transport="tcp",
              remote=("::1", 40001), uri="sip:a@[::1]"),
    ]
    model = ladder(entries)
    assert model["lanes"] == [
        {"id": "udp:127.0.0.1:40000", "kind": "peer", "label": "127.0.0.1:40000 (UDP)"},
        {"id": "tcp:[::1]:40001", "kind": "peer", "label": "[::1]:40001 (TCP)"},
        {"id": "responder", "kind": "responder",
         "label": "sipresponder 127.0.0.1:5060 (UDP), 127.0.0.1:5060 (TCP)"},
    ]
    udp = "udp:127.0.0.1:40000"
    assert rows(model) == [
        ("1.0", udp, "responder", "INVITE sip:486@127.0.0.1", "request", "answered"),
        ("1.1", "responder", udp, "100 Trying", "provisional", "answered"),
        ("1.2", "responder", udp, "486 Busy Here", "client-error", "answered"),
        ("2.0", udp, "responder", "ACK sip:486@127.0.0.1", "absorbed", "absorbed"),
        ("3.0", "tcp:[::1]:40001", "responder", "OPTIONS sip:a@[::1]", "request", "answered"),
        ("3.1", "responder", "tcp:[::1]:40001", "200 OK", "success", "answered"),
    ]
    assert [round(a["delta"], 6) for a in model["arrows"]] == [0, 0, 0.5, 0.1, 0.4, 0]
    assert [a["response_index"] for a in model["arrows"]] == [None, 0, 1, None, None, 0]
    assert model["calls"] == [
        {"call_id": "c1", "first": 10.0, "last": 10.6, "entries": [1, 2],
         "summary": "INVITE -> 100, 486; ACK"},
        {"call_id": "c2", "first": 11.0, "last": 11.0, "entries": [3],
         "summary": "OPTIONS -> 200"},
    ]


def test_arrows_are_in_time_order_when_a_late_final_follows_other_calls() -> None:
    entries = [
        entry(1, "INVITE", "slow", 1.0, [(response(180, "Ringing"), 1.0),
                                        (response(200, "OK"), 3.0)]),
        entry(2, "OPTIONS", "quick", 2.0, [(response(200, "OK"), 2.0)]),
    ]
    assert [a["id"] for a in ladder(entries)["arrows"]] == ["1.0", "1.1", "2.0", "2.1", "1.2"]


def test_outcomes_without_an_answer_and_rejections() -> None:
    entries = [
        entry(1, "INVITE", "c", 1.0, kind="not-answered"),
        entry(2, "INVITE", "c", 1.5, [(response(200, "OK"), 1.5)], kind="retransmission"),
        entry(3, "OPTIONS", "d", 2.0, [(response(400, "Missing Call-ID"), 2.0)],
              kind="rejected"),
        entry(4, None, None, 3.0, kind="dropped"),
        entry(5, "INVITE", "e", 4.0, [(b"\x00garbage", 4.0)], kind="fault"),
    ]
    model = ladder(entries)
    assert [(a["label"], a["class"], a["outcome"]) for a in model["arrows"]] == [
        ("INVITE sip:486@127.0.0.1", "request", "not-answered"),
        ("INVITE sip:486@127.0.0.1", "retransmission", "retransmission"),
        ("200 OK", "retransmission", "retransmission"),
        ("OPTIONS sip:486@127.0.0.1", "request", "rejected"),
        ("400 Missing Call-ID", "rejected", "rejected"),
        ("(not a request, 1 octets)", "request", "dropped"),
        ("INVITE sip:486@127.0.0.1", "request", "fault"),
        ("(malformed response, 8 octets)", "server-error", "fault"),
    ]
    assert [(c["call_id"], c["summary"]) for c in model["calls"]] == [
        ("c", "INVITE (not-answered)"), ("d", "OPTIONS -> 400"), (None, "? (dropped)"),
        ("e", "INVITE (fault)")]


def test_every_code_class_and_an_empty_journal() -> None:
    classes = {code: ladder([entry(1, "OPTIONS", "c", 1.0, [(response(code, "X"), 1.0)])])
               ["arrows"][1]["class"] for code in (100, 200, 302, 404, 503, 603)}
    assert classes == {100: "provisional", 200: "success", 302: "redirect",
                       404: "client-error", 503: "server-error", 603: "global-error"}
    assert ladder([]) == {"lanes": [{"id": "responder", "kind": "responder",
                                     "label": "sipresponder"}], "calls": [], "arrows": []}


def test_entries_have_the_kind_their_note_says() -> None:
    for kind in NOTES:
        assert entry(1, "INVITE", "c", 0.0, kind=kind).kind == kind


def test_status_line() -> None:
    assert status_line(b"SIP/2.0 486 Busy Here\r\n\r\n") == (486, "486 Busy Here")
    assert status_line(b"SIP/2.0 200\r\n") == (200, "200")
    assert status_line(b"SIP/2.0 2000 OK\r\n")[0] is None
    assert status_line(b"HTTP/1.1 200 OK\r\n")[0] is None


def frames(model: dict[str, Any]) -> list[Frame]:
    """(from the peer?, method or code, CSeq) of each arrow, as a capture lists frames."""
    by_seq: dict[int, str] = {}
    out: list[Frame] = []
    for arrow in model["arrows"]:
        label = arrow["label"].split(" ", 1)[0]
        if arrow["response_index"] is None:
            by_seq[arrow["seq"]] = label
        cseq = "1 " + (by_seq[arrow["seq"]] if arrow["response_index"] is None
                       else _method_of(model, arrow))
        out.append((arrow["from"] != "responder", label, cseq))
    return out


def _method_of(model: dict[str, Any], arrow: dict[str, Any]) -> str:
    """A response's CSeq method: its request's (a CANCEL's 487 would say INVITE only if
    it were on the INVITE's entry, which is the point)."""
    request = next(a for a in model["arrows"]
                   if a["seq"] == arrow["seq"] and a["response_index"] is None)
    return str(request["label"].split(" ", 1)[0])


def test_a_cancelled_call_has_the_frames_of_the_wire() -> None:
    """Six frames, the 487 once and after the CANCEL's 200 (it was drawn twice, the
    first before the CANCEL); the INVITE's badge reads cancelled."""
    model = ladder(cancelled_call())
    assert frames(model) == CANCEL_FRAMES
    assert [a["outcome"] for a in model["arrows"] if a["seq"] == 1] == ["cancelled"] * 3
    assert [a["class"] for a in model["arrows"]] == [
        "request", "provisional", "request", "success", "client-error", "absorbed"]
    assert [c["summary"] for c in model["calls"]] == ["INVITE -> 180, 487; CANCEL -> 200; ACK"]
    times = [a["time"] for a in model["arrows"]]
    assert times == sorted(times) and len(set(times)) == len(times)


def test_timer_g_retransmissions_are_arrows_of_their_own() -> None:
    model = ladder(timer_g_call())
    assert frames(model) == TIMER_G_FRAMES
    assert [(a["class"], a["retransmission"]) for a in model["arrows"]] == [
        ("request", False), ("provisional", False), ("success", False),
        ("retransmission", True), ("retransmission", True), ("absorbed", False)]
    assert [round(a["delta"], 6) for a in model["arrows"]][3:] == [0.499998, 1.0, 0.1]
    assert [c["summary"] for c in model["calls"]] == ["INVITE -> 180, 200; ACK"]


def test_a_retransmitted_request_and_its_answer_are_marked() -> None:
    again = entry(2, "INVITE", "c", 1.5, [(response(200, "OK"), 1.5)], kind="retransmission")
    again.retransmitted = [True]
    arrows = ladder([again])["arrows"]
    assert [(a["class"], a["retransmission"]) for a in arrows] == [
        ("retransmission", True), ("retransmission", True)]


def test_a_sent_request_goes_from_the_responder_and_its_answer_comes_back() -> None:
    """The far end's BYE: the arrow leaves the responder's lane for the peer's, the
    client's 200 comes back; both are marked sent and the call's summary says so."""
    model = ladder(hangup_call())
    assert [(a["from"] == "udp:127.0.0.1:40000", a["label"].split(" ")[0], a["sent"])
            for a in model["arrows"]] == [
        (True, "INVITE", False), (False, "200", False), (True, "ACK", False),
        (False, "BYE", True), (True, "200", True)]
    bye, ok = model["arrows"][3:]
    assert (bye["from"], bye["to"], bye["class"], bye["outcome"]) == (
        "responder", "udp:127.0.0.1:40000", "request", "sent")
    assert (ok["from"], ok["to"], ok["class"]) == ("udp:127.0.0.1:40000", "responder",
                                                   "success")
    assert round(ok["delta"], 6) == 0.05
    [call] = model["calls"]
    assert call["summary"] == "INVITE -> 200; ACK; BYE (sent) -> 200"
    assert len(model["lanes"]) == 2
    assert [(a["from"] != "responder", a["label"].split(" ")[0]) for a in model["arrows"]
            ] == [(f[0], f[1]) for f in HANGUP_FRAMES]
