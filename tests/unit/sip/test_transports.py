"""sip/transports.py: the transport names every layer shares."""

from __future__ import annotations

import pytest

from sipresponder.sip.transports import (
    MESSAGE_FRAMED,
    SECURE,
    STREAM_FRAMED,
    TRANSPORTS,
    WEBSOCKET,
    is_transport,
)


def test_every_transport_is_framed_one_way_or_the_other() -> None:
    # A transport framed both ways, or neither, would leave the parser guessing
    # whether a missing Content-Length means "to the end" (RFC 3261 18.3).
    assert set(TRANSPORTS) == MESSAGE_FRAMED | STREAM_FRAMED
    assert not MESSAGE_FRAMED & STREAM_FRAMED


def test_websocket_messages_are_whole_messages() -> None:
    # RFC 7118 5.1: each SIP message is carried in one WebSocket message.
    assert WEBSOCKET <= MESSAGE_FRAMED


def test_secure_transports_run_over_tls() -> None:
    assert {"tls", "wss"} == SECURE


@pytest.mark.parametrize("name", TRANSPORTS)
def test_is_transport_accepts_the_names(name: str) -> None:
    assert is_transport(name)


@pytest.mark.parametrize("name", ["UDP", "sctp", "", "udp ", "ws:"])
def test_is_transport_is_exact(name: str) -> None:
    assert not is_transport(name)
