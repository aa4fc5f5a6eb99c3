"""Real tools against scenarios/pbx-lab.toml served by a real responder process.

- sipvicious (PyPI, the `test` extra): svmap finds and fingerprints it, svwar lists
  exactly extensions 100-109 (REGISTER and INVITE scans), svcrack finds 101's weak
  password in tests/interop/wordlist.txt;
- SIPp registers with digest authentication (sipp/register_auth.xml);
- baresip and linphonec, softphones from Debian (through tests/interop/peers.py),
  register as 100 and 102 and call 101 and 103: challenged (401, 407), ringing,
  answered.

Every tool is bound to 127.0.0.1, talks only to the responder's loopback port, uses
an OS-picked local port, and runs under a subprocess timeout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import STOP_TIMEOUT, ResponderProcess, _start, _stop, free_port
from tests.interop.peers import Baresip, Linphonec
from tests.interop.test_sipp import assert_all_calls_passed, run_sipp

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parent.parent.parent
PBX_LAB = ROOT / "scenarios" / "pbx-lab.toml"
WORDLIST = Path(__file__).parent / "wordlist.txt"
TOOL_TIMEOUT = 60  # seconds: each sipvicious run takes well under one on loopback
EXTENSIONS = {str(n) for n in range(100, 110)}
# sipvicious' exit codes (svhelper.resolveexitcode): 40 means "found something".
FOUND = 40
# "| 101       | reqauth        |" in svwar's and svcrack's result tables
_ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\S+)\s*\|$", re.M)


def _serve(scenario: Path) -> Iterator[ResponderProcess]:
    running, reader = _start(["--scenario", str(scenario)])
    try:
        yield running
    finally:
        graceful = _stop(running.proc)
        reader.join(STOP_TIMEOUT)
    assert graceful and running.proc.returncode == 0, running.log_text
    assert not re.search(r"\b(ERROR|CRITICAL)\b|Traceback", running.log_text), running.log_text


@pytest.fixture
def pbx_lab() -> Iterator[ResponderProcess]:
    yield from _serve(PBX_LAB)


def sipvicious(tool: str, *args: str, port: int) -> subprocess.CompletedProcess[str]:
    """Run a sipvicious tool against 127.0.0.1:port, bound to loopback only.

    -b binds its socket to 127.0.0.1, -x gives 127.0.0.1 as its own address (it
    would otherwise look its host name up), -P picks its source port.
    """
    for _ in range(3):
        local = free_port()
        proc = subprocess.run(
            [sys.executable, "-m", f"sipvicious.{tool}", *args, "-p", str(port),
             "-P", str(local), "-b", "127.0.0.1", "-x", "127.0.0.1", "127.0.0.1"],
            cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=TOOL_TIMEOUT, check=False)
        # It moves to the next port by itself when ours was taken meanwhile; a table
        # from another port would still be right, but say so in a failure.
        if "could not bind" not in proc.stderr:
            break
    return proc


def table(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    rows = dict(_ROW.findall(proc.stdout))
    rows.pop("Extension", None)
    return rows


def test_svmap_finds_and_fingerprints_the_lab(pbx_lab: ResponderProcess) -> None:
    proc = sipvicious("svmap", port=pbx_lab.udp_port)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    rows = dict(_ROW.findall(proc.stdout))
    # One device, the lab, named by its Server header.
    assert rows == {f"127.0.0.1:{pbx_lab.udp_port}": "sipresponder-pbx-lab/1.0"}, output


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_svwar_reports_exactly_the_configured_extensions(pbx_lab: ResponderProcess,
                                                        method: str) -> None:
    proc = sipvicious("svwar", "-e100-120", "-m", method, port=pbx_lab.udp_port)
    output = proc.stdout + proc.stderr
    assert proc.returncode == FOUND, output
    # Every one of them answers with a challenge (401 to REGISTER, 407 to INVITE),
    # every other number with the same 404.
    assert table(proc) == dict.fromkeys(EXTENSIONS, "reqauth"), output


def test_svcrack_finds_the_weak_password_of_101(pbx_lab: ResponderProcess) -> None:
    proc = sipvicious("svcrack", "-u101", "-d", str(WORDLIST), port=pbx_lab.udp_port)
    output = proc.stdout + proc.stderr
    assert proc.returncode == FOUND, output
    # "letmein" is the 16th word: the 15 before it were each refused (403), or svcrack
    # would have reported the first one.
    assert WORDLIST.read_text().split().index("letmein") == 15
    assert table(proc) == {"101": "letmein"}, output


# -- SIPp ----------------------------------------------------------------------------
@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_registers_with_digest(pbx_lab: ResponderProcess, tmp_path: Path,
                                   transport: str) -> None:
    port = pbx_lab.udp_port if transport == "u1" else pbx_lab.tcp_port
    run = run_sipp(tmp_path, "register_auth.xml", "100", transport, port,
                   "-au", "100", "-ap", "Kq7-lab-100")
    assert_all_calls_passed(run)


def test_sipp_with_a_wrong_password_fails(pbx_lab: ResponderProcess, tmp_path: Path) -> None:
    run = run_sipp(tmp_path, "register_auth.xml", "100", "u1", pbx_lab.udp_port,
                   "-au", "100", "-ap", "wrong", calls=5)
    assert run.returncode != 0
    assert run.count("SuccessfulCall") == 0 and run.count("FailedCall") == 5, run.output
    assert "403" in run.output, run.output


def test_sipp_picks_md5_among_several_challenges(tmp_path: Path) -> None:
    """One challenge header per algorithm, MD5 first: SIPp answers the first."""
    text = PBX_LAB.read_text().replace('algorithms = ["MD5"]',
                                       'algorithms = ["MD5", "SHA-256"]')
    assert 'algorithms = ["MD5", "SHA-256"]' in text
    scenario = tmp_path / "pbx-lab-two-algorithms.toml"
    scenario.write_text(text)
    for running in _serve(scenario):
        run = run_sipp(tmp_path, "register_auth.xml", "108", "u1", running.udp_port,
                       "-au", "108", "-ap", "Zr9-lab-108", calls=50)
        assert_all_calls_passed(run, 50)


# -- softphones (tests/interop/peers.py) ----------------------------------------------
_REGISTERED = re.compile(r"100@127\.0\.0\.1: \{0/UDP/v4\} 200 OK \(sipresponder-pbx-lab/1\.0\) "
                         r"\[1 binding\]")
_RINGING = re.compile(r"SIP Progress: 180 Ringing")
_ESTABLISHED = re.compile(r"Call established: sip:101@127\.0\.0\.1")


def test_baresip_registers_and_its_call_is_answered(pbx_lab: ResponderProcess,
                                                    tmp_path: Path) -> None:
    """baresip as 100 (password from the scenario) registers and calls 101: challenged
    (401, then 407), ringing, answered; then it hangs up."""
    with Baresip(("127.0.0.1", pbx_lab.udp_port), tmp_path, user="100",
                 password="Kq7-lab-100") as baresip:
        baresip.wait_for(_REGISTERED)
        baresip.dial(f"sip:101@127.0.0.1:{pbx_lab.udp_port}")
        baresip.wait_for(_RINGING)
        baresip.wait_for(_ESTABLISHED)
        mark = baresip.mark()
        baresip.hangup()
        hanging_up = baresip.wait_for(Baresip.HANGING_UP, since=mark)
        assert hanging_up["peer"].startswith("sip:101@127.0.0.1"), hanging_up[0]


def test_linphonec_registers_with_digest_and_its_call_is_answered(
        pbx_lab: ResponderProcess, tmp_path: Path) -> None:
    """linphonec as 102: its REGISTER challenged (401) and its INVITE (407), both
    answered from [auth_info_0]; 103 rings, then answers; linphonec hangs up."""
    with Linphonec(("127.0.0.1", pbx_lab.udp_port), tmp_path, user="102",
                   password="Vt3-lab-102") as linphonec:
        linphonec.registered()
        linphonec.dial(f"sip:103@127.0.0.1:{pbx_lab.udp_port}")
        connected = linphonec.wait_for(Linphonec.CONNECTED)
        mark = linphonec.mark()
        linphonec.hangup()
        ended = linphonec.wait_for(Linphonec.ENDED, since=mark)
        assert ended["id"] == connected["id"] and ended["reason"] == "No error", ended[0]
    output = linphonec.output
    assert re.search(r"^SIP/2\.0 401 ", output, re.M), output
    assert re.search(r"^SIP/2\.0 407 ", output, re.M), output
    assert re.search(r"^SIP/2\.0 180 ", output, re.M), output
