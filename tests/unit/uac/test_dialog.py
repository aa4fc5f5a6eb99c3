"""uac/dialog: RFC 3261 12 dialog state, in-dialog requests and where they go."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipresponder.sip.message import NotARequest, Request, parse_request
from sipresponder.sip.transports import Transport
from sipresponder.uac.dialog import (
    MAX_LOCAL_CSEQ,
    VIA_SLOT,
    Dialog,
    DialogError,
    Dialogs,
    Hop,
    Verdict,
    with_via,
)
from sipresponder.uas.events import Source


def message(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def request(text: str) -> Request:
    parsed = parse_request(message(text), datagram=True)
    assert parsed.error is None, parsed.error
    return parsed


@dataclass
class Reply:
    """A received response as the dialog reads it (uac/dialog ResponseView)."""

    status: int
    head: Request

    def get(self, name: str) -> str | None:
        return self.head.get(name)

    def values(self, name: str) -> list[str]:
        return self.head.values(name)


def reply_octets(data: bytes) -> Reply:
    status_line, _, rest = data.partition(b"\n")
    head = parse_request(b"OPTIONS sip:x@192.0.2.1 SIP/2.0\r\n" + rest, datagram=True)
    return Reply(int(status_line.split()[1]), head)


def reply(text: str) -> Reply:
    return reply_octets(message(text))


def udp(remote: tuple[str, int] = ("192.0.2.4", 5060)) -> Source:
    return Source("udp", remote, ("192.0.2.200", 5060))


def stream(transport: Transport, remote: tuple[str, int], conn: int = 7) -> Source:
    return Source(transport, remote, ("192.0.2.200", 5060), conn)


# RFC 3665 3.2-like: Alice's INVITE as it reaches us (the callee) through two proxies.
INVITE = """INVITE sip:bob@192.0.2.200 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKnashds8;received=192.0.2.20
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9
Max-Forwards: 68
Record-Route: <sip:192.0.2.20;lr>, <sip:192.0.2.10;lr>
Record-Route: <sip:192.0.2.9;lr;transport=tcp>
From: "Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl
To: Bob <sip:bob@biloxi.example.com>
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: 314159 INVITE
Contact: <sip:alice@192.0.2.4:5062;transport=udp>
Content-Length: 0

"""

# What we sent as the caller, and the 200 that came back through two proxies.
OUR_INVITE = """INVITE sip:bob@192.0.2.30 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
From: <sip:far@192.0.2.200>;tag=1928301774
To: <sip:bob@192.0.2.30>
Call-ID: a84b4c76e66710@192.0.2.200
CSeq: 7 INVITE
Contact: <sip:far@192.0.2.200:5060>
Content-Length: 0

"""
OK = """SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bK776asdhds;rport=5060
Record-Route: <sip:192.0.2.31;lr>
Record-Route: <sip:192.0.2.32;lr>
From: <sip:far@192.0.2.200>;tag=1928301774
To: <sip:bob@192.0.2.30>;tag=a6c85cf
Call-ID: a84b4c76e66710@192.0.2.200
CSeq: 7 INVITE
Contact: <sip:bob@192.0.2.33:5070>
Content-Length: 0

