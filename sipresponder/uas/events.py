"""Where a message came from and where a response goes: plain data, no sockets.

A transport turns an arrival into a ``Source`` and octets, calls
``Engine.handle(data, source, now)`` and writes the ``Send`` list of the
``outcome.Outcome`` it gets back. A leaf of the core: the scenario's conditions
read a Source too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.transports import Transport


@dataclass(slots=True, frozen=True)
class Source:
    """The arrival of one message.

    ``conn`` identifies the stream connection it came on (None for UDP), so that a
    response on TCP goes back on the same connection (RFC 3261 18.2.2).
    """

    transport: Transport
    remote: tuple[str, int]
    local: tuple[str, int]
    conn: int | None = None


@dataclass(slots=True)
class Send:
    """Octets to write: to ``remote`` over UDP, or on connection ``conn`` over TCP.

    ``close_after`` closes the stream once ``data`` is written; with ``reset`` the
    close is an abort with SO_LINGER 0, which the peer sees as a reset (RST).
    """

    data: bytes
    transport: Transport
    remote: tuple[str, int]
    conn: int | None = None
    close_after: bool = False
    reset: bool = False
