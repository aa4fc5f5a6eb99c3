"""The compiled request path over real sockets: batched UDP, TCP, the journal, counters,
and the pure-Python switch (SIPRESPONDER_NO_EXTENSIONS).

Over loopback with the Python API's Responder (journal on) and `serve` itself: many
requests sent at once are all answered, in their own transaction's octets; the journal
lists each with its parsed fields although the compiled path recorded it unparsed;
/metrics' counters count them; most never reached the Python engine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from sipresponder.testing.api import Responder
from sipresponder.uas.compiled import BATCHED_UDP, STATUS, speedups
from tests.sipclient import TCPClient, make_request, parse_response

compiled = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")
LISTENING = re.compile(r"listening on udp:127\.0\.0\.1:(\d+)")
ADMIN = re.compile(r"admin API on http://127\.0\.0\.1:(\d+)")


def deferred_total(responder: Responder) -> int:
    fast = responder.server.engine.fast
    assert fast is not None
    return sum(fast.table.deferred().values())


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def udp_burst(port: int, requests: list[bytes], timeout: float = 10.0,
                    sock: socket.socket | None = None) -> list[bytes]:
    """Send every request at once (from ``sock``, else a new socket), then read as many
    answers."""
    loop = asyncio.get_running_loop()
    own = sock is None
    sock = sock or udp_socket()
    try:
        for data in requests:
            await loop.sock_sendto(sock, data, ("127.0.0.1", port))
        answers = []
        async with asyncio.timeout(timeout):
            while len(answers) < len(requests):
                answers.append(await loop.sock_recv(sock, 65536))
        return answers
    finally:
        if own:
            sock.close()


@compiled
@pytest.mark.skipif(not BATCHED_UDP, reason="recvmmsg/sendmmsg: Linux only")
async def test_udp_burst_is_answered_compiled_and_journaled() -> None:
    async with Responder() as r:
        port = r.address("udp")[1]
        requests = [make_request("OPTIONS", f"sip:bench@127.0.0.1:{port}", call_id=f"c{i}")
                    for i in range(300)]
        # The first one teaches the table (a burst read before that lesson would all go
        # to the engine: one wake-up reads them all); then the rest at once.
        answers = await udp_burst(port, requests[:1])
        answers += await udp_burst(port, requests[1:])
        by_call = {parse_response(a).get("Call-ID"): parse_response(a) for a in answers}
        assert set(by_call) == {f"c{i}" for i in range(300)}
        assert {resp.code for resp in by_call.values()} == {200}
        # One miss taught the table; the rest never reached the engine.
        assert deferred_total(r) <= 5
        entries = await r.wait_for("OPTIONS", count=300)
        assert len(entries) == 300
        assert {e.header("Call-ID") for e in entries} == set(by_call)
        assert all(e.rule == "rule 'options' (#3)" and e.codes == [200] for e in entries)
        counters = r.server.engine.counters
        assert counters["request:OPTIONS"] == 300
        assert counters["response:200"] == 300


@compiled
async def test_compiled_answers_equal_the_engines_over_udp() -> None:
    """The same request answered twice: by the engine (the miss) and compiled."""
    async with Responder() as r:
        port = r.address("udp")[1]
        first = make_request("INVITE", f"sip:486@127.0.0.1:{port}", call_id="same",
                             branch="z9hG4bK-same")
        sock = udp_socket()  # one source port: the same rport in both answers
        try:
            [by_engine] = await udp_burst(port, [first], sock=sock)
            before = deferred_total(r)
            [compiled_answer] = await udp_burst(port, [first], sock=sock)
        finally:
            sock.close()
        assert deferred_total(r) == before  # answered compiled
        assert compiled_answer == by_engine
        assert parse_response(compiled_answer).code == 486


@compiled
async def test_tcp_messages_take_the_compiled_path() -> None:
    async with Responder(listen=["tcp:127.0.0.1:0"]) as r:
        port = r.address("tcp")[1]
        client = await TCPClient.connect(port)
        try:
            for i in range(20):
                await client.send(make_request("OPTIONS", f"sip:bench@127.0.0.1:{port}",
                                               transport="TCP", call_id=f"t{i}"))
                response = await client.recv()
                assert response.code == 200 and response.get("Call-ID") == f"t{i}"
        finally:
            await client.close()
        assert deferred_total(r) <= 2
        entries = r.requests(method="OPTIONS")
        assert [e.header("Call-ID") for e in entries] == [f"t{i}" for i in range(20)]
        assert all(e.transport == "tcp" for e in entries)


@compiled
async def test_an_absorbed_ack_is_journaled_and_counted() -> None:
    async with Responder() as r:
        port = r.address("udp")[1]
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        try:
            for i in range(3):
                await loop.sock_sendto(sock, make_request("ACK", "sip:486@127.0.0.1",
                                                          call_id=f"a{i}"), ("127.0.0.1", port))
            entries = await r.wait_for("ACK", count=3)
        finally:
            sock.close()
        assert [e.outcome for e in entries] == ["ACK absorbed"] * 3
        assert all(e.responses == [] and e.rule is None for e in entries)
        assert r.server.engine.counters["request:ACK"] == 3


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[str], int, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0",
         "--admin", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    assert proc.stderr is not None
    udp = admin = 0
    lines = []
    while not (udp and admin):
        line = proc.stderr.readline()
        if not line:
            proc.kill()
            pytest.fail("serve exited:\n" + "".join(lines))
        lines.append(line)
        if m := LISTENING.search(line):
            udp = int(m[1])
        if m := ADMIN.search(line):
            admin = int(m[1])
    return proc, udp, admin


@pytest.mark.parametrize("pure", [True, False], ids=["pure", "default"])
def test_healthz_and_version_name_the_request_path(pure: bool) -> None:
    if not pure and speedups is None:
        pytest.skip(f"compiled path: {STATUS}")
    env = {"SIPRESPONDER_NO_EXTENSIONS": "1"} if pure else {"SIPRESPONDER_NO_EXTENSIONS": ""}
    version = subprocess.run([sys.executable, "-m", "sipresponder", "--version"],
                             capture_output=True, text=True, env={**os.environ, **env},
                             timeout=30, check=True).stdout
    assert ("pure Python" in version) == pure, version
    proc, udp, admin = _serve(env)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=10) as resp:
            health = json.load(resp)
        assert health["request_path"] == ("pure Python" if pure else "compiled")
        answers = asyncio.run(udp_burst(udp, [make_request("OPTIONS", "sip:bench@127.0.0.1",
                                                           call_id=f"h{i}") for i in range(5)]))
        assert {parse_response(a).code for a in answers} == {200}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@compiled
@pytest.mark.skipif(not BATCHED_UDP, reason="recvmmsg/sendmmsg: Linux only")
async def test_a_wildcard_listener_answers_compiled_what_names_no_local_address() -> None:
    """On 0.0.0.0 the local address is known per peer only: an answer that names none
    (OPTIONS' 200) is kept for the listener; one that does (the 302's Contact of the
    redirects scenario names local.hostport) is left to the engine each time."""
    scenario = """
[[rule]]
name = "moved"
match = { method = "INVITE" }
code = 302
contacts = ["<sip:elsewhere@{local.hostport}>"]
[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200
"""
    async with Responder(scenario, listen=["udp:0.0.0.0:0"]) as r:
        port = r.address("udp")[1]
        options = [make_request("OPTIONS", f"sip:bench@127.0.0.1:{port}", call_id=f"w{i}")
                   for i in range(20)]
        answers = await udp_burst(port, options[:1])
        answers += await udp_burst(port, options[1:])
        assert {parse_response(a).code for a in answers} == {200}
        assert deferred_total(r) == 1
        invites = [make_request("INVITE", f"sip:bob@127.0.0.1:{port}", call_id=f"m{i}")
                   for i in range(3)]
        for invite in invites:
            [moved] = await udp_burst(port, [invite])
            response = parse_response(moved)
            assert response.code == 302
            assert response.get("Contact") == f"<sip:elsewhere@127.0.0.1:{port}>"
        assert deferred_total(r) == 1 + 3, r.server.engine.fast.table.deferred()
