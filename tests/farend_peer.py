"""Test helpers for the far-end flows: a client that also answers what the far end
sends it (a UDP socket or a TCP connection), and the view of the requests the
responder sent.

``SentLog`` is the one place the tests read "what the responder sent" from: today the
engine's ``sent_recorders`` (each ``Exchange``); once the journal records sent
requests (``direction = "sent"``) only ``SentLog`` needs to change.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from dataclasses import dataclass, field

import asyncio_dgram

from sipresponder.uac.exchange import Exchange
from sipresponder.uas.engine import Engine

STEP_TIMEOUT = 6.0  # seconds for one message to arrive: a step's `after` is 1 s


@dataclass
class Message:
    """A SIP message as the peer sees it: start line, header rows, body."""

    raw: bytes
    start: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def code(self) -> int:
        return int(self.start.split(" ")[1])

    def get(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse(data: bytes) -> Message:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Message(data, lines[0], headers, body)


SDP_ANSWER = (b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
              b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def answer(request: Message, code: int = 200, reason: str = "OK", *, to_tag: str = "peer",
           body: bytes = b"", contact: str | None = None,
           content_type: str = "application/sdp") -> bytes:
    """The peer's response to a request the far end sent: Via, From, To (tagged),
    Call-ID and CSeq copied (RFC 3261 8.2.6.2)."""
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {v}" for v in request.all("via")]
    to = request.get("to") or ""
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    lines += [f"From: {request.get('from')}", f"To: {to}",
              f"Call-ID: {request.get('call-id')}", f"CSeq: {request.get('cseq')}"]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class UDPPeer:
    """A connected UDP socket: what the far end sends to the peer's address (its
    requests come from the responder's listener) arrives here."""

    def __init__(self, stream: asyncio_dgram.DatagramClient) -> None:
        self.stream = stream
        self.transport = "UDP"

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> UDPPeer:
        return cls(await asyncio_dgram.connect(address))

    @property
    def hostport(self) -> str:
        host, port = self.stream.sockname[:2]
        return f"{host}:{port}"

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def recv(self, timeout: float = STEP_TIMEOUT) -> Message:
        data, _ = await asyncio.wait_for(self.stream.recv(), timeout)
        return parse(data)

    async def close(self) -> None:
        self.stream.close()


class TCPPeer:
    """One TCP connection: the far end's requests come back over it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.transport = "TCP"

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> TCPPeer:
        return cls(*await asyncio.open_connection(*address))

    @property
    def hostport(self) -> str:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = STEP_TIMEOUT) -> Message:
        async def read() -> Message:
            head = await self.reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"\r\n(?:Content-Length|l) *: *([0-9]+)", head, re.IGNORECASE)
            body = await self.reader.readexactly(int(m[1])) if m else b""
            return parse(head + body)

        return await asyncio.wait_for(read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


Peer = UDPPeer | TCPPeer


async def expect(peer: Peer, what: str, timeout: float = STEP_TIMEOUT) -> Message:
    """The next message that is ``what`` (a method, or a status code as text),
    skipping provisional responses; anything else fails the test."""
    while True:
        message = await peer.recv(timeout)
        if message.is_response and message.code < 200 and what != str(message.code):
            continue
        got = str(message.code) if message.is_response else message.method
        assert got == what, f"expected {what}, got {message.start!r}:\n{message.raw!r}"
        return message


@dataclass
class SentLog:
    """The requests the responder sent (the far end's), as the tests assert them."""

    exchanges: list[Exchange] = field(default_factory=list)

    @classmethod
    def attach(cls, engine: Engine) -> SentLog:
        log = cls()
        engine.sent_recorders.append(log.exchanges.append)
        return log

    def methods(self) -> list[str]:
        return [e.method for e in self.exchanges]

    def codes(self, method: str) -> list[list[int]]:
        """For each request of ``method`` sent: the statuses the client answered."""
        return [e.codes for e in self.exchanges if e.method == method]


async def barrier(peer: Peer, uri: str) -> None:
    """An OPTIONS round trip: the responder reads a socket or connection in order,
    so once this is answered, everything the peer sent before has been handled."""
    n = next(_barriers)
    branch = f"z9hG4bK-barrier-{n}"
    request = (f"OPTIONS {uri} SIP/2.0\r\nVia: SIP/2.0/{peer.transport} {peer.hostport}"
               f";branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:peer@127.0.0.1>"
               f";tag=b{n}\r\nTo: <{uri}>\r\nCall-ID: barrier-{n}\r\nCSeq: 1 OPTIONS\r\n"
               f"Content-Length: 0\r\n\r\n").encode()
    await peer.send(request)
    while True:
        message = await peer.recv()
        if message.is_response and branch in (message.get("via") or ""):
            return


_barriers = itertools.count(1)
