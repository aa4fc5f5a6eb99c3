"""transport/latency.py: the per-message processing-time histogram /metrics exposes."""

from __future__ import annotations

from sipresponder.transport.latency import BUCKETS, LatencyHistogram


def test_observations_land_in_the_first_bucket_that_holds_them() -> None:
    histogram = LatencyHistogram()
    histogram.observe(BUCKETS[0])  # a bound is inclusive (Prometheus "le")
    histogram.observe(BUCKETS[0] * 1.01)
    histogram.observe(10.0)  # past every bound: +Inf
    assert histogram.counts[0] == 1
    assert histogram.counts[1] == 1
    assert histogram.counts[-1] == 1
    assert histogram.total == BUCKETS[0] + BUCKETS[0] * 1.01 + 10.0


def test_cumulative_counts_end_with_the_total_count() -> None:
    histogram = LatencyHistogram()
    for seconds in (1e-6, 3e-5, 3e-5, 0.2):
        histogram.observe(seconds)
    pairs = histogram.cumulative()
    assert [bound for bound, _ in pairs] == [*map(str, BUCKETS), "+Inf"]
    counts = [count for _, count in pairs]
    assert counts == sorted(counts)
    assert counts[-1] == 4
    assert dict(pairs)["1e-05"] == 1
    assert dict(pairs)["5e-05"] == 3
