"""call/media: one call's RTP stream with a fake clock: echo as our own stream,
symmetric latching, tones, files and silence every 20 ms, DTMF both ways, the
RTP-timeout fault, and what goes to the journal."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from sipresponder.call.media import MAX_CATCH_UP, SAMPLES, MediaPlan, MediaSession, Negotiated
from sipresponder.media import g711
from sipresponder.media.dtmf import DigitCollector, sender_packets
from sipresponder.media.rtp import pack_rtp, parse_rtp
from sipresponder.media.tones import goertzel_power, tone

CLIENT = ("127.0.0.1", 40010)
PCMU = Negotiated("PCMU", 0, 101, CLIENT)


def session(plan: MediaPlan, negotiated: Negotiated = PCMU, now: float = 0.0) -> MediaSession:
    return MediaSession(plan, negotiated, now, random.Random(7))


def theirs(seq: int, timestamp: int, payload: bytes = b"\x7f" * 160, pt: int = 0,
           marker: bool = False) -> bytes:
    return pack_rtp(pt, seq, timestamp, 0xCAFE, payload, marker=marker)


def run(media: MediaSession, until: float) -> list[tuple[bytes, tuple[str, int]]]:
    out = []
    while (due := media.next_deadline()) is not None and due <= until:
        out += media.fire(due)
    return out


def test_echo_sends_back_as_our_own_stream_to_the_latched_source() -> None:
    media = session(MediaPlan("echo"))
    source = ("127.0.0.1", 50000)  # not the offer's address: symmetric RTP latches it
    sent = []
    for n in range(3):
        [(data, to)] = media.receive(theirs(1000 + n, 8000 + 160 * n, bytes([n]) * 160),
                                     source, 0.02 * n)
        assert to == source
        sent.append(parse_rtp(data))
    assert {p.ssrc for p in sent} == {media.ssrc} and media.ssrc != 0xCAFE
    assert [p.sequence - sent[0].sequence for p in sent] == [0, 1, 2]
    assert [p.timestamp - sent[0].timestamp for p in sent] == [0, 160, 320]
    assert [p.marker for p in sent] == [True, False, False]
    assert [p.payload[0] for p in sent] == [0, 1, 2]
    summary = media.summary()
    assert summary["packets_received"] == 3 and summary["packets_sent"] == 3
    assert summary["remote"] == list(source) and summary["latched"] is True


def test_packets_from_another_source_garbage_and_other_types_are_counted_not_echoed() -> None:
    media = session(MediaPlan("echo"))
    media.receive(theirs(1, 160), CLIENT, 0.0)
    assert media.receive(theirs(2, 320), ("127.0.0.1", 9), 0.02) == []  # not the latched one
    assert media.receive(b"\x00garbage", CLIENT, 0.04) == []
    assert media.receive(theirs(3, 480, pt=8), CLIENT, 0.06) == []  # PCMA was not agreed
    assert media.receive(b"\x81\xc9\x00\x01" + bytes(4), CLIENT, 0.08) == []  # an RTCP RR
    summary = media.summary()
    assert (summary["foreign"], summary["malformed"], summary["unexpected_payload_type"],
            summary["rtcp_received"], summary["packets_received"]) == (1, 1, 1, 1, 1)


def test_received_dtmf_events_become_digits_and_are_not_echoed() -> None:
    media = session(MediaPlan("echo"))
    seq, at = 1, 0.0
    for n, digit in enumerate("12#"):
        for timestamp, marker, payload in sender_packets(digit, 1000 * (n + 1)):
            assert media.receive(theirs(seq, timestamp, payload, 101, marker), CLIENT, at) == []
            seq += 1
            at += 0.05
    assert media.summary()["dtmf"] == "12#"


def test_a_tone_is_a_frame_every_20_ms_of_that_tone() -> None:
    media = session(MediaPlan("tone", tone=(1000.0,)))
    sent = [parse_rtp(data) for data, _ in run(media, 0.99)]
    assert len(sent) == 50
    assert all(p.payload_type == 0 and len(p.payload) == SAMPLES for p in sent)
    assert [p.timestamp - sent[0].timestamp for p in sent[:3]] == [0, 160, 320]
    assert [p.sequence - sent[0].sequence for p in sent[:3]] == [0, 1, 2]
    pcm = b"".join(g711.decode("PCMU", p.payload) for p in sent)
    assert goertzel_power(pcm, 1000.0) > 100 * goertzel_power(pcm, 1500.0)


def test_a_file_loops_and_silence_is_silence() -> None:
    pcm = tone(440.0, 0.05)  # 2.5 frames: the loop crosses a frame
    media = session(MediaPlan("file", pcm=pcm), Negotiated("PCMA", 8, None, CLIENT))
    sent = [parse_rtp(data).payload for data, _ in run(media, 0.19)]
    decoded = b"".join(g711.decode("PCMA", p) for p in sent)
    expected = g711.decode("PCMA", g711.encode("PCMA", (pcm * 4)[:len(decoded)]))
    assert decoded == expected
    quiet = session(MediaPlan("silence"))
    [first, *_] = [parse_rtp(data).payload for data, _ in run(quiet, 0.1)]
    assert first == g711.silence("PCMU", SAMPLES)


def test_stop_after_is_an_rtp_timeout_and_none_sends_nothing() -> None:
    media = session(MediaPlan("tone", stop_after=0.5))
    assert len(run(media, 2.0)) == 25
    assert media.next_deadline() is None
    silent = session(MediaPlan("none"))
    assert run(silent, 2.0) == [] and silent.receive(theirs(1, 160), CLIENT, 0.0) == []
    assert silent.summary()["packets_received"] == 1


def test_digits_sent_after_a_delay_as_rfc4733_events() -> None:
    media = session(MediaPlan("tone", send_dtmf="12", dtmf_after=1.0))
    packets = [parse_rtp(data) for data, _ in run(media, 3.0)]
    events = [p for p in packets if p.payload_type == 101]
    assert events and all(p.payload_type in (0, 101) for p in packets)
    collector = DigitCollector()
    for p in events:
        collector.feed(p.timestamp, p.payload, p.marker)
    assert collector.digits == "12"
    assert sum(p.marker for p in events) == 2  # each event's first packet
    sequences = [p.sequence for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(sequences))
    first_event = packets.index(events[0])
    assert first_event == 50  # audio for the first second, then the digits


def test_no_digits_where_the_offer_had_no_telephone_event() -> None:
    media = session(MediaPlan("tone", send_dtmf="1"), Negotiated("PCMU", 0, None, CLIENT))
    assert all(parse_rtp(d).payload_type == 0 for d, _ in run(media, 2.0))


def test_a_stall_sends_a_few_frames_and_keeps_the_timestamps_true() -> None:
    media = session(MediaPlan("tone"))
    first = parse_rtp(media.fire(0.0)[0][0])
    late = [parse_rtp(d) for d, _ in media.fire(1.0)]
    assert len(late) == MAX_CATCH_UP
    after = parse_rtp(media.fire(media.next_deadline() or 0.0)[0][0])
    # 1 s after the first frame is 50 frames of timestamps, whatever was skipped.
    assert (after.timestamp - first.timestamp) & 0xFFFFFFFF >= 50 * SAMPLES


def test_close_stops_the_stream_and_counts_a_digit_whose_end_was_lost() -> None:
    media = session(MediaPlan("tone"))
    [(_, _, payload)] = sender_packets("5", 1000)[:1]
    media.receive(theirs(1, 1000, payload, 101, True), CLIENT, 0.0)
    assert media.summary()["dtmf"] == ""
    media.close()
    assert media.summary()["dtmf"] == "5"
    assert media.fire(1.0) == [] and media.next_deadline() is None
    assert media.receive(theirs(2, 1160), CLIENT, 1.0) == []


def test_the_summary_is_json() -> None:
    media = session(MediaPlan("echo"))
    media.receive(theirs(1, 160), CLIENT, 0.0)
    assert json.loads(json.dumps(media.summary()))["codec"] == "PCMU"


@pytest.mark.parametrize("data", [b"", b"\x80", bytes(11), b"\xff" * 40, b"\x80\x65" + bytes(10)])
def test_hostile_datagrams_never_raise(data: bytes) -> None:
    media = session(MediaPlan("echo"))
    media.receive(data, CLIENT, 0.0)
    assert media.summary()["packets_sent"] <= 1


def test_any_datagrams_from_anyone_never_raise_and_stay_bounded() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.binary(max_size=64), st.sampled_from([CLIENT, ("10.0.0.1", 1)])),
                    max_size=40))
    def check(datagrams: list[tuple[bytes, tuple[str, int]]]) -> None:
        media = session(MediaPlan("echo"))
        for n, (data, source) in enumerate(datagrams):
            for sent, to in media.receive(data, source, 0.02 * n):
                assert to == media.remote and parse_rtp(sent).ssrc == media.ssrc
        summary = media.summary()
        assert summary["packets_sent"] <= len(datagrams)
        assert len(str(summary["dtmf"])) <= 256

    check()


def test_the_media_faults() -> None:
    # A payload type the answer did not agree.
    wrong = session(MediaPlan("tone", payload_type=18))
    assert {parse_rtp(d).payload_type for d, _ in run(wrong, 0.2)} == {18}
    # A late first packet: nothing for start_after, then the stream.
    late = session(MediaPlan("tone", start_after=0.5))
    assert run(late, 0.49) == []
    assert len(run(late, 0.99)) == 25
    # Loss: a share of the packets never leaves, and its sequence numbers are gaps.
    lossy = MediaSession(MediaPlan("tone", loss=0.5), PCMU, 0.0, random.Random(1))
    sent = [parse_rtp(d).sequence for d, _ in run(lossy, 1.99)]
    assert 30 < len(sent) < 70 and lossy.summary()["lost_on_purpose"] == 100 - len(sent)
    assert any((b - a) & 0xFFFF > 1 for a, b in itertools.pairwise(sent))
    # Jitter: every packet leaves within the bound, not all on their 20 ms beat.
    jittery = MediaSession(MediaPlan("echo", jitter=0.05), PCMU, 0.0, random.Random(2))
    for n in range(20):
        assert jittery.receive(theirs(n, n * 160), CLIENT, n * 0.02) == []
    released = []
    while (due := jittery.next_deadline()) is not None:
        released += [(due, parse_rtp(d).sequence) for d, _ in jittery.fire(due)]
    assert len(released) == 20 and max(t for t, _ in released) <= 19 * 0.02 + 0.05


def test_faults_are_replayed_from_a_seed() -> None:
    def sequences(seed: int) -> list[int]:
        media = MediaSession(MediaPlan("tone", loss=0.3), PCMU, 0.0, random.Random(seed))
        return [parse_rtp(d).sequence for d, _ in run(media, 1.0)]

    assert sequences(5) == sequences(5) != sequences(6)
