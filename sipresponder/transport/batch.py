"""A UDP listener read in batches: recvmmsg(2) in, sendmmsg(2) out (Linux, issue 13).

Python runs once per wake-up of the event loop, not once per datagram: the
compiled ``serve_udp`` (csrc/speedups.c, behind uas/compiled.py) drains the socket
in batches of up to 64 datagrams, answers those its table knows with one sendmmsg
per batch, and hands back the rest, in arrival order, with their source address.
Those go to ``Server.receive`` one by one like any datagram (the engine answers
and, on a miss, teaches the table).

The socket is registered with ``loop.add_reader``, which the stdlib loop and uvloop
both offer. Answers the kernel cannot take at once (EAGAIN) are queued and written
when the socket is writable again, in order: nothing is dropped here that asyncio's
own datagram transport would have kept.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Protocol

from ..uas.compiled import speedups
from ..uas.engine import Engine
from ..uas.events import Source
from ..uas.fast import MISS
from ..uas.outcome import AnsweredRecorder
from .address import local_ip_towards
from .latency import LatencyHistogram

if TYPE_CHECKING:
    from ..uas.compiled import ServeUDP
    from ..uas.fast import FastPath

traffic_log = logging.getLogger("sipresponder.requests")

# Batches of 64 read per wake-up at most, so that one busy socket cannot starve the
# loop's other work (TCP, timers, the admin API).
_BATCHES_PER_WAKEUP = 8
_QUEUE_MAX = 4096  # answers waiting for a writable socket; more are dropped (logged)
_SOURCES_KEPT = 4096


class BatchHost(Protocol):
    """What a batch listener needs of the server it belongs to (transport.server's
    Server): its engine and recorder, the latency histogram, the receive path."""

    @property
    def engine(self) -> Engine: ...

    @property
    def answered_recorder(self) -> AnsweredRecorder | None: ...

    @property
    def latency(self) -> LatencyHistogram: ...

    def fast_on(self) -> bool: ...

    def loop_time(self) -> float: ...

    def receive(self, data: bytes, source: Source, *, asked: bool = False,
                learn: int | None = None, any_local: bool = False) -> None: ...


class BatchUDPListener:
    """One UDP socket, read with the compiled batch reader."""

    def __init__(self, server: BatchHost, listener_id: int, bound_ip: str,
                 sock: socket.socket) -> None:
        assert speedups is not None
        self.server = server
        self.listener_id = listener_id
        self.bound_ip = bound_ip
        self.sock = sock
        self.fd = sock.fileno()
        self.local_port: int = sock.getsockname()[1]
        # Server.dispatch writes a Send through ``transport.sendto`` and close() closes
        # it: this object is its own transport.
        self.transport = self
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[bytes, tuple[str, int]]] = deque()
        self._sources: dict[tuple[str, int], Source] = {}
        self._serve: ServeUDP = speedups.serve_udp
        # A wildcard bind knows its local address only per peer (Source.local): its
        # table entries are the ones that do not depend on it (FastPath.learn's
        # ``any_local``), under a number of the wildcard address itself.
        self._wildcard = bound_ip in ("0.0.0.0", "::")
        self._local_id: tuple[object, int | None] = (None, None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.sock.setblocking(False)
        loop.add_reader(self.fd, self._readable)

    def _source(self, addr: tuple[str, int]) -> Source:
        source = self._sources.get(addr)
        if source is None:
            source = Source(
                "udp", addr, (local_ip_towards(addr[0], self.bound_ip), self.local_port),
                self.listener_id,
            )
            if len(self._sources) >= _SOURCES_KEPT:
                self._sources.clear()
            self._sources[addr] = source
        return source

    def _table_id(self) -> tuple[FastPath | None, int | None]:
        """The engine's current compiled table and this listener's number in it."""
        fast = self.server.engine.fast
        if fast is None:
            return None, None
        cached_fast, local_id = self._local_id
        if cached_fast is not fast:
            local = Source("udp", ("", 0), (self.bound_ip, self.local_port), self.listener_id)
            local_id = fast.local_id(local)
            self._local_id = (fast, local_id)
        return fast, local_id

    def _readable(self) -> None:
        server = self.server
        engine = server.engine
        fast, local_id = self._table_id()
        enabled = fast is not None and local_id is not None and server.fast_on()
        recording = server.answered_recorder is not None and enabled
        started = perf_counter()
        try:
            deferred, answered, unsent, received = self._serve(
                self.fd,
                fast.table if fast is not None else None,
                local_id or 0,
                enabled,
                not engine.transactions.table,
                recording,
                _BATCHES_PER_WAKEUP,
            )
        except Exception:  # a bug must cost a batch, never the listener
            traffic_log.exception("batch read failed on udp:%s:%d", self.bound_ip,
                                  self.local_port)
            return
        fast_count = received - len(deferred)
        if fast is not None and fast_count:
            if answered:
                now = server.loop_time()
                record = server.answered_recorder
                assert record is not None
                for data, peer, tally, response in answered:
                    fast.journal(record, data, self._source(peer), now, tally, response)
            # The compiled answers share the batch's time: one value per datagram.
            server.latency.observe_many((perf_counter() - started) / received, fast_count)
        if unsent:
            for item in unsent:
                self._enqueue(item[0], item[1])
        for data, addr, reason in deferred:
            if isinstance(addr, bytes):
                continue  # an address Python could not name either (never seen on IP)
            source = self._source(addr)
            server.receive(data, source, asked=enabled,
                           learn=local_id if reason == MISS and enabled else None,
                           any_local=self._wildcard)

    # -- writing (Server.dispatch's transport.sendto) ------------------------------------
    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._queue:
            self._enqueue(data, addr)
            return
        try:
            self.sock.sendto(data, addr)
        except BlockingIOError:
            self._enqueue(data, addr)
        except OSError as exc:
            traffic_log.debug("UDP send to %s:%d failed: %s", addr[0], addr[1], exc)

    def _enqueue(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(self._queue) >= _QUEUE_MAX:
            self.server.engine.counters["udp_send_dropped"] += 1
            traffic_log.warning("UDP send queue full: response to %s:%d dropped", *addr)
            return
        first = not self._queue
        self._queue.append((data, addr))
        if first and self._loop is not None:
            self._loop.add_writer(self.fd, self._writable)

    def _writable(self) -> None:
        queue = self._queue
        while queue:
            data, addr = queue[0]
            try:
                self.sock.sendto(data, addr)
            except BlockingIOError:
                return
            except OSError as exc:
                traffic_log.debug("UDP send to %s:%d failed: %s", addr[0], addr[1], exc)
            queue.popleft()
        if self._loop is not None:
            self._loop.remove_writer(self.fd)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.fd)
            if self._queue:
                self._loop.remove_writer(self.fd)
        self._queue.clear()
        self.sock.close()

