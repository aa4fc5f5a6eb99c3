"""Where a request came from and where a response goes: plain data, no sockets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class Source:
    """The arrival of one message.

    ``conn`` identifies the stream connection it came on (None for UDP), so that a
    response on TCP goes back on the same connection (RFC 3261 18.2.2).
    """

    transport: str  # "udp", "tcp", "tls", "ws" or "wss"
    remote: tuple[str, int]
    local: tuple[str, int]
    conn: int | None = None


@dataclass(slots=True)
class Send:
    """Octets to write: to ``remote`` over UDP, or on connection ``conn`` over TCP."""

    data: bytes
    transport: str
    remote: tuple[str, int]
    conn: int | None = None
    close_after: bool = False
