"""Benchmark: sipresponder against Kamailio, side by side, driven by the same SIPp.

    python bench/run.py                               # every workload, 10 s runs, 3 rounds
    python bench/run.py --duration 3 --rounds 1 --workloads options-udp
    python bench/run.py --workers 2 --clients 4 --reference kamailio,naive --json out.json

For each workload, the runner starts sipresponder (``python -m sipresponder serve``)
and each reference server (Kamailio with a config from bench/kamailio/, and with
``--reference naive`` the naive uvloop responder of bench/naive_udp.py) on free
loopback ports, then drives them in turn, A/B/A/B for ``--rounds`` rounds, with the
same closed-loop SIPp run (``-users 50 -buff_size 4194304``, ``-timeout`` seconds).
Per run it records:

* calls/s and failed calls, from SIPp's statistics file (``-trace_stat``);
* the server's CPU seconds (utime + stime of the server and all its processes, from
  /proc/PID/stat, before and after the run) per call;
* p50/p99 response time, from a probe thread that sends the workload's request every
  ``1/--probe-rate`` s on its own socket while SIPp runs, timed from the send to the
  kernel's receive timestamp (SO_TIMESTAMPNS) of the answer. SIPp's own response
  times (``-trace_rtt``) come in steps of its clock, which it reads once per pass of
  its event loop: measured here, every one of 373,000 values was 0, 4 or 8 ms;
* peak memory: the largest sum over the server's processes of PSS
  (/proc/PID/smaps_rollup) and of VmRSS, sampled twice a second;
* UDP receive-buffer drops on the whole machine (RcvbufErrors, /proc/net/snmp).

The ``saturation`` workload is an open loop instead: SIPp offers a fixed rate in short
steps, and the search of bench/saturation.py finds the highest rate one sipresponder
process (and one Kamailio UDP worker) sustains; see bench/README.md. With
``--compare-env KEY=VALUE`` a second sipresponder, with that environment, runs beside
the first in every round (``--server-env`` sets variables for both).

The table gives the median of the rounds and the ratio sipresponder/reference.
The runner installs nothing: it says which tool is missing and how to get it.
Everything runs on 127.0.0.1; the whole run stops after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import saturation  # bench/saturation.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEFAULT_SCENARIO = ROOT / "sipresponder" / "scenarios" / "default.toml"
BUFFER = 4 * 1024 * 1024
USERS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
RUN_TAGS = itertools.count(1)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; not in every Python


@dataclass(frozen=True)
class Workload:
    name: str
    sipp_xml: str  # in bench/sipp/
    transport: str  # "udp" or "tcp"
    service: str  # SIPp -s: the Request-URI user
    scenario: Path  # sipresponder's scenario
    kamailio_cfg: str  # in bench/kamailio/
    method: str  # what the latency probe sends
    unit: str  # what one SIPp call is
    # open loop: the saturation search (bench/saturation.py) instead of one closed-loop run
    open_loop: bool = False

    @property
    def sipp_transport(self) -> str:
        # UDP: one socket. TCP: one connection carrying all 50 calls (-t t1). With -t tn
        # SIPp opens a connection per call: the run then measures connection set-up
        # (thousands of TIME_WAIT sockets a second), and with -max_socket SIPp breaks
        # off on "Broken pipe"; see bench/README.md.
        return "u1" if self.transport == "udp" else "t1"


WORKLOADS = {
    w.name: w
    for w in [
        Workload("options-udp", "options.xml", "udp", "bench", DEFAULT_SCENARIO,
                 "default.cfg", "OPTIONS", "req"),
        Workload("options-tcp", "options.xml", "tcp", "bench", DEFAULT_SCENARIO,
                 "default.cfg", "OPTIONS", "req"),
        Workload("invite486-udp", "invite486.xml", "udp", "486", DEFAULT_SCENARIO,
                 "default.cfg", "INVITE", "call"),
        Workload("invite486-tcp", "invite486.xml", "tcp", "486", DEFAULT_SCENARIO,
                 "default.cfg", "INVITE", "call"),
        Workload("register-udp", "register.xml", "udp", "bench", DEFAULT_SCENARIO,
                 "default.cfg", "REGISTER", "req"),
        Workload("rules50-udp", "options.xml", "udp", "bench", BENCH / "rules50.toml",
                 "rules50.cfg", "OPTIONS", "req"),
        Workload("saturation", "options.xml", "udp", "bench", DEFAULT_SCENARIO,
                 "default.cfg", "OPTIONS", "req", open_loop=True),
    ]
}
REFERENCES = ("kamailio", "naive")
NAIVE_WORKLOADS = {"options-udp"}  # the naive responder only answers UDP with 200


# -- results ------------------------------------------------------------------------------
@dataclass
class StepRecord:
    """One open-loop step of a saturation search."""

    offered_per_s: float
    answered_per_s: float
    sustained: bool
    reasons: list[str]  # why not sustained (bench/saturation.py: verdict)
    server_cpus: float  # the server's CPU seconds per second of the step
    sipp_cpus: float
    machine_cpus: float  # all CPUs' busy time per second (server, SIPp, runner, others)
    other_cpus: float  # of those, what other work on the machine took
    cpu_us_per_call: float
    late_p50_ms: float | None
    p99_ms: float | None
    failure_kinds: dict[str, int]


@dataclass
class Run:
    """One SIPp run against one server."""

    workload: str
    server: str
    round: int
    calls_per_s: float
    successful: int
    failed: int
    retransmissions: int
    seconds: float
    sipp_exit: int
    cpu_s: float
    cpu_us_per_call: float
    p50_ms: float | None
    p99_ms: float | None
    probe_samples: int
    probe_lost: int
    failure_kinds: dict[str, int]
    peak_pss_kb: int
    peak_rss_kb: int
    udp_drops: int
    client_cpu_s: float = 0.0  # the SIPp processes' utime + stime
    machine_cpus: float = 0.0  # busy CPU seconds per second of the whole machine
    other_cpus: float = 0.0  # of those, neither the server, SIPp nor this runner's
    late_p50_ms: float | None = None  # the probe's median over the second half of the run
    offered_per_s: float | None = None  # open loop: the rate SIPp was told to offer
    # saturation: every step of the search, and what limited the highest sustained rate
    steps: list[StepRecord] = field(default_factory=list)
    bound: str | None = None


@dataclass
class Summary:
    """The median of a server's runs on one workload."""

    workload: str
    server: str
    rounds: int
    calls_per_s: float
    failed: int  # summed over the rounds
    cpu_us_per_call: float
    p50_ms: float | None
    p99_ms: float | None
    peak_pss_kb: int
    peak_rss_kb: int
    udp_drops: int  # summed over the rounds
    runs: list[Run] = field(default_factory=list)
    bound: str | None = None  # saturation: what limited the median round's rate


