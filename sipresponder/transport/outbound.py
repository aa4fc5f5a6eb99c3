"""Which listener or connection a call the far end starts goes out on (``Server.far_call``).

sipresponder opens no connections of its own and never resolves names: a call goes
out over UDP from a listener of the target's address family (its local address the
one this host uses towards the target, as for a wildcard bind's Contact), or over
TCP, TLS or WebSocket on a connection the client keeps open to us (RFC 5626's idea:
a client registered over TCP is reached on its own connection), chosen by the
client's address. Plain data in, one ``Source`` or a one-line refusal out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from ..sip.abnf import parse_params
from ..sip.transports import Transport, is_transport
from ..sip.uri import URI, parse_uri
from ..uac.dialog import DEFAULT_PORTS
from ..uas.events import Source


class UnknownDialog(LookupError):
    """No live far-end dialog has that Call-ID (the admin API answers 404)."""


class NoRegistration(LookupError):
    """No REGISTER in the journal binds that address of record (404)."""


class CannotSend(RuntimeError):
    """A request the far end cannot send now, one line naming why (409)."""


def target_of(text: str, transport: Transport | None
              ) -> tuple[URI, Transport, tuple[str, int] | None]:
    """The URI to call, the transport to use (``transport``, else the URI's
    ``transport=`` parameter, else TLS for sips: and UDP) and its literal address
    (None when the host is a name); ValueError, one line, for anything else."""
    if not isinstance(text, str) or not text:
        raise ValueError("target: expected a SIP URI such as sip:alice@127.0.0.1:5070")
    try:
        uri = parse_uri(text)
    except ValueError as exc:
        raise ValueError(f"target {text!r} is not a URI: {exc}") from None
    if not uri.is_sip:
        raise ValueError(f"target {text!r}: only sip: and sips: URIs can be called")
    named = _param(uri, "transport")
    if transport is None:
        if named is not None:
            if not is_transport(named.lower()):
                raise ValueError(f"target {text!r} names transport {named!r}, which "
                                 "sipresponder does not speak")
            transport = named.lower()  # type: ignore[assignment]
        else:
            transport = "tls" if uri.scheme == "sips" else "udp"
    elif not is_transport(transport):
        raise ValueError(f"transport {transport!r}: expected one of udp, tcp, tls, ws, wss")
    assert transport is not None
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    try:
        ip = str(ipaddress.ip_address(host))
    except ValueError:
        return uri, transport, None
    return uri, transport, (ip, uri.port or DEFAULT_PORTS[transport])


def pick_udp(listeners: Iterable[tuple[str, int, Callable[[tuple[str, int]], Source]]],
             peer: tuple[str, int], local: tuple[str, int] | None = None) -> Source:
    """The Source of ``peer`` on a UDP listener of its address family: the one whose
    port is ``local``'s when given (the listener a REGISTER came in on), else the
    first. ``listeners``: (bound ip, port, the listener's Source of an address)."""
    v6 = ":" in peer[0]
    found = [(port, source_of) for bound, port, source_of in listeners
             if (":" in bound) == v6]
    if not found:
        raise CannotSend(f"no UDP listener of the address family of {peer[0]} to call from")
    if local is not None:
        same = [source_of for port, source_of in found if port == local[1]]
        if same:
            return same[0](peer)
    return found[0][1](peer)


def pick_connection(connections: Iterable[Source], transport: Transport,
                    peer: tuple[str, int]) -> Source:
    """The open ``transport`` connection from ``peer`` (its address and port, else the
    latest one from its address); CannotSend when there is none."""
    same_ip = [s for s in connections if s.transport == transport and s.remote[0] == peer[0]]
    exact = [s for s in same_ip if s.remote[1] == peer[1]]
    chosen = exact or same_ip
    if not chosen:
        raise CannotSend(
            f"no open {transport} connection from {peer[0]}: sipresponder opens no"
            f" connections of its own (the client must keep one open, e.g. its"
            f" REGISTER's)")
    # Connection ids only grow: the highest is the newest.
    return max(chosen, key=lambda s: s.conn or 0)


def _param(uri: URI, name: str) -> str | None:
    try:
        params = parse_params(uri.params[1:]) if uri.params else []
    except ValueError:
        return None
    for key, value in params:
        if key.lower() == name:
            return value or ""
    return None
