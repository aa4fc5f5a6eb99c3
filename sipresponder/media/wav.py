"""WAV files (RIFF, through the stdlib ``wave``) to what G.711 carries: 8 kHz mono
16-bit little-endian PCM, converted once when a scenario is loaded.

Accepted: PCM (format tag 1) of 8 or 16 bits, mono or stereo (averaged), any sample
rate from 1 Hz to 192 kHz (linear interpolation to 8 kHz, no anti-alias filter: a
test signal, not hi-fi). Refused, with a one-line ``ValueError`` naming why: not
RIFF/WAVE, compressed or float formats, 24/32-bit samples, more than two channels,
and files longer than ``max_seconds`` (the file is untrusted input: its size bounds
the work). ``write_wav`` writes the same format back, for recordings and tests.
"""

from __future__ import annotations

import io
import struct
import wave
from array import array
from sys import byteorder

RATE = 8000
MAX_SECONDS = 60.0
MAX_INPUT_RATE = 192_000


def read_wav(data: bytes, max_seconds: float = MAX_SECONDS) -> bytes:
    """The 8 kHz mono 16-bit PCM of the WAV file ``data``."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.getnframes()
            _check(channels, width, rate, frames, max_seconds)
            raw = reader.readframes(frames)
    except wave.Error as error:
        raise ValueError(f"not a WAV file we can read: {_why(str(error))}") from None
    except _Refused:
        raise
    except (EOFError, OSError, ValueError, RuntimeError, struct.error) as error:
        # wave lets its chunk reader's errors through: a chunk size past the file's end
        # is a bare RuntimeError (Python 3.11), a short header a struct.error.
        reason = str(error) or type(error).__name__
        raise ValueError(f"not a WAV file we can read: truncated or corrupt ({reason})") \
            from None
    mono = _mono16(raw, width, channels)
    return _resample(mono, rate).tobytes() if byteorder == "little" \
        else _swapped(_resample(mono, rate))


def _why(message: str) -> str:
    # wave's own words are terse; say what a user should change.
    if message.startswith("unknown format"):
        return (f"{message}: the file is compressed or floating-point; save it as "
                "16-bit PCM")
    if "RIFF" in message or "WAVE" in message:
        return f"{message} (not a RIFF/WAVE file)"
    return message


class _Refused(ValueError):
    """A readable WAV this module declines (its own message, passed on as is)."""


def _check(channels: int, width: int, rate: int, frames: int, max_seconds: float) -> None:
    if width not in (1, 2):
        raise _Refused(f"WAV of {8 * width}-bit samples: only 8 and 16-bit PCM are read")
    if channels not in (1, 2):
        raise _Refused(f"WAV of {channels} channels: only mono and stereo are read")
    if not 1 <= rate <= MAX_INPUT_RATE:
        raise _Refused(f"WAV sample rate {rate} Hz: must be 1-{MAX_INPUT_RATE} Hz")
    if frames > max_seconds * rate:
        raise _Refused(f"WAV of {frames / rate:.1f} s: over the {max_seconds:g} s limit")


_FLIP_SIGN = bytes(b ^ 0x80 for b in range(256))


def _mono16(raw: bytes, width: int, channels: int) -> array[int]:
    raw = raw[: len(raw) - len(raw) % (width * channels)]
    if width == 1:
        # 8-bit WAV is unsigned, centred on 128: (b - 128) << 8 is, little-endian, a
        # zero octet then b ^ 0x80, written at C speed by a translate.
        wide = bytearray(2 * len(raw))
        wide[1::2] = raw.translate(_FLIP_SIGN)
        raw = bytes(wide)
    samples = array("h")
    samples.frombytes(raw)
    if byteorder == "big":
        samples.byteswap()
    if channels == 2:
        left, right = samples[0::2], samples[1::2]
        samples = array("h", ((a + b) >> 1 for a, b in zip(left, right, strict=True)))
    return samples


def _resample(samples: array[int], rate: int) -> array[int]:
    if rate == RATE or not samples:
        return samples
    count = len(samples) * RATE // rate
    last = len(samples) - 1
    out = array("h", bytes(2 * count))
    step = rate / RATE
    for n in range(count):
        position = n * step
        index = int(position)
        if index >= last:
            out[n] = samples[last]
            continue
        fraction = position - index
        a = samples[index]
        out[n] = round(a + (samples[index + 1] - a) * fraction)
    return out


def _swapped(samples: array[int]) -> bytes:
    samples.byteswap()
    return samples.tobytes()


def write_wav(pcm: bytes, rate: int = RATE) -> bytes:
    """A mono 16-bit PCM WAV file of little-endian ``pcm``."""
    if len(pcm) % 2:
        raise ValueError(f"PCM of {len(pcm)} octets: 16-bit samples need an even count")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()