# -- pure helpers (tests/bench/test_bench_runner.py) -----------------------------------------------
def parse_sipp_stat(text: str) -> dict[str, float]:
    """SIPp's ``-trace_stat`` file (``;``-separated, a header row, then one row per
    ``-fd`` period and a final one): the cumulative figures of the last row."""
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    if len(rows) < 2:
        raise ValueError("SIPp statistics file has no data row")
    last = dict(zip(rows[0], rows[-1], strict=False))

    def epoch(value: str) -> float:  # "2026-11-25\t11:52:18.842334\t1795607538.842334"
        return float(value.split()[-1])

    seconds = epoch(last["CurrentTime"]) - epoch(last["StartTime"])
    successful = int(last["SuccessfulCall(C)"])
    return {
        "successful": successful,
        "failed": int(last["FailedCall(C)"]),
        "retransmissions": int(last["Retransmissions(C)"]),
        "seconds": seconds,
        "calls_per_s": successful / seconds if seconds > 0 else 0.0,
    }


def sipp_failure_kinds(text: str) -> dict[str, int]:
    """The non-zero Failed*(C) counters of the last row (why calls failed)."""
    rows = [row for row in csv.reader(text.splitlines(), delimiter=";") if row]
    last = dict(zip(rows[0], rows[-1], strict=False))
    return {name[6:-3]: int(value) for name, value in last.items()
            if name.startswith("Failed") and name.endswith("(C)")
            and name != "FailedCall(C)" and value.isdigit() and int(value)}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100), nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


def parse_proc_stat(text: str) -> tuple[int, int, int]:
    """(ppid, utime + stime, cutime + cstime) in clock ticks from /proc/PID/stat."""
    rest = text[text.rindex(")") + 2:].split()  # fields 3.. (the name may hold spaces)
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def env_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of --server-env and --compare-env as (KEY, VALUE); VALUE may be
    empty or hold ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
        raise ValueError(f"expected KEY=VALUE with KEY made of letters, digits and _ "
                         f"(not starting with a digit), got {text!r}")
    return key, value


