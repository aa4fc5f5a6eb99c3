"""The text of a failed journal expectation (``wait_for``, ``verify``).

Its first line is what pytest's short summary (``FAILED test_x.py::test - ...``)
shows, so it carries the whole verdict: what was expected, and what arrived instead,
down to the header values of the closest request when a header filter missed. The
lines after it list the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..uas.outcome import SENT
from .record import JournalEntry, Query

# How many entries the first line names before it only counts the rest: it has to
# fit a terminal's summary line, and the journal listing below has them all.
NAMED = 2


@dataclass(frozen=True, slots=True)
class Miss:
    """An entry that did not match a query, and each filter that failed on it."""

    entry: JournalEntry
    failed: tuple[str, ...]  # e.g. "X-Foo: 'baz', not 'bar*'"


def _short(entry: JournalEntry) -> str:
    sent = "sent " if entry.direction == SENT else ""
    return f"#{entry.seq} {sent}{entry.method or '(unparsed)'} {entry.uri or ''}".rstrip()


def misses(query: Query, entry: JournalEntry) -> tuple[str, ...]:
    """The filters of ``query`` that ``entry`` fails, each with the value it had
    (``since`` is not one: an older entry is no near miss, just out of the window).
    Each filter is tested by a Query of that filter alone, so that this never
    disagrees with ``Query.matches``."""
    failed: list[str] = []
    if query.method is not None and not Query(method=query.method).matches(entry):
        failed.append(f"method {entry.method!r}, not {query.method!r}")
    if query.uri is not None and not Query(uri=query.uri).matches(entry):
        failed.append(f"URI {entry.uri!r}, not {query.uri!r}")
    if query.rule is not None and not Query(rule=query.rule).matches(entry):
        failed.append(f"rule {entry.rule or 'none'}, not {query.rule!r}")
    if query.direction is not None and not Query(direction=query.direction).matches(entry):
        failed.append(f"direction {entry.direction!r}, not {query.direction!r}")
    if query.code is not None and not Query(code=query.code).matches(entry):
        failed.append(f"codes {entry.codes}, not {query.code}")
    for name, pattern in query.headers:
        if not Query(headers=((name, pattern),)).matches(entry):
            value = entry.header(name)
            failed.append(f"no {name} header, not {pattern!r}" if value is None
                          else f"{name}: {value!r}, not {pattern!r}")
    return tuple(failed)


def closest(query: Query, entries: Sequence[JournalEntry]) -> list[Miss]:
    """The entries in the query's window that fail the fewest of its filters (all of
    them on a tie, oldest first); none when nothing in the window arrived."""
    found = [Miss(e, misses(query, e)) for e in entries
             if query.since is None or e.seq > query.since]
    found = [m for m in found if m.failed]
    if not found:
        return []
    fewest = min(len(m.failed) for m in found)
    return [m for m in found if len(m.failed) == fewest]


def _named(items: list[str], total: int) -> str:
    more = total - len(items)
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def arrived(query: Query, matched: Sequence[JournalEntry], journal: Sequence[JournalEntry],
            want_more: bool) -> str:
    """What arrived, for the end of the first line. ``want_more``: too few matched,
    so the near misses matter; otherwise too many did, so the matches do."""
    if not want_more:
        return ": " + _named([_short(e) for e in matched[:NAMED]], len(matched))
    if not journal:
        return "; nothing arrived at all"
    near = closest(query, journal)
    if not near:  # everything in the window matched; what is older does not count
        return ("" if matched or query.since is None
                else f"; nothing arrived after #{query.since}")
    shown = [f"{_short(m.entry)} had {'; '.join(m.failed)}" for m in near[:NAMED]]
    return "; closest: " + _named(shown, len(near))


def describe(entries: Sequence[JournalEntry], query: Query | None = None) -> str:
    """The journal listing, one line an entry; with the query's header filters, the
    values each entry had for those headers."""
    if not entries:
        return "  (the journal is empty: nothing arrived)"
    names = [name for name, _ in query.headers] if query is not None else []
    lines = []
    for e in entries:
        miss = ""
        if e.near_miss is not None:
            miss = f"; closest {e.near_miss.rule} failed on {', '.join(e.near_miss.failed)}"
        had = "".join(f"; {name}: {e.header(name)!r}" if e.header(name) is not None
                      else f"; no {name}" for name in dict.fromkeys(names))
        # A sent request names where it went; what it got is what the client answered.
        sent = "sent to " if e.direction == SENT else ""
        lines.append(f"  #{e.seq} {sent}{e.transport}:{e.remote[0]}:{e.remote[1]} {e.method} "
                     f"{e.uri} -> {e.outcome}, answered {e.codes}{miss}{had}")
    return "\n".join(lines)


# How a call's listing shows each entry's direction: the client's request comes in,
# the responder's goes out.
ARROWS = {SENT: "<--"}
ARRIVED = "-->"


def describe_call(entries: Sequence[JournalEntry], matched: Sequence[JournalEntry]) -> str:
    """One call's entries in order, each with its direction's arrow and, for the entry
    a step found, the step's number."""
    steps = {id(e): number for number, e in enumerate(matched, 1)}
    lines = []
    for e in entries:
        step = f"  (step {steps[id(e)]})" if id(e) in steps else ""
        lines.append(f"  #{e.seq} {ARROWS.get(e.direction, ARRIVED)} {e.method} {e.uri} "
                     f"-> {e.outcome}, answered {e.codes}{step}")
    return "\n".join(lines)


def sequence_failure(steps: Sequence[Query], call_id: str | None, timeout: float,
                     best: str | None, entries: Sequence[JournalEntry],
                     matched: Sequence[JournalEntry], journal: Sequence[JournalEntry]
                     ) -> tuple[str, str]:
    """The verdict and the whole text of a sequence not found: ``best`` is the call
    that got furthest (its ``entries``, and the entry each step it passed found), and
    the first line says which step was not found after which entry."""
    wanted = " then ".join(f"({step.describe()})" for step in steps)
    where = f"in call {call_id!r}" if call_id is not None else "in one call"
    summary = f"expected {wanted} {where} within {timeout:g} s"
    step = f"step {len(matched) + 1} ({steps[len(matched)].describe()})"
    if best is None:
        verdict = ("; no entry of that call arrived" if call_id is not None
                   else "; no call arrived at all")
    elif matched:
        last = matched[-1]
        verdict = (f"; call {best!r} got to step {len(matched)} ({_short(last)}), "
                   f"then {step} was not found after #{last.seq}")
    else:
        verdict = (f"; call {best!r} has no {step}" if call_id is not None
                   else f"; no call has {step}")
    # The closest candidates for the missing step: after the last step found, in the
    # call that got furthest; anywhere when no call got past the first.
    candidates = (entries if call_id is not None else journal) if not matched else [
        e for e in entries if e.seq > matched[-1].seq]
    near = closest(steps[len(matched)], candidates)
    if near:
        verdict += "; closest: " + _named(
            [f"{_short(m.entry)} had {'; '.join(m.failed)}" for m in near[:NAMED]], len(near))
    if best is not None and (matched or call_id is not None):
        listing = (f"call {best!r} (--> received, <-- sent):\n"
                   f"{describe_call(entries, matched)}")
    else:
        listing = f"the journal holds:\n{describe(journal)}"
    return summary + verdict, f"{summary}{verdict}\n{listing}"
