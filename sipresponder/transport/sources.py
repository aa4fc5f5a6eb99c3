"""The ``Source`` of each UDP peer, kept per listener (the one cache both UDP readers use).

A peer sends many datagrams: its ``Source`` (and, on a wildcard bind, the local address
it reaches us on, which costs a routing probe) is built once, not per datagram.
"""

from __future__ import annotations

from ..uas.events import Source
from .address import local_ip_towards

_SOURCES_KEPT = 4096  # peers remembered; past that the cache starts again


class UDPSources(dict[tuple[str, int], Source]):
    """One UDP listener's peers by address, bounded: ``sources[addr]`` (a dict, so that
    a known peer costs one lookup; an unknown one is built by ``__missing__``)."""

    def __init__(self, listener_id: int, bound_ip: str, local_port: int = 0) -> None:
        super().__init__()
        self.listener_id = listener_id
        self.bound_ip = bound_ip
        self.local_port = local_port  # set once the socket is known, before any datagram

    def __missing__(self, addr: tuple[str, int]) -> Source:
        ip, port = addr[0], addr[1]
        source = Source(
            "udp", (ip, port), (local_ip_towards(ip, self.bound_ip), self.local_port),
            self.listener_id,
        )
        if len(self) >= _SOURCES_KEPT:
            self.clear()
        self[addr] = source
        return source
