"""SIPp as the UAC: hundreds of calls per scenario over UDP and TCP, zero failures.

SIPp judges each call by its XML scenario (tests/interop/sipp/); this module checks
its verdict twice: the exit code (0 only when every call succeeded) and the final
row of the -trace_stat CSV (successful, failed, retransmitted, unexpected counts).
"""

from __future__ import annotations

import csv
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.interop.conftest import ResponderProcess, free_port

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "sipp"
ROOT = Path(__file__).resolve().parents[2]
CALLS = 200
RATE = 1000  # calls per second: CALLS calls take about 0.2 s to place
SIPP_TIMEOUT = 20  # -timeout (s): SIPp gives up and fails on its own
PROCESS_TIMEOUT = 40  # subprocess timeout (s): the last resort if SIPp hangs
BIND_FAILED = {254, 255}  # -2 / -1: another process took our local port


@dataclass
class SippRun:
    returncode: int
    stats: dict[str, str]
    output: str

    def count(self, name: str) -> int:
        """A cumulative counter of the last statistics row: count("SuccessfulCall")."""
        return int(self.stats[f"{name}(C)"])


def run_sipp(tmp_path: Path, scenario: str, service: str, transport: str, port: int,
             *extra: str, calls: int = CALLS) -> SippRun:
    sipp = require_binary("sipp")
    for attempt in range(3):
        local_port = free_port()
        stats_file = tmp_path / f"stats-{attempt}.csv"
        screen_file = tmp_path / f"screen-{attempt}.log"
        errors_file = tmp_path / f"errors-{attempt}.log"
        cmd = [
            sipp, "-sf", str(SCENARIOS / scenario), "-s", service,
            "-t", transport, "-i", "127.0.0.1", "-p", str(local_port), "-ci", "127.0.0.1",
            "-m", str(calls), "-r", str(RATE), "-l", str(calls),
            "-timeout", f"{SIPP_TIMEOUT}s", "-timeout_error",
            "-recv_timeout", "5000",
            "-buff_size", "4194304", "-nostdin",
            "-trace_stat", "-stf", str(stats_file),
            "-trace_screen", "-screen_file", str(screen_file),
            "-trace_err", "-error_file", str(errors_file),
            *extra,
            f"127.0.0.1:{port}",
        ]
        # cwd: SIPp drops other trace files next to itself; keep them out of the repo.
        proc = subprocess.run(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=PROCESS_TIMEOUT, check=False)
        output = proc.stdout[-3000:] + proc.stderr[-3000:]
        if proc.returncode in BIND_FAILED and "bind" in output.lower():
            continue  # lost the race for local_port: pick another
        break
    for extra_file in (screen_file, errors_file):
        if extra_file.exists():
            output += f"\n--- {extra_file.name}\n" + extra_file.read_text(errors="replace")[-6000:]
    assert stats_file.exists(), f"SIPp wrote no statistics (exit {proc.returncode}):\n{output}"
    with stats_file.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    assert len(rows) >= 2, f"no statistics rows:\n{output}"
    return SippRun(proc.returncode, dict(zip(rows[0], rows[-1], strict=False)), output)


def port_for(responder: ResponderProcess, transport: str) -> int:
    return responder.udp_port if transport == "u1" else responder.tcp_port


def assert_all_calls_passed(run: SippRun, calls: int = CALLS) -> None:
    summary = {name: run.count(name) for name in (
        "OutgoingCall", "SuccessfulCall", "FailedCall", "FailedUnexpectedMessage",
        "FailedRegexpDoesntMatch", "FailedTimeoutOnRecv", "FailedMaxUDPRetrans",
        "FailedTcpClosed", "DeadCallMsgs", "OutOfCallMsgs", "FatalErrors")}
    context = f"{summary}\n{run.output}"
    assert run.returncode == 0, f"SIPp exit code {run.returncode} (0 = all calls passed)\n{context}"
    assert summary["OutgoingCall"] == calls, context
    assert summary["SuccessfulCall"] == calls, context
    assert summary["FailedCall"] == 0, context
    # responses that matched no call: wrong Call-ID, or a response SIPp did not expect
    assert summary["OutOfCallMsgs"] == 0, context
    assert summary["DeadCallMsgs"] == 0, context
    assert summary["FatalErrors"] == 0, context


TRANSPORTS = pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])


@TRANSPORTS
def test_options_answered_200(responder_process: ResponderProcess, tmp_path: Path,
                              transport: str) -> None:
    run = run_sipp(tmp_path, "options.xml", "200", transport,
                   port_for(responder_process, transport))
    assert_all_calls_passed(run)


@TRANSPORTS
def test_invite_486_then_ack(responder_process: ResponderProcess, tmp_path: Path,
                             transport: str) -> None:
    run = run_sipp(tmp_path, "invite_busy.xml", "486", transport,
                   port_for(responder_process, transport))
    assert_all_calls_passed(run)


@TRANSPORTS
def test_invite_200_sdp_ack_bye(responder_process: ResponderProcess, tmp_path: Path,
                                transport: str) -> None:
    run = run_sipp(tmp_path, "invite_bye.xml", "alice", transport,
                   port_for(responder_process, transport), "-d", "0")
    assert_all_calls_passed(run)


@TRANSPORTS
def test_ringing_call_final_not_retransmitted_after_ack(
        responder_process: ResponderProcess, tmp_path: Path, transport: str) -> None:
    """sip:180@ makes the INVITE transaction stateful: 180, then 200, which over UDP
    is retransmitted (T1 = 500 ms) until the ACK (RFC 3261 13.3.1.4). The call then
    waits 1.2 s before its BYE: a 200 still retransmitted after the ACK would reach
    SIPp in that pause and count as a retransmission."""
    calls = 100
    run = run_sipp(tmp_path, "invite_bye.xml", "180", transport,
                   port_for(responder_process, transport), "-d", "1200", calls=calls)
    assert_all_calls_passed(run, calls)
    assert run.count("Retransmissions") == 0, run.output


def test_the_readmes_sipp_line_succeeds(responder_process: ResponderProcess,
                                        tmp_path: Path) -> None:
    """Issue 12: the README's `sipp -sn uac ... -s 486` ended in "100 failed calls" and
    exit status 1. The tour's line (now in docs/getting-started.md) is run as written,
    but for the responder's port (and -nostdin, since no terminal is attached)."""
    sipp = require_binary("sipp")
    readme = (ROOT / "docs" / "getting-started.md").read_text()
    [line] = [row for row in readme.splitlines()
              if row.startswith("sipp ") and "-s 486" in row]
    argv = shlex.split(line.split("#", 1)[0])
    assert "127.0.0.1:5060" in argv, line
    argv = [sipp, *(f"127.0.0.1:{responder_process.udp_port}" if a == "127.0.0.1:5060"
                    else str(ROOT / a) if a.endswith(".xml") else a for a in argv[1:])]
    for _attempt in range(3):
        # SIPp binds its own local port 5060 by default, or the next free one.
        proc = subprocess.run([*argv, "-nostdin"], cwd=tmp_path, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace",
                              timeout=PROCESS_TIMEOUT, check=False)
        if not (proc.returncode in BIND_FAILED and "bind" in proc.stderr.lower()):
            break
    output = proc.stdout[-4000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, output
    assert re.search(r"Successful call\s*\|\s*\d+\s*\|\s*100\b", output), output
    assert re.search(r"Failed call\s*\|\s*\d+\s*\|\s*0\b", output), output
