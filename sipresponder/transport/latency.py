"""A fixed-bucket histogram of per-message processing time, cheap enough for the hot path.

prometheus-client's Histogram takes a lock per observation; this one is a bisect
and an increment, and ops.metrics turns it into a Prometheus histogram at scrape
time.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds in seconds: 10 us to 100 ms, then +Inf.
BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1)


class LatencyHistogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def observe_many(self, seconds: float, count: int) -> None:
        """``count`` messages that took ``seconds`` each (a batch's share per datagram)."""
        self.counts[bisect_left(BUCKETS, seconds)] += count
        self.total += seconds * count

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, cumulative count) pairs as Prometheus wants them."""
        out = []
        running = 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out
