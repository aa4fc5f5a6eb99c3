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
or no compiler), except with CI=true, where .ci/run builds it: there a missing build is
an error, not a skip.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipresponder.scenario.loader import load_scenario
from sipresponder.scenario.model import Scenario
from sipresponder.sip.transports import MESSAGE_FRAMED
from sipresponder.uas.compiled import NO_EXTENSIONS, STATUS, speedups
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.fast import MISS
from tests.fuzz.test_fuzz import fuzz_settings, mutated, valid_requests

if (speedups is None and os.environ.get("CI") == "true"
        and os.environ.get(NO_EXTENSIONS, "") in ("", "0")):
    # .ci/run installs the compiler and headers: a build that fell back to pure Python
    # there must not pass as a skip.
    raise RuntimeError(f"CI=true but the compiled path is not built: {STATUS}")
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
    # The reference must hold too: the generators here found an engine crash once
    # (plan.bindings on a Contact's ";expires=\xb2").
    assert engine.counters["internal_errors"] == 0, data
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


tokens = st.text(st.sampled_from("abcXYZ0129-._!%*+`'~"), min_size=1, max_size=8)


def usually(draw: st.DrawFn, plain: str, odd: list[str]) -> str:
    """``plain`` eleven times in twelve, else one of ``odd``: most requests stay ones the
    compiled path answers, each oddity still comes up often."""
    return plain if draw(st.integers(0, 11)) else draw(st.sampled_from(odd))


@st.composite
def name_addr(draw: st.DrawFn, user: str, host: str, tag: bool) -> str:
    uri = f"sip:{user}@{host}" + usually(draw, "", [";transport=udp", ";lr", "?subject=x",
                                                   ";x=[::1]", "%41"])
    display = usually(draw, "sipp ", ["", "Alice Smith ", '"A \\"q\\", b" ', '"" '])
    bracketed = bool(display) or "?" in uri or draw(st.booleans())
    text = f"{display}<{uri}>" if bracketed else uri
    if tag:
        text += usually(draw, ";tag=", [";TAG=", ";tag = ", ";x=1;tag="]) + draw(tokens)
    else:
        text += usually(draw, "", [";tag", ";x", ";x=1", ";;", "; tag=", ";tag=a;tag=b"])
    return text


@st.composite
def via(draw: st.DrawFn, source: Source) -> str:
    ip, port = source.remote
    own = f"[{ip}]" if ":" in ip else ip
    host = usually(draw, own, ["host.example.com", "192.0.2.33", "[2001:db8::1]", "[::1]",
                               ip.upper()])
    transport = usually(draw, source.transport.upper(), ["udp", "TLS", "SCTP"])
    value = f"SIP/2.0/{transport} {host}" + usually(draw, f":{port}",
                                                    ["", " : 5060", ":99999", ":0"])
    params = [f"branch={usually(draw, 'z9hG4bK-', ['z9hG4bK', 'x'])}{draw(tokens)}"]
    params += draw(st.lists(st.sampled_from(
        ["rport", "rport=1234", "received=192.0.2.1", "ttl=1", "x", "X=Y", "RPORT",
         "received=[::1]", "branch=second", "maddr=224.0.0.1"]), max_size=2))
    draw(st.randoms()).shuffle(params)
    seps = [usually(draw, ";", [" ;", "; ", ";\t"]) for _ in params]
    return value + "".join(sep + p for sep, p in zip(seps, params, strict=True))


