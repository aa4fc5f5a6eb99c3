"""SIP over WebSocket (RFC 7118) end to end, with the ``websockets`` library as the
client: an implementation independent of the aiohttp server the responder runs."""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from sipresponder.testing.api import Responder
from sipresponder.transport.tls import TLSOptions
from tests.sipclient import make_request, parse_response

TIMEOUT = 5.0
VIA_HOST = "df7jal23ls0d.invalid"  # RFC 7118 5 / Appendix B: what browsers put there


async def exchange(ws: ClientConnection, data: bytes | str, expect: int = 1) -> list[bytes | str]:
    await ws.send(data)
    return [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(expect)]


def ws_request(method: str, uri: str, transport: str = "WS", **kwargs: object) -> bytes:
    return make_request(method, uri, transport=transport, via_host=VIA_HOST, **kwargs)


def local_port(ws: ClientConnection) -> int:
    return ws.local_address[1]


async def test_options_over_ws_text_frame() -> None:
    async with Responder(listen=["ws:127.0.0.1:0"]) as r:
        async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws:
            assert ws.subprotocol == "sip"
            request = ws_request("OPTIONS", "sip:200@127.0.0.1")
            [raw] = await exchange(ws, request.decode())
            port = local_port(ws)
        [entry] = await r.wait_for("OPTIONS", timeout=TIMEOUT)
    assert isinstance(raw, str), "a text request gets a text response"
    resp = parse_response(raw.encode())
    assert resp.code == 200
    via = resp.get("Via")
    # The .invalid host is not the source address: received and rport are filled in.
    assert via.startswith(f"SIP/2.0/WS {VIA_HOST};branch=z9hG4bK-test-"), via
    assert via.endswith(f";rport={port};received=127.0.0.1"), via
    assert ";tag=" in resp.get("To")
    assert resp.get("Allow") is not None
    assert entry.transport == "ws"
    assert entry.remote == ("127.0.0.1", port)
    assert entry.raw == request


async def test_binary_frame_gets_a_binary_response_and_no_content_length_is_needed() -> None:
    """RFC 7118 5.1: the WebSocket message frames the SIP message, so a request without
    Content-Length has the rest of the message as its body."""
    body = b"hello"
    request = ws_request("MESSAGE", "sip:bob@127.0.0.1", body=body,
                         headers=[("Content-Type", "text/plain")])
    request = request.replace(b"Content-Length: 5\r\n", b"")
    async with Responder(listen=["ws:127.0.0.1:0"]) as r:
        async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws:
            [raw] = await exchange(ws, request)
        [entry] = await r.wait_for("MESSAGE", timeout=TIMEOUT)
    assert isinstance(raw, bytes)
    assert parse_response(raw).code == 200
    assert entry.raw.endswith(b"\r\n\r\nhello")


