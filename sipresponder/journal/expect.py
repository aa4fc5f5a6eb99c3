"""Waiting on a journal: ``wait_for``, ``verify`` and ``verify_sequence``, written once
for every host.

The tests' Responder, the admin API over one process and the gatherer of
``--workers`` all run this code. They differ only in how they learn that the journal
may have changed (``NextChange``: an event a journal listener sets, or a long poll on
the workers) and whether it has to be brought up to date before it is read
(``Refresh``: the gatherer's merge).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from .failure import arrived, describe, sequence_failure
from .record import FilterError, Journal, JournalEntry, Query

Done = Callable[[int], bool]  # given how many entries match, whether the wait is over
NextChange = Callable[[float], Awaitable[None]]  # returns on a change, or at the timeout
Refresh = Callable[[], Awaitable[None]]
Watch = Callable[[Query, float, Done], Awaitable[list[JournalEntry]]]


class JournalAssertion(AssertionError):
    """A journal expectation that did not hold: ``entries`` are the matching requests
    that did arrive, ``summary`` the verdict (``expected ..., got N``). The message's
    first line is the verdict and what arrived instead (the closest requests, with the
    values that missed), which is what pytest's short summary shows; the journal
    listing follows it. An AssertionError, so that a test fails with it."""

    def __init__(self, message: str, entries: list[JournalEntry], summary: str) -> None:
        super().__init__(message)
        self.entries = entries
        self.summary = summary

    @property
    def headline(self) -> str:
        """The first line of the message: the verdict and what arrived."""
        return str(self).split("\n", 1)[0]


class WaitTimeout(JournalAssertion):
    """``wait_for`` ran out of time: fewer matching requests than asked for arrived."""

    def __init__(self, message: str, entries: list[JournalEntry], timeout: float,
                 summary: str) -> None:
        super().__init__(message, entries, summary)
        self.timeout = timeout


class VerifyFailed(JournalAssertion):
    """``verify`` found a count it was told not to accept: ``too_many`` tells "more
    arrived than allowed" from "fewer than ``exactly`` arrived before the timeout"."""

    def __init__(self, message: str, entries: list[JournalEntry], summary: str,
                 too_many: bool) -> None:
        super().__init__(message, entries, summary)
        self.too_many = too_many


@dataclass(frozen=True, slots=True)
class Expectation:
    """How many matching requests ``verify`` accepts: ``exactly`` N (wait up to the
    timeout for N, then no more within the window) or ``at_most`` N (none is at most 0)
    over the window."""

    limit: int  # more than this, at any time up to the end of the window, fails
    exactly: bool

    @classmethod
    def build(cls, exactly: object = None, at_most: object = None, none: object = False
              ) -> Expectation:
        given = [name for name, value in (("exactly", exactly), ("at_most", at_most))
                 if value is not None] + (["none"] if none else [])
        if len(given) != 1:
            raise ValueError("verify: give exactly one of exactly=N, at_most=N or none=True"
                             + (f" (got {', '.join(given)})" if given else ""))
        if not isinstance(none, bool):
            raise ValueError(f"none: expected true or false, got {none!r}")
        if none:
            return cls(0, False)
        value = exactly if exactly is not None else at_most
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{given[0]}: expected an integer >= 0, got {value!r}")
        return cls(value, exactly is not None)

    def describe(self) -> str:
        if self.exactly:
            return f"exactly {self.limit}"
        return "no" if self.limit == 0 else f"at most {self.limit}"


class Changes:
    """Wakes the watchers of a journal in this process on each new entry and each
    later response (a ``code`` filter, a sequence's step, may hold only once the answer
    came), through an ``asyncio.Event``, so only waiters on the loop that waits on it."""

    def __init__(self, journal: Journal) -> None:
        self.event = asyncio.Event()
        journal.listeners.append(self._seen)
        journal.update_listeners.append(self._seen)

    def _seen(self, entry: JournalEntry) -> None:
        self.event.set()

    async def next(self, timeout: float) -> None:
        self.event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)


async def watch(journal: Journal, query: Query, deadline: float, done: Done,
                next_change: NextChange, refresh: Refresh | None = None
                ) -> list[JournalEntry]:
    """The entries matching ``query`` once ``done(count)`` holds or at ``deadline``
    (the loop's clock), whichever comes first."""
    loop = asyncio.get_running_loop()
    while True:
        if refresh is not None:
            await refresh()
        found = query.select(journal)
        remaining = deadline - loop.time()
        if done(len(found)) or remaining <= 0:
            return found
        await next_change(remaining)


def failure_text(journal: Journal, summary: str, query: Query, found: list[JournalEntry],
                 want_more: bool) -> str:
    entries = list(journal)
    return (f"{summary}{arrived(query, found, entries, want_more)}\n"
            f"the journal holds:\n{describe(entries, query)}")


