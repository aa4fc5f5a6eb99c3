"""Merged-request detection (RFC 3261 8.2.2.2), for scenarios that switch it on.

A request without a To tag whose From tag, Call-ID and CSeq match a recent request
but whose top Via branch differs arrived twice along different paths (a forking
proxy): the UAS answers the second one 482 Loop Detected.
"""

from __future__ import annotations

from collections import OrderedDict


class MergedRequests:
    def __init__(self, ttl: float, max_entries: int = 65536) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str, str], tuple[str, float]] = OrderedDict()

    def is_merged(self, key: tuple[str, str, str], branch: str, now: float) -> bool:
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
