"""Bounded consumers of the live event stream (/api/events, issue 18): a cap on clients,
a bounded queue per client, a client that falls behind cut with a last event saying so,
and what the server holds for clients that never read returning to zero.

Clients that never read are raw sockets with a small receive buffer that send the
request and never recv. The assertions read the server's own counts
(GET /api/events/stats), never timings or RSS."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.ops.consoleapi import Console
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "[default]\ncode = 200\n"
TIMEOUT = 20.0
REQUEST = "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"


class Running:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession) -> None:
        self.responder = responder
        self.admin = admin
        self.http = http
        assert admin.address is not None and admin.console is not None
        self.port = admin.address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.console: Console = admin.console

    async def stats(self) -> dict[str, int]:
        async with self.http.get(self.base + "/api/events/stats") as resp:
            assert resp.status == 200
            body: dict[str, int] = await resp.json()
            return body

    async def until(self, what: str, test: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        """Poll the stats until ``test`` holds (bounded)."""
        async def poll() -> dict[str, int]:
            while not test(stats := await self.stats()):
                await asyncio.sleep(0.02)
            return stats
        try:
            return await asyncio.wait_for(poll(), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"never {what}: {await self.stats()}") from None


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    responder = await Responder(parse_scenario(SCENARIO, "<test>"), ["udp:127.0.0.1:0"],
                                journal_size=5000).start()
    admin = Admin(responder, SCENARIO)
    await admin.start("127.0.0.1", 0)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
    try:
        yield Running(responder, admin, http)
    finally:
        await http.close()
        await admin.close()
        await responder.stop()


async def silent_client(port: int) -> socket.socket:
    """A client that asks for the stream and never reads it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, REQUEST.format(port=port).encode())
    return sock


async def read_to_end(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = bytearray()

    async def read() -> None:
        while chunk := await loop.sock_recv(sock, 1 << 16):
            data.extend(chunk)
    await asyncio.wait_for(read(), TIMEOUT)
    return bytes(data)


def big_event(size: int = 32 << 10) -> Callable[[], object]:
    return lambda: {"pad": "x" * size}


async def publish_until(r: Running, test: Callable[[dict[str, int]], bool],
                        limit: int = 5000) -> dict[str, int]:
    """Publish large events, letting the streams write between them, until ``test``
    holds of the hub's stats; at most ``limit`` events."""
    hub = r.console.hub
    for _ in range(limit):
        if test(hub.stats()):
            return hub.stats()
        hub.publish("entry", big_event())
        await asyncio.sleep(0)  # the streams' turn to write (not a wait for anything)
    raise AssertionError(f"{limit} events and still not there: {hub.stats()}")


# -- the cap ----------------------------------------------------------------------------
async def test_clients_past_the_cap_get_503_and_a_freed_slot_is_reused(
        running: Running) -> None:
    running.admin.max_event_clients = 2
    url = running.base + "/api/events"
    first = await running.http.get(url)
    second = await running.http.get(url)
    try:
        for stream in (first, second):
            assert stream.status == 200
            assert await stream.content.readline() == b"retry: 2000\n"
        async with running.http.get(url) as third:
            assert third.status == 503
            body = await third.json()
        assert "--admin-max-event-clients" in body["error"] and "2 event streams" in body["error"]
        assert (await running.stats())["clients"] == 2
        first.close()
        await running.until("freed the slot", lambda s: s["clients"] == 1)
        async with running.http.get(url) as again:
            assert again.status == 200
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
async def test_serve_flag_sets_the_cap() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0",
        "--admin", "127.0.0.1:0", "--admin-max-event-clients", "1", "--log-level", "info",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        async def admin_line() -> str:
            assert proc.stderr is not None
            while b"admin API on http://" not in (line := await proc.stderr.readline()):
                assert line, "serve exited"
            return line.decode()
        base = (await asyncio.wait_for(admin_line(), TIMEOUT)).split("admin API on ")[1].strip()
        async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http,
                    http.get(base + "/api/events") as stream):
            assert stream.status == 200
            await stream.content.readline()
            async with http.get(base + "/api/events") as refused:
                assert refused.status == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


# -- a client that falls behind ---------------------------------------------------------
async def test_a_slow_client_is_cut_with_a_last_event_saying_why(running: Running) -> None:
    hub = running.console.hub
    hub.max_events = 20
    hub.grace = 600.0  # long enough that the test reads the last event, not an abort
    sock = await silent_client(running.port)
    try:
        await running.until("subscribed", lambda s: s["receiving"] == 1)
        stats = await publish_until(running, lambda s: s["cut"] == 1)
        assert stats["receiving"] == 0
        # Only the last event is held for it: its queue was dropped.
        assert stats["queued_events"] <= 1
        data = await read_to_end(sock)  # it reads at last: the stream ends
    finally:
        sock.close()
    tail = data[-2000:]
    events = [line for line in data.split(b"\n") if line.startswith(b"event: ")]
    assert events[-1] == b"event: overflow"
    assert b"fell " in tail and b"reconnect to get the journal afresh" in tail
    await running.until("closed", lambda s: s["clients"] == 0)


async def test_clients_that_never_read_are_cut_and_what_they_held_returns(
        running: Running) -> None:
    hub = running.console.hub
    hub.max_events = 20
    hub.grace = 0.2  # a cut client that still does not read is dropped soon after
    clients = [await silent_client(running.port) for _ in range(12)]
    try:
        await running.until("all subscribed", lambda s: s["receiving"] == 12)
        await publish_until(running, lambda s: s["receiving"] == 0)
        stats = await running.until(
            "returned to zero", lambda s: (s["clients"], s["queued_events"],
                                           s["queued_octets"], s["buffered_octets"]) == (0,) * 4)
        assert stats["cut"] == 12
        # A new client is served as before.
        async with running.http.get(running.base + "/api/events") as stream:
            assert stream.status == 200
    finally:
        for sock in clients:
            sock.close()


async def test_a_client_that_does_not_read_holds_a_chunk_not_the_journal(
        running: Running) -> None:
    """The journal snapshot is encoded as it is written: a client that stops reading
    holds what its socket takes, not its own copy of the whole journal."""
    body = b"x" * 30000
    port = running.responder.address("udp")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for i in range(150):  # about 4.5 MB of journal
            sender.sendto(make_request("MESSAGE", f"sip:u{i}@127.0.0.1", body=body,
                                       headers=[("Content-Type", "text/plain")]),
                          ("127.0.0.1", port))
    await running.responder.wait_for("MESSAGE", count=150, timeout=TIMEOUT)
    journal_octets = sum(len(e.raw) for e in running.responder.journal)
    clients = [await silent_client(running.port) for _ in range(4)]
    try:
        await running.until("subscribed", lambda s: s["receiving"] == 4)
        stats: dict[str, Any] = await running.until(
            "stuck", lambda s: s["buffered_octets"] > 0)
        # Each holds at most a write's worth (64 KiB chunks, over aiohttp's 64 KiB mark).
        per_client = stats["buffered_octets"] / 4
        assert per_client < 400_000 < journal_octets, (per_client, journal_octets)
    finally:
        for sock in clients:
            sock.close()
    await running.until("closed", lambda s: s["clients"] == 0)
