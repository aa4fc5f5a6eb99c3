"""Connection fairness (issue 18): one source cannot take every stream slot, TLS
handshakes and WebSocket upgrades count from accept and have their own deadline, a
process out of file descriptors says so and recovers, and a peer that resets its
connection at once costs no traceback.

The responder runs in-process except for the descriptor test, which needs a process
of its own with a low RLIMIT_NOFILE. Every wait is for a condition, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import resource
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage

from sipresponder.testing.api import Responder
from sipresponder.transport.tls import TLSOptions
from tests.sipclient import make_request, parse_response

TIMEOUT = 5.0
OTHER_SOURCE = "127.0.0.2"  # a second loopback source address (Linux answers all of 127/8)
STREAMS = ["tcp", "tls", "ws"]


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def client_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


async def options(r: Responder, transport: str, source: str = "127.0.0.1") -> int:
    """One OPTIONS over a fresh ``transport`` connection from ``source``: the status."""
    port = r.address(transport)[1]  # type: ignore[arg-type]
    if transport == "ws":
        request = make_request("OPTIONS", "sip:200@127.0.0.1", transport="WS")
        async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT,
                           local_addr=(source, 0)) as ws:
            await ws.send(request.decode())
            answer = await asyncio.wait_for(ws.recv(), TIMEOUT)
        return parse_response(answer.encode() if isinstance(answer, str) else answer).code
    context = client_context(r.tls_certificate) if transport == "tls" else None
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=context, local_addr=(source, 0)), TIMEOUT)
    try:
        writer.write(make_request("OPTIONS", "sip:200@127.0.0.1", transport=transport.upper()))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        return parse_response(head).code
    finally:
        writer.close()


def raw_connections(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    """``count`` plain TCP connections that say nothing (no ClientHello, no HTTP)."""
    return [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT,
                                     source_address=(source, 0)) for _ in range(count)]


async def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset) within the timeout."""
    def read() -> bool:
        sock.settimeout(TIMEOUT)
        try:
            return sock.recv(1) == b""
        except ConnectionError:
            return True
        except TimeoutError:
            return False
    return await asyncio.to_thread(read)


