#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the batched UDP reader.

``_speedups.serve_udp`` (sipresponder/csrc/speedups.c) reads a socket with
recvmmsg(2) into static buffers, answers what its table knows with sendmmsg(2), and
hands the rest back to Python. One input is cut at each 0xFF octet into datagrams
(empty ones too; at most MAX_DATAGRAMS, so several batches of 64), sent from a
loopback client to a loopback listener (127.0.0.1 or ::1, by the input), and then
read with ``serve_udp``. ``check`` fails (raises) when any of these does not hold:

* ``serve_udp`` raises nothing and returns (deferred, journal, unsent, received);
  ``received`` counts every datagram sent;
* every datagram is either answered (in the journal) or handed back deferred, in the
  order sent, with its octets and the client's address; a deferral reason is one of
  MISS..OFF, and OFF exactly when the table is off or None;
* an answer is what ``Table.answer`` gives for the same octets, and exactly the
  Python engine's one send (an absorbed ACK: the engine absorbs it); the client
  receives the answers, in order (those ``unsent`` aside);
* the engine's counters count every answer (the table adds to them itself: Table.bind).

Several variants are drawn from the input's length: no table, the table off, no journal, one
batch per call (the caller calls again until the socket is drained), and a Unix
socketpair, whose datagrams carry no source address (deferred, address b"").

Loopback only, bounded: the sockets are made once, every read waits at most
WAIT seconds.

Run it:  python fuzz/fuzz_batch.py fuzz/corpus-batch -dict=fuzz/speedups.dict
Without atheris, or with file arguments only, it replays those inputs.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

try:
    import atheris
except ImportError:  # replay mode needs no atheris
    atheris = None

# As in fuzz_speedups.py: Python coverage only when fuzzing, and not with
# SIPRESPONDER_FUZZ_PYTHON_COVERAGE=0 (a C build with -fsanitize=fuzzer-no-link
# carries its own).
_instrument = (atheris is not None and __name__ == "__main__"
               and os.environ.get("SIPRESPONDER_FUZZ_PYTHON_COVERAGE", "1") != "0")
with (atheris.instrument_imports(include=["sipresponder", "fuzz_speedups"]) if _instrument
      else contextlib.nullcontext()):
    # fuzz_speedups loads SIPRESPONDER_SPEEDUPS_SO, then the package
    import fuzz_speedups
    from fuzz_speedups import DEFERRALS, SOURCES, FuzzFailure, Oracle

    from sipresponder.uas.compiled import STATUS, speedups
    from sipresponder.uas.events import Source

MAX_DATAGRAMS = 150  # over two batches of 64
WAIT = 2.0  # seconds a datagram may take across loopback: never reached in practice
OFF = speedups.OFF if speedups is not None else -1  # the extension's reason
SEPARATOR = b"\xff"


def _fail(why: str, data: bytes) -> None:
    raise FuzzFailure(f"{why}; input {data[:300]!r}")


class Loopback:
    """A listener and a client on one loopback family, made once."""

    def __init__(self, family: socket.AddressFamily, host: str) -> None:
        self.listener = socket.socket(family, socket.SOCK_DGRAM)
        self.client = socket.socket(family, socket.SOCK_DGRAM)
        for sock in (self.listener, self.client):
            # An input's datagrams and answers all fit: none is dropped by the kernel.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            sock.bind((host, 0))
            sock.setblocking(False)
        self.address = self.listener.getsockname()[:2]
        self.remote: tuple[str, int] = self.client.getsockname()[:2]

    def drain(self, sock: socket.socket) -> list[bytes]:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(sock.recv(1 << 16))
        return out


