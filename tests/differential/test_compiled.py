"""The compiled path against the Python engine: it defers, or it sends what the engine sends.

For every input below, the compiled table (``_speedups.Table``, taught by
``uas/fast.py``) is asked first; then the engine handles the same octets. The table's
answer must be exactly the engine's one send (same octets, to the packet's source),
or, for an absorbed ACK, nothing where the engine sends nothing; any other result
must be a deferral. A miss teaches the table from the engine's outcome, as the
server does, so that the next input with that request line is answered compiled.

Inputs: the RFC 4475 / 5118 torture corpus, the fuzz seed corpus, requests generated
from the RFC 3261 grammar (tests/fuzz/test_fuzz.py's strategies) under request lines
the table has learned, their byte-level mutations, and every bundled and example
scenario. ``checked.answered`` guards against the table silently deferring all.

Skipped, with the reason, where the extension is not built (SIPRESPONDER_NO_EXTENSIONS
or no compiler); .ci/run builds it, so CI runs these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipresponder.scenario.loader import load_scenario
from sipresponder.scenario.model import Scenario
from sipresponder.sip.transports import MESSAGE_FRAMED
from sipresponder.uas.compiled import STATUS, speedups
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.fast import MISS
from tests.fuzz.test_fuzz import fuzz_settings, mutated, valid_requests

pytestmark = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml")) + sorted(
    (ROOT / "examples").rglob("*.toml")
)
TORTURE = sorted((ROOT / "tests" / "torture").rglob("*.dat"))
SEEDS = sorted(p for p in (ROOT / "fuzz" / "seeds").iterdir() if p.is_file())
SOURCES = [
    Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1),
    Source("udp", ("::1", 40002), ("::1", 5060), 2),
    Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7),
    Source("ws", ("192.0.2.9", 40003), ("127.0.0.1", 5062), 8),
]
USERS = ["bench", "486", "200", "603", "alice", "302", "180", "485", "busy", "unknown"]
METHODS = ["OPTIONS", "INVITE", "BYE", "MESSAGE", "REGISTER", "ACK", "NOTIFY", "SUBSCRIBE"]


@dataclass
class Checked:
    answered: int = 0
    deferred: int = 0


def clean_request(method: str, user: str, source: Source, n: int) -> bytes:
    """A request as SIPp writes one: what the table learns from."""
    ip, port = source.remote
    host = f"[{ip}]" if ":" in ip else ip
    lip, lport = source.local
    lhost = f"[{lip}]" if ":" in lip else lip
    transport = source.transport.upper()
    return (
        f"{method} sip:{user}@{lhost}:{lport} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK-{n}\r\n"
        f"From: sipp <sip:sipp@{host}:{port}>;tag={n}SIPpTag00{n}\r\n"
        f"To: <sip:{user}@{lhost}:{lport}>\r\n"
        f"Call-ID: {n}-{port}@{host}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:sipp@{host}:{port}>\r\n"
        f"Max-Forwards: 70\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def compare(engine: Engine, data: bytes, source: Source, checked: Checked) -> None:
    """Ask the table, then the engine; the table defers or agrees byte for byte."""
    fast = engine.fast
    assert fast is not None
    local_id = fast.local_id(source)
    assert local_id is not None
    ack_ok = not engine.transactions.table
    got = fast.table.answer(data, source.remote[0], source.remote[1], local_id,
                            source.transport in MESSAGE_FRAMED, ack_ok, count=False)
    outcome = engine.handle(data, source, 1000.0)
    if isinstance(got, bytes):
        checked.answered += 1
        if got:
            assert [s.data for s in outcome.sends] == [got], (data, outcome)
            assert outcome.sends[0].remote == source.remote
            assert outcome.note is None and outcome.rule is not None
            assert outcome.transaction is None
        else:
            assert outcome.note == "ACK absorbed" and outcome.sends == [], (data, outcome)
        return
    checked.deferred += 1
    assert isinstance(got, int)
    if got == MISS:
        fast.learn(outcome, local_id)


def engine_for(scenario: Scenario) -> Engine:
    engine = Engine(scenario)
    assert engine.fast is not None, f"{scenario.path}: the compiled path does not apply"
    return engine


def teach(engine: Engine, source: Source, checked: Checked) -> None:
    for n, method in enumerate(METHODS):
        for user in USERS:
            compare(engine, clean_request(method, user, source, n), source, checked)


@pytest.fixture(autouse=True)
def no_disagreement(caplog: pytest.LogCaptureFixture):
    """FastPath.learn's self-check logs a warning when the compiled answer differs from
    the engine's: here that is a failure, not a fallback."""
    caplog.set_level(logging.WARNING, logger="sipresponder")
    yield
    disagreements = [r for r in caplog.records if "compiled path disagrees" in r.getMessage()]
    assert not disagreements, disagreements[0].getMessage()


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_bundled_scenarios(path: Path) -> None:
    scenario = load_scenario(path)
    engine = Engine(scenario)
    if engine.fast is None:
        pytest.skip(f"{path.name}: rate limit, loop check or Via routing: engine only")
    checked = Checked()
    for source in SOURCES:
        teach(engine, source, checked)
        # The same request lines again, new calls: answered compiled where learned.
        for n, method in enumerate(METHODS):
            for user in USERS:
                compare(engine, clean_request(method, user, source, 100 + n), source, checked)
    assert checked.deferred > 0  # the misses that taught


