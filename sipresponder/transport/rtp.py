"""The asyncio side of the calls' RTP streams: one UDP socket per stream, bound and
closed as the engine's media table asks (call/table.py ``take_changes``), read
without an asyncio protocol (``loop.add_reader``: binding is synchronous, so the
first frames a tone sends find their socket), written through ``Server.dispatch``
like every UDP Send (the socket is registered in ``Server.rtp_senders`` under the id
its Sends carry: never among the SIP listeners, which calls go out on).

Thin on purpose: what a packet means is call/media.py's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..uas.engine import Engine
    from ..uas.events import Send

log = logging.getLogger("sipresponder")
# Datagrams read at one wake-up of a stream's socket: a flood on one port must not
# starve the SIP listeners of the same loop.
READ_BATCH = 64
MAX_DATAGRAM = 2048  # RTP of 20 ms G.711 is 172 octets; anything larger is not ours


class _Sender:
    """What Server.dispatch needs to write a Send (transport/server.py UDPSender),
    over a plain non-blocking socket: a full send buffer drops the packet (media is
    real time: a late packet is a lost one)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.dropped = 0

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.dropped += 1
        except OSError as exc:  # an ICMP error of an earlier packet, a bad address
            log.debug("RTP send to %s:%d failed: %s", addr[0], addr[1], exc)

    def close(self) -> None:
        self.sock.close()


class Host(Protocol):
    """What the sockets need of their server (transport/server.py Server)."""

    engine: Engine
    rtp_senders: dict[int, _Sender]
    _loop: asyncio.AbstractEventLoop

    def next_conn_id(self) -> int: ...

    def dispatch(self, sends: list[Send]) -> None: ...


class MediaSockets:
    """The RTP sockets of one server's calls, by port."""

    def __init__(self, server: Host) -> None:
        self.server = server
        self._sockets: dict[int, tuple[socket.socket, int]] = {}

    def __len__(self) -> int:
        return len(self._sockets)

    def sync(self) -> None:
        """Bind what the table opened, close what it closed."""
        streams = self.server.engine.media
        if streams is None:
            return
        opened, closed = streams.take_changes()
        for port in closed:
            self._close(port)
        for port, ip in opened:
            self._bind(port, ip)

    def _bind(self, port: int, ip: str) -> None:
        server = self.server
        streams = server.engine.media
        assert streams is not None
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((ip, port))
        except OSError as exc:
            sock.close()
            server.engine.counters["media_bind_failed"] += 1
            log.warning("cannot bind the RTP port %s:%d (%s): the call goes on without"
                        " media", ip, port, exc.strerror or exc)
            streams.unbindable(port)
            return
        conn = server.next_conn_id()
        server.rtp_senders[conn] = _Sender(sock)
        self._sockets[port] = (sock, conn)
        server._loop.add_reader(sock.fileno(), partial(self._readable, port, sock))
        streams.bound(port, conn)

    def _readable(self, port: int, sock: socket.socket) -> None:
        server = self.server
        streams = server.engine.media
        if streams is None:
            return
        sends: list[Send] = []
        now = server._loop.time()
        for _ in range(READ_BATCH):
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ICMP port unreachable of an earlier send: not ours to fix
                continue
            sends += streams.receive(port, data, (addr[0], addr[1]), now)
        # Once a wake-up, even with nothing to send: a packet a jitter fault holds back
        # is a deadline the timer must learn.
        server.dispatch(sends)

    def _close(self, port: int) -> None:
        found = self._sockets.pop(port, None)
        if found is None:
            return
        sock, conn = found
        self.server._loop.remove_reader(sock.fileno())
        self.server.rtp_senders.pop(conn, None)
        sock.close()

    def close(self) -> None:
        for port in list(self._sockets):
            self._close(port)
