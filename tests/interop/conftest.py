"""Interop fixtures: the responder as a real subprocess, the way a peer meets it.

`sys.executable -m sipresponder serve` listens on OS-picked loopback ports; the
fixture learns them from the "listening on" log lines (bounded wait, no sleeps),
stops the server with SIGTERM at teardown and fails the test if it did not exit
cleanly or logged an error.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from tests.conftest import ROOT

START_TIMEOUT = 20.0  # seconds until both "listening on" lines; a cold CI start is slow
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and the exit

_LISTENING = re.compile(r"listening on (udp|tcp|tls|ws|wss):127\.0\.0\.1:([0-9]+)")
# What a clean run never prints: the responder's own ERROR/CRITICAL lines, and an
# asyncio "Exception in callback" or any other traceback.
_TROUBLE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception in callback")


@dataclass
class ResponderProcess:
    proc: subprocess.Popen[str]
    udp_port: int = 0
    tcp_port: int = 0
    ports: dict[str, int] = field(default_factory=dict)  # by transport
    log: list[str] = field(default_factory=list)

    @property
    def log_text(self) -> str:
        return "".join(self.log)


def _start(extra_args: list[str], transports: Sequence[str] = ("udp", "tcp")
           ) -> tuple[ResponderProcess, threading.Thread]:
    listen = [arg for t in transports for arg in ("--listen", f"{t}:127.0.0.1:0")]
    cmd = [sys.executable, "-m", "sipresponder", "serve", *listen,
           "--log-level", "warning", *extra_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    running = ResponderProcess(proc)
    ready = threading.Event()
    ports: dict[str, int] = {}

    def drain() -> None:
        # Reads stderr to its end, so the server never blocks on a full pipe.
        assert proc.stderr is not None
        for line in proc.stderr:
            running.log.append(line)
            match = _LISTENING.search(line)
            if match:
                ports[match[1]] = int(match[2])
                if len(ports) == len(transports):
                    ready.set()
        ready.set()  # EOF: the process died before it listened (or is exiting)

    reader = threading.Thread(target=drain, name="responder-stderr", daemon=True)
    reader.start()
    if not ready.wait(START_TIMEOUT) or len(ports) != len(transports):
        _stop(proc)
        reader.join(5)
        pytest.fail(f"responder did not report all {len(transports)} listening ports within "
                    f"{START_TIMEOUT}s (exit code {proc.returncode}):\n{running.log_text}")
    running.ports = ports
    running.udp_port, running.tcp_port = ports.get("udp", 0), ports.get("tcp", 0)
    return running, reader


def _stop(proc: subprocess.Popen[str]) -> bool:
    """SIGTERM, bounded wait, then SIGKILL. True when SIGTERM alone was enough."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(STOP_TIMEOUT)
        return False


@contextmanager
def run_responder(extra_args: Sequence[str] = (),
                  transports: Sequence[str] = ("udp", "tcp")) -> Iterator[ResponderProcess]:
    """The responder as a subprocess; on exit, checks it stopped cleanly and quietly."""
    running, reader = _start(list(extra_args), transports)
    try:
        yield running
    finally:
        graceful = _stop(running.proc)
        reader.join(STOP_TIMEOUT)
    assert graceful, f"responder ignored SIGTERM for {STOP_TIMEOUT}s:\n{running.log_text}"
    assert running.proc.returncode == 0, (
        f"responder exited with {running.proc.returncode}:\n{running.log_text}")
    assert not reader.is_alive(), "responder's stderr stayed open after it exited"
    trouble = [line for line in running.log if _TROUBLE.search(line)]
    assert not trouble, "responder logged errors:\n" + running.log_text


@pytest.fixture
def responder_process() -> Iterator[ResponderProcess]:
    """The default scenario served over UDP and TCP on 127.0.0.1, OS-picked ports."""
    with run_responder() as running:
        yield running


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now (a peer binds it next;
    callers retry when another process wins the race)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")
