"""The asyncio side: listeners that feed the engine and write what it returns.

Thin on purpose: all protocol decisions are the engine's. This module owns the
listeners (their sockets come from address.bind_socket), connections, the one timer
handle the engine's deadlines need, and shutdown. Every transport hands each whole
message to Server.receive (the UDP batch reader, which asks the compiled path itself,
to Server.deferred): the one place the engine is called from is Server.deferred.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import ssl
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Protocol, cast

from ..scenario.model import FarEndStep, Scenario
from ..sip.framing import FramingError, Message, Ping, StreamFramer
from ..sip.message import parse_request
from ..sip.transports import MESSAGE_FRAMED, WEBSOCKET, Transport
from ..uac.dialog import DialogError
from ..uas.compiled import BATCHED_UDP
from ..uas.engine import Engine
from ..uas.events import Send, Source
from ..uas.fast import FastPath
from ..uas.outcome import AnsweredRecorder, Recorder
from .address import (
    ListenAddress,
    bind_socket,
    listen_backlog,
    reset_connection,
)
from .connections import Acceptor, Admission, ConnectionBudget, handshake_backstop
from .latency import LatencyHistogram
from .outbound import CannotSend, UnknownDialog, pick_connection, pick_udp, target_of
from .sources import UDPSources
from .tls import TLSOptions, server_context

if TYPE_CHECKING:
    from .rtp import MediaSockets
    from .rtp import _Sender as RtpSender
    from .websocket import WebSocketListeners

log = logging.getLogger("sipresponder")
# Per-request and per-connection lines: a logger of their own, kept at WARNING unless
# --log-level info or debug asks, so that start-up lines at INFO do not turn them on.
traffic_log = logging.getLogger("sipresponder.requests")


class Server:
    # The loop the listeners run on, from start(): nothing calls into the engine before.
    _loop: asyncio.AbstractEventLoop

    def __init__(self, scenario: Scenario, tls: TLSOptions | None = None) -> None:
        self.engine = Engine(scenario)
        self.recorder: Recorder | None = None  # given every Outcome (journal/record.py)
        # Given what the compiled path answered (Journal.record_answered); with a
        # recorder but none of these, the compiled path stays off so nothing goes unrecorded.
        self.answered_recorder: AnsweredRecorder | None = None
        self.tls = tls or TLSOptions()
        self._ssl: ssl.SSLContext | None = None
        self.tls_certificate: Path | None = None  # the file tls:/wss: clients should trust
        self._ws: WebSocketListeners | None = None
        self.latency = LatencyHistogram()  # time from a message's arrival to its answer
        self.addresses: list[ListenAddress] = []
        self._udp: dict[int, UDPListener] = {}
        self._tcp: dict[int, _TCPProtocol] = {}
        self._acceptors: list[Acceptor] = []
        # Every stream connection's slot from accept to close (transport/connections.py).
        self.connections: ConnectionBudget
        # One numbering for UDP listeners and TCP, TLS and WebSocket connections: a
        # Send's conn names exactly one of them.
        self._ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        # Sockets bound by the supervisor of --workers before it forked, by address: a
        # UDP one all workers share (--udp-balance datagram), or this worker's own
        # SO_REUSEPORT one, held by the supervisor so that no other process joins.
        self.prebound: dict[ListenAddress, socket.socket] = {}
        # The calls' RTP sockets (transport/rtp.py), made with the first stream; their
        # Sends carry the id under which ``rtp_senders`` holds each (never a listener).
        self._media: MediaSockets | None = None
        self.rtp_senders: dict[int, RtpSender] = {}

    @property
    def shared_udp(self) -> dict[ListenAddress, socket.socket]:
        """``prebound`` by the name testing/api.py and ops/cluster.py pass it by."""
        return self.prebound

    @shared_udp.setter
    def shared_udp(self, sockets: dict[ListenAddress, socket.socket]) -> None:
        self.prebound = sockets

    def set_scenario(self, scenario: Scenario) -> None:
        self.engine.scenario = scenario

    def next_conn_id(self) -> int:
        """A new listener or connection id (never 0, never reused)."""
        return next(self._ids)

    async def start(
        self, listen: list[ListenAddress], *, reuse_port: bool = False
    ) -> list[ListenAddress]:
        """Bind the listeners; ``reuse_port`` shares the ports with other workers."""
        self._loop = asyncio.get_running_loop()
        self.connections = ConnectionBudget(
            self._loop, lambda: self.engine.scenario.settings, self.engine.counters,
            self.limit_hit)
        try:
            for addr in listen:
                if addr.transport == "udp":
                    self.addresses.append(await self._start_udp(addr, reuse_port))
                elif addr.transport in WEBSOCKET:
                    self.addresses.append(await self._start_ws(addr, reuse_port))
                else:
                    self.addresses.append(await self._start_tcp(addr, reuse_port))
        except BaseException:
            await self.close()
            raise
        for addr in self.addresses:
            log.info("listening on %s", addr, extra={"event": "listening", "address": str(addr)})
        return self.addresses

    async def _start_udp(self, addr: ListenAddress, reuse_port: bool) -> ListenAddress:
        sock = self.prebound.get(addr) or bind_socket(addr, reuse_port=reuse_port)
        listener_id = self.next_conn_id()
        if BATCHED_UDP:
            # recvmmsg/sendmmsg with the compiled table (transport/batch.py)
            from .batch import BatchUDPListener

            batch = BatchUDPListener(self, listener_id, addr.host, sock)
            batch.start(self._loop)
            listener: UDPListener = batch
        else:
            protocol = _UDPProtocol(self, listener_id, addr.host)
            await self._loop.create_datagram_endpoint(lambda: protocol, sock=sock)
            listener = protocol
        self._udp[listener_id] = listener
        return ListenAddress("udp", addr.host, sock.getsockname()[1])

    def ssl_context(self) -> ssl.SSLContext:
        """One context for all tls: and wss: listeners, made (or loaded) on first use."""
        if self._ssl is None:
            self._ssl, self.tls_certificate = server_context(self.tls)
        return self._ssl

    async def _start_ws(self, addr: ListenAddress, reuse_port: bool) -> ListenAddress:
        if self._ws is None:
            # aiohttp is imported only by servers that speak WebSocket.
            from .websocket import WebSocketListeners

            self._ws = WebSocketListeners(self)
        ssl_context = self.ssl_context() if addr.transport == "wss" else None
        return await self._ws.start(addr, ssl_context, reuse_port, self.prebound.get(addr))

    async def _start_tcp(self, addr: ListenAddress, reuse_port: bool) -> ListenAddress:
        # TLS is TCP with asyncio's ssl= underneath: the same framing, limits and timers.
        ssl_context = self.ssl_context() if addr.transport == "tls" else None
        settings = self.engine.scenario.settings
        sock = self.prebound.get(addr) or bind_socket(addr, reuse_port=reuse_port)
        name = addr.transport
        bound = ListenAddress(name, addr.host, sock.getsockname()[1])
        loop = self._loop

        def accepted(conn: socket.socket, peer: tuple[str, int]) -> None:
            admission = self.connections.admit(conn, peer, "stream", name)
            if admission is None:
                return
            protocol = _TCPProtocol(self, self.next_conn_id(), addr.host, name, admission)
            admission.start(
                loop.connect_accepted_socket(
                    lambda: protocol, conn, ssl=ssl_context,
                    ssl_handshake_timeout=handshake_backstop(
                        self.engine.scenario.settings, ssl_context)),
                deadline=ssl_context is not None,
            )

        acceptor = Acceptor(loop, sock, bound, self.engine.counters, accepted)
        try:
            acceptor.start(listen_backlog(settings.max_connections))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {addr}: {exc.strerror}") from None
        self._acceptors.append(acceptor)
        return bound

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._media is not None:
            self._media.close()
        for acceptor in self._acceptors:
            acceptor.close()
        self._acceptors.clear()
        if hasattr(self, "connections"):
            self.connections.cancel()
        for conn in list(self._tcp.values()):
            conn.transport.abort()
        for udp in self._udp.values():
            udp.transport.close()
        if self._ws is not None:
            await self._ws.close()

    def limit_hit(self, kind: str, message: str) -> None:
        self.engine.limit_log.hit(kind, "%s", message)

    # -- engine glue -------------------------------------------------------------------
    def loop_time(self) -> float:
        return self._loop.time()

    def compiled(self) -> FastPath | None:
        """The compiled path (uas/fast.py) when it may answer now: built, allowed by the
        scenario, nothing recorded that it could not record, no per-request log lines
        asked for; else None, and the engine answers everything."""
        fast = self.engine.fast
        if (
            fast is None
            or (self.recorder is not None and self.answered_recorder is None)
            or traffic_log.isEnabledFor(logging.INFO)
        ):
            return None
        return fast

    def receive(self, data: bytes, source: Source) -> None:
        """One whole message from any transport: the answer, written, and the time that
        took (the admin API's processing histogram). The compiled path answers first
        when it can; whatever it defers, ``deferred`` gives the engine."""
        started = perf_counter()
        missed = None
        path = self.compiled()
        if path is not None:
            got = path.answer(data, source, self._loop.time(), self.answered_recorder)
            if isinstance(got, bytes):  # b"": an ACK absorbed
                if got:
                    self.dispatch([Send(got, source.transport, source.remote, source.conn)])
                self.latency.observe(perf_counter() - started)
                return
            missed = got
        self.deferred(data, source, missed, started)

    def deferred(self, data: bytes, source: Source, missed: int | None = None,
                 started: float | None = None) -> None:
        """The engine's answer to a message the compiled path deferred (or was not
        asked about), recorded and written. ``missed``: the compiled path missed it
        under this listener number (``FastPath.answer``, ``serve_udp``), and learns
        from the engine's answer. ``started``: when the message arrived, if earlier."""
        if started is None:
            started = perf_counter()
        engine = self.engine
        fast = engine.fast
        outcome = engine.handle(data, source, self._loop.time())
        if self.recorder is not None:
            self.recorder(outcome)
        self.dispatch(outcome.sends)
        if missed is not None and fast is not None and engine.fast is fast:
            fast.learn(outcome, missed)
        self.latency.observe(perf_counter() - started)

    def dispatch(self, sends: list[Send]) -> None:
        lost: list[Send] = []
        for send in sends:
            # Ids start at 1, so a Send without a conn (None) finds no listener.
            if send.transport == "udp":
                udp = self._udp.get(send.conn or 0)
                if udp is not None and send.data:
                    udp.transport.sendto(send.data, send.remote)
                elif udp is None and send.data:
                    rtp = self.rtp_senders.get(send.conn or 0)  # a call's RTP stream
                    if rtp is not None:
                        rtp.sendto(send.data, send.remote)
            elif send.transport in WEBSOCKET:
                if (self._ws is None or not self._ws.send(send)) and send.data:
                    lost.append(send)
            else:
                conn = self._tcp.get(send.conn or 0)
                if conn is None:
                    traffic_log.info(
                        "connection %s to %s:%d is gone; message dropped", send.conn, *send.remote
                    )
                    lost.append(send)
                    continue
                if send.data:
                    conn.transport.write(send.data)
                if send.reset:
                    reset_connection(conn.transport)
                elif send.close_after:
                    conn.transport.close()
        far = self.engine.far
        if lost and far is not None:
            # A request of the far end's whose connection is gone: its transaction
            # fails now (RFC 3261 17.1.4), not after 64*T1 of silence.
            failed = [s for send in lost
                      for s in far.undeliverable(send, "its connection is gone",
                                                 self._loop.time())]
            if failed:
                self.dispatch(failed)
                return
        if self.engine.media is not None:
            self._sync_media()
        self._arm_timer()

    def _sync_media(self) -> None:
        """Bind and close the RTP sockets the engine's media table asks for."""
        if self._media is None:
            from .rtp import MediaSockets

            self._media = MediaSockets(self)
        self._media.sync()

    # -- the far end, driven from outside (the admin API, the tests' Responder) --------
    def far_dialogs(self) -> list[dict[str, object]]:
        """The far end's live dialogs (``FarEnd.live``); none before it exists."""
        far = self.engine.far
        return far.live() if far is not None else []

    def far_send(self, call_id: str, step: FarEndStep) -> None:
        """Send ``step`` now in the live far-end dialog of ``call_id``: UnknownDialog
        when there is none, CannotSend (one line) when it cannot go."""
        far = self.engine.far
        if far is None or not any(d["call_id"] == call_id for d in far.live()):
            raise UnknownDialog(f"no live far-end dialog has Call-ID {call_id!r}")
        try:
            sends = far.send(call_id, step, self._loop.time())
        except DialogError as exc:
            raise CannotSend(str(exc)) from None
        self.dispatch(sends)

    def far_call(self, target_uri: str, steps: tuple[FarEndStep, ...],
                 transport: Transport | None = None, *, peer: tuple[str, int] | None = None,
                 local: tuple[str, int] | None = None) -> str:
        """Call ``target_uri`` (a literal address: names are never resolved) with
        ``steps`` (the first the INVITE) and return the new Call-ID. It goes out from
        a UDP listener, or on an open connection from the client (``peer``: the
        address it came from, else the target's; ``local``: the listener to prefer);
        ValueError for a bad target, CannotSend when it cannot go."""
        uri, transport, address = target_of(target_uri, transport)
        peer = peer or address
        if peer is None:
            raise ValueError(f"target {target_uri!r}: its host is a name, and sipresponder"
                             " never resolves names: give a literal IP address")
        source = self._source_towards(transport, peer, local)
        try:
            call_id, sends = self.engine.far_end().call(uri.raw, source, steps,
                                                         self._loop.time())
        except DialogError as exc:
            raise CannotSend(str(exc)) from None
        self.dispatch(sends)
        return call_id

    def far_adopt(self, data: bytes, transport: Transport, peer: tuple[str, int],
                  local: tuple[str, int], local_tag: str) -> None:
        """Have the far end track the dialog of an INVITE (``data``, from ``peer`` over
        ``transport`` to ``local``) that a rule without steps answered 2xx with To tag
        ``local_tag``; CannotSend when its way back or the dialog is gone."""
        source = self._source_towards(transport, peer, local)
        try:
            self.engine.far_end().adopt(parse_request(data, datagram=transport in MESSAGE_FRAMED),
                                        source, local_tag)
        except ValueError as exc:  # DialogError, or a request that no longer parses
            raise CannotSend(f"the call cannot be taken over: {exc}") from None

    def _source_towards(self, transport: Transport, peer: tuple[str, int],
                        local: tuple[str, int] | None) -> Source:
        if transport == "udp":
            return pick_udp(((u.sources.bound_ip, u.sources.local_port,
                              u.sources.__getitem__) for u in self._udp.values()),
                            peer, local)
        return pick_connection(self._connection_sources(), transport, peer)

    def _connection_sources(self) -> list[Source]:
        found = [conn.source for conn in self._tcp.values()]
        if self._ws is not None:
            found += [conn.source for conn in self._ws.connections.values()]
        return found

    def _arm_timer(self) -> None:
        deadline = self.engine.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.dispatch(self.engine.fire(self._loop.time()))


