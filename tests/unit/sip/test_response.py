"""Echo and serialization of responses (sip/response.py)."""

from __future__ import annotations

from sipresponder.sip.headers import parse_via
from sipresponder.sip.message import parse_request
from sipresponder.sip.response import (
    NO_BODY,
    Echo,
    accepts,
    header_line,
    one_line,
    serialize,
    status_line,
    to_tag,
    top_via_value,
)
from tests.sipclient import make_request

KEY = b"k" * 32


def test_serialize_bodyless() -> None:
    data = serialize(status_line(404, "Not Found"), "Via: x\r\n", header_line("Server", "s"))
    assert data == b"SIP/2.0 404 Not Found\r\nVia: x\r\nServer: s\r\nContent-Length: 0\r\n\r\n"
    assert data.endswith(NO_BODY.encode())


def test_serialize_with_body_adds_content_type_and_length() -> None:
    data = serialize(status_line(200, "OK"), "", "", b"hello", "text/plain")
    assert data == b"SIP/2.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


def test_lines_cannot_be_broken() -> None:
    assert one_line("a\r\nX-Evil: 1") == "a  X-Evil: 1"
    assert status_line(400, "Bad\r\nX: y") == "SIP/2.0 400 Bad  X: y\r\n"
    assert header_line("Warning", "a\nb") == "Warning: a b\r\n"


def test_top_via_gets_received_and_rport() -> None:
    via = parse_via("SIP/2.0/UDP host.example.com:5070;branch=z9hG4bK1;rport")
    assert top_via_value(via, ("192.0.2.1", 4000)) == (
        "SIP/2.0/UDP host.example.com:5070;branch=z9hG4bK1;rport=4000;received=192.0.2.1")
    same = parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1")
    assert top_via_value(same, ("192.0.2.1", 5060)) == same.raw  # nothing to add (18.2.1)
    stale = parse_via("SIP/2.0/UDP 192.0.2.1;received=10.0.0.1;branch=z9hG4bK1")
    assert top_via_value(stale, ("192.0.2.1", 5060)) == stale.raw


def test_echo_tags_to_and_keeps_100_untagged() -> None:
    request = parse_request(make_request("INVITE", "sip:a@x", call_id="e@x"), datagram=True)
    echo = Echo(request, ("127.0.0.1", 5999), KEY)
    assert echo.tag == to_tag(request, KEY) and len(echo.tag) == 16
    assert f"To: <sip:a@x>;tag={echo.tag}\r\n" in echo.tagged
    assert "To: <sip:a@x>\r\n" in echo.untagged
    assert echo.tagged.startswith("Via: SIP/2.0/UDP 127.0.0.1:5999;")
    assert echo.tagged.endswith("Call-ID: e@x\r\nCSeq: 1 INVITE\r\n")


def test_to_tag_is_stable_across_retransmissions_and_keyed() -> None:
    data = make_request("INVITE", "sip:a@x", call_id="t@x", branch="z9hG4bK-t")
    a = parse_request(data, datagram=True)
    b = parse_request(data, datagram=True)
    assert to_tag(a, KEY) == to_tag(b, KEY) != to_tag(a, b"other")


def test_accepts() -> None:
    assert accepts(["application/sdp, text/*"], "text/plain")
    assert accepts(["*/*"], "application/sdp")
    assert not accepts(["application/sdp"], "text/plain")
    assert not accepts(["text/plain;q=0"], "text/plain")
