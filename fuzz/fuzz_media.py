#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for the media readers: what
anyone who can reach an RTP port may send (sipresponder/media/).

One input is one datagram. Every target below sees every input; each raises
``FuzzFailure`` when its property fails:

* ``parse_rtp`` raises nothing but a one-line ``ValueError``; a packet it reads packs
  back (``RtpPacket.to_bytes``) to the same octets but for the padding's content, and
  reads again as the same packet; its payload decodes as G.711 to two octets a code;
* ``parse_rtcp`` raises nothing but a one-line ``ValueError``; the packets it reads
  pack back (``pack_rtcp``) to octets that read as the same packets;
  ``ReceptionStats`` fed the RR/SR blocks' figures as packets keeps its figures sane.

Adding a target is one function: decorate it with ``@target``.

Run it (fuzz/README.md has the set-up; one core, N seconds):
    mkdir -p fuzz/corpus-media fuzz/artifacts && cp fuzz/seeds-media/* fuzz/corpus-media/
    python fuzz/fuzz_media.py fuzz/corpus-media -max_len=1500 -timeout=10 \
        -max_total_time=N -print_final_stats=1 -artifact_prefix=fuzz/artifacts/
``SIPRESPONDER_FUZZ_MEDIA_TARGET=rtp`` (a target's name) fuzzes only that one. With
file arguments only (or without atheris) it replays them through ``check``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
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
    from sipresponder.media import g711
    from sipresponder.media.rtcp import ReceiverReport, SenderReport, pack_rtcp, parse_rtcp
    from sipresponder.media.rtp import parse_rtp
    from sipresponder.media.stats import ReceptionStats


class FuzzFailure(AssertionError):
    """A property of a media reader does not hold for this input."""


TARGETS: dict[str, Callable[[bytes], None]] = {}


def target(function: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Register ``check_NAME`` as the target NAME."""
    TARGETS[function.__name__.removeprefix("check_")] = function
    return function


def _refusal(error: ValueError, what: str) -> None:
    text = str(error)
    if not text or "\n" in text or "\r" in text:
        raise FuzzFailure(f"{what}'s error is not one line: {text!r}")


@target
def check_rtp(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except ValueError as error:
        _refusal(error, "parse_rtp")
        return
    again = packet.to_bytes()
    kept = len(data) - packet.padding
    if len(again) != len(data) or again[:kept] != data[:kept]:
        raise FuzzFailure(f"parse_rtp then to_bytes changed the packet: {data.hex()} -> "
                          f"{again.hex()}")
    if parse_rtp(again) != packet:
        raise FuzzFailure(f"a repacked packet reads differently: {packet!r}")
    for law in ("PCMU", "PCMA"):
        if len(g711.decode(law, packet.payload)) != 2 * len(packet.payload):
            raise FuzzFailure(f"{law} decoding lost samples")


@target
def check_rtcp(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except ValueError as error:
        _refusal(error, "parse_rtcp")
        return
    if not packets:
        raise FuzzFailure("parse_rtcp read no packet from a datagram and raised nothing")
    try:
        again = parse_rtcp(pack_rtcp(packets))
    except ValueError as error:
        raise FuzzFailure(f"what parse_rtcp read does not pack back: {error}") from None
    if again != packets:
        raise FuzzFailure(f"RTCP packs back differently: {packets!r} -> {again!r}")
    # The report blocks' numbers are as hostile as any: as sequence numbers, timestamps
    # and arrival times they must leave the statistics sane.
    stats = ReceptionStats()
    for packet in packets:
        if isinstance(packet, SenderReport | ReceiverReport):
            for block in packet.reports:
                stats.update(block.highest_sequence, block.jitter, block.last_sr / 65536.0,
                             8000, block.delay_since_last_sr & 0xFFFF)
    report = stats.report_block(1)
    if not (0.0 <= stats.fraction_lost <= 1.0 and stats.jitter >= 0.0
            and 0 <= report.fraction_lost <= 255
            and -0x800000 <= report.cumulative_lost <= 0x7FFFFF):
        raise FuzzFailure(f"reception statistics out of range: {report!r}")


def check(data: bytes) -> None:
    for name in _selected():
        TARGETS[name](data)


def _selected() -> list[str]:
    chosen = os.environ.get("SIPRESPONDER_FUZZ_MEDIA_TARGET")
    if not chosen:
        return list(TARGETS)
    if chosen not in TARGETS:
        raise SystemExit(f"SIPRESPONDER_FUZZ_MEDIA_TARGET={chosen}: not a target "
                         f"(one of {', '.join(TARGETS)})")
    return [chosen]


def test_one_input(data: bytes) -> None:
    check(data)


def replay(paths: list[str]) -> int:
    files = []
    for arg in paths:
        path = Path(arg)
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for path in files:
        check(path.read_bytes())
    print(f"replayed {len(files)} inputs through {', '.join(_selected())}: all properties hold")
    return 0


def main() -> None:
    args = sys.argv[1:]
    if atheris is None or (args and all(Path(a).is_file() for a in args)):
        sys.exit(replay(args))
    _selected()  # a wrong target name stops here, before libFuzzer starts
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
