"""media/stats.py: RFC 3550 A.1 sequence tracking (wrap, probation, restart), A.3 loss
and fraction, A.8 jitter."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media.stats import ReceptionStats


def feed(stats: ReceptionStats, seqs: list[int], start: float = 100.0) -> None:
    """Packets 20 ms apart with timestamps 160 apart: no jitter."""
    for index, seq in enumerate(seqs):
        stats.update(seq, 160 * index, start + 0.02 * index, 8000, octets=160)


def test_a_clean_stream() -> None:
    stats = ReceptionStats()
    feed(stats, list(range(1000, 1050)))
    assert (stats.packets, stats.octets, stats.expected, stats.lost) == (50, 8000, 50, 0)
    assert stats.fraction_lost == 0.0 and stats.jitter == pytest.approx(0.0, abs=1e-9)
    assert stats.first_arrival == 100.0 and stats.last_arrival == pytest.approx(100.98)


def test_probation_packets_count_once_valid() -> None:
    stats = ReceptionStats()
    assert stats.update(7, 0, 0.0) is False      # on probation (A.1: MIN_SEQUENTIAL 2)
    assert (stats.expected, stats.lost) == (0, 0)
    assert stats.update(8, 160, 0.02) is True    # valid: both packets counted
    assert (stats.expected, stats.lost) == (2, 0)


def test_sequence_wrap() -> None:
    stats = ReceptionStats()
    feed(stats, [65533, 65534, 65535, 0, 1, 2])
    assert (stats.expected, stats.lost, stats.extended_max) == (6, 0, 65536 + 2)


def test_probation_run_across_the_wrap() -> None:
    stats = ReceptionStats()
    feed(stats, [65535, 0, 1])
    assert (stats.expected, stats.lost) == (3, 0)


def test_loss_and_fraction() -> None:
    stats = ReceptionStats()
    feed(stats, [s for s in range(100) if s % 10 != 5])   # 10 of 100 lost
    assert (stats.expected, stats.lost) == (100, 10)
    assert stats.fraction_lost == pytest.approx(0.1)
    block = stats.report_block(0xABCD)
    assert block.ssrc == 0xABCD
    assert block.fraction_lost == (10 << 8) // 100 and block.cumulative_lost == 10
    assert block.highest_sequence == 99
    # The next interval has no loss: A.3's fraction is per interval, the total stays.
    feed(stats, list(range(100, 120)), start=200.0)
    again = stats.report_block(0xABCD)
    assert again.fraction_lost == 0 and again.cumulative_lost == 10


def test_duplicates_make_loss_negative_and_fraction_zero() -> None:
    stats = ReceptionStats()
    feed(stats, [1, 2, 3, 3, 3, 4])
    assert stats.lost == -2 and stats.fraction_lost == 0.0
    assert stats.report_block(1).cumulative_lost == -2


def test_reordered_packet_within_misorder_is_received() -> None:
    stats = ReceptionStats()
    feed(stats, [1, 2, 4, 3, 5])
    assert (stats.expected, stats.lost) == (5, 0)


def test_a_large_jump_then_restart() -> None:
    """A.1: one packet far ahead is dropped as invalid; a second in sequence after it
    means the source restarted (e.g. a new sender behind the same SSRC)."""
    stats = ReceptionStats()
    feed(stats, [10, 11, 12])
    assert stats.update(40000, 0, 1.0) is False
    assert stats.update(40001, 160, 1.02) is True
    assert stats.extended_max == 40001 and stats.expected == 1
    assert stats.packets == 5


def test_jitter_of_a_regular_offset() -> None:
    """A.8: every other packet 5 ms late: |D| is 40 units each time, so J tends to 40
    units (5 ms at 8 kHz) from below, J += (|D| - J) / 16."""
    stats = ReceptionStats()
    for index in range(400):
        late = 0.005 if index % 2 else 0.0
        stats.update(index, 160 * index, 0.02 * index + late, 8000)
    assert stats.jitter == pytest.approx(0.005, rel=1e-3)
    assert stats.report_block(1).jitter == 39  # timestamp units, truncated


def test_jitter_across_a_timestamp_wrap() -> None:
    stats = ReceptionStats()
    base = 0xFFFFFFFF - 800
    for index in range(20):
        stats.update(index, (base + 160 * index) & 0xFFFFFFFF, 0.02 * index, 8000)
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_cumulative_loss_is_clamped_to_24_bits() -> None:
    stats = ReceptionStats()
    feed(stats, [0, 1])
    # Thousands of steps of 2,999 (just under MAX_DROPOUT): each a gap, all lost.
    seq, lost = 1, 0
    for _ in range(3000):
        seq += 2999
        lost += 2998
        stats.update(seq & 0xFFFF, 0, 1.0)
    assert stats.lost == lost > 0x7FFFFF
    assert stats.report_block(1).cumulative_lost == 0x7FFFFF


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
                          st.floats(0, 1e6), st.sampled_from([8000, 16000, 48000])),
                max_size=60))
@settings(max_examples=300, deadline=None)
def test_any_sequence_of_packets_keeps_the_figures_sane(
        packets: list[tuple[int, int, float, int]]) -> None:
    stats = ReceptionStats()
    for seq, ts, arrival, rate in packets:
        stats.update(seq, ts, arrival, rate, octets=1)
    assert stats.packets == stats.octets == len(packets)
    assert 0.0 <= stats.fraction_lost <= 1.0 and stats.jitter >= 0.0
    block = stats.report_block(5)
    assert 0 <= block.fraction_lost <= 255 and -0x800000 <= block.cumulative_lost <= 0x7FFFFF
