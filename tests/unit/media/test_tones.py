"""media/tones.py: tone levels, dual tones, continuous phase across frames, and the
Goertzel detector that tests (and the issue's tshark check) use on decoded audio."""

from __future__ import annotations

import math
import struct

import pytest

from sipresponder.media import g711
from sipresponder.media.tones import ToneSource, amplitude_of_dbm0, goertzel_power, tone


def peak(pcm: bytes) -> int:
    return max(abs(x) for x in struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_single_tone_frequency_and_level() -> None:
    pcm = tone(1000, 0.1, amplitude=0.5)
    assert len(pcm) == 2 * 800
    assert peak(pcm) == pytest.approx(0.5 * 32767, abs=2)
    assert goertzel_power(pcm, 1000) == pytest.approx(0.25, rel=0.01)
    assert goertzel_power(pcm, 1400) < 1e-4
    assert goertzel_power(pcm, 600) < 1e-4


def test_dbm0_levels() -> None:
    # G.711: +3.17 dBm0 is full scale; each -6.02 dB halves the amplitude.
    assert amplitude_of_dbm0(3.17) == pytest.approx(1.0)
    assert amplitude_of_dbm0(3.17 - 20 * math.log10(2)) == pytest.approx(0.5)
    assert peak(tone(440, 0.05, dbm0=0.0)) == pytest.approx(32767 * 10 ** (-3.17 / 20), abs=2)
    # The default level, -10 dBm0
    assert peak(tone(440, 0.05)) == pytest.approx(32767 * amplitude_of_dbm0(-10), abs=2)


def test_dual_tone_dtmf_one() -> None:
    """DTMF '1' is 697 + 1209 Hz; both found, the other row and column not."""
    pcm = tone((697, 1209), 0.1, dbm0=-7.0)
    each = amplitude_of_dbm0(-7.0) ** 2
    assert goertzel_power(pcm, 697) == pytest.approx(each, rel=0.05)
    assert goertzel_power(pcm, 1209) == pytest.approx(each, rel=0.05)
    for other in (770, 852, 941, 1336, 1477):
        assert goertzel_power(pcm, other) < each / 100


def test_a_loud_dual_tone_is_clipped_not_wrapped() -> None:
    pcm = tone((500, 700), 0.05, amplitude=1.0)
    assert peak(pcm) == 32767 or peak(pcm) == 32768


def test_frames_are_continuous() -> None:
    """20 ms frames of a 1 kHz tone joined are the same samples as one long tone: no
    phase jump (a click) at the frame edges."""
    source = ToneSource(1000, amplitude=0.3)
    frames = [source.next_frame() for _ in range(10)]
    assert {len(f) for f in frames} == {320}
    joined = b"".join(frames)
    whole = tone(1000, 0.2, amplitude=0.3)
    a = struct.unpack("<1600h", joined)
    b = struct.unpack("<1600h", whole)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1
    # 10 frames at a frequency that does not divide a frame (7 periods + a bit)
    odd = ToneSource(377, amplitude=0.3)
    pieces = b"".join(next(iter(odd)) for _ in range(10))
    assert goertzel_power(pieces, 377) == pytest.approx(0.09, rel=0.02)


@pytest.mark.parametrize(("frequencies", "frames"), [
    (1000, 1), (440, 5), ((697, 1209), 50), (377.5, 20), (440.3, None)])
def test_a_repeating_tone_is_computed_once(frequencies: float | tuple[float, float],
                                           frames: int | None) -> None:
    """A tone of whole periods in a second or less is a cycle of frames handed out in
    turn; the frames are the continuous tone's all the same."""
    source = ToneSource(frequencies, amplitude=0.4)
    assert (None if source.cycle is None else len(source.cycle)) == frames
    served = b"".join(source.next_frame() for _ in range(60))
    computed = ToneSource(frequencies, amplitude=0.4).samples(60 * 160)
    a = struct.unpack("<9600h", served)
    b = struct.unpack("<9600h", computed)
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1


def test_the_tone_survives_g711() -> None:
    pcm = tone(1000, 0.2, dbm0=-10.0)
    for law in ("PCMU", "PCMA"):
        heard = g711.decode(law, g711.encode(law, pcm))
        assert goertzel_power(heard, 1000) == pytest.approx(goertzel_power(pcm, 1000), rel=0.02)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: tone(5000, 1), r"frequency 5000\.0 Hz: must lie between 0 and 4000 Hz"),
    (lambda: tone(0, 1), "frequency 0.0 Hz"),
    (lambda: tone((1, 2, 3), 1), "3 frequencies: a tone has one or two"),
    (lambda: tone(1000, -1), "tone of -1 s"),
    (lambda: tone(1000, 1, amplitude=1.5), "amplitude 1.5: a fraction of full scale"),
    (lambda: tone(1000, 1, amplitude=0.1, dbm0=-3), "not both"),
    (lambda: ToneSource(1000, frame_ms=0), "frame of 0 ms"),
    (lambda: goertzel_power(b"abc", 1000), "PCM of 3 octets"),
])
def test_errors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_goertzel_of_nothing() -> None:
    assert goertzel_power(b"", 1000) == 0.0
    assert goertzel_power(bytes(1600), 1000) == 0.0
