"""The bundled far-end scenario's flows end to end, in process, over real loopback
sockets (UDP and TCP): the peer here plays the client (tests/farend_peer.py) and
answers what the far end sends; retransmissions proved by dropping first copies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sipresponder.scenario.bundled import scenario_path
from sipresponder.testing.api import Responder
from tests.farend_peer import (
    SDP_ANSWER,
    Message,
    Peer,
    SentLog,
    TCPPeer,
    UDPPeer,
    answer,
    barrier,
    expect,
)
from tests.sipclient import make_request

TRANSPORTS = ["udp", "tcp"]
OFFER = (b"v=0\r\no=peer 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.fixture
async def far_end() -> AsyncIterator[tuple[Responder, SentLog]]:
    async with Responder(scenario_path("far-end")) as responder:
        assert responder.server is not None
        yield responder, SentLog.attach(responder.server.engine)


async def _peer(responder: Responder, transport: str) -> Peer:
    address = responder.address("udp" if transport == "udp" else "tcp")
    return await (UDPPeer.connect(address) if transport == "udp" else TCPPeer.connect(address))


def _uri(responder: Responder, user: str, transport: str) -> str:
    return responder.uri(user, "udp" if transport == "udp" else "tcp")


def _contact(peer: Peer) -> str:
    return f"<sip:peer@{peer.hostport};transport={peer.transport.lower()}>"


async def _call(peer: Peer, uri: str) -> tuple[Message, bytes]:
    """INVITE with an offer, its 200, our ACK: the 200 and the ACK's octets."""
    invite = make_request("INVITE", uri, via_host=peer.hostport, transport=peer.transport,
                          headers=[("Contact", _contact(peer)),
                                   ("Content-Type", "application/sdp")], body=OFFER)
    await peer.send(invite)
    ok = await expect(peer, "200")
    call_id = ok.get("call-id")
    to_tag = (ok.get("to") or "").split(";tag=")[1]
    ack = make_request("ACK", uri, via_host=peer.hostport, transport=peer.transport,
                       call_id=call_id, to_tag=to_tag)
    await peer.send(ack)
    return ok, ack


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hangup_the_far_end_sends_bye_after_the_ack(far_end, transport: str) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    try:
        ok, _ = await _call(peer, _uri(responder, "hangup", transport))
        assert ok.body.startswith(b"v=0")
        bye = await expect(peer, "BYE")
        assert bye.get("call-id") == ok.get("call-id")
        assert bye.get("from") == ok.get("to")  # our side of the dialog, tag included
        assert bye.start.split(" ")[1] == "sip:peer@" + peer.hostport + f";transport={transport}"
        await peer.send(answer(bye))
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.methods() == ["BYE"]
        assert sent.codes("BYE") == [[200]]
        assert responder.server is not None and responder.server.engine.far is not None
        assert responder.server.engine.far.live() == []  # the BYE ended the dialog
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_hold_then_resume_two_re_invites_each_acked(far_end, transport: str) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    try:
        ok, _ = await _call(peer, _uri(responder, "hold", transport))
        for direction in (b"a=sendonly", b"a=sendrecv"):
            reinvite = await expect(peer, "INVITE")
            assert reinvite.get("call-id") == ok.get("call-id")
            assert direction in reinvite.body
            assert reinvite.get("content-type") == "application/sdp"
            await peer.send(answer(reinvite, body=SDP_ANSWER, contact=_contact(peer)))
            ack = await expect(peer, "ACK")
            assert ack.get("cseq", ) == (reinvite.get("cseq") or "").replace("INVITE", "ACK")
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.methods() == ["INVITE", "ACK", "INVITE", "ACK"]
        assert sent.codes("INVITE") == [[200], [200]]
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_mwi_subscribe_notify_active_then_unsubscribe_terminated(far_end, transport: str
                                                                       ) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    uri = _uri(responder, "mwi", transport)
    try:
        subscribe = make_request("SUBSCRIBE", uri, via_host=peer.hostport,
                                 transport=peer.transport, call_id="mwi-1@peer",
                                 headers=[("Contact", _contact(peer)),
                                          ("Event", "message-summary"), ("Expires", "3600")])
        await peer.send(subscribe)
        ok = await expect(peer, "200")
        assert ok.get("expires") == "3600"
        notify = await expect(peer, "NOTIFY")
        assert notify.get("event") == "message-summary"
        assert (notify.get("subscription-state") or "").startswith("active")
        assert b"Messages-Waiting: yes" in notify.body
        assert notify.get("content-type") == "application/simple-message-summary"
        await peer.send(answer(notify))
        to_tag = (ok.get("to") or "").split(";tag=")[1]
        unsubscribe = make_request("SUBSCRIBE", uri, via_host=peer.hostport,
                                   transport=peer.transport, call_id="mwi-1@peer", cseq=2,
                                   to_tag=to_tag,
                                   headers=[("Contact", _contact(peer)),
                                            ("Event", "message-summary"), ("Expires", "0")])
        await peer.send(unsubscribe)
        await expect(peer, "200")
        last = await expect(peer, "NOTIFY")
        assert (last.get("subscription-state") or "").startswith("terminated")
        assert last.get("call-id") == "mwi-1@peer"
        await peer.send(answer(last))
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.codes("NOTIFY") == [[200], [200]]
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refer_from_the_client_gets_202_and_two_sipfrag_notifies(far_end, transport: str
                                                                       ) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    uri = _uri(responder, "refer", transport)
    try:
        ok, _ = await _call(peer, uri)
        to_tag = (ok.get("to") or "").split(";tag=")[1]
        refer = make_request("REFER", uri, via_host=peer.hostport, transport=peer.transport,
                             call_id=ok.get("call-id"), cseq=2, to_tag=to_tag,
                             headers=[("Contact", _contact(peer)),
                                      ("Refer-To", "<sip:carol@127.0.0.1>")])
        await peer.send(refer)
        await expect(peer, "202")
        bodies = []
        for state in ("active", "terminated"):
            notify = await expect(peer, "NOTIFY")
            assert notify.get("event") == "refer"
            assert notify.get("content-type") == "message/sipfrag;version=2.0"
            assert (notify.get("subscription-state") or "").startswith(state)
            bodies.append(notify.body)
            await peer.send(answer(notify))
        assert bodies == [b"SIP/2.0 100 Trying\r\n", b"SIP/2.0 200 OK\r\n"]
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.codes("NOTIFY") == [[200], [200]]
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_transfer_the_far_end_sends_refer_to_carol(far_end, transport: str) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    uri = _uri(responder, "transfer", transport)
    try:
        ok, _ = await _call(peer, uri)
        refer = await expect(peer, "REFER")
        assert refer.get("call-id") == ok.get("call-id")
        host, port = responder.address("udp" if transport == "udp" else "tcp")
        assert refer.get("refer-to") == f"<sip:carol@{host}:{port}>"
        await peer.send(answer(refer, 202, "Accepted"))
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.codes("REFER") == [[202]]
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_callme_register_then_the_far_end_calls_in_and_hangs_up(far_end, transport: str
                                                                      ) -> None:
    responder, sent = far_end
    peer = await _peer(responder, transport)
    host, port = responder.address("udp" if transport == "udp" else "tcp")
    try:
        register = make_request("REGISTER", f"sip:{host}:{port}", via_host=peer.hostport,
                                transport=peer.transport,
                                headers=[("Contact", _contact(peer)), ("Expires", "60")])
        # make_request's To is the Request-URI; a REGISTER's is the address of record.
        register = register.replace(f"To: <sip:{host}:{port}>".encode(),
                                    f"To: <sip:callme@{host}:{port}>".encode())
        await peer.send(register)
        await expect(peer, "200")
        invite = await expect(peer, "INVITE")
        assert invite.start.split(" ")[1] == f"sip:peer@{peer.hostport};transport={transport}"
        assert invite.get("to") == f"<sip:callme@{host}:{port}>"
        assert invite.body.startswith(b"v=0") and b"m=audio" in invite.body
        await peer.send(answer(invite, body=SDP_ANSWER, contact=_contact(peer)))
        await expect(peer, "ACK")
        bye = await expect(peer, "BYE")
        assert bye.get("call-id") == invite.get("call-id")
        await peer.send(answer(bye))
        await barrier(peer, _uri(responder, "options", transport))
        assert sent.methods() == ["INVITE", "ACK", "BYE"]
        assert sent.codes("INVITE") == [[200]]
        assert sent.codes("BYE") == [[200]]
    finally:
        await peer.close()


