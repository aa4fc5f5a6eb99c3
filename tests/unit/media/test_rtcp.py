"""media/rtcp.py: RFC 3550 6.4-6.6 layouts, compound packets, NTP arithmetic, hostile
octets (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    Sdes,
    SdesChunk,
    SenderReport,
    UnknownRtcp,
    dlsr_units,
    ntp_from_unix,
    ntp_middle,
    pack_bye,
    pack_rr,
    pack_rtcp,
    pack_sdes,
    pack_sr,
    parse_rtcp,
    round_trip_seconds,
    unix_from_ntp,
)

BLOCK = ReportBlock(ssrc=0x0A0B0C0D, fraction_lost=64, cumulative_lost=-3,
                    highest_sequence=0x1_0005, jitter=12, last_sr=0x1234_5678,
                    delay_since_last_sr=0x0001_8000)


def test_sender_report_layout() -> None:
    sr = SenderReport(ssrc=1, ntp_timestamp=0x83AA7E80_80000000, rtp_timestamp=160,
                      packet_count=2, octet_count=320, reports=(BLOCK,))
    data = pack_sr(sr)
    # V=2 RC=1 | PT 200 | length 12 (13 words - 1): 28 octets of sender info + one block
    assert data[:4] == bytes.fromhex("81 c8 000c") and len(data) == 52
    assert data[4:28] == bytes.fromhex("00000001 83aa7e80 80000000 000000a0 00000002 00000140")
    # the block: fraction 64 then the 24-bit two's complement of -3
    assert data[28:36] == bytes.fromhex("0a0b0c0d 40 fffffd")
    assert parse_rtcp(data) == [sr]


def test_compound_rr_sdes_bye_round_trip() -> None:
    packets = [ReceiverReport(7, (BLOCK, BLOCK)),
               Sdes((SdesChunk(7, ((1, b"user@host"), (2, b"name"))), SdesChunk(8, ()))),
               Bye((7, 8), b"call over")]
    data = pack_rtcp(packets)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets
    sdes = parse_rtcp(data)[1]
    assert isinstance(sdes, Sdes) and sdes.chunks[0].cname == "user@host"
    assert sdes.chunks[1].cname is None
    bye = parse_rtcp(data)[2]
    assert isinstance(bye, Bye) and bye.reason_text == "call over"


def test_sdes_cname_padding_to_the_word() -> None:
    # SSRC (4) + type, length, 4 octets (6) = 10: two null octets end it at 12.
    assert pack_sdes(Sdes((SdesChunk(1, ((1, b"abcd"),)),))) == \
        bytes.fromhex("81 ca 0003 00000001 01 04") + b"abcd" + b"\x00\x00"
    # A chunk ending exactly on a word still gets a whole word of nulls.
    assert pack_sdes(Sdes((SdesChunk(1, ((1, b"ab"),)),)))[-4:] == bytes(4)


def test_bye_without_reason_and_unknown_types() -> None:
    assert pack_bye(Bye((5,))) == bytes.fromhex("81 cb 0001 00000005")
    app = UnknownRtcp(204, 3, b"nameDATA")
    assert parse_rtcp(pack_rr(ReceiverReport(1)) + pack_rtcp([app])) == \
        [ReceiverReport(1), app]


def test_padding_is_stripped() -> None:
    # An RR with P set and 4 octets of padding (the last says 4).
    data = bytes.fromhex("a0 c9 0002 00000009 00000004")
    assert parse_rtcp(data) == [ReceiverReport(9)]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty RTCP datagram"),
    (b"\x80\xc9\x00", "truncated RTCP header"),
    (bytes.fromhex("40 c9 0001 00000001"), "RTCP version 1, not 2"),
    (bytes.fromhex("80 c9 0005 00000001"), "announces 24 octets, 8 left"),
    (bytes.fromhex("81 c9 0001 00000001"), "RR with 1 report blocks needs 28"),
    (bytes.fromhex("80 c8 0001 00000001"), "SR with 0 report blocks needs 24"),
    (bytes.fromhex("a0 c9 0001 00000009"), "RTCP padding of 9 octets does not fit"),
    (bytes.fromhex("a0 c9 0001 00000000"), "RTCP padding of 0 octets"),
    (bytes.fromhex("82 ca 0002 00000001 00000000"), "SDES announces 2 chunks"),
    (bytes.fromhex("81 ca 0002 00000001 0109aabb"), "SDES item type 1 runs past"),
    (bytes.fromhex("81 ca 0001 00000001"), "without its terminating null item"),
    (bytes.fromhex("82 cb 0001 00000001"), "BYE announces 2 SSRC"),
    (bytes.fromhex("81 cb 0002 00000001 09616263"), "BYE reason of 9 octets"),
    (bytes.fromhex("a0 c9 0002 00000009 00000003"), "RR profile extension of 1 octets"),
])
def test_malformed_rtcp_is_a_one_line_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_rtcp(data)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("packet", "message"), [
    (ReceiverReport(1, (ReportBlock(1, 0, 0x800000, 0, 0),)), "does not fit 24 bits"),
    (ReceiverReport(1, (ReportBlock(1, 256, 0, 0, 0),)), "fraction lost 256"),
    (ReceiverReport(1 << 32), "RR field out of range"),
    (SenderReport(1, 1 << 64, 0, 0, 0), "SR field out of range"),
    (ReceiverReport(1, (BLOCK,) * 32), "the count field holds 0-31"),
    (Sdes((SdesChunk(1, ((1, bytes(256)),)),)), "at most 255 octets"),
    (Bye((1,), b"x" * 256), "at most 255"),
    (ReceiverReport(1, (), b"abc"), "not whole words"),
])
def test_pack_refuses_what_does_not_fit(packet: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pack_rtcp([packet])  # type: ignore[list-item]


def test_ntp_timestamps() -> None:
    # RFC 3550 4: 1900 to 1970 is 2,208,988,800 s; the fraction is the low 32 bits.
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(0.5) == (2_208_988_800 << 32) | 0x8000_0000
    assert unix_from_ntp(ntp_from_unix(1_700_000_000.25)) == 1_700_000_000.25
    assert ntp_middle(0x1122_3344_5566_7788) == 0x3344_5566
    assert dlsr_units(1.5) == 0x1_8000 and dlsr_units(-1) == 0


def test_round_trip_time_of_rfc3550_6_4_1() -> None:
    """RFC 3550 6.4.1's worked example: A = 0xb710:8000 (46864.5 s), LSR = 0xb705:2000
    (46853.125 s), DLSR = 0x0005:4000 (5.25 s) give a round trip of 6.125 s."""
    arrival = 0xB710_8000 << 16
    block = ReportBlock(1, 0, 0, 0, 0, last_sr=0xB705_2000, delay_since_last_sr=0x0005_4000)
    assert round_trip_seconds(arrival, block) == 6.125
    assert round_trip_seconds(arrival, ReportBlock(1, 0, 0, 0, 0)) is None


@given(st.binary(max_size=300))
@settings(max_examples=1500, deadline=None)
def test_any_octets_parse_or_raise_value_error(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except ValueError as error:
        assert "\n" not in str(error)
        return
    assert packets and parse_rtcp(pack_rtcp(packets)) == packets


def test_a_ragged_unknown_packet_packs_back_with_rtcp_padding() -> None:
    app = UnknownRtcp(204, 0, b"abcde")
    data = pack_rtcp([app])
    assert data == bytes.fromhex("a0 cc 0002") + b"abcde\x00\x00\x03"
    assert parse_rtcp(data) == [app]


blocks = st.builds(ReportBlock, st.integers(0, 0xFFFFFFFF), st.integers(0, 255),
                   st.integers(-0x800000, 0x7FFFFF), st.integers(0, 0xFFFFFFFF),
                   st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
                   st.integers(0, 0xFFFFFFFF))
words = st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])
ssrcs = st.integers(0, 0xFFFFFFFF)
rtcp = st.one_of(
    st.builds(SenderReport, ssrcs, st.integers(0, (1 << 64) - 1), ssrcs, ssrcs, ssrcs,
              st.lists(blocks, max_size=3).map(tuple), words),
    st.builds(ReceiverReport, ssrcs, st.lists(blocks, max_size=3).map(tuple), words),
    st.builds(Sdes, st.lists(st.builds(SdesChunk, ssrcs, st.lists(st.tuples(
        st.integers(1, 255), st.binary(max_size=20)), max_size=3).map(tuple)),
        max_size=3).map(tuple)),
    st.builds(Bye, st.lists(ssrcs, max_size=4).map(tuple), st.none() | st.binary(max_size=30)),
    st.builds(UnknownRtcp, st.integers(204, 223), st.integers(0, 31), st.binary(max_size=9)))


@given(st.lists(rtcp, min_size=1, max_size=4))
@settings(max_examples=400, deadline=None)
def test_pack_parse_round_trip(packets: list[object]) -> None:
    assert parse_rtcp(pack_rtcp(packets)) == packets  # type: ignore[arg-type]
