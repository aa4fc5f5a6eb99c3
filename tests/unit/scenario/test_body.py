"""scenario/body.py: the body as conditions and templates read it."""

from __future__ import annotations

from sipresponder.scenario import body
from sipresponder.sip.message import Request, parse_request

OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 18\r\n"
)


def _request(content_type: str | None, payload: bytes) -> Request:
    lines = [
        "INVITE sip:codec@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1",
        "From: <sip:a@x>;tag=1",
        "To: <sip:codec@127.0.0.1>",
        "Call-ID: body-1",
        "CSeq: 1 INVITE",
    ]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(payload)}")
    return parse_request(("\r\n".join(lines) + "\r\n\r\n").encode() + payload, datagram=True)


def test_body_text_never_fails_on_bad_utf8() -> None:
    request = _request("text/plain", b"ping \xff")
    assert body.body_text(request) == "ping \ufffd"


def test_only_an_application_sdp_body_is_sdp() -> None:
    assert body.is_sdp(_request("Application/SDP; charset=x", OFFER.encode()))
    assert not body.is_sdp(_request("text/plain", OFFER.encode()))
    assert not body.is_sdp(_request("application/sdp", b""))
    assert body.offer(_request("text/plain", OFFER.encode())) is None


def test_the_offer_is_read_once_per_request() -> None:
    request = _request("application/sdp", OFFER.encode())
    first = body.offer(request)
    assert first is not None
    assert body.offer(request) is first
    other = _request("application/sdp", OFFER.encode())
    assert body.offer(other) is not first
