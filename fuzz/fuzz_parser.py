#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the SIP parser and the engine.

One input is the octets of whatever a peer could send: a UDP datagram, or a TCP byte
stream (possibly several messages, keep-alives and garbage). ``check`` fails (raises)
when any of these does not hold:

* ``parse_request`` (datagram and stream framing, default and tight limits) raises
  nothing but ``NotARequest``; the parsed views of a Request raise nothing but
  ``ValueError`` (``KeyError`` only when the header field is absent);
* ``Engine.handle`` never counts an internal error, over UDP and over TCP; the timers
  it leaves behind fire without raising; ``handle_framing_error`` never raises;
* every response sent parses with ``tests/sipclient.parse_response`` (an independent
  parser), has no bare CR or LF in its header section, is never sent for ACK, and
  copies the From, Call-ID, CSeq, To (plus a tag) and Via values the parser read;
* ``StreamFramer`` never raises and never holds more than ``max_message_size`` octets,
  and cuts the stream the same way whether it arrives at once or in pieces.

Run it (see fuzz/README.md):  python fuzz/fuzz_parser.py fuzz/corpus -dict=fuzz/sip.dict
Without atheris, or with file arguments only, ``python fuzz/fuzz_parser.py FILE...``
replays those inputs through ``check`` and exits non-zero on the first failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import atheris
except ImportError:  # replay mode needs no atheris
    atheris = None

# Coverage instrumentation only when fuzzing: tests import this module for ``check``.
_instrument = atheris is not None and __name__ == "__main__"
with (atheris.instrument_imports(include=["sipresponder"]) if _instrument
      else contextlib.nullcontext()):
    from sipresponder.scenario.loader import load_scenario, parse_scenario
    from sipresponder.scenario.model import Scenario
    from sipresponder.sip.fastpath import parse_name_addr, parse_via
    from sipresponder.sip.framing import FramingError, Message, Ping, StreamFramer
    from sipresponder.sip.message import NotARequest, Request, parse_request
    from sipresponder.sip.response import one_line
    from sipresponder.uas.engine import Engine
    from sipresponder.uas.events import Send, Source

from tests.sipclient import parse_response  # noqa: E402 - after the path set-up

DEFAULT_SCENARIO = ROOT / "scenarios" / "default.toml"
# The default scenario with every check on and tight limits: 513 (header section,
# message size, header count, line length), 400, 503 (rate limit), 482, 483, 415 for
# Content-Language, Via routing and the UDP amplification cap all come within reach.
TIGHT_SETTINGS = """[settings]
max_message_size = 700
max_headers = 9
max_line_length = 90
rate_limit = 1.0
rate_burst = 2
rate_limit_action = "503"
response_routing = "via"
max_amplification = 2.0
checks = { max_forwards = true, loop = true, content_language = true }
"""


def tight_scenario() -> Scenario:
    text = DEFAULT_SCENARIO.read_text(encoding="utf-8")
    assert "[settings]\n" in text
    return parse_scenario(text.replace("[settings]\n", TIGHT_SETTINGS, 1), "default-tight")


def scenario_named(name: str) -> Scenario:
    """SIPRESPONDER_FUZZ_SCENARIO: a scenario file, or "tight"; the default one if unset."""
    return tight_scenario() if name == "tight" else load_scenario(name or DEFAULT_SCENARIO)


SCENARIO = scenario_named(os.environ.get("SIPRESPONDER_FUZZ_SCENARIO", ""))
UDP = Source("udp", ("192.0.2.7", 40000), ("127.0.0.1", 5060), 1)
TCP = Source("tcp", ("2001:db8::7", 40001), ("::1", 5060), 7)
NOW = 1000.0


class FuzzFailure(AssertionError):
    """A property the target checks does not hold."""


def _fail(why: str, data: bytes) -> None:
    raise FuzzFailure(f"{why}; input {data[:300]!r}")


def exercise(request: Request) -> None:
    """Touch every parsed view: each may raise ValueError, and KeyError only when the
    header field it reads is absent."""
    views = [
        (None, lambda: request.uri),
        (None, request.top_via),
        (None, request.top_via_lenient),
        (None, lambda: [parse_via(v) for v in request.via_values]),
        (None, lambda: [parse_via(v, lenient=True) for v in request.via_values]),
        ("from", lambda: request.from_),
        ("to", lambda: request.to),
        ("cseq", lambda: request.cseq),
        ("call-id", lambda: request.call_id),
        (None, lambda: [parse_name_addr(v) for v in request.values("contact") if v != "*"]),
        (None, lambda: request.values("require")),
        (None, lambda: request.values("accept")),
    ]
    for field, view in views:
        try:
            view()
        except ValueError:
            pass
        except KeyError:
            if field is None or field in request.fields:
                raise


def check_sends(sends: list[Send], data: bytes) -> None:
    for send in sends:
        if not send.data:
            continue
        try:
            resp = parse_response(send.data)
        except AssertionError as exc:
            raise FuzzFailure(f"unparseable response {send.data[:400]!r}: {exc}") from exc
        head = send.data[: send.data.index(b"\r\n\r\n")]
        if b"\r" in head.replace(b"\r\n", b"") or b"\n" in head.replace(b"\r\n", b""):
            _fail(f"bare CR or LF in the response header section {head[:400]!r}", data)
        if resp.code < 100 or resp.code > 699:
            _fail(f"status code {resp.code}", data)