def listener(transport: str, tls_dir: Path, settings: str) -> Responder:
    return Responder(f"[settings]\n{settings}\n[default]\ncode = 200\n",
                     listen=[f"{transport}:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir))


# -- max_connections_per_source ------------------------------------------------------
@pytest.mark.parametrize("transport", STREAMS)
async def test_one_source_cannot_lock_out_another(transport: str, tls_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """One source's idle connections (silent: no handshake even) take its own share
    only; a client from another address is still served."""
    caplog.set_level(logging.WARNING, logger="sipresponder")
    settings = "max_connections = 12\nmax_connections_per_source = 8"
    async with listener(transport, tls_dir, settings) as r:
        port = r.address(transport)[1]  # type: ignore[arg-type]
        counters = r.server.engine.counters
        hoard = raw_connections(port, 11)
        try:
            await until(lambda: counters["per_source_refused"] == 3, "3 refusals")
            # The three over the cap are closed at once; the eight stay open.
            refused = [s for s in hoard if await closed_by_server_now(s)]
            assert len(refused) == 3
            assert await options(r, transport, OTHER_SOURCE) == 200
        finally:
            for sock in hoard:
                sock.close()
    lines = [rec.getMessage() for rec in caplog.records
             if "max_connections_per_source" in rec.getMessage()]
    # Logged once for the source, not once per refusal.
    assert lines == [f"{transport} connection from 127.0.0.1 refused: "
                     "max_connections_per_source (8) reached; further refusals of this "
                     "source are counted, not logged, for 60 s"]


async def closed_by_server_now(sock: socket.socket) -> bool:
    """Whether ``sock`` is closed by the server already (no waiting for more)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True
    finally:
        sock.setblocking(True)


async def test_the_cap_spans_transports_and_frees_slots_on_close(tls_dir: Path) -> None:
    scenario = ("[settings]\nmax_connections_per_source = 2\n[default]\ncode = 200\n")
    async with Responder(scenario, listen=["tcp:127.0.0.1:0", "tls:127.0.0.1:0",
                                           "ws:127.0.0.1:0"],
                         tls=TLSOptions(directory=tls_dir)) as r:
        counters = r.server.engine.counters
        held = [*raw_connections(r.address("tcp")[1], 1),
                *raw_connections(r.address("tls")[1], 1)]
        try:
            await until(lambda: r.server.connections.per_source["127.0.0.1"] == 2,
                        "both connections counted")
            [ws_one] = raw_connections(r.address("ws")[1], 1)
            assert await closed_by_server(ws_one)
            assert counters["per_source_refused"] == 1
        finally:
            for sock in held:
                sock.close()
        await until(lambda: "127.0.0.1" not in r.server.connections.per_source,
                    "the slots to be freed")
        for transport in STREAMS:
            assert await options(r, transport) == 200


async def test_zero_turns_the_per_source_cap_off(tls_dir: Path) -> None:
    async with listener("tcp", tls_dir, "max_connections_per_source = 0") as r:
        hoard = raw_connections(r.address("tcp")[1], 70)  # over the default of 64
        try:
            await until(lambda: len(r.server._tcp) == 70, "70 connections held")
            assert r.server.engine.counters["per_source_refused"] == 0
        finally:
            for sock in hoard:
                sock.close()


# -- handshakes count from accept, with their own deadline -----------------------------
@pytest.mark.parametrize("transport", ["tls", "ws"])
async def test_handshakes_in_progress_count_against_max_connections(
        transport: str, tls_dir: Path) -> None:
    settings = "max_connections = 4\nmax_connections_per_source = 0"
    async with listener(transport, tls_dir, settings) as r:
        counters = r.server.engine.counters
        refused = "tcp_refused" if transport == "tls" else "ws_refused"
        stalled = raw_connections(r.address(transport)[1], 4)  # type: ignore[arg-type]
        try:
            await until(lambda: r.server.connections.pools[
                "stream" if transport == "tls" else "ws"] == 4, "4 handshakes counted")
            # A real client is the fifth: closed at accept, before any handshake.
            with pytest.raises((OSError, InvalidMessage)):
                await options(r, transport)
            assert counters[refused] == 1
        finally:
            for sock in stalled:
                sock.close()
        await until(lambda: not r.server.connections.pools[
            "stream" if transport == "tls" else "ws"], "the slots to be freed")
        assert await options(r, transport) == 200


@pytest.mark.parametrize("transport", ["tls", "ws", "wss"])
async def test_a_handshake_that_never_finishes_is_closed(transport: str,
                                                         tls_dir: Path) -> None:
    async with listener(transport, tls_dir, "tls_handshake_timeout = 0.3") as r:
        port = r.address(transport)[1]  # type: ignore[arg-type]
        [silent] = raw_connections(port, 1)
        [partial] = raw_connections(port, 1)
        # The start of an HTTP request (or a ClientHello's first octets) and no more.
        partial.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" if transport == "ws" else b"\x16\x03")
        try:
            assert await closed_by_server(silent)
            assert await closed_by_server(partial)
        finally:
            silent.close()
            partial.close()
        assert r.server.engine.counters["handshake_timeouts"] == 2
        await until(lambda: not any(r.server.connections.pools.values()), "slots freed")


async def test_a_finished_upgrade_outlives_the_handshake_deadline(tls_dir: Path) -> None:
    async with listener("ws", tls_dir, "tls_handshake_timeout = 0.2") as r:
        request = make_request("OPTIONS", "sip:200@127.0.0.1", transport="WS").decode()
        async with connect(r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws:
            loop = asyncio.get_running_loop()
            past = loop.time() + 0.5
            await until(lambda: loop.time() > past, "the deadline to pass")
            await ws.send(request)
            answer = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert str(answer).startswith("SIP/2.0 200 OK")
        assert r.server.engine.counters["handshake_timeouts"] == 0


# -- a reset before the server looked: no traceback -------------------------------------
def reset_at_once(port: int, count: int) -> None:
    """Connect and reset (SO_LINGER 0, then close) before the server accepts."""
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def test_a_reset_before_accept_logs_no_traceback(tls_dir: Path) -> None:
    """The real CLI (uvloop, whose transports have no peername once the peer reset):
    50 resets on each stream listener, then a client is served, and the log is quiet."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--log-level", "debug",
         "--tls-dir", str(tls_dir), *(f"--listen={t}:127.0.0.1:0" for t in STREAMS)],
        stderr=subprocess.PIPE, text=True)
    ports: dict[str, int] = {}
    log: list[str] = []
    try:
        assert proc.stderr is not None
        while len(ports) < len(STREAMS):
            line = proc.stderr.readline()
            assert line, "".join(log)
            log.append(line)
            if "listening on " in line:
                transport, port = line.split("listening on ")[1].split(":127.0.0.1:")
                ports[transport] = int(port)
        context = client_context(tls_dir / "selfsigned-cert.pem")
        for transport, port in ports.items():
            reset_at_once(port, 50)
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
                conn = (context.wrap_socket(raw, server_hostname="localhost")
                        if transport == "tls" else raw)
                if transport == "ws":
                    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                b"Sec-WebSocket-Protocol: sip\r\n\r\n")
                    assert raw.recv(65535).startswith(b"HTTP/1.1 101 ")
                else:
                    conn.sendall(make_request("OPTIONS", "sip:200@127.0.0.1",
                                              transport=transport.upper()))
                    assert conn.recv(65535).startswith(b"SIP/2.0 200 OK\r\n")
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=10)
    text = "".join(log) + rest
    assert "Traceback" not in text and " ERROR " not in text, text


