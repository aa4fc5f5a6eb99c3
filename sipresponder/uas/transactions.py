"""Server transactions for rules that answer over time (RFC 3261 17.2, 13.3.1.4).

A rule that sends provisional responses or waits before its final response makes
its transaction stateful: the engine keeps it here so that a retransmitted request
gets the last response again, a CANCEL can end it with 487, and over UDP the final
response is retransmitted until the ACK arrives. Time is passed in, never read: the
table is a plain data structure driven by the engine.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sip.headers import MAGIC_COOKIE

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..testing.journal import JournalEntry
    from .events import Send

TxnKey = tuple[str, ...]


def transaction_key(request: Request, method: str) -> TxnKey:
    """RFC 3261 17.2.3 matching: branch + sent-by + method, or the RFC 2543 fields.

    CANCEL and the ACK of a non-2xx final share the INVITE's branch, so they look up
    the INVITE transaction by passing method="INVITE".
    """
    via = request.top_via_lenient()
    branch = via.branch
    if branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
        return (branch, f"{via.host}:{via.port}", method)
    try:
        from_tag = request.from_.tag or ""
    except (KeyError, ValueError):
        from_tag = ""
    return (request.call_id, from_tag, str(request.cseq[0]), via.raw, method)


def dialog_key(request: Request) -> TxnKey:
    """What an ACK (for 2xx it has a new branch) shares with its INVITE."""
    try:
        from_tag = request.from_.tag or ""
    except (KeyError, ValueError):
        from_tag = ""
    return (request.call_id, from_tag, str(request.cseq[0]))


@dataclass(slots=True)
class Transaction:
    key: TxnKey
    request: Request
    last: Send | None = None  # the response a retransmitted request gets again
    final_sent: bool = False
    acked: bool = False
    cancelled: bool = False
    steps: list[int] = field(default_factory=list)  # timer ids of pending responses
    retransmit_id: int | None = None
    entry: JournalEntry | None = None  # the journal entry later responses are added to


class TimerQueue:
    """Deadlines with callbacks; the transport asks for the next one and fires it."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._callbacks: dict[int, Callable[[float], list[Send]]] = {}
        self._ids = itertools.count(1)

    def add(self, when: float, callback: Callable[[float], list[Send]]) -> int:
        timer_id = next(self._ids)
        self._callbacks[timer_id] = callback
        heapq.heappush(self._heap, (when, timer_id))
        return timer_id

    def cancel(self, timer_id: int | None) -> None:
        if timer_id is not None:
            self._callbacks.pop(timer_id, None)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._callbacks:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> list[Send]:
        out: list[Send] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, timer_id = heapq.heappop(heap)
            callback = self._callbacks.pop(timer_id, None)
            if callback is not None:
                out.extend(callback(now))
        return out

    def __len__(self) -> int:
        return len(self._callbacks)
