"""Body and SDP conditions over UDP: the ``sip:codec@`` rule (488 when an INVITE
offers neither PCMU nor PCMA, else 200 with an SDP answer) and a MESSAGE body regex."""

from __future__ import annotations

from pathlib import Path

from sipresponder.testing.api import Responder
from tests.sipclient import Response, UDPClient, make_request

SCENARIO = """
[[rule]]
name = "codec"
match = { method = "INVITE", user = "codec", sdp = { no_codecs = ["PCMU/8000", "PCMA/8000"] } }
code = 488
warning = '305 sipresponder "Incompatible media format: {sdp.codecs}"'

[[rule]]
name = "codec-ok"
match = { method = "INVITE", user = "codec" }
code = 200

[[rule]]
name = "ping"
match = { method = "MESSAGE", body = "^ping\\\\b" }
code = 200
body = "pong"
content_type = "text/plain"

[default]
code = 404
"""

SDP = [("Content-Type", "application/sdp")]


def offer(fmts: str, *rtpmaps: str) -> bytes:
    lines = ["v=0", "o=alice 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
             f"m=audio 49170 RTP/AVP {fmts}", *(f"a=rtpmap:{r}" for r in rtpmaps)]
    return ("\r\n".join(lines) + "\r\n").encode()


async def final(client: UDPClient, data: bytes) -> Response:
    """The final response to ``data`` (a 100 Trying before it is skipped)."""
    responses = await client.exchange(data, expect=1)
    while responses and responses[-1].code < 200:
        responses = await client.recv_many(1)
    assert responses, "no final response"
    return responses[-1]


async def test_codec_rule_refuses_an_offer_without_pcmu_or_pcma() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            g729 = offer("18 101", "101 telephone-event/8000")
            resp = await final(client, make_request("INVITE", "sip:codec@127.0.0.1",
                                                    headers=SDP, body=g729))
            assert resp.code == 488
            # The template reads the offer: static type 18 is G729 (RFC 3551).
            assert resp.get("Warning") == (
                '305 sipresponder "Incompatible media format: G729/8000,telephone-event/8000"'
            )
            [entry] = await r.wait_for("INVITE")
            assert entry.rule == "rule 'codec' (#1)"

            pcma = offer("18 8", "8 PCMA/8000")
            resp = await final(client, make_request("INVITE", "sip:codec@127.0.0.1",
                                                    headers=SDP, body=pcma))
            assert resp.code == 200
            assert resp.get("Content-Type") == "application/sdp"
            # The answer picks the offerer's first codec it lists (RFC 3264 6.1).
            assert b"m=audio 40000 RTP/AVP 18\r\n" in resp.body

            # No offer at all (a late-offer INVITE): not "an offer without PCMA", 200.
            resp = await final(client, make_request("INVITE", "sip:codec@127.0.0.1"))
            assert resp.code == 200 and resp.body.startswith(b"v=0")
        finally:
            client.close()


async def test_message_body_regex_and_its_near_miss() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            text = [("Content-Type", "text/plain;charset=utf-8")]
            [resp] = await client.exchange(make_request("MESSAGE", "sip:bob@127.0.0.1",
                                                        headers=text, body=b"ping \xe2\x9c\x93"))
            assert resp.code == 200 and resp.body == b"pong"

            [resp] = await client.exchange(make_request("MESSAGE", "sip:bob@127.0.0.1",
                                                        headers=text, body=b"pingpong"))
            assert resp.code == 404
            entries = await r.wait_for("MESSAGE", count=2)
            miss = entries[-1].near_miss
            assert miss is not None and miss.rule == "rule 'ping' (#3)"
            assert miss.failed == ["body ~ '^ping\\\\b'"]
        finally:
            client.close()


async def test_the_media_example_scenario_answers_by_offer() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "media.toml"
    async with Responder(path) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            video = offer("0") + b"m=video 51372 RTP/AVP 31\r\n"
            for user, body, code in [
                ("codec", offer("18"), 488),
                ("codec", offer("0"), 200),
                ("alice", video, 488),
                ("alice", offer("8") + b"a=sendonly\r\n", 200),
                ("alice", offer("8"), 404),
            ]:
                req = make_request("INVITE", f"sip:{user}@127.0.0.1", headers=SDP, body=body)
                assert (await final(client, req)).code == code, (user, body)
        finally:
            client.close()
