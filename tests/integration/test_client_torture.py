"""The bundled client-torture scenario over real loopback sockets, UDP and TCP: what a
client sees from each of its users. No sleep synchronizes anything: a missing answer
is shown by the answer to a later request on the same socket arriving first (one
engine, answers in order), with a bounded wait."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sipresponder.scenario.bundled import bundled_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import TCPClient, UDPClient, make_request, parse_response

TIMEOUT = 5.0
TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])
PCMU_OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              b"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
G729_OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
              b"m=audio 49170 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n")
SDP = [("Content-Type", "application/sdp")]


class Client:
    """One UDP socket or TCP connection; raw octets in, raw octets out."""

    def __init__(self, transport: str, send: Callable[[bytes], Awaitable[None]],
                 recv_raw: Callable[[float], Awaitable[bytes]]) -> None:
        self.transport = transport
        self.send = send
        self.recv_raw = recv_raw

    def request(self, method: str, user: str, *, branch: str | None = None,
                call_id: str | None = None, cseq: int = 1, to_tag: str | None = None,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
        return make_request(method, f"sip:{user}@127.0.0.1", transport=self.transport.upper(),
                            branch=branch, call_id=call_id, cseq=cseq, to_tag=to_tag,
                            headers=headers, body=body)

    async def recv(self, timeout: float = TIMEOUT) -> tuple[int, str, bytes]:
        """The next response: (code, CSeq, raw octets)."""
        response = parse_response(await self.recv_raw(timeout))
        return response.code, response.get("CSeq") or "", response.raw


@contextlib.asynccontextmanager
async def client_for(responder: Responder, transport: str) -> AsyncIterator[Client]:
    port = responder.address("udp" if transport == "udp" else "tcp")[1]
    if transport == "udp":
        udp = await UDPClient.connect(port)

        async def udp_recv(timeout: float) -> bytes:
            raw, _ = await asyncio.wait_for(udp.stream.recv(), timeout)
            return bytes(raw)

        try:
            yield Client("udp", udp.send, udp_recv)
        finally:
            udp.close()
        return
    tcp = await TCPClient.connect(port)

    async def tcp_recv(timeout: float) -> bytes:
        # One whole message: the head, then as much body as Content-Length says.
        head = await asyncio.wait_for(tcp.reader.readuntil(b"\r\n\r\n"), timeout)
        length = re.search(rb"\r\nContent-Length: *([0-9]+)", head, re.IGNORECASE)
        if length is None or length[1] == b"0":
            return head
        return head + await asyncio.wait_for(tcp.reader.readexactly(int(length[1])), timeout)

    try:
        yield Client("tcp", tcp.send, tcp_recv)
    finally:
        with contextlib.suppress(ConnectionError):
            await tcp.close()


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    async with Responder(bundled_scenario("client-torture.toml"),
                         listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as r:
        yield r


@TRANSPORTS
@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER", "BYE"])
async def test_timeout_is_never_answered(responder: Responder, transport: str,
                                         method: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request(method, "timeout", branch="z9hG4bK-t1"))
        await client.send(client.request(method, "timeout", branch="z9hG4bK-t1"))  # a retransmission
        await client.send(client.request("OPTIONS", "alice", cseq=7))
        code, cseq, _ = await client.recv()
        # no 100 Trying, no final response before the later request's answer
        assert (code, cseq) == (200, "7 OPTIONS")
    entries = responder.requests(method, uri="sip:timeout@*")
    assert entries and all(e.outcome == "not answered" and e.responses == [] for e in entries)


@TRANSPORTS
async def test_ring_forever_rings_then_cancel_gets_200_and_487(responder: Responder,
                                                               transport: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request("INVITE", "ring-forever", branch="z9hG4bK-r1",
                                         call_id="ring1"))
        first = await client.recv()
        if first[0] == 100:  # a 100 Trying before the 180 is allowed, not required
            first = await client.recv()
        assert first[:2] == (180, "1 INVITE")
        await client.send(client.request("CANCEL", "ring-forever", branch="z9hG4bK-r1",
                                         call_id="ring1"))
        answers = {(c, s) for c, s, _ in (await client.recv(), await client.recv())}
        assert answers == {(200, "1 CANCEL"), (487, "1 INVITE")}


@TRANSPORTS
async def test_flaky_answers_503_then_200_in_turn_and_starts_over_after_reset(
        responder: Responder, transport: str) -> None:
    async with client_for(responder, transport) as client:
        got = []
        for n, method in enumerate(["INVITE", "INVITE", "OPTIONS", "MESSAGE"], 1):
            await client.send(client.request(method, "flaky", cseq=n))
            got.append(parse_response((await client.recv())[2]))
        assert [r.code for r in got] == [503, 200, 503, 200]
        assert got[0].get("Retry-After") == "1" and got[2].get("Retry-After") == "1"
        # the BYE ending the call (To tag: inside the dialog) is answered, not counted
        await client.send(client.request("BYE", "flaky", cseq=5, to_tag="abc"))
        assert (await client.recv())[:2] == (200, "5 BYE")
        await client.send(client.request("OPTIONS", "flaky", cseq=6))
        assert (await client.recv())[0] == 503
        responder.reset()
        await client.send(client.request("OPTIONS", "flaky", cseq=7))
        assert (await client.recv())[0] == 503


@TRANSPORTS
@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
async def test_garbled_is_refused_by_a_strict_parser(responder: Responder, transport: str,
                                                     method: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request(method, "garbled"))
        raw = await client.recv_raw(TIMEOUT)
    assert raw.startswith(b"SIP/2.0 200 OK\r\n")
    with pytest.raises(AssertionError, match="bad header line"):
        parse_response(raw)
    [entry] = responder.requests(method, uri="sip:garbled@*")
    assert entry.outcome == "fault: broken-header"


@TRANSPORTS
async def test_codec_488_without_pcmu_or_pcma_else_200_with_an_answer(
        responder: Responder, transport: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request("INVITE", "codec", headers=SDP, body=G729_OFFER))
        refused = parse_response((await client.recv())[2])
        await client.send(client.request("INVITE", "codec", headers=SDP, body=PCMU_OFFER))
        accepted = parse_response((await client.recv())[2])
    assert refused.code == 488
    assert "G729/8000" in (refused.get("Warning") or "")
    assert accepted.code == 200 and accepted.get("Content-Type") == "application/sdp"
    assert b"m=audio " in accepted.body and b"PCMU/8000" in accepted.body


async def test_reset_resets_the_tcp_connection(responder: Responder) -> None:
    client = await TCPClient.connect(responder.address("tcp")[1])
    try:
        await client.send(make_request("OPTIONS", "sip:reset@127.0.0.1", transport="TCP"))
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(client.reader.read(65536), TIMEOUT):
                pass
    finally:
        with contextlib.suppress(ConnectionError):
            await client.close()


@TRANSPORTS
async def test_twice_and_dial_a_code(responder: Responder, transport: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request("OPTIONS", "twice"))
        first, second = await client.recv(), await client.recv()
        assert first[0] == 200 and first == second
        await client.send(client.request("INVITE", "486"))
        assert (await client.recv())[0] == 486


async def test_hangup_answers_then_closes_the_tcp_connection(responder: Responder) -> None:
    client = await TCPClient.connect(responder.address("tcp")[1])
    try:
        await client.send(make_request("OPTIONS", "sip:hangup@127.0.0.1", transport="TCP"))
        assert (await client.recv(TIMEOUT)).code == 200
        assert await asyncio.wait_for(client.reader.read(65536), TIMEOUT) == b""  # EOF
    finally:
        await client.close()


@TRANSPORTS
async def test_slow_invite_gets_100_trying_then_200(responder: Responder,
                                                    transport: str) -> None:
    async with client_for(responder, transport) as client:
        await client.send(client.request("INVITE", "slow", branch="z9hG4bK-slow1"))
        assert (await client.recv())[:2] == (100, "1 INVITE")
        # lognormal around 1 s: a generous bound, not a timing assertion
        assert (await client.recv(timeout=30.0))[:2] == (200, "1 INVITE")
