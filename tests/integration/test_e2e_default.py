"""End to end over real loopback sockets: every registry code through the default scenario."""

from __future__ import annotations

import asyncio

import pytest

from sipresponder.sip.codes import CODES, requirements
from tests.sipclient import TCPClient, UDPClient, make_request, udp_exchange

FINAL_CODES = [c for c in CODES if c >= 200]
PROVISIONAL = [c for c in CODES if c < 200]


def check_echo(request: bytes, response) -> None:
    text = request.decode("latin-1")
    for name in ("From", "Call-ID", "CSeq"):
        line = next(x for x in text.split("\r\n") if x.startswith(name + ":"))
        assert response.get(name) == line.split(": ", 1)[1]
    via = next(x for x in text.split("\r\n") if x.startswith("Via:")).split(": ", 1)[1]
    assert response.get("Via").startswith(via.replace(";rport", ""))
    assert "received=127.0.0.1" in response.get("Via")
    to = response.get("To")
    if response.code == 100:
        assert ";tag=" not in to
    else:
        assert ";tag=" in to


@pytest.mark.parametrize("code", FINAL_CODES)
async def test_every_final_code_over_udp(responder, code: int) -> None:
    req = make_request("OPTIONS", f"sip:{code}@127.0.0.1")
    client = await UDPClient.connect(responder.udp_port)
    [resp] = await client.exchange(req)
    assert resp.code == code
    assert resp.reason == CODES[code].reason
    check_echo(req, resp)
    for need in requirements(code):
        assert any(resp.get(h) for h in need.headers), f"{code} lacks {need.headers}"
    # identical requests get identical responses
    [again] = await client.exchange(req)
    client.close()
    assert again.raw == resp.raw


@pytest.mark.parametrize("code", FINAL_CODES)
async def test_every_final_code_over_tcp(responder, code: int) -> None:
    client = await TCPClient.connect(responder.tcp_port)
    try:
        req = make_request("INVITE", f"sip:{code}@127.0.0.1", transport="TCP")
        await client.send(req)
        resp = await client.recv()
        assert resp.code == code
        check_echo(req, resp)
        for need in requirements(code):
            assert any(resp.get(h) for h in need.headers), f"{code} lacks {need.headers}"
    finally:
        await client.close()


@pytest.mark.parametrize("code", PROVISIONAL)
async def test_provisional_codes_then_200(responder, code: int) -> None:
    req = make_request("INVITE", f"sip:{code}@127.0.0.1")
    first, final = await udp_exchange(responder.udp_port, req, expect=2)
    assert (first.code, final.code) == (code, 200)
    assert first.reason == CODES[code].reason
    if code != 100:
        assert first.get("To") == final.get("To")
    assert final.get("Content-Type") == "application/sdp"


async def test_tcp_pipelined_requests_and_keepalive(responder) -> None:
    client = await TCPClient.connect(responder.tcp_port)
    try:
        a = make_request("OPTIONS", "sip:200@127.0.0.1", transport="TCP")
        b = make_request("OPTIONS", "sip:486@127.0.0.1", transport="TCP")
        # Two requests in one write, the second one split across writes.
        await client.send(a + b[:40])
        await client.send(b[40:])
        assert (await client.recv()).code == 200
        assert (await client.recv()).code == 486
        # RFC 5626 keep-alive: a double CRLF is answered with a single CRLF.
        await client.send(b"\r\n\r\n")
        pong = await asyncio.wait_for(client.reader.readexactly(2), 3)
        assert pong == b"\r\n"
    finally:
        await client.close()


async def test_tcp_missing_content_length_gets_400_and_close(responder) -> None:
    client = await TCPClient.connect(responder.tcp_port)
    try:
        req = make_request("OPTIONS", "sip:bob@127.0.0.1", transport="TCP")
        await client.send(req.replace(b"Content-Length: 0\r\n", b""))
        resp = await client.recv()
        assert (resp.code, resp.reason) == (400, "Missing Content-Length header field")
        assert await asyncio.wait_for(client.reader.read(), 3) == b""  # closed
    finally:
        await client.close()


async def test_udp_on_ipv6_loopback(responder_factory) -> None:
    from sipresponder.transport.address import ListenAddress
    from sipresponder.transport.server import Server
    from tests.conftest import SCENARIOS, scenario_from

    server = Server(scenario_from(SCENARIOS / "default.toml"))
    try:
        [addr] = await server.start([ListenAddress("udp", "::1", 0)])
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        req = make_request("OPTIONS", "sip:486@[::1]", via_host="[::1]:5999")
        [resp] = await udp_exchange(addr.port, req, host="::1")
        assert resp.code == 486
        assert "received=::1" in resp.get("Via")
    finally:
        await server.close()


def test_parse_listen() -> None:
    from sipresponder.transport.address import ListenAddress, parse_listen

    assert parse_listen("udp:[::1]:5060") == ListenAddress("udp", "::1", 5060)
    assert parse_listen("TCP:127.0.0.1:0") == ListenAddress("tcp", "127.0.0.1", 0)
    for bad in ("udp:::1:5060", "udp:127.0.0.1", "sctp:1.2.3.4:5061", "udp:h:99999"):
        with pytest.raises(ValueError):
            parse_listen(bad)
