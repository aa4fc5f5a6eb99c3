"""Where a response goes (RFC 3261 18.2.2, RFC 3581 4): sip/routing.py."""

from __future__ import annotations

import pytest

from sipresponder.sip.headers import parse_via
from sipresponder.sip.routing import response_destination

REMOTE = ("198.51.100.7", 40000)


@pytest.mark.parametrize(("via", "routing", "expected"), [
    # RFC 3581 4: rport present: the source address and port, whatever the setting.
    ("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1;rport", "via", REMOTE),
    ("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1;rport=5070", "via", REMOTE),
    # RFC 3261 18.2.2: received (the source address) and the sent-by port...
    ("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1", "via", ("198.51.100.7", 5070)),
    # ... or 5060 when sent-by names none.
    ("SIP/2.0/UDP client.example.com;branch=z9hG4bK1", "via", ("198.51.100.7", 5060)),
    # "source" (the default): symmetric, as NATs need.
    ("SIP/2.0/UDP client.example.com:5070;branch=z9hG4bK1", "source", REMOTE),
    # maddr is not honoured: no reflection to a multicast group the request names.
    ("SIP/2.0/UDP c.example.com:5070;maddr=224.0.1.75;branch=z9hG4bK1", "via",
     ("198.51.100.7", 5070)),
])
def test_udp(via: str, routing: str, expected: tuple[str, int]) -> None:
    assert response_destination("udp", REMOTE, parse_via(via), routing) == expected


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_connections_answer_on_the_connection(transport: str) -> None:
    via = parse_via(f"SIP/2.0/{transport.upper()} c.example.com:5070;branch=z9hG4bK1")
    assert response_destination(transport, REMOTE, via, "via") == REMOTE  # type: ignore[arg-type]
