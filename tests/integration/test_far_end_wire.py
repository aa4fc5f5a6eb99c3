"""The far end's less common acts over real loopback sockets (UDP and TCP), each
already proven sans-I/O in tests/unit/uac/test_farend_engine.py: Digest answers to a
challenged BYE, the CANCEL of a call in that rings too long, glare (491 both ways),
and a codec change."""

from __future__ import annotations

import pytest

from sipresponder.auth.digest import algorithm, ha1, parse_credentials, request_digest
from sipresponder.testing.api import Responder
from tests.farend_peer import (
    SDP_ANSWER,
    Message,
    Peer,
    TCPPeer,
    UDPPeer,
    answer,
    expect,
)
from tests.sipclient import make_request

TRANSPORTS = ["udp", "tcp"]
TIMEOUT = 5.0

SCENARIO = """
[[rule]]
name = "challenged"
match = { method = "INVITE", user = "challenged" }
code = 200
[[rule.then]]
send = "BYE"
credentials = { username = "far", password = "s3cret" }

[[rule]]
name = "ring-too-long"
match = { method = "REGISTER", headers = { To = "ring@" } }
code = 200
[[rule.then]]
send = "INVITE"
cancel_after = 0.5
[[rule.then]]
send = "BYE"

[[rule]]
name = "glare"
match = { method = "INVITE", user = "glare" }
code = 200
[[rule.then]]
send = "INVITE"
codecs = ["PCMA"]
"""


async def _peer(responder: Responder, transport: str) -> Peer:
    address = responder.address(transport)
    return await (UDPPeer.connect(address) if transport == "udp" else TCPPeer.connect(address))


async def _call(peer: Peer, uri: str) -> Message:
    """INVITE, its 200, our ACK: the 200."""
    contact = f"<sip:peer@{peer.hostport};transport={peer.transport.lower()}>"
    await peer.send(make_request("INVITE", uri, via_host=peer.hostport,
                                 transport=peer.transport, headers=[("Contact", contact)]))
    ok = await expect(peer, "200")
    to_tag = (ok.get("to") or "").split(";tag=")[1]
    await peer.send(make_request("ACK", uri, via_host=peer.hostport, transport=peer.transport,
                                 call_id=ok.get("call-id"), to_tag=to_tag))
    return ok


def _challenge(request: Message, code: int) -> bytes:
    header = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
    data = answer(request, code, "Unauthorized" if code == 401 else
                  "Proxy Authentication Required")
    line = f'{header}: Digest realm="peer", nonce="abc123", algorithm=MD5, qop="auth"\r\n'
    return data.replace(b"Content-Length:", line.encode() + b"Content-Length:", 1)


@pytest.fixture
async def responder() -> Responder:
    async with Responder(SCENARIO, listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as running:
        yield running


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("code", [401, 407])
async def test_a_challenged_bye_is_answered_with_credentials(responder: Responder,
                                                             transport: str, code: int) -> None:
    peer = await _peer(responder, transport)
    try:
        await _call(peer, responder.uri("challenged", transport))
        bye = await expect(peer, "BYE")
        await peer.send(_challenge(bye, code))
        again = await expect(peer, "BYE")
        assert again.get("cseq") == "2 BYE" and again.get("call-id") == bye.get("call-id")
        credentials = parse_credentials(
            again.get("authorization" if code == 401 else "proxy-authorization") or "")
        assert credentials is not None and credentials.username == "far"
        md5 = algorithm("MD5")
        uri = again.start.split(" ")[1]
        assert credentials.get("response") == request_digest(
            md5, ha1(md5, "far", "peer", "s3cret"), method="BYE", uri=uri, nonce="abc123",
            qop="auth", nc=credentials.get("nc"), cnonce=credentials.get("cnonce"))
        await peer.send(answer(again))
        entries = await responder.wait_for("BYE", direction="sent", code=200,
                                           timeout=TIMEOUT)
        assert [e.codes for e in responder.requests("BYE", direction="sent")] == [
            [code], [200]]
        assert entries
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_in_that_rings_too_long_is_cancelled(responder: Responder,
                                                          transport: str) -> None:
    peer = await _peer(responder, transport)
    try:
        contact = f"<sip:ring@{peer.hostport};transport={peer.transport.lower()}>"
        register = make_request("REGISTER", responder.uri("registrar", transport),
                                via_host=peer.hostport, transport=peer.transport,
                                headers=[("Contact", contact)]).replace(
            b"To: <sip:registrar@", b"To: <sip:ring@")
        await peer.send(register)
        await expect(peer, "200")
        invite = await expect(peer, "INVITE")
        await peer.send(answer(invite, 180, "Ringing"))
        cancel = await expect(peer, "CANCEL")
        for name in ("call-id", "from", "to"):
            assert cancel.get(name) == invite.get(name), name
        assert cancel.get("cseq") == (invite.get("cseq") or "").replace("INVITE", "CANCEL")
        await peer.send(answer(cancel))
        await peer.send(answer(invite, 487, "Request Terminated"))
        ack = await expect(peer, "ACK")  # the transaction's ACK of the 487
        assert ack.get("cseq") == (invite.get("cseq") or "").replace("INVITE", "ACK")
        await responder.wait_for("INVITE", direction="sent", code=487, timeout=TIMEOUT)
        assert [e.codes for e in responder.requests(direction="sent")] == [
            [180, 487], [200], []]  # INVITE, CANCEL, ACK
        assert responder.requests("BYE") == []  # a call that never was is not hung up
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_glare_both_ways_and_a_codec_change(responder: Responder, transport: str) -> None:
    """Our re-INVITE (PCMA only) crosses the client's: each side answers the other's
    491 (RFC 3261 14.2); ours is sent again after 0-2 s (14.1) and then accepted."""
    peer = await _peer(responder, transport)
    try:
        uri = responder.uri("glare", transport)
        ok = await _call(peer, uri)
        ours = await expect(peer, "INVITE")
        assert b"m=audio 40000 RTP/AVP 8\r\n" in ours.body
        to_tag = (ok.get("to") or "").split(";tag=")[1]
        theirs = make_request("INVITE", uri, via_host=peer.hostport, transport=peer.transport,
                              call_id=ok.get("call-id"), cseq=2, to_tag=to_tag,
                              headers=[("Contact", f"<sip:peer@{peer.hostport}>")])
        await peer.send(theirs)
        assert (await expect(peer, "491")).get("cseq") == "2 INVITE"
        await peer.send(answer(ours, 491, "Request Pending"))
        await expect(peer, "ACK")  # of our 491'd INVITE, by its transaction
        again = await expect(peer, "INVITE", timeout=TIMEOUT)
        assert again.get("cseq") != ours.get("cseq")
        await peer.send(answer(again, body=SDP_ANSWER))
        await expect(peer, "ACK")
        await responder.wait_for("INVITE", direction="sent", code=200, timeout=TIMEOUT)
    finally:
        await peer.close()
