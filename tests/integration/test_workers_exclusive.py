"""One instance per port, and what a killed supervisor leaves (issue 18).

``serve --workers N`` used to let every worker bind with SO_REUSEPORT, so a second
``--workers`` on the same ports joined the first and the kernel split the traffic.
Now the supervisor refuses a port another process holds, UDP and TCP, with the same
line as a single process; and a later start removes the private directory a
``kill -9``-ed supervisor left behind, never a live one's.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.ops.supervisor import (
    DIRECTORY_PREFIX,
    PID_FILE,
    _alone,
    _start_time,
    remove_stale_directories,
)
from sipresponder.transport.address import ListenAddress, bind_socket
from tests.integration.test_workers import LISTENING, Supervised, _start, _stop, _udp_ask
from tests.sipclient import make_request

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the workers"
)


@pytest.fixture
def supervised() -> Iterator[Supervised]:
    sup = _start()
    yield sup
    _stop(sup)


def _serve(*listen: str, workers: str | None = None) -> subprocess.CompletedProcess[str]:
    """A responder that should refuse to start: its exit status and output."""
    extra = ["--workers", workers] if workers else []
    return subprocess.run(
        [sys.executable, "-m", "sipresponder", "serve", *extra,
         *(f"--listen={item}" for item in listen)],
        capture_output=True, text=True, timeout=30,
    )


@pytest.mark.parametrize("workers", ["2", None], ids=["workers", "single"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_port_served_by_workers_is_refused(supervised: Supervised, transport: str,
                                             workers: str | None) -> None:
    port = supervised.ports[transport]
    result = _serve(f"{transport}:127.0.0.1:{port}", workers=workers)
    assert result.returncode == 2
    assert result.stderr.endswith(
        f"error: cannot listen on {transport}:127.0.0.1:{port}: Address already in use\n")
    assert "supervising" not in result.stderr
    # Every request still reaches the first instance (it answers; nobody else can).
    for _ in range(8):
        answer = _udp_ask(supervised.ports["udp"], make_request("OPTIONS", "sip:200@127.0.0.1"))
        assert answer.startswith(b"SIP/2.0 200 OK\r\n")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_workers_refuse_a_port_a_single_responder_serves(transport: str) -> None:
    single = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", f"--listen={transport}:127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True)
    try:
        assert single.stderr is not None
        line = single.stderr.readline()
        m = LISTENING.search(line)
        assert m, line
        port = int(m[2])
        result = _serve(f"{transport}:127.0.0.1:{port}", workers="2")
        assert result.returncode == 2
        assert result.stderr.endswith(
            f"error: cannot listen on {transport}:127.0.0.1:{port}: Address already in use\n")
    finally:
        single.terminate()
        single.wait(10)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("foreign_host", ["127.0.0.1", "0.0.0.0"])
def test_a_socket_that_joined_the_port_meanwhile_is_found(transport: str,
                                                          foreign_host: str) -> None:
    """The race: another supervisor passed its check before ours bound, and joined the
    SO_REUSEPORT group after; ours sees a socket that is not its own and refuses."""
    first = bind_socket(ListenAddress(transport, "127.0.0.1", 0), reuse_port=True)  # type: ignore[arg-type]
    port = first.getsockname()[1]
    addr = ListenAddress(transport, "127.0.0.1", port)  # type: ignore[arg-type]
    ours = [first, bind_socket(addr, reuse_port=True)]
    try:
        if transport == "tcp":
            for sock in ours:
                sock.listen()
        _alone(addr, ours)  # only ours: accepted
        foreign = bind_socket(ListenAddress(transport, foreign_host, port),  # type: ignore[arg-type]
                              reuse_port=True)
        with foreign:
            if transport == "tcp":
                foreign.listen()
            with pytest.raises(OSError) as info:
                _alone(addr, ours)
        assert info.value.errno == errno.EADDRINUSE
        assert str(info.value).startswith(
            f"[Errno {errno.EADDRINUSE}] cannot listen on {transport}:127.0.0.1:{port}: "
            "Address already in use")
    finally:
        for sock in ours:
            sock.close()


# -- the private directory a killed supervisor leaves ----------------------------------
def _start_admin(tmp: Path) -> subprocess.Popen[str]:
    """``serve --workers 2 --admin``, its private directory under ``tmp``; returns once
    both workers listen and the admin API is up (stopped earlier, the gatherer may
    wait out its connection attempts)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--workers", "2", "--admin",
         "127.0.0.1:0", "--listen", "udp:127.0.0.1:0", "--log-level", "info"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.stderr is not None
    seen, log = 0, []
    deadline = time.monotonic() + 20
    while seen < 3 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        log.append(line)
        seen += bool(LISTENING.search(line)) + ("admin API on http" in line)
    if seen < 3:
        proc.kill()
        pytest.fail(f"workers did not start: {''.join(log)}")
    proc.log = "".join(log)  # type: ignore[attr-defined]
    return proc


