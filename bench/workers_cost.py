"""What ``serve --workers N`` costs: memory of each process, CPU per request of all.

PSS (proportional set size, /proc/PID/smaps_rollup) charges a page shared by k
processes 1/k to each, so the sum over the tree is what the tree really costs;
private (Private_Dirty) is what the process alone holds, what one more worker
costs; RSS counts a shared page in full in every process. Each child is measured idle, then
after --requests OPTIONS (default REQUESTS) from 64 source ports, so that every
worker has compiled its plans, journaled, and collected its garbage a few times.
The CPU time (user + system, /proc/PID/stat) all the processes used for that
traffic, divided by the requests, is the CPU per request (16 requests in flight; the
client shares the machine, so compare runs made one after the other).

    python bench/workers_cost.py --workers 4 [--admin] [--pythonpath DIR]
    python bench/workers_cost.py --gc-probe

``--pythonpath`` runs another checkout (e.g. the commit before a change) with the
Python of this one, for a before/after comparison on the same machine.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

REQUESTS = 20000
LISTENING = re.compile(r"listening on udp:127\.0\.0\.1:(\d+)")
OPTIONS = (
    "OPTIONS sip:200@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n};rport\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=b{n}\r\nTo: <sip:200@127.0.0.1>\r\n"
    "Call-ID: mem-{n}@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
)


def memory(pid: int) -> tuple[int, int, int]:
    """(PSS, private dirty, RSS) in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return fields["Pss"], fields["Private_Dirty"], fields["Rss"]


def cpu_ticks(pid: int) -> int:
    """User + system time of ``pid`` so far, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def report(label: str, pids: dict[str, int]) -> None:
    figures = {name: memory(pid) for name, pid in pids.items()}
    for name, (pss, private, rss) in figures.items():
        print(f"  {label:5} {name:11} PSS {pss / 1024:6.1f} MB  private {private / 1024:6.1f} MB"
              f"  RSS {rss / 1024:6.1f} MB")
    total = sum(pss for pss, _, _ in figures.values())
    print(f"  {label:5} {'tree':11} PSS {total / 1024:6.1f} MB (sum)")


def gc_probe(freeze: bool) -> int:
    """Private memory (kB) of a forked child after one full collection, with or without
    ``gc.freeze()`` in the parent just before the fork (what serve.preload does): a
    collection writes to the header of every object it visits, and each write copies
    the page it is on out of what the child shares with its parent."""
    import gc

    from sipresponder.ops import admin, cluster  # noqa: F401  (what a worker imports)
    from sipresponder.transport import server  # noqa: F401

    if freeze:
        gc.freeze()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        gc.collect()
        os.write(ready_w, b".")
        time.sleep(30)
        os._exit(0)
    os.read(ready_r, 1)
    private = memory(pid)[1]
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    if freeze:
        gc.unfreeze()
    return private


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--admin", action="store_true", help="serve with --admin 127.0.0.1:0")
    parser.add_argument("--pythonpath", help="the checkout to run (default: the installed one)")
    parser.add_argument("--gc-probe", action="store_true",
                        help="instead: a forked child's private memory after a full "
                        "collection, with and without gc.freeze() before the fork")
    args = parser.parse_args()
    if args.gc_probe:
        for freeze in (False, True):
            print(f"gc.freeze() before fork: {'yes' if freeze else 'no '}: child's private "
                  f"memory after gc.collect(): {gc_probe(freeze) / 1024:.1f} MB")
        return 0
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = args.pythonpath
    cmd = [sys.executable, "-m", "sipresponder", "serve", "--workers", str(args.workers),
           "--listen", "udp:127.0.0.1:0"] + (["--admin", "127.0.0.1:0"] if args.admin else [])
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    try:
        port = 0
        seen = 0
        deadline = time.monotonic() + 30
        while seen < args.workers and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                sys.exit("serve ended before listening")
            if m := LISTENING.search(line):
                seen, port = seen + 1, int(m[1])
        time.sleep(1.0)  # let the workers' start-up garbage settle before measuring idle
        kids = children(proc.pid)
        pids = {"supervisor": proc.pid, **{f"child {i}": pid for i, pid in enumerate(kids)}}
        print(" ".join(cmd[1:]) + (f"  (PYTHONPATH={args.pythonpath})" if args.pythonpath
                                   else ""))
        report("idle", pids)
        before = {pid: cpu_ticks(pid) for pid in pids.values()}
        socks = []
        for _ in range(64):  # 64 source ports: every worker gets some (SO_REUSEPORT hash)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            socks.append(sock)
        in_flight = 16
        for first in range(0, args.requests, in_flight):
            batch = [(socks[n % len(socks)], n)
                     for n in range(first, min(first + in_flight, args.requests))]
            for sock, n in batch:
                sock.sendto(OPTIONS.format(port=sock.getsockname()[1], n=n).encode(),
                            ("127.0.0.1", port))
            for sock, _ in batch:
                sock.recv(65535)
        used = sum(cpu_ticks(pid) - before[pid] for pid in pids.values())
        for sock in socks:
            sock.close()
        report("busy", pids)
        per_request = used / os.sysconf("SC_CLK_TCK") / args.requests * 1e6
        print(f"  CPU {per_request:.1f} µs per request, all processes together")
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
