"""media/rtp.py: RFC 3550 5.1 / 5.3.1 layouts, the RFC 5761 demultiplex, hostile
octets (hypothesis), and the packets of SIPp's own pcaps."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, astuple, fields
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media.rtp import RtpPacket, is_rtcp, pack_rtp, parse_rtp
from tests.unit.media.sipp_pcap import udp_payloads

# RFC 3550 5.1, bit by bit: V=2 P=0 X=0 CC=0 | M=1 PT=0 | seq 0x1234 | ts | SSRC.
FIXED = bytes.fromhex("80 80 1234 000000a0 deadbeef") + b"\xff" * 4


def test_fixed_header_fields() -> None:
    packet = parse_rtp(FIXED)
    assert packet == RtpPacket(payload_type=0, sequence=0x1234, timestamp=160,
                               ssrc=0xDEADBEEF, payload=b"\xff" * 4, marker=True)
    assert packet.to_bytes() == FIXED


def test_a_parsed_packet_is_a_whole_frozen_dataclass() -> None:
    """parse_rtp builds the packet through the slots' descriptors (for speed): every
    field is set (a field added to RtpPacket but not to parse_rtp fails here), and the
    packet stays frozen and hashable like one made by its constructor."""
    packet = parse_rtp(FIXED)
    assert len(astuple(packet)) == len(fields(RtpPacket))
    assert hash(packet) == hash(RtpPacket(0, 0x1234, 160, 0xDEADBEEF, b"\xff" * 4, True))
    with pytest.raises(FrozenInstanceError):
        packet.sequence = 1  # type: ignore[misc]


def test_csrc_extension_and_padding() -> None:
    # V=2 P=1 X=1 CC=2 -> 0xb2; PT 8; 2 CSRC; extension profile 0xbede, 1 word; 3 padding
    data = (bytes.fromhex("b2 08 0001 00000002 00000003") + bytes.fromhex("0000000a 0000000b")
            + bytes.fromhex("bede 0001 11223344") + b"pay" + b"\x00\x00\x03")
    packet = parse_rtp(data)
    assert packet.csrc == (10, 11)
    assert packet.extension == (0xBEDE, bytes.fromhex("11223344"))
    assert packet.padding == 3 and packet.payload == b"pay"
    assert not packet.marker and packet.payload_type == 8
    assert packet.to_bytes() == data


@pytest.mark.parametrize(("data", "message"), [
    (b"", "truncated header: 0 octets, RTP needs 12"),
    (FIXED[:11], "truncated header: 11 octets"),
    (b"\x40" + FIXED[1:], "RTP version 1, not 2"),
    (b"\x00" + FIXED[1:], "RTP version 0, not 2"),
    (b"\x83" + FIXED[1:12] + b"\x00" * 8, "truncated CSRC list"),
    (b"\x90" + FIXED[1:12] + b"\x00\x01", "truncated header extension: no room"),
    (b"\x90" + FIXED[1:12] + b"\x00\x01\x00\x02abcd", "2 words announced, 1 present"),
    (b"\xa0" + FIXED[1:12] + b"ab\x09", "padding longer than the payload"),
    (b"\xa0" + FIXED[1:12] + b"ab\x00", "padding length 0"),
])
def test_malformed_packets_are_one_line_value_errors(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_rtp(data)
    assert "\n" not in str(caught.value)


def test_padding_may_fill_everything_after_the_header() -> None:
    packet = parse_rtp(b"\xa0" + FIXED[1:12] + b"\x00\x00\x03")
    assert packet.payload == b"" and packet.padding == 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"payload_type": 128}, "payload type 128 out of range"),
    ({"sequence": 65536}, "RTP field out of range"),
    ({"timestamp": -1}, "RTP field out of range"),
    ({"ssrc": 1 << 32}, "RTP field out of range"),
    ({"csrc": tuple(range(16))}, "16 CSRC identifiers"),
    ({"extension": (1, b"abc")}, "not a whole number of 32-bit words"),
    ({"padding": 256}, "padding 256 out of range"),
    ({"extension": (1 << 16, b"")}, "RTP field out of range"),
])
def test_pack_refuses_fields_out_of_range(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"payload_type": 0, "sequence": 1, "timestamp": 2,
                                 "ssrc": 3, "payload": b""}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pack_rtp(**fields)  # type: ignore[arg-type]


def test_rfc5761_demultiplex() -> None:
    assert not is_rtcp(FIXED)
    assert is_rtcp(bytes.fromhex("80c8 0006") + bytes(24))   # SR, 200
    assert is_rtcp(bytes.fromhex("81c9 0007"))               # RR, 201
    assert is_rtcp(bytes.fromhex("80df"))                    # 223, the last RTCP type
    assert not is_rtcp(bytes.fromhex("80e0"))                # 224: RTP PT 96 with marker
    # RTP PT 72 with its marker set is octet 200: why RFC 5761 4 keeps 64-95 unused.
    assert is_rtcp(pack_rtp(72, 1, 2, 3, b"", marker=True))
    assert not is_rtcp(b"\x80") and not is_rtcp(b"")


@given(st.binary(max_size=200))
@settings(max_examples=1500, deadline=None)
def test_any_octets_parse_or_raise_value_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except ValueError as error:
        assert "\n" not in str(error)
        return
    # What parses, packs back to the same octets but for the padding's content.
    again = packet.to_bytes()
    assert len(again) == len(data)
    assert again[: len(data) - packet.padding] == data[: len(data) - packet.padding]


packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127), sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64), marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none() | st.tuples(st.integers(0, 0xFFFF),
                                    st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255))


@given(packets)
@settings(max_examples=500, deadline=None)
def test_pack_parse_round_trip(packet: RtpPacket) -> None:
    assert parse_rtp(packet.to_bytes()) == packet


def test_sipp_g711a_pcap() -> None:
    """SIPp's g711a.pcap (what `play_pcap_audio` sends): PCMA, 30 ms (240 samples) a packet."""
    datagrams = udp_payloads("g711a.pcap")
    parsed = [parse_rtp(d) for d in datagrams]
    assert len(parsed) > 100
    assert {p.payload_type for p in parsed} == {8}
    assert len({p.ssrc for p in parsed}) == 1
    assert {len(p.payload) for p in parsed} == {240}
    for before, after in pairwise(parsed):
        assert after.sequence == (before.sequence + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + 240) & 0xFFFFFFFF
    assert [p.to_bytes() for p in parsed] == datagrams
    assert not any(is_rtcp(d) for d in datagrams)


@pytest.mark.parametrize("digit", ["0", "5", "9", "star", "pound"])
def test_sipp_dtmf_pcaps_parse_and_repack(digit: str) -> None:
    datagrams = udp_payloads(f"dtmf_2833_{digit}.pcap")
    parsed = [parse_rtp(d) for d in datagrams]
    assert parsed and [p.to_bytes() for p in parsed] == datagrams
    assert parsed[0].marker  # RFC 4733 2.5.1.2: an event's first packet
    assert {len(p.payload) for p in parsed} == {4}


def test_a_missing_pcap_skips_here_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install sip-tester"):
        udp_payloads("no-such.pcap")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"no-such\.pcap is missing"):
        udp_payloads("no-such.pcap")
