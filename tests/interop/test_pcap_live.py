"""The journal's pcap export equals a live capture of the same exchange (issue 18).

``tshark -i lo`` captures the traffic while it happens; the journal's pcap (the admin
API's GET /api/requests.pcap) is exported afterwards; ``tshark -r`` reads both, and
frame by frame they must agree: direction, method or status code, CSeq, in the same
order; and so must the ladder (GET /api/ladder), a retransmission marked as one. Two
exchanges over UDP, each once:

- INVITE, 180, the INVITE retransmitted and its 180 again, CANCEL, 200, 487, ACK (the
  export had the 487 twice, the first before the CANCEL);
- INVITE, 180, 200, then Timer G's copies of the 200 while the client does not ACK,
  then the ACK (the export had the 200 once).

The capture helper (and its probes, which prove tshark is capturing before the traffic
starts and has written every packet before it stops) is tests/interop/test_tshark.py's.
Skipped with a reason where tshark or the right to capture is missing; under CI=true
that fails instead.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.conftest import require_binary
from tests.interop.test_tshark import END_PROBE, Capture, tshark_fields
from tests.sipclient import UDPClient, make_request

pytestmark = pytest.mark.interop

TIMEOUT = 5.0
SCENARIO = """\
[settings]
timer_t1 = 0.05

[[rule]]
name = "ring"
match = { method = "INVITE", user = "ring" }
provisional = [180]
action = "provisional-only"

[[rule]]
name = "answer"
match = { method = "INVITE", user = "answer" }
provisional = [180]
code = 200
"""
FIELDS = ["udp.srcport", "sip.Method", "sip.Status-Code", "sip.CSeq"]
# (from the client?, method or code, CSeq)
Frame = tuple[bool, str, str]


@pytest.fixture
async def running() -> AsyncIterator[tuple[Responder, str, aiohttp.ClientSession]]:
    responder = await Responder(parse_scenario(SCENARIO, "<live pcap>"),
                                ["udp:127.0.0.1:0"]).start()
    admin = Admin(responder, SCENARIO)
    host, port = await admin.start("127.0.0.1", 0)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    try:
        yield responder, f"http://{host}:{port}", http
    finally:
        await http.close()
        await admin.close()
        await responder.stop()


@pytest.fixture
def probe() -> Iterator[socket.socket]:
    """The capture's probe socket: a port of the test's own, never decoded as SIP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def frames(tshark: str, pcap: Path, port: int) -> list[Frame]:
    rows = tshark_fields(tshark, pcap, ["-d", f"udp.port=={port},sip"],
                         f"udp.port == {port} && sip", FIELDS)
    out = []
    for row in rows:
        method, code, cseq = row["sip.Method"], row["sip.Status-Code"], row["sip.CSeq"]
        assert len(cseq) == 1, f"one SIP message per frame: {row}"
        out.append((row["udp.srcport"] != [str(port)], (method or code)[0], cseq[0]))
    return out


async def cancelled_call(port: int) -> None:
    client = await UDPClient.connect(port)
    uri = "sip:ring@127.0.0.1"
    try:
        invite = make_request("INVITE", uri, call_id="live-cancel", branch="z9hG4bK-lc")
        assert [r.code for r in await client.exchange(invite, timeout=TIMEOUT)] == [180]
        # Retransmitted: the transaction answers it with its last response again.
        assert [r.code for r in await client.exchange(invite, timeout=TIMEOUT)] == [180]
        cancel = make_request("CANCEL", uri, call_id="live-cancel", branch="z9hG4bK-lc")
        got = await client.exchange(cancel, expect=2, timeout=TIMEOUT)
        assert [r.code for r in got] == [200, 487]
        tag = (got[1].get("To") or "").split("tag=")[1]
        await client.send(make_request("ACK", uri, call_id="live-cancel",
                                       branch="z9hG4bK-lc", to_tag=tag))
    finally:
        client.close()