def test_default_scenario_answers_compiled() -> None:
    """The common requests are answered compiled after one lesson each: OPTIONS, a
    dial-a-code INVITE (486), BYE, an absorbed ACK."""
    engine = engine_for(load_scenario(ROOT / "scenarios" / "default.toml"))
    source = SOURCES[0]
    checked = Checked()
    for method, user in (("OPTIONS", "bench"), ("INVITE", "486"), ("BYE", "bench"),
                         ("ACK", "486")):
        compare(engine, clean_request(method, user, source, 1), source, checked)
        before = checked.answered
        compare(engine, clean_request(method, user, source, 2), source, checked)
        assert checked.answered == before + 1, (method, user)


_ENGINE: dict[str, Engine] = {}


def default_engine() -> Engine:
    """One engine for the generated tests: what it learned stays learned, as in a server."""
    if "default" not in _ENGINE:
        engine = engine_for(load_scenario(ROOT / "scenarios" / "default.toml"))
        checked = Checked()
        for source in SOURCES:
            teach(engine, source, checked)
        _ENGINE["default"] = engine
    return _ENGINE["default"]


TOTAL = Checked()


@pytest.mark.parametrize("path", TORTURE + SEEDS, ids=lambda p: p.name)
def test_corpus(path: Path) -> None:
    data = path.read_bytes()
    engine = default_engine()
    for source in SOURCES:
        for _ in range(2):  # the first may teach; the second is then compared
            compare(engine, data, source, TOTAL)


@st.composite
def under_learned_line(draw: st.DrawFn) -> tuple[bytes, Source]:
    """A generated request whose request line is one the table was taught."""
    gen = draw(valid_requests())
    source = draw(st.sampled_from(SOURCES))
    user = draw(st.sampled_from(USERS))
    lip, lport = source.local
    lhost = f"[{lip}]" if ":" in lip else lip
    method = gen.method if gen.method in METHODS else "OPTIONS"
    line = f"{method} sip:{user}@{lhost}:{lport} SIP/2.0".encode()
    rest = gen.data[gen.data.index(b"\r\n"):]
    if method != gen.method:
        rest = rest.replace(f" {gen.method}\r\n".encode(), f" {method}\r\n".encode(), 1)
    return line + rest, source




@fuzz_settings(400)
@given(under_learned_line())
def test_generated_requests(case: tuple[bytes, Source]) -> None:
    data, source = case
    compare(default_engine(), data, source, TOTAL)


@st.composite
def mutated_under_learned_line(draw: st.DrawFn) -> tuple[bytes, Source]:
    request, source = draw(under_learned_line())
    return draw(mutated(st.just(request))), source


@fuzz_settings(400)
@given(mutated_under_learned_line())
def test_mutated_requests(case: tuple[bytes, Source]) -> None:
    data, source = case
    compare(default_engine(), data, source, TOTAL)


def test_generated_requests_were_answered_compiled() -> None:
    """Runs after the generated tests (file order): some of them took the compiled path."""
    if TOTAL.answered + TOTAL.deferred == 0:
        pytest.skip("the generated tests did not run")
    assert TOTAL.answered > 0, TOTAL
