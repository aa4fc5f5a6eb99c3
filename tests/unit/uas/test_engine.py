"""The sans-I/O engine: request in, responses out, with a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.sipclient import make_request, parse_response

ROOT = Path(__file__).resolve().parents[3]
UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
TCP = Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7)
OFFER = (b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 5004 RTP/AVP 96 8 0 101\r\na=rtpmap:96 opus/48000/2\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"
         b"m=video 0 RTP/AVP 31\r\nm=image 5006 udptl t38\r\n")


def engine(text: str | None = None) -> Engine:
    if text is None:
        return Engine(load_scenario(ROOT / "scenarios" / "default.toml"))
    return Engine(parse_scenario(text, "<test>"))


def answer(e: Engine, data: bytes, source: Source = UDP, now: float = 0.0):
    return [parse_response(s.data) for s in e.handle(data, source, now).sends]


def test_stateless_answers_are_byte_identical_for_retransmissions() -> None:
    e = engine()
    req = make_request("INVITE", "sip:486@127.0.0.1")
    first = e.handle(req, UDP, 0.0).sends
    again = e.handle(req, UDP, 5.0).sends
    assert [s.data for s in first] == [s.data for s in again]
    assert not e.transactions


def test_request_only_headers_are_never_echoed() -> None:
    e = engine()
    req = make_request("OPTIONS", "sip:bob@127.0.0.1", headers=[
        ("Route", "<sip:proxy.example.com;lr>"), ("Authorization", "Digest x=y"),
        ("Proxy-Require", "foo"), ("Subject", "hi")])
    [resp] = answer(e, req)
    names = {k.lower() for k, _ in resp.headers}
    assert not names & {"route", "max-forwards", "authorization", "proxy-require", "subject"}


def test_via_received_and_rport_and_routing() -> None:
    e = engine()
    req = make_request("OPTIONS", "sip:bob@127.0.0.1", via_host="client.example.com:5070")
    [send] = e.handle(req, UDP, 0.0).sends
    assert send.remote == ("127.0.0.1", 40000)
    resp = parse_response(send.data)
    assert resp.get("Via").endswith(";rport=40000;received=127.0.0.1")


def test_strict_via_routing_uses_sent_by_port_without_rport() -> None:
    e = engine('[settings]\nresponse_routing = "via"\n[default]\ncode = 200\n')
    req = make_request("OPTIONS", "sip:bob@x", via_host="client.example.com:5070", rport=False)
    [send] = e.handle(req, UDP, 0.0).sends
    # Never the Via host name: the source address with the sent-by port (RFC 3261 18.2.2).
    assert send.remote == ("127.0.0.1", 5070)
    with_rport = make_request("OPTIONS", "sip:bob@x", via_host="client.example.com:5070")
    [send] = e.handle(with_rport, UDP, 0.0).sends
    assert send.remote == ("127.0.0.1", 40000)


def test_no_received_when_sent_by_is_the_source() -> None:
    e = engine()
    req = make_request("OPTIONS", "sip:bob@x", via_host="127.0.0.1:40000", rport=False)
    [resp] = answer(e, req)
    assert resp.get("Via") == f"SIP/2.0/UDP 127.0.0.1:40000;branch={resp.get('Via').split('branch=')[1]}"


def test_ack_is_never_answered() -> None:
    e = engine()
    assert e.handle(make_request("ACK", "sip:486@127.0.0.1"), UDP, 0.0).sends == []


def test_invite_2xx_has_contact_sdp_answer_and_record_route() -> None:
    e = engine()
    req = make_request("INVITE", "sip:bob@127.0.0.1", body=OFFER, headers=[
        ("Content-Type", "application/sdp"),
        ("Record-Route", "<sip:p1.example.com;lr>, <sip:p2.example.com;lr>"),
        ("Record-Route", "<sip:p3.example.com;lr>")])
    [resp] = answer(e, req)
    assert resp.code == 200
    assert resp.all("Record-Route") == ["<sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
                                        "<sip:p3.example.com;lr>"]
    assert resp.get("Contact") == "<sip:sipresponder@127.0.0.1:5060>"
    sdp = resp.body.decode()
    m_lines = [line for line in sdp.split("\r\n") if line.startswith("m=")]
    # One m-line per offered m-line, in order; declined streams keep port 0.
    assert m_lines == ["m=audio 40000 RTP/AVP 96 101", "m=video 0 RTP/AVP 31",
                       "m=image 0 udptl t38"]
    assert "a=rtpmap:96 opus/48000/2" in sdp
    assert "a=recvonly" in sdp  # the offer was sendonly


def test_invite_without_offer_gets_an_offer() -> None:
    [resp] = answer(engine(), make_request("INVITE", "sip:bob@127.0.0.1"))
    assert resp.get("Content-Type") == "application/sdp"
    assert b"m=audio" in resp.body


def test_accept_that_rules_out_sdp_gives_406() -> None:
    req = make_request("INVITE", "sip:bob@127.0.0.1", headers=[("Accept", "text/nobodyKnowsThis")])
    [resp] = answer(engine(), req)
    assert resp.code == 406
    assert resp.body == b""
    assert resp.get("Warning").startswith("399 ")


def test_non_2xx_does_not_copy_record_route() -> None:
    req = make_request("INVITE", "sip:486@127.0.0.1", headers=[("Record-Route", "<sip:p;lr>")])
    [resp] = answer(engine(), req)
    assert resp.code == 486
    assert resp.get("Record-Route") is None
    assert resp.get("Contact") is None


def test_register_echoes_bindings_with_expiry() -> None:
    req = make_request("REGISTER", "sip:127.0.0.1", headers=[
        ("Contact", "<sip:a@192.0.2.1>;expires=60, sip:b@192.0.2.2;unknownparam"),
        ("Contact", '"Bob" <sip:c@192.0.2.3>;expires=0'),
        ("Expires", "1800")])
    [resp] = answer(engine(), req)
    assert resp.all("Contact") == ["<sip:a@192.0.2.1>;expires=60",
                                   "<sip:b@192.0.2.2>;unknownparam;expires=1800"]


def test_unknown_method_gets_501_with_allow() -> None:
    [resp] = answer(engine(), make_request("FOO", "sip:bob@127.0.0.1"))
    assert resp.code == 501
    assert "INVITE" in resp.get("Allow")


def test_require_unknown_extension_gets_420() -> None:
    req = make_request("OPTIONS", "sip:bob@x", headers=[("Require", "foo, replaces, bar"),
                                                        ("Proxy-Require", "baz")])
    [resp] = answer(engine(), req)
    assert (resp.code, resp.get("Unsupported")) == (420, "foo, bar")


def test_unsupported_body_type_gets_415_with_accept() -> None:
    req = make_request("MESSAGE", "sip:bob@x", body=b"x",
                       headers=[("Content-Type", "application/unknown")])
    [resp] = answer(engine(), req)
    assert resp.code == 415
    assert "application/sdp" in resp.get("Accept")


def test_timestamp_is_copied_into_100_trying_only() -> None:
    req = make_request("INVITE", "sip:100@x", headers=[("Timestamp", "54.3")])
    trying, final = answer(engine(), req)
    assert (trying.code, trying.get("Timestamp"), final.get("Timestamp")) == (100, "54.3", None)
    assert ";tag=" not in trying.get("To")


def test_missing_header_gets_400_naming_it() -> None:
    req = make_request("OPTIONS", "sip:bob@x").replace(b"Call-ID: ", b"X-Call-ID: ")
    [resp] = answer(engine(), req)
    assert (resp.code, resp.reason) == (400, "Missing Call-ID header field")


def test_oversized_message_gets_513() -> None:
    e = engine("[settings]\nmax_message_size = 600\n[default]\ncode = 200\n")
    req = make_request("MESSAGE", "sip:bob@x", body=b"x" * 700,
                       headers=[("Content-Type", "text/plain")])
    [resp] = answer(e, req)
    assert (resp.code, resp.reason) == (513, "Message Too Large (over 600 octets)")


@pytest.mark.parametrize("source", [UDP, TCP])
def test_a_60_kB_header_line_gets_513_not_400(source: Source) -> None:
    """Issue 12: the default limits (max_line_length 8192 within max_message_size 65535)
    answered 400 "Header line too long"; a refusal for size is 513 on every transport."""
    req = make_request("OPTIONS", "sip:bob@x", transport=source.transport.upper(),
                       headers=[("X-Big", "a" * 60_000)])
    [resp] = answer(engine(), req, source)
    assert (resp.code, resp.reason) == (
        513, "Message Too Large (header line over 8192 octets)")
    assert resp.get("Call-ID") is not None and len(resp.raw) < 1000


def test_too_many_header_fields_gets_513() -> None:
    req = make_request("OPTIONS", "sip:bob@x", headers=[(f"X-H{i}", "v") for i in range(130)])
    [resp] = answer(engine(), req)
    assert (resp.code, resp.reason) == (513, "Message Too Large (over 128 header fields)")


def test_no_usable_via_is_dropped_silently() -> None:
    req = make_request("OPTIONS", "sip:bob@x").replace(b"Via: ", b"X-Via: ")
    assert engine().handle(req, UDP, 0.0).sends == []


def test_responses_are_dropped() -> None:
    assert engine().handle(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", UDP, 0.0).sends == []


def test_server_header_is_configurable() -> None:
    e = engine('[settings]\nserver = ""\n[default]\ncode = 200\n')
    [resp] = answer(e, make_request("OPTIONS", "sip:bob@x"))
    assert resp.get("Server") is None
    e = engine('[settings]\nserver = "Lab PBX 1.0"\n[default]\ncode = 200\n')
    [resp] = answer(e, make_request("OPTIONS", "sip:bob@x"))
    assert resp.get("Server") == "Lab PBX 1.0"


MATCH_SCENARIO = """
[[rule]]
name = "ua"
match = { method = "INVITE", headers = { "User-Agent" = "^Linphone" } }
code = 488
[[rule]]
name = "glob"
match = { uri = "sip:sales-*@example.com" }
code = 302
contacts = ["<sip:{ruri.user}@backup.example.com>", "<sip:desk@example.com>;q=0.5"]
[[rule]]
name = "regex"
match = { uri_regex = "^sips:" }
code = 403
reason = "Secure Calls Barred for {from.user}"
[[rule]]
name = "tcp-only"
match = { transport = "tcp", user = "t*" }
code = 480
[[rule]]
name = "lab-net"
match = { source = ["10.0.0.0/8", "127.0.0.0/8"], user = "lab" }
code = 202
headers = { "X-Call" = "{call_id}", "X-Multi" = ["a", "b"] }
[[rule]]
name = "no-subject"
match = { headers = { Subject = false }, user = "quiet" }
code = 204
expires = 600
[default]
code = 404
"""


@pytest.mark.parametrize(
    ("method", "uri", "extra", "source", "code"),
    [
        ("INVITE", "sip:x@example.com", [("User-Agent", "Linphone/5")], UDP, 488),
        ("OPTIONS", "sip:x@example.com", [("User-Agent", "Linphone/5")], UDP, 404),
        ("INVITE", "sip:sales-eu@example.com", [], UDP, 302),
        ("INVITE", "sips:bob@example.com", [], UDP, 403),
        ("INVITE", "sip:tom@example.com", [], TCP, 480),
        ("INVITE", "sip:tom@example.com", [], UDP, 404),
        ("INVITE", "sip:lab@example.com", [], UDP, 202),
        ("OPTIONS", "sip:quiet@example.com", [], UDP, 204),
        ("OPTIONS", "sip:quiet@example.com", [("Subject", "x")], UDP, 404),
    ],
)
def test_rule_matching(method: str, uri: str, extra: list, source: Source, code: int) -> None:
    e = engine(MATCH_SCENARIO)
    [resp] = answer(e, make_request(method, uri, headers=extra), source)
    assert resp.code == code


def test_templates_and_typed_fields() -> None:
    e = engine(MATCH_SCENARIO)
    [resp] = answer(e, make_request("INVITE", "sip:sales-eu@example.com"))
    assert resp.all("Contact") == ["<sip:sales-eu@backup.example.com>",
                                   "<sip:desk@example.com>;q=0.5"]
    [resp] = answer(e, make_request("INVITE", "sips:bob@example.com"))
    assert resp.reason == "Secure Calls Barred for tester"
    [resp] = answer(e, make_request("INVITE", "sip:lab@example.com", call_id="abc@x"))
    assert resp.get("X-Call") == "abc@x"
    assert resp.all("X-Multi") == ["a", "b"]
    [resp] = answer(e, make_request("OPTIONS", "sip:quiet@example.com"))
    assert resp.get("Expires") == "600"


RINGING = """
[settings]
timer_t1 = 0.5
timer_t2 = 4.0
[[rule]]
name = "ring"
match = { method = "INVITE", user = "ring" }
provisional = [180]
delay = 2.0
code = 200
[[rule]]
name = "wait"
match = { method = "INVITE", user = "wait" }
delay = 1.0
code = 486
[[rule]]
name = "options-later"
match = { method = "OPTIONS" }
delay = 1.0
code = 200
[default]
code = 200
"""


def codes(sends: list) -> list[int]:
    return [parse_response(s.data).code for s in sends]


def test_provisional_then_delayed_final_then_retransmit_until_ack() -> None:
    e = engine(RINGING)
    invite = make_request("INVITE", "sip:ring@x", call_id="ring-1")
    assert codes(e.handle(invite, UDP, 0.0).sends) == [180]
    assert e.next_deadline() == 2.0
    assert codes(e.handle(invite, UDP, 0.7).sends) == [180]  # retransmitted INVITE
    assert codes(e.fire(2.0)) == [200]
    # 2xx retransmitted at T1, 2*T1, 4*T1... capped at T2, until the ACK.
    assert codes(e.fire(2.5)) == [200]
    assert codes(e.fire(3.5)) == [200]
    assert e.handle(make_request("ACK", "sip:ring@x", call_id="ring-1", branch="z9hG4bK-ack"),
                    UDP, 3.6).sends == []
    assert codes(e.fire(10.0)) == []
    # The transaction is kept for 64*T1 to absorb retransmissions, then forgotten.
    assert codes(e.handle(invite, UDP, 11.0).sends) == [200]
    e.fire(2.0 + 64 * 0.5)
    assert not e.transactions and not e.transactions.by_dialog


def test_retransmission_stops_after_64_t1_without_ack() -> None:
    e = engine(RINGING)
    e.handle(make_request("INVITE", "sip:ring@x"), UDP, 0.0)
    sent = 0
    t = 0.0
    while (deadline := e.next_deadline()) is not None:
        t = deadline
        sent += len(e.fire(t))
    assert t == pytest.approx(2.0 + 32.0)
    assert 8 <= sent <= 12  # final + about ten retransmissions within Timer H
    assert not e.transactions


def test_delayed_invite_sends_100_trying_first() -> None:
    e = engine(RINGING)
    sends = e.handle(make_request("INVITE", "sip:wait@x"), UDP, 0.0).sends
    assert codes(sends) == [100]
    assert codes(e.fire(1.0)) == [486]


def test_cancel_of_pending_invite_gives_200_and_487() -> None:
    e = engine(RINGING)
    invite = make_request("INVITE", "sip:ring@x", branch="z9hG4bK-c1", call_id="c1")
    e.handle(invite, UDP, 0.0)
    cancel = make_request("CANCEL", "sip:ring@x", branch="z9hG4bK-c1", call_id="c1")
    sends = e.handle(cancel, UDP, 0.5).sends
    responses = [parse_response(s.data) for s in sends]
    assert [(r.code, r.get("CSeq")) for r in responses] == [(200, "1 CANCEL"), (487, "1 INVITE")]
    assert responses[0].get("To") == responses[1].get("To")  # same tag
    assert codes(e.fire(2.0)) == [487]  # the 200 never comes; 487 is retransmitted


def test_cancel_after_final_only_gets_200() -> None:
    e = engine(RINGING)
    invite = make_request("INVITE", "sip:ring@x", branch="z9hG4bK-c2", call_id="c2")
    e.handle(invite, UDP, 0.0)
    e.fire(2.0)
    cancel = make_request("CANCEL", "sip:ring@x", branch="z9hG4bK-c2", call_id="c2")
    assert codes(e.handle(cancel, UDP, 2.1).sends) == [200]


def test_no_retransmission_over_tcp() -> None:
    e = engine(RINGING)
    e.handle(make_request("INVITE", "sip:ring@x", transport="TCP"), TCP, 0.0)
    sends = e.fire(2.0)
    assert codes(sends) == [200]
    assert sends[0].conn == 7
    assert codes(e.fire(2.5)) == []


def test_delayed_non_invite() -> None:
    e = engine(RINGING)
    req = make_request("OPTIONS", "sip:x@x")
    assert e.handle(req, UDP, 0.0).sends == []  # no 100 Trying for non-INVITE
    assert codes(e.fire(1.0)) == [200]
    assert codes(e.handle(req, UDP, 1.5).sends) == [200]


def test_transaction_limit_answers_503() -> None:
    e = engine(RINGING.replace("timer_t2 = 4.0", "timer_t2 = 4.0\nmax_transactions = 2"))
    for _ in range(2):
        e.handle(make_request("INVITE", "sip:ring@x"), UDP, 0.0)
    [resp] = answer(e, make_request("INVITE", "sip:ring@x"))
    assert resp.code == 503 and resp.get("Retry-After")


def test_a_405_never_allows_the_method_it_refuses() -> None:
    """Issue 12: the derived Allow counted every method the rules name, the refused
    one included, so a 405 to SUBSCRIBE said `Allow: ..., SUBSCRIBE, ...`."""
    e = engine("""
[[rule]]
match = { method = "SUBSCRIBE" }
code = 405

[[rule]]
match = { method = ["INVITE", "OPTIONS"] }
code = 200
""")
    [resp] = answer(e, make_request("SUBSCRIBE", "sip:bob@127.0.0.1",
                                    headers=[("Event", "presence")]))
    assert resp.code == 405
    allow = [m.strip() for m in resp.get("Allow").split(",")]
    assert "SUBSCRIBE" not in allow
    assert {"INVITE", "ACK", "CANCEL", "OPTIONS"} <= set(allow)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_default_scenario_lists_contacts_for_485(method: str) -> None:
    """Issue 12: the dial-a-code contract fills Contact lists for 3xx and 485 (RFC 3261
    21.4.23: a 485 MAY list unambiguous addresses)."""
    [resp] = answer(engine(), make_request(method, "sip:485@127.0.0.1"))
    assert (resp.code, resp.reason) == (485, "Ambiguous")
    assert ", ".join(resp.all("Contact")).count("<sip:485-") == 2, resp.raw
