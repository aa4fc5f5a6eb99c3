#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the compiled request path.

The C extension ``sipresponder._speedups`` (sipresponder/csrc/speedups.c) reads
untrusted octets. One input is one message as a peer could send it. ``check`` fails
(raises) when any of these does not hold:

* ``Table.answer`` (a table taught the default scenario's common request lines, as
  tests/differential/ teaches it) returns bytes or a deferral reason (an int in
  MISS..OFF) for UDP, UDP over IPv6, TCP and WebSocket sources, and raises nothing;
* the differential oracle: an answer is exactly the one send of the Python engine
  for the same octets from the same source (same octets, to the source, from a rule,
  stateless); an absorbed ACK (``b""``) is one the engine absorbs too;
* a request line the table missed is learned from the engine's outcome
  (``FastPath.learn``, as the server does), and its self-check -- the table asked
  for this very request must return the engine's octets -- never disagrees;
* ``learn`` with odd arguments (local ids and tallies out of range, head or tail not
  bytes, head and tail cut from the input), ``forget``, ``clear``, ``size``,
  ``bind`` and ``deferred`` on scratch tables with odd settings raise only
  ValueError / TypeError / OverflowError where an argument is wrong, and an answer
  from a scratch table is head + echo + tail;
* the engine counts no internal error.

A C memory error is not an exception: run it against an AddressSanitizer build
(fuzz/README.md: SIPRESPONDER_SPEEDUPS_SO names that build, LD_PRELOAD its runtime).

Run it:  python fuzz/fuzz_speedups.py fuzz/corpus-speedups -dict=fuzz/speedups.dict
Without atheris, or with file arguments only, it replays those inputs through
``check`` and exits non-zero on the first failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:  # replay mode needs no atheris
    atheris = None

SPEEDUPS_SO = "SIPRESPONDER_SPEEDUPS_SO"


def load_speedups_build() -> None:
    """SIPRESPONDER_SPEEDUPS_SO=path: that build of the extension (an AddressSanitizer
    one, say) stands in for the installed one, before anything imports it."""
    path = os.environ.get(SPEEDUPS_SO)
    if not path:
        return
    spec = importlib.util.spec_from_file_location("sipresponder._speedups", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{SPEEDUPS_SO}={path}: not a loadable extension module")
    import sipresponder  # noqa: F401 - the parent package first

    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["sipresponder._speedups"] = module


load_speedups_build()

# Coverage instrumentation of the Python side only when fuzzing, and not with
# SIPRESPONDER_FUZZ_PYTHON_COVERAGE=0 (the C side carries its own when built with
# -fsanitize=fuzzer-no-link; the Python side's costs a third of the speed).
_instrument = (atheris is not None and __name__ == "__main__"
               and os.environ.get("SIPRESPONDER_FUZZ_PYTHON_COVERAGE", "1") != "0")
with (atheris.instrument_imports(include=["sipresponder"]) if _instrument
      else contextlib.nullcontext()):
    from sipresponder.scenario.loader import load_scenario
    from sipresponder.scenario.model import Scenario
    from sipresponder.sip.transports import MESSAGE_FRAMED
    from sipresponder.uas.compiled import STATUS, speedups
    from sipresponder.uas.engine import Engine
    from sipresponder.uas.events import Source
    from sipresponder.uas.fast import MISS
    from sipresponder.uas.transactions import TimerQueue

DEFAULT_SCENARIO = ROOT / "scenarios" / "default.toml"
NOW = 1000.0
# The listeners the table is taught for, and the sources the oracle answers.
SOURCES = [
    Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060)),
    Source("udp", ("::1", 40002), ("::1", 5060)),
    Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7),
    Source("ws", ("192.0.2.9", 40003), ("127.0.0.1", 5062), 8),
]
USERS = ["bench", "486", "200", "603", "alice", "302", "180", "485", "busy", "unknown"]
METHODS = ["OPTIONS", "INVITE", "BYE", "MESSAGE", "REGISTER", "ACK", "NOTIFY", "SUBSCRIBE"]
# The deferral reasons, as the extension names them (none without it: nothing to fuzz).
DEFERRALS = (set() if speedups is None else
             {speedups.MISS, speedups.LEARNED_NO, speedups.UNUSUAL, speedups.OFF})
