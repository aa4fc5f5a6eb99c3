"""Two versions of the transports' entry in one process, timed in interleaved windows.

    python bench/ab_receive.py WINDOW ROUNDS MODE NAME=TREE NAME=TREE ...

Like ab_inprocess.py (whose 20,000 distinct OPTIONS and INVITEs it sends), but one
level up, where the compiled path is asked: MODE ``receive-compiled`` times
``Server.receive`` with the compiled table answering (after the first message of each
request line taught it), ``receive-engine`` the same with the table off (a recorder
without an answered recorder: the engine, record and dispatch), ``batch-compiled`` and
``batch-engine`` a UDP listener's wake-up (``BatchUDPListener._readable``, one
datagram each, as SIPp's closed loop gives it) over a loopback socket, the sendto,
the wake-up and the client's recv all counted. The figures are thread CPU time per
message: the minimum window, the median, and the median of the paired ratios against
the first version; the CRC shows both answer with the same octets.
"""

from __future__ import annotations

import gc
import socket
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ab_inprocess import DISTINCT, message

MODES = ("receive-compiled", "receive-engine", "batch-compiled", "batch-engine")


class _Loop:
    """What Server and BatchUDPListener need of an event loop, without running one."""

    def time(self) -> float:
        return 1.0

    def add_reader(self, *_: Any) -> None: ...

    def remove_reader(self, *_: Any) -> None: ...

    def add_writer(self, *_: Any) -> None: ...

    def remove_writer(self, *_: Any) -> None: ...


class _Sink:
    """A UDP listener whose transport keeps the last response instead of sending it."""

    def __init__(self) -> None:
        self.transport = self
        self.last = b""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last = data

    def close(self) -> None: ...


def load(tree: str, mode: str, method: str, user: str
         ) -> tuple[Callable[[int], bytes], Any]:
    """One message's handling (by index) with the sipresponder in ``tree``, and its
    engine's counters."""
    for name in [m for m in sys.modules if m == "sipresponder" or m.startswith("sipresponder.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        from sipresponder.scenario.loader import load_scenario
        from sipresponder.transport.batch import BatchUDPListener
        from sipresponder.transport.server import Server
        from sipresponder.uas.events import Source
    finally:
        sys.path.remove(tree)
    server = Server(load_scenario(f"{tree}/scenarios/default.toml"))
    server._loop = _Loop()  # type: ignore[assignment]
    if mode.endswith("engine"):
        server.recorder = lambda outcome: None
    if mode.startswith("receive"):
        sink = _Sink()
        server._udp[1] = sink  # type: ignore[assignment]
        source = Source("udp", ("127.0.0.1", 5999), ("127.0.0.1", 5060), 1)
        messages = [message(method, user, n) for n in range(DISTINCT)]

        def receive(i: int) -> bytes:
            server.receive(messages[i % DISTINCT], source)
            return sink.last

        return receive, server.engine.counters
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    listener = BatchUDPListener(server, 1, "127.0.0.1", sock)
    listener.start(server._loop)  # type: ignore[arg-type]
    server._udp[1] = listener  # type: ignore[assignment]
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    port = str(client.getsockname()[1]).encode()
    via = b"127.0.0.1:" + port
    messages = [message(method, user, n).replace(b"127.0.0.1:5999", via)
                for n in range(DISTINCT)]
    dest = sock.getsockname()

    def wake(i: int) -> bytes:
        client.sendto(messages[i % DISTINCT], dest)
        listener._readable()
        # The client's port, which differs per tree, written as the fixed source's.
        return client.recv(65536).replace(port, b"5999")

    return wake, server.engine.counters


def main() -> None:
    window, rounds, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    if mode not in MODES:
        sys.exit(f"MODE must be one of {', '.join(MODES)}, not {mode!r}")
    for method, user in (("OPTIONS", "bob"), ("INVITE", "486")):
        runs = []
        for arg in sys.argv[4:]:
            name, tree = arg.split("=", 1)
            one, counters = load(tree, mode, method, user)
            for i in range(500):
                last = one(i)
            runs.append((name, one, zlib.crc32(last), counters,
                         list[float]()))
        offset = 0
        for r in range(rounds):
            for _name, one, _crc, _counters, times in runs if r % 2 == 0 else runs[::-1]:
                gc.collect()
                started = time.thread_time()
                for i in range(offset, offset + window):
                    one(i)
                times.append((time.thread_time() - started) / window * 1e6)
            offset += window
        base = runs[0][4]
        for name, _one, crc, counters, times in runs:
            paired = statistics.median(t / b for t, b in zip(times, base, strict=True))
            engine = sum(v for k, v in counters.items() if k.startswith("path:engine:"))
            print(f"{mode:16} {method:8} {name:10} min {min(times):7.3f} us  median "
                  f"{statistics.median(times):7.3f} us  vs {runs[0][0]}: min "
                  f"{min(times) / min(base) - 1:+.1%}, paired median {paired - 1:+.1%}  "
                  f"crc {crc}  engine-handled {engine}", flush=True)


if __name__ == "__main__":
    main()
