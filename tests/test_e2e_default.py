"""End to end over real loopback sockets: every registry code through the default scenario."""

from __future__ import annotations

import pytest

from sipresponder.codes import CODES, requirements
from tests.sipclient import TCPClient, UDPClient, make_request, udp_exchange

FINAL_CODES = [c for c in CODES if c >= 200]
PROVISIONAL = [c for c in CODES if c < 200]


def check_echo(request: bytes, response) -> None:  # noqa: ANN001
    text = request.decode("latin-1")
    for name in ("From", "Call-ID", "CSeq"):
        line = next(l for l in text.split("\r\n") if l.startswith(name + ":"))
        assert response.get(name) == line.split(": ", 1)[1]
    via = next(l for l in text.split("\r\n") if l.startswith("Via:")).split(": ", 1)[1]
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
