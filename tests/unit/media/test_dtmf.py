"""RFC 4733 telephone-events and SIP INFO digits (sipresponder/media/dtmf.py).

Against the RFC's payload layout and event table, SIPp's recorded dtmf_2833_N.pcap
packets (read here with a tiny pcap reader: no scapy, no media/rtp.py), synthetic
streams (retransmitted, lost and reordered packets, repeats, a timestamp wrap, long
events, garbage) and hypothesis properties.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media.dtmf import (
    DIGITS,
    DigitCollector,
    Event,
    code_of,
    digit_of,
    digits_from_info,
    pack_event,
    parse_event,
    sender_packets,
)

SIPP_PCAPS = Path("/usr/share/sip-tester")
PCAP_DIGITS = {**{str(n): str(n) for n in range(10)}, "star": "*", "pound": "#"}

Packet = tuple[int, bool, bytes]  # (RTP timestamp, marker, payload)


# -- a tiny pcap reader: classic libpcap, Ethernet, IPv4, UDP, RTP ----------------------------
def read_pcap(path: Path) -> list[bytes]:
    """The UDP payloads of an Ethernet/IPv4 pcap file."""
    data = path.read_bytes()
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">"}[data[:4]]
    (linktype,) = struct.unpack_from(order + "I", data, 20)
    assert linktype == 1, f"{path}: link type {linktype}, not Ethernet"
    out, at = [], 24
    while at + 16 <= len(data):
        _, _, caplen, _ = struct.unpack_from(order + "IIII", data, at)
        frame = data[at + 16 : at + 16 + caplen]
        at += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:  # IPv4, UDP
            continue
        ip = frame[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        (length,) = struct.unpack_from("!H", udp, 4)
        out.append(udp[8:length])
    return out


def rtp_fields(datagram: bytes) -> tuple[int, bool, int, bytes]:
    """(payload type, marker, timestamp, payload) of an RTP packet (RFC 3550 5.1: 12
    octets, then 4 per CSRC; no extension or padding in these captures)."""
    first, second, _seq, timestamp, _ssrc = struct.unpack_from("!BBHII", datagram)
    assert first >> 6 == 2 and not first & 0x30, "RTP version 2, no padding or extension"
    return second & 0x7F, bool(second & 0x80), timestamp, datagram[12 + 4 * (first & 0x0F):]


def sipp_pcap(name: str) -> Path:
    path = SIPP_PCAPS / f"dtmf_2833_{name}.pcap"
    if not path.is_file():
        message = f"{path} is missing (apt-get install sip-tester); the test reads it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def pcap_packets(name: str) -> list[Packet]:
    packets = []
    for datagram in read_pcap(sipp_pcap(name)):
        payload_type, marker, timestamp, payload = rtp_fields(datagram)
        assert payload_type == 101
        packets.append((timestamp, marker, payload))
    return packets


def feed_all(collector: DigitCollector, packets: list[Packet]) -> list[str]:
    """What each feed returned, Nones left out."""
    out = [collector.feed(ts, payload, marker) for ts, marker, payload in packets]
    return [d for d in out if d is not None]


# -- RFC 4733 2.3 and 3.2 ---------------------------------------------------------------------
def test_payload_layout_of_rfc4733_2_3() -> None:
    # event 8 bits | E | R | volume 6 bits | duration 16 bits, network order.
    assert pack_event(Event(5, True, 10, 800)) == bytes([5, 0x8A, 0x03, 0x20])
    assert pack_event(Event(11, False, 63, 0xFFFF)) == bytes([11, 0x3F, 0xFF, 0xFF])
    assert parse_event(bytes([5, 0x8A, 0x03, 0x20])) == Event(5, True, 10, 800)
    # R is reserved: ignored on receipt, written as zero.
    event = parse_event(bytes([1, 0xCA, 0, 160]))
    assert event == Event(1, True, 10, 160) and pack_event(event) == bytes([1, 0x8A, 0, 160])


def test_event_table_of_rfc4733_3_2() -> None:
    table = {**{str(n): n for n in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14,
             "D": 15}
    for digit, code in table.items():
        assert code_of(digit) == code and digit_of(code) == digit
        assert Event(code, False, 0, 0).digit == digit
    assert code_of("d") == 15
    assert digit_of(16) is None  # Flash: an event, not a digit
    assert Event(16, True, 0, 0).digit is None


@pytest.mark.parametrize("bad", ["", "E", "12", "**", " 1", "١"])
def test_code_of_refuses_what_is_not_a_digit(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a DTMF digit"):
        code_of(bad)


@pytest.mark.parametrize(("event", "field"), [
    (Event(256, False, 0, 0), "code"), (Event(-1, False, 0, 0), "code"),
    (Event(1, False, 64, 0), "volume"), (Event(1, False, 0, 0x10000), "duration"),
])
def test_pack_refuses_out_of_range_fields(event: Event, field: str) -> None:
    with pytest.raises(ValueError, match=f"event {field} .* out of range"):
        pack_event(event)


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x8a\x00", b"\x01\x8a\x00\xa0\x00",
                                     bytes(8)])
def test_parse_refuses_a_payload_that_is_not_four_octets(payload: bytes) -> None:
    with pytest.raises(ValueError, match=f"payload of {len(payload)} octets, not 4"):
        parse_event(payload)


# -- SIPp's recordings ------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PCAP_DIGITS))
def test_sipp_pcap_gives_its_digit_once(name: str) -> None:
    """Each dtmf_2833_N.pcap (tshark: one event, PT 101, volume 10) is 10 packets: the
    marked start with duration 0, six updates, the end packet three times (2240)."""
    packets = pcap_packets(name)
    events = [parse_event(p) for _, _, p in packets]
    assert len(packets) == 10 and len({ts for ts, _, _ in packets}) == 1
    assert [m for _, m, _ in packets] == [True] + [False] * 9
    assert [e.end for e in events] == [False] * 7 + [True] * 3
    assert {e.digit for e in events} == {PCAP_DIGITS[name]}
    collector = DigitCollector()
    returned = [collector.feed(ts, p, m) for ts, m, p in packets]
    assert returned == [None] * 7 + [PCAP_DIGITS[name], None, None]
    assert collector.digits == PCAP_DIGITS[name] and collector.pending is None


def test_sipp_pcaps_played_one_after_another() -> None:
    """An IVR test plays several pcaps on one stream: their recorded timestamps go back
    in time (9 at 67840, then 1 at 13280) and a pcap played twice repeats its
    timestamps; each play is one digit."""
    order = ["9", "1", "1", "pound", "0", "star", "star", "5"]
    collector = DigitCollector()
    returned = feed_all(collector, [p for name in order for p in pcap_packets(name)])
    assert collector.digits == "911#0**5" == "".join(returned)


# -- synthetic streams ------------------------------------------------------------------------
def event_packets(digit: str, timestamp: int) -> list[Packet]:
    return sender_packets(digit, timestamp, duration_ms=200, packet_ms=50)


def test_sender_packets_follow_rfc4733_2_5_1() -> None:
    packets = sender_packets("5", 1000, duration_ms=100, volume=10, packet_ms=20)
    assert [ts for ts, _, _ in packets] == [1000] * 7
    assert [m for _, m, _ in packets] == [True] + [False] * 6
    events = [parse_event(p) for _, _, p in packets]
    assert [(e.event, e.volume) for e in events] == [(5, 10)] * 7
    # The duration so far, one packet interval more each time; the last three end it.
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    # An event shorter than one packet: its first packet is already the end.
    short = sender_packets("#", 7, duration_ms=10, packet_ms=50)
    assert [(m, parse_event(p)) for _, m, p in short] == \
        [(True, Event(11, True, 10, 80)), (False, Event(11, True, 10, 80)),
         (False, Event(11, True, 10, 80))]


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"digit": "E"}, "not a DTMF digit"), ({"duration_ms": 0}, "must be positive"),
    ({"packet_ms": -5}, "must be positive"), ({"duration_ms": 9000}, "over 65535"),
    ({"volume": 64}, "volume 64 out of range"),
])
def test_sender_packets_refuses_bad_arguments(kwargs: dict[str, object], why: str) -> None:
    arguments: dict[str, object] = {"digit": "1", "start_timestamp": 0, **kwargs}
    with pytest.raises(ValueError, match=why):
        sender_packets(**arguments)  # type: ignore[arg-type]


def test_retransmitted_and_repeated_packets_count_once() -> None:
    packets = event_packets("7", 5000)
    noisy = [packets[0], packets[0], *packets[1:3], packets[1], *packets[3:], *packets[-3:],
             packets[2]]
    collector = DigitCollector()
    assert feed_all(collector, noisy) == ["7"]
    assert collector.digits == "7"


def test_lost_end_packets_count_when_the_next_event_starts() -> None:
    collector = DigitCollector()
    first = [p for p in event_packets("4", 8000) if not parse_event(p[2]).end]
    assert feed_all(collector, first) == []
    assert collector.pending == "4" and collector.digits == ""
    second = event_packets("2", 16000)
    assert collector.feed(*reorder(second[0])) == "4"
    assert feed_all(collector, second[1:]) == ["2"]
    assert collector.digits == "42"


def test_lost_end_packets_of_the_last_digit_count_at_flush() -> None:
    collector = DigitCollector()
    feed_all(collector, event_packets("9", 10)[:2])
    assert collector.flush() == "9" and collector.flush() is None
    assert collector.digits == "9"


def test_an_end_packet_alone_both_ends_the_lost_digit_and_counts_its_own() -> None:
    """Only the end packets of the second event arrive: one feed completes two digits."""
    collector = DigitCollector()
    feed_all(collector, event_packets("1", 100)[:2])
    assert collector.feed(*reorder(event_packets("2", 2000)[-1])) == "12"


def test_lost_start_packet() -> None:
    collector = DigitCollector()
    assert feed_all(collector, event_packets("6", 3000)[1:]) == ["6"]
    assert collector.digits == "6"


def test_same_digit_twice_is_two_digits() -> None:
    collector = DigitCollector()
    packets = event_packets("5", 1000) + event_packets("5", 4000)
    assert feed_all(collector, packets) == ["5", "5"]


def test_late_copies_of_earlier_events_are_not_new_digits() -> None:
    collector = DigitCollector()
    one, two = event_packets("1", 1000), event_packets("2", 3000)
    # Two end retransmissions of "1" arrive after "2" began, and one more after "2" ended.
    stream = [*one[:-2], *two[:2], *one[-2:], *two[2:], one[-1]]
    assert feed_all(collector, stream) == ["1", "2"]


def test_timestamp_wrap() -> None:
    collector = DigitCollector()
    packets = event_packets("3", 0xFFFFFF00) + event_packets("8", 0x60)
    assert feed_all(collector, packets) == ["3", "8"]
    # The start timestamp is taken modulo 2**32 (RFC 3550: a 32-bit field).
    assert sender_packets("0", 2**32 + 5)[0][0] == 5


def test_a_long_event_split_in_segments_is_one_digit() -> None:
    """RFC 4733 2.5.1.3: past 0xFFFF units, a segment ends at the maximum duration
    without the E bit and the next starts at that time, unmarked; here across the
    timestamp wrap."""
    start = 0xFFFF8000
    segment_one = [(start, True, pack_event(Event(0, False, 10, 400))),
                   *[(start, False, pack_event(Event(0, False, 10, 0xFFFF)))] * 3]
    next_start = (start + 0xFFFF) & 0xFFFFFFFF
    segment_two = [(next_start, False, pack_event(Event(0, False, 10, 400))),
                   *[(next_start, False, pack_event(Event(0, True, 10, 800)))] * 3]
    collector = DigitCollector()
    assert feed_all(collector, segment_one + segment_two) == ["0"]
    # Only the end packets of the second segment arrive: still the same digit.
    collector = DigitCollector()
    assert feed_all(collector, segment_one + segment_two[1:]) == ["0"]
    # The same event codes after a segment that did not reach 0xFFFF: a new digit.
    collector = DigitCollector()
    short = [(start, True, pack_event(Event(0, False, 10, 400)))]
    assert feed_all(collector, short + segment_two) == ["0", "0"]


def test_other_events_end_a_digit_but_are_not_digits() -> None:
    collector = DigitCollector()
    feed_all(collector, event_packets("A", 0)[:1])
    flash = pack_event(Event(16, True, 10, 800))
    assert collector.feed(5000, flash, True) == "A"
    assert collector.feed(5000, flash, False) is None
    assert collector.digits == "A"


def test_digits_are_bounded() -> None:
    collector = DigitCollector(max_digits=3)
    packets = [p for n in range(5) for p in event_packets("1", n * 4000)]
    assert feed_all(collector, packets) == ["1"] * 5
    assert collector.digits == "111" and collector.dropped == 2


@pytest.mark.parametrize("payload", [b"", b"\x05", b"\x05\x8a\x03", b"\x05\x8a\x03\x20\x00",
                                     bytes(160)])
def test_garbage_payload_raises_value_error_and_changes_nothing(payload: bytes) -> None:
    """A payload that is not 4 octets: ValueError, the collector as it was."""
    collector = DigitCollector()
    feed_all(collector, event_packets("3", 100)[:2])
    with pytest.raises(ValueError, match="telephone-event payload of"):
        collector.feed(100, payload, False)
    assert feed_all(collector, event_packets("3", 100)[2:]) == ["3"]


def reorder(packet: Packet) -> tuple[int, bytes, bool]:
    """(timestamp, marker, payload) in feed's argument order: (timestamp, payload, marker)."""
    timestamp, marker, payload = packet
    return timestamp, payload, marker


