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

The table gives the median of the rounds and the ratio sipresponder/reference.
The runner installs nothing: it says which tool is missing and how to get it.
Everything runs on 127.0.0.1; the whole run stops after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEFAULT_SCENARIO = ROOT / "sipresponder" / "scenarios" / "default.toml"
BUFFER = 4 * 1024 * 1024
USERS = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
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
    ]
}
REFERENCES = ("kamailio", "naive")
NAIVE_WORKLOADS = {"options-udp"}  # the naive responder only answers UDP with 200


# -- results ------------------------------------------------------------------------------
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

    def __init__(self, name: str, cmd: list[str], port: int, tmp: Path, tcp: bool) -> None:
        self.name, self.cmd, self.port, self.tcp = name, cmd, port, tcp
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=self.log_path.parent,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
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
                   serve_args: list[str], kamailio_malloc: str = "tlsf") -> list[str]:
    if name == "sipresponder":
        cmd = [sys.executable, "-m", "sipresponder", "serve", "--scenario",
               str(workload.scenario), "--listen", f"udp:127.0.0.1:{port}",
               "--listen", f"tcp:127.0.0.1:{port}", "--log-level", "warning"]
        return [*cmd, *serve_args]
    if name == "kamailio":
        # foreground (-DD), log to stderr (-E), 2 UDP and 2 TCP workers, its pid file
        # and runtime dir in our temp dir; as root it drops to nobody/nogroup. -x: the
        # memory manager; the default, qm, makes each `$rU == "..."` of rules50.cfg cost
        # about 1.5 us in qm_malloc (80 us per request instead of 8), so tlsf by default
        cmd = [kamailio_binary() or "kamailio", "-DD", "-E", "-x", kamailio_malloc,
               "-f", str(BENCH / "kamailio" / workload.kamailio_cfg),
               "-l", f"udp:127.0.0.1:{port}", "-l", f"tcp:127.0.0.1:{port}",
               "-n", "2", "-N", "2", "-m", "64", "-M", "8",
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


def run_sipp(workload: Workload, server: Server, duration: float, tmp: Path, round_: int,
             probe_rate: float, clients: int = 1) -> Run:
    """One closed-loop SIPp run against one server, with the probe and the sampler.
    With ``clients`` > 1, that many SIPp processes share the 50 users, each on its own
    socket or connection (SO_REUSEPORT spreads sockets, not datagrams, over workers)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{server.name}-{workload.name}-", dir=tmp))
    users = [USERS // clients + (i < USERS % clients) for i in range(clients)]
    cmds = [["sipp", f"127.0.0.1:{server.port}",
             "-sf", str(BENCH / "sipp" / workload.sipp_xml),
             "-s", workload.service, "-t", workload.sipp_transport, "-i", "127.0.0.1",
             "-p", str(free_port()), "-users", str(n), "-buff_size", str(BUFFER),
             "-timeout", f"{duration:g}s", "-nostdin",
             "-trace_stat", "-stf", str(run_dir / f"stat{i}.csv"), "-fd", "1",
             "-trace_screen", "-screen_file", str(run_dir / f"screen{i}.log"),
             "-trace_err", "-error_file", str(run_dir / f"errors{i}.log")]
            for i, n in enumerate(users)]
    probe = Probe(workload, server.port, probe_rate, f"probe-{server.name}-{round_}")
    sampler = MemorySampler(server.pid)
    drops_before, cpu_before = udp_rcvbuf_errors(), cpu_seconds(server.pid)
    sampler.start()
    sipps: list[subprocess.Popen] = []
    try:
        for i, cmd in enumerate(cmds):
            with (run_dir / f"sipp{i}.out").open("wb") as out:
                sipps.append(subprocess.Popen(cmd, cwd=run_dir, stdin=subprocess.DEVNULL,
                                              stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        time.sleep(0.3)  # the probe starts once SIPp's 50 calls are in flight
        probe.start()
        exit_codes = [sipp.wait(duration + 30) for sipp in sipps]
    finally:
        for sipp in sipps:
            if sipp.poll() is None:
                stop_group(sipp, [])
        probe.stop.set()
        sampler.stop.set()
    cpu = cpu_seconds(server.pid) - cpu_before
    drops = udp_rcvbuf_errors() - drops_before
    if probe.ident is not None:  # started
        probe.join(3)
    sampler.join(3)
    figures: list[dict[str, float]] = []
    kinds: dict[str, int] = {}
    for i in range(clients):
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
        peak_pss_kb=sampler.peak_pss, peak_rss_kb=sampler.peak_rss, udp_drops=drops)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarize(runs: list[Run]) -> Summary:
    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return _round(statistics.median(present)) if present else None

    return Summary(
        workload=runs[0].workload, server=runs[0].server, rounds=len(runs),
        calls_per_s=round(statistics.median(r.calls_per_s for r in runs), 1),
        failed=sum(r.failed for r in runs),
        cpu_us_per_call=round(statistics.median(r.cpu_us_per_call for r in runs), 2),
        p50_ms=median([r.p50_ms for r in runs]), p99_ms=median([r.p99_ms for r in runs]),
        peak_pss_kb=max(r.peak_pss_kb for r in runs),
        peak_rss_kb=max(r.peak_rss_kb for r in runs),
        udp_drops=sum(r.udp_drops for r in runs), runs=runs)


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
                kamailio_malloc: str) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for name in names:
            port = free_port()
            cmd = server_command(name, workload, port, tmp, serve_args, kamailio_malloc)
            server = Server(name, cmd, port, tmp, tcp=name != "naive")
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
    by_key = {(s.workload, s.server): s for s in summaries}
    for s in summaries:
        lines.append(
            f"| {s.workload} | {s.server} | {s.calls_per_s:,.0f} | {s.failed} | "
            f"{num(s.cpu_us_per_call, '.1f')} | {num(s.p50_ms, '.2f')} | "
            f"{num(s.p99_ms, '.2f')} | {s.peak_pss_kb / 1024:.1f} | "
            f"{s.peak_rss_kb / 1024:.1f} | {s.udp_drops} |")
        if s.server == "sipresponder":
            continue
        mine = by_key.get((s.workload, "sipresponder"))
        if mine is None:
            continue
        lines.append(
            f"| {s.workload} | **sipresponder / {s.server}** | "
            f"**{num(ratio(mine.calls_per_s, s.calls_per_s), '.2f')}x** | | "
            f"{num(ratio(mine.cpu_us_per_call, s.cpu_us_per_call), '.2f')}x | "
            f"{num(ratio(mine.p50_ms, s.p50_ms), '.2f')}x | "
            f"{num(ratio(mine.p99_ms, s.p99_ms), '.2f')}x | "
            f"{num(ratio(mine.peak_pss_kb, s.peak_pss_kb), '.2f')}x | "
            f"{num(ratio(mine.peak_rss_kb, s.peak_rss_kb), '.2f')}x | |")
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
    parser.add_argument("--workers", help="passed to sipresponder serve --workers")
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
    missing = missing_tools(references)
    if missing:
        print("bench/run.py needs:\n" + "\n".join(f"  - {m}" for m in missing),
              file=sys.stderr)
        return 2
    info = machine()
    info["kamailio_options"] = f"-x {args.kamailio_malloc} -n 2 -N 2"
    info["sipresponder_workers"] = args.workers or "1 (no --workers)"
    if args.udp_balance:
        info["sipresponder_workers"] += f", --udp-balance {args.udp_balance}"
    serve_args = [*(["--workers", args.workers] if args.workers else []),
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
            names = ["sipresponder"] + [r for r in references
                                        if r != "naive" or name in NAIVE_WORKLOADS]
            with servers_for(workload, names, tmp, serve_args,
                             args.kamailio_malloc) as servers:
                if not idle:
                    time.sleep(1)
                    idle["pss_kb"], idle["rss_kb"], idle["largest_process_rss_kb"] = \
                        memory_kb(servers[0].pid)
                    idle["processes"] = len(process_tree(servers[0].pid))
                for round_ in range(1, args.rounds + 1):
                    for server in servers:
                        if time.monotonic() + args.duration + 15 > deadline:
                            complete = False
                            break
                        run = run_sipp(workload, server, args.duration, tmp, round_,
                                       args.probe_rate, args.clients)
                        runs.append(run)
                        print(f"{name:<14} {server.name:<13} round {round_}: "
                              f"{run.calls_per_s:>9,.0f}/s  failed {run.failed}  "
                              f"CPU {run.cpu_us_per_call:.1f} us/call  p50 {run.p50_ms} ms  "
                              f"p99 {run.p99_ms} ms  drops {run.udp_drops}"
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