async def unacknowledged_call(port: int) -> None:
    """No ACK until the 200 came three times (T1 = 50 ms: at 0, T1, 3*T1)."""
    client = await UDPClient.connect(port)
    uri = "sip:answer@127.0.0.1"
    try:
        invite = make_request("INVITE", uri, call_id="live-timer-g", branch="z9hG4bK-lg")
        got = await client.exchange(invite, expect=4, timeout=TIMEOUT)
        assert [r.code for r in got] == [180, 200, 200, 200]
        tag = (got[1].get("To") or "").split("tag=")[1]
        await client.send(make_request("ACK", uri, call_id="live-timer-g",
                                       branch="z9hG4bK-lg-ack", to_tag=tag))
    finally:
        client.close()


@pytest.mark.parametrize(("exchange", "first", "again"), [
    (cancelled_call, [(True, "INVITE", "1 INVITE"), (False, "180", "1 INVITE"),
                      (True, "INVITE", "1 INVITE"), (False, "180", "1 INVITE"),
                      (True, "CANCEL", "1 CANCEL"), (False, "200", "1 CANCEL"),
                      (False, "487", "1 INVITE"), (True, "ACK", "1 ACK")],
     [False, False, True, True, False, False, False, False]),
    (unacknowledged_call, [(True, "INVITE", "1 INVITE"), (False, "180", "1 INVITE"),
                           (False, "200", "1 INVITE"), (False, "200", "1 INVITE"),
                           (False, "200", "1 INVITE")],
     [False, False, False, True, True]),
], ids=["cancel", "timer-g"])
async def test_the_exported_pcap_equals_a_live_capture(
        running: tuple[Responder, str, aiohttp.ClientSession], probe: socket.socket,
        tmp_path: Path, exchange: Callable[[int], Awaitable[None]], first: list[Frame],
        again: list[bool]) -> None:
    tshark = require_binary("tshark")
    responder, base, http = running
    port = responder.address("udp")[1]
    probe_port = probe.getsockname()[1]
    live = tmp_path / "live.pcapng"
    capture = Capture(tshark, live, [port, probe_port], [], probe, probe_port)
    await asyncio.to_thread(capture.start)  # skips (fails under CI) when it cannot capture
    try:
        await exchange(port)
        await responder.wait_for("ACK", timeout=TIMEOUT)
        shown = await asyncio.to_thread(capture.show, END_PROBE, repeat=False)
        assert shown, f"tshark did not show the end-of-traffic probe: {capture.stderr}"
    finally:
        returncode = await asyncio.to_thread(capture.stop)
    assert returncode == 0, capture.stderr
    dropped = re.search(r"([0-9]+) packets? dropped", capture.stderr)
    assert not dropped or dropped[1] == "0", (
        f"the capture lost packets (tshark/kernel buffers, not the responder): {capture.stderr}")

    exported = tmp_path / "journal.pcap"
    async with http.get(base + "/api/requests.pcap") as response:
        assert response.status == 200
        exported.write_bytes(await response.read())

    on_the_wire = frames(tshark, live, port)
    assert on_the_wire[:len(first)] == first, on_the_wire
    assert on_the_wire[-1][1] == "ACK"
    assert frames(tshark, exported, port) == on_the_wire
    # The ladder draws the same frames in the same order (its arrows name no CSeq).
    async with http.get(base + "/api/ladder") as response:
        assert response.status == 200
        arrows = (await response.json())["arrows"]
    assert [(a["from"] != "responder", a["label"].split(" ", 1)[0]) for a in arrows] == [
        (toward, what) for toward, what, _ in on_the_wire]
    # Marked: the retransmitted request and its answer, and every copy of a 200 that
    # Timer G sent (any after the first two as well, until the ACK).
    flags = [a["retransmission"] for a in arrows]
    assert flags[:len(again)] == again and all(flags[len(again):-1]), flags
