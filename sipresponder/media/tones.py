"""Tones as 16-bit linear PCM (little-endian), and the Goertzel detector that checks
them: a single or dual tone (dial tone, DTMF's pairs, a 1 kHz test tone) at a level
in dBm0 or as a fraction of full scale.

dBm0 here follows G.711: the largest sine a mu-law coder carries is +3.17 dBm0
(G.711 table 2's "theoretical load capacity"), so 0 dBm0 is a sine of peak
32767 * 10^(-3.17/20), about 22,7xx. A dual tone's level is each component's (as
DTMF levels are given); their sum is clipped to 16 bits.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from sys import byteorder

FULL_SCALE = 32767
MAX_DBM0 = 3.17
RATE = 8000


def amplitude_of_dbm0(dbm0: float) -> float:
    """A sine's peak, as a fraction of full scale, for a level in dBm0."""
    return float(10.0 ** ((dbm0 - MAX_DBM0) / 20.0))


def _peaks(frequencies: float | Sequence[float], dbm0: float | None,
           amplitude: float | None, rate: int) -> tuple[list[float], float]:
    freqs = [float(frequencies)] if isinstance(frequencies, (int, float)) \
        else [float(f) for f in frequencies]
    if not 1 <= len(freqs) <= 2:
        raise ValueError(f"{len(freqs)} frequencies: a tone has one or two")
    if rate <= 0:
        raise ValueError(f"sample rate {rate} Hz: must be positive")
    for f in freqs:
        if not 0 < f < rate / 2:
            raise ValueError(f"frequency {f} Hz: must lie between 0 and {rate / 2:g} Hz "
                             f"(half the {rate} Hz sample rate)")
    if dbm0 is not None and amplitude is not None:
        raise ValueError("give the level as dbm0 or as amplitude, not both")
    if amplitude is None:
        amplitude = amplitude_of_dbm0(-10.0 if dbm0 is None else dbm0)
    if not 0 <= amplitude <= 1:
        raise ValueError(f"amplitude {amplitude}: a fraction of full scale, 0-1")
    return freqs, amplitude * FULL_SCALE


class ToneSource:
    """Successive frames of one tone with continuous phase across frames (no click at
    a frame's edge). Each frame is ``frame_ms`` of 16-bit little-endian PCM.

    Computing a frame costs ~100 us of Python (a sine per sample), too much for every
    frame of many calls; but a tone whose frequencies fit a whole number of periods
    in the shortest whole number of seconds made of whole frames (one second for
    20 ms frames; any whole number of Hz fits) repeats, so those frames (``cycle``)
    are computed once and ``next_frame`` hands them out in turn.
    """

    __slots__ = ("_cycle", "_frame_samples", "_next", "_peak", "_phases", "_steps")

    def __init__(self, frequencies: float | Sequence[float], *, dbm0: float | None = None,
                 amplitude: float | None = None, rate: int = RATE, frame_ms: int = 20) -> None:
        freqs, self._peak = _peaks(frequencies, dbm0, amplitude, rate)
        if frame_ms <= 0 or rate * frame_ms % 1000:
            raise ValueError(f"frame of {frame_ms} ms: must be a positive whole number "
                             f"of samples at {rate} Hz")
        self._frame_samples = rate * frame_ms // 1000
        self._steps = [2.0 * math.pi * f / rate for f in freqs]
        self._phases = [0.0] * len(freqs)
        self._next = 0
        self._cycle: tuple[bytes, ...] | None = None
        frames = _frames_per_cycle(freqs, frame_ms, 1000 // math.gcd(1000, frame_ms))
        if frames is not None:
            self._cycle = tuple(self.samples(self._frame_samples) for _ in range(frames))

    @property
    def cycle(self) -> tuple[bytes, ...] | None:
        """The frames after which the tone repeats (a session may encode them once);
        None when it does not repeat that soon."""
        return self._cycle

    def samples(self, count: int) -> bytes:
        """The next ``count`` samples, computed (``tone`` uses it; a source that has a
        ``cycle`` hands out frames with ``next_frame`` only)."""
        out = array("h", bytes(2 * count))
        peak = self._peak
        for index, step in enumerate(self._steps):
            phase = self._phases[index]
            for n in range(count):
                out[n] = max(-32768, min(32767, out[n] + round(peak * math.sin(phase))))
                phase += step
            # Kept small so that hours of tone lose no precision.
            self._phases[index] = math.fmod(phase, 2.0 * math.pi)
        if byteorder == "big":
            out.byteswap()
        return out.tobytes()

    def next_frame(self) -> bytes:
        if self._cycle is None:
            return self.samples(self._frame_samples)
        frame = self._cycle[self._next]
        self._next = (self._next + 1) % len(self._cycle)
        return frame

    def __iter__(self) -> Iterator[bytes]:
        while True:
            yield self.next_frame()


def _frames_per_cycle(frequencies: list[float], frame_ms: int, limit: int) -> int | None:
    """The fewest frames holding a whole number of periods of every frequency."""
    for frames in range(1, limit + 1):
        periods = [f * frames * frame_ms / 1000 for f in frequencies]
        if all(abs(p - round(p)) < 1e-9 for p in periods):
            return frames
    return None


def tone(frequencies: float | Sequence[float], duration: float, *, dbm0: float | None = None,
         amplitude: float | None = None, rate: int = RATE) -> bytes:
    """``duration`` seconds of a single or dual tone (default level -10 dBm0)."""
    if not 0 <= duration <= 3600:
        raise ValueError(f"tone of {duration} s: must be 0-3600 s")
    # Frames of a whole second: any integer rate has a whole number of samples in one.
    source = ToneSource(frequencies, dbm0=dbm0, amplitude=amplitude, rate=rate, frame_ms=1000)
    return source.samples(round(duration * rate))


def goertzel_power(pcm: bytes, frequency: float, rate: int = RATE) -> float:
    """The power of ``frequency`` in 16-bit little-endian ``pcm``, as the squared peak
    of a sine at that frequency relative to full scale: a full-scale sine gives about
    1.0, one at amplitude 0.1 about 0.01, silence 0 (Goertzel's algorithm)."""
    if len(pcm) % 2:
        raise ValueError(f"PCM of {len(pcm)} octets: 16-bit samples need an even count")
    samples = array("h")
    samples.frombytes(pcm)
    if byteorder == "big":
        samples.byteswap()
    count = len(samples)
    if count == 0:
        return 0.0
    coefficient = 2.0 * math.cos(2.0 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - coefficient * s1 * s2
    return power / (count * count / 4.0) / (FULL_SCALE * FULL_SCALE)