@st.composite
def plain_request(draw: st.DrawFn) -> tuple[bytes, Source]:
    """A request like the ones real clients send, varied where the compiled path must
    read it right: Via (received, rport, IPv6, several values), From/To forms and tags,
    CSeq spacing, compact and odd-case names, optional fields, bodies."""
    source = draw(st.sampled_from(SOURCES))
    method = draw(st.sampled_from(METHODS))
    user = draw(st.sampled_from(USERS))
    lip, lport = source.local
    lhost = f"[{lip}]" if ":" in lip else lip
    vias = draw(st.lists(via(source), min_size=1, max_size=3))
    rows: list[tuple[str, str]] = []
    i = 0
    while i < len(vias):
        n = draw(st.integers(1, len(vias) - i))
        rows.append((usually(draw, "Via", ["v", "VIA", "via"]),
                     usually(draw, ", ", [",", " ,\t"]).join(vias[i : i + n])))
        i += n
    number = usually(draw, "", ["0", "00"]) + str(draw(st.integers(0, 2**31)))
    cseq_method = usually(draw, method, METHODS)
    rows += [
        (usually(draw, "From", ["f", "FROM"]),
         draw(name_addr("sipp", usually(draw, "127.0.0.1:5061", ["[::1]:5061", "[2001:db8::]",
                                                               "[::ffff:1.2.3.4]", "[1::2::3]",
                                                               "a-", "-a", "host_1."]), tag=usually(draw, "y", ["y", ""]) == "y"))),
        (usually(draw, "To", ["t", "tO"]),
         draw(name_addr(user, f"{lhost}:{lport}", tag=usually(draw, "", ["y"]) == "y"))),
        (usually(draw, "Call-ID", ["i", "call-id"]), f"{draw(tokens)}@{draw(tokens)}"),
        ("CSeq", f"{number}{usually(draw, ' ', ['  ', chr(9)])}{cseq_method}"),
    ]
    for name, values in (("Max-Forwards", ["70", "0", "00", "1"]),
                         ("Expires", ["3600", "0", "x", "\xb2"]),
                         ("Contact", ["<sip:sipp@127.0.0.1:5061>", "*", '"x" <sip:a@b>',
                                      "<sip:a@b", "sip:a@b;expires=60"]),
                         ("Require", ["timer"]), ("Supported", ["100rel, timer"]),
                         ("Accept", ["application/sdp", "text/plain;q=0"]),
                         ("User-Agent", ["softphone/1.0"]), ("Subject", ["Performance Test"]),
                         ("Max-Forwards", ["69"]), ("Route", ["<sip:proxy;lr>"])):
        if draw(st.integers(0, 9)) == 0:
            rows.append((name, draw(st.sampled_from(values))))
    if method == "REGISTER":  # the bindings a registrar's 200 lists
        contacts = ["<sip:sipp@127.0.0.1:5061;transport=udp>", "<sip:a@b>;expires=60",
                    "sip:a@b;expires=0", "sip:c@d;q=0.5;expires=x", "<sip:e@f>;expires",
                    '"Bob" <sip:bob@h>;expires=99999999999', "*", "<sip:g@h>, <sip:i@j>",
                    "sip:k@l;expires=1;expires=2", "<sip:m@[::1]>", "sip:n@o", "<sip:p@q,r>",
                    "<sip:s@t>;expires=\xb2", "\xa0<sip:u@v>", "<sip:w@x>;expires=5\xa0"]
        for _ in range(draw(st.integers(0, 3))):
            rows.append((usually(draw, "Contact", ["m"]),
                         ", ".join(draw(st.lists(st.sampled_from(contacts), min_size=1,
                                                 max_size=3)))))
        if draw(st.booleans()):
            rows.append(("Expires", usually(draw, "3600", ["0", "7200", "99999999999"])))
    body = b""
    if draw(st.integers(0, 3)) == 0:
        body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        rows.append((usually(draw, "Content-Type", ["c"]),
                     usually(draw, "application/sdp",
                             ["Application/SDP; x=1", "image/png", "text/plain"])))
        if draw(st.integers(0, 9)) == 0:
            rows.append(("Content-Encoding", "gzip"))
    length = usually(draw, "exact", ["none", "zeros", "short", "long"])
    if length == "exact":
        rows.append((usually(draw, "Content-Length", ["l"]), str(len(body))))
    elif length == "zeros":
        rows.append(("Content-Length", "00" + str(len(body))))
    elif length == "short" and body:
        rows.append(("Content-Length", str(len(body) - 1)))
    elif length == "long":
        rows.append(("Content-Length", str(len(body) + 5)))
    vias_first = [r for r in rows if r[0].lower() in ("via", "v")]
    others = [r for r in rows if r[0].lower() not in ("via", "v")]
    draw(st.randoms()).shuffle(others)
    at = draw(st.integers(0, len(others)))
    rows = others[:at] + vias_first + others[at:]
    colon = usually(draw, ": ", [":", ":  ", ": \t"])
    head = f"{method} sip:{user}@{lhost}:{lport} SIP/2.0\r\n" + "".join(
        f"{name}{colon}{value}\r\n" for name, value in rows)
    return head.encode("latin-1") + b"\r\n" + body, source


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