async def test_a_stream_client_that_leaves_mid_message_is_logged_quietly(
        tls_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # An earlier configure_logging (a CLI test in this process) may have set it higher.
    caplog.set_level(logging.DEBUG, logger="sipresponder.requests")
    async with listener("tcp", tls_dir, "") as r:
        port = r.address("tcp")[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TCP")[:40])
        await writer.drain()
        await until(lambda: len(r.server._tcp) == 1, "the connection")
        writer.transport.abort()
        await until(lambda: not r.server._tcp, "the connection to be gone")
    assert [rec for rec in caplog.records if rec.levelno >= logging.WARNING] == []
    quiet = [rec for rec in caplog.records if "ended" in rec.getMessage()]
    assert len(quiet) == 1 and quiet[0].levelno == logging.INFO
    assert "40 octets of an unfinished message" in quiet[0].getMessage()


# -- out of file descriptors -----------------------------------------------------------
class Child:
    """``sipresponder serve`` in a process of its own with RLIMIT_NOFILE ``limit``."""

    def __init__(self, tmp_path: Path, limit: int, *extra: str) -> None:
        scenario = tmp_path / "fds.toml"
        scenario.write_text("[settings]\nmax_connections_per_source = 0\n"
                            "[default]\ncode = 200\n")

        def low_limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario),
             "--listen", "tcp:127.0.0.1:0", "--log-level", "info", *extra],
            stderr=subprocess.PIPE, text=True, preexec_fn=low_limit)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.log.append(line)
            if text in line:
                return line
        pytest.fail(f"no {text!r} in the child's log: {''.join(self.log)}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def low_fd_child(tmp_path: Path) -> Iterator[Child]:
    child = Child(tmp_path, 40)
    yield child
    child.stop()


def test_running_out_of_descriptors_is_logged_and_survived(low_fd_child: Child) -> None:
    child = low_fd_child
    port = int(child.wait_for("listening on tcp:").rsplit(":", 1)[1])
    budget = child.wait_for("file descriptors: ")
    assert "40 per process" in budget and "hard limit 40" in budget
    held: list[socket.socket] = []
    try:
        # Fill the budget: connections past it wait in the listen backlog.
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        line = child.wait_for("cannot accept on tcp:127.0.0.1:")
        assert "Too many open files (EMFILE)" in line
    finally:
        for sock in held:
            sock.close()
    # Descriptors come back: the listener serves a new client.
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        client.settimeout(15)
        client.sendall(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TCP"))
        assert client.recv(65535).startswith(b"SIP/2.0 200 OK\r\n")
    assert child.proc.poll() is None
    # Once a minute, not once per attempt.
    with contextlib.suppress(queue.Empty):
        while True:
            child.log.append(child.lines.get_nowait())
    assert sum("cannot accept on" in line for line in child.log) == 1


def test_the_admin_api_out_of_descriptors_is_logged_and_survived(tmp_path: Path) -> None:
    """The admin API accepts through the same Acceptor: at the limit it says so (uvloop's
    own accept closed the waiting connections without a word) and serves again after."""
    child = Child(tmp_path, 40, "--admin", "127.0.0.1:0")
    try:
        port = int(child.wait_for("admin API on http://").rsplit(":", 1)[1])
        held: list[socket.socket] = []
        try:
            for _ in range(60):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            line = child.wait_for(f"cannot accept on tcp:127.0.0.1:{port}")
            assert "Too many open files (EMFILE)" in line
        finally:
            for sock in held:
                sock.close()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.settimeout(15)
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Connection: close\r\n\r\n")
            assert client.recv(65535).startswith(b"HTTP/1.1 200 OK\r\n")
        assert child.proc.poll() is None
    finally:
        child.stop()


def test_start_up_raises_the_soft_limit_toward_the_hard_one(tmp_path: Path) -> None:
    def low_soft() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))

    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--listen", "tcp:127.0.0.1:0",
         "--log-level", "info"], stderr=subprocess.PIPE, text=True, preexec_fn=low_soft)
    try:
        assert proc.stderr is not None
        line = ""
        while "file descriptors" not in line:  # after the listeners' lines
            line = proc.stderr.readline()
            assert line, "no budget line"
        assert "file descriptors: 4096 per process (soft RLIMIT_NOFILE, raised from 256; " \
            "hard limit 4096): room for about " in line
        room = int(line.split("room for about ")[1].split()[0])
        assert 3900 < room < 4096  # less what the process holds itself
    finally:
        proc.terminate()
        proc.wait(10)