# -- loss: the far end's client transactions retransmit over UDP --------------------------

async def test_a_lost_bye_is_retransmitted_and_the_copy_gets_the_200(far_end) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    try:
        await _call(peer, _uri(responder, "hangup", "udp"))
        first = await expect(peer, "BYE")  # dropped: not answered
        again = await expect(peer, "BYE")  # Timer E (RFC 3261 17.1.2.2)
        assert again.raw == first.raw
        await peer.send(answer(again))
        await barrier(peer, _uri(responder, "options", "udp"))
        assert sent.codes("BYE") == [[200]]
    finally:
        await peer.close()


async def test_a_lost_re_invite_is_retransmitted_and_a_repeated_200_acked_again(far_end
                                                                                ) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    try:
        await _call(peer, _uri(responder, "hold", "udp"))
        first = await expect(peer, "INVITE")  # dropped
        again = await expect(peer, "INVITE")  # Timer A (17.1.1.2)
        assert again.raw == first.raw
        ok = answer(again, body=SDP_ANSWER, contact=_contact(peer))
        await peer.send(ok)
        ack = await expect(peer, "ACK")
        # The ACK "lost": our 200 again (13.3.1.4), which gets the same ACK (13.2.2.4).
        await peer.send(ok)
        assert (await expect(peer, "ACK")).raw == ack.raw
        await barrier(peer, _uri(responder, "options", "udp"))
        assert sent.codes("INVITE")[0] == [200]  # the repeated 200 is not a second answer
    finally:
        await peer.close()


