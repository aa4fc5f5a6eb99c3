"""One call's RTP stream, sans-I/O: what arrives is counted, decoded for DTMF and
perhaps echoed; what the call plays (a tone, a file's audio, silence) leaves one frame
every 20 ms; the numbers end up in the call's journal entry (``summary``).

Nothing here reads a clock or a socket (the adapter passes ``now`` in, asks
``next_deadline()`` and calls ``fire(now)``, then writes the datagrams it gets back),
so every behaviour is tested with a fake clock (tests/unit/call/test_media.py).

The rules it follows:

- RFC 3550 5.1: our stream has its own random SSRC, a sequence number starting at a
  random value and counting up by one a packet, and a timestamp starting at a random
  value and counting up by 160 a 20 ms frame of 8 kHz audio; the first packet has the
  marker bit (RFC 3551 4.1: the first packet of a talkspurt).
- Echo rewrites what arrives as our own stream ("send back what arrives, rewritten as
  our own stream", issue 21): our SSRC and sequence, and a timestamp that keeps the
  spacing of theirs.
- Symmetric RTP (RFC 4961): the stream starts towards the offer's address and latches
  to the source of the first packet that parses as RTP; later packets from anyone
  else are counted (``foreign``) and otherwise ignored.
- RFC 4733: events of the negotiated telephone-event payload type are decoded into
  digits (media/dtmf.py DigitCollector), never echoed; digits we send go out as
  events in place of the audio frames of their time, each on the stream's next
  sequence number.
- Everything that arrives is untrusted: a datagram that is not RTP is counted
  (``malformed``) and dropped; nothing here grows with what arrives but counters and
  the collector's bounded digits.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..media import g711
from ..media.dtmf import DigitCollector, sender_packets
from ..media.rtp import is_rtcp, pack_rtp, parse_rtp
from ..media.stats import ReceptionStats
from ..media.tones import ToneSource

Mode = Literal["echo", "tone", "file", "silence", "none"]
MODES: tuple[Mode, ...] = ("echo", "tone", "file", "silence", "none")
Address = tuple[str, int]
RATE = 8000
FRAME = 0.020  # seconds of audio a packet (RFC 3551 4.5: G.711's default ptime)
SAMPLES = 160  # 8 kHz * 20 ms: the timestamp step of a frame
# A late wake-up sends at most this many frames at once: after a stall the stream
# resumes at the right timestamp instead of bursting seconds of audio.
MAX_CATCH_UP = 5
MAX_DIGITS = 256  # the digits a call keeps (a flood of events must not grow the journal)


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """What a rule's ``media`` says: the mode, its tone's frequencies (a dual tone
    with two), its file's audio (8 kHz 16-bit mono PCM, looped), the digits to send
    ``dtmf_after`` seconds after the stream starts, and ``stop_after``: seconds after
    which nothing more is sent (an RTP timeout for the client to detect), and the
    media faults below."""

    mode: Mode = "echo"
    tone: tuple[float, ...] = (1000.0,)
    pcm: bytes = b""
    send_dtmf: str = ""
    dtmf_after: float = 1.0
    stop_after: float | None = None
    # Media faults: our audio packets under another payload type than the one agreed;
    # a share of our packets lost and a delay of up to ``jitter`` seconds each (drawn
    # from the engine's seeded generator); nothing sent for ``start_after`` seconds.
    payload_type: int | None = None
    loss: float = 0.0
    jitter: float = 0.0
    start_after: float = 0.0


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the offer and our answer agreed: the codec ("PCMU" or "PCMA") and its
    payload type, telephone-event's payload type (None: not offered), and the
    address the offer's c= and m= lines name (None: none usable, e.g. port 0)."""

    codec: str
    payload_type: int
    event_type: int | None
    remote: Address | None


