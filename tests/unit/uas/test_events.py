"""uas/events.py: Source and Send, the plain data between transports and the core."""

from __future__ import annotations

import dataclasses

import pytest

from sipresponder.uas.events import Send, Source


def test_a_source_is_hashable_and_immutable() -> None:
    # Transports cache one Source per UDP peer and the core keys state by it.
    a = Source("udp", ("127.0.0.1", 5062), ("127.0.0.1", 5060))
    b = Source("udp", ("127.0.0.1", 5062), ("127.0.0.1", 5060))
    assert a == b and hash(a) == hash(b)
    assert a.conn is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.remote = ("10.0.0.1", 1)  # type: ignore[misc]


def test_sources_on_different_connections_differ() -> None:
    first = Source("tcp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), conn=1)
    second = Source("tcp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), conn=2)
    assert first != second


def test_a_send_keeps_the_connection_open_unless_told() -> None:
    send = Send(b"SIP/2.0 200 OK\r\n\r\n", "tcp", ("127.0.0.1", 40000), conn=3)
    assert not send.close_after
    assert dataclasses.replace(send, close_after=True).close_after