"""


def uas_dialog(text: str = INVITE, source: Source | None = None, *,
               local_cseq: int = 0) -> Dialog:
    return Dialog.from_uas(request(text), "ourtag", source=source or udp(),
                           contact="sip:far@192.0.2.200:5060", local_cseq=local_cseq)


def sent(data: bytes) -> Request:
    """A request we built, parsed back: it must be a well-formed request."""
    parsed = parse_request(data, datagram=False)
    assert parsed.error is None, parsed.error
    return parsed


# -- creation -----------------------------------------------------------------------
def test_uas_creation_reads_the_request_as_12_1_1_says() -> None:
    d = uas_dialog(local_cseq=100)
    assert d.id == ("3848276298220188511@atlanta.example.com", "ourtag", "9fxced76sl")
    assert d.route_set == ("<sip:192.0.2.20;lr>", "<sip:192.0.2.10;lr>",
                           "<sip:192.0.2.9;lr;transport=tcp>")
    assert d.remote_target.raw == "sip:alice@192.0.2.4:5062;transport=udp"
    assert d.remote_cseq == 314159 and d.local_cseq == 100
    assert d.local == "Bob <sip:bob@biloxi.example.com>"
    assert d.remote == '"Alice" <sip:alice@atlanta.example.com>'
    assert not d.secure and not d.early and d.invite_cseq is None


def test_uas_secure_only_for_sips_over_tls() -> None:
    sips = INVITE.replace("INVITE sip:bob@", "INVITE sips:bob@")
    assert uas_dialog(sips, stream("tls", ("192.0.2.20", 40000))).secure
    assert not uas_dialog(sips, stream("tcp", ("192.0.2.20", 40000))).secure
    assert not uas_dialog(INVITE, stream("tls", ("192.0.2.20", 40000))).secure


@pytest.mark.parametrize(("change", "cause"), [
    ("Contact: <sip:alice@192.0.2.4:5062;transport=udp>\n", "has no Contact"),
    ("From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\n", "no From"),
])
def test_uas_creation_refuses_a_request_missing_a_field(change: str, cause: str) -> None:
    with pytest.raises(DialogError, match=cause):
        uas_dialog(INVITE.replace(change, ""))


def test_uas_creation_refuses_a_malformed_record_route() -> None:
    bad = INVITE.replace("Record-Route: <sip:192.0.2.9;lr;transport=tcp>",
                         "Record-Route: <sip:192.0.2.9")
    with pytest.raises(DialogError, match="malformed Record-Route"):
        uas_dialog(bad)


def test_uas_creation_refuses_a_record_route_that_is_not_sip() -> None:
    with pytest.raises(DialogError, match="is not a SIP or SIPS URI"):
        uas_dialog(INVITE.replace("<sip:192.0.2.9;lr;transport=tcp>", "<tel:+15551234>"))


TORTURE = Path(__file__).resolve().parents[2] / "torture"


@pytest.mark.parametrize("path", sorted(
    p for d in ("rfc4475", "rfc5118-wire") for p in (TORTURE / d).iterdir() if p.is_file()),
    ids=lambda p: p.name)
def test_torture_messages_make_a_dialog_or_a_dialog_error(path: Path) -> None:
    """Every message of the corpus, as if we had answered it: a dialog whose requests
    parse back well-formed and whose next hop is found or refused in one line, or a
    DialogError; never any other exception."""
    data = path.read_bytes()
    try:
        parsed = parse_request(data, datagram=True)
    except NotARequest:
        try:  # a response: as if it answered our INVITE
            Dialog.from_uac(request(OUR_INVITE), reply_octets(data))
        except DialogError as exc:
            assert "\n" not in str(exc)
        return
    try:
        d = Dialog.from_uas(parsed, "t", source=udp(), contact="sip:far@192.0.2.200")
    except DialogError as exc:
        assert "\n" not in str(exc)
        return
    for method in ("INFO", "INVITE", "ACK", "BYE"):
        assert sent(d.request(method)).method == method
    try:
        d.next_hop()
    except DialogError as exc:
        assert "\n" not in str(exc)
    Dialogs().match(parsed)


def test_uac_creation_reverses_the_record_route_and_takes_the_2xx_contact() -> None:
    d = Dialog.from_uac(request(OUR_INVITE), reply(OK), source=udp(("192.0.2.31", 5060)),
                        contact="sip:far@192.0.2.200:5060")
    assert d.id == ("a84b4c76e66710@192.0.2.200", "1928301774", "a6c85cf")
    assert d.route_set == ("<sip:192.0.2.32;lr>", "<sip:192.0.2.31;lr>")
    assert d.remote_target.raw == "sip:bob@192.0.2.33:5070"
    assert d.local_cseq == 7 and d.remote_cseq is None and d.invite_cseq == 7
    assert d.local == "<sip:far@192.0.2.200>" and d.remote == "<sip:bob@192.0.2.30>"
    assert not d.early


def test_uac_early_dialog_from_a_tagged_provisional_confirmed_by_the_2xx() -> None:
    ringing = OK.replace("200 OK", "180 Ringing").replace("192.0.2.33:5070", "192.0.2.34")
    d = Dialog.from_uac(request(OUR_INVITE), reply(ringing))
    assert d.early and d.remote_target.raw == "sip:bob@192.0.2.34"
    d.confirm(reply(OK))
    assert (d.early, d.remote_target.raw) == (False, "sip:bob@192.0.2.33:5070")


@pytest.mark.parametrize(("text", "cause"), [
    (OK.replace(";tag=a6c85cf", ""), "no To tag"),
    (OK.replace("200 OK", "486 Busy Here"), "a 486 makes no dialog"),
    (OK.replace("200 OK", "100 Trying"), "a 100 makes no dialog"),
    (OK.replace("Contact: <sip:bob@192.0.2.33:5070>\n", ""), "has no Contact"),
    (OK.replace("Contact: <sip:bob@192.0.2.33:5070>", "Contact: <tel:+1555>"), "not a SIP"),
])
def test_uac_creation_refuses_what_makes_no_dialog(text: str, cause: str) -> None:
    with pytest.raises(DialogError, match=cause):
        Dialog.from_uac(request(OUR_INVITE), reply(text))


# -- requests (12.2.1.1) --------------------------------------------------------------
def test_loose_routing_keeps_the_target_as_request_uri_and_the_route_set_in_order() -> None:
    bye = sent(uas_dialog(local_cseq=100).request("BYE"))
    assert bye.method == "BYE"
    assert bye.uri_raw == "sip:alice@192.0.2.4:5062;transport=udp"
    assert bye.values("route") == ["<sip:192.0.2.20;lr>", "<sip:192.0.2.10;lr>",
                                   "<sip:192.0.2.9;lr;transport=tcp>"]
    assert bye.get("from") == "Bob <sip:bob@biloxi.example.com>;tag=ourtag"
    assert bye.get("to") == '"Alice" <sip:alice@atlanta.example.com>;tag=9fxced76sl'
    assert bye.call_id == "3848276298220188511@atlanta.example.com"
    assert bye.cseq == (101, "BYE")
    assert bye.get("max-forwards") == "70"
    assert bye.get("contact") is None  # BYE refreshes no target
    assert bye.get("content-length") == "0" and bye.body == b""


def test_strict_routing_puts_the_first_route_in_the_request_uri_and_the_target_last() -> None:
    strict = INVITE.replace("<sip:192.0.2.20;lr>, <sip:192.0.2.10;lr>",
                            "<sip:192.0.2.20;maddr=192.0.2.21?X=y>, <sip:192.0.2.10;lr>")
    bye = sent(uas_dialog(strict).request("BYE"))
    assert bye.uri_raw == "sip:192.0.2.20;maddr=192.0.2.21"
    assert bye.values("route") == ["<sip:192.0.2.10;lr>", "<sip:192.0.2.9;lr;transport=tcp>",
                                   "<sip:alice@192.0.2.4:5062;transport=udp>"]


def test_no_route_set_no_route_header() -> None:
    d = uas_dialog(INVITE.replace("Record-Route", "X-Record-Route"))
    info = sent(d.request("INFO"))
    assert info.uri_raw == "sip:alice@192.0.2.4:5062;transport=udp"
    assert info.rows("route") == []


def test_cseq_increments_and_the_ack_carries_the_invite_number() -> None:
    d = Dialog.from_uas(request(INVITE), "t", source=udp(), contact="sip:far@192.0.2.200")
    assert sent(d.request("INFO")).cseq == (1, "INFO")
    assert sent(d.request("INVITE")).cseq == (2, "INVITE")
    assert sent(d.request("ACK")).cseq == (2, "ACK")
    assert sent(d.request("ACK")).cseq == (2, "ACK")
    assert sent(d.request("bye")).cseq == (3, "BYE")
    assert d.local_cseq == 3


def test_a_refused_request_consumes_no_cseq() -> None:
    d = Dialog.from_uas(request(INVITE), "t", source=udp())
    with pytest.raises(DialogError, match="needs our Contact"):
        d.request("INVITE")
    with pytest.raises(DialogError, match="no Content-Type"):
        d.request("INFO", body=b"x")
    with pytest.raises(DialogError, match="not a SIP method name"):
        d.request("BYE sip:x SIP/2.0\r\nX")
    assert (d.local_cseq, d.invite_cseq) == (0, None)
    assert sent(d.request("BYE")).cseq == (1, "BYE")


def test_ack_without_an_invite_and_cancel_are_refused() -> None:
    d = uas_dialog()
    with pytest.raises(DialogError, match="nothing to ACK"):
        d.request("ACK")
    with pytest.raises(DialogError, match="CANCEL is built by its client transaction"):
        d.request("CANCEL")


def test_local_cseq_stays_below_2_31() -> None:
    d = uas_dialog(local_cseq=MAX_LOCAL_CSEQ - 1)
    assert sent(d.request("INFO")).cseq == (MAX_LOCAL_CSEQ, "INFO")
    with pytest.raises(DialogError, match="below 2\\*\\*31"):
        d.request("INFO")


def test_target_refresh_requests_carry_our_contact() -> None:
    d = uas_dialog()
    for method in ("INVITE", "UPDATE", "NOTIFY", "REFER", "SUBSCRIBE"):
        assert sent(d.request(method)).get("contact") == "<sip:far@192.0.2.200:5060>"
    bare = Dialog.from_uas(request(INVITE), "t", source=udp())
    with pytest.raises(DialogError, match="needs our Contact"):
        bare.request("UPDATE")
    with pytest.raises(DialogError, match="is not a URI"):
        Dialog.from_uas(request(INVITE), "t", source=udp(), contact="not a uri")


def test_body_headers_and_one_line_values() -> None:
    d = uas_dialog()
    data = d.request("INFO", headers=(("X-Evil", "a\r\nBYE: injected"),),
                     body=b"Signal=5\r\nDuration=160\r\n", content_type="application/dtmf-relay")
    info = sent(data)
    assert info.get("x-evil") == "a  BYE: injected" and info.get("bye") is None
    assert info.get("content-type") == "application/dtmf-relay"
    assert info.body == b"Signal=5\r\nDuration=160\r\n"
    assert info.get("content-length") == str(len(info.body))
    with pytest.raises(DialogError, match="no Content-Type"):
        d.request("MESSAGE", body=b"hi")


def test_the_peers_octets_are_written_back_as_they_came() -> None:
    latin = INVITE.replace('"Alice"', '"Al\u00efce"').encode("latin-1").replace(b"\n", b"\r\n")
    d = Dialog.from_uas(parse_request(latin, datagram=True), "t", source=udp())
    assert b'To: "Al\xefce" <sip:alice@atlanta.example.com>' in d.request("BYE")


def test_via_from_sent_by_and_branch_or_a_slot_to_fill() -> None:
    d = uas_dialog()
    bye = sent(d.request("BYE", sent_by="192.0.2.200:5060", branch="z9hG4bKabc"))
    via = bye.top_via()
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.200", 5060,
                                                                 "z9hG4bKabc")
    assert via.has_param("rport")  # the hop is the first route, over UDP
    data = d.request("BYE")
    assert VIA_SLOT.encode() in data
    filled = sent(with_via(data, "SIP/2.0/UDP 192.0.2.200:5060;branch=z9hG4bKdef"))
    assert filled.top_via().branch == "z9hG4bKdef"
    with pytest.raises(DialogError, match="no Via slot"):
        with_via(filled.raw, "SIP/2.0/UDP 192.0.2.200")
    with pytest.raises(DialogError, match="needs a branch"):
        d.request("BYE", sent_by="192.0.2.200")


def test_via_carries_the_hops_transport() -> None:
    d = uas_dialog(with_contact("<sip:alice@192.0.2.4:5062>"),
                   stream("tcp", ("192.0.2.4", 40000)))
    assert sent(d.request("BYE", sent_by="192.0.2.200", branch="z9hG4bK1")).top_via()\
        .transport == "TCP"


# -- target refresh (12.2) -------------------------------------------------------------
def test_reinvite_contact_replaces_the_remote_target_not_the_route_set() -> None:
    d = uas_dialog()
    routes = d.route_set
    reinvite = request(INVITE.replace("To: Bob <sip:bob@biloxi.example.com>",
                                      "To: Bob <sip:bob@biloxi.example.com>;tag=ourtag")
                       .replace("CSeq: 314159", "CSeq: 314160")
                       .replace("192.0.2.4:5062;transport=udp", "192.0.2.99:5064"))
    dialogs = Dialogs()
    dialogs.add(d)
    assert dialogs.match(reinvite).dialog is d
    d.refresh(reinvite.values("contact"))
    assert d.remote_target.raw == "sip:alice@192.0.2.99:5064"
    assert d.route_set == routes
    d.refresh([])  # a refresh without Contact keeps the target
    assert d.remote_target.raw == "sip:alice@192.0.2.99:5064"
    assert sent(d.request("BYE")).uri_raw == "sip:alice@192.0.2.99:5064"


def test_a_2xx_to_our_reinvite_refreshes_the_target() -> None:
    d = Dialog.from_uac(request(OUR_INVITE), reply(OK), contact="sip:far@192.0.2.200")
    d.refresh(reply(OK.replace("192.0.2.33:5070", "192.0.2.35")).values("contact"))
    assert d.remote_target.raw == "sip:bob@192.0.2.35"


# -- matching and 12.2.2 verdicts -----------------------------------------------------
def in_dialog(method: str, cseq: int, to_tag: str = "ourtag",
              from_tag: str = "9fxced76sl") -> Request:
    return request(f"""{method} sip:bob@192.0.2.200 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5062;branch=z9hG4bK{method}{cseq}
