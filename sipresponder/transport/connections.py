"""Stream connections (TCP, TLS, WS, WSS) from accept to close: the caps, the
handshake deadline, and accepting when file descriptors run out.

The listeners accept here rather than through the loop's ``create_server``, because
there a connection exists for the application only once its TLS handshake is done
(5,000 handshakes held open counted against nothing), and when descriptors run out
asyncio logs an error per attempt while uvloop (libuv's EMFILE trick) closes the
waiting connections without a word. Here every accepted socket takes a slot at once:
``max_connections`` per pool (TCP and TLS together; WebSockets their own) and
``max_connections_per_source`` per source address across all of them; a socket over
either is closed at once. A TLS handshake, or a WebSocket's handshake and upgrade,
must finish within ``tls_handshake_timeout`` of the accept. The loop then takes the
socket with ``connect_accepted_socket``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from ..scenario.model import Settings
from .address import ListenAddress

log = logging.getLogger("sipresponder")
traffic_log = logging.getLogger("sipresponder.requests")

Pool = Literal["stream", "ws"]
# The counter of connections refused at max_connections, per pool (as before issue 18).
_REFUSED = {"stream": "tcp_refused", "ws": "ws_refused"}
# Out of descriptors (or kernel memory for one): the connection waits in the backlog.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# While out of descriptors, accept is tried again this often (not on every wake-up:
# the listening socket stays readable, so listening for it would spin).
ACCEPT_RETRY = 0.25
# A source refused for its cap, or running out of descriptors, is logged this often.
LOG_INTERVAL = 60.0
_SOURCES_LOGGED = 4096  # sources whose last refusal line is remembered


class Admission:
    """One accepted connection's slot, held until the connection is gone."""

    __slots__ = ("_budget", "_settled", "_task", "_timer", "ip", "local", "name", "peer",
                 "pool", "transport")

    def __init__(self, budget: ConnectionBudget, pool: Pool, name: str,
                 peer: tuple[str, int], local: tuple[str, int]) -> None:
        self._budget = budget
        self.pool = pool
        self.name = name  # the transport, for log lines
        self.ip = peer[0]
        self.peer = peer
        self.local = local
        self.transport: asyncio.BaseTransport | None = None
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._settled = False

    def start(self, connect: Coroutine[Any, Any, Any], *, deadline: bool) -> None:
        """Run the loop's ``connect_accepted_socket``; ``deadline``: a handshake must
        finish (``settle``) within tls_handshake_timeout."""
        budget = self._budget
        loop = budget.loop
        self._task = task = loop.create_task(connect)
        budget.tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._connected)
        if deadline:
            self._timer = loop.call_later(budget.settings().tls_handshake_timeout,
                                          self._expire)
        else:
            self._settled = True

    def attach(self, transport: asyncio.BaseTransport) -> None:
        """The protocol's connection_made: the transport exists (after TLS's handshake)."""
        self.transport = transport

    def settle(self) -> None:
        """The handshake is done (TLS, or a WebSocket's upgrade): no deadline any more."""
        self._settled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def release(self) -> None:
        """The connection is gone (its protocol's connection_lost, or a failed start)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        budget, self._budget = self._budget, None  # type: ignore[assignment]
        if budget is not None:
            budget.release(self)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        budget = self._budget
        if budget is not None:
            budget.tasks.discard(task)
        self._task = None
        error = None if task.cancelled() else task.exception()
        if (task.cancelled() or error is not None) and self.transport is None:
            # A peer that left or spoke no TLS: its business, one quiet line.
            traffic_log.info("%s connection from %s:%d ended before it started: %s",
                             self.name, *self.peer, error or "handshake timed out")
            self.release()

    def _expire(self) -> None:
        self._timer = None
        budget = self._budget
        if self._settled or budget is None:
            return
        budget.counters["handshake_timeouts"] += 1
        budget.limit_hit(
            "tls_handshake_timeout",
            f"closing {self.name} connection from {self.peer[0]}:{self.peer[1]}: handshake "
            "not finished within tls_handshake_timeout "
            f"({budget.settings().tls_handshake_timeout} s)",
        )
        if self.transport is not None:
            self.transport.abort()  # type: ignore[attr-defined]
        elif self._task is not None:
            self._task.cancel()  # the loop closes the socket mid-handshake


class ConnectionBudget:
    """The slots of one server's stream connections, by pool and by source address."""

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: Callable[[], Settings],
                 counters: Counter[str], limit_hit: Callable[[str, str], None]) -> None:
        self.loop = loop
        self.settings = settings  # the current scenario's (it may be swapped)
        self.counters = counters
        self.limit_hit = limit_hit
        self.pools: Counter[str] = Counter()
        self.per_source: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[Any]] = set()  # connections being started
        self._source_logged: dict[str, float] = {}

    def admit(self, conn: socket.socket, peer: tuple[str, int], pool: Pool,
              name: str) -> Admission | None:
        """A slot for the socket just accepted from ``peer``, or None (it is closed)."""
        settings = self.settings()
        ip = peer[0]
        per_source = settings.max_connections_per_source
        if self.pools[pool] >= settings.max_connections:
            self.counters[_REFUSED[pool]] += 1
            self.limit_hit(
                "max_connections",
                f"{name} connection from {ip}:{peer[1]} refused: "
                f"max_connections ({settings.max_connections}) reached",
            )
        elif per_source and self.per_source[ip] >= per_source:
            self.counters["per_source_refused"] += 1
            self._log_source(ip, name, per_source)
        else:
            try:
                local = conn.getsockname()
            except OSError:  # already reset by the peer
                conn.close()
                return None
            self.pools[pool] += 1
            self.per_source[ip] += 1
            return Admission(self, pool, name, peer, (local[0], local[1]))
        conn.close()
        return None

    def release(self, admission: Admission) -> None:
        self.pools[admission.pool] -= 1
        ip = admission.ip
        left = self.per_source[ip] - 1
        if left > 0:
            self.per_source[ip] = left
        else:
            del self.per_source[ip]  # the table holds only sources with connections

    def cancel(self) -> None:
        """Stop the connections still being started (the server is closing)."""
        for task in list(self.tasks):
            task.cancel()

    def _log_source(self, ip: str, name: str, cap: int) -> None:
        now = self.loop.time()
        logged = self._source_logged
        if now - logged.get(ip, -LOG_INTERVAL) < LOG_INTERVAL:
            return
        if len(logged) >= _SOURCES_LOGGED:
            for old in [k for k, t in logged.items() if now - t >= LOG_INTERVAL]:
                del logged[old]
            if len(logged) >= _SOURCES_LOGGED:
                logged.clear()
        logged[ip] = now
        log.warning(
            "%s connection from %s refused: max_connections_per_source (%d) reached; "
            "further refusals of this source are counted, not logged, for %d s",
            name, ip, cap, LOG_INTERVAL,
            extra={"event": "limit", "limit": "max_connections_per_source", "source": ip},
        )


