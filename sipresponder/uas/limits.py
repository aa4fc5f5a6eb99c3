"""The limits that keep the responder from being abused or looping (RFC 3261 8.2.2.2).

Per-source rate limiting (token buckets), merged-request detection, and the
throttled logging of a limit being hit. All state is bounded, and time is passed
in except for the log throttle, which is about the log's own rate.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from ..sip.message import Request

log = logging.getLogger("sipresponder")
# Per-request and per-connection lines: a logger of their own, kept at WARNING unless
# --log-level info or debug asks, so that start-up lines at INFO do not turn them on.
traffic_log = logging.getLogger("sipresponder.requests")

# What to do with a request over its source's rate: drop it silently, or answer
# 503 (settings.rate_limit_action = "503"), at most once a second per source.
Verdict = Literal["drop", "503"]
DROP: Final = "drop"
REJECT: Final = "503"


class RateLimiter:
    """``rate`` requests per second per source address, bursts up to ``burst``.

    Memory is bounded: past ``max_sources`` tracked addresses, the ones whose bucket
    has refilled (idle sources) are forgotten first; a flood from spoofed addresses
    then evicts the oldest entries wholesale rather than growing without bound.
    """

    __slots__ = ("_buckets", "action", "burst", "max_sources", "rate")

    def __init__(
        self, rate: float, burst: int = 0, action: str = DROP, max_sources: int = 65536
    ) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, int(rate)))
        self.action = action
        self.max_sources = max_sources
        # address -> [tokens, last refill time, last time an over-limit reply was allowed]
        self._buckets: dict[str, list[float]] = {}

    def verdict(self, address: str, now: float) -> Verdict | None:
        """None when ``address`` is within its rate; else what to do with the request.

        At most one 503 a second goes to a source over its limit: the rejections
        must not become the amplified flood themselves.
        """
        if self.allow(address, now):
            return None
        if self.action == DROP:
            return DROP
        bucket = self._buckets[address]
        if now - bucket[2] < 1.0:
            return DROP
        bucket[2] = now
        return REJECT

    def allow(self, address: str, now: float) -> bool:
        """Take a token from ``address``'s bucket, refilled for the time since last."""
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

    def _evict(self, now: float) -> None:
        full = [a for a, b in self._buckets.items()
                if b[0] + (now - b[1]) * self.rate >= self.burst]
        for address in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[address]

    def __len__(self) -> int:
        return len(self._buckets)


class MergedRequests:
    """Merged-request detection (RFC 3261 8.2.2.2), for scenarios that switch it on.

    "If the request has no tag in the To header field, the UAS core MUST check the
    request against ongoing transactions. If the From tag, Call-ID, and CSeq exactly
    match those associated with an ongoing transaction, but the request does not
    match that transaction (based on the matching rules in Section 17.2.3), the UAS
    core SHOULD generate a 482 (Loop Detected) response": the request arrived twice
    along different paths (a forking proxy). A request is remembered ``ttl`` seconds.
    """

    __slots__ = ("_seen", "max_entries", "ttl")

    def __init__(self, ttl: float, max_entries: int = 65536) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        # (From tag, Call-ID, CSeq) -> (top Via branch, first seen)
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()

    def is_merged(self, request: Request, branch: str, now: float) -> bool:
        """Whether ``request`` (top Via ``branch``) is a merged copy of a recent one.

        CANCEL shares its INVITE's From tag, Call-ID and CSeq number by design
        (RFC 3261 9.1), so it is never merged.
        """
        if request.to.tag is not None or request.method == "CANCEL":
            return False
        key = (request.from_.tag or "", request.call_id, request.fields["cseq"][0])
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if now - oldest[1] < self.ttl and len(seen) < self.max_entries:
                break
            seen.popitem(last=False)
        previous = seen.get(key)
        if previous is None:
            seen[key] = (branch, now)
            return False
        return previous[0] != branch

    def __len__(self) -> int:
        return len(self._seen)


class LimitLog:
    """Every hit at INFO; at most one WARNING a second for each kind of limit."""

    __slots__ = ("_clock", "_last")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}

    def hit(self, kind: str, message: str, *args: object) -> None:
        now = self._clock()
        extra = {"event": "limit", "limit": kind}
        if now - self._last.get(kind, -1e9) >= 1.0:
            self._last[kind] = now
            log.warning(message, *args, extra=extra)
        elif traffic_log.isEnabledFor(logging.INFO):
            traffic_log.info(message, *args, extra=extra)