async def wait_for(journal: Journal, watcher: Watch, query: Query, count: int,
                   timeout: float) -> list[JournalEntry]:
    """At least ``count`` entries matching ``query``; WaitTimeout when ``timeout``
    passes first (the arguments are checked by the caller)."""
    __tracebackhide__ = True  # a failed expectation is the test's line, not ours
    deadline = asyncio.get_running_loop().time() + timeout
    found = await watcher(query, deadline, lambda n: n >= count)
    if len(found) >= count:
        return found
    summary = (f"expected {count} request(s) matching {query.describe()} "
               f"within {timeout:g} s, got {len(found)}")
    raise WaitTimeout(failure_text(journal, summary, query, found, True), found, timeout,
                      summary)


async def verify(journal: Journal, watcher: Watch, query: Query, expect: Expectation,
                 within: float, timeout: float) -> list[JournalEntry]:
    """The entries matching ``query`` when their count meets ``expect``: for exactly N,
    N within ``timeout`` and then no more for ``within``; else no more than the limit
    by the end of ``within``. VerifyFailed otherwise, at once when over the limit."""
    __tracebackhide__ = True  # a failed expectation is the test's line, not ours
    loop = asyncio.get_running_loop()
    what = f"{expect.describe()} request(s) matching {query.describe()}"
    if expect.exactly:
        found = await watcher(query, loop.time() + timeout, lambda n: n >= expect.limit)
        if len(found) < expect.limit:
            summary = f"expected {what} within {timeout:g} s, got {len(found)}"
            raise VerifyFailed(failure_text(journal, summary, query, found, True), found,
                               summary, too_many=False)
    found = await watcher(query, loop.time() + within, lambda n: n > expect.limit)
    if len(found) > expect.limit:
        summary = f"expected {what} (window {within:g} s), got {len(found)}"
        raise VerifyFailed(failure_text(journal, summary, query, found, False), found,
                           summary, too_many=True)
    return found


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one call got through a sequence: ``entries`` the call's, in order,
    ``matched`` the entry found for each step so far (all of them: it passed).
    ``call_id`` None: no call was looked at (none arrived)."""

    call_id: str | None
    entries: list[JournalEntry]
    matched: list[JournalEntry]


def steps_of(steps: object) -> list[Query]:
    """The steps of a sequence from Queries or dicts of filters (Python, JSON)."""
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise FilterError("steps: expected a non-empty list of queries (objects of filters), "
                          f"got {steps!r}")
    out = []
    for number, step in enumerate(steps, 1):
        try:
            out.append(Query.of(step))
        except FilterError as exc:
            raise FilterError(f"step {number}: {exc}") from None
    return out


def follow(entries: Iterable[JournalEntry], steps: Sequence[Query],
           call_id: str | None = None) -> Progress:
    """The first call (of ``call_id`` only, when given) whose entries hold ``steps`` in
    order, others between them allowed; else the call that got furthest (the earliest
    on a tie). A retransmitted request is no step: it is the same request again.
    Taking the earliest match of each step is never worse than a later one, so one
    pass per call decides."""
    calls: dict[str, list[JournalEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.seq):
        key = entry.call_id
        if key is None or (call_id is not None and key != call_id):
            continue
        calls.setdefault(key, []).append(entry)
    best = Progress(None, [], [])
    for key, members in calls.items():
        matched: list[JournalEntry] = []
        for entry in members:
            if (len(matched) < len(steps) and entry.kind != "retransmission"
                    and steps[len(matched)].matches(entry)):
                matched.append(entry)
        if len(matched) == len(steps):
            return Progress(key, members, matched)
        if best.call_id is None or len(matched) > len(best.matched):
            best = Progress(key, members, matched)
    return best


async def verify_sequence(journal: Journal, watcher: Watch, steps: Sequence[Query],
                          call_id: str | None, timeout: float) -> list[JournalEntry]:
    """The entry of each step once one call (``call_id``'s, when given) holds ``steps``
    in order, within ``timeout``; VerifyFailed saying which step was not found after
    which entry otherwise."""
    __tracebackhide__ = True  # a failed expectation is the test's line, not ours
    if not steps:
        raise FilterError("steps: expected at least one query")
    progress = Progress(call_id, [], [])

    def done(_: int) -> bool:
        nonlocal progress
        progress = follow(journal, steps, call_id)
        return len(progress.matched) == len(steps)

    await watcher(Query(), asyncio.get_running_loop().time() + timeout, done)
    if len(progress.matched) == len(steps):
        return progress.matched
    summary, text = sequence_failure(steps, call_id, timeout, progress.call_id,
                                     progress.entries, progress.matched, list(journal))
    raise VerifyFailed(text, progress.matched, summary, too_many=False)