class DescriptorLog:
    """Running out of file descriptors: one line a minute per process, never silence."""

    _last = -LOG_INTERVAL

    @classmethod
    def exhausted(cls, loop: asyncio.AbstractEventLoop, address: ListenAddress,
                  exc: OSError, counters: Counter[str]) -> None:
        counters["fd_exhausted"] += 1
        now = loop.time()
        if now - cls._last < LOG_INTERVAL:
            return
        cls._last = now
        log.error(
            "cannot accept on %s: %s (%s); new connections wait in the listen backlog "
            "until descriptors are freed (see RLIMIT_NOFILE, max_connections); this is "
            "logged at most once a minute",
            address, os.strerror(exc.errno or 0), errno.errorcode.get(exc.errno or 0, "?"),
            extra={"event": "fd_exhausted", "address": str(address)},
        )


class Acceptor:
    """Accepts on one listening stream socket and hands each connection on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 address: ListenAddress, counters: Counter[str],
                 on_accept: Callable[[socket.socket, tuple[str, int]], None]) -> None:
        self.loop = loop
        self.sock = sock
        self.address = address
        self.counters = counters
        self.on_accept = on_accept
        self._batch = 1
        self._retry: asyncio.TimerHandle | None = None
        self._reading = False

    def start(self, backlog: int) -> None:
        self.sock.setblocking(False)
        self.sock.listen(backlog)
        self._batch = backlog  # as asyncio: at most a backlog's worth per wake-up
        self._resume()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._reading:
            self.loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()

    def _resume(self) -> None:
        self._retry = None
        self.loop.add_reader(self.sock.fileno(), self._ready)
        self._reading = True
        self._ready()  # connections that waited in the backlog meanwhile

    def _ready(self) -> None:
        for _ in range(self._batch):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the peer left while in the backlog
            except OSError as exc:
                if exc.errno not in OUT_OF_DESCRIPTORS:
                    traffic_log.info("accept on %s failed: %s", self.address, exc)
                    return
                DescriptorLog.exhausted(self.loop, self.address, exc, self.counters)
                self.loop.remove_reader(self.sock.fileno())
                self._reading = False
                self._retry = self.loop.call_later(ACCEPT_RETRY, self._resume)
                return
            conn.setblocking(False)
            try:
                self.on_accept(conn, (peer[0], peer[1]))
            except OSError as exc:  # the loop could not take the socket
                traffic_log.info("connection from %s:%d dropped: %s", peer[0], peer[1], exc)
                conn.close()


def handshake_backstop(settings: Settings, context: ssl.SSLContext | None) -> float | None:
    """The loop's own TLS handshake timeout: a backstop well after the Admission's."""
    return 2 * settings.tls_handshake_timeout + 1 if context is not None else None
