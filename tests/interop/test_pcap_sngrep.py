"""The journal's pcap export read by sngrep, the terminal SIP flow viewer: ``sngrep -I
FILE -N -O OUT`` writes back every packet it parsed as SIP, so OUT must hold one
packet per journal message (UDP, TCP and WebSocket alike) and nothing else."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import aiohttp

from sipresponder.testing.api import Responder
from tests.conftest import require_binary
from tests.interop.test_pcap_tshark import pytestmark, running, traffic

__all__ = ["pytestmark", "running"]  # the fixture and the interop mark, shared

SNGREP_TIMEOUT = 30  # s


def frames(pcap: bytes) -> list[bytes]:
    out, offset = [], 24
    while offset < len(pcap):
        captured = struct.unpack_from("<8xI", pcap, offset)[0]
        out.append(pcap[offset + 16:offset + 16 + captured])
        offset += 16 + captured
    return out


async def test_sngrep_parses_every_exported_message(
        running: tuple[Responder, str, aiohttp.ClientSession], tmp_path: Path) -> None:
    binary = require_binary("sngrep")
    responder, base, http = running
    await traffic(responder)
    exported, parsed = tmp_path / "journal.pcap", tmp_path / "sngrep.pcap"
    async with http.get(base + "/api/requests.pcap") as response:
        exported.write_bytes(await response.read())
    done = subprocess.run([binary, "-I", str(exported), "-N", "-q", "-O", str(parsed)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=SNGREP_TIMEOUT, check=False)
    assert done.returncode == 0, f"sngrep failed ({done.returncode}): {done.stderr}"
    entries = list(responder.journal)
    messages = sum(1 + len(e.responses) for e in entries)
    written = frames(parsed.read_bytes())
    assert len(written) == messages, (
        f"sngrep took {len(written)} of the {messages} messages as SIP")
    # Unmasked payloads (all but the WebSocket client's frames) carry their Call-IDs.
    seen = {e.call_id for e in entries if any(f"Call-ID: {e.call_id}".encode() in f
                                              for f in written)}
    assert seen >= {e.call_id for e in entries if e.transport != "ws"}
