"""DTMF digits: RFC 4733 telephone-events in RTP (sent and received) and SIP INFO bodies.

Sans-I/O: no clock, no socket. The caller hands in each telephone-event packet's RTP
timestamp, payload and marker bit (the RTP header is parsed elsewhere) and paces the
packets ``sender_packets`` gives it.

RFC 4733 2.3, the payload (4 octets, network order; RFC 2833 3.5 is the same layout)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

E: the end of the event; R: reserved, "MUST be zero" on send and ignored on receipt;
volume: 0 to 63, the power level in -dBm0; duration: in RTP timestamp units since the
event began, which is the packet's RTP timestamp for every packet of one event
(2.5.1.2: "The update packets MUST have the same RTP timestamp value as the initial
packet for the event").

RFC 4733 3.2, the DTMF events (Table 3)::

    0-9 -> 0-9, * -> 10, # -> 11, A-D -> 12-15, Flash -> 16

Receiving (``DigitCollector``): an event is keyed by its RTP timestamp (and code). A
digit is counted once, when its first end packet arrives; the final packet is "sent a
total of three times" (2.5.1.4) and updates repeat, so those never count again, nor do
late copies of the last 16 events. When every end packet was lost the digit is counted
when the next event starts (or at ``flush``, the call's end). Long events (2.5.1.3: a
new segment every 0xFFFF units, new timestamp, no marker, no E bit on the segment's
last packet) stay one digit. Timestamps are only compared for equality, never for
order: SIPp plays the recorded packets of dtmf_2833_N.pcap as they are, so "91" played
from two pcaps goes back in time (67840, then 13280), and "11" repeats a timestamp
(the second play is told apart by its marked first packet).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DIGITS",
    "DigitCollector",
    "Event",
    "code_of",
    "digit_of",
    "digits_from_info",
    "pack_event",
    "parse_event",
    "sender_packets",
]

#: RFC 4733 3.2: event code N is DIGITS[N] for N in 0-15.
DIGITS: Final = "0123456789*#ABCD"
FLASH: Final = 16

_EVENT = struct.Struct("!BBH")
_MAX_DURATION: Final = 0xFFFF
_TIMESTAMP_MASK: Final = 0xFFFFFFFF
# Events remembered to drop late or reordered copies of them (digits are seconds
# apart; a packet arrives within a jitter buffer's span, well inside 16 events).
_RECENT: Final = 16


@dataclass(frozen=True, slots=True)
class Event:
    """One telephone-event payload (RFC 4733 2.3); the R bit is not kept."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF digit ("0"-"9", "*", "#", "A"-"D"), or None for another event."""
        return digit_of(self.event)


def parse_event(payload: bytes) -> Event:
    """The event in a telephone-event payload; ValueError (one line) if it is not one."""
    if len(payload) != _EVENT.size:
        raise ValueError(f"telephone-event payload of {len(payload)} octets, not 4")
    event, flags, duration = _EVENT.unpack(payload)
    return Event(event, bool(flags & 0x80), flags & 0x3F, duration)


def pack_event(event: Event) -> bytes:
    """The 4 octets of ``event`` (R written as zero); ValueError for a field out of range."""
    if not 0 <= event.event <= 255:
        raise ValueError(f"event code {event.event} out of range 0-255")
    if not 0 <= event.volume <= 63:
        raise ValueError(f"event volume {event.volume} out of range 0-63")
    if not 0 <= event.duration <= _MAX_DURATION:
        raise ValueError(f"event duration {event.duration} out of range 0-65535")
    return _EVENT.pack(event.event, (0x80 if event.end else 0) | event.volume, event.duration)


def digit_of(code: int) -> str | None:
    """The DTMF digit of event ``code`` (RFC 4733 3.2), None for any other event."""
    return DIGITS[code] if 0 <= code < len(DIGITS) else None


def code_of(digit: str) -> int:
    """The event code of a DTMF digit ("0"-"9", "*", "#", "A"-"D", any case)."""
    upper = digit.upper()  # one character may upper-case to several ("ß")
    index = DIGITS.find(upper) if len(digit) == 1 and len(upper) == 1 else -1
    if index < 0:
        raise ValueError(f"{digit!r} is not a DTMF digit (0-9, *, #, A-D)")
    return index