# Fewer learnable tallies than the table's 256 are left: start a fresh teacher (the
# fuzzer invents methods, each one a new request:METHOD tally).
TALLY_HEADROOM = 192


class FuzzFailure(AssertionError):
    """A property the target checks does not hold."""


def _fail(why: str, data: bytes) -> None:
    raise FuzzFailure(f"{why}; input {data[:300]!r}")


class Disagreements(logging.Handler):
    """FastPath.learn's self-check logs a warning when the table's answer differs from
    the engine's, and Engine.handle logs an internal error: both are failures here."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "compiled path disagrees" in message or "internal error" in message:
            self.count += 1
            self.last = message


DISAGREEMENTS = Disagreements()


def quiet_logging() -> None:
    """Keep libFuzzer's output readable (the engine logs every drop) but keep the
    warnings the oracle reads."""
    logger = logging.getLogger("sipresponder")
    logger.propagate = False
    logger.handlers = [DISAGREEMENTS]
    logger.setLevel(logging.WARNING)


def clean_request(method: str, user: str, source: Source, n: int) -> bytes:
    """A request as SIPp writes one (tests/differential's): what the table learns from.
    Over IPv6 the URIs of From, To and Contact name hosts: the compiled path leaves an
    IPv6 reference in them to the engine, so a table taught with one learns nothing."""
    ip, port = source.remote
    host = f"[{ip}]" if ":" in ip else ip
    lip, lport = source.local
    lhost = f"[{lip}]" if ":" in lip else lip
    transport = source.transport.upper()
    peer, us = (f"{host}:{port}", f"{lhost}:{lport}") if ":" not in ip else (
        "client.example", "localhost")
    return (
        f"{method} sip:{user}@{lhost}:{lport} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK-{n}\r\n"
        f"From: sipp <sip:sipp@{peer}>;tag={n}SIPpTag00{n}\r\n"
        f"To: <sip:{user}@{us}>\r\n"
        f"Call-ID: {n}-{port}@{host}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:sipp@{peer}>\r\n"
        f"Max-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def scenario_named(name: str) -> Scenario:
    return load_scenario(name or DEFAULT_SCENARIO)


class Oracle:
    """One engine whose compiled table was taught the common request lines."""

    def __init__(self, scenario: Scenario, sources: list[Source]) -> None:
        if speedups is None:
            raise SystemExit(f"the compiled path is not available: {STATUS}")
        self.scenario = scenario
        self.sources = sources
        logger = logging.getLogger("sipresponder")
        if DISAGREEMENTS not in logger.handlers:
            logger.addHandler(DISAGREEMENTS)
        self.engine = Engine(scenario)
        fast = self.engine.fast
        if fast is None:
            raise SystemExit(f"{scenario.path}: the compiled path does not apply to it")
        self.fast = fast
        self.table: Any = fast.table
        self.answered = 0
        for n, method in enumerate(METHODS):
            for user in USERS:
                for source in sources:
                    self.handle(clean_request(method, user, source, n), source, learn=True)
        self.taught = self.table.size()
        self.answered = 0  # what the inputs got, not the teaching ACKs
        if self.taught == 0:
            raise SystemExit("the table learned nothing from the common requests")

    def local_id(self, source: Source) -> int:
        local_id = self.fast.local_id(source)
        assert local_id is not None
        return local_id

    def engine_sends(self, data: bytes, source: Source) -> Any:
        """The engine's outcome for ``data``; its transactions are forgotten after, so
        that every input meets the same engine (an INVITE's transaction would turn the
        next one's ACK into Timer G business)."""
        engine = self.engine
        before = engine.counters["internal_errors"]
        outcome = engine.handle(data, source, NOW)
        if engine.counters["internal_errors"] != before:
            _fail(f"Engine.handle counted an internal error: {DISAGREEMENTS.last}", data)
        transactions = engine.transactions
        if transactions.table or len(transactions.timers):
            transactions.table.clear()
            transactions.by_dialog.clear()
            transactions.timers = TimerQueue()
        return outcome

    def handle(self, data: bytes, source: Source, learn: bool,
               miss_learns: bool = True) -> Any:
        """The table first, then the engine, as tests/differential's compare(); a miss
        is learned (``miss_learns``) and then forgotten again unless ``learn``."""
        local_id = self.local_id(source)
        got = self.table.answer(data, source.remote[0], source.remote[1], local_id,
                                source.transport in MESSAGE_FRAMED, True, count=False)
        if isinstance(got, bytes):
            self.answered += 1
            self.check_answer(data, source, got)
            return got
        if not isinstance(got, int) or got not in DEFERRALS:
            _fail(f"Table.answer returned {got!r}", data)
        if got == MISS and miss_learns:
            outcome = self.engine_sends(data, source)
            before = DISAGREEMENTS.count
            self.fast.learn(outcome, local_id)
            if DISAGREEMENTS.count != before:
                _fail(DISAGREEMENTS.last, data)
            if not learn:
                line = data[: data.find(b"\r\n")] if b"\r\n" in data else b""
                self.table.forget(local_id, line)
        return got

    def check_answer(self, data: bytes, source: Source, got: bytes) -> None:
        outcome = self.engine_sends(data, source)
        if got:
            sends = [s.data for s in outcome.sends]
            if sends != [got]:
                _fail(f"compiled {got[:600]!r} but the engine sent {sends!r} "
                      f"({outcome.note}) from {source.transport}:{source.remote}", data)
            if (outcome.sends[0].remote != source.remote or outcome.note is not None
                    or outcome.rule is None or outcome.transaction is not None):
                _fail(f"compiled an answer the engine gives statefully or elsewhere: "
                      f"{outcome!r}", data)
        elif outcome.note != "ACK absorbed" or outcome.sends:
            _fail(f"compiled absorbed an ACK the engine answers: {outcome.note!r} "
                  f"{[s.data[:200] for s in outcome.sends]!r}", data)


# -- scratch tables: the API with odd arguments -------------------------------------------
CHECK_NAMES = ("duplicate_headers", "cseq_method", "expires", "max_forwards", "require",
               "content_type", "content_encoding", "content_language")
EXPECTED_ERRORS = (ValueError, TypeError, OverflowError)


def scratch_tables() -> list[Any]:
    """Tables with settings the scenario loader would never give: no limits, tiny
    limits, every check off, a 32-octet key, a one-entry table, a table never
    initialised."""
    assert speedups is not None
    table_type = speedups.Table
    out: list[Any] = []
    variants = [
        (b"", (b"application/sdp",), 0, 0, 65535, 0.0, True, True, 4096),
        (b"k" * 32, (b"*/*",), 1, 1, 1, -1.0, False, False, 1),
        (b"\x00" * 7, (), 3, 40, 300, 1.0, True, False, 2),
        (b"key", (b"", b"text/plain", b"APPLICATION/SDP"), 70, 998, 10**9, float("nan"),
         False, True, 0),
        (b"x" * 31, (b"a" * 300,), -1, -1, -1, 1e300, True, True, -5),
    ]
    for key, accept, headers, line, size, amp, checks_on, strict, entries in variants:
        checks = {name: checks_on for name in CHECK_NAMES}
        out.append(table_type(key, accept, headers, line, size, amp, checks, strict,
                              max_entries=entries))
    out.append(table_type.__new__(table_type))  # never initialised
    return out


def mix(data: bytes) -> int:
    """64 well-mixed bits of the input: the choices below (zlib.crc32's low bits follow
    the input's last octets too closely, and most inputs end alike)."""
    return int.from_bytes(hashlib.blake2s(data, digest_size=8).digest(), "little")


def cut(data: bytes, seed: int, k: int) -> bytes:
    """A slice of the input chosen by ``seed``: heads and tails with what the input holds."""
    if not data:
        return b""
    start = (seed >> (k * 3)) % len(data)
    return data[start : start + ((seed >> (k * 5 + 2)) % 200)]


def exercise_api(tables: list[Any], data: bytes) -> None:
    """learn / answer / forget / clear on a scratch table, arguments drawn from the input."""
    seed = mix(data)
    table = tables[seed % len(tables)]
    end = data.find(b"\r\n")
    line = data[:end] if end >= 0 else data[:64]
    local_ids = [1, 0, 0xFFFF, -1, 0x10000, 2**31 - 1, -(2**31)]
    local_id = local_ids[(seed >> 3) % len(local_ids)]
    tallies = [1, 0, 255, 256, -1, 2**31 - 1]
    tally = tallies[(seed >> 6) % len(tallies)]
    head: object = cut(data, seed, 1)
    tail: object = cut(data, seed, 2)
    odd = (seed >> 9) % 8
    if odd == 0:
        head = None
    elif odd == 1:
        tail = "not bytes"
    elif odd == 2:
        head = bytearray(b"SIP/2.0 200 OK\r\n")
    elif odd == 3:
        head, tail = b"SIP/2.0 200 OK\r\n", b"Content-Length: 0\r\n\r\n"
    learned = True
    try:
        table.learn(local_id, line, head, tail, tally)
    except EXPECTED_ERRORS:
        learned = False
    answer_id = local_id if 0 <= local_id <= 0xFFFF else 1
    ips = ["127.0.0.1", "::1", "", "2001:db8::1%eth0", "x" * 300, "1.2.3.4\x00"]
    ip = ips[(seed >> 12) % len(ips)]
    port = [5060, 0, -1, 2**31 - 1, 65536][(seed >> 15) % 5]
    for datagram, ack_ok in ((True, True), (False, False)):
        try:
            got = table.answer(data, ip, port, answer_id, datagram, ack_ok)
        except EXPECTED_ERRORS:
            continue  # an uninitialised table may refuse; never crash
        if isinstance(got, int):
            if got not in DEFERRALS:
                _fail(f"scratch Table.answer returned {got!r}", data)
        elif (got and learned and isinstance(head, bytes) and isinstance(tail, bytes)
              and not (got.startswith(head) and got.endswith(tail))):
            _fail(f"scratch answer {got[:300]!r} is not head + echo + tail", data)
    if (seed >> 22) % 64 == 0:
        reinit(table, seed, data)
    key = cut(data, seed, 3)[:32]
    if speedups.blake2s_tag(key, data) != hashlib.blake2s(data, key=key,
                                                         digest_size=8).digest():
        _fail(f"blake2s_tag differs from hashlib's for key {key!r}", data)
    with contextlib.suppress(*EXPECTED_ERRORS):
        table.forget(local_id, line)
    with contextlib.suppress(*EXPECTED_ERRORS):
        if (seed >> 26) % 8 == 0:
            table.bind({}, [])  # counters with no keys: the tallies wait
        table.deferred()
        if table.size() > 8 or (seed >> 18) % 16 == 0:
            table.clear()


class Untruthful:
    """A check switch whose truth cannot be told."""

    def __bool__(self) -> bool:
        raise RuntimeError("no truth value")


def reinit(table: Any, seed: int, data: bytes) -> None:
    """Table.__init__ again, on a live table, with arguments it must refuse: the error
    is the argument's, and the table still answers afterwards."""
    checks: dict[str, object] = {name: True for name in CHECK_NAMES}
    key = b"k"
    accept: tuple[object, ...] = (b"application/sdp",)
    wrong = (seed >> 28) % 4
    if wrong == 0:
        checks["expires"] = Untruthful()
        expected: type[Exception] = RuntimeError
    elif wrong == 1:
        del checks["require"]
        expected = KeyError
    elif wrong == 2:
        key = b"k" * 33
        expected = ValueError
    else:
        accept = (b"*/*", "text/plain")
        expected = TypeError
    try:
        table.__init__(key, accept, 10, 100, 1000, 0.0, checks, True)
    except expected:
        pass
    except Exception as exc:  # any other error is the finding
        _fail(f"Table.__init__ with a wrong argument raised {exc!r}, not {expected.__name__}",
              data)
    else:
        _fail(f"Table.__init__ took a wrong argument (expected {expected.__name__})", data)
    got = table.answer(data, "127.0.0.1", 5060, 1, True, True)
    if not isinstance(got, (bytes, int)):
        _fail(f"after a refused __init__, answer returned {got!r}", data)


ORACLE: Oracle | None = None
TABLES: list[Any] = []


def oracle() -> Oracle:
    global ORACLE
    if ORACLE is None or len(ORACLE.fast.tallies) > TALLY_HEADROOM:
        ORACLE = Oracle(scenario_named(os.environ.get("SIPRESPONDER_FUZZ_SCENARIO", "")),
                        SOURCES)
    return ORACLE


def check(data: bytes) -> None:
    """Every property of the module docstring for one input; raises on a violation."""
    checker = oracle()
    # Learning a missed line costs an engine run: one source an input learns (the
    # others' misses are only counted), chosen by the input.
    learner = mix(data) % len(checker.sources)
    for n, source in enumerate(checker.sources):
        checker.handle(data, source, learn=False, miss_learns=n == learner)
    check_stream(checker, data)
    if not TABLES:
        TABLES.extend(scratch_tables())
    exercise_api(TABLES, data)


def check_stream(checker: Oracle, data: bytes) -> None:
    """Table.answer_stream on the input as a TCP stream (twice over, so that a
    complete first message is followed by another): what it answers is whole messages
    from the start, each answered as Table.answer answers it alone, in order."""
    source = next((s for s in checker.sources if s.transport == "tcp"), None)
    if source is None:
        return
    local_id = checker.local_id(source)
    stream = data + data
    out, used, count, records = checker.table.answer_stream(
        stream, source.remote[0], source.remote[1], local_id, True, True)
    if not (0 <= used <= len(stream)) or count != len(records):
        _fail(f"answer_stream: used {used} of {len(stream)}, count {count}, "
              f"{len(records)} records", data)
    offset, expected = 0, b""
    for start, length, _tally, response in records:
        if start != offset or length <= 0:
            _fail(f"answer_stream: a record at {start}+{length} after {offset}", data)
        alone = checker.table.answer(stream[start:start + length], source.remote[0],
                                     source.remote[1], local_id, False, True, count=False)
        if alone != (response if response is not None else b""):
            _fail(f"answer_stream answered {response!r}, answer {alone!r}", data)
        expected += response or b""
        offset = start + length
    if out != expected or used != offset:
        _fail("answer_stream: its octets or its length are not its records'", data)


def test_one_input(data: bytes) -> None:
    check(data)


def input_files(paths: list[str]) -> list[Path]:
    """The files named, and those under the folders named (replay's inputs; fuzz_batch's too)."""
    files: list[Path] = []
    for arg in paths:
        path = Path(arg)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def replay(paths: list[str]) -> int:
    files = input_files(paths)
    for path in files:
        check(path.read_bytes())
    print(f"replayed {len(files)} inputs: all properties hold "
          f"({oracle().answered} answered compiled)")
    return 0


def main() -> None:
    quiet_logging()
    print(f"sipresponder._speedups: {getattr(speedups, '__file__', STATUS)}", file=sys.stderr)
    args = sys.argv[1:]
    if atheris is None or (args and all(Path(a).is_file() for a in args)):
        sys.exit(replay(args))
    oracle()  # teach before fuzzing: libFuzzer times the first input otherwise
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