async def test_mwi_subscribe_without_expires_gets_the_default_hour(far_end) -> None:
    responder, _ = far_end
    peer = await _peer(responder, "udp")
    try:
        subscribe = make_request("SUBSCRIBE", _uri(responder, "mwi", "udp"),
                                 via_host=peer.hostport,
                                 headers=[("Contact", _contact(peer)),
                                          ("Event", "message-summary")])
        await peer.send(subscribe)
        ok = await expect(peer, "200")
        assert ok.get("expires") == "3600"  # RFC 6665 4.2.1.1: the 200 says the duration
        notify = await expect(peer, "NOTIFY")
        assert notify.get("subscription-state") == "active;expires=3600"
        await peer.send(answer(notify))
    finally:
        await peer.close()


@pytest.mark.parametrize("unregister", [
    [("Contact", "<sip:peer@127.0.0.1:5999>"), ("Expires", "0")],
    [("Contact", "<sip:peer@127.0.0.1:5999>;expires=0")],
    [("Contact", "*"), ("Expires", "0")],
])
async def test_callme_unregister_gets_200_and_no_call(far_end, unregister) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    host, port = responder.address("udp")
    try:
        register = make_request("REGISTER", f"sip:{host}:{port}", via_host=peer.hostport,
                                headers=unregister)
        register = register.replace(f"To: <sip:{host}:{port}>".encode(),
                                    f"To: <sip:callme@{host}:{port}>".encode())
        await peer.send(register)
        await expect(peer, "200")
        await barrier(peer, _uri(responder, "options", "udp"))
        assert responder.server is not None
        far = responder.server.engine.far
        assert far is None or far.next_deadline() is None  # no call scheduled
        assert sent.exchanges == []
    finally:
        await peer.close()


async def test_the_client_hangs_up_first_and_the_far_end_drops_its_bye(far_end) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    uri = _uri(responder, "hangup", "udp")
    try:
        ok, _ = await _call(peer, uri)
        to_tag = (ok.get("to") or "").split(";tag=")[1]
        bye = make_request("BYE", uri, via_host=peer.hostport, call_id=ok.get("call-id"),
                           cseq=2, to_tag=to_tag)
        await peer.send(bye)
        await expect(peer, "200")
        assert responder.server is not None
        far = responder.server.engine.far
        assert far is not None
        assert far.live() == []
        assert far.next_deadline() is None  # the BYE step was dropped, not delayed
        assert sent.exchanges == []
    finally:
        await peer.close()


async def test_a_lost_notify_is_retransmitted_and_the_copy_gets_the_200(far_end) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    try:
        subscribe = make_request("SUBSCRIBE", _uri(responder, "mwi", "udp"),
                                 via_host=peer.hostport,
                                 headers=[("Contact", _contact(peer)),
                                          ("Event", "message-summary"), ("Expires", "60")])
        await peer.send(subscribe)
        await expect(peer, "200")
        first = await expect(peer, "NOTIFY")  # dropped
        again = await expect(peer, "NOTIFY")  # Timer E
        assert again.raw == first.raw
        await peer.send(answer(again))
        await barrier(peer, _uri(responder, "options", "udp"))
        assert sent.codes("NOTIFY") == [[200]]
    finally:
        await peer.close()


