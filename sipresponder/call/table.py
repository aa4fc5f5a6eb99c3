"""The media streams of the live calls, sans-I/O: which port each has, what arrives
on it, what leaves, and when a stream ends.

The engine opens a stream when a rule with ``media`` answers an INVITE with a 2xx
(``open``: a port from ``settings.rtp_ports``, even numbers only, RFC 3550 11: "RTP
SHOULD use an even destination port number and the corresponding RTCP stream SHOULD
use the next higher (odd) destination port number"), and closes it when the call ends
(a BYE either way, a CANCEL, or ``max_seconds`` as a backstop for a client that
vanished). The adapter (transport/rtp.py) binds and closes the sockets the table
asks for (``take_changes``) and tells it the id each socket's Sends carry
(``bound``); everything else is the sessions' (call/media.py).
"""

from __future__ import annotations

import random
from collections import deque

from ..media.dtmf import digits_from_info
from ..uas.events import Send
from .media import MediaPlan, MediaSession, Negotiated

# One stream a Call-ID (a re-INVITE's new offer keeps the stream it has).
CallKey = str


class PortPool:
    """The even ports of [low, high], handed out round robin so that a port just
    freed is the last to be used again (late packets of the old call find no
    stream)."""

    def __init__(self, low: int, high: int) -> None:
        if low % 2:
            low += 1
        self._free: deque[int] = deque(range(low, high + 1, 2))
        self.size = len(self._free)

    def take(self) -> int | None:
        return self._free.popleft() if self._free else None

    def give_back(self, port: int) -> None:
        self._free.append(port)

    def __len__(self) -> int:
        return len(self._free)


class MediaTable:
    def __init__(self, low: int, high: int, max_seconds: float = 3600.0,
                 rng: random.Random | None = None) -> None:
        self.ports = PortPool(low, high)
        self.max_seconds = max_seconds
        self.random = rng
        self.sessions: dict[int, MediaSession] = {}
        self.by_call: dict[CallKey, int] = {}
        self._ends: dict[int, float] = {}
        self._conn: dict[int, int] = {}  # port -> the socket id its Sends carry
        self._local: dict[int, str] = {}  # port -> the address to bind it on
        self._opened: list[tuple[int, str]] = []
        self._closed: list[int] = []

    def __len__(self) -> int:
        return len(self.sessions)

    # -- the engine's side ------------------------------------------------------------------
    def reserve(self) -> int | None:
        """A port for a stream about to be answered, or None when none is free."""
        return self.ports.take()

    def release(self, port: int) -> None:
        """A reserved port the answer did not use after all."""
        self.ports.give_back(port)

    def open(self, port: int, call: CallKey, local_ip: str, plan: MediaPlan,
             negotiated: Negotiated, now: float) -> MediaSession:
        """The stream of ``call`` on reserved ``port``, bound on ``local_ip``."""
        known = self.by_call.pop(call, None)
        if known is not None:
            self._close_port(known)
        session = MediaSession(plan, negotiated, now, self.random)
        self.sessions[port] = session
        self.by_call[call] = port
        self._ends[port] = now + self.max_seconds
        self._local[port] = local_ip
        self._opened.append((port, local_ip))
        return session

    def close(self, call: CallKey) -> None:
        """The call ended: its stream stops, its port goes back."""
        port = self.by_call.pop(call, None)
        if port is not None:
            self._close_port(port)

    def info(self, call: CallKey, content_type: str | None, body: bytes) -> None:
        """A SIP INFO of ``call``: its DTMF digits (application/dtmf-relay or
        application/dtmf) join the stream's ``dtmf``; any other body is not ours."""
        session = self.session(call)
        if session is None or content_type is None:
            return
        try:
            digits = digits_from_info(content_type, body)
        except ValueError:
            return
        session.heard(digits)

    def session(self, call: CallKey) -> MediaSession | None:
        port = self.by_call.get(call)
        return self.sessions.get(port) if port is not None else None

    def _close_port(self, port: int) -> None:
        session = self.sessions.pop(port, None)
        if session is None:
            return
        session.close()
        self._ends.pop(port, None)
        self._conn.pop(port, None)
        self._local.pop(port, None)
        self._closed.append(port)
        self.ports.give_back(port)

    # -- the adapter's side -------------------------------------------------------------------
    def take_changes(self) -> tuple[list[tuple[int, str]], list[int]]:
        """The ports to bind (with their address) and to close since the last call."""
        opened, closed = self._opened, self._closed
        self._opened, self._closed = [], []
        return opened, closed

    def bound(self, port: int, conn: int) -> None:
        self._conn[port] = conn

    def unbindable(self, port: int) -> None:
        """The adapter could not bind ``port`` (taken by another program): the call
        goes on without media, its stream closed."""
        for call, known in list(self.by_call.items()):
            if known == port:
                del self.by_call[call]
        self._close_port(port)

    def receive(self, port: int, data: bytes, source: tuple[str, int], now: float
                ) -> list[Send]:
        session = self.sessions.get(port)
        if session is None:
            return []
        return self._sends(port, session.receive(data, source, now))

    def next_deadline(self) -> float | None:
        best: float | None = None
        for port, session in self.sessions.items():
            for due in (session.next_deadline(), self._ends.get(port)):
                if due is not None and (best is None or due < best):
                    best = due
        return best

    def fire(self, now: float) -> list[Send]:
        out: list[Send] = []
        for port in [p for p, end in self._ends.items() if end <= now]:
            for call, known in list(self.by_call.items()):
                if known == port:
                    del self.by_call[call]
            self._close_port(port)
        for port, session in list(self.sessions.items()):
            due = session.next_deadline()
            if due is not None and due <= now:
                out += self._sends(port, session.fire(now))
        return out

    def _sends(self, port: int, packets: list[tuple[bytes, tuple[str, int]]]) -> list[Send]:
        conn = self._conn.get(port)
        if conn is None:
            return []  # not bound (yet, or it could not be): nothing can leave
        return [Send(data, "udp", remote, conn) for data, remote in packets]


__all__ = ["MediaTable", "PortPool"]
