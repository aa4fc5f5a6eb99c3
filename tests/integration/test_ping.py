"""`sipresponder ping`: its pure parts, then against the in-process responder and
against silent, refusing and misbehaving peers."""

from __future__ import annotations

import asyncio
import re
import socket

import asyncio_dgram
import pytest

from sipresponder.ops.cli import main
from sipresponder.ops.ping import (
    Answer,
    Expect,
    PingError,
    Target,
    build_options,
    default_target,
    parse_answer,
    parse_target,
    ping,
    take_message,
)
from sipresponder.sip.message import parse_request
from tests.sipclient import parse_response


@pytest.mark.parametrize(("text", "transport", "expected"), [
    ("127.0.0.1", None, Target("udp", "127.0.0.1", 5060, "sip:127.0.0.1:5060")),
    ("localhost:5070", None, Target("udp", "localhost", 5070, "sip:localhost:5070")),
    ("tcp:[::1]:5080", None, Target("tcp", "::1", 5080, "sip:[::1]:5080")),
    ("[::1]", "tcp", Target("tcp", "::1", 5060, "sip:[::1]:5060")),
    ("udp:0.0.0.0:5060", None, Target("udp", "127.0.0.1", 5060, "sip:127.0.0.1:5060")),
    ("udp::5062", None, Target("udp", "127.0.0.1", 5062, "sip:127.0.0.1:5062")),
    ("tcp:[::]:5060", None, Target("tcp", "::1", 5060, "sip:[::1]:5060")),
    ("sip:486@example.com", None, Target("udp", "example.com", 5060, "sip:486@example.com")),
    ("sip:bob:pw@[::1]:5090;transport=TCP", None,
     Target("tcp", "::1", 5090, "sip:bob:pw@[::1]:5090;transport=TCP")),
    ("sip:bob@host:5062;transport=tcp", "udp",
     Target("udp", "host", 5062, "sip:bob@host:5062;transport=tcp")),
    ("SIP:200@10.1.2.3?Subject=x", None, Target("udp", "10.1.2.3", 5060, "SIP:200@10.1.2.3?Subject=x")),
])
def test_parse_target(text: str, transport: str | None, expected: Target) -> None:
    assert parse_target(text, transport) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("sips:bob@host", "TLS"),
    ("::1:5060", "brackets"),
    ("host:99999", "invalid port"),
    ("host:0", "invalid port"),
    ("[::1", "expected [IPv6]:PORT"),
    ("sip:bob@", "expected sip:"),
    ("tls:host:5061", "transport 'tls'"),
    ("sip:host;transport=sctp", "transport 'sctp'"),
    ("sip:bob@:5060", "no host"),
])
def test_parse_target_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_target(text)


def test_default_target_follows_the_first_listen_address() -> None:
    assert default_target({}) == "udp:127.0.0.1:5060"
    assert default_target({"SIPRESPONDER_LISTEN": " tcp:0.0.0.0:5070, udp:0.0.0.0:5070"}) == \
        "tcp:0.0.0.0:5070"
    assert default_target({"SIPRESPONDER_LISTEN": "tls:0.0.0.0:5061 wss::8443 UDP::5062"}) == \
        "UDP::5062"  # ping speaks neither TLS nor WebSocket
    assert parse_target(default_target({"SIPRESPONDER_LISTEN": "tcp:0.0.0.0:5070"})) == \
        Target("tcp", "127.0.0.1", 5070, "sip:127.0.0.1:5070")


def test_expect() -> None:
    default = Expect.parse("2xx")
    assert 200 in default and 299 in default
    assert 199 not in default and 300 not in default
    several = Expect.parse("486, 3xx 603")
    assert [c for c in (200, 302, 399, 486, 487, 603) if c in several] == [302, 399, 486, 603]
    assert several.text == "486,3xx,603"
    for bad in ("", "abc", "700", "99", "7xx", "2XX0"):
        with pytest.raises(ValueError):
            Expect.parse(bad)


def test_the_request_parses_and_asks_for_rport() -> None:
    target = parse_target("tcp:[::1]:5080")
    raw = build_options(target, ("::1", 40000), branch="z9hG4bK-1", call_id="c1@x", tag="t1")
    request = parse_request(raw, datagram=True)
    assert request.method == "OPTIONS"
    assert raw.startswith(b"OPTIONS sip:[::1]:5080 SIP/2.0\r\n")
    assert b"\r\nVia: SIP/2.0/TCP [::1]:40000;branch=z9hG4bK-1;rport\r\n" in raw
    assert b"\r\nCSeq: 1 OPTIONS\r\n" in raw
    assert raw.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_parse_answer_matches_by_call_id() -> None:
    ours = b"SIP/2.0 486 Busy Here\r\ni: abc@h\r\nContent-Length: 0\r\n\r\n"
    assert parse_answer(ours, "abc@h") == Answer(486, "Busy Here", ours)
    assert parse_answer(ours.replace(b"abc@h", b"other@h"), "abc@h") is None
    with pytest.raises(PingError, match="not a SIP response"):
        parse_answer(b"OPTIONS sip:x SIP/2.0\r\n\r\n", "abc@h")