class BatchOracle:
    """The taught table of fuzz_speedups.Oracle, served on real loopback sockets.

    The table is taught for listeners 127.0.0.1:5060 and [::1]:5060 (so that request
    lines in a corpus do not depend on the port the OS picks); serve_udp is told the
    listener's local id, and the engine is asked with the same listener and the
    client's real address."""

    def __init__(self) -> None:
        if speedups is None or not getattr(speedups, "HAVE_MMSG", 0):
            raise SystemExit(f"no batched UDP reader here: {STATUS}")
        self.loops = [Loopback(socket.AF_INET, "127.0.0.1"), Loopback(socket.AF_INET6, "::1")]
        self.sources = [
            Source("udp", loop.remote, local.local)
            for loop, local in zip(self.loops, SOURCES[:2], strict=True)
        ]
        self.oracle = Oracle(fuzz_speedups.scenario_named(
            os.environ.get("SIPRESPONDER_FUZZ_SCENARIO", "")), self.sources)
        self.answered = 0

    def serve(self, fd: int, table: Any, local_id: int, enabled: bool, journal: bool,
              max_batches: int, expected: int, data: bytes) -> tuple[list, list, list]:
        """serve_udp until ``expected`` datagrams are read (waiting for readability
        between calls, WAIT at most)."""
        deferred: list = []
        answered: list = []
        unsent: list = []
        received = 0
        calls = 0
        while received < expected:
            calls += 1
            if calls > expected + 8:
                _fail(f"serve_udp read {received} of {expected} datagrams", data)
            got = speedups.serve_udp(fd, table, local_id, enabled, True, journal, max_batches)
            if not (isinstance(got, tuple) and len(got) == 4):
                _fail(f"serve_udp returned {got!r}", data)
            d, j, u, n = got
            if (j is None) == journal or not isinstance(n, int) or n < 0:
                _fail(f"serve_udp returned journal {j!r}, received {n!r}", data)
            deferred += d
            answered += j or []
            unsent += u or []
            received += n
            if n == 0 and not select.select([fd], [], [], WAIT)[0]:
                _fail(f"{expected - received} datagrams never arrived", data)
        if received != expected:
            _fail(f"serve_udp read {received} datagrams, {expected} were sent", data)
        return deferred, answered, unsent

    def check(self, data: bytes) -> None:
        # The family and the variant follow the input's length, which the fuzzer
        # changes all the time: a quarter of the inputs take an odd variant.
        family = len(data) & 1
        loop, source = self.loops[family], self.sources[family]
        oracle = self.oracle
        local_id = oracle.local_id(source)
        datagrams = data.split(SEPARATOR)[:MAX_DATAGRAMS]
        variant = (len(data) >> 1) % 16
        if variant == 4:
            self.check_no_address(datagrams, data)
            return
        table = None if variant == 0 else oracle.table
        enabled = variant != 1
        journal = variant != 2 and table is not None  # no table: no journal either
        max_batches = 1 if variant == 3 else 8
        counters = oracle.engine.counters
        counted_before = sum(v for k, v in counters.items() if k.startswith("request:"))
        for datagram in datagrams:
            loop.client.sendto(datagram, loop.address)
        deferred, answered, unsent = self.serve(loop.listener.fileno(), table, local_id,
                                                enabled, journal, max_batches,
                                                len(datagrams), data)
        # Read now: the checks below ask the engine, which counts too.
        counted = sum(v for k, v in counters.items()
                      if k.startswith("request:")) - counted_before
        sent_back: list[bytes] = []
        d = a = 0
        for datagram in datagrams:
            if d < len(deferred) and deferred[d][0] == datagram:
                item = deferred[d]
                d += 1
                if item[1] != loop.remote or item[2] not in DEFERRALS:
                    _fail(f"deferred {item[1:]!r}: the client is {loop.remote}", data)
                if (item[2] == OFF) != (table is None or not enabled):
                    _fail(f"deferred with reason {item[2]} (table {table is not None}, "
                          f"enabled {enabled})", data)
                continue
            if not journal and table is not None and enabled:
                # No journal: what was not deferred was answered; ask the table again.
                response = oracle.table.answer(datagram, *loop.remote, local_id, True, True,
                                               count=False)
                if not isinstance(response, bytes):
                    _fail(f"neither deferred nor answered: {datagram[:200]!r}", data)
                item = (datagram, loop.remote, 0, response or None)
            elif a < len(answered) and answered[a][0] == datagram:
                item = answered[a]
                a += 1
            else:
                _fail(f"datagram {datagram[:200]!r} neither deferred nor answered in order "
                      f"({len(deferred)} deferred, {len(answered)} answered)", data)
            self.check_answered(item, datagram, loop, local_id, source, data)
            if item[3] is not None:
                sent_back.append(item[3])
        if d != len(deferred) or a != len(answered):
            _fail("serve_udp returned datagrams that were not sent", data)
        if table is not None and counted != len(datagrams) - len(deferred):
            _fail(f"the engine's counters counted {counted} answers, "
                  f"{len(datagrams) - len(deferred)} were given", data)
        self.check_client(loop, sent_back, unsent, data)

    def check_no_address(self, datagrams: list[bytes], data: bytes) -> None:
        """Datagrams that carry no source address (a Unix socketpair): serve_udp can
        name no source, so each comes back deferred, UNUSUAL, with the raw (empty)
        address, never an address left over from an earlier call."""
        oracle = self.oracle
        with contextlib.ExitStack() as stack:
            sender, reader = (stack.enter_context(s) for s in
                              socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
            reader.setblocking(False)
            for datagram in datagrams:
                sender.send(datagram)
            deferred, answered, _ = self.serve(reader.fileno(), oracle.table, 1, True, True,
                                               8, len(datagrams), data)
        if answered or [d[0] for d in deferred] != datagrams:
            _fail(f"socketpair datagrams: {len(answered)} answered, deferred "
                  f"{[d[0][:40] for d in deferred]!r}", data)
        for item in deferred:
            if item[1:] != (b"", 3):
                _fail(f"a datagram with no source came back as {item[1:]!r}", data)

    def check_answered(self, item: tuple, datagram: bytes, loop: Loopback, local_id: int,
                       source: Source, data: bytes) -> None:
        _, addr, _, response = item
        if addr != loop.remote:
            _fail(f"answered {addr!r}: the client is {loop.remote}", data)
        again = self.oracle.table.answer(datagram, *loop.remote, local_id, True, True,
                                         count=False)
        if again != (response or b""):
            _fail(f"serve_udp answered {response!r} but Table.answer {again!r}", data)
        self.answered += 1
        self.oracle.check_answer(datagram, source, response or b"")

    def check_client(self, loop: Loopback, sent_back: list[bytes], unsent: list,
                     data: bytes) -> None:
        expected = [r for r in sent_back if r not in {u[0] for u in unsent}]
        got: list[bytes] = []
        while len(got) < len(expected):
            more = loop.drain(loop.client)
            if not more and not select.select([loop.client], [], [], WAIT)[0]:
                break
            got += more
        got += loop.drain(loop.client)
        if got != expected:
            _fail(f"the client received {got!r}, serve_udp sent {expected!r}", data)


ORACLE: BatchOracle | None = None


def batch_oracle() -> BatchOracle:
    global ORACLE
    if ORACLE is None or len(ORACLE.oracle.fast.tallies) > fuzz_speedups.TALLY_HEADROOM:
        ORACLE = BatchOracle()
    return ORACLE


def check(data: bytes) -> None:
    batch_oracle().check(data)


def test_one_input(data: bytes) -> None:
    check(data)


def replay(paths: list[str]) -> int:
    files = fuzz_speedups.input_files(paths)
    for path in files:
        check(path.read_bytes())
    print(f"replayed {len(files)} inputs: all properties hold "
          f"({batch_oracle().answered} datagrams answered compiled)")
    return 0


def main() -> None:
    fuzz_speedups.quiet_logging()
    print(f"sipresponder._speedups: {getattr(speedups, '__file__', STATUS)}", file=sys.stderr)
    args = sys.argv[1:]
    if atheris is None or (args and all(Path(a).is_file() for a in args)):
        sys.exit(replay(args))
    batch_oracle()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
