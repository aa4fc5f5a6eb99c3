"""The transports' side of the one entry to the compiled path (uas/fast.py FastPath):
they ask it in one of three shapes and never reach into the table; one UDP source
cache; the UDP batch shape over a loopback socket."""

from __future__ import annotations

import ast
import inspect
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.scenario.loader import parse_scenario
from sipresponder.transport import sources as sources_module
from sipresponder.transport.server import Server
from sipresponder.transport.sources import UDPSources
from sipresponder.uas.compiled import BATCHED_UDP, STATUS
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.fast import read_udp

TRANSPORT_PACKAGE = Path(__file__).parents[3] / "sipresponder" / "transport"


def test_no_transport_reaches_into_the_table_or_the_transactions() -> None:
    """The compiled table, its listener numbers and deferral codes, and the engine's
    transaction table are uas/fast.py's business: a transport asks FastPath."""
    found = []
    for path in sorted(TRANSPORT_PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Name):
                name = node.id
            else:
                continue
            if name in ("table", "transactions", "local_id", "MISS"):
                found.append(f"{path.name}:{node.lineno} {name}")
    assert found == []


def test_receive_takes_a_message_and_its_source_only() -> None:
    assert list(inspect.signature(Server.receive).parameters) == ["self", "data", "source"]


def test_one_udp_source_cache_keeps_each_peer_and_stays_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources_module, "_SOURCES_KEPT", 2)
    sources = UDPSources(3, "127.0.0.1", 5060)
    first = sources[("127.0.0.1", 1)]
    assert first == Source("udp", ("127.0.0.1", 1), ("127.0.0.1", 5060), 3)
    assert sources[("127.0.0.1", 1)] is first
    sources[("127.0.0.1", 2)]
    sources[("127.0.0.1", 3)]  # past the bound: the cache starts again
    assert len(sources) == 1
    # A wildcard bind names, per peer, the local address that reaches it.
    assert UDPSources(3, "0.0.0.0", 5060)[("127.0.0.1", 9)].local == ("127.0.0.1", 5060)


def test_both_udp_readers_use_the_one_source_cache() -> None:
    for name in ("server.py", "batch.py"):
        text = (TRANSPORT_PACKAGE / name).read_text()
        assert "UDPSources(" in text and "local_ip_towards" not in text, name


# -- the UDP batch shape -----------------------------------------------------------------
OPTIONS_RULE = '[[rule]]\nname = "o"\nmatch = { method = "OPTIONS" }\ncode = 200\n'


def request(method: str, n: int, port: int) -> bytes:
    return (
        f"{method} sip:alice@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{method}-{n}\r\n"
        f"From: <sip:bob@127.0.0.1>;tag=f{n}\r\nTo: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: c{n}@127.0.0.1\r\nCSeq: {n} {method}\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    client.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    client.settimeout(5)
    try:
        yield listener, client
    finally:
        listener.close()
        client.close()


def send_all(client: socket.socket, listener: socket.socket, datagrams: list[bytes]) -> None:
    for datagram in datagrams:
        client.sendto(datagram, listener.getsockname())
    # Loopback delivers before sendto returns; the wait only bounds a surprise.
    assert select.select([listener], [], [], 5)[0]


@pytest.mark.skipif(not BATCHED_UDP, reason=f"recvmmsg/sendmmsg: {STATUS}")
def test_a_udp_batch_answers_what_it_learned_and_hands_back_the_rest(
        pair: tuple[socket.socket, socket.socket]) -> None:
    listener, client = pair
    engine = Engine(parse_scenario(OPTIONS_RULE, "<test>"))
    path = engine.fast
    assert path is not None
    port = client.getsockname()[1]
    local = listener.getsockname()
    sources = UDPSources(1, "127.0.0.1", local[1])
    journal: list[bytes] = []

    def record(data: bytes, *_: object) -> None:
        journal.append(data)

    send_all(client, listener, [request("OPTIONS", 1, port)])
    [(data, source, missed)], unsent, received, answered = path.serve_udp(
        listener.fileno(), local, sources.__getitem__, lambda: 0.0, record, 8)
    assert (source, missed, unsent, received, answered) == (
        sources[("127.0.0.1", port)], path.listener_id("udp", local), None, 1, 0)
    assert missed is not None
    path.learn(engine.handle(data, source, 0.0), missed)

    batch = [request("OPTIONS", 2, port), request("INFO", 3, port), request("OPTIONS", 4, port)]
    send_all(client, listener, batch)
    deferred, unsent, received, answered = path.serve_udp(
        listener.fileno(), local, sources.__getitem__, lambda: 0.0, record, 8)
    assert (received, answered, unsent) == (3, 2, None)
    assert [(d, m) for d, _s, m in deferred] == [(batch[1], missed)]
    assert journal == [batch[0], batch[2]]
    reference = Engine(engine.scenario)
    for sent in (batch[0], batch[2]):
        assert client.recv(65536) == reference.handle(sent, source, 0.0).sends[0].data


@pytest.mark.skipif(not BATCHED_UDP, reason=f"recvmmsg/sendmmsg: {STATUS}")
def test_a_udp_batch_without_the_compiled_path_hands_back_everything(
        pair: tuple[socket.socket, socket.socket]) -> None:
    listener, client = pair
    port = client.getsockname()[1]
    sources = UDPSources(1, "127.0.0.1", listener.getsockname()[1])
    datagrams = [request("OPTIONS", n, port) for n in range(3)]
    send_all(client, listener, datagrams)
    deferred, unsent, received, answered = read_udp(listener.fileno(), sources.__getitem__, 8)
    assert (received, answered, unsent) == (3, 0, None)
    assert deferred == [(d, sources[("127.0.0.1", port)], None) for d in datagrams]