@pytest.mark.timeout(300)  # a loaded CI machine: hypothesis' examples, not a hang
@fuzz_settings(400)
@given(under_learned_line())
def test_generated_requests(case: tuple[bytes, Source]) -> None:
    data, source = case
    compare(default_engine(), data, source, TOTAL)


PLAIN = Checked()


@pytest.mark.timeout(300)
@fuzz_settings(600)
@given(plain_request())
def test_plain_requests(case: tuple[bytes, Source]) -> None:
    data, source = case
    compare(default_engine(), data, source, PLAIN)


def test_plain_requests_were_mostly_answered_compiled() -> None:
    """Runs after test_plain_requests: a good share took the compiled path (so that the
    comparisons above compared something)."""
    if PLAIN.answered + PLAIN.deferred == 0:
        pytest.skip("test_plain_requests did not run")
    assert PLAIN.answered * 10 >= PLAIN.answered + PLAIN.deferred, PLAIN


@st.composite
def mutated_under_learned_line(draw: st.DrawFn) -> tuple[bytes, Source]:
    request, source = draw(under_learned_line())
    return draw(mutated(st.just(request))), source


@pytest.mark.timeout(300)
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


STREAM = Checked()


@pytest.mark.timeout(300)
@fuzz_settings(100)
@given(st.lists(plain_request(), min_size=1, max_size=4), st.booleans())
def test_streams(cases: list[tuple[bytes, Source]], pings: bool) -> None:
    """answer_stream against StreamFramer + the engine: the messages it answers at the
    start of a TCP stream are the framer's first ones, answered as the engine does."""
    from sipresponder.sip.framing import Message, StreamFramer

    engine = default_engine()
    fast = engine.fast
    assert fast is not None
    source = SOURCES[2]
    local_id = fast.local_id(source)
    data = (b"\r\n\r\n" if pings else b"").join(c[0] for c in cases)
    for message in (c[0] for c in cases):  # teach each request line first
        compare(engine, message, source, Checked())
    out, used, count, records = fast.table.answer_stream(
        data, source.remote[0], source.remote[1], local_id, not engine.transactions.table, True)
    frames = StreamFramer(engine.scenario.settings.max_message_size).feed(data)
    messages = [f.data for f in frames if isinstance(f, Message)]
    assert len(records) == count <= len(messages)
    expected = b""
    offset = 0
    for (start, length, _, response), message in zip(records, messages, strict=False):
        assert data[start:start + length] == message and start == offset
        offset = start + length
        sends = engine.handle(message, source, 1000.0).sends
        assert [s.data for s in sends] == ([response] if response is not None else [])
        expected += response or b""
    assert out == expected and used == offset
    STREAM.answered += count
    STREAM.deferred += len(messages) - count


def test_regression_contact_after_a_no_break_space() -> None:
    """fuzz_speedups.py found it: a Contact value starting with NBSP (0xA0), which
    plan.bindings' value.strip() removes and WSP stripping does not; the compiled code
    wrote half a Contact line. It defers such a value now."""
    engine = default_engine()
    source = SOURCES[0]
    checked = Checked()
    base = clean_request("REGISTER", "alice", source, 7)
    for data in (base, base.replace(b"Contact: <", b"Contact:\xa0<")):
        compare(engine, data, source, checked)
        compare(engine, data, source, checked)
    assert checked.answered >= 1
