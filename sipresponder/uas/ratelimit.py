"""Per-source token buckets: the responder must not become a reflector (issue: abuse)."""

from __future__ import annotations


class RateLimiter:
    """``rate`` requests per second per source address, bursts up to ``burst``.

    Memory is bounded: past ``max_sources`` tracked addresses, the ones whose bucket
    has refilled (idle sources) are forgotten first; a flood from spoofed addresses
    then evicts the oldest entries wholesale rather than growing without bound.
    """

    __slots__ = ("_buckets", "burst", "max_sources", "rate")

    def __init__(self, rate: float, burst: int = 0, max_sources: int = 65536) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, int(rate)))
        self.max_sources = max_sources
        # address -> [tokens, last refill time, last time an over-limit reply was allowed]
        self._buckets: dict[str, list[float]] = {}

    def allow(self, address: str, now: float) -> bool:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_sources:
                self._evict(now)
            self._buckets[address] = [self.burst - 1.0, now, -1.0]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        bucket[0] = tokens
        return False

    def may_reject(self, address: str, now: float) -> bool:
        """At most one 503 a second to a source over its limit: the rejections must
        not become the amplified flood themselves."""
        bucket = self._buckets.get(address)
        if bucket is None or now - bucket[2] < 1.0:
            return False
        bucket[2] = now
        return True

    def _evict(self, now: float) -> None:
        full = [a for a, b in self._buckets.items()
                if b[0] + (now - b[1]) * self.rate >= self.burst]
        for address in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[address]

    def __len__(self) -> int:
        return len(self._buckets)
