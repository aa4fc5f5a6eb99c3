"""Soak and chaos run: a million UDP requests and a TCP mix with garbage, against the
responder as a real subprocess; checks every answer and the responder's memory.

    python bench/soak.py                    # 1,000,000 UDP requests (see bench/README.md)
    python bench/soak.py --requests 20000   # a quick run

Phases:

1. start ``python -m sipresponder serve --scenario bench/soak.toml`` on OS-picked
   loopback ports (read from its stderr) and note its open file descriptors;
2. warm-up: ``--warmup`` UDP requests plus the TCP mix; wait until the responder holds
   no client connection again (its fd count is back to the start), read its RSS;
3. the run: ``--requests`` UDP requests with a random datagram every
   ``--garbage-every`` requests, while the TCP mix runs; wait for the drain again,
   read its RSS;
4. SIGTERM; a clean exit and no ERROR or traceback in its log.

UDP load: one process, ``--udp-sockets`` sockets (4 MiB buffers) each keeping
``--window`` requests in flight, so nothing is lost to a buffer overrun. Every
response is checked: its status line (code and reason) and its Call-ID must be the
ones its request expects. A request unanswered after ``--answer-timeout`` s counts
as unanswered.

TCP mix: another process, ``--tcp-workers`` asyncio tasks, each opening connection
after connection of one of these kinds:

* clean: 1-20 requests written in random-sized pieces, every answer checked, FIN;
* garbage: requests, then random octets and an empty line: the answers to the
  requests, then the responder must close the connection;
* abrupt: requests and half of one more, then RST (SO_LINGER 0) mid-message;
* half-close: requests and half of one more, then shutdown(SHUT_WR): the responder
  must close;
* half-open: requests and half of one more, then nothing at all, neither data nor
  FIN: the responder must close it by itself (tcp_read_timeout);
* idle: connect and say nothing: the responder must close it (tcp_idle_timeout).

Exit status 1 when a valid request went unanswered or was answered wrongly, a
connection the responder had to close stayed open, the responder's RSS after the
run exceeds its RSS after the warm-up by more than ``--max-growth`` (10 %), it did
not give back its connections, it logged an error, or ``--max-seconds`` ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).resolve().parent / "soak.toml"
BUFFER = 4 * 1024 * 1024
LISTENING = re.compile(r"listening on (udp|tcp):127\.0\.0\.1:([0-9]+)")
TROUBLE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception in callback")


# -- the requests and the answers they must get -------------------------------------------
@dataclass(frozen=True)
class Kind:
    method: str
    user: str
    status: bytes  # the exact status line the answer must start with
    extra: str = ""


KINDS = [
    Kind("OPTIONS", "soak", b"SIP/2.0 200 OK\r\n"),
    Kind("INVITE", "soak", b"SIP/2.0 200 OK\r\n"),
    Kind("REGISTER", "soak", b"SIP/2.0 200 OK\r\n",
         "Contact: <sip:soak@127.0.0.1:5999>\r\nExpires: 60\r\n"),
    Kind("MESSAGE", "soak", b"SIP/2.0 200 OK\r\n"),
    Kind("BYE", "soak", b"SIP/2.0 200 OK\r\n"),
    Kind("OPTIONS", "486", b"SIP/2.0 486 Busy Here\r\n"),
    Kind("INVITE", "603", b"SIP/2.0 603 Decline\r\n"),
    Kind("SUBSCRIBE", "soak", b"SIP/2.0 405 Method Not Allowed\r\n", "Event: presence\r\n"),
    Kind("FROBNICATE", "soak", b"SIP/2.0 501 Not Implemented\r\n"),
    Kind("OPTIONS", "soak", b"SIP/2.0 420 Bad Extension\r\n", "Require: foo\r\n"),
]


def template(kind: Kind, transport: str) -> bytes:
    """The request as a bytes %-template taking the Call-ID twice (branch, Call-ID)."""
    text = (
        f"{kind.method} sip:{kind.user}@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 127.0.0.1:5999;branch=z9hG4bK-%s;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:soak@example.com>;tag=soak\r\n"
        f"To: <sip:{kind.user}@127.0.0.1>\r\n"
        "Call-ID: %s\r\n"
        f"CSeq: 1 {kind.method}\r\n"
        f"{kind.extra}"
        "Content-Length: 0\r\n\r\n"
    )
    return text.encode()


def call_id_of(data: bytes) -> bytes | None:
    start = data.find(b"\r\nCall-ID: ")
    if start < 0:
        return None
    start += 11
    return data[start:data.find(b"\r\n", start)]


def garbage_pool(rng: random.Random, count: int = 512) -> list[bytes]:
    """Random octets, and SIP cut short or mangled (never with a usable Via, so that
    nothing comes back: whatever does come back counts as unexpected)."""
    valid = template(KINDS[0], "UDP") % (b"garbage", b"garbage")
    out = []
    for _ in range(count):
        r = rng.random()
        if r < 0.6:
            out.append(rng.randbytes(rng.randint(1, 1400)))
        elif r < 0.8:
            out.append(valid[: rng.randint(1, len(valid) - 1)].replace(b"Via:", b"Vxa:"))
        else:
            mangled = bytearray(valid.replace(b"Via:", b"Vxa:"))
            for _ in range(rng.randint(1, 20)):
                mangled[rng.randrange(len(mangled))] = rng.randrange(256)
            out.append(bytes(mangled))
    return out


# -- UDP load --------------------------------------------------------------------------------
def udp_load(port: int, count: int, sockets: int, window: int, garbage_every: int,
             answer_timeout: float, max_seconds: float, tag: str, seed: int) -> dict:
    rng = random.Random(seed)
    templates = [(template(k, "UDP"), k.status) for k in KINDS]
    garbage = garbage_pool(rng)
    socks = []
    sel = selectors.DefaultSelector()
    for i in range(sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        socks.append(sock)
        sel.register(sock, selectors.EVENT_READ, i)
    pending: dict[bytes, tuple[float, bytes, int]] = {}
    stats = dict(sent=0, answered=0, wrong=0, unanswered=0, unexpected=0, garbage=0,
                 send_errors=0)
    samples: list[str] = []
    prefix = tag.encode()
    next_id = 0
    start = time.monotonic()
    deadline = start + max_seconds
    now = start

    def send(i: int) -> None:
        nonlocal next_id
        tpl, status = templates[next_id % len(templates)]
        cid = b"%s-%d" % (prefix, next_id)
        next_id += 1
        try:
            socks[i].send(tpl % (cid, cid))
        except OSError:
            stats["send_errors"] += 1
            return
        pending[cid] = (now, status, i)
        stats["sent"] += 1
        if garbage_every and stats["sent"] % garbage_every == 0:
            with contextlib.suppress(OSError):
                socks[i].send(rng.choice(garbage))
                stats["garbage"] += 1

    for i in range(sockets):
        for _ in range(window):
            if next_id < count:
                send(i)
    last_sweep = start
    while (next_id < count or pending) and now < deadline:
        for key, _ in sel.select(0.2):
            sock = key.fileobj
            while True:
                try:
                    data = sock.recv(65535)  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                except OSError:
                    stats["send_errors"] += 1  # ICMP error surfacing: counted, not hidden
                    break
                cid = call_id_of(data)
                entry = pending.pop(cid, None) if cid is not None else None
                if entry is None:
                    stats["unexpected"] += 1
                    continue
                if data.startswith(entry[1]):
                    stats["answered"] += 1
                else:
                    stats["wrong"] += 1
                    if len(samples) < 5:
                        samples.append(data[:200].decode("latin-1"))
                if next_id < count:
                    send(entry[2])
        now = time.monotonic()
        if now - last_sweep >= 1.0:
            last_sweep = now
            for cid, (sent_at, _, i) in list(pending.items()):
                if now - sent_at > answer_timeout:
                    del pending[cid]
                    stats["unanswered"] += 1
                    if next_id < count:
                        send(i)
    stats["unanswered"] += len(pending)
    stats["not_sent"] = count - next_id
    stats["seconds"] = round(time.monotonic() - start, 2)
    stats["wrong_samples"] = samples
    for sock in socks:
        sock.close()
    return stats


def udp_process(queue: mp.Queue, *args) -> None:
    queue.put(("udp", udp_load(*args)))


# -- TCP mix ---------------------------------------------------------------------------------
TCP_KINDS = ["clean"] * 10 + ["garbage"] * 3 + ["abrupt"] * 3 + ["half-close"] * 2 + \
    ["half-open"] * 2 + ["idle"]


class TCPMix:
    def __init__(self, port: int, workers: int, close_timeout: float, seed: int,
                 tag: str) -> None:
        self.port, self.workers, self.close_timeout = port, workers, close_timeout
        self.rng = random.Random(seed)
        self.tag = tag.encode()
        self.templates = [(template(k, "TCP"), k.status) for k in KINDS]
        self.next_id = 0
        self.stats: dict[str, int] = {}
        self.samples: list[str] = []

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def requests(self, n: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        out, expect = [], []
        for _ in range(n):
            tpl, status = self.templates[self.next_id % len(self.templates)]
            cid = b"%s-t%d" % (self.tag, self.next_id)
            self.next_id += 1
            out.append(tpl % (cid, cid))
            expect.append((cid, status))
        return b"".join(out), expect

    async def read_response(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        m = re.search(rb"\r\nContent-Length: ([0-9]+)\r\n", head)
        return head + (await reader.readexactly(int(m[1])) if m else b"")

    async def check_answers(self, reader: asyncio.StreamReader,
                            expect: list[tuple[bytes, bytes]]) -> None:
        for cid, status in expect:
            try:
                data = await asyncio.wait_for(self.read_response(reader), 10)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                self.count("tcp_unanswered")
                continue
            if data.startswith(status) and call_id_of(data) == cid:
                self.count("tcp_answered")
            else:
                self.count("tcp_wrong")
                if len(self.samples) < 5:
                    self.samples.append(data[:200].decode("latin-1"))

    async def expect_close(self, reader: asyncio.StreamReader, timeout: float) -> None:
        """The responder must close the connection within ``timeout``."""
        try:
            while await asyncio.wait_for(reader.read(65536), timeout):
                pass
            self.count("closed_by_responder")
        except TimeoutError:
            self.count("not_closed_by_responder")
        except ConnectionError:
            self.count("closed_by_responder")

    async def connection(self, kind: str) -> None:
        rng = self.rng
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port), 10)
        except (OSError, TimeoutError):
            self.count("connect_errors")
            return
        self.count(f"conn_{kind}")
        try:
            if kind == "idle":
                await self.expect_close(reader, self.close_timeout)
                return
            data, expect = self.requests(rng.randint(1, 20))
            self.count("tcp_sent", len(expect))
            if kind != "clean":
                partial, _ = self.requests(1)
                data += partial[: rng.randint(1, len(partial) - 1)]
            if kind == "garbage":
                data += rng.randbytes(rng.randint(1, 3000)) + b"\r\n\r\n"
            # written in random-sized pieces, so messages straddle segments
            pos = 0
            while pos < len(data):
                step = rng.randint(1, 1500)
                writer.write(data[pos:pos + step])
                pos += step
                if rng.random() < 0.3:
                    await writer.drain()
            await writer.drain()
            await self.check_answers(reader, expect)
            if kind == "garbage":
                await self.expect_close(reader, self.close_timeout)
            elif kind == "abrupt":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif kind == "half-close":
                writer.write_eof()
                await self.expect_close(reader, self.close_timeout)
            elif kind == "half-open":
                await self.expect_close(reader, self.close_timeout)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.count(f"error_{type(exc).__name__}")
        finally:
            writer.close()

    async def run(self, stop: threading.Event | mp.synchronize.Event) -> dict:
        async def worker() -> None:
            while not stop.is_set():
                await self.connection(self.rng.choice(TCP_KINDS))

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(self.workers)))
        self.stats["seconds"] = round(time.monotonic() - start, 2)
        return {**self.stats, "wrong_samples": self.samples}


def tcp_process(queue: mp.Queue, stop, port: int, workers: int, close_timeout: float,
                seed: int, tag: str) -> None:
    mix = TCPMix(port, workers, close_timeout, seed, tag)
    try:
        import uvloop  # type: ignore[import-not-found]
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    queue.put(("tcp", runner(mix.run(stop))))


# -- the responder ---------------------------------------------------------------------------
class Responder:
    def __init__(self, scenario: Path) -> None:
        cmd = [sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario),
               "--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
               "--log-level", "warning"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.log: list[str] = []
        self.ports: dict[str, int] = {}
        ready = threading.Event()

        def drain() -> None:
            for line in self.proc.stderr:  # type: ignore[union-attr]
                self.log.append(line)
                m = LISTENING.search(line)
                if m:
                    self.ports[m[1]] = int(m[2])
                    if len(self.ports) == 2:
                        ready.set()
            ready.set()

        self.reader = threading.Thread(target=drain, daemon=True)
        self.reader.start()
        if not ready.wait(20) or len(self.ports) != 2:
            self.stop()
            raise SystemExit("responder did not start:\n" + "".join(self.log))

    def status(self, field: str) -> int:
        """A kB figure of /proc/PID/status (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_fds(self, target: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (n := self.fds()) > target and time.monotonic() < deadline:
            time.sleep(0.1)
        return n

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                return None
        self.reader.join(10)
        return self.proc.returncode


# -- the run ---------------------------------------------------------------------------------
def phase(name: str, responder: Responder, args: argparse.Namespace, count: int,
          deadline: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop = ctx.Event()
    port_udp, port_tcp = responder.ports["udp"], responder.ports["tcp"]
    remaining = max(1.0, deadline - time.monotonic())
    cpu0 = responder.cpu_seconds()
    tcp = ctx.Process(target=tcp_process, args=(queue, stop, port_tcp, args.tcp_workers,
                                                args.close_timeout, args.seed + 1, name))
    udp = ctx.Process(target=udp_process, args=(
        queue, port_udp, count, args.udp_sockets, args.window, args.garbage_every,
        args.answer_timeout, remaining, name, args.seed))
    tcp.start()
    udp.start()
    results: dict[str, dict] = {}
    peak = responder.status("VmRSS")
    start = time.monotonic()
    while "udp" not in results:
        with contextlib.suppress(Exception):
            key, value = queue.get(timeout=1.0)
            results[key] = value
        peak = max(peak, responder.status("VmRSS"))
        if responder.proc.poll() is not None:
            raise SystemExit("responder died:\n" + "".join(responder.log[-50:]))
        if time.monotonic() > deadline + 30:
            raise SystemExit("the UDP load process did not report in time")
    udp_seconds = time.monotonic() - start
    stop.set()
    while "tcp" not in results:
        key, value = queue.get(timeout=args.close_timeout + 60)
        results[key] = value
    udp.join(10)
    tcp.join(10)
    results["udp"]["rate_per_s"] = round(results["udp"]["sent"] / max(udp_seconds, 1e-9))
    results["rss_peak_kb"] = peak
    results["responder_cpu_s"] = round(responder.cpu_seconds() - cpu0, 1)
    return results


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        import uvloop  # type: ignore[import-not-found]
        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio (no uvloop)"
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "event_loop": loop, "kernel": platform.release()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000, help="UDP requests")
    parser.add_argument("--warmup", type=int, default=50_000, help="UDP warm-up requests")
    parser.add_argument("--max-seconds", type=float, default=1800.0,
                        help="bound on the whole run (warm-up included)")
    parser.add_argument("--udp-sockets", type=int, default=8)
    parser.add_argument("--window", type=int, default=32, help="in-flight requests per socket")
    parser.add_argument("--garbage-every", type=int, default=50,
                        help="a random datagram after every N UDP requests (0: none)")
    parser.add_argument("--tcp-workers", type=int, default=32,
                        help="concurrent TCP connections of the mix")
    parser.add_argument("--answer-timeout", type=float, default=5.0)
    parser.add_argument("--close-timeout", type=float, default=15.0,
                        help="how long the responder may take to close a connection it "
                             "must close (soak.toml: read timeout 2 s, idle timeout 5 s)")
    parser.add_argument("--max-growth", type=float, default=0.10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    began = time.monotonic()
    deadline = began + args.max_seconds
    responder = Responder(SCENARIO)
    report: dict = {"command": " ".join(sys.argv), "machine": machine(),
                    "responder": " ".join(responder.cmd[1:])}
    failures: list[str] = []
    try:
        fds_start = responder.fds()
        report["rss_start_kb"] = responder.status("VmRSS")
        print(f"responder pid {responder.proc.pid}, ports {responder.ports}, "
              f"RSS {report['rss_start_kb']} kB, {fds_start} fds", flush=True)

        warm = phase("warm", responder, args, args.warmup, deadline)
        report["fds_after_warmup"] = responder.wait_fds(fds_start, args.close_timeout + 5)
        report["rss_warm_kb"] = responder.status("VmRSS")
        report["warmup"] = warm
        print(f"warm-up: {json.dumps(warm['udp'])}\n         {json.dumps(warm['tcp'])}\n"
              f"RSS after warm-up {report['rss_warm_kb']} kB", flush=True)

        run = phase("run", responder, args, args.requests, deadline)
        report["fds_end"] = responder.wait_fds(fds_start, args.close_timeout + 5)
        report["rss_end_kb"] = responder.status("VmRSS")
        report["hwm_kb"] = responder.status("VmHWM")
        report["run"] = run
    finally:
        code = responder.stop()
    report["exit_code"] = code
    report["seconds"] = round(time.monotonic() - began, 1)
    trouble = [line.rstrip() for line in responder.log if TROUBLE.search(line)]
    report["log_trouble"] = trouble[:20]

    udp, tcp = run["udp"], run["tcp"]
    growth = report["rss_end_kb"] / report["rss_warm_kb"] - 1
    report["rss_growth"] = round(growth, 4)
    for name, result in (("warm-up", warm), ("run", run)):
        u, t = result["udp"], result["tcp"]
        if u["unanswered"] or u["wrong"] or u["not_sent"] or u["send_errors"]:
            failures.append(f"{name} UDP: {u['unanswered']} unanswered, {u['wrong']} wrong, "
                            f"{u['not_sent']} not sent, {u['send_errors']} socket errors")
        bad = {k: v for k, v in t.items() if k in ("tcp_unanswered", "tcp_wrong",
                                                    "not_closed_by_responder", "connect_errors")
               or k.startswith("error_")}
        if bad:
            failures.append(f"{name} TCP: {bad}")
    if growth > args.max_growth:
        failures.append(f"RSS grew {growth:.1%} (> {args.max_growth:.0%})")
    if report["fds_end"] > fds_start or report["fds_after_warmup"] > fds_start:
        failures.append(f"responder kept connections: {report['fds_end']} fds, {fds_start} "
                        "at start")
    if code != 0:
        failures.append(f"responder exit code {code}")
    if trouble:
        failures.append(f"responder logged {len(trouble)} error lines")
    report["failures"] = failures

    conns = {k[5:]: v for k, v in tcp.items() if k.startswith("conn_")}
    rss = (f"start {report['rss_start_kb']:,} kB, after warm-up {report['rss_warm_kb']:,} kB, "
           f"peak during run {run['rss_peak_kb']:,} kB, end {report['rss_end_kb']:,} kB")
    lines = [
        ("UDP requests", f"{udp['sent']:,} in {udp['seconds']} s ({udp['rate_per_s']:,}/s), "
                         f"answered correctly {udp['answered']:,}, wrong {udp['wrong']}, "
                         f"unanswered {udp['unanswered']}"),
        ("UDP garbage", f"{udp['garbage']:,} random datagrams, "
                        f"{udp['unexpected']} unexpected answers"),
        ("TCP mix", f"{sum(conns.values()):,} connections {json.dumps(conns)}"),
        ("TCP requests", f"{tcp.get('tcp_sent', 0):,} sent, answered correctly "
                         f"{tcp.get('tcp_answered', 0):,}, wrong {tcp.get('tcp_wrong', 0)}, "
                         f"unanswered {tcp.get('tcp_unanswered', 0)}"),
        ("TCP closes", f"{tcp.get('closed_by_responder', 0):,} by the responder as required, "
                       f"{tcp.get('not_closed_by_responder', 0)} left open"),
        ("responder RSS", rss),
        ("RSS end/warm-up", f"{report['rss_end_kb'] / report['rss_warm_kb']:.4f} "
                            f"({growth:+.2%}, limit {args.max_growth:+.0%})"),
        ("responder fds", f"start {fds_start}, after warm-up {report['fds_after_warmup']}, "
                          f"end {report['fds_end']}"),
        ("responder CPU", f"{run['responder_cpu_s']} s during the run; exit code {code}; "
                          f"{len(trouble)} error lines logged"),
        ("machine", json.dumps(report["machine"])),
        ("total", f"{report['seconds']} s"),
        ("result", "FAIL: " + "; ".join(failures) if failures else "PASS"),
    ]
    print()
    for name, text in lines:
        print(f"{name:<19} {text}")
    sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
