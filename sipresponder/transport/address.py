"""Where a listener listens: ``PROTO:HOST:PORT`` parsed, and the socket bound to it.

Every listening socket is bound here, whatever listens on it afterwards (asyncio's
datagram endpoint, its TCP/TLS server, aiohttp's WebSocket site, the supervisor's
port probe and shared UDP sockets), so that IPv6, SO_REUSEPORT and the buffer sizes
are decided once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import struct
from dataclasses import dataclass

from ..sip.transports import TRANSPORTS, Transport, is_transport

# Both ends need large socket buffers or UDP drops datagrams well below CPU
# saturation (measured: net.core.rmem_max is 4 MiB on these machines).
SOCKET_BUFFER = 4 * 1024 * 1024
# asyncio's default backlog of 100 makes connects wait for SYN retries during a burst
# of connections well below max_connections.
MIN_BACKLOG = 100


@dataclass(frozen=True, slots=True)
class ListenAddress:
    transport: Transport
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def split_hostport(text: str, default_host: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT (HOST may be empty: ``default_host``)."""
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]")
        if not bracket or not port_text.startswith(":"):
            raise ValueError(f"{text!r}: expected [IPv6]:PORT")
        port_text = port_text[1:]
    else:
        host, _, port_text = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"{text!r}: expected HOST:PORT (IPv6 hosts go in brackets)")
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"{text!r}: invalid port {port_text!r}")
    return host or default_host, int(port_text)


def parse_listen(text: str) -> ListenAddress:
    """PROTO:HOST:PORT, with IPv6 hosts in brackets: udp:[::1]:5060."""
    transport, sep, rest = text.partition(":")
    transport = transport.lower()
    if not sep or not is_transport(transport):
        raise ValueError(
            f"{text!r}: expected PROTO:HOST:PORT with PROTO {', '.join(TRANSPORTS)}")
    if ":" not in rest:
        raise ValueError(f"{text!r}: expected PROTO:HOST:PORT")
    try:
        host, port = split_hostport(rest, "0.0.0.0")
    except ValueError as exc:
        raise ValueError(f"{text!r}: {str(exc).split(': ', 1)[1]}") from None
    return ListenAddress(transport, host, port)


def listen_backlog(max_connections: int) -> int:
    """The listen(2) backlog of a stream listener that accepts ``max_connections``."""
    return min(max(max_connections, MIN_BACKLOG), socket.SOMAXCONN)


def bind_socket(addr: ListenAddress, *, reuse_port: bool = False) -> socket.socket:
    """A socket bound to ``addr``: a UDP one with the large buffers UDP needs (see
    SOCKET_BUFFER), or a TCP one for the caller to listen on (tcp, tls, ws, wss).

    ``reuse_port`` lets the workers of ``serve --workers`` bind the same port. An IPv6
    socket takes IPv6 only, so that ``[::]`` and ``0.0.0.0`` listeners can coexist.
    """
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    datagram = addr.transport == "udp"
    sock = socket.socket(family, socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if datagram:
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        else:
            # A restarted responder must not wait out TIME_WAIT on its own port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr.host, addr.port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {addr}: {exc.strerror}") from None
    return sock


def reset_connection(transport: asyncio.WriteTransport) -> None:
    """Close a stream so that the peer sees a reset (RST), not an orderly FIN: a
    scenario's `fault = "reset-..."`. SO_LINGER with a zero timeout makes the kernel
    drop the connection; abort() makes asyncio close without flushing its buffer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


@functools.lru_cache(maxsize=4096)
def local_ip_towards(remote_ip: str, bound_ip: str) -> str:
    """The address this host uses to reach ``remote_ip`` (for Contact and SDP when the
    socket is bound to a wildcard). A connected UDP socket sends nothing."""
    if bound_ip not in ("0.0.0.0", "::"):
        return bound_ip
    family = socket.AF_INET6 if ":" in remote_ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((remote_ip, 9))
            local_ip: str = probe.getsockname()[0]
            return local_ip
    except OSError:
        return "127.0.0.1" if family == socket.AF_INET else "::1"