# -- SIP INFO ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("content_type", "body", "digits"), [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("Application/DTMF-Relay; charset=utf-8", "signal= #\r\nduration=250\r\n", "#"),
    ("application/dtmf-relay", b"SIGNAL=11\nDuration=100\n", "#"),
    ("application/dtmf-relay", b"Signal=10\r\n", "*"),
    ("application/dtmf-relay", b"Signal=a\r\n", "A"),
    ("application/dtmf-relay", b"Signal=1\r\nSignal=2\r\n", "12"),
    ("application/dtmf", b"5", "5"),
    ("application/dtmf", b"11\r\n", "#"),
    ("application/dtmf", "*", "*"),
])
def test_digits_from_info(content_type: str, body: bytes | str, digits: str) -> None:
    assert digits_from_info(content_type, body) == digits


@pytest.mark.parametrize(("content_type", "body", "why"), [
    ("application/sdp", b"Signal=5", "is not application/dtmf-relay or application/dtmf"),
    ("application/dtmf-relay", b"Duration=160\r\n", "without a Signal line"),
    ("application/dtmf-relay", b"Signal=16\r\n", "not a digit's"),
    ("application/dtmf-relay", b"Signal=\r\n", "is not a DTMF digit"),
    ("application/dtmf", b"", "is not a DTMF digit"),
    ("application/dtmf", b"12345", "is not a DTMF digit"),
    ("application/dtmf", "9" * 5000, "is not a DTMF digit"),
    ("application/dtmf", b"\xff\xfe", "is not a DTMF digit"),
])
def test_digits_from_info_refuses_with_one_line(content_type: str, body: bytes | str,
                                                why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        digits_from_info(content_type, body)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


# -- properties -------------------------------------------------------------------------------
packets_st = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.booleans(),
                                st.one_of(st.binary(max_size=8),
                                          st.builds(lambda c, f, d: bytes([c, f]) + d.to_bytes(2, "big"),
                                                    st.integers(0, 20), st.integers(0, 255),
                                                    st.integers(0, 0xFFFF)))),
                      max_size=60)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(packets_st)
