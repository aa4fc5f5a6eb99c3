"""Where a response goes (RFC 3261 18.2.2, RFC 3581 4): a pure function of the request.

RFC 3261 18.2.2, Sending Responses:

    If the "sent-protocol" is a reliable transport protocol such as TCP or SCTP,
    or TLS over those, the response MUST be sent using the existing connection to
    the source of the original request that created the transaction, if that
    connection is still open.
    [...]
    Otherwise (for unreliable unicast transports), if the top Via has a
    "received" parameter, the response MUST be sent to the address in the
    "received" parameter, using the port indicated in the "sent-by" value, or
    using port 5060 if none is specified explicitly.

RFC 3581 4, Server Behavior:

    When a server attempts to send a response, it examines the topmost Via header
    field value of that response.  If the "sent-protocol" component indicates an
    unreliable unicast transport protocol, such as UDP, and there is no "maddr"
    parameter, but there is both a "received" parameter and an "rport" parameter,
    the response MUST be sent to the IP address listed in the "received"
    parameter, and the port in the "rport" parameter.

The response's top Via always carries received= the packet's source address when
it differs from sent-by (``sip.response.top_via_value``), so "the address in
received" is the source address; an rport filled in is the source port. maddr is
not honoured: sending to a multicast group the request names would make the
responder a reflector.

WebSocket (RFC 7118 5) is connection-oriented like TCP: the response goes back on
the connection the request came on.
"""

from __future__ import annotations

from typing import Literal

from .headers import Via
from .transports import Transport

# settings.response_routing: "source" answers UDP at the packet's source port
# always (symmetric, as if every request had rport, which NATs need); "via" follows
# RFC 3261 18.2.2 to the letter unless the request has rport.
ResponseRouting = Literal["source", "via"]

DEFAULT_PORT = 5060  # RFC 3261 19.1.2: the default port of sip: over UDP


def response_destination(
    transport: Transport, remote: tuple[str, int], via: Via, routing: str
) -> tuple[str, int]:
    """The address a response to a request from ``remote`` (top Via ``via``) goes to.

    On a connection the address only names it: the transport writes on the
    connection the request came on.
    """
    if transport != "udp" or routing == "source" or via.has_param("rport"):
        return remote
    return (remote[0], via.port or DEFAULT_PORT)
