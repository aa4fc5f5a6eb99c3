"""The journal's pcap export (GET /api/requests.pcap) read by an independent dissector.

Traffic over UDP, TCP and WebSocket (an INVITE -> 486 -> ACK, an INVITE answered
180 then 200 later and ACKed, OPTIONS, a request rejected with 400), exported over
the admin API, then ``tshark -r``, with no ``-d`` decode-as (what a user who opens
the file gets): every message must be dissected as SIP, none malformed or with an
expert warning or error, with the journal's Call-IDs, methods and codes in the
journal's order. A control file (a response cut off before its empty line) proves
the filter for malformed packets works with the installed tshark.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect

from sipresponder.journal.record import JournalEntry
from sipresponder.ops.admin import Admin
from sipresponder.ops.ladder import status_line
from sipresponder.ops.pcap import write_pcap
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.conftest import require_binary
from tests.sipclient import TCPClient, make_request, udp_exchange
from tests.unit.ops.exchanges import hangup_call

pytestmark = pytest.mark.interop

TSHARK_TIMEOUT = 60  # s for one tshark -r
TIMEOUT = 5.0
SCENARIO = """\
[[rule]]
match = { method = "INVITE", user = "486" }
code = 486

[[rule]]
match = { method = "INVITE", user = "ring" }
provisional = [180]
code = 200
delay = 0.05

[[rule]]
match = { method = ["OPTIONS", "BYE"] }
code = 200
"""
PROBLEM = "_ws.malformed || _ws.expert.severity >= warning"
BROKEN_SIP = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcontrol\r\n"
              b"Call-ID: control\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n")


def tshark(binary: str, pcap: Path, *args: str) -> list[list[str]]:
    done = subprocess.run([binary, "-r", str(pcap), "-n", *args], capture_output=True,
                          text=True, timeout=TSHARK_TIMEOUT, check=False)
    assert done.returncode == 0, f"tshark failed ({done.returncode}): {done.stderr}"
    return [line.split("|") for line in done.stdout.splitlines() if line.strip()]


def fields(binary: str, pcap: Path, display_filter: str, *names: str) -> list[list[str]]:
    args = ["-T", "fields", "-E", "separator=|", *(a for n in names for a in ("-e", n))]
    return tshark(binary, pcap, "-Y", display_filter, *args)


def expected(entries: list[JournalEntry]) -> list[tuple[str, str, str]]:
    """(Call-ID, method, code) of every message, requests and responses, sorted as
    the file is: by the journal's time, then journal order (as pcap.messages does)."""
    rows: list[tuple[float, int, tuple[str, str, str]]] = []
    for entry in entries:
        rows.append((entry.time, len(rows), (entry.call_id or "", entry.method or "", "")))
        for response, sent in zip(entry.responses, entry.response_times, strict=True):
            code = status_line(response)[0]
            rows.append((max(sent, entry.time), len(rows),
                         (entry.call_id or "", "", str(code))))
    return [row for _, _, row in sorted(rows)]


@pytest.fixture
async def running() -> AsyncIterator[tuple[Responder, str, aiohttp.ClientSession]]:
    responder = await Responder(parse_scenario(SCENARIO, "<pcap test>"),
                                ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "ws:127.0.0.1:0"]).start()
    admin = Admin(responder, SCENARIO)
    host, port = await admin.start("127.0.0.1", 0)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    try:
        yield responder, f"http://{host}:{port}", http
    finally:
        await http.close()
        await admin.close()
        await responder.stop()


