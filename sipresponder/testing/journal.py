"""The request journal: what the responder received and what it answered, for tests.

A bounded ring buffer of entries, newest last. Each entry keeps the raw octets, the
parsed start line and header fields, the rule that matched (or, for a request that
fell through to the default, the closest rule and which of its conditions failed),
and every response sent for it, including the ones a stateful rule sends later.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario.model import Scenario
    from ..sip.message import Request
    from ..uas.events import Source
    from ..uas.outcome import Outcome


@dataclass(slots=True)
class NearMiss:
    """The rule that came closest to matching a request that matched none."""

    rule: str
    failed: list[str]  # the conditions that did not hold, e.g. "method in ['INVITE']"


@dataclass(slots=True)
class JournalEntry:
    seq: int
    time: float  # the engine's clock (the event loop's time in a running server)
    transport: str
    remote: tuple[str, int]
    raw: bytes
    method: str | None = None
    uri: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    rule: str | None = None  # label of the matched rule; None if none answered
    outcome: str = ""  # "rule 'busy' (#2)", "rejected: 400 ...", "dropped: ..."
    near_miss: NearMiss | None = None
    responses: list[bytes] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    @property
    def codes(self) -> list[int]:
        return [int(r[8:11]) for r in self.responses if r[8:11].isdigit()]


class Journal:
    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._seq = itertools.count(1)
        # Called with each entry once the engine has filled it in (e.g. to wake waiters).
        self.listeners: list[Callable[[JournalEntry], None]] = []

    def record(self, outcome: Outcome) -> None:
        """Add the entry for one handled message (a transport's ``Recorder``) and tell
        the listeners. A request that started a transaction shares its response list:
        what the transaction sends later (timer steps, a 487 after CANCEL) shows here."""
        source = outcome.source
        request = outcome.request
        rule = outcome.rule
        txn = outcome.transaction
        entry = JournalEntry(
            next(self._seq),
            outcome.time,
            source.transport,
            source.remote,
            outcome.data,
            outcome=(
                outcome.note if outcome.note is not None else rule.label if rule else ""
            ),
            responses=(
                txn.responses if txn is not None else [s.data for s in outcome.sends if s.data]
            ),
        )
        if request is not None:
            entry.method = request.method
            entry.uri = request.uri_raw
            entry.headers = request.headers
            if rule is not None:
                entry.rule = rule.label
                if rule.number == 0 and outcome.scenario.rules:
                    entry.near_miss = near_miss(request, source, outcome.scenario)
        self._entries.append(entry)
        for listener in self.listeners:
            listener(entry)

    def clear(self) -> None:
        self._entries.clear()

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def near_miss(request: Request, source: Source, scenario: Scenario) -> NearMiss:
    """The rule with the fewest failing conditions (the earliest one on a tie)."""
    best: NearMiss | None = None
    for rule in scenario.rules:
        failed = []
        if rule.methods is not None and request.method not in rule.methods:
            failed.append(f"method in {sorted(rule.methods)}")
        for condition in rule.conditions:
            try:
                ok = condition.test(request, source)
            except ValueError:
                ok = False
            if not ok:
                failed.append(condition.what)
        if best is None or len(failed) < len(best.failed):
            best = NearMiss(rule.label, failed)
    assert best is not None
    return best