def test_take_message_frames_a_stream() -> None:
    one = b"SIP/2.0 200 OK\r\nl: 4\r\n\r\nbody"
    two = b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"
    assert take_message(one[:-1]) is None
    assert take_message(b"\r\n\r\n" + one + two) == (one, two)
    assert take_message(two) == (two, b"")
    with pytest.raises(PingError, match="Content-Length"):
        take_message(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")


# --- against the in-process responder ---------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ping_gets_200(responder, transport: str) -> None:
    port = responder.udp_port if transport == "udp" else responder.tcp_port
    answer, rtt = await ping(parse_target(f"{transport}:127.0.0.1:{port}"), timeout=5)
    assert answer.status_line == "SIP/2.0 200 OK"
    assert 0 < rtt < 5
    response = parse_response(answer.raw)  # an independent parser accepts it whole
    assert response.get("CSeq") == "1 OPTIONS"
    assert re.search(r";rport=[0-9]+", response.get("Via"))  # answered to our source port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_provisional_responses_are_reported_then_the_final_one(responder,
                                                                     transport: str) -> None:
    port = responder.udp_port if transport == "udp" else responder.tcp_port
    seen: list[int] = []
    target = parse_target(f"sip:180@127.0.0.1:{port};transport={transport}")
    answer, _ = await ping(target, timeout=5, on_provisional=lambda a, rtt: seen.append(a.code))
    assert seen == [180]
    assert answer.code == 200


async def test_silence_is_a_timeout_after_retransmissions() -> None:
    silent = await asyncio_dgram.bind(("127.0.0.1", 0))
    port = silent.sockname[1]
    with pytest.raises(PingError, match=rf"no response from udp:127.0.0.1:{port} within 0.8 s"):
        await ping(parse_target(f"udp:127.0.0.1:{port}"), timeout=0.8)
    # Timer E: sent at once and again after T1 (0.5 s), the same octets both times.
    copies = []
    while len(copies) < 2:
        data, _ = await asyncio.wait_for(silent.recv(), 1)
        copies.append(data)
    silent.close()
    assert copies[0] == copies[1]
    assert copies[0].startswith(b"OPTIONS ")


def _free_port(kind: socket.SocketKind) -> int:
    """A port with nothing bound to it (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_refused(transport: str) -> None:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    port = _free_port(kind)
    with pytest.raises(PingError, match="connection refused"):
        await ping(parse_target(f"{transport}:127.0.0.1:{port}"), timeout=5)


async def test_stray_responses_are_skipped_and_rport_is_honoured() -> None:
    """A peer that first sends a response to some other request: ping waits on."""
    peer = await asyncio_dgram.bind(("127.0.0.1", 0))

    async def answer_twice() -> None:
        data, source = await peer.recv()
        call_id = re.search(rb"\r\nCall-ID: ([^\r]+)", data)[1]
        stray = b"SIP/2.0 500 Stray\r\nCall-ID: someone-else\r\nContent-Length: 0\r\n\r\n"
        await peer.send(stray, source)
        await peer.send(b"SIP/2.0 202 Fine\r\nCall-ID: " + call_id +
                        b"\r\nContent-Length: 0\r\n\r\n", source)

    task = asyncio.create_task(answer_twice())
    answer, _ = await ping(parse_target(f"127.0.0.1:{peer.sockname[1]}"), timeout=5)
    await task
    peer.close()
    assert (answer.code, answer.reason) == (202, "Fine")


# --- the command line: exit codes and what it prints -------------------------------------
# main() runs its own event loop, so it goes to a thread while the responder runs here.

async def test_cli_exit_codes(responder, capsys) -> None:
    udp = f"127.0.0.1:{responder.udp_port}"
    assert await asyncio.to_thread(main, ["ping", udp]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"SIP/2\.0 200 OK  \(udp:{udp}, [0-9.]+ ms\)\n", out), out

    assert await asyncio.to_thread(main, ["ping", f"sip:486@{udp}"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("SIP/2.0 486 Busy Here  (")
    assert "error: expected 2xx, got 486 Busy Here\n" in captured.err

    assert await asyncio.to_thread(
        main, ["ping", "--expect", "486", "-t", "tcp", f"sip:486@127.0.0.1:{responder.tcp_port}"]
    ) == 0

    refused = _free_port(socket.SOCK_STREAM)
    assert await asyncio.to_thread(main, ["ping", f"tcp:127.0.0.1:{refused}"]) == 2
    assert "connection refused" in capsys.readouterr().err

    assert await asyncio.to_thread(main, ["ping", "--timeout", "0", udp]) == 2
    assert "--timeout 0" in capsys.readouterr().err


async def test_cli_defaults_come_from_the_environment(responder, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SIPRESPONDER_LISTEN", f"tcp:0.0.0.0:{responder.tcp_port} udp:0.0.0.0:1")
    monkeypatch.setenv("SIPRESPONDER_PING_EXPECT", "3xx")
    assert await asyncio.to_thread(main, ["ping"]) == 1
    assert "error: expected 3xx, got 200 OK\n" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["ping", "--expect", "200"]) == 0
    assert f"(tcp:127.0.0.1:{responder.tcp_port}, " in capsys.readouterr().out