def env_arg(text: str) -> tuple[str, str]:
    """argparse's type for KEY=VALUE options."""
    try:
        return env_assignment(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def variant_label(env: dict[str, str]) -> str:
    """The table's name for sipresponder run with --compare-env's variables."""
    return "sipresponder (" + " ".join(f"{k}={v}" for k, v in env.items()) + ")"


def is_sipresponder(label: str) -> bool:
    return label == "sipresponder" or label.startswith("sipresponder (")


# -- processes -----------------------------------------------------------------------------
def process_tree(root: int) -> list[int]:
    """root and all its descendants (Kamailio forks its workers, so may sipresponder)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                ppid = parse_proc_stat(Path(entry.path, "stat").read_text())[0]
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """CPU time of the whole tree, including reaped children of the root."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):
            _, own, reaped = parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
            ticks += own + (reaped if pid == root else 0)
    return ticks / CLK_TCK


def memory_kb(root: int) -> tuple[int, int, int]:
    """(sum of PSS, sum of VmRSS, largest VmRSS of one process) over the tree, in kB."""
    pss = rss = largest = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                    largest = max(largest, int(line.split()[1]))
    return pss, rss, largest


def parse_cpu_busy(text: str) -> float:
    """Busy seconds of all CPUs together from /proc/stat's first line (everything but
    idle and iowait; guest time is already in user)."""
    fields = [int(v) for v in text.split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def machine_busy_seconds() -> float:
    return parse_cpu_busy(Path("/proc/stat").read_text())


def udp_rcvbuf_errors() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


def stop_group(proc: subprocess.Popen, pids: list[int], timeout: float = 10) -> None:
    """SIGTERM the process group (and any stray process of the tree), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class Server:
    """A server under test as a subprocess in its own process group."""

    def __init__(self, name: str, cmd: list[str], port: int, tmp: Path, tcp: bool,
                 env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.name, self.cmd, self.port, self.tcp = name, cmd, port, tcp
        self.env = env or {}  # added to the runner's environment
        self.workers = workers  # the processes that answer UDP (saturation's bound)
        self.log_path = tmp / f"{''.join(c if c.isalnum() else '-' for c in name)}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.log_path.parent,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start ({' '.join(self.cmd)}); "
                                   f"its log:\n{self.log_tail()}")
            time.sleep(0.2)

    def answers(self) -> bool:
        """The server answers an OPTIONS over UDP (and accepts a TCP connection)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            sock.connect(("127.0.0.1", self.port))
            try:
                sock.send(probe_request("OPTIONS", "udp", sock.getsockname()[1], "ready", 0))
                sock.recv(65535)
            except OSError:
                return False
        if self.tcp:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
        return True

    def answer_shape(self, method: str) -> list[str]:
        """The status line and the header field names of its answer to the probe's
        request over UDP, to check that the servers answer alike."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.connect(("127.0.0.1", self.port))
            try:
                sock.send(probe_request(method, "udp", sock.getsockname()[1], "shape", 0))
                head = sock.recv(65535).split(b"\r\n\r\n")[0].decode(errors="replace")
            except OSError as exc:
                return [f"no answer ({exc})"]
        status, *fields = head.split("\r\n")
        return [status] + [line.split(":")[0].strip().lower() for line in fields]

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc, process_tree(self.proc.pid))

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def server_command(name: str, workload: Workload, port: int, tmp: Path,
                   serve_args: list[str], kamailio_malloc: str = "tlsf",
                   kamailio_udp_workers: int = 2) -> list[str]:
    if is_sipresponder(name):
        cmd = [sys.executable, "-m", "sipresponder", "serve", "--scenario",
               str(workload.scenario), "--listen", f"udp:127.0.0.1:{port}",
               "--listen", f"tcp:127.0.0.1:{port}", "--log-level", "warning"]
        return [*cmd, *serve_args]
    if name == "kamailio":
        # foreground (-DD), log to stderr (-E), 2 UDP (saturation: as many as
        # sipresponder has processes) and 2 TCP workers, its pid file
        # and runtime dir in our temp dir; as root it drops to nobody/nogroup. -x: the
        # memory manager; the default, qm, makes each `$rU == "..."` of rules50.cfg cost
        # about 1.5 us in qm_malloc (80 us per request instead of 8), so tlsf by default
        cmd = [kamailio_binary() or "kamailio", "-DD", "-E", "-x", kamailio_malloc,
               "-f", str(BENCH / "kamailio" / workload.kamailio_cfg),
               "-l", f"udp:127.0.0.1:{port}", "-l", f"tcp:127.0.0.1:{port}",
               "-n", str(kamailio_udp_workers), "-N", "2", "-m", "64", "-M", "8",
               "-P", str(tmp / f"kamailio-{port}.pid"), "-Y", str(tmp), "-w", str(tmp)]
        if os.geteuid() == 0:
            cmd += ["-u", "nobody", "-g", "nogroup"]
        return cmd
    if name == "naive":
        return [sys.executable, str(BENCH / "naive_udp.py"), "--port", str(port)]
    raise ValueError(name)


def kamailio_binary() -> str | None:
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/usr/local/sbin/kamailio") if os.access(p, os.X_OK)),
        None)


# -- measuring -----------------------------------------------------------------------------
def probe_request(method: str, transport: str, local_port: int, tag: str, n: int) -> bytes:
    user = "486" if method == "INVITE" else "bench"
    extra = ""
    if method == "REGISTER":
        extra = f"Contact: <sip:probe@127.0.0.1:{local_port}>\r\nExpires: 3600\r\n"
    elif method == "INVITE":
        extra = f"Contact: <sip:probe@127.0.0.1:{local_port}>\r\n"
    return (
        f"{method} sip:{user}@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} 127.0.0.1:{local_port};branch=z9hG4bK-{tag}-{n}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=probe\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: {tag}-{n}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    ).encode()


def ack_for(request: bytes, response: bytes) -> bytes:
    """The ACK for a non-2xx final answer: the INVITE's Via, the answer's To."""
    req = request.decode().split("\r\n")
    to = next(line for line in response.decode().split("\r\n") if line.lower().startswith("to:"))
    head = [req[0].replace("INVITE", "ACK", 1), req[1], req[2], to, req[4], "CSeq: 1 ACK",
            "Max-Forwards: 70", "Content-Length: 0"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


class Probe(threading.Thread):
    """Sends the workload's request at a low rate on its own socket and times each
    answer from just before the send to the kernel's receive timestamp, so the
    probe's own wake-up delay on a busy machine does not count."""

    def __init__(self, workload: Workload, port: int, rate: float, tag: str) -> None:
        super().__init__(daemon=True)
        self.workload, self.port, self.interval, self.tag = workload, port, 1 / rate, tag
        self.stop = threading.Event()
        self.samples_ms: list[float] = []
        self.lost = 0

    def run(self) -> None:
        tcp = self.workload.transport == "tcp"
        try:
            sock = (socket.create_connection(("127.0.0.1", self.port), timeout=2) if tcp
                    else socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        except OSError:
            self.lost += 1
            return
        with sock:
            if tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                sock.connect(("127.0.0.1", self.port))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.settimeout(1.0)
            local_port = sock.getsockname()[1]
            n, next_at = 0, time.monotonic()
            while not self.stop.is_set():
                n += 1
                request = probe_request(self.workload.method, self.workload.transport,
                                        local_port, self.tag, n)
                sent_ns = time.time_ns()
                try:
                    sock.send(request)
                    response, received_ns = self.final_response(sock, f"{self.tag}-{n}", tcp)
                    if self.workload.method == "INVITE":
                        sock.send(ack_for(request, response))
                    self.samples_ms.append((received_ns - sent_ns) / 1e6)
                except (OSError, ValueError):
                    self.lost += 1
                    if tcp:
                        return  # the stream is out of step: stop probing
                next_at += self.interval
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    @staticmethod
    def final_response(sock: socket.socket, call_id: str, tcp: bool) -> tuple[bytes, int]:
        """The final (non-1xx) response with this Call-ID and its kernel timestamp."""
        buffer, marker = b"", f"\r\nCall-ID: {call_id}\r\n".encode()
        while True:
            data, ancillary, _, _ = sock.recvmsg(65535, socket.CMSG_SPACE(16))
            if not data:
                raise ValueError("connection closed")
            stamp = next((struct.unpack("qq", d[:16]) for level, kind, d in ancillary
                          if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
            received_ns = stamp[0] * 1_000_000_000 + stamp[1] if stamp else time.time_ns()
            messages = [data]
            if tcp:  # answers to a probe carry no body: split on the empty line
                buffer += data
                *messages, buffer = buffer.split(b"\r\n\r\n")
            for message in messages:
                if marker in message and not message.startswith(b"SIP/2.0 1"):
                    return message, received_ns


class MemorySampler(threading.Thread):
    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.stop = threading.Event()
        self.peak_pss = self.peak_rss = 0

    def run(self) -> None:
        while True:
            pss, rss, _ = memory_kb(self.root)
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            if self.stop.wait(self.interval):
                return


def closed_loop(clients: int) -> list[list[str]]:
    """SIPp's load options for ``clients`` processes sharing the 50 users."""
    return [["-users", str(USERS // clients + (i < USERS % clients))] for i in range(clients)]


def open_loop(rates: list[int], seconds: float) -> list[list[str]]:
    """SIPp's load options for one open-loop step: each process offers its rate for
    ``seconds`` (``-m``: then it stops and waits for its last answers), a call with no
    answer after 2 s fails (``-recv_timeout``), and the limit on calls in flight (``-l``)
    is 3 s of calls, so that a server falling behind shows as timeouts, not as SIPp
    quietly offering less."""
    # -timer_resol 1: SIPp's default of 10 ms sends a call rate as bursts every 10 ms
    # (150 requests at 15,000/s), a queue in the server that the offered rate does not make
    return [["-r", str(rate), "-rp", "1000", "-m", str(max(1, round(rate * seconds))),
             "-l", str(max(100, 3 * rate)), "-recv_timeout", "2000", "-timer_resol", "1"]
            for rate in rates]


def run_sipp(workload: Workload, server: Server, duration: float, tmp: Path, round_: int,
             probe_rate: float, clients: int = 1, load: list[list[str]] | None = None,
             offered: float | None = None) -> Run:
    """One SIPp run against one server, with the probe and the sampler: ``clients``
    SIPp processes (each on its own socket or connection: SO_REUSEPORT spreads sockets,
    not datagrams, over workers), closed-loop sharing the 50 users unless ``load``
    gives each its own options (an open-loop step, see ``open_loop``)."""
    load = load or closed_loop(clients)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{workload.name}-", dir=tmp))
    # closed loop: -timeout ends the run; open loop: -m does, -timeout is the backstop
    sipp_timeout = duration if offered is None else duration + 10
    cmds = [["sipp", f"127.0.0.1:{server.port}",
             "-sf", str(BENCH / "sipp" / workload.sipp_xml),
             "-s", workload.service, "-t", workload.sipp_transport, "-i", "127.0.0.1",
             "-p", str(free_port()), *options, "-buff_size", str(BUFFER),
             "-timeout", f"{sipp_timeout:g}s", "-nostdin",
             "-trace_stat", "-stf", str(run_dir / f"stat{i}.csv"), "-fd", "1",
             "-trace_screen", "-screen_file", str(run_dir / f"screen{i}.log"),
             "-trace_err", "-error_file", str(run_dir / f"errors{i}.log")]
            for i, options in enumerate(load)]
    # a tag per run: the saturation steps of a round must not repeat Call-IDs and branches
    probe = Probe(workload, server.port, probe_rate, f"probe-{next(RUN_TAGS)}-{round_}")
    sampler = MemorySampler(server.pid)
    drops_before, cpu_before = udp_rcvbuf_errors(), cpu_seconds(server.pid)
    busy_before, wall_before = machine_busy_seconds(), time.monotonic()
    # the SIPp processes are the only children reaped during the run
    reaped_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    runner_before = resource.getrusage(resource.RUSAGE_SELF)  # the probe and the sampler
    sampler.start()
    sipps: list[subprocess.Popen] = []
    try:
        for i, cmd in enumerate(cmds):
            with (run_dir / f"sipp{i}.out").open("wb") as out:
                sipps.append(subprocess.Popen(cmd, cwd=run_dir, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        time.sleep(0.3)  # the probe starts once SIPp's calls are in flight
        probe.start()
        exit_codes = [sipp.wait(sipp_timeout + 30) for sipp in sipps]
    finally:
        for sipp in sipps:
            if sipp.poll() is None:
                stop_group(sipp, [])
        probe.stop.set()
        sampler.stop.set()
    cpu = cpu_seconds(server.pid) - cpu_before
    wall = time.monotonic() - wall_before
    machine_cpus = (machine_busy_seconds() - busy_before) / wall
    drops = udp_rcvbuf_errors() - drops_before
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (reaped.ru_utime + reaped.ru_stime
                  - reaped_before.ru_utime - reaped_before.ru_stime)
    runner = resource.getrusage(resource.RUSAGE_SELF)
    runner_cpu = (runner.ru_utime + runner.ru_stime
                  - runner_before.ru_utime - runner_before.ru_stime)
    if probe.ident is not None:  # started
        probe.join(3)
    sampler.join(3)
    figures: list[dict[str, float]] = []
    kinds: dict[str, int] = {}
    for i in range(len(cmds)):
        try:
            text = (run_dir / f"stat{i}.csv").read_text()
            figures.append(parse_sipp_stat(text))
        except (OSError, ValueError, KeyError) as exc:
            said = (run_dir / f"sipp{i}.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"SIPp gave no statistics ({exc}); exit "
                               f"{exit_codes[i]}:\n{said}") from exc
        for kind, count in sipp_failure_kinds(text).items():
            kinds[kind] = kinds.get(kind, 0) + count
    calls = sum(int(f["successful"]) for f in figures)
    served = calls + len(probe.samples_ms) + probe.lost  # the probe's requests cost CPU too
    return Run(
        workload=workload.name, server=server.name, round=round_,
        calls_per_s=round(sum(f["calls_per_s"] for f in figures), 1), successful=calls,
        failed=sum(int(f["failed"]) for f in figures),
        retransmissions=sum(int(f["retransmissions"]) for f in figures),
        seconds=round(max(f["seconds"] for f in figures), 3),
        sipp_exit=max(exit_codes, key=abs), cpu_s=round(cpu, 2),
        cpu_us_per_call=round(cpu / served * 1e6, 2) if calls else float("nan"),
        p50_ms=_round(percentile(probe.samples_ms, 50)),
        p99_ms=_round(percentile(probe.samples_ms, 99)),
        probe_samples=len(probe.samples_ms), probe_lost=probe.lost, failure_kinds=kinds,
        peak_pss_kb=sampler.peak_pss, peak_rss_kb=sampler.peak_rss, udp_drops=drops,
        client_cpu_s=round(client_cpu, 2), offered_per_s=offered,
        late_p50_ms=_round(percentile(probe.samples_ms[len(probe.samples_ms) // 2:], 50)),
        machine_cpus=round(machine_cpus, 2),
        other_cpus=round(machine_cpus - (cpu + client_cpu + runner_cpu) / wall, 2))


def next_failed_step(run: Run) -> StepRecord | None:
    """The lowest step of a saturation search above its highest sustained rate."""
    best = max((st.offered_per_s for st in run.steps if st.sustained), default=0.0)
    return min((st for st in run.steps if not st.sustained and st.offered_per_s > best),
               key=lambda st: st.offered_per_s, default=None)


def settle(server: Server, timeout: float = 5) -> None:
    """Wait until the server is (nearly) idle: a failed step leaves a queue in its
    socket buffer, which must not count against the next step."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = cpu_seconds(server.pid)
        if now - before <= 0.02:  # at most 10 % of a CPU over the last 0.2 s
            return
        before = now


def run_saturation(workload: Workload, server: Server, step_seconds: float, tmp: Path,
                   round_: int, probe_rate: float, clients: int, search: saturation.Search,
                   criteria: saturation.Criteria,
                   deadline: float) -> tuple[Run | None, bool]:
    """The saturation search against one server: open-loop steps at the rates
    ``search`` picks. The result is the run of the highest sustained step, with every
    step and the bound in ``steps`` and ``bound`` (calls/s 0 when none was sustained;
    None when ``deadline`` came before the first step), and whether ``deadline`` cut
    the search short."""
    cut_short = False
    sustained: list[float] = []
    failed: list[float] = []
    runs: dict[float, Run] = {}
    steps: list[StepRecord] = []
    while (rate := search.next_rate(sustained, failed)) is not None:
        if time.monotonic() + step_seconds + 15 > deadline:
            cut_short = True
            break
        rates = saturation.split_rate(rate, clients)
        offered = float(sum(rates))
        run = run_sipp(workload, server, step_seconds, tmp, round_, probe_rate,
                       load=open_loop(rates, step_seconds), offered=offered)
        answered = run.successful / run.seconds if run.seconds > 0 else 0.0
        reasons = saturation.verdict(
            saturation.Step(offered=offered, answered=answered, failed=run.failed,
                            retransmissions=run.retransmissions,
                            late_p50_ms=run.late_p50_ms, probe_lost=run.probe_lost),
            criteria)
        (failed if reasons else sustained).append(offered)
        runs[offered] = run
        seconds = run.seconds or float("inf")
        step = StepRecord(offered_per_s=offered, answered_per_s=round(answered, 1),
                          sustained=not reasons, reasons=reasons,
                          server_cpus=round(run.cpu_s / seconds, 2),
                          sipp_cpus=round(run.client_cpu_s / seconds, 2),
                          machine_cpus=run.machine_cpus, other_cpus=run.other_cpus,
                          cpu_us_per_call=run.cpu_us_per_call,
                          late_p50_ms=run.late_p50_ms, p99_ms=run.p99_ms,
                          failure_kinds=run.failure_kinds)
        steps.append(step)
        print(f"{workload.name:<14} {server.name:<13} round {round_}: offered "
              f"{offered:>9,.0f}/s  answered {answered:>9,.0f}/s  "
              f"{'sustained' if not reasons else 'not sustained: ' + '; '.join(reasons)}  "
              f"CPU {run.cpu_us_per_call:.1f} us/call; CPUs: server {step.server_cpus}, "
              f"SIPp {step.sipp_cpus}, machine {step.machine_cpus} (other work "
              f"{step.other_cpus}); probe late p50 "
              f"{run.late_p50_ms} ms, p99 {run.p99_ms} ms", flush=True)
        settle(server)
    if not runs:
        return None, cut_short
    best = max(sustained, default=None)
    above = [r for r in failed if best is None or r > best]
    limit: str
    if not above:
        limit = ("not reached: --max-seconds ran out" if cut_short else
                 "not reached: the search stopped first (raise --saturation-steps)")
    else:
        first = next(st for st in steps if st.offered_per_s == min(above))
        limit = saturation.bound(first.server_cpus, server.workers, first.sipp_cpus,
                                 clients, first.machine_cpus, os.cpu_count() or 1)
    # none sustained, not even the floor: the lowest step's figures, at 0 calls/s
    result = replace(runs[min(failed)], calls_per_s=0.0) if best is None else runs[best]
    return replace(result, steps=steps, bound=limit), cut_short


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize(runs: list[Run]) -> Summary:
    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return _round(statistics.median(present)) if present else None

    middle = statistics.median(r.calls_per_s for r in runs)
    return Summary(
        workload=runs[0].workload, server=runs[0].server, rounds=len(runs),
        calls_per_s=round(statistics.median(r.calls_per_s for r in runs), 1),
        failed=sum(r.failed for r in runs),
        cpu_us_per_call=round(statistics.median(r.cpu_us_per_call for r in runs), 2),
        p50_ms=median([r.p50_ms for r in runs]), p99_ms=median([r.p99_ms for r in runs]),
        peak_pss_kb=max(r.peak_pss_kb for r in runs),
        peak_rss_kb=max(r.peak_rss_kb for r in runs),
        udp_drops=sum(r.udp_drops for r in runs), runs=runs,
        bound=min(runs, key=lambda r: abs(r.calls_per_s - middle)).bound)


# -- the whole run ---------------------------------------------------------------------------
def missing_tools(references: list[str]) -> list[str]:
    """What is missing, each with how to install it. Nothing is installed here."""
    missing = []
    if not shutil.which("sipp"):
        missing.append("sipp (SIPp, the load generator): apt-get install sip-tester")
    if "kamailio" in references:
        binary = kamailio_binary()
        if not binary:
            missing.append("kamailio (the reference server): apt-get install kamailio")
        else:
            for cfg in sorted((BENCH / "kamailio").glob("*.cfg")):
                check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True,
                                       text=True, cwd=tempfile.gettempdir())
                if check.returncode != 0:
                    missing.append(f"kamailio cannot load {cfg.relative_to(ROOT)} (modules "
                                   f"sl, textops, pv: apt-get install kamailio):\n"
                                   f"{check.stderr.strip()[-800:]}")
    try:
        import sipresponder  # noqa: F401
    except ImportError:
        missing.append(f"sipresponder in this Python ({sys.executable}): "
                       "pip install -e '.[fast]' from the repository root")
    return missing


def machine() -> dict[str, object]:
    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "not found"
        return ((out.stdout + out.stderr).strip().splitlines() or ["?"])[0].strip()

    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        import uvloop  # type: ignore[import-not-found]
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio (uvloop not installed)"
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
        "python": platform.python_version(), "event_loop": loop,
        "sipp": version(["sipp", "-v"]),
        "kamailio": version([kamailio_binary() or "kamailio", "-v"]).removeprefix(
            "version: "),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "rmem_max": int(Path("/proc/sys/net/core/rmem_max").read_text()),
        "wmem_max": int(Path("/proc/sys/net/core/wmem_max").read_text()),
    }


@contextlib.contextmanager
def servers_for(workload: Workload, names: list[str], tmp: Path, serve_args: list[str],
                kamailio_malloc: str, envs: dict[str, dict[str, str]] | None = None,
                workers: int = 1) -> Iterator[list[Server]]:
    """The servers of one workload, started in the order of ``names`` and stopped at
    the end; ``envs`` holds each sipresponder's added environment by name, ``workers``
    is its number of processes (saturation gives Kamailio as many UDP workers)."""
    started: list[Server] = []
    envs = envs or {}
    kamailio_udp_workers = workers if workload.open_loop else 2
    try:
        for name in names:
            port = free_port()
            cmd = server_command(name, workload, port, tmp, serve_args, kamailio_malloc,
                                 kamailio_udp_workers)
            server = Server(name, cmd, port, tmp, tcp=name != "naive",
                            env=envs.get(name),
                            workers={"kamailio": kamailio_udp_workers, "naive": 1}.get(
                                name, workers))
            started.append(server)
            server.start()
        time.sleep(0.5)  # the servers' other workers settle (only one answered the check)
        mine = started[0].answer_shape(workload.method)
        for other in started[1:]:
            theirs = other.answer_shape(workload.method)
            if other.name != "naive" and theirs != mine:
                print(f"warning: {workload.name}: {other.name} answers {theirs}, "
                      f"sipresponder {mine}", file=sys.stderr)
        yield started
    finally:
        for server in started:
            server.stop()


def markdown(summaries: list[Summary], idle: dict[str, int], info: dict[str, object],
             command: str, complete: bool) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "–" if value is None or value != value else format(value, fmt)

    lines = [
        f"`{command}`",
        "",
        f"{info['nproc']} CPUs ({info['cpu']}), Linux {info['kernel']}, Python "
        f"{info['python']}, {info['event_loop']}, {info['sipp']}, {info['kamailio']} "
        f"({info['kamailio_options']}), sipresponder workers: {info['sipresponder_workers']}, "
        f"SIPp processes: {info['sipp_clients']}; "
        f"load average at start {' '.join(info['loadavg_at_start'])}"  # type: ignore[arg-type]
        + ("" if complete else "; **incomplete: interrupted, or --max-seconds ran out**"),
        "",
        "| workload | server | calls/s | failed | CPU µs/call | p50 ms | p99 ms | "
        "peak PSS MB | peak RSS MB | UDP drops |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    def ratio_row(mine: Summary, theirs: Summary) -> str:
        return (
            f"| {mine.workload} | **{mine.server} / {theirs.server}** | "
            f"**{num(ratio(mine.calls_per_s, theirs.calls_per_s), '.2f')}x** | | "
            f"{num(ratio(mine.cpu_us_per_call, theirs.cpu_us_per_call), '.2f')}x | "
            f"{num(ratio(mine.p50_ms, theirs.p50_ms), '.2f')}x | "
            f"{num(ratio(mine.p99_ms, theirs.p99_ms), '.2f')}x | "
            f"{num(ratio(mine.peak_pss_kb, theirs.peak_pss_kb), '.2f')}x | "
            f"{num(ratio(mine.peak_rss_kb, theirs.peak_rss_kb), '.2f')}x | |")

    by_key = {(s.workload, s.server): s for s in summaries}
    for s in summaries:
        lines.append(
            f"| {s.workload} | {s.server} | {s.calls_per_s:,.0f} | {s.failed} | "
            f"{num(s.cpu_us_per_call, '.1f')} | {num(s.p50_ms, '.2f')} | "
            f"{num(s.p99_ms, '.2f')} | {s.peak_pss_kb / 1024:.1f} | "
            f"{s.peak_rss_kb / 1024:.1f} | {s.udp_drops} |")
        if s.server == "sipresponder":
            continue
        plain = by_key.get((s.workload, "sipresponder"))
        if is_sipresponder(s.server):  # a --compare-env variant: against the plain run
            if plain is not None:
                lines.append(ratio_row(s, plain))
            continue
        lines.extend(ratio_row(mine, s) for mine in summaries
                     if mine.workload == s.workload and is_sipresponder(mine.server))
    saturated = [s for s in summaries if s.bound is not None]
    if saturated:
        lines += ["", "Saturation (open loop; the highest rate sustained: 0 failed calls, "
                      "0 retransmissions, answers at the offered pace, the probe's median "
                      f"late in the step under {info.get('saturation_queue_ms', '?')} ms):",
                  ""]
        for s in saturated:
            median_run = min(s.runs, key=lambda r: abs(r.calls_per_s - s.calls_per_s))
            nxt = next_failed_step(median_run)
            why = ("" if nxt is None else
                   f"; at {nxt.offered_per_s:,.0f}/s: " + "; ".join(nxt.reasons)
                   + f" (CPUs busy: server {nxt.server_cpus}, SIPp {nxt.sipp_cpus}, "
                     f"machine {nxt.machine_cpus} of {info['nproc']}, of which other "
                     f"work {nxt.other_cpus})")
            lines.append(f"- {s.server}: {s.calls_per_s:,.0f} calls/s at "
                         f"{num(s.cpu_us_per_call, '.1f')} µs CPU/call, "
                         f"{len(median_run.steps)} steps; limited by: **{s.bound}**{why}")
    if idle:
        lines += ["", f"sipresponder idle, 1 s after start: RSS {idle['rss_kb'] / 1024:.1f} MB, "
                      f"PSS {idle['pss_kb'] / 1024:.1f} MB ({idle['processes']} "
                      f"process{'es' if idle['processes'] > 1 else ''}); its largest "
                      f"process: RSS {idle['largest_process_rss_kb'] / 1024:.1f} MB."]
    return "\n".join(lines) + "\n"


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="sipresponder against Kamailio, driven by the same SIPp.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per SIPp run")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds per workload")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of: {', '.join(WORKLOADS)}")
    parser.add_argument("--workers", type=int,
                        help="passed to sipresponder serve --workers; saturation then gives "
                             "Kamailio as many UDP workers (-n)")
    parser.add_argument("--udp-balance", choices=["source", "datagram"],
                        help="passed to sipresponder serve --udp-balance (with --workers; "
                             "datagram spreads one SIPp's UDP load over the workers)")
    parser.add_argument("--clients", type=int, default=1,
                        help="SIPp processes sharing the 50 users, each with its own socket "
                             "(a sipresponder --workers N needs N: SO_REUSEPORT gives one "
                             "client socket to one worker)")
    parser.add_argument("--reference", default="kamailio",
                        help="comma-separated reference servers: kamailio, naive (the "
                             "naive uvloop responder, on options-udp only)")
    parser.add_argument("--kamailio-malloc", choices=["tlsf", "fm", "qm"], default="tlsf",
                        help="Kamailio's memory manager (-x); qm is Kamailio's own default")
    parser.add_argument("--probe-rate", type=float, default=200,
                        help="latency probe requests per second during each run")
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="the whole run stops starting new runs after this")
    parser.add_argument("--server-env", type=env_arg, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="set in sipresponder's environment (repeatable), e.g. "
                             "SIPRESPONDER_NO_EXTENSIONS=1")
    parser.add_argument("--compare-env", type=env_arg, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="also run sipresponder with these set (repeatable; on top of "
                             "--server-env), as a second server in each round, with its "
                             "ratio to the plain one")
    group = parser.add_argument_group(
        "saturation", "the open-loop search of the saturation workload (bench/saturation.py)")
    group.add_argument("--step-seconds", type=float, default=3,
                       help="seconds of each open-loop step")
    group.add_argument("--saturation-start", type=float, default=2000,
                       help="the first rate offered, calls/s")
    group.add_argument("--saturation-steps", type=int, default=12,
                       help="at most this many steps per server and round")
    group.add_argument("--saturation-precision", type=float, default=0.05,
                       help="stop when the lowest failed rate is within this of the highest "
                            "sustained one")
    group.add_argument("--saturation-queue-ms", type=float, default=10,
                       help="a step where the probe's median response time over its second "
                            "half is above this is not sustained (a standing queue)")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (server logs, SIPp files) and print it")
    args = parser.parse_args(argv)

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    references = [r.strip() for r in args.reference.split(",") if r.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS] + \
        [r for r in references if r not in REFERENCES]
    if unknown or args.rounds < 1 or args.duration <= 0 or not 1 <= args.clients <= USERS:
        parser.error(f"unknown workload or reference {unknown}, or bad "
                     "--rounds/--duration/--clients")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    try:
        search = saturation.Search(start=args.saturation_start,
                                   precision=args.saturation_precision,
                                   max_steps=args.saturation_steps,
                                   floor=min(100, args.saturation_start))
        criteria = saturation.Criteria(max_queue_ms=args.saturation_queue_ms)
    except ValueError as exc:
        parser.error(f"bad saturation option: {exc}")
    if args.step_seconds <= 0:
        parser.error(f"--step-seconds must be positive, not {args.step_seconds}")
    server_env = dict(args.server_env)
    compare_env = dict(args.compare_env)
    variant = variant_label(compare_env) if compare_env else None
    envs = {"sipresponder": server_env}
    if variant:
        envs[variant] = {**server_env, **compare_env}
    missing = missing_tools(references)
    if missing:
        print("bench/run.py needs:\n" + "\n".join(f"  - {m}" for m in missing),
              file=sys.stderr)
        return 2
    info = machine()
    workers = args.workers or 1
    info["kamailio_options"] = (f"-x {args.kamailio_malloc} -n 2 -N 2"
                                + (f"; saturation -n {workers}" if "saturation" in workloads
                                   else ""))
    described = str(args.workers or "1 (no --workers)")
    if args.udp_balance:
        described += f", --udp-balance {args.udp_balance}"
    if server_env:
        described += ", env " + " ".join(f"{k}={v}" for k, v in server_env.items())
    info["sipresponder_workers"] = described
    info["saturation_queue_ms"] = args.saturation_queue_ms
    serve_args = [*(["--workers", str(args.workers)] if args.workers else []),
                  *(["--udp-balance", args.udp_balance] if args.udp_balance else [])]
    info["sipp_clients"] = args.clients
    if min(int(info["rmem_max"]), int(info["wmem_max"])) < BUFFER:  # type: ignore[call-overload]
        print(f"warning: net.core.rmem_max/wmem_max below {BUFFER}: socket buffers are "
              f"capped and UDP may drop (sysctl -w net.core.rmem_max={BUFFER} "
              f"net.core.wmem_max={BUFFER})", file=sys.stderr)
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.monotonic()
    deadline = start + args.max_seconds
    runs: list[Run] = []
    idle: dict[str, int] = {}
    complete = True
    signal.signal(signal.SIGTERM, interrupt)  # like Ctrl-C: stop the servers, keep the table
    tmp = Path(tempfile.mkdtemp(prefix="sipresponder-bench-"))
    tmp.chmod(0o755)  # Kamailio, dropped to nobody, reads its config dir and writes here
    try:
        for name in workloads:
            workload = WORKLOADS[name]
            names = ["sipresponder", *([variant] if variant else []),
                     *[r for r in references if r != "naive" or name in NAIVE_WORKLOADS]]
            with servers_for(workload, names, tmp, serve_args, args.kamailio_malloc, envs,
                             workers) as servers:
                if not idle:
                    time.sleep(1)
                    idle["pss_kb"], idle["rss_kb"], idle["largest_process_rss_kb"] = \
                        memory_kb(servers[0].pid)
                    idle["processes"] = len(process_tree(servers[0].pid))
                for round_ in range(1, args.rounds + 1):
                    for server in servers:
                        if workload.open_loop:
                            found, cut_short = run_saturation(
                                workload, server, args.step_seconds, tmp, round_,
                                args.probe_rate, args.clients, search, criteria, deadline)
                            if cut_short:
                                complete = False
                            if found is None:
                                break
                            runs.append(found)
                            print(f"{name:<14} {server.name:<13} round {round_}: highest "
                                  f"sustained {found.calls_per_s:,.0f}/s at "
                                  f"{found.cpu_us_per_call:.1f} us/call; limited by "
                                  f"{found.bound}", flush=True)
                            continue
                        if time.monotonic() + args.duration + 15 > deadline:
                            complete = False
                            break
                        run = run_sipp(workload, server, args.duration, tmp, round_,
                                       args.probe_rate, args.clients)
                        runs.append(run)
                        print(f"{name:<14} {server.name:<13} round {round_}: "
                              f"{run.calls_per_s:>9,.0f}/s  failed {run.failed}  "
                              f"CPU {run.cpu_us_per_call:.1f} us/call  p50 {run.p50_ms} ms  "
                              f"p99 {run.p99_ms} ms  drops {run.udp_drops}  CPUs: machine "
                              f"{run.machine_cpus}, other work {run.other_cpus}"
                              + (f"  {run.failure_kinds} (SIPp exit {run.sipp_exit})"
                                 if run.failed else ""), flush=True)
            if not complete:
                break
    except KeyboardInterrupt:
        complete = False
        print("interrupted", file=sys.stderr)
    except RuntimeError as exc:  # a server did not start, SIPp gave no statistics
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.workload, run.server), []).append(run)
    summaries = [summarize(group) for group in groups.values()]
    table = markdown(summaries, idle, info, command, complete)
    print()
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        report = {
            "command": command, "machine": info, "complete": complete,
            "seconds": round(time.monotonic() - start, 1),
            "idle_sipresponder": idle,
            "summary": [{k: v for k, v in asdict(s).items() if k != "runs"}
                        for s in summaries],
            "runs": [asdict(r) for r in runs],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
