"""Not answering, ringing forever and faults over real loopback sockets: what a
client's socket sees. No sleep synchronizes anything: a missing answer is shown by
the answer to a later request arriving first (one engine, answers in order), with a
bounded wait."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sipresponder.testing.api import Responder
from sipresponder.transport.tls import TLSOptions
from tests.sipclient import TCPClient, UDPClient, make_request, parse_response

TIMEOUT = 5.0
SCENARIO = """
[[rule]]
match.user = "timeout"
action = "none"

[[rule]]
match.user = "ring"
action = "provisional-only"
provisional = [180]

[[rule]]
match.user = "twice"
code = 200
repeat_final = true
""" + "".join(
    f'[[rule]]\nmatch.user = "{f}"\ncode = 200\nfault = "{f}"\n'
    for f in ("close-before", "close-after", "reset-before", "reset-after", "truncated",
              "bad-content-length", "broken-header", "random-bytes")
) + "[default]\ncode = 200\n"


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server ends the stream: EOF returns, a reset raises."""
    out = b""
    while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
        out += chunk
    return out


async def test_udp_not_answered_while_a_later_request_is() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            await client.send(make_request("INVITE", "sip:timeout@127.0.0.1"))
            [answer] = await client.exchange(make_request("OPTIONS", "sip:other@127.0.0.1"))
            assert answer.get("CSeq") == "1 OPTIONS"  # no 100 Trying or anything before it
            assert await client.recv_many(1, timeout=0.5) == []
        finally:
            client.close()
        [entry] = r.requests("INVITE")
        assert entry.outcome == "not answered" and entry.responses == []


async def test_udp_ring_forever_then_cancel() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            invite = make_request("INVITE", "sip:ring@127.0.0.1", branch="z9hG4bK-ring1",
                                  call_id="ring1")
            [ringing] = await client.exchange(invite)
            assert ringing.code == 180
            cancel = make_request("CANCEL", "sip:ring@127.0.0.1", branch="z9hG4bK-ring1",
                                  call_id="ring1")
            responses = await client.exchange(cancel, expect=2)
            assert sorted((x.code, x.get("CSeq")) for x in responses) == [
                (200, "1 CANCEL"), (487, "1 INVITE")]
        finally:
            client.close()


async def test_udp_final_sent_twice() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            answers = await client.exchange(make_request("OPTIONS", "sip:twice@127.0.0.1"),
                                            expect=2)
        finally:
            client.close()
        assert [a.code for a in answers] == [200, 200] and answers[0].raw == answers[1].raw


async def test_udp_truncated_response_is_malformed() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            await client.send(make_request("OPTIONS", "sip:truncated@127.0.0.1"))
            raw, _ = await asyncio.wait_for(client.stream.recv(), TIMEOUT)
        finally:
            client.close()
        assert raw.startswith(b"SIP/2.0 200 OK\r\n") and b"\r\n\r\n" not in raw
        [entry] = r.requests("OPTIONS")
        assert entry.outcome == "fault: truncated"


async def test_tcp_close_before_is_an_eof_without_a_response() -> None:
    async with Responder(SCENARIO) as r:
        client = await TCPClient.connect(r.address("tcp")[1])
        try:
            await client.send(make_request("OPTIONS", "sip:close-before@127.0.0.1",
                                           transport="TCP"))
            assert await read_all(client.reader) == b""
        finally:
            await client.close()


async def test_tcp_close_after_is_the_response_then_eof() -> None:
    async with Responder(SCENARIO) as r:
        client = await TCPClient.connect(r.address("tcp")[1])
        try:
            await client.send(make_request("OPTIONS", "sip:close-after@127.0.0.1",
                                           transport="TCP"))
            assert parse_response(await read_all(client.reader)).code == 200
        finally:
            await client.close()


@pytest.mark.parametrize("fault", ["reset-before", "reset-after"])
async def test_tcp_reset_is_seen_as_a_connection_reset(fault: str) -> None:
    async with Responder(SCENARIO) as r:
        client = await TCPClient.connect(r.address("tcp")[1])
        try:
            await client.send(make_request("OPTIONS", f"sip:{fault}@127.0.0.1",
                                           transport="TCP"))
            with pytest.raises(ConnectionResetError):
                await read_all(client.reader)
        finally:
            with contextlib.suppress(ConnectionError):
                await client.close()
        [entry] = r.requests("OPTIONS")
        assert entry.outcome == f"fault: {fault}"


@pytest.mark.parametrize("fault", ["bad-content-length", "broken-header"])
async def test_tcp_malformed_response_is_refused_by_a_strict_parser(fault: str) -> None:
    async with Responder(SCENARIO) as r:
        client = await TCPClient.connect(r.address("tcp")[1])
        try:
            await client.send(make_request("OPTIONS", f"sip:{fault}@127.0.0.1",
                                           transport="TCP"))
            head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            with pytest.raises(AssertionError):
                parse_response(head)
        finally:
            await client.close()


async def test_ws_reset_closes_without_a_close_frame() -> None:
    async with (
        Responder(SCENARIO, listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws,
    ):
            await ws.send(make_request("OPTIONS", "sip:reset-before@127.0.0.1",
                                       transport="WS").decode())
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is None  # a reset: no close frame came


async def test_ws_close_after_answers_then_closes() -> None:
    async with (
        Responder(SCENARIO, listen=["ws:127.0.0.1:0"]) as r,
        connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws,
    ):
            await ws.send(make_request("OPTIONS", "sip:close-after@127.0.0.1",
                                       transport="WS").decode())
            raw = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert parse_response(raw.encode() if isinstance(raw, str) else raw).code == 200
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert info.value.rcvd is not None  # an orderly close


@pytest.mark.parametrize(("fault", "error"), [
    ("reset-before", ConnectionResetError),
    ("close-before", None),
])
async def test_tls_reset_and_close(tls_dir: Path, fault: str, error: type | None) -> None:
    async with Responder(SCENARIO, listen=["tls:127.0.0.1:0"],
                         tls=TLSOptions(directory=tls_dir)) as r:
        assert r.tls_certificate is not None
        context = ssl.create_default_context(cafile=str(r.tls_certificate))
        client = await TCPClient.connect(r.address("tls")[1], ssl=context)
        try:
            await client.send(make_request("OPTIONS", f"sip:{fault}@127.0.0.1",
                                           transport="TLS"))
            if error is None:
                # An orderly close: EOF (with or without the TLS close_notify).
                with contextlib.suppress(ssl.SSLError):
                    assert await read_all(client.reader) == b""
            else:
                with pytest.raises(error):
                    await read_all(client.reader)
        finally:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await client.close()