def test_feed_raises_nothing_but_value_error(packets: list[Packet]) -> None:
    collector = DigitCollector(max_digits=8)
    before = ""
    for timestamp, marker, payload in packets:
        try:
            got = collector.feed(timestamp, payload, marker)
        except ValueError:
            assert len(payload) != 4
            assert collector.digits == before
            continue
        assert got is None or (1 <= len(got) <= 2 and set(got) <= set(DIGITS))
        assert collector.digits.startswith(before) and len(collector.digits) <= 8
        before = collector.digits
    collector.flush()
    assert set(collector.digits) <= set(DIGITS)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(min_size=4, max_size=4))
def test_parse_pack_round_trip(payload: bytes) -> None:
    event = parse_event(payload)
    assert pack_event(event) == payload[:1] + bytes([payload[1] & 0xBF]) + payload[2:]
    assert parse_event(pack_event(event)) == event


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(DIGITS), st.integers(10, 1000),
                          st.integers(10, 100), st.integers(0, 63)), max_size=12),
       st.integers(0, 2**32 - 1))
def test_sender_packets_round_trip(digits: list[tuple[str, int, int, int]],
                                   start: int) -> None:
    """What sender_packets sends, a DigitCollector reads back, digit for digit, in
    order, repeats included, with the timestamps advancing past each event (and
    wrapping)."""
    collector = DigitCollector()
    timestamp = start
    returned = []
    for digit, duration_ms, packet_ms, volume in digits:
        packets = sender_packets(digit, timestamp, duration_ms, volume, packet_ms)
        returned += feed_all(collector, packets)
        timestamp += duration_ms * 8 + 400  # the event, then a 50 ms gap
    assert "".join(returned) == collector.digits == "".join(d for d, _, _, _ in digits)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.sampled_from(["application/dtmf-relay", "application/dtmf"]),
       st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_digits_from_info_raises_nothing_but_value_error(content_type: str,
                                                         body: bytes | str) -> None:
    try:
        digits = digits_from_info(content_type, body)
    except ValueError:
        return
    assert digits and set(digits) <= set(DIGITS)
