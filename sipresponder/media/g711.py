"""G.711 (ITU-T G.711) mu-law ("PCMU", RTP payload type 0) and A-law ("PCMA", 8):
16-bit linear PCM (little-endian octets) <-> one code octet per sample.

Our own tables, not ``audioop``: Python 3.13 removed ``audioop`` (PEP 594), and the
two tables are small. They are built once at import from the classic reference
routines (Sun Microsystems' public-domain g711.c, the same ``audioop`` used), so the
codes are bit-identical to ``audioop.lin2ulaw`` / ``lin2alaw`` and their inverses
(tests/unit/media/test_g711.py compares all of them where ``audioop`` still exists).

Encoding looks a 16-bit sample up in a 65,536-entry table: mu-law reads 14 bits and
A-law 13, so each code of the smaller table is repeated 4 or 8 times, which costs
little to build and makes the per-sample work one index.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from typing import Literal

Law = Literal["PCMU", "PCMA"]
PAYLOAD_TYPES: dict[str, int] = {"PCMU": 0, "PCMA": 8}

_BIAS = 0x84
_CLIP = 8159

# g711.c finds the segment by searching the segments' ends, each twice the last:
# mu-law (0x3F, 0x7F, ... 0x1FFF), A-law (0x1F, 0x3F, ... 0xFFF). A bit length gives
# the same index for a non-negative value (8: past the last segment).


def _ulaw_of_14bit(value: int) -> int:
    """G.711 mu-law of a signed 14-bit sample (g711.c linear2ulaw after its >> 2)."""
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _CLIP) + (_BIAS >> 2)
    seg = max(0, value.bit_length() - 6)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0xF)) ^ mask


def _alaw_of_13bit(value: int) -> int:
    """G.711 A-law of a signed 13-bit sample (g711.c linear2alaw after its >> 3)."""
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    seg = max(0, value.bit_length() - 5)
    if seg >= 8:
        return 0x7F ^ mask
    code = seg << 4
    code |= ((value >> 1) if seg < 2 else (value >> seg)) & 0xF
    return code ^ mask


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + _BIAS) << ((code & 0x70) >> 4)
    return _BIAS - t if code & 0x80 else t - _BIAS


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


def _signed(unsigned: int, bits: int) -> int:
    return unsigned - (1 << bits) if unsigned >> (bits - 1) else unsigned


def _encoder(of: Callable[[int], int], bits: int) -> bytes:
    small = bytes(of(_signed(u, bits)) for u in range(1 << bits))
    repeat = 1 << (16 - bits)
    # Index = the sample as unsigned 16 bits; its top ``bits`` bits select the code.
    return b"".join(bytes((code,)) * repeat for code in small)


_ENCODE: dict[str, bytes] = {"PCMU": _encoder(_ulaw_of_14bit, 14),
                             "PCMA": _encoder(_alaw_of_13bit, 13)}
_DECODE: dict[str, tuple[int, ...]] = {
    "PCMU": tuple(_ulaw_to_linear(c) for c in range(256)),
    "PCMA": tuple(_alaw_to_linear(c) for c in range(256)),
}
_BIG_ENDIAN = sys.byteorder == "big"


def _law(law: str) -> str:
    if law not in _ENCODE:
        raise ValueError(f"unknown G.711 law {law!r}: PCMU (mu-law) or PCMA (A-law)")
    return law


def decode(law: str, payload: bytes) -> bytes:
    """The 16-bit little-endian PCM of G.711 ``payload`` (two octets per code)."""
    samples = array("h", map(_DECODE[_law(law)].__getitem__, payload))
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples.tobytes()


def encode(law: str, pcm: bytes) -> bytes:
    """The G.711 codes of 16-bit little-endian PCM ``pcm``."""
    table = _ENCODE[_law(law)]
    if len(pcm) % 2:
        raise ValueError(f"PCM of {len(pcm)} octets: 16-bit samples need an even count")
    samples = array("H")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


def silence(law: str, samples: int) -> bytes:
    """``samples`` codes of digital silence (the code that decodes nearest to 0)."""
    return encode(law, bytes(2 * samples))