class DigitCollector:
    """The digits in one RTP stream's telephone-events (one collector per SSRC).

    ``feed`` returns the digits a packet completed (usually none or one; two when it
    starts a new event behind one whose end packets were all lost and itself carries
    the E bit), and raises ValueError, leaving the collector as it was, for a payload
    that is not an event. ``digits`` keeps the first ``max_digits`` digits (a bounded
    journal under a flood of events); ``dropped`` counts the rest.
    """

    __slots__ = ("_code", "_counted", "_digits", "_duration", "_recent", "_recent_set",
                 "_timestamp", "dropped", "max_digits")

    def __init__(self, max_digits: int = 256) -> None:
        self.max_digits = max_digits
        self.dropped = 0
        self._digits = ""
        self._timestamp: int | None = None  # the current event's key, None before any
        self._code = 0
        self._counted = True
        self._duration = 0  # the longest duration reported for the current event
        self._recent: deque[tuple[int, int]] = deque()
        self._recent_set: set[tuple[int, int]] = set()

    @property
    def digits(self) -> str:
        """Every digit counted so far, in order."""
        return self._digits

    @property
    def pending(self) -> str | None:
        """The digit of the event in progress, not yet ended (nor counted)."""
        return None if self._counted else digit_of(self._code)

    def feed(self, rtp_timestamp: int, payload: bytes, marker: bool) -> str | None:
        """Take one telephone-event packet; the digit(s) it completed, else None."""
        # On the per-packet path: the fields unpacked, no Event built.
        if len(payload) != 4:
            raise ValueError(f"telephone-event payload of {len(payload)} octets, not 4")
        code, flags, duration = _EVENT.unpack(payload)
        end = flags >= 0x80
        timestamp = rtp_timestamp & _TIMESTAMP_MASK
        # A marked packet that does not end an event starts one even where its key was
        # seen: SIPp plays a pcap (dtmf_2833_1.pcap) twice with the same timestamps.
        restart = marker and not end
        if timestamp == self._timestamp and code == self._code \
                and not (restart and self._counted):
            if duration > self._duration:
                self._duration = duration
            if end and not self._counted:
                self._counted = True
                return self._count(code)
            return None
        key = (timestamp, code)
        if key in self._recent_set and not restart:
            return None  # a late copy of an earlier event
        if self._continues(timestamp, code, marker):
            self._timestamp, self._duration = timestamp, duration
            self._remember(key)
            if end:
                self._counted = True
                return self._count(code)
            return None
        out = self.flush()
        self._timestamp, self._code, self._counted = timestamp, code, end
        self._duration = duration
        self._remember(key)
        if end:
            ended = self._count(code)
            if ended is not None:
                out = ended if out is None else out + ended
        return out

    def flush(self) -> str | None:
        """Count the event in progress as ended (all its end packets lost): at the next
        event, or when the stream or call ends."""
        if self._counted:
            return None
        self._counted = True
        return self._count(self._code)

    def _continues(self, timestamp: int, code: int, marker: bool) -> bool:
        # RFC 4733 2.5.1.3: the next segment of a long event starts "with the RTP
        # timestamp set to the time at which the previous segment ended", same event,
        # marker clear, after a segment that reached the maximum duration.
        return (not self._counted and not marker and code == self._code
                and self._timestamp is not None and self._duration == _MAX_DURATION
                and (timestamp - self._timestamp) & _TIMESTAMP_MASK == _MAX_DURATION)

    def _remember(self, key: tuple[int, int]) -> None:
        if key in self._recent_set:
            self._recent.remove(key)  # a replay: remembered from now on
        else:
            self._recent_set.add(key)
        self._recent.append(key)
        if len(self._recent) > _RECENT:
            self._recent_set.discard(self._recent.popleft())

    def _count(self, code: int) -> str | None:
        digit = digit_of(code)
        if digit is None:
            return None
        if len(self._digits) < self.max_digits:
            self._digits += digit
        else:
            self.dropped += 1
        return digit


def sender_packets(digit: str, start_timestamp: int, duration_ms: int = 100,
                   volume: int = 10, packet_ms: int = 50, clock_rate: int = 8000,
                   ) -> list[tuple[int, bool, bytes]]:
    """The telephone-event packets of one digit, as (RTP timestamp, marker, payload).

    RFC 4733 2.5.1: the first packet has the marker bit set; every packet carries the
    event's start timestamp and the duration so far, one ``packet_ms`` more each time;
    the final duration goes out in three packets with the E bit ("The final packet for
    each event and for each segment SHOULD be sent a total of three times at the
    interval used by the source for updates", 2.5.1.4). Send one every ``packet_ms``,
    each with the next sequence number of the stream (retransmissions too). An event longer than
    one duration field (65535 units) is refused rather than split into segments.
    """
    code = code_of(digit)
    if packet_ms <= 0 or duration_ms <= 0 or clock_rate <= 0:
        raise ValueError("duration, packet interval and clock rate must be positive")
    total = duration_ms * clock_rate // 1000
    step = max(1, packet_ms * clock_rate // 1000)
    if total > _MAX_DURATION:
        raise ValueError(f"a {duration_ms} ms event is over 65535 timestamp units at "
                         f"{clock_rate} Hz")
    timestamp = start_timestamp & _TIMESTAMP_MASK
    out: list[tuple[int, bool, bytes]] = []
    so_far = min(step, total)
    while so_far < total:
        out.append((timestamp, not out, pack_event(Event(code, False, volume, so_far))))
        so_far += step
    final = pack_event(Event(code, True, volume, total))
    out += [(timestamp, not out and i == 0, final) for i in range(3)]
    return out


# -- SIP INFO bodies ------------------------------------------------------------------------
_INFO_TYPES: Final = ("application/dtmf-relay", "application/dtmf")


def _signal(value: str) -> str:
    """A Signal / application/dtmf value: a digit, or an event code 0-15 ("11" is #)."""
    value = value.strip()
    if value.isascii() and value.isdigit() and 1 < len(value) <= 3:
        code = int(value)
        if code < len(DIGITS):
            return DIGITS[code]
        raise ValueError(f"DTMF event code {value[:16]!r} is not a digit's (0-15)")
    code_of(value[:16])  # raises for anything else
    return value.upper()


def digits_from_info(content_type: str, body: bytes | str) -> str:
    """The digits of a SIP INFO body: ``application/dtmf-relay`` ("Signal=5\\r\\n
    Duration=160\\r\\n": keys in any case, every Signal line in order) or
    ``application/dtmf`` ("5" or an event code, "11"). ValueError, one line, otherwise.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _INFO_TYPES:
        raise ValueError(f"content type {content_type[:64]!r} is not application/dtmf-relay "
                         "or application/dtmf")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if media_type == "application/dtmf":
        return _signal(text)
    out = []
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and key.strip().lower() == "signal":
            out.append(_signal(value))
    if not out:
        raise ValueError("application/dtmf-relay body without a Signal line")
    return "".join(out)