async def test_a_lost_call_in_invite_is_retransmitted_then_acked_and_hung_up(far_end
                                                                            ) -> None:
    responder, sent = far_end
    peer = await _peer(responder, "udp")
    host, port = responder.address("udp")
    try:
        register = make_request("REGISTER", f"sip:{host}:{port}", via_host=peer.hostport,
                                headers=[("Contact", _contact(peer))])
        register = register.replace(f"To: <sip:{host}:{port}>".encode(),
                                    f"To: <sip:callme@{host}:{port}>".encode())
        await peer.send(register)
        await expect(peer, "200")
        first = await expect(peer, "INVITE")  # dropped
        again = await expect(peer, "INVITE")  # Timer A
        assert again.raw == first.raw
        await peer.send(answer(again, body=SDP_ANSWER, contact=_contact(peer)))
        await expect(peer, "ACK")
        bye = await expect(peer, "BYE")
        await peer.send(answer(bye))
        await barrier(peer, _uri(responder, "options", "udp"))
        assert sent.methods() == ["INVITE", "ACK", "BYE"]
        assert sent.codes("BYE") == [[200]]
    finally:
        await peer.close()


async def test_over_tcp_the_bye_comes_back_on_the_calls_connection(far_end) -> None:
    """The client's Contact names a port nobody listens on, as a client behind an
    ephemeral outbound connection does: the far end reuses the connection."""
    responder, sent = far_end
    peer = await _peer(responder, "tcp")
    uri = _uri(responder, "hangup", "tcp")
    try:
        invite = make_request("INVITE", uri, via_host="127.0.0.1:5999", transport="TCP",
                              headers=[("Contact", "<sip:peer@127.0.0.1:5999;transport=tcp>")])
        await peer.send(invite)
        ok = await expect(peer, "200")
        to_tag = (ok.get("to") or "").split(";tag=")[1]
        await peer.send(make_request("ACK", uri, via_host="127.0.0.1:5999", transport="TCP",
                                     call_id=ok.get("call-id"), to_tag=to_tag))
        bye = await expect(peer, "BYE")
        assert bye.start == "BYE sip:peer@127.0.0.1:5999;transport=tcp SIP/2.0"
        await peer.send(answer(bye))
        await barrier(peer, _uri(responder, "options", "tcp"))
        assert sent.codes("BYE") == [[200]]
    finally:
        await peer.close()


async def test_a_bye_whose_connection_is_gone_fails_at_once(far_end) -> None:
    """The client closed its TCP connection after the ACK: the far end's BYE cannot go
    (sipresponder opens no connections), and its transaction fails now with the
    transport's error (RFC 3261 17.1.4), not after 64*T1 of silence."""
    responder, _ = far_end
    peer = await _peer(responder, "tcp")
    uri = _uri(responder, "hangup", "tcp")
    invite = make_request("INVITE", uri, via_host="127.0.0.1:5999", transport="TCP",
                          headers=[("Contact", "<sip:peer@127.0.0.1:5999;transport=tcp>")])
    await peer.send(invite)
    ok = await expect(peer, "200")
    to_tag = (ok.get("to") or "").split(";tag=")[1]
    await peer.send(make_request("ACK", uri, via_host="127.0.0.1:5999", transport="TCP",
                                 call_id=ok.get("call-id"), to_tag=to_tag))
    await responder.wait_for("ACK", direction="received", timeout=5)
    await peer.close()
    [bye] = await responder.wait_for("BYE", direction="sent", timeout=5)
    for _ in range(50):  # the entry is updated when the failure is known
        if "transport failed" in bye.outcome:
            break
        await barrier_udp(responder)
    assert "transport failed: its connection is gone" in bye.outcome, bye.outcome
    assert responder.dialogs() == []


async def barrier_udp(responder: Responder) -> None:
    """One OPTIONS round trip over UDP: the responder's loop has run once more."""
    peer = await UDPPeer.connect(responder.address("udp"))
    try:
        await barrier(peer, responder.uri("options"))
    finally:
        await peer.close()
