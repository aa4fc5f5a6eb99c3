"""SIP over WebSocket (RFC 7118): the ws: and wss: listeners, on aiohttp.

Each WebSocket message is one SIP message (RFC 7118 5.1), so no stream framing:
a message goes to the engine whole, like a datagram, and its responses go back on
the same WebSocket (the engine's Send names the connection). The handshake must
offer the ``sip`` subprotocol (RFC 7118 4); one that does not is refused with 400
before the upgrade, so that a client speaking some other protocol learns it at
once instead of getting SIP it cannot read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Protocol

from aiohttp import WSMsgType, web

from ..sip.transports import Transport
from ..uas.engine import Engine
from ..uas.events import Send, Source
from .address import ListenAddress, bind_socket, listen_backlog, reset_connection
from .connections import Acceptor, Admission, ConnectionBudget, handshake_backstop

log = logging.getLogger("sipresponder")
# Per-request and per-connection lines: a logger of their own, kept at WARNING unless
# --log-level info or debug asks, so that start-up lines at INFO do not turn them on.
traffic_log = logging.getLogger("sipresponder.requests")

SUBPROTOCOL = "sip"
# Messages up to this many times max_message_size reach the engine, which answers
# 513 to those over max_message_size (as on TCP); larger ones make aiohttp close the
# WebSocket with 1009 Message Too Big without buffering them whole.
OVERSIZE_FACTOR = 2
# aiohttp answers WebSocket pings itself; this bounds the closing handshake.
CLOSE_TIMEOUT = 5.0


class WebSocketHost(Protocol):
    """What the WebSocket listeners need of the server they belong to (transport.server's
    Server): its engine, one connection numbering shared with TCP, and its receive path."""

    @property
    def engine(self) -> Engine: ...

    @property
    def connections(self) -> ConnectionBudget: ...

    def next_conn_id(self) -> int: ...

    def receive(self, data: bytes, source: Source) -> None: ...

    def limit_hit(self, kind: str, message: str) -> None: ...


class WebSocketListeners:
    """Every ws: and wss: listener of one Server, and their open connections."""

    def __init__(self, server: WebSocketHost) -> None:
        self.server = server
        self.connections: dict[int, _Connection] = {}
        self._acceptors: list[Acceptor] = []
        # Each accepted connection's slot by its transport, from connection_made (the
        # handler finds its own by request.transport, and settles it at the upgrade).
        self.admitted: dict[asyncio.BaseTransport, Admission] = {}
        app = web.Application()
        # Any path: RFC 7118 does not name one, and clients use "/", "/ws", "/sip"...
        app.router.add_get("/{path:.*}", self._handle)
        # access_log=None: one log line per SIP message is the engine's job.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=CLOSE_TIMEOUT)
        self._setup = False

    async def start(self, addr: ListenAddress, ssl_context: ssl.SSLContext | None,
                    reuse_port: bool = False,
                    sock: socket.socket | None = None) -> ListenAddress:
        if not self._setup:
            await self._runner.setup()
            self._setup = True
        # Our own socket and accept (transport/connections.py), aiohttp's HTTP handling:
        # each connection counts from accept, its upgrade within tls_handshake_timeout.
        sock = sock or bind_socket(addr, reuse_port=reuse_port)
        bound = ListenAddress(addr.transport, addr.host, sock.getsockname()[1])
        server = self.server
        loop = asyncio.get_running_loop()
        http = self._runner.server
        assert http is not None  # set up above

        def accepted(conn: socket.socket, peer: tuple[str, int]) -> None:
            admission = server.connections.admit(conn, peer, "ws", addr.transport)
            if admission is None:
                return
            protocol = _Counted(http(), admission, self.admitted)
            admission.start(
                loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=ssl_context,
                    ssl_handshake_timeout=handshake_backstop(
                        server.engine.scenario.settings, ssl_context)),
                deadline=True,
            )

        acceptor = Acceptor(loop, sock, bound, server.engine.counters, accepted)
        acceptor.start(listen_backlog(server.engine.scenario.settings.max_connections))
        self._acceptors.append(acceptor)
        return bound

    async def close(self) -> None:
        for acceptor in self._acceptors:
            acceptor.close()
        self._acceptors.clear()
        for conn in list(self.connections.values()):
            conn.close()
        if self._setup:
            await self._runner.cleanup()

    def send(self, send: Send) -> bool:
        """Hand the engine's output to the WebSocket it names (server.dispatch calls
        this); False when that connection is gone."""
        conn = self.connections.get(send.conn or 0)  # ids start at 1: None finds none
        if conn is None:
            traffic_log.info("websocket %s to %s:%d is gone; message dropped",
                             send.conn, *send.remote)
            return False
        if send.data:
            conn.write(send.data)
        if send.reset:
            conn.reset()
        elif send.close_after:
            conn.close()
        return True

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        engine = server.engine
        settings = engine.scenario.settings
        transport = request.transport
        if transport is None:  # the peer left before its request was handled
            return web.Response(status=400)
        name: Transport = "wss" if request.secure else "ws"
        admission = self.admitted.get(transport)
        if admission is None:  # gone between the request and its handling
            return web.Response(status=400)
        # accept()'s addresses: the transport's peername is None once the peer reset it.
        peer, local = admission.peer, admission.local
        ws = web.WebSocketResponse(
            protocols=(SUBPROTOCOL,),
            max_msg_size=OVERSIZE_FACTOR * settings.max_message_size,
            # Keep-alives (pings) restart it: aiohttp's receive() loops over them.
            receive_timeout=settings.tcp_idle_timeout or None,
            timeout=CLOSE_TIMEOUT,
        )
        origin = request.headers.get("Origin")
        if settings.ws_origins and origin is not None and (
                origin.strip().lower().rstrip("/") not in settings.ws_origins):
            # A web page of another site (a browser always names its page's origin):
            # the scenario's ws_origins decide who may drive this responder.
            engine.counters["ws_origin_refused"] += 1
            traffic_log.info("websocket handshake from %s:%d refused: Origin %r is not in "
                             "settings.ws_origins", peer[0], peer[1], origin)
            return web.Response(status=403, text=f"Origin {origin!r} is not in the "
                                "scenario's settings.ws_origins\n")
        ready = ws.can_prepare(request)
        if not ready.ok:
            return web.Response(status=426, headers={"Upgrade": "websocket"},
                                text="SIP over WebSocket (RFC 7118): upgrade to websocket\n")
        if ready.protocol != SUBPROTOCOL:
            traffic_log.info("websocket handshake from %s:%d refused: no 'sip' subprotocol offered",
                     peer[0], peer[1])
            return web.Response(
                status=400, headers={"Sec-WebSocket-Protocol": SUBPROTOCOL},
                text="offer the 'sip' WebSocket subprotocol (RFC 7118 4)\n")
        await ws.prepare(request)
        admission.settle()
        conn_id = server.next_conn_id()
        source = Source(name, (peer[0], peer[1]), (local[0], local[1]), conn_id)
        conn = _Connection(ws, transport, source)
        self.connections[conn_id] = conn
        try:
            while True:
                try:
                    msg = await ws.receive()
                except TimeoutError:
                    engine.counters["ws_idle_closed"] += 1
                    traffic_log.info("closing idle %s connection from %s:%d",
                                     name, peer[0], peer[1])
                    break
                if msg.type is WSMsgType.TEXT:
                    conn.binary = False
                    data = msg.data.encode("utf-8")
                elif msg.type is WSMsgType.BINARY:
                    conn.binary = True
                    data = msg.data
                else:  # CLOSE, CLOSING, CLOSED, ERROR (e.g. over max_msg_size)
                    if msg.type is WSMsgType.ERROR:
                        traffic_log.info("%s connection from %s:%d: %s", name, peer[0], peer[1],
                                 msg.data)
                    break
                server.receive(data, source)
        finally:
            del self.connections[conn_id]
            conn.close()
            await conn.closed()
        return ws


# A queue entry that resets the stream (compared by identity).
_RESET = object()


class _Connection:
    """One WebSocket: writes in the order the engine produced them, from a queue,
    because the engine's output is synchronous and aiohttp's sending is not."""

    __slots__ = ("_queue", "_writer", "binary", "source", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport,
                 source: Source) -> None:
        self.ws = ws
        self.source = source  # whom it joins: the far end calls a client on it
        self.transport = transport  # the TCP (or TLS) stream under it, for a reset
        self.binary = False  # answer in the frame type the peer last used
        # None: close; RESET: reset the stream under the WebSocket (no close frame).
        self._queue: asyncio.Queue[bytes | object | None] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    def write(self, data: bytes) -> None:
        self._queue.put_nowait(data)

    def close(self) -> None:
        self._queue.put_nowait(None)

    def reset(self) -> None:
        self._queue.put_nowait(_RESET)

    async def closed(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer

    async def _write_loop(self) -> None:
        ws = self.ws
        try:
            while (data := await self._queue.get()) is not None:
                if data is _RESET:
                    # After what was queued before it is written, never a close frame.
                    reset_connection(self.transport)
                    return
                assert isinstance(data, bytes)
                if ws.closed:
                    continue  # drain: nothing can be sent any more
                if self.binary:
                    await ws.send_bytes(data)
                    continue
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    # A text frame must be UTF-8 (RFC 6455 5.6); octets that are not
                    # go in a binary frame, which RFC 7118 5.1 allows as well.
                    await ws.send_bytes(data)
                else:
                    await ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            traffic_log.info("websocket write failed: %s", exc)
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await ws.close()


class _Counted(asyncio.Protocol):
    """aiohttp's protocol for one connection, with its slot under the connection caps
    (aiohttp's RequestHandler has __slots__: it is wrapped, not patched)."""

    __slots__ = ("admission", "admitted", "inner")

    def __init__(self, inner: asyncio.Protocol, admission: Admission,
                 admitted: dict[asyncio.BaseTransport, Admission]) -> None:
        self.inner = inner
        self.admission = admission
        self.admitted = admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.admission.attach(transport)
        self.admitted[transport] = self.admission
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        transport = self.admission.transport
        if transport is not None:
            self.admitted.pop(transport, None)
        self.admission.release()
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()
