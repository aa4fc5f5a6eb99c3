"""The transports SIP runs over here, named once (RFC 3261 18, RFC 5630, RFC 7118).

Every layer speaks of a transport by these lower-case names: a listener's
``udp:127.0.0.1:5060``, a Source, a scenario's ``transport = "tls"`` condition.
"""

from __future__ import annotations

from typing import Final, Literal, TypeGuard

Transport = Literal["udp", "tcp", "tls", "ws", "wss"]

TRANSPORTS: Final[tuple[Transport, ...]] = ("udp", "tcp", "tls", "ws", "wss")
# One arrival is one whole message (a datagram; a WebSocket message, RFC 7118 5.1):
# a missing Content-Length means the body runs to the end.
MESSAGE_FRAMED: Final[frozenset[Transport]] = frozenset({"udp", "ws", "wss"})
# Byte streams that the responder frames itself by Content-Length (RFC 3261 18.3).
STREAM_FRAMED: Final[frozenset[Transport]] = frozenset({"tcp", "tls"})
# Carried over TLS: a dialog they create may be a SIPS one (RFC 3261 12.1.1).
SECURE: Final[frozenset[Transport]] = frozenset({"tls", "wss"})
WEBSOCKET: Final[frozenset[Transport]] = frozenset({"ws", "wss"})


def is_transport(name: str) -> TypeGuard[Transport]:
    """Whether ``name`` is one of TRANSPORTS (exact, lower case)."""
    return name in TRANSPORTS
