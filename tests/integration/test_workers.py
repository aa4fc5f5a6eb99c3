"""``serve --workers N``: worker processes on shared ports, supervised.

The real CLI runs as a subprocess; the tests find its ports in its log, its
workers in /proc, and talk to it over loopback.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sipclient import make_request, parse_response

LISTENING = re.compile(r"listening on (udp|tcp):127\.0\.0\.1:(\d+)")
pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers"
)


class Supervised:
    def __init__(self, proc: subprocess.Popen[str], ports: dict[str, int], log: str) -> None:
        self.proc = proc
        self.ports = ports
        self.log = log  # what it wrote until all workers were listening

    def workers(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in path.read_text().split()]


def _start(*extra: str, workers: str = "2") -> Supervised:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--workers", workers,
         "--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0", *extra],
        stderr=subprocess.PIPE, text=True,
    )
    ports: dict[str, int] = {}
    log = []
    seen = 0
    deadline = time.monotonic() + 20
    assert proc.stderr is not None
    # Each worker announces both listeners: wait until all of them have.
    while seen < 2 * int(workers) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        log.append(line)
        m = LISTENING.search(line)
        if m:
            seen += 1
            assert ports.setdefault(m[1], int(m[2])) == int(m[2]), "workers on different ports"
    if seen < 2 * int(workers):
        proc.kill()
        pytest.fail(f"workers did not start: {proc.stderr.read()}")
    return Supervised(proc, ports, "".join(log))


def _stop(sup: Supervised) -> None:
    if sup.proc.poll() is None:
        sup.proc.terminate()  # forwarded to the workers
        try:
            sup.proc.wait(10)
        except subprocess.TimeoutExpired:
            sup.proc.kill()
            sup.proc.wait(10)


@pytest.fixture
def supervised() -> Iterator[Supervised]:
    sup = _start()
    yield sup
    _stop(sup)


def test_workers_end_when_the_supervisor_is_killed(supervised: Supervised) -> None:
    workers = supervised.workers()
    supervised.proc.kill()  # SIGKILL: nothing to forward, the kernel tells the workers
    supervised.proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and "zombie" not in Path(f"/proc/{pid}/status").read_text()]
        if not alive:
            break
        time.sleep(0.05)  # polling /proc; the bound is the deadline
    else:
        pytest.fail(f"workers {alive} outlived their supervisor")


def _udp_ask(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def _sockets_on(port: int, table: str) -> list[str]:
    """The inodes of the sockets bound to ``port``."""
    lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    return [line.split()[9] for line in lines if line.split()[1].endswith(f":{port:04X}")]


def _holds(pid: int, inode: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    return any(os.readlink(fd) == f"socket:[{inode}]" for fd in fds.iterdir())


def test_workers_share_the_ports_and_answer_alike(supervised: Supervised) -> None:
    workers = supervised.workers()
    assert len(workers) == 2
    udp, tcp = supervised.ports["udp"], supervised.ports["tcp"]
    # One SO_REUSEPORT socket per worker and port.
    udp_sockets = _sockets_on(udp, "udp")
    assert len(udp_sockets) == 2
    assert {pid for pid in workers for inode in udp_sockets if _holds(pid, inode)} == set(
        workers)
    assert len(_sockets_on(tcp, "tcp")) >= 2
    # The same request from 24 source ports: the kernel spreads them over both
    # workers (by source port), and every answer is the same octets, To tag included.
    request = make_request("INVITE", "sip:486@127.0.0.1", rport=False, branch="z9hG4bK-same",
                           call_id="same@test")
    answers = {_udp_ask(udp, request) for _ in range(24)}
    assert len(answers) == 1
    response = parse_response(answers.pop())
    assert response.code == 486
    assert ";tag=" in (response.get("To") or "")
    with socket.create_connection(("127.0.0.1", tcp), timeout=5) as conn:
        conn.sendall(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TCP"))
        assert conn.recv(65535).startswith(b"SIP/2.0 200 OK\r\n")


def test_udp_balance_datagram_shares_one_socket() -> None:
    sup = _start("--udp-balance", "datagram")
    try:
        workers = sup.workers()
        # One UDP socket, bound by the supervisor and read by both workers.
        [shared] = _sockets_on(sup.ports["udp"], "udp")
        assert all(_holds(pid, shared) for pid in workers)
        request = make_request("OPTIONS", "sip:200@127.0.0.1", rport=False,
                               branch="z9hG4bK-same", call_id="same@test")
        answers = {_udp_ask(sup.ports["udp"], request) for _ in range(24)}
        assert len(answers) == 1
        assert answers.pop().startswith(b"SIP/2.0 200 OK\r\n")
        # The default scenario has stateful rules: the supervisor says what may go wrong.
        assert "--udp-balance datagram:" in sup.log and "answer over time" in sup.log
        sup.proc.send_signal(signal.SIGTERM)
        assert sup.proc.wait(10) == 0
    finally:
        _stop(sup)


def test_a_killed_worker_is_replaced_and_sigterm_stops_all(supervised: Supervised) -> None:
    before = supervised.workers()
    os.kill(before[0], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = supervised.workers()
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.05)  # polling /proc for the restart; the bound is the deadline
    else:
        pytest.fail(f"worker {before[0]} was not replaced: {supervised.workers()}")
    replacement = next(p for p in supervised.workers() if p not in before)
    # The new worker binds its own socket to the shared port before it can answer.
    deadline = time.monotonic() + 15
    while len(_sockets_on(supervised.ports["udp"], "udp")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(_holds(replacement, i) for i in _sockets_on(supervised.ports["udp"], "udp"))
    for _ in range(8):
        answer = _udp_ask(supervised.ports["udp"], make_request("OPTIONS", "sip:200@127.0.0.1"))
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")
    supervised.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert supervised.proc.wait(10) == 0
    assert time.monotonic() - started < 5
    for pid in (*before, replacement):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers '0': expected a positive number or 'auto'"),
        (["--workers", "two"], "--workers 'two': expected a positive number or 'auto'"),
    ],
)
def test_bad_worker_options_are_refused(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0", *args],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr


def test_a_taken_tcp_port_is_refused_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: the workers cannot join it
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sipresponder", "serve", "--workers", "2",
             "--listen", f"tcp:127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    # The supervisor binds every worker's sockets before it forks (issue 18).
    assert f"error: cannot listen on tcp:127.0.0.1:{port}: Address already in use" \
        in result.stderr
    assert "supervising" not in result.stderr


def test_a_taken_udp_port_is_refused_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sipresponder", "serve", "--workers", "2",
             "--udp-balance", "datagram", "--listen", f"udp:127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert f"cannot listen on udp:127.0.0.1:{port}: Address already in use" in result.stderr
    assert "supervising" not in result.stderr


def test_without_uvloop_the_stdlib_loop_serves() -> None:
    # uvloop is a default dependency on Linux, but the responder must run without it.
    code = (
        "import sys; sys.modules['uvloop'] = None\n"
        "from sipresponder.ops.cli import main\n"
        "sys.exit(main(['serve', '--listen', 'udp:127.0.0.1:0', '--log-level', 'warning']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = LISTENING.search(line)
        assert m, line
        answer = _udp_ask(int(m[2]), make_request("OPTIONS", "sip:200@127.0.0.1"))
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_workers_warn_naming_the_rules_with_sequences_or_states(tmp_path: Path) -> None:
    scenario = tmp_path / "flaky.toml"
    scenario.write_text('[[rule]]\nname = "flaky"\nsequence = [503, 200]\nscope = "call-id"\n')
    sup = _start("--scenario", str(scenario))
    try:
        assert (
            "--workers 2: the sequence counters and states of rule 'flaky' (#1) are per worker"
            in sup.log)
    finally:
        _stop(sup)