def check_echo(sends: list[Send], data: bytes, datagram: bool, scenario: Scenario) -> None:
    """The responses to one message copy what the parser read in it (RFC 3261 8.2.6.2):
    From, Call-ID, CSeq as they came, To as it came or plus a tag, every Via value."""
    sends = [s for s in sends if s.data]
    if not sends:
        return
    settings = scenario.settings
    request = parse_request(data, datagram=datagram, max_headers=settings.max_headers,
                            max_line_length=settings.max_line_length)
    fields = request.fields
    for send in sends:
        resp = parse_response(send.data)
        for name in ("From", "Call-ID", "CSeq"):
            rows = fields.get(name.lower())
            if resp.all(name) != ([one_line(rows[0])] if rows else []):
                _fail(f"{name} not echoed: {resp.all(name)!r} for {rows!r}", data)
        to = [one_line(row) for row in fields.get("to", [])[:1]]
        resp_to = resp.all("To")
        if len(resp_to) != len(to) or (to and resp_to[0] != to[0]
                                       and not resp_to[0].startswith(to[0] + ";tag=")):
            _fail(f"To not echoed: {resp_to!r} for {to!r}", data)
        vias = [one_line(v) for v in request.via_values]
        resp_vias = resp.all("Via")
        if len(resp_vias) != len(vias) or resp_vias[1:] != vias[1:]:
            _fail(f"Via not echoed: {resp_vias!r} for {vias!r}", data)


def run_engine(engine: Engine, data: bytes, source: Source) -> list[Send]:
    before = engine.counters["internal_errors"]
    sends = engine.handle(data, source, NOW).sends
    if engine.counters["internal_errors"] != before:
        # Re-run without the safety net to get the traceback of the real exception.
        Engine(engine.scenario)._handle(data, source, NOW)
        _fail("Engine.handle counted an internal error", data)
    return sends


def drain_timers(engine: Engine) -> list[Send]:
    """Fire every timer the engine left behind (provisional steps, retransmits, expiry)."""
    out: list[Send] = []
    now = NOW
    for _ in range(64):
        deadline = engine.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        out += engine.fire(now)
    return out


def frames_of(data: bytes, chunks: list[int], limit: int) -> list:
    """The frames of ``data`` fed in pieces of the given sizes (cycled; 0 counts as 1)."""
    framer = StreamFramer(limit)
    frames: list = []
    i = n = 0
    while i < len(data) and not (frames and isinstance(frames[-1], FramingError)):
        size = max(1, chunks[n % len(chunks)])
        frames += framer.feed(data[i : i + size])
        if framer.pending > limit:
            _fail(f"framer holds {framer.pending} octets", data)
        i += size
        n += 1
    return frames


def summary(frames: list) -> list:
    """Comparable frames: the message octets, "ping", or the framing error's code."""
    out: list = []
    for frame in frames:
        if isinstance(frame, Message):
            out.append(frame.data)
        elif isinstance(frame, Ping):
            out.append("ping")
        else:
            out.append(("error", frame.code))
    return out


def check(data: bytes, chunks: list[int] | None = None, scenario: Scenario = SCENARIO) -> None:
    """Every property of the module docstring for one input; raises on a violation.

    ``chunks``: the segment sizes the TCP stream arrives in (default: derived from
    the input, one octet at a time for short ones); ``scenario``: the default one unless
    given.
    """
    # 1. The parser on its own.
    for datagram in (True, False):
        for limits in ((0, 0), (4, 32)):
            try:
                request = parse_request(data, datagram=datagram, max_headers=limits[0],
                                        max_line_length=limits[1])
            except NotARequest:
                continue
            exercise(request)

    # 2. One UDP datagram.
    engine = Engine(scenario)
    sends = run_engine(engine, data, UDP)
    sends += drain_timers(engine)
    check_sends(sends, data)
    check_echo(sends, data, datagram=True, scenario=scenario)
    if data.startswith(b"ACK ") and any(s.data for s in sends):
        _fail("an ACK was answered", data)

    # 3. A TCP stream, at once and in pieces: the same frames, the same answers.
    limit = scenario.settings.max_message_size
    whole = frames_of(data, [max(len(data), 1)], limit)
    if chunks is None:
        chunks = [1] if len(data) <= 256 else [1 + len(data) % 61, 1, 7]
    pieces = frames_of(data, chunks, limit)
    if summary(whole) != summary(pieces):
        _fail(f"framing depends on segmentation: {summary(whole)!r} != {summary(pieces)!r}",
              data)
    engine = Engine(scenario)
    sends = []
    for frame in whole:
        if isinstance(frame, Message):
            fresh = not engine.transactions  # else a reply may be a CANCELled INVITE's 487
            replies = run_engine(engine, frame.data, TCP)
            check_sends(replies, data)
            if fresh:
                check_echo(replies, frame.data, datagram=False, scenario=scenario)
            sends += replies
        elif isinstance(frame, FramingError):
            sends += engine.handle_framing_error(frame.head, frame.code, frame.reason, TCP)
    sends += drain_timers(engine)
    check_sends(sends, data)


def test_one_input(data: bytes) -> None:
    check(data)


def replay(paths: list[str]) -> int:
    files = []
    for arg in paths:
        path = Path(arg)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        check(path.read_bytes())
    print(f"replayed {len(files)} inputs: all properties hold")
    return 0


def main() -> None:
    logging.disable(logging.CRITICAL)  # the engine logs every drop; keep libFuzzer's output
    args = sys.argv[1:]
    if atheris is None or (args and all(Path(a).is_file() for a in args)):
        sys.exit(replay(args))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
