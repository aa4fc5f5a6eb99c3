"""``serve --workers N``: N responder processes sharing the listening ports.

Each worker is a full responder with its own SO_REUSEPORT sockets, bound by the
supervisor before it forks (``bind_listeners``: a port another process holds is
refused, as a single process refuses it): the kernel
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
import errno
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
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


def bind_listeners(
    listen: list[ListenAddress], workers: int, udp_balance: str | None, backlog: int,
) -> tuple[list[ListenAddress], list[dict[ListenAddress, socket.socket]]]:
    """Every worker's listening sockets, bound here, once, before any worker starts;
    the listen addresses with the ports chosen for port 0; the sockets of each worker.

    Each worker gets an SO_REUSEPORT socket of its own per address (or, for UDP with
    ``--udp-balance datagram``, all share one socket bound without it, see the module
    doc). The supervisor keeps them all open, so a restarted worker takes its
    predecessor's socket and what waits in it. SO_REUSEPORT would let any process of
    the same user join the port, so a port another process holds is refused as a single
    process refuses it: a bind without SO_REUSEPORT first, which fails on a port held by
    any socket; and, against another supervisor starting at the same moment, no other
    socket may be on the port once ours are (``_alone``).
    """
    out: list[ListenAddress] = []
    mine: list[dict[ListenAddress, socket.socket]] = [{} for _ in range(workers)]
    try:
        for addr in listen:
            if addr.transport == "udp" and udp_balance == "datagram":
                shared = bind_socket(addr)
                addr = replace(addr, port=shared.getsockname()[1])
                socks = [shared] * workers
            else:
                if addr.port != 0:
                    bind_socket(addr).close()  # refused if any socket holds the port
                first = bind_socket(addr, reuse_port=True)
                addr = replace(addr, port=first.getsockname()[1])
                socks = [first]
                socks += [bind_socket(addr, reuse_port=True) for _ in range(workers - 1)]
            for index, sock in enumerate(socks):
                mine[index][addr] = sock
            if addr.transport != "udp":
                for sock in socks:  # listed in /proc/net/tcp from now on, and holding it
                    sock.listen(backlog)
            _alone(addr, socks)
            out.append(addr)
    except BaseException:
        close_sockets(mine)
        raise
    return out, mine


def close_sockets(sockets: list[dict[ListenAddress, socket.socket]],
                  keep: dict[ListenAddress, socket.socket] | None = None) -> None:
    """Close every socket in ``sockets`` but those in ``keep`` (a worker closes the other
    workers' sockets: one it does not read would still be given its share of traffic)."""
    kept = {id(s) for s in (keep or {}).values()}
    for worker in sockets:
        for sock in worker.values():
            if id(sock) not in kept:
                sock.close()


def _alone(addr: ListenAddress, ours: list[socket.socket]) -> None:
    """Refuse ``addr`` when a socket that is not ours is bound to it (Linux: read from
    /proc/net; elsewhere the bind without SO_REUSEPORT is the only check)."""
    v6 = ours[0].family == socket.AF_INET6
    table = Path("/proc/net") / (("udp" if addr.transport == "udp" else "tcp")
                                 + ("6" if v6 else ""))
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return
    inodes = {str(os.fstat(s.fileno()).st_ino) for s in ours}
    host = _proc_address(ours[0].getsockname()[0], v6)  # a host name, resolved
    wildcard = "0" * len(host)
    for line in lines:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        local_host, _, port = local.partition(":")
        if (int(port, 16) != addr.port or inode in ("0", *inodes)
                or remote.partition(":")[0].strip("0")):  # a connection, not a listener
            continue
        if wildcard in (host, local_host) or local_host == host:
            raise OSError(errno.EADDRINUSE,
                          f"cannot listen on {addr}: Address already in use "
                          "(another process bound it as this one started)")


def _proc_address(host: str, v6: bool) -> str:
    """``host`` as /proc/net writes it: each 32-bit word in the host's byte order."""
    packed = socket.inet_pton(socket.AF_INET6 if v6 else socket.AF_INET, host)
    order = sys.byteorder
    words = [int.from_bytes(packed[i:i + 4], "big").to_bytes(4, order)
             for i in range(0, len(packed), 4)]
    return b"".join(words).hex().upper()


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


# The private directory of ``--workers N --admin`` (the workers' channels, the scenario
# swapped in over the API): tempfile's folder, this prefix, mode 0700.
DIRECTORY_PREFIX = "sipresponder-workers-"
# Inside it: the supervisor's pid and start time, so that a later start can tell a
# directory whose supervisor died (kill -9 leaves it) from a live one's.
PID_FILE = "supervisor.pid"


def claim_directory(directory: Path) -> None:
    """Record this supervisor in its private directory (see PID_FILE)."""
    pid = os.getpid()
    (directory / PID_FILE).write_text(f"{pid} {_start_time(pid) or 0}\n", encoding="ascii")


def remove_stale_directories(parent: Path | None = None) -> list[tuple[Path, int]]:
    """Remove the private directories that dead supervisors left in ``parent`` (default:
    tempfile's folder): only ours (the prefix, a real directory owned by this user,
    a PID_FILE) and only when the process it names is gone. Returns each removed
    directory with its supervisor's pid."""
    import shutil
    import stat
    import tempfile

    parent = parent or Path(tempfile.gettempdir())
    removed = []
    for entry in parent.glob(f"{DIRECTORY_PREFIX}*"):
        try:
            st = entry.lstat()  # a symbolic link is nobody's directory to remove
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            # No record: a supervisor writing it now, or not one of ours: left alone.
            pid_text, _, start_text = (entry / PID_FILE).read_text("ascii").partition(" ")
            pid, start = int(pid_text), int(start_text or 0)
        except (OSError, ValueError):
            continue
        if pid <= 0 or _alive(pid, start):
            continue
        shutil.rmtree(entry, ignore_errors=True)  # never follows links inside
        removed.append((entry, pid))
    return removed


def _alive(pid: int, start: int) -> bool:
    """Whether the process ``pid``, started at ``start`` (0: unknown), still runs; a pid
    reused by another process since, or a zombie, is not it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: ours cannot have that pid now
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return True  # no /proc: the signal said it exists
    if fields[0] == "Z":
        return False
    return not start or int(fields[19]) == start


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def bind_admin(host: str, port: int) -> socket.socket:
    """The admin API's listening socket, bound here, once: the gatherer serves it, and
    a restarted gatherer serves the same address (requests wait in its backlog)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
