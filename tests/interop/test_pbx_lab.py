"""Real tools against scenarios/pbx-lab.toml served by a real responder process.

- sipvicious (PyPI, the `test` extra): svmap finds and fingerprints it, svwar lists
  exactly extensions 100-109 (REGISTER and INVITE scans), svcrack finds 101's weak
  password in tests/interop/wordlist.txt;
- SIPp registers with digest authentication (sipp/register_auth.xml);
- baresip, a softphone from Debian, registers as 100 and calls 101: challenged (407),
  ringing, answered.

Every tool is bound to 127.0.0.1, talks only to the responder's loopback port, uses
an OS-picked local port, and runs under a subprocess timeout.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.interop.conftest import STOP_TIMEOUT, ResponderProcess, _start, _stop, free_port
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


# -- baresip -------------------------------------------------------------------------
BARESIP_TIMEOUT = 20.0  # seconds for registration and an answered call (about 1.1 s here)
_REGISTERED = re.compile(r"100@127\.0\.0\.1: \{0/UDP/v4\} 200 OK \(sipresponder-pbx-lab/1\.0\) "
                         r"\[1 binding\]")
_RINGING = re.compile(r"SIP Progress: 180 Ringing")
_ESTABLISHED = re.compile(r"Call established: sip:101@127\.0\.0\.1")

BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		127.0.0.1:{local_port}
sip_trans_def		udp
audio_player		aubridge,lab
audio_source		aubridge,lab
audio_alert		aubridge,lab
module_path		/usr/lib/baresip/modules
module			g711.so
module			aubridge.so
module_app		account.so
module_app		menu.so
"""


def test_baresip_registers_and_its_call_is_answered(pbx_lab: ResponderProcess,
                                                    tmp_path: Path) -> None:
    """baresip as 100 (password from the scenario) registers and calls 101.

    Driven without a terminal: `-f` points at a config folder written here (UDP on
    loopback, no sound card: the aubridge module stands in for audio devices), `-e`
    types `/dial` at start-up. Its console output is read line by line until it
    reports the registration and the established call.
    """
    baresip = require_binary("baresip")
    (tmp_path / "config").write_text(BARESIP_CONFIG.format(local_port=free_port()))
    (tmp_path / "accounts").write_text(
        f"<sip:100@127.0.0.1:{pbx_lab.udp_port};transport=udp>;auth_pass=Kq7-lab-100;regint=600\n")
    # stdbuf: baresip's console goes through stdio, block-buffered into a pipe.
    cmd = ["stdbuf", "-oL", baresip, "-f", str(tmp_path),
           "-e", f"/dial sip:101@127.0.0.1:{pbx_lab.udp_port}", "-t", str(int(BARESIP_TIMEOUT))]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    lines: list[str] = []
    seen = {"registered": threading.Event(), "ringing": threading.Event(),
            "established": threading.Event()}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            for name, pattern in (("registered", _REGISTERED), ("ringing", _RINGING),
                                  ("established", _ESTABLISHED)):
                if pattern.search(line):
                    seen[name].set()
        for event in seen.values():  # EOF: stop waiting
            event.set()

    reader = threading.Thread(target=read, name="baresip-stdout", daemon=True)
    reader.start()
    try:
        for event in seen.values():
            assert event.wait(BARESIP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # hangs up (BYE) and unregisters
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        reader.join(STOP_TIMEOUT)
    output = "".join(lines)
    assert _REGISTERED.search(output), output
    assert _RINGING.search(output), output
    assert _ESTABLISHED.search(output), output
    assert "terminated" in output, output  # the hang-up went through