Max-Forwards: 70
From: <sip:alice@atlanta.example.com>;tag={from_tag}
To: <sip:bob@biloxi.example.com>;tag={to_tag}
Call-ID: 3848276298220188511@atlanta.example.com
CSeq: {cseq} {method}
Content-Length: 0

""")


def test_match_finds_the_dialog_and_raises_the_remote_cseq() -> None:
    d = uas_dialog()
    dialogs = Dialogs()
    dialogs.add(d)
    assert dialogs.match(in_dialog("INFO", 314160)) == Verdict(d)
    assert d.remote_cseq == 314160
    assert dialogs.match(in_dialog("ACK", 314159)) == Verdict(d)  # the INVITE's number
    assert d.remote_cseq == 314160


def test_lower_cseq_gets_500() -> None:
    dialogs = Dialogs()
    d = uas_dialog()
    dialogs.add(d)
    verdict = dialogs.match(in_dialog("BYE", 314158))
    assert (verdict.code, verdict.dialog) == (500, None)
    assert d.remote_cseq == 314159


def test_first_request_of_a_uac_dialog_sets_the_empty_remote_cseq() -> None:
    d = Dialog.from_uac(request(OUR_INVITE), reply(OK))
    dialogs = Dialogs()
    dialogs.add(d)
    bye = request(OUR_INVITE.replace("INVITE sip:", "BYE sip:").replace("CSeq: 7 INVITE",
                                                                        "CSeq: 1 BYE")
                  .replace("From: <sip:far@192.0.2.200>;tag=1928301774",
                           "From: <sip:bob@192.0.2.30>;tag=a6c85cf")
                  .replace("To: <sip:bob@192.0.2.30>", "To: <sip:far@192.0.2.200>;tag=1928301774"))
    assert dialogs.match(bye).dialog is d and d.remote_cseq == 1


@pytest.mark.parametrize(("to_tag", "from_tag"), [("other", "9fxced76sl"), ("ourtag", "x")])
def test_a_to_tag_matching_no_dialog_gets_481(to_tag: str, from_tag: str) -> None:
    dialogs = Dialogs()
    dialogs.add(uas_dialog())
    verdict = dialogs.match(in_dialog("BYE", 1, to_tag, from_tag))
    assert (verdict.code, verdict.reason, verdict.dialog) == (
        481, "Call/Transaction Does Not Exist", None)
    # An ACK is never answered, not even with 481.
    assert dialogs.match(in_dialog("ACK", 1, to_tag, from_tag)) == Verdict()


def test_a_request_without_to_tag_is_outside_any_dialog() -> None:
    dialogs = Dialogs()
    dialogs.add(uas_dialog())
    assert dialogs.match(request(INVITE)) == Verdict()


def test_the_table_is_bounded_and_evicts_the_least_recently_used() -> None:
    dialogs = Dialogs(capacity=2)
    a, b, c = (Dialog.from_uas(request(INVITE), tag, source=udp()) for tag in "abc")
    dialogs.add(a)
    dialogs.add(b)
    dialogs.match(in_dialog("INFO", 314160, "a"))  # a is used: b is now the oldest
    dialogs.add(c)
    assert len(dialogs) == 2 and dialogs.evicted == 1
    assert a.id in dialogs and c.id in dialogs and b.id not in dialogs
    assert dialogs.match(in_dialog("BYE", 314161, "b")).code == 481
    assert dialogs.by_call_id(a.call_id) == [a, c]
    assert dialogs.remove(a.id) is a and dialogs.get(a.id) is None
    with pytest.raises(ValueError, match="at least one"):
        Dialogs(capacity=0)


# -- next hop -----------------------------------------------------------------------
def no_routes(text: str = INVITE) -> str:
    return text.replace("Record-Route", "X-Record-Route")


def with_contact(contact: str, text: str = INVITE) -> str:
    return no_routes(text).replace("<sip:alice@192.0.2.4:5062;transport=udp>", contact)


def test_next_hop_is_the_first_route_when_there_is_a_route_set() -> None:
    assert uas_dialog().next_hop() == Hop("udp", ("192.0.2.20", 5060))
    d = Dialog.from_uac(request(OUR_INVITE), reply(OK), source=udp(("192.0.2.31", 5060)))
    assert d.next_hop() == Hop("udp", ("192.0.2.32", 5060))


@pytest.mark.parametrize(("contact", "hop"), [
    ("<sip:alice@192.0.2.4>", Hop("udp", ("192.0.2.4", 5060))),
    ("<sip:alice@192.0.2.4:5999>", Hop("udp", ("192.0.2.4", 5999))),
    ("<sip:alice@192.0.2.4;transport=TCP>", Hop("tcp", ("192.0.2.4", 5060))),
    ("<sips:alice@192.0.2.4>", Hop("tls", ("192.0.2.4", 5061))),
    ("<sip:alice@192.0.2.4;transport=tls>", Hop("tls", ("192.0.2.4", 5061))),
    ("<sip:alice@[2001:db8::4]:5070>", Hop("udp", ("2001:db8::4", 5070))),
])
def test_next_hop_transport_and_default_port(contact: str, hop: Hop) -> None:
    assert uas_dialog(with_contact(contact), udp(("192.0.2.4", 5060))).next_hop() == hop


def test_a_host_name_is_an_error_naming_it() -> None:
    d = uas_dialog(with_contact("<sip:alice@pc33.atlanta.example.com>"))
    with pytest.raises(DialogError, match=re.escape("'pc33.atlanta.example.com' is a host name")):
        d.next_hop()


def test_an_unknown_transport_is_an_error_naming_it() -> None:
    d = uas_dialog(with_contact("<sip:alice@192.0.2.4;transport=sctp>"))
    with pytest.raises(DialogError, match="transport 'sctp'"):
        d.next_hop()


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_a_connection_dialog_reuses_its_connection_to_that_peer(transport: Transport) -> None:
    source = stream(transport, ("192.0.2.4", 40312))
    # The client's listening port in Contact, not the connection's: still that peer.
    d = uas_dialog(with_contact("<sip:alice@192.0.2.4:5062>"), source)
    assert d.next_hop() == Hop(transport, source.remote, source)
    named = uas_dialog(with_contact(f"<sip:alice@pc33.example.com;transport={transport}>"),
                       source)
    assert named.next_hop() == Hop(transport, source.remote, source)


def test_the_ws_contact_of_rfc_7118_goes_on_the_connection() -> None:
    source = stream("ws", ("192.0.2.4", 40312))
    d = uas_dialog(with_contact("<sip:alice@df7jal23ls0d.invalid;transport=ws>"), source)
    assert d.next_hop() == Hop("ws", ("192.0.2.4", 40312), source)


def test_a_connection_is_not_reused_for_another_peer_or_transport() -> None:
    source = stream("tcp", ("192.0.2.4", 40312))
    other = uas_dialog(with_contact("<sip:alice@192.0.2.5;transport=tcp>"), source)
    assert other.next_hop() == Hop("tcp", ("192.0.2.5", 5060))
    named = uas_dialog(with_contact("<sip:alice@192.0.2.4;transport=udp>"), source)
    assert named.next_hop() == Hop("udp", ("192.0.2.4", 5060))
    # Through a proxy on a connection: the first route is that peer.
    proxied = uas_dialog(INVITE, stream("tcp", ("192.0.2.20", 40000)))
    assert proxied.next_hop().source is not None


def test_udp_private_contact_behind_nat_goes_to_the_packet_source() -> None:
    nat = udp(("203.0.113.5", 40000))
    d = uas_dialog(with_contact("<sip:alice@192.168.1.20:5062>"), nat)
    assert d.next_hop() == Hop("udp", ("203.0.113.5", 40000))
    cgn = uas_dialog(with_contact("<sip:alice@100.64.3.3>"), nat)
    assert cgn.next_hop() == Hop("udp", ("203.0.113.5", 40000))


def test_udp_rport_client_with_its_via_host_in_contact_goes_to_the_packet_source() -> None:
    text = with_contact("<sip:alice@198.51.100.7:5062>").replace(
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKnashds8;received=192.0.2.20\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9",
        "Via: SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKnashds8;rport")
    d = uas_dialog(text, udp(("203.0.113.5", 40000)))
    assert d.nat_host == "198.51.100.7"
    assert d.next_hop() == Hop("udp", ("203.0.113.5", 40000))


def test_udp_public_contact_or_the_source_itself_is_used_as_written() -> None:
    nat = udp(("203.0.113.5", 40000))
    multihomed = uas_dialog(with_contact("<sip:alice@198.51.100.7:5062>"), nat)
    assert multihomed.next_hop() == Hop("udp", ("198.51.100.7", 5062))
    direct = uas_dialog(with_contact("<sip:alice@203.0.113.5:5062>"), nat)
    assert direct.next_hop() == Hop("udp", ("203.0.113.5", 5062))
    # A Record-Routing proxy takes care of its client's NAT: the route is used.
    routed = uas_dialog(INVITE.replace("192.0.2.4:5062", "192.168.1.20:5062"), nat)
    assert routed.next_hop() == Hop("udp", ("192.0.2.20", 5060))
