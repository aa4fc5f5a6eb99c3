"""A UDP listener read in batches: recvmmsg(2) in, sendmmsg(2) out (Linux, issue 13).

Python runs once per wake-up of the event loop, not once per datagram: the
compiled ``serve_udp`` (csrc/speedups.c, through ``FastPath.serve_udp`` in
uas/fast.py) drains the socket in batches of up to 64 datagrams, answers those its
table knows with one sendmmsg per batch, and hands back the rest, in arrival order,
with their source. Those go to ``Server.deferred`` one by one (the engine answers and,
on a miss, teaches the table).

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
from typing import Protocol

from ..uas.compiled import speedups
from ..uas.engine import Engine
from ..uas.events import Source
from ..uas.fast import FastPath, read_udp
from ..uas.outcome import AnsweredRecorder
from .latency import LatencyHistogram
from .sources import UDPSources

traffic_log = logging.getLogger("sipresponder.requests")

# Batches of 64 read per wake-up at most, so that one busy socket cannot starve the
# loop's other work (TCP, timers, the admin API).
_BATCHES_PER_WAKEUP = 8
_QUEUE_MAX = 4096  # answers waiting for a writable socket; more are dropped (logged)


class BatchHost(Protocol):
    """What a batch listener needs of the server it belongs to (transport.server's
    Server): its engine and recorder, the latency histogram, the compiled path when it
    may answer, and the engine's side of the receive path."""

    @property
    def engine(self) -> Engine: ...

    @property
    def answered_recorder(self) -> AnsweredRecorder | None: ...

    @property
    def latency(self) -> LatencyHistogram: ...

    def compiled(self) -> FastPath | None: ...

    def loop_time(self) -> float: ...

    def deferred(self, data: bytes, source: Source, missed: int | None = None,
                 started: float | None = None) -> None: ...


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
        # The compiled path's name for this listener: a wildcard bind knows its local
        # address only per peer (Source.local), so the wildcard address itself.
        self.local = (bound_ip, self.local_port)
        # Server.dispatch writes a Send through ``transport.sendto`` and close() closes
        # it: this object is its own transport.
        self.transport = self
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: deque[tuple[bytes, tuple[str, int]]] = deque()
        self.sources = UDPSources(listener_id, bound_ip, self.local_port)
        # Bound once, not per wake-up.
        self._source_of = self.sources.__getitem__
        self._clock = server.loop_time

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.sock.setblocking(False)
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        server = self.server
        path = server.compiled()
        started = perf_counter()
        try:
            if path is not None:
                deferred, unsent, received, answered = path.serve_udp(
                    self.fd, self.local, self._source_of, self._clock,
                    server.answered_recorder, _BATCHES_PER_WAKEUP)
            else:
                deferred, unsent, received, answered = read_udp(
                    self.fd, self._source_of, _BATCHES_PER_WAKEUP)
        except Exception:  # a bug must cost a batch, never the listener
            traffic_log.exception("batch read failed on udp:%s:%d", self.bound_ip,
                                  self.local_port)
            return
        if answered:
            # The compiled answers share the batch's time: one value per datagram.
            server.latency.observe_many((perf_counter() - started) / received, answered)
        if unsent:
            for item in unsent:
                self._enqueue(item[0], item[1])
        for data, source, missed in deferred:
            server.deferred(data, source, missed)

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

