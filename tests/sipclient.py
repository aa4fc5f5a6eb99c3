"""A tiny SIP client for the tests: builds requests, sends them, splits responses.

Independent of the responder's own parser on purpose, so that a parser bug cannot
hide itself by agreeing with the serializer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import ssl as _ssl
from dataclasses import dataclass, field

import asyncio_dgram

_counter = itertools.count(1)


def make_request(method: str, uri: str, *, via_host: str = "127.0.0.1:5999",
                 transport: str = "UDP", headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", call_id: str | None = None, cseq: int = 1,
                 branch: str | None = None, from_tag: str = "fromtag1", rport: bool = True,
                 to_tag: str | None = None) -> bytes:
    n = next(_counter)
    branch = branch or f"z9hG4bK-test-{n}"
    call_id = call_id or f"call-{n}@test"
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {via_host};branch={branch}" + (";rport" if rport else ""),
        "Max-Forwards: 70",
        f"From: <sip:tester@example.com>;tag={from_tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    lines += [f"{k}: {v}" for k, v in headers or []]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Response:
    raw: bytes
    code: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def parse_response(data: bytes) -> Response:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {data!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"SIP/2\.0 ([1-6][0-9][0-9]) (.*)", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(": ")
        assert colon and not line[0].isspace(), f"bad header line {line!r}"
        headers.append((name, value))
    resp = Response(data, int(m[1]), m[2], headers, body)
    lengths = resp.all("Content-Length")
    assert len(lengths) == 1, f"Content-Length must appear once: {lengths}"
    assert int(lengths[0]) == len(body), "Content-Length does not match the body"
    return resp


def split_list(value: str) -> list[str]:
    """Comma-separated values of a header (independently of the product's parser); commas inside "..." (with \\ escapes) and <...> kept."""
    out, cur, i = [], [], 0
    quoted = angle = False
    while i < len(value):
        ch = value[i]
        if quoted and ch == "\\":
            cur.append(value[i : i + 2])
            i += 2
            continue
        if ch == '"' and not angle:
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch == "," and not quoted and not angle:
            out.append("".join(cur).strip(" \t"))
            cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    out.append("".join(cur).strip(" \t"))
    return [v for v in out if v]


class UDPClient:
    """One client socket: retransmissions come from the same port, as a real UAC's do."""

    def __init__(self, stream: asyncio_dgram.DatagramClient) -> None:
        self.stream = stream

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> UDPClient:
        return cls(await asyncio_dgram.connect((host, port)))

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def recv_many(self, expect: int = 1, timeout: float = 3.0) -> list[Response]:
        """Up to ``expect`` responses; fewer if ``timeout`` passes first."""
        out: list[Response] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expect:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                raw, _ = await asyncio.wait_for(self.stream.recv(), remaining)
            except TimeoutError:
                break
            out.append(parse_response(raw))
        return out

    async def exchange(self, data: bytes, *, expect: int = 1, timeout: float = 3.0
                       ) -> list[Response]:
        await self.send(data)
        return await self.recv_many(expect, timeout)

    def close(self) -> None:
        self.stream.close()


async def udp_exchange(port: int, data: bytes, *, expect: int = 1, timeout: float = 3.0,
                       host: str = "127.0.0.1") -> list[Response]:
    """Send one datagram from a fresh socket and collect ``expect`` responses."""
    client = await UDPClient.connect(port, host)
    try:
        return await client.exchange(data, expect=expect, timeout=timeout)
    finally:
        client.close()


class TCPClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1",
                      ssl: _ssl.SSLContext | None = None) -> TCPClient:
        """A TCP connection, or TLS over it with ``ssl`` (the client's trust settings)."""
        reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 3.0) -> Response:
        async def read() -> Response:
            head = await self.reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"\r\nContent-Length: ([0-9]+)", head)
            body = await self.reader.readexactly(int(m[1])) if m else b""
            return parse_response(head + body)

        return await asyncio.wait_for(read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
