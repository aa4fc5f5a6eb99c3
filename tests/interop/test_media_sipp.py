"""SIPp's built-in uac_pcap scenario against media-lab's sip:echo@ (issue 21): SIPp
plays pcap/g711a.pcap, then pcap/dtmf_2833_1.pcap, to the port our answer names; the
call succeeds, our echo reaches SIPp's media port, and the journal says the digit 1
arrived and counts the packets each way."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sipresponder.testing.api import Responder
from tests.conftest import require_binary
from tests.interop.conftest import free_port

pytestmark = pytest.mark.interop

PCAPS = Path("/usr/share/sip-tester")
TIMEOUT = 60


def pcaps() -> Path:
    if not (PCAPS / "g711a.pcap").exists():
        message = f"{PCAPS}/g711a.pcap is missing (apt-get install sip-tester)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return PCAPS


async def test_sipp_uac_pcap_against_echo(tmp_path: Path) -> None:
    sipp = require_binary("sipp", "apt-get install sip-tester")
    (tmp_path / "pcap").symlink_to(pcaps())
    async with Responder("media-lab", listen=["udp:127.0.0.1:0"]) as responder:
        port = responder.address("udp")[1]
        cmd = [sipp, "-sn", "uac_pcap", "-s", "echo", "-m", "1", "-nostdin",
               "-timeout", "30s", "-timeout_error", "-i", "127.0.0.1",
               "-p", str(free_port()), "-mp", str(free_port() & ~1),
               f"127.0.0.1:{port}"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            pytest.fail(f"SIPp ran past {TIMEOUT}s: {' '.join(cmd)}")
        assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
        [invite] = await responder.wait_for("INVITE", dtmf="1", timeout=10)
        assert invite.media is not None
        media = invite.media.summary()
        assert media["codec"] == "PCMA" and media["event_payload_type"] == 101
        received, sent = int(str(media["packets_received"])), int(str(media["packets_sent"]))
        assert received > 50 and sent == received  # every G.711 packet echoed
        assert media["malformed"] == 0 and media["foreign"] == 0
        await responder.verify("BYE", exactly=1)  # SIPp hung up after the media
