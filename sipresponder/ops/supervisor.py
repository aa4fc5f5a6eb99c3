"""``serve --workers N``: N responder processes sharing the listening ports.

Each worker is a full responder with its own SO_REUSEPORT sockets: the kernel
spreads TCP/TLS/WS connections and UDP sources (by address and port) over them, and
a connection or UDP client stays with its worker, which is what stateful rules
(provisional responses, delays, CANCEL, retransmissions) need. That also means a
single busy UDP client, one SIPp say, keeps one worker busy and the others idle; with
``--udp-balance datagram`` the supervisor binds each UDP port once and every worker
reads that one socket, so each datagram goes to whichever worker reads first (as
Kamailio's UDP workers share theirs) — for stateless scenarios.

The supervisor forks the workers before any event loop exists, forwards SIGTERM,
SIGINT and SIGHUP to them, and restarts a worker that dies. Stateless To tags are
the same in every worker: they are keyed by the scenario's tag key. With ``--admin``
it also forks the gatherer (``ops/cluster.py``), which serves the admin API for all
the workers, and sends SIGHUP to it alone. The supervisor itself never runs an event
loop or a thread (forking from such a process is not safe), and does no work per
request: it waits for its children to end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from types import FrameType

from ..transport.address import ListenAddress, bind_socket

log = logging.getLogger("sipresponder")

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# A worker that dies this soon after starting counts as a failed start; after
# MAX_QUICK_FAILURES of them in a row the supervisor gives up instead of spinning.
QUICK_FAILURE = 2.0
MAX_QUICK_FAILURES = 5
# Exit status of a worker that could not start (bad listen address, port taken):
# restarting it would fail the same way.
SETUP_ERROR = 2


def _end_with_parent() -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies, however it
    dies (a SIGKILL cannot be forwarded): orphaned workers would keep the ports."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def worker_count(text: str) -> int:
    """--workers: a positive number, or ``auto`` for the CPUs this process may use."""
    if text == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"--workers {text!r}: expected a positive number or 'auto'")
    return int(text)


def resolve_ports(listen: list[ListenAddress]) -> list[ListenAddress]:
    """Port 0 means "any free port": choose it here, once, so every worker binds the same.

    The probe socket is closed before the workers bind (a bound UDP socket in the
    SO_REUSEPORT group would be handed datagrams nobody reads).
    """
    out = []
    for addr in listen:
        if addr.port != 0:
            out.append(addr)
            continue
        with bind_socket(addr, reuse_port=True) as probe:
            out.append(replace(addr, port=probe.getsockname()[1]))
    return out


def bind_shared_udp(
    listen: list[ListenAddress],
) -> tuple[list[ListenAddress], dict[ListenAddress, socket.socket]]:
    """Bind every UDP listener once, here, for all workers to read
    (``--udp-balance datagram``, see the module doc)."""
    out = []
    shared = {}
    for addr in listen:
        if addr.transport == "udp":
            sock = bind_socket(addr)
            addr = replace(addr, port=sock.getsockname()[1])
            shared[addr] = sock
        out.append(addr)
    return out, shared


GATHERER = -1  # the index of the admin gatherer (ops/cluster.py) among the children


def supervise(workers: int, run_worker: Callable[[int], int],
              run_gatherer: Callable[[], int] | None = None) -> int:
    """Run ``run_worker(index)`` in ``workers`` forked processes until told to stop, and
    ``run_gatherer()`` (``--admin``) in one more, restarted like them. SIGHUP goes to the
    gatherer alone when there is one: it reloads the scenario once for all workers."""
    children: dict[int, int] = {}  # pid -> worker index (GATHERER for the gatherer)
    started: dict[int, float] = {}  # worker index -> when it last started
    stopping = False
    status = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for pid, index in list(children.items()):
            if signum == signal.SIGHUP and run_gatherer is not None and index != GATHERER:
                continue
            with contextlib.suppress(ProcessLookupError):  # it has just ended
                os.kill(pid, signum)

    supervisor = os.getpid()

    def spawn(index: int) -> None:
        # Signals wait until the child has its own handlers and the parent knows the
        # child's pid: neither may run the other's idea of ``forward``.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for sig in FORWARDED:
                    signal.signal(sig, signal.SIG_DFL)
                _end_with_parent()
                if os.getppid() != supervisor:
                    os._exit(0)  # the supervisor died before the line above
                signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
                if index == GATHERER and run_gatherer is not None:
                    code = run_gatherer()
                else:
                    code = run_worker(index)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        children[pid] = index
        started[index] = time.monotonic()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        if run_gatherer is not None:
            spawn(GATHERER)
        for index in range(workers):
            spawn(index)
        log.info(
            "supervising %d workers (pids %s)",
            workers,
            ", ".join(str(pid) for pid, index in children.items() if index != GATHERER),
            extra={"event": "workers", "workers": workers},
        )
        quick_failures = 0
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            if pid not in children:
                continue
            index = children.pop(pid)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            name = "the admin gatherer" if index == GATHERER else f"worker {index}"
            if code == SETUP_ERROR:
                log.error("%s could not start; stopping", name)
                status = SETUP_ERROR
                forward(signal.SIGTERM, None)
                continue
            quick = time.monotonic() - started[index] < QUICK_FAILURE
            quick_failures = quick_failures + 1 if quick else 0
            if quick_failures >= MAX_QUICK_FAILURES:
                log.error("%s died %d times right after starting; stopping", name, quick_failures)
                status = 1
                forward(signal.SIGTERM, None)
                continue
            log.error(
                "%s (pid %d) ended with status %d; restarting it",
                name,
                pid,
                code,
                extra={"event": "worker_restart", "worker": index, "status": code},
            )
            spawn(index)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


def bind_admin(host: str, port: int) -> socket.socket:
    """The admin API's listening socket, bound here, once: the gatherer serves it, and
    a restarted gatherer serves the same address (requests wait in its backlog)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
