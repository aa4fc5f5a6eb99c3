#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris / libFuzzer) for RFC 4733 DTMF reading.

Anyone who reaches a call's RTP port can send telephone-events, and anyone who can send
an INFO picks its body. One input is a stream of telephone-event packets (``decode``)
and, whole, a SIP INFO body. ``check`` fails (raises FuzzFailure) when any of these
does not hold:

* ``DigitCollector.feed`` raises nothing but ValueError, and that only for a payload
  that is not 4 octets, leaving ``digits`` as it was;
* what ``feed`` returns is None or one or two digits of "0123456789*#ABCD", and
  ``digits`` is exactly those, in order, up to ``max_digits`` (``dropped`` the rest);
* no more digits are counted than events started (a packet whose key, RTP timestamp
  and code, differs from the packet before it, or a marked packet that is not an end):
  retransmitted end packets never count twice;
* ``parse_event`` / ``pack_event`` round-trip every 4-octet payload (R bit cleared);
* ``sender_packets`` of digits taken from the input reads back as those digits;
* ``digits_from_info`` on the input, for both content types, raises nothing but
  ValueError and returns only digits.

Run it (see fuzz/README.md):  python fuzz/fuzz_dtmf.py fuzz/corpus-dtmf -max_len=512
Without atheris, or with file arguments only, ``python fuzz/fuzz_dtmf.py FILE...``
replays those inputs through ``check`` and exits non-zero on the first failure.
"""

from __future__ import annotations

import contextlib
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
    from sipresponder.media.dtmf import (
        DIGITS,
        DigitCollector,
        digits_from_info,
        pack_event,
        parse_event,
        sender_packets,
    )

MAX_DIGITS = 6  # small, so that the bound is reached too
Packet = tuple[int, bool, bytes]


class FuzzFailure(AssertionError):
    """A property the target checks does not hold."""


def _fail(why: str, data: bytes) -> None:
    raise FuzzFailure(f"{why}; input {data[:300]!r}")


def decode(data: bytes) -> list[Packet]:
    """Packets from octets. Each record is a flags octet, then the timestamp's octets,
    then the payload: flags bit 0 is the marker; bits 4-5 say how the timestamp comes
    (0: the previous one again, 1: previous + 2 octets, 2: 4 octets, 3: previous - 2
    octets, all modulo 2**32); bit 7 set: a 4-octet payload, else bits 1-3 its length
    (0-7), so the short and long garbage is reachable too."""
    out: list[Packet] = []
    at, timestamp = 0, 0
    while at < len(data):
        flags = data[at]
        at += 1
        mode = (flags >> 4) & 3
        if mode in (1, 3):
            delta = int.from_bytes(data[at : at + 2], "big")
            timestamp = (timestamp + (delta if mode == 1 else -delta)) & 0xFFFFFFFF
            at += 2
        elif mode == 2:
            timestamp = int.from_bytes(data[at : at + 4], "big")
            at += 4
        length = 4 if flags & 0x80 else (flags >> 1) & 7
        out.append((timestamp, bool(flags & 1), data[at : at + length]))
        at += length
    return out


def encode(packets: list[Packet]) -> bytes:
    """The input ``decode`` reads back as ``packets`` (4-octet payloads absolute)."""
    out = bytearray()
    for timestamp, marker, payload in packets:
        if len(payload) == 4:
            out.append(0x80 | 0x20 | int(marker))
        else:
            out.append(0x20 | (len(payload) & 7) << 1 | int(marker))
        out += timestamp.to_bytes(4, "big") + payload[:7]
    return bytes(out)


def seed_inputs() -> dict[str, bytes]:
    """Starting points: digits as RFC 4733 senders send them, a lost end, a wrap."""
    def event(digit: str, timestamp: int) -> list[Packet]:
        return sender_packets(digit, timestamp, duration_ms=120, packet_ms=40)

    return {
        "one-digit": encode(event("5", 1000)),
        "ivr-1234#": encode([p for i, d in enumerate("1234#") for p in event(d, i * 4000)]),
        "lost-end": encode(event("7", 0)[:2] + event("7", 4000)),
        "wrap": encode(event("*", 0xFFFFFF00) + event("D", 0x80)),
        "garbage": encode([(1, True, b"\x05"), (1, False, b"\x05\x8a\x00\xa0\x00")]),
        "info-relay": b"Signal=5\r\nDuration=160\r\n",
    }


def check_collector(packets: list[Packet], data: bytes) -> None:
    collector = DigitCollector(max_digits=MAX_DIGITS)
    returned = ""
    starts = 0
    previous: tuple[int, int] | None = None
    for timestamp, marker, payload in packets:
        before = collector.digits
        try:
            got = collector.feed(timestamp, payload, marker)
        except ValueError as exc:
            if len(payload) == 4 or "\n" in str(exc):
                _fail(f"ValueError {exc!r} for payload {payload!r}", data)
            if collector.digits != before:
                _fail("a refused packet changed the digits", data)
            continue
        except Exception as exc:
            raise FuzzFailure(f"feed raised {exc!r}; input {data[:300]!r}") from exc
        event = parse_event(payload)
        key = (timestamp, event.event)
        if key != previous or (marker and not event.end):
            starts += 1
        previous = key
        if got is not None:
            if not 1 <= len(got) <= 2 or set(got) - set(DIGITS):
                _fail(f"feed returned {got!r}", data)
            returned += got
        if len(returned) > starts:
            _fail(f"{len(returned)} digits from {starts} event starts", data)
    returned += collector.flush() or ""
    if collector.digits != returned[:MAX_DIGITS] or \
            collector.dropped != len(returned) - len(collector.digits):
        _fail(f"digits {collector.digits!r} (dropped {collector.dropped}) for the returned "
              f"{returned!r}", data)


def check(data: bytes) -> None:
    """Every property of the module docstring for one input; raises on a violation."""
    packets = decode(data)
    check_collector(packets, data)

    for _, _, payload in packets:
        if len(payload) == 4:
            event = parse_event(payload)
            if pack_event(event) != payload[:1] + bytes([payload[1] & 0xBF]) + payload[2:]:
                _fail(f"parse/pack of {payload!r} gives {pack_event(event)!r}", data)

    digits = "".join(DIGITS[b & 15] for b in data[:8])
    collector = DigitCollector()
    timestamp = int.from_bytes(data[-4:], "big") if len(data) >= 4 else 0
    for index, digit in enumerate(digits):
        for ts, marker, payload in sender_packets(digit, timestamp, 40 + data[index] % 200):
            collector.feed(ts, payload, marker)
        timestamp += 8000
    if collector.digits != digits:
        _fail(f"sent {digits!r}, read back {collector.digits!r}", data)

    for content_type in ("application/dtmf-relay", "application/dtmf"):
        try:
            got = digits_from_info(content_type, data)
        except ValueError:
            continue
        except Exception as exc:
            raise FuzzFailure(f"digits_from_info raised {exc!r}; input {data[:300]!r}") \
                from exc
        if not got or set(got) - set(DIGITS):
            _fail(f"digits_from_info({content_type}) gave {got!r}", data)


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
    args = sys.argv[1:]
    if atheris is None or (args and all(Path(a).is_file() for a in args)):
        sys.exit(replay(args))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