async def test_sdp_offer_without_content_length_is_answered() -> None:
    """The body of a WebSocket message without Content-Length is the rest of the
    message: an INVITE's SDP offer gets an answer to it (its only codec, PCMA), not
    an offer of our own."""
    offer = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
             b"m=audio 5004 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
    request = ws_request("INVITE", "sip:alice@127.0.0.1", body=offer,
                         headers=[("Content-Type", "application/sdp")])
    request = request.replace(f"Content-Length: {len(offer)}\r\n".encode(), b"")
    assert b"Content-Length" not in request
    async with (
        Responder(listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws,
    ):
        [raw] = await exchange(ws, request.decode())
    resp = parse_response(raw.encode())
    assert resp.code == 200
    [m_line] = [line for line in resp.body.decode().split("\r\n") if line.startswith("m=")]
    assert m_line.endswith(" RTP/AVP 8"), resp.body


@pytest.mark.parametrize(("transport", "ruri", "contact"), [
    ("ws", "sip:alice@127.0.0.1", "<sip:sipresponder@127.0.0.1:{port};transport=ws>"),
    ("wss", "sip:alice@127.0.0.1", "<sip:sipresponder@127.0.0.1:{port};transport=ws>"),
    ("wss", "sips:alice@127.0.0.1", "<sips:sipresponder@127.0.0.1:{port};transport=ws>"),
])
async def test_invite_contact(tls_dir: Path, transport: str, ruri: str, contact: str) -> None:
    """RFC 7118 5.2 defines only transport=ws; with sips: it means a secure WebSocket."""
    async with Responder(listen=[f"{transport}:127.0.0.1:0"],
                         tls=TLSOptions(directory=tls_dir)) as r:
        port = r.address(transport)[1]
        context = None
        if transport == "wss":
            context = ssl.create_default_context(cafile=str(r.tls_certificate))
        async with connect(r.ws_url(transport), subprotocols=["sip"], ssl=context,
                           open_timeout=TIMEOUT) as ws:
            [raw] = await exchange(ws, ws_request("INVITE", ruri, transport.upper()).decode())
    resp = parse_response(raw.encode())
    assert resp.code == 200
    assert resp.get("Via").startswith(f"SIP/2.0/{transport.upper()} {VIA_HOST};")
    assert resp.get("Contact") == contact.format(port=port)


async def test_delayed_responses_reach_the_right_websocket() -> None:
    """Timer-driven responses name their connection: two clients ringing at once each
    get their own 100 (at once), 180 and 200 (from timers), and nothing of the other's."""
    scenario = ('[[rule]]\nmatch = { method = "INVITE" }\n'
                'provisional = [{ code = 180, delay = 0.05 }]\ndelay = 0.1\ncode = 200\n')
    async with (
        Responder(scenario, listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as a,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as b,
    ):
        await a.send(ws_request("INVITE", "sip:x@127.0.0.1", call_id="call-a").decode())
        await b.send(ws_request("INVITE", "sip:x@127.0.0.1", call_id="call-b").decode())
        got = {}
        for name, ws in (("a", a), ("b", b)):
            got[name] = [parse_response((await asyncio.wait_for(ws.recv(), TIMEOUT))
                                        .encode()) for _ in range(3)]
    for name, responses in got.items():
        assert [x.code for x in responses] == [100, 180, 200], name
        assert {x.get("Call-ID") for x in responses} == {f"call-{name}"}


async def test_handshake_without_sip_subprotocol_is_refused() -> None:
    async with Responder(listen=["ws:127.0.0.1:0"]) as r:
        with pytest.raises(InvalidStatus) as info:
            async with connect(r.ws_url(), open_timeout=TIMEOUT):
                pass
        assert info.value.response.status_code == 400
        assert b"'sip' WebSocket subprotocol" in info.value.response.body
        with pytest.raises(InvalidStatus) as info:
            async with connect(r.ws_url(), subprotocols=["chat"], open_timeout=TIMEOUT):
                pass
        assert info.value.response.status_code == 400
        # A plain HTTP GET is told to upgrade.
        def plain_get() -> int:
            try:
                urllib.request.urlopen(r.ws_url().replace("ws://", "http://"), timeout=TIMEOUT)
            except urllib.error.HTTPError as exc:
                return exc.code
            return 200
        assert await asyncio.to_thread(plain_get) == 426
        assert r.requests() == []


async def test_oversized_messages() -> None:
    """Over max_message_size: 513, the WebSocket stays usable (its framing is intact);
    over twice that: the WebSocket closes with 1009 without buffering it whole."""
    scenario = "[settings]\nmax_message_size = 2000\n[default]\ncode = 200\n"
    big = ws_request("MESSAGE", "sip:bob@127.0.0.1", body=b"x" * 2500,
                     headers=[("Content-Type", "text/plain")])
    huge = ws_request("MESSAGE", "sip:bob@127.0.0.1", body=b"x" * 5000,
                      headers=[("Content-Type", "text/plain")])
    async with (
        Responder(scenario, listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws,
    ):
        [raw] = await exchange(ws, big)
        resp = parse_response(raw)
        assert (resp.code, resp.reason) == (513, "Message Too Large (over 2000 octets)")
        [raw] = await exchange(ws, ws_request("OPTIONS", "sip:200@127.0.0.1"))
        assert parse_response(raw).code == 200
        await ws.send(huge)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_a_60_kB_header_line_gets_513() -> None:
    """Issue 12: a refusal for size is 513 over WebSocket too (it was 400), and the
    WebSocket stays usable."""
    big = ws_request("OPTIONS", "sip:200@127.0.0.1", headers=[("X-Big", "a" * 60_000)])
    async with (
        Responder(listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws,
    ):
        [raw] = await exchange(ws, big)
        resp = parse_response(raw)
        assert (resp.code, resp.reason) == (
            513, "Message Too Large (header line over 8192 octets)")
        [raw] = await exchange(ws, ws_request("OPTIONS", "sip:200@127.0.0.1"))
        assert parse_response(raw).code == 200


async def test_connection_cap_and_idle_timeout() -> None:
    scenario = "[settings]\nmax_connections = 1\ntcp_idle_timeout = 0.3\n"
    async with Responder(scenario, listen=["ws:127.0.0.1:0"]) as r:
        async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as first:
            # Closed at accept (issue 18: counted from accept, before any handshake).
            with pytest.raises((InvalidMessage, OSError)):
                async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT):
                    pass
            # Silent past tcp_idle_timeout: the server closes it.
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(first.recv(), TIMEOUT)
        counters = r.server.engine.counters
        assert counters["ws_refused"] == 1
        assert counters["ws_idle_closed"] == 1


async def test_pings_keep_a_websocket_open() -> None:
    """WebSocket pings are keep-alives: they restart the idle timeout."""
    scenario = "[settings]\ntcp_idle_timeout = 0.5\n[default]\ncode = 200\n"
    async with (
        Responder(scenario, listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], ping_interval=None,
                open_timeout=TIMEOUT) as ws,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < 1.2:  # past twice the idle timeout
            pong = await ws.ping()
            await asyncio.wait_for(pong, TIMEOUT)
            await asyncio.sleep(0.2)  # the pacing of the keep-alives, not a sync
        [raw] = await exchange(ws, ws_request("OPTIONS", "sip:200@127.0.0.1").decode())
        assert parse_response(raw.encode()).code == 200


def test_plugin_factory_serves_websocket(sip_responder_factory, tls_dir: Path) -> None:
    """The pytest plugin passes listen= and tls= through to the responder."""
    responder = sip_responder_factory(listen=["wss:127.0.0.1:0"],
                                      tls=TLSOptions(directory=tls_dir))
    assert responder.ws_url("wss").startswith("wss://127.0.0.1:")
    assert responder.uri("bob", "wss").endswith(";transport=ws")
    context = ssl.create_default_context(cafile=str(responder.tls_certificate))

    async def call() -> str:
        async with connect(responder.ws_url("wss"), subprotocols=["sip"], ssl=context,
                           open_timeout=TIMEOUT) as ws:
            [raw] = await exchange(ws, ws_request("OPTIONS", "sip:486@127.0.0.1", "WSS").decode())
            return raw

    assert parse_response(asyncio.run(call()).encode()).code == 486
    [entry] = responder.wait_for("OPTIONS", timeout=TIMEOUT)
    assert entry.transport == "wss"
