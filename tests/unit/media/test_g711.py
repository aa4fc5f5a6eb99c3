"""media/g711.py: ITU-T G.711 mu-law and A-law against known codes, against
``audioop`` (bit for bit, while Python still has it), and SIPp's PCMA recording."""

from __future__ import annotations

import struct
import warnings
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media import g711
from sipresponder.media.rtp import parse_rtp
from tests.unit.media.sipp_pcap import udp_payloads

EVERY_SAMPLE = struct.pack("<65536h", *range(-32768, 32768))


def samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_known_codes() -> None:
    # Silence: mu-law 0xff (and 0x7f) decode to 0, A-law 0xd5 to +8 (G.711's
    # A-law has no zero). The extremes: mu-law 0x80 / 0x00, A-law 0xaa / 0x2a.
    assert samples(g711.decode("PCMU", b"\xff\x7f\x80\x00")) == [0, 0, 32124, -32124]
    assert samples(g711.decode("PCMA", b"\xd5\x55\xaa\x2a")) == [8, -8, 32256, -32256]
    assert g711.encode("PCMU", struct.pack("<3h", 0, 32767, -32768)) == b"\xff\x80\x00"
    assert g711.encode("PCMA", struct.pack("<3h", 0, 32767, -32768)) == b"\xd5\xaa\x2a"
    assert g711.silence("PCMU", 3) == b"\xff" * 3 and g711.silence("PCMA", 2) == b"\xd5" * 2
    assert g711.PAYLOAD_TYPES == {"PCMU": 0, "PCMA": 8}


def test_bit_identical_to_audioop_where_it_exists() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="Python 3.13 removed audioop")
    every_code = bytes(range(256))
    assert g711.encode("PCMU", EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE, 2)
    assert g711.encode("PCMA", EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE, 2)
    assert g711.decode("PCMU", every_code) == audioop.ulaw2lin(every_code, 2)
    assert g711.decode("PCMA", every_code) == audioop.alaw2lin(every_code, 2)


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_every_code_survives_decode_then_encode(law: str) -> None:
    every_code = bytes(range(256))
    again = g711.encode(law, g711.decode(law, every_code))
    if law == "PCMU":
        # 0x7f is mu-law's "negative zero": it decodes to 0, which encodes to 0xff.
        assert again == every_code.replace(b"\x7f", b"\xff")
    else:
        assert again == every_code


@pytest.mark.parametrize("law", ["PCMU", "PCMA"])
def test_quantisation_error_is_within_half_a_step(law: str) -> None:
    decoded = samples(g711.decode(law, g711.encode(law, EVERY_SAMPLE)))
    levels = sorted(set(samples(g711.decode(law, bytes(range(256))))))
    # Each sample goes to one of the two levels around it, never farther.
    for original, coded in zip(range(-32768, 32768, 97), decoded[::97], strict=True):
        below = max((lv for lv in levels if lv <= original), default=levels[0])
        above = min((lv for lv in levels if lv >= original), default=levels[-1])
        assert coded in (below, above), (original, coded)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown G\.711 law 'G722': PCMU"):
        g711.encode("G722", b"")
    with pytest.raises(ValueError, match=r"unknown G\.711 law 'pcmu'"):
        g711.decode("pcmu", b"")
    with pytest.raises(ValueError, match="PCM of 3 octets: 16-bit samples need an even count"):
        g711.encode("PCMA", b"abc")


@given(st.binary(max_size=400), st.sampled_from(["PCMU", "PCMA"]))
@settings(max_examples=200, deadline=None)
def test_any_payload_decodes_to_two_octets_a_code(payload: bytes, law: str) -> None:
    pcm = g711.decode(law, payload)
    assert len(pcm) == 2 * len(payload)
    assert g711.decode(law, g711.encode(law, pcm)) == pcm


def test_sipp_g711a_pcap_is_speech_like_alaw() -> None:
    """SIPp's PCMA recording decodes to audio that is neither silent nor clipped, and
    re-encodes to the same codes (A-law has no two codes for one level)."""
    payload = b"".join(parse_rtp(d).payload for d in udp_payloads("g711a.pcap"))
    pcm = g711.decode("PCMA", payload)
    level = array("h", pcm)
    assert max(abs(x) for x in level) > 1000
    assert sum(1 for x in level if abs(x) >= 32000) < len(level) // 100
    assert g711.encode("PCMA", pcm) == payload
