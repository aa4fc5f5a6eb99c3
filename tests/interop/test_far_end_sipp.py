"""SIPp against the bundled far-end scenario: each flow's example (examples/sipp/*-uac.xml)
run as a user runs it, over UDP and TCP, judged twice: SIPp's exit status (its scenario
checks what the far end sent) and what the responder recorded (the requests it
received, and those it sent with the statuses SIPp answered)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipresponder.scenario.bundled import scenario_path
from sipresponder.scenario.loader import load_scenario
from sipresponder.testing.api import Responder
from tests.conftest import require_binary
from tests.farend_peer import SentLog, UDPPeer, barrier
from tests.interop.conftest import free_port

pytestmark = pytest.mark.interop

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sipp"
SIPP_TIMEOUT = 15  # -timeout (s): SIPp fails on its own; the longest flow takes about 3 s
PROCESS_TIMEOUT = 30  # the last resort if SIPp hangs
BIND_FAILED = {254, 255}
SETTLE_ROUNDS = 50  # barrier round trips to wait for a last response SIPp sent


@dataclass(frozen=True)
class Flow:
    service: str
    received: list[str]  # the requests the responder received, in order
    sent: list[str]  # the requests the far end sent, in order
    codes: dict[str, list[list[int]]]  # per method sent: what SIPp answered each
    ooc: bool = False  # SIPp needs the out-of-call scenario (the far end calls in)


FLOWS = [
    Flow("hangup", ["INVITE", "ACK"], ["BYE"], {"BYE": [[200]]}),
    Flow("hold", ["INVITE", "ACK", "BYE"], ["INVITE", "ACK", "INVITE", "ACK"],
         {"INVITE": [[200], [200]]}),
    Flow("mwi", ["SUBSCRIBE", "SUBSCRIBE"], ["NOTIFY", "NOTIFY"], {"NOTIFY": [[200], [200]]}),
    Flow("refer", ["INVITE", "ACK", "REFER", "BYE"], ["NOTIFY", "NOTIFY"],
         {"NOTIFY": [[200], [200]]}),
    Flow("transfer", ["INVITE", "ACK", "NOTIFY", "BYE"], ["REFER"], {"REFER": [[202]]}),
    Flow("callme", ["REGISTER"], ["INVITE", "ACK", "BYE"],
         {"INVITE": [[200]], "BYE": [[200]]}, ooc=True),
    # SIPp's own PRACK and the 200s to it and to the INVITE; the far end sends nothing.
    Flow("prack", ["INVITE", "PRACK", "ACK", "BYE"], [], {}),
]


@pytest.fixture
async def far_end() -> AsyncIterator[tuple[Responder, SentLog]]:
    async with Responder(scenario_path("far-end")) as responder:
        assert responder.server is not None
        yield responder, SentLog.attach(responder.server.engine)


async def run_sipp(tmp_path: Path, flow: Flow, transport: str, port: int,
                   examples: Path = EXAMPLES) -> tuple[int, str]:
    sipp = require_binary("sipp")
    for attempt in range(3):
        errors = tmp_path / f"errors-{attempt}.log"
        ooc = ["-oocsf", str(examples / f"{flow.service}-ooc.xml")] if flow.ooc else []
        cmd = [sipp, "-sf", str(examples / f"{flow.service}-uac.xml"), *ooc,
               "-s", flow.service, "-m", "1", "-timeout", f"{SIPP_TIMEOUT}s",
               "-timeout_error", "-nostdin", "-t", transport, "-i", "127.0.0.1",
               "-p", str(free_port()), "-trace_err", "-error_file", str(errors),
               f"127.0.0.1:{port}"]
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=tmp_path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            pytest.fail(f"SIPp ran past {PROCESS_TIMEOUT}s: {' '.join(cmd)}")
        output = out.decode(errors="replace")[-4000:]
        if errors.exists():
            output += "\n--- errors\n" + errors.read_text(errors="replace")[-4000:]
        if proc.returncode in BIND_FAILED and "bind" in output.lower():
            continue  # another process took the local port: pick another
        return proc.returncode or 0, output
    pytest.fail(f"SIPp could not bind a local port in 3 tries:\n{output}")


async def settle(responder: Responder, sent: SentLog, flow: Flow) -> None:
    """SIPp may exit before the responder read its last response: wait for it with
    OPTIONS round trips over UDP (each one reads the listener further), bounded."""
    peer = await UDPPeer.connect(responder.address("udp"))
    try:
        for _ in range(SETTLE_ROUNDS):
            if all(sent.codes(method) == codes for method, codes in flow.codes.items()):
                return
            await barrier(peer, responder.uri("options"))
    finally:
        await peer.close()


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
@pytest.mark.parametrize("flow", FLOWS, ids=[f.service for f in FLOWS])
async def test_far_end_flow_against_sipp(far_end, tmp_path: Path, flow: Flow,
                                         transport: str) -> None:
    responder, sent = far_end
    if flow.service == "prack" and not any(
            rule.name == "prack" for rule in load_scenario(scenario_path("far-end")).rules):
        pytest.skip("far-end has no prack rule yet: it needs reliable provisionals")
    port = responder.address("udp" if transport == "u1" else "tcp")[1]
    code, output = await run_sipp(tmp_path, flow, transport, port)
    assert code == 0, f"SIPp failed (exit {code}):\n{output}"
    await settle(responder, sent, flow)
    received = [e.method for e in responder.requests(direction="received")
                if e.method not in (None, "OPTIONS")]
    assert received == flow.received
    assert sent.methods() == flow.sent
    for method, codes in flow.codes.items():
        assert sent.codes(method) == codes, f"the statuses SIPp answered our {method}s"
    wanted = "udp" if transport == "u1" else "tcp"
    assert {e.transport for e in sent.exchanges} == ({wanted} if flow.sent else set())
    # The journal has what the far end sent too, with what SIPp answered.
    journaled = [e.method for e in responder.requests(direction="sent")]
    assert journaled == flow.sent


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
async def test_session_timer_against_sipp(tmp_path: Path, transport: str) -> None:
    """examples/sipp/timer-uac.xml against far-end's sip:timer@, with 2 s for 90 s
    (the floor) and 4 s for the interval, so that the refresh comes 2 s after the
    200 instead of 45: the same flow, the same checks, smaller numbers."""
    scenario = tmp_path / "far-end.toml"
    scenario.write_text(scenario_path("far-end").read_text().replace(
        "session_timer = { min_se = 90,", "session_timer = { min_se = 2,"))
    xml = (EXAMPLES / "timer-uac.xml").read_text()
    for old, new in (("Session-Expires: 60\n", "Session-Expires: 1\n"),
                     ("^ *90 *$", "^ *2 *$"), ("90;refresher=uas", "4;refresher=uas"),
                     ("Session-Expires: 90\n", "Session-Expires: 4\n"),
                     ("Min-SE: 90\n", "Min-SE: 2\n")):
        assert old in xml, old
        xml = xml.replace(old, new)
    (tmp_path / "timer-uac.xml").write_text(xml)
    flow = Flow("timer", ["INVITE", "ACK", "INVITE", "ACK", "BYE"], ["UPDATE"],
                {"UPDATE": [[200]]})
    async with Responder(scenario) as responder:
        assert responder.server is not None
        sent = SentLog.attach(responder.server.engine)
        port = responder.address("udp" if transport == "u1" else "tcp")[1]
        code, output = await run_sipp(tmp_path, flow, transport, port,
                                      examples=tmp_path)
        assert code == 0, f"SIPp failed (exit {code}):\n{output}"
        await settle(responder, sent, flow)
        first, _, second, *_ = responder.requests(direction="received", method=None)
        assert first.codes == [422] and second.codes[-1] == 200
        assert [e.method for e in responder.requests(direction="sent")] == ["UPDATE"]
        await responder.verify("UPDATE", direction="sent", code=200, exactly=1)