def _directories(tmp: Path) -> list[Path]:
    return sorted(tmp.glob(f"{DIRECTORY_PREFIX}*"))


def test_a_killed_supervisors_directory_is_removed_at_the_next_start(tmp_path: Path) -> None:
    first = _start_admin(tmp_path)
    try:
        [left] = _directories(tmp_path)
        assert (left / PID_FILE).read_text().split()[0] == str(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert left.is_dir()  # nothing could clean up after a SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    second = _start_admin(tmp_path)
    try:
        [now] = _directories(tmp_path)
        assert now != left and not left.exists()
        assert f"removed {left}, left by supervisor {first.pid}, which is gone" in second.log  # type: ignore[attr-defined]
        # A live supervisor's directory is never removed: a third start leaves it.
        third = _start_admin(tmp_path)
        try:
            assert now.is_dir() and len(_directories(tmp_path)) == 2
        finally:
            third.terminate()
            third.wait(10)
    finally:
        second.terminate()
        second.wait(10)
    assert _directories(tmp_path) == []  # a clean stop removes its own


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()  # reaped: the pid names no process
    return proc.pid


def _directory(tmp: Path, name: str, record: str | None) -> Path:
    path = tmp / name
    path.mkdir()
    if record is not None:
        (path / PID_FILE).write_text(record)
    return path


def test_only_dead_supervisors_directories_of_ours_are_removed(tmp_path: Path) -> None:
    me = os.getpid()
    dead = _directory(tmp_path, f"{DIRECTORY_PREFIX}dead", f"{_dead_pid()} 0\n")
    reused = _directory(tmp_path, f"{DIRECTORY_PREFIX}reused",
                        f"{me} {(_start_time(me) or 0) + 1}\n")  # the pid, another process
    live = _directory(tmp_path, f"{DIRECTORY_PREFIX}live", f"{me} {_start_time(me)}\n")
    starting = _directory(tmp_path, f"{DIRECTORY_PREFIX}starting", None)
    garbled = _directory(tmp_path, f"{DIRECTORY_PREFIX}garbled", "not a pid\n")
    other = _directory(tmp_path, "someone-else-workers-x", f"{_dead_pid()} 0\n")
    target = _directory(tmp_path, "elsewhere", f"{_dead_pid()} 0\n")
    link = tmp_path / f"{DIRECTORY_PREFIX}link"
    link.symlink_to(target)
    removed = remove_stale_directories(tmp_path)
    assert sorted(path for path, _ in removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    for kept in (live, starting, garbled, other, target, link):
        assert kept.exists()


def test_the_check_takes_a_host_name() -> None:
    """``udp:localhost:5060`` is checked by the address it resolved to, not refused."""
    addr = ListenAddress("udp", "localhost", 0)
    first = bind_socket(addr, reuse_port=True)
    with first:
        _alone(ListenAddress("udp", "localhost", first.getsockname()[1]), [first])