async def traffic(responder: Responder) -> None:
    udp = responder.address("udp")[1]
    [busy] = await udp_exchange(udp, make_request("INVITE", "sip:486@127.0.0.1",
                                                  call_id="udp-busy", branch="z9hG4bK-ub"))
    assert busy.code == 486
    to_tag = (busy.get("To") or "").split("tag=")[1]
    await udp_exchange(udp, make_request("ACK", "sip:486@127.0.0.1", call_id="udp-busy",
                                         branch="z9hG4bK-ub", to_tag=to_tag),
                       expect=0, timeout=0.05)
    ringing = await udp_exchange(udp, make_request("INVITE", "sip:ring@127.0.0.1",
                                                   call_id="udp-ring"), expect=2)
    assert [r.code for r in ringing] == [180, 200]
    # The ACK ends Timer G: no copy of the 200 joins the journal while it is exported.
    await udp_exchange(udp, make_request("ACK", "sip:ring@127.0.0.1", call_id="udp-ring",
                                         to_tag=(ringing[1].get("To") or "").split("tag=")[1]),
                       expect=0, timeout=0.05)
    await udp_exchange(udp, make_request("OPTIONS", "sip:a@127.0.0.1", call_id="udp-options"))
    # Rejected by the RFC 3261 8.2 checks: the CSeq names another method.
    wrong = make_request("OPTIONS", "sip:a@127.0.0.1", call_id="udp-rejected").replace(
        b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE")
    [rejected] = await udp_exchange(udp, wrong)
    assert rejected.code == 400

    tcp = await TCPClient.connect(responder.address("tcp")[1])
    try:
        await tcp.send(make_request("INVITE", "sip:486@127.0.0.1", transport="TCP",
                                    call_id="tcp-busy", branch="z9hG4bK-tb"))
        busy = await tcp.recv()
        assert busy.code == 486
        await tcp.send(make_request("ACK", "sip:486@127.0.0.1", transport="TCP",
                                    call_id="tcp-busy", branch="z9hG4bK-tb",
                                    to_tag=(busy.get("To") or "").split("tag=")[1]))
        await tcp.send(make_request("OPTIONS", "sip:a@127.0.0.1", transport="TCP",
                                    call_id="tcp-options"))
        assert (await tcp.recv()).code == 200
    finally:
        await tcp.close()

    async with connect(responder.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws:
        await ws.send(make_request("OPTIONS", "sip:a@127.0.0.1", transport="WS",
                                   call_id="ws-options",
                                   via_host="df7jal23ls0d.invalid").decode())  # a text frame
        assert str(await ws.recv()).startswith("SIP/2.0 200 ")
    await responder.wait_for("OPTIONS", count=3, timeout=TIMEOUT)
    await responder.wait_for("ACK", count=3, timeout=TIMEOUT)


async def test_every_exported_message_is_sip_to_tshark(
        running: tuple[Responder, str, aiohttp.ClientSession], tmp_path: Path) -> None:
    binary = require_binary("tshark")
    responder, base, http = running
    await traffic(responder)
    entries = list(responder.journal)
    assert {e.transport for e in entries} == {"udp", "tcp", "ws"}
    assert {e.kind for e in entries} >= {"answered", "absorbed", "rejected"}
    pcap = tmp_path / "journal.pcap"
    async with http.get(base + "/api/requests.pcap") as response:
        assert response.status == 200
        pcap.write_bytes(await response.read())

    sip = fields(binary, pcap, "sip", "sip.Call-ID", "sip.Method", "sip.Status-Code")
    assert [tuple(row) for row in sip] == expected(entries)
    # What is not SIP is the framing around it: TCP handshakes and the WebSocket upgrade.
    assert fields(binary, pcap, "!sip && !(tcp.len == 0) && !http", "frame.number") == []
    assert fields(binary, pcap, PROBLEM, "frame.number", "_ws.expert.message") == []
    expert = subprocess.run([binary, "-r", str(pcap), "-n", "-q", "-z", "expert,warn"],
                            capture_output=True, text=True, timeout=TSHARK_TIMEOUT,
                            check=False)
    assert expert.returncode == 0 and "Warns" not in expert.stdout
    assert "Errors" not in expert.stdout, expert.stdout


def test_the_malformed_filter_flags_a_broken_message(tmp_path: Path) -> None:
    binary = require_binary("tshark")
    control = JournalEntry(1, 0.0, "udp", ("127.0.0.1", 40000), make_request(
        "OPTIONS", "sip:a@127.0.0.1", call_id="control"), local=("127.0.0.1", 5060),
        responses=[BROKEN_SIP], response_times=[0.0], received_at=datetime.now(UTC))
    pcap = tmp_path / "control.pcap"
    pcap.write_bytes(write_pcap([control]))
    flagged = fields(binary, pcap, PROBLEM, "frame.number")
    assert flagged == [["2"]], "the filter no longer flags a malformed SIP response"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_sent_request_reads_back_the_right_way_round(transport: str, tmp_path: Path) -> None:
    """A far end's BYE (a fabricated sent entry, tests/unit/ops/exchanges.py): tshark
    reads it from the responder's address to the client's and the client's 200 back,
    after the client's INVITE, 200 and ACK, with nothing malformed."""
    binary = require_binary("tshark")
    entries = hangup_call(transport)
    pcap = tmp_path / f"hangup-{transport}.pcap"
    pcap.write_bytes(write_pcap(entries))
    port = "udp" if transport == "udp" else "tcp"
    rows = fields(binary, pcap, "sip", "ip.src", f"{port}.srcport", "ip.dst",
                  f"{port}.dstport", "sip.Method", "sip.Status-Code", "sip.CSeq")
    client, responder = "127.0.0.1|40000", "127.0.0.1|5060"
    assert ["|".join(row) for row in rows] == [
        f"{client}|{responder}|INVITE||1 INVITE",
        f"{responder}|{client}||200|1 INVITE",
        f"{client}|{responder}|ACK||1 ACK",
        f"{responder}|{client}|BYE||1 BYE",
        f"{client}|{responder}||200|1 BYE",
    ]
    assert fields(binary, pcap, PROBLEM, "frame.number", "_ws.expert.message") == []
