"""Which listener or connection a call the far end starts goes out on
(transport/outbound.py): never a new connection, never a name resolved."""

from __future__ import annotations

import pytest

from sipresponder.transport.outbound import CannotSend, pick_connection, pick_udp, target_of
from sipresponder.uas.events import Source


def test_the_target_says_its_transport_and_literal_address() -> None:
    assert target_of("sip:a@127.0.0.1", None)[1:] == ("udp", ("127.0.0.1", 5060))
    assert target_of("sip:a@[::1]:5070;transport=TCP", None)[1:] == ("tcp", ("::1", 5070))
    assert target_of("sips:a@192.0.2.1", None)[1:] == ("tls", ("192.0.2.1", 5061))
    assert target_of("sip:a@192.0.2.1;transport=tcp", "udp")[1] == "udp"  # told wins
    assert target_of("sip:a@host.invalid;transport=ws", None)[1:] == ("ws", None)
    for text, message in [("", "expected a SIP URI"), ("tel:+1", "only sip: and sips:"),
                          ("sip:a@h;transport=sctp", "does not speak"),
                          ("sip:a@[::1", "is not a URI")]:
        with pytest.raises(ValueError, match=message):
            target_of(text, None)


def _udp(bound: str, port: int, conn: int):
    return bound, port, lambda peer: Source("udp", peer, (bound, port), conn)


def test_udp_goes_from_a_listener_of_the_peers_family() -> None:
    listeners = [_udp("127.0.0.1", 5060, 1), _udp("::1", 5060, 2), _udp("127.0.0.1", 5070, 3)]
    assert pick_udp(listeners, ("127.0.0.1", 9)).conn == 1
    assert pick_udp(listeners, ("::1", 9)).conn == 2
    assert pick_udp(listeners, ("127.0.0.1", 9), ("127.0.0.1", 5070)).conn == 3
    assert pick_udp(listeners, ("127.0.0.1", 9), ("127.0.0.1", 1)).conn == 1
    with pytest.raises(CannotSend, match="no UDP listener of the address family of ::1"):
        pick_udp(listeners[:1], ("::1", 9))


def test_a_stream_goes_on_the_clients_own_connection() -> None:
    conns = [Source("tcp", ("10.0.0.1", 4000), ("10.0.0.9", 5060), 4),
             Source("tcp", ("10.0.0.1", 4001), ("10.0.0.9", 5060), 7),
             Source("tls", ("10.0.0.1", 4000), ("10.0.0.9", 5061), 9)]
    assert pick_connection(conns, "tcp", ("10.0.0.1", 4000)).conn == 4  # its port
    assert pick_connection(conns, "tcp", ("10.0.0.1", 5060)).conn == 7  # the newest
    assert pick_connection(conns, "tls", ("10.0.0.1", 1)).conn == 9
    with pytest.raises(CannotSend, match=r"no open ws connection from 10\.0\.0\.1: sipresponder"
                                         " opens no connections of its own"):
        pick_connection(conns, "ws", ("10.0.0.1", 4000))