class MediaSession:
    """The stream of one call (see the module's docstring)."""

    def __init__(self, plan: MediaPlan, negotiated: Negotiated, now: float,
                 rng: random.Random | None = None) -> None:
        ids = rng or random.SystemRandom()
        self._random = ids  # the faults' draws: seeded when the engine's generator is
        self.plan = plan
        self.negotiated = negotiated
        self.remote = negotiated.remote
        self.latched = False
        self.ssrc = ids.getrandbits(32)
        self._sequence = ids.getrandbits(16)
        self._timestamp = ids.getrandbits(32)
        self._marker = True
        self.started = now
        self.received = ReceptionStats()
        self.collector = DigitCollector()
        self.sent_packets = 0
        self.sent_octets = 0
        self.first_sent: float | None = None
        self.last_sent: float | None = None
        self.malformed = 0  # datagrams that are not RTP
        self.foreign = 0  # RTP from another source than the latched one
        self.unexpected = 0  # payload types other than the negotiated ones
        self.rtcp = 0  # RTCP packets received (the next port, or muxed: RFC 5761)
        self.closed = False
        self.lost_on_purpose = 0  # packets of ours a `loss` fault dropped
        # The digits received, in the order they came: RFC 4733 events of the stream
        # and SIP INFO bodies of the call alike (bounded like the collector's).
        self._digits: list[str] = []
        # Told after each digit joins ``dtmf`` (the journal wakes who waits for them).
        self.on_digits: Callable[[], None] | None = None
        # Packets a `jitter` fault holds: (when it leaves, order, octets, to).
        self._held: list[tuple[float, int, bytes, Address]] = []
        self._order = 0
        # Echo keeps the spacing of the client's timestamps on our own base.
        self._their_base: int | None = None
        self._our_base = self._timestamp
        self._source: ToneSource | None = None
        self._pcm_at = 0
        if plan.mode == "tone":
            self._source = ToneSource(plan.tone)
        self._encoded: dict[bytes, bytes] = {}
        self._next_frame: float | None = (
            now if plan.mode in ("tone", "file", "silence") else None)
        # Digits to send: (timestamp offset of the event, marker, payload) queued, one
        # packet a frame from the time they are due.
        self._events: deque[tuple[int, bool, bytes]] = deque()
        self._event_base = 0  # the stream's timestamp when the digits began
        self._dtmf_at = now + plan.dtmf_after if plan.send_dtmf else None

    # -- what arrives -------------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> list[tuple[bytes, Address]]:
        """One datagram from ``source``: what to send back (an echo), if anything."""
        if self.closed:
            return []
        if is_rtcp(data):
            self.rtcp += 1
            return []
        try:
            packet = parse_rtp(data)
        except ValueError:
            self.malformed += 1
            return []
        if not self.latched:
            self.latched = True  # RFC 4961: send where it comes from
            self.remote = source
        elif source != self.remote:
            self.foreign += 1
            return []
        negotiated = self.negotiated
        if packet.payload_type == negotiated.event_type:
            try:
                digits = self.collector.feed(packet.timestamp, packet.payload, packet.marker)
            except ValueError:
                self.malformed += 1
                return []
            if digits:
                self.heard(digits)
            return []
        if packet.payload_type != negotiated.payload_type:
            self.unexpected += 1
            return []
        self.received.update(packet.sequence, packet.timestamp, now, RATE,
                             len(packet.payload))
        if self.plan.mode != "echo" or not self._sending(now):
            return []
        if self._their_base is None:
            self._their_base = packet.timestamp
        timestamp = (self._our_base + packet.timestamp - self._their_base) & 0xFFFFFFFF
        return self._emit(self._packet(negotiated.payload_type, timestamp, packet.payload,
                                       now), now)

    # -- what we play ---------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        if self.closed:
            return None
        due = [t for t in (self._next_frame, self._dtmf_at) if t is not None]
        if self._held:
            due.append(self._held[0][0])
        if self._events and self._next_frame is None:
            due.append(self.last_sent + FRAME if self.last_sent is not None else self.started)
        return min(due) if due else None

    def fire(self, now: float) -> list[tuple[bytes, Address]]:
        """The frames (and DTMF events) due by ``now``."""
        if self.closed or self.remote is None:
            return []
        if self._dtmf_at is not None and now >= self._dtmf_at:
            self._queue_digits()
            self._dtmf_at = None
        out: list[tuple[bytes, Address]] = []
        held = self._held
        while held and held[0][0] <= now:
            _, _, data, to = heapq.heappop(held)
            out.append((data, to))
        start = self.started + self.plan.start_after
        if now < start:  # a late first packet: nothing yet
            if self._next_frame is not None:
                self._next_frame = max(self._next_frame, start)
            return out
        if not self._sending(now):
            self._next_frame = None
            self._events.clear()
            return out
        frames = 0
        while frames < MAX_CATCH_UP:
            at = self._next_frame
            if at is None:
                if not self._events:
                    break
                at = self.last_sent + FRAME if self.last_sent is not None else now
            if at > now:
                break
            out += self._emit(self._frame(now), now)
            frames += 1
            if self._next_frame is not None:
                self._next_frame = at + FRAME
        if self._next_frame is not None and self._next_frame <= now:
            # A stall longer than the catch-up: skip ahead, keeping timestamps true.
            skipped = int((now - self._next_frame) / FRAME) + 1
            self._timestamp = (self._timestamp + skipped * SAMPLES) & 0xFFFFFFFF
            self._next_frame += skipped * FRAME
        return out

    def _frame(self, now: float) -> tuple[bytes, Address]:
        if self._events:
            offset, marker, payload = self._events.popleft()
            event_type = self.negotiated.event_type
            assert event_type is not None  # only queued when negotiated
            timestamp = (self._event_base + offset) & 0xFFFFFFFF
            self._marker = marker
            sent = self._packet(event_type, timestamp, payload, now)
            if self._next_frame is not None:
                self._timestamp = (self._timestamp + SAMPLES) & 0xFFFFFFFF
            return sent
        timestamp = self._timestamp
        self._timestamp = (timestamp + SAMPLES) & 0xFFFFFFFF
        return self._packet(self.negotiated.payload_type, timestamp, self._audio(), now)

    def _audio(self) -> bytes:
        codec = self.negotiated.codec
        mode = self.plan.mode
        if mode == "tone" and self._source is not None:
            frame = self._source.next_frame()
            cached = self._encoded.get(frame)
            if cached is None:
                # A repeating tone has a short cycle of frames: each is encoded once.
                cached = self._encoded[frame] = g711.encode(codec, frame)
            return cached
        if mode == "file" and self.plan.pcm:
            return g711.encode(codec, self._file_frame())
        return g711.silence(codec, SAMPLES)

    def _file_frame(self) -> bytes:
        """The file's next 20 ms, looped: a file shorter than a frame repeats in it."""
        pcm = self.plan.pcm
        size = 2 * SAMPLES
        if len(pcm) < size:
            return (pcm * (size // len(pcm) + 1))[:size]
        start = self._pcm_at
        end = start + size
        if end <= len(pcm):
            self._pcm_at = end % len(pcm)
            return pcm[start:end]
        self._pcm_at = end - len(pcm)
        return pcm[start:] + pcm[:self._pcm_at]

    def _queue_digits(self) -> None:
        if self.negotiated.event_type is None:
            return  # RFC 4733 2.1: events only where the offer allows them
        self._event_base = self._timestamp
        offset = 0
        for digit in self.plan.send_dtmf:
            packets = sender_packets(digit, offset, packet_ms=20)
            self._events.extend(packets)
            # The next event starts after this one, and a frame's pause (RFC 4733 2.5.1.2).
            offset += (len(packets) + 1) * SAMPLES

    def _emit(self, packet: tuple[bytes, Address], now: float
              ) -> list[tuple[bytes, Address]]:
        """A packet of ours through the faults: lost, held back, or sent now."""
        plan = self.plan
        if plan.loss and self._random.random() < plan.loss:
            self.lost_on_purpose += 1  # its sequence number is spent: a gap the client sees
            return []
        if plan.jitter:
            self._order += 1
            heapq.heappush(self._held, (now + self._random.uniform(0, plan.jitter),
                                        self._order, *packet))
            return []
        return [packet]

    def _packet(self, payload_type: int, timestamp: int, payload: bytes, now: float
                ) -> tuple[bytes, Address]:
        remote = self.remote
        assert remote is not None
        wrong = self.plan.payload_type
        if wrong is not None and payload_type == self.negotiated.payload_type:
            payload_type = wrong  # the fault: audio under a type the answer did not agree
        data = pack_rtp(payload_type, self._sequence, timestamp, self.ssrc, payload,
                        marker=self._marker)
        self._marker = False
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.sent_packets += 1
        self.sent_octets += len(payload)
        if self.first_sent is None:
            self.first_sent = now
        self.last_sent = now
        return data, remote

    def _sending(self, now: float) -> bool:
        plan = self.plan
        since = now - self.started
        return plan.mode != "none" and since >= plan.start_after and (
            plan.stop_after is None or since < plan.stop_after)

    # -- the end ----------------------------------------------------------------------------
    def close(self) -> None:
        """The dialog ended: nothing more is sent; a digit whose end packets never
        came is counted now."""
        if not self.closed:
            self.closed = True
            last = self.collector.flush()
            if last:
                self.heard(last)

    def heard(self, digits: str) -> None:
        """Digits the call received, from its stream or a SIP INFO (``dtmf``)."""
        room = MAX_DIGITS - len(self._digits)
        self._digits.extend(digits[:max(room, 0)])
        if self.on_digits is not None:
            self.on_digits()

    @property
    def dtmf(self) -> str:
        return "".join(self._digits)

    def summary(self) -> dict[str, object]:
        """The call's `media` in the journal: JSON-able."""
        received = self.received
        return {
            "codec": self.negotiated.codec,
            "payload_type": self.negotiated.payload_type,
            "event_payload_type": self.negotiated.event_type,
            "remote": list(self.remote) if self.remote else None,
            "latched": self.latched,
            "packets_received": received.packets,
            "octets_received": received.octets,
            "packets_sent": self.sent_packets,
            "octets_sent": self.sent_octets,
            "lost": received.lost,
            "jitter_ms": round(received.jitter * 1000, 3),
            "first_received": received.first_arrival,
            "last_received": received.last_arrival,
            "first_sent": self.first_sent,
            "last_sent": self.last_sent,
            "dtmf": self.dtmf,
            "malformed": self.malformed,
            "foreign": self.foreign,
            "unexpected_payload_type": self.unexpected,
            "rtcp_received": self.rtcp,
            "lost_on_purpose": self.lost_on_purpose,
        }


__all__ = ["MODES", "MediaPlan", "MediaSession", "Mode", "Negotiated"]
