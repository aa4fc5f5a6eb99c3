"""media/wav.py: WAV files of every accepted shape to 8 kHz mono 16-bit PCM, and a
one-line ValueError for what is refused."""

from __future__ import annotations

import io
import struct
import wave

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media.tones import goertzel_power, tone
from sipresponder.media.wav import read_wav, write_wav


def make_wav(frames: bytes, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return out.getvalue()


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_8k_mono_16bit_passes_through() -> None:
    pcm = tone(1000, 0.1, amplitude=0.5)
    assert read_wav(make_wav(pcm)) == pcm
    assert read_wav(write_wav(pcm)) == pcm


def test_stereo_is_averaged() -> None:
    frames = struct.pack("<6h", 100, 300, -100, -300, 32767, 32767)
    assert samples(read_wav(make_wav(frames, channels=2))) == [200, -200, 32767]


def test_8bit_is_unsigned_centred_on_128() -> None:
    assert samples(read_wav(make_wav(bytes([128, 255, 0]), width=1))) == [0, 127 << 8, -32768]


def test_resampling_keeps_the_frequency() -> None:
    for rate in (16000, 44100, 48000, 11025):
        wav = make_wav(tone(1000, 0.5, amplitude=0.5, rate=rate), rate=rate)
        pcm = read_wav(wav)
        assert len(pcm) == 2 * (int(0.5 * rate) * 8000 // rate)
        # Linear interpolation's own response (sinc^2 of f / rate) costs 11025 Hz about
        # 5% of the power at 1 kHz; nothing leaks 100 Hz away.
        assert goertzel_power(pcm[:3200], 1000) == pytest.approx(0.25, rel=0.06)
        assert goertzel_power(pcm[:3200], 1100) < 1e-6


def test_upsampling_interpolates_linearly() -> None:
    # 4 kHz -> 8 kHz: a sample between each pair, the mean of its neighbours.
    frames = struct.pack("<3h", 0, 100, 200)
    assert samples(read_wav(make_wav(frames, rate=4000))) == [0, 50, 100, 150, 200, 200]


def test_stereo_44k1_8bit() -> None:
    frames = bytes([128, 128] * 441)
    assert samples(read_wav(make_wav(frames, rate=44100, width=1, channels=2))) == [0] * 80


def float_wav() -> bytes:
    # WAVE_FORMAT_IEEE_FLOAT (3): a fmt chunk that wave refuses.
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
    data = b"\x00" * 8
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" \
        + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(("data", "message"), [
    (b"", "not a WAV file we can read: truncated or corrupt"),
    (b"OggS" + bytes(40), r"not a WAV file we can read: file does not start with RIFF id "
                          r"\(not a RIFF/WAVE file\)"),
    (b"RIFF\x04\x00\x00\x00AVI ", "not a RIFF/WAVE file"),
    (float_wav(), "unknown format: 3: the file is compressed or floating-point"),
    (make_wav(bytes(6), width=3), "WAV of 24-bit samples: only 8 and 16-bit PCM"),
    (make_wav(bytes(8), width=4), "WAV of 32-bit samples"),
    (make_wav(bytes(12), channels=3), "WAV of 3 channels: only mono and stereo"),
    (make_wav(bytes(2), rate=400_000), "WAV sample rate 400000 Hz"),
    (make_wav(bytes(2 * 8000 * 3)), "WAV of 3.0 s: over the 2 s limit"),
])
def test_refused_files(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        read_wav(data, max_seconds=2)
    assert "\n" not in str(caught.value)


def test_a_lying_header_reads_what_is_there() -> None:
    wav = make_wav(struct.pack("<4h", 1, 2, 3, 4))
    assert samples(read_wav(wav[:-3])) == [1, 2]  # 5 octets of data: 2 whole samples


@given(st.binary(max_size=120))
@settings(max_examples=300, deadline=None)
def test_any_octets_read_or_raise_value_error(tail: bytes) -> None:
    for data in (tail, make_wav(b"")[:36] + tail, b"RIFF" + tail):
        try:
            pcm = read_wav(data, max_seconds=1)
        except ValueError as error:
            assert "\n" not in str(error)
        else:
            assert len(pcm) % 2 == 0


def test_write_wav_refuses_odd_pcm() -> None:
    with pytest.raises(ValueError, match="PCM of 1 octets"):
        write_wav(b"x")