class UDPSender(Protocol):
    """What Server.dispatch and close need of a UDP listener's transport."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...

    def close(self) -> None: ...


class UDPListener(Protocol):
    @property
    def transport(self) -> UDPSender: ...

    @property
    def sources(self) -> UDPSources: ...


class _UDPProtocol(asyncio.DatagramProtocol):
    # Set by connection_made, which asyncio calls before any datagram arrives.
    transport: asyncio.DatagramTransport

    def __init__(self, server: Server, listener_id: int, bound_ip: str) -> None:
        self.server = server
        self.listener_id = listener_id
        self.bound_ip = bound_ip
        self.sources = UDPSources(listener_id, bound_ip)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (asyncio's contract; uvloop's is no subclass).
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.sources.local_port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.receive(data, self.sources[addr])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: not our problem to solve.
        traffic_log.debug("UDP error: %s", exc)


class _TCPProtocol(asyncio.Protocol):
    # Set by connection_made, which asyncio calls before any data arrives.
    transport: asyncio.Transport

    def __init__(self, server: Server, conn_id: int, bound_ip: str,
                 name: Transport, admission: Admission) -> None:
        self.server = server
        self.conn_id = conn_id
        self.bound_ip = bound_ip
        self.name = name  # "tcp" or "tls": what the engine and the logs call this transport
        self.admission = admission  # its slot under the connection caps
        # The addresses accept() gave: asyncio's peername is None when the peer has
        # already reset the connection.
        self.source = Source(name, admission.peer, admission.local, conn_id)
        settings = server.engine.scenario.settings
        self.framer = StreamFramer(settings.max_message_size)
        self._read_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._last_activity = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transport (asyncio's contract; uvloop's is no subclass).
        self.transport = cast(asyncio.Transport, transport)
        self.admission.attach(transport)
        self.admission.settle()  # a TLS connection is made once its handshake is done
        server = self.server
        settings = server.engine.scenario.settings
        server._tcp[self.conn_id] = self
        self._last_activity = server._loop.time()
        self._arm_idle(settings.tcp_idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._tcp.pop(self.conn_id, None)
        self.admission.release()
        for timer in (self._read_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        # A client that leaves is its own business: one quiet line, never a traceback.
        if exc is not None or self.framer.pending:
            traffic_log.info(
                "%s connection from %s:%d ended%s%s", self.name, *self.source.remote,
                f" ({exc})" if exc is not None else "",
                f" with {self.framer.pending} octets of an unfinished message"
                if self.framer.pending else "")

    def _arm_idle(self, timeout: float) -> None:
        if timeout:
            self._idle_timer = self.server._loop.call_at(
                self._last_activity + timeout, self._idle_check
            )

    def _idle_check(self) -> None:
        timeout = self.server.engine.scenario.settings.tcp_idle_timeout
        self._idle_timer = None
        if not timeout:
            return
        if self.server._loop.time() - self._last_activity >= timeout:
            self.server.engine.counters["tcp_idle_closed"] += 1
            traffic_log.info("closing idle tcp connection from %s:%d", *self.source.remote)
            self.transport.close()
        else:
            self._arm_idle(timeout)

    def data_received(self, data: bytes) -> None:
        server = self.server
        self._last_activity = server._loop.time()
        if not self.framer.pending and not self.framer.failed:
            path = server.compiled()
            if path is not None:
                data = self._answer_compiled(path, data)
                if not data:
                    self._watch_incomplete()
                    return
        frames = self.framer.feed(data)
        if frames and self._read_timer is not None:
            # A message completed: the timeout is for each message, not the connection.
            self._read_timer.cancel()
            self._read_timer = None
        for frame in frames:
            if isinstance(frame, Message):
                server.receive(frame.data, self.source)
            elif isinstance(frame, Ping):
                self.transport.write(b"\r\n")
            elif isinstance(frame, FramingError):
                server.dispatch(server.engine.handle_framing_error(
                    frame.head, frame.code, frame.reason, self.source))
        self._watch_incomplete()

    def _answer_compiled(self, path: FastPath, data: bytes) -> bytes:
        """Answer the whole messages at the start of ``data`` that the compiled path
        knows, with one write; return the rest, for the framer and the engine."""
        server = self.server
        started = perf_counter()
        out, used, count = path.answer_stream(data, self.source, self._last_activity,
                                              server.answered_recorder)
        if not used:
            return data
        if out:
            self.transport.write(out)
        server.latency.observe_many((perf_counter() - started) / count, count)
        return data[used:]

    def _watch_incomplete(self) -> None:
        """Close a connection whose incomplete message stalls (RFC 4475 clerr.dat over TCP)."""
        if self.framer.pending == 0:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
            return
        if self._read_timer is None:
            timeout = self.server.engine.scenario.settings.tcp_read_timeout
            self._read_timer = self.server._loop.call_later(timeout, self._read_timeout)

    def _read_timeout(self) -> None:
        self._read_timer = None
        if self.framer.pending:
            self.server.engine.counters["tcp_read_timeouts"] += 1
            ip, port = self.source.remote
            self.server.limit_hit(
                "tcp_read_timeout",
                f"closing tcp connection from {ip}:{port}: incomplete message not completed "
                "within tcp_read_timeout",
            )
            self.transport.close()
