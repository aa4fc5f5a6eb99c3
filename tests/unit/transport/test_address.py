"""Listen addresses and the one function that binds every listening socket."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from sipresponder.transport.address import (
    MIN_BACKLOG,
    SOCKET_BUFFER,
    ListenAddress,
    bind_socket,
    listen_backlog,
    parse_listen,
    split_hostport,
)

TRANSPORT_PACKAGE = Path(__file__).resolve().parents[3] / "sipresponder" / "transport"


@pytest.mark.parametrize(("text", "expected"), [
    ("udp:127.0.0.1:5060", ListenAddress("udp", "127.0.0.1", 5060)),
    ("TCP:[::1]:0", ListenAddress("tcp", "::1", 0)),
    ("wss::443", ListenAddress("wss", "0.0.0.0", 443)),
])
def test_parse_listen(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("sctp:127.0.0.1:5060", "with PROTO udp, tcp, tls, ws, wss"),
    ("udp:5060", "expected PROTO:HOST:PORT"),
    ("udp:::1:5060", "IPv6 hosts go in brackets"),
    ("udp:[::1]5060", "expected [IPv6]:PORT"),
    ("udp:127.0.0.1:65536", "invalid port '65536'"),
])
def test_parse_listen_names_the_text_and_the_fault(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^'.*': .*") as info:
        parse_listen(text)
    assert str(info.value).startswith(repr(text))
    assert message in str(info.value)


def test_listen_address_prints_as_it_parses() -> None:
    for text in ("udp:127.0.0.1:5060", "tls:[::1]:5061"):
        assert str(parse_listen(text)) == text


def test_split_hostport_default_host() -> None:
    assert split_hostport(":8080", "127.0.0.1") == ("127.0.0.1", 8080)
    assert split_hostport("[::1]:8080", "127.0.0.1") == ("::1", 8080)


def test_listen_backlog_is_at_least_asyncios_default_and_at_most_somaxconn() -> None:
    assert listen_backlog(1) == MIN_BACKLOG
    assert listen_backlog(socket.SOMAXCONN - 1) == max(socket.SOMAXCONN - 1, MIN_BACKLOG)
    assert listen_backlog(10 * socket.SOMAXCONN) == socket.SOMAXCONN


def test_udp_socket_is_a_datagram_socket_with_large_buffers() -> None:
    with bind_socket(ListenAddress("udp", "127.0.0.1", 0)) as sock:
        assert sock.type == socket.SOCK_DGRAM
        assert sock.getsockname()[1] != 0
        # Linux caps the size asked for at net.core.rmem_max, then doubles it.
        cap = Path("/proc/sys/net/core/rmem_max")
        if cap.exists():
            wanted = min(SOCKET_BUFFER, int(cap.read_text()))
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= wanted
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_stream_transports_get_a_stream_socket(transport: str) -> None:
    with bind_socket(parse_listen(f"{transport}:127.0.0.1:0")) as sock:
        assert sock.type == socket.SOCK_STREAM
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_reuse_port_lets_two_sockets_share_a_port(transport: str) -> None:
    with bind_socket(parse_listen(f"{transport}:127.0.0.1:0"), reuse_port=True) as first:
        if first.type == socket.SOCK_STREAM:
            first.listen()  # SO_REUSEADDR shares a TCP port until someone listens on it
        port = first.getsockname()[1]
        addr = parse_listen(f"{transport}:127.0.0.1:{port}")
        with bind_socket(addr, reuse_port=True) as second:
            assert second.getsockname()[1] == port
        with pytest.raises(OSError, match=rf"^\[Errno \d+\] cannot listen on {addr}: "):
            bind_socket(addr)


def test_ipv6_sockets_take_ipv6_only() -> None:
    try:
        sock = bind_socket(ListenAddress("udp", "::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    with sock:
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)


def test_one_method_hands_messages_to_the_engine() -> None:
    """Every transport goes through Server.receive (UDP, TCP/TLS frames, WebSocket
    messages), or, for the UDP batch reader, which asked the compiled path itself,
    Server.deferred: the one place that calls the engine, times it and writes its
    answer."""
    callers = []
    for path in sorted(TRANSPORT_PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "handle"):
                    callers.append(f"{path.stem}.{func.name}")
    assert callers == ["server.deferred"]
