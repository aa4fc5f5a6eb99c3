"""The request journal: what the responder received and what it answered, and the
requests it sent itself (the far end's, uac/) with what the client answered.

A bounded ring buffer of entries, newest last. Each entry keeps the raw octets, the
parsed start line and header fields, the rule that matched (or, for a request that
fell through to the default, the closest rule and which of its conditions failed),
and every response sent for it, including the ones a stateful rule sends later and
the retransmissions (marked): an entry shows what crossed the wire, in the wire's order
(``Journal.stamp``).
"""

from __future__ import annotations

import difflib
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from ..scenario.globs import glob_match
from ..sip.message import NotARequest, parse_request
from ..sip.transports import MESSAGE_FRAMED
from ..uas.outcome import CANCELLED, DIRECTIONS, RECEIVED, RESPONSE_NOTE, SENT, note_kind

if TYPE_CHECKING:
    from ..call.media import MediaSession
    from ..scenario.model import Rule, Scenario
    from ..sip.message import Request
    from ..uac.exchange import Exchange
    from ..uas.events import Source
    from ..uas.outcome import Outcome
    from ..uas.transactions import Transaction


@dataclass(slots=True)
class NearMiss:
    """The rule that came closest to matching a request that matched none."""

    rule: str
    failed: list[str]  # the conditions that did not hold, e.g. "method in ['INVITE']"


@dataclass(slots=True)
class JournalEntry:
    seq: int
    # When the message arrived, on the journal's clock (``Journal.stamp``: monotonic,
    # in whole microseconds, in the order of the wire), like every time in the entry.
    time: float
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
    # Wall-clock arrival (aware, UTC) for people and logs: ``time`` is a monotonic
    # clock, good for intervals between entries but meaningless as a date.
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # A request the compiled path answered is recorded unparsed (its octets, rule and
    # response): method, uri, headers and near_miss are filled in from ``raw`` when the
    # journal is read (``materialize``), not on the hot path.
    unparsed: tuple[Scenario, Source, Rule | None] | None = None
    # For the console's ladder: the responder's own address, when each response left
    # (the journal's clock, like ``time``; parallel to ``responses``) and the matched
    # rule's number. What reading can derive (the Call-ID, the kind) is derived when
    # read: recording stays cheap.
    local: tuple[str, int] = ("", 0)
    response_times: list[float] = field(default_factory=list)
    rule_number: int | None = None
    # Parallel to ``responses``: True where the response repeats one already sent
    # (Timer G until the ACK, the last response again for a retransmitted request).
    # Shared with the transaction like ``responses``; shorter (an entry built by hand,
    # or copied from an older worker) means False for the rest.
    retransmitted: list[bool] = field(default_factory=list)
    # RECEIVED: a request that reached the responder, ``responses`` what it answered;
    # SENT: one the responder sent (``Journal.record_sent``), ``remote`` where it went,
    # ``responses`` what the client answered.
    direction: str = RECEIVED
    # The call's RTP stream (call/media.py), live, on the entry of the INVITE whose 2xx
    # opened it: its ``summary()`` is the entry's `media`.
    media: MediaSession | None = None

    @property
    def call_id(self) -> str | None:
        return self.header("call-id") or self.header("i")  # RFC 3261 7.3.3 compact form

    @property
    def cseq(self) -> str | None:
        return self.header("cseq")

    @property
    def kind(self) -> str:
        """What became of the message, one of uas.outcome.KINDS (a request the
        responder sent is ``sent``, whatever came back: ``codes`` says)."""
        if self.direction == SENT:
            return SENT
        answered = self.rule is not None and self.outcome == self.rule
        return note_kind(None if answered else self.outcome or None, self.rule is not None)

    @property
    def received_at_text(self) -> str:
        """``received_at`` in RFC 3339, e.g. ``2026-11-28T01:58:33.123456Z``."""
        return rfc3339(self.received_at)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for key, value in self.headers:
            if key.lower() == lower:
                return value
        return None

    def retransmission(self, index: int) -> bool:
        """Whether response ``index`` repeats one already sent (``retransmitted``)."""
        flags = self.retransmitted
        return index < len(flags) and flags[index]

    @property
    def codes(self) -> list[int]:
        """The status codes the request was answered with (by the responder, or for a
        request it sent, by the client), retransmissions left out:
        what a test asserts does not grow while a UDP client has not ACKed yet
        (``responses`` holds every octet sent, ``retransmitted`` says which repeat)."""
        return [int(r[8:11]) for i, r in enumerate(self.responses)
                if r[8:11].isdigit() and not self.retransmission(i)]


def rfc3339(moment: datetime) -> str:
    """An aware datetime as RFC 3339 in UTC, with microseconds and a ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Journal:
    """The entries, and the one clock every time in them is read from.

    Times are the journal's own, never the engine's: a running server's engine clock
    is its event loop's, which uvloop keeps in whole milliseconds, while the wire
    (and ``received_at``) has microseconds. ``stamp`` reads ``clock`` (monotonic),
    rounds it to the microsecond and keeps every stamp later than the one before, so
    that sorting an entry's request and responses, or many entries', by time gives
    the order they crossed the wire in: the request is stamped when it is recorded,
    before the transport sends what it caused, and a later response when its
    transaction tells the journal, just before it is sent.
    """

    def __init__(self, size: int = 1000, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.wall_clock = wall_clock  # seconds since the epoch, for received_at
        self.clock = clock  # seconds, monotonic: every time in an entry
        self._stamped = -1  # the last stamp, in microseconds
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._seq = itertools.count(1)
        # Called with each entry once the engine has filled it in (e.g. to wake waiters);
        # one the compiled path answered is still unparsed: see materialize().
        self.listeners: list[Callable[[JournalEntry], None]] = []
        # Called with an entry when its transaction sent it a later response.
        self.update_listeners: list[Callable[[JournalEntry], None]] = []
        self.clear_listeners: list[Callable[[], None]] = []  # called after clear()
        # Matches per rule number, for the scenario that made them (a swap restarts).
        self.hits: Counter[int] = Counter()
        self.hits_scenario: Scenario | None = None

    def stamp(self) -> float:
        """Now on ``clock``, in whole microseconds, later than every earlier stamp."""
        return self._reserve(1) / 1_000_000

    def _reserve(self, count: int) -> int:
        """The first of ``count`` consecutive stamps from now, in microseconds: a request
        and the responses sent right after it is recorded, one clock read for all."""
        # Integer microseconds: round(t, 6) costs a microsecond itself (a decimal
        # conversion) on the path of every journaled request.
        micros = int(self.clock() * 1_000_000 + 0.5)
        if micros <= self._stamped:
            micros = self._stamped + 1
        self._stamped = micros + count - 1
        return micros

    def record(self, outcome: Outcome) -> None:
        """Add the entry for one handled message (a transport's ``Recorder``) and tell
        the listeners. A request that started a transaction shares its response list:
        what the transaction sends later (timer steps, a 487 after CANCEL, Timer G's
        retransmissions) shows here. A CANCEL's entry holds its own 200 only: the 487
        it caused belongs to the INVITE's entry, stamped after the CANCEL's."""
        if outcome.note is RESPONSE_NOTE:
            return  # a response to our own request: it joined that request's entry
        source = outcome.source
        request = outcome.request
        rule = outcome.rule
        txn = outcome.transaction
        ended = outcome.ended
        if txn is not None:
            responses, repeats = txn.responses, txn.retransmitted
        else:
            if ended is None:
                responses = [s.data for s in outcome.sends if s.data]
            else:
                responses = [s.data for s in outcome.sends if s.data and not any(
                    s.data is r for r in ended.responses)]
            note = outcome.note
            # A retransmitted request gets the transaction's last response again.
            repeats = [note is not None and note.startswith("retransmission")] * len(responses)
        count = len(responses)
        first = self._reserve(1 + count)
        now = first / 1_000_000
        # One response is the common case: no comprehension for it (its own frame).
        times = [(first + 1) / 1_000_000] if count == 1 else [
            (first + i) / 1_000_000 for i in range(1, 1 + count)]
        entry = JournalEntry(
            next(self._seq),
            now,
            source.transport,
            source.remote,
            outcome.data,
            outcome=(
                outcome.note if outcome.note is not None else rule.label if rule else ""
            ),
            responses=responses,
            received_at=datetime.fromtimestamp(self.wall_clock(), UTC),
            local=source.local,
            response_times=times,
            retransmitted=repeats,
        )
        if txn is not None:
            txn.on_response = partial(self._updated, entry, txn)
            entry.media = txn.media
            if txn.media is not None:
                txn.media.on_digits = partial(self._media_changed, entry)
        if rule is not None:
            number = entry.rule_number = rule.number
            if outcome.scenario is not self.hits_scenario:
                self.hits.clear()
                self.hits_scenario = outcome.scenario
            self.hits[number] += 1
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
        if ended is not None and ended.on_response is not None:
            ended.on_response()  # the INVITE's 487, after the CANCEL and its 200

    def record_answered(self, data: bytes, source: Source, time: float, scenario: Scenario,
                        rule: Rule | None, response: bytes | None, note: str | None) -> None:
        """Add the entry for a message the compiled path handled (uas/fast.py): the
        answer ``rule`` gave (``response``), or none with ``note`` (an absorbed ACK).
        Nothing is parsed here; ``materialize`` does it when the journal is read.
        ``time`` is the engine's clock: the entry's times are stamped (``stamp``)."""
        first = self._reserve(2 if response else 1)
        entry = JournalEntry(
            next(self._seq),
            first / 1_000_000,
            source.transport,
            source.remote,
            data,
            rule=rule.label if rule is not None else None,
            outcome=note if note is not None else rule.label if rule is not None else "",
            responses=[response] if response else [],
            received_at=datetime.fromtimestamp(self.wall_clock(), UTC),
            unparsed=(scenario, source, rule),
            local=source.local,
            response_times=[(first + 1) / 1_000_000] if response else [],
            retransmitted=[False] if response else [],
        )
        if rule is not None:
            number = entry.rule_number = rule.number
            if scenario is not self.hits_scenario:
                self.hits.clear()
                self.hits_scenario = scenario
            self.hits[number] += 1
        self._entries.append(entry)
        # A listener that reads the entry's parsed fields calls materialize(entry)
        # first; the Responder's, which only wakes its waiters, costs no parse.
        for listener in self.listeners:
            listener(entry)

    def record_sent(self, exchange: Exchange) -> None:
        """Add the entry for a request the responder sends (a ``SentRecorder``, told
        before its octets leave) and tell the listeners. The entry shares the
        exchange's response lists, as a received request's shares its transaction's,
        and ``exchange.on_response`` stamps each later response and tells the update
        listeners."""
        datagram = exchange.transport in MESSAGE_FRAMED
        method: str | None = exchange.method
        uri: str | None = None
        headers: list[tuple[str, str]] = []
        try:
            request = parse_request(exchange.data, datagram=datagram)
        except (NotARequest, ValueError):  # the far end writes what parses; never crash
            pass
        else:
            method, uri, headers = request.method, request.uri_raw, request.headers
        responses = exchange.responses
        first = self._reserve(1 + len(responses))
        entry = JournalEntry(
            next(self._seq),
            first / 1_000_000,
            exchange.transport,
            exchange.remote,
            exchange.data,
            method,
            uri,
            headers,
            outcome=exchange.note,
            responses=responses,
            received_at=datetime.fromtimestamp(self.wall_clock(), UTC),
            local=exchange.local,
            response_times=[(first + i) / 1_000_000 for i in range(1, 1 + len(responses))],
            retransmitted=exchange.retransmitted,
            direction=SENT,
        )
        exchange.on_response = partial(self._sent_updated, entry, exchange)
        self._entries.append(entry)
        for listener in self.listeners:
            listener(entry)

    def _sent_updated(self, entry: JournalEntry, exchange: Exchange) -> None:
        """The client answered ``entry`` (or its exchange ended without a final): stamp
        what came, take the note, and tell."""
        times = entry.response_times
        while len(times) < len(entry.responses):
            times.append(self.stamp())
        entry.outcome = exchange.note
        for listener in self.update_listeners:
            listener(entry)

    def _updated(self, entry: JournalEntry, txn: Transaction) -> None:
        """``txn`` sent ``entry`` a later response (or more): stamp it, and tell."""
        times = entry.response_times
        while len(times) < len(entry.responses):
            times.append(self.stamp())
        if txn.cancelled:
            entry.outcome = CANCELLED
        for listener in self.update_listeners:
            listener(entry)

    def _media_changed(self, entry: JournalEntry) -> None:
        """The entry's stream heard digits: a wait for them (``dtmf``) looks again."""
        for listener in self.update_listeners:
            listener(entry)

    def clear(self) -> None:
        self._entries.clear()
        for listener in self.clear_listeners:
            listener()

    def __iter__(self) -> Iterator[JournalEntry]:
        entries = list(self._entries)
        for entry in entries:
            if entry.unparsed is not None:
                materialize(entry)
        return iter(entries)

    def __len__(self) -> int:
        return len(self._entries)


def materialize(entry: JournalEntry) -> None:
    """Fill in an entry recorded unparsed (``Journal.record_answered``) from its octets:
    what ``Journal.record`` takes from the engine's parsed request."""
    pending = entry.unparsed
    if pending is None:
        return
    entry.unparsed = None
    scenario, source, rule = pending
    try:
        request = parse_request(entry.raw, datagram=entry.transport in MESSAGE_FRAMED)
    except NotARequest:  # cannot happen: the compiled path answers only clean requests
        return
    entry.method = request.method
    entry.uri = request.uri_raw
    entry.headers = request.headers
    if rule is not None and rule.number == 0 and scenario.rules:
        entry.near_miss = near_miss(request, source, scenario)


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


# -- queries: the one filter the Python API, the admin API and `verify` share --------------
# In this order: the admin API's bodies pass them to Query.build by position.
FILTERS = ("method", "uri", "headers", "rule", "since", "direction", "code", "dtmf")


class FilterError(ValueError):
    """A journal filter that cannot be applied: an unknown key, a value of the wrong
    shape. A ValueError, so that the admin API answers it with 400."""


def check_keys(given: Iterable[str], valid: Sequence[str], what: str = "filter") -> None:
    """FilterError naming the first key of ``given`` not in ``valid`` (and the closest
    valid one): a misspelled filter must fail loudly, never match everything."""
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise FilterError(f"unknown {what} {key!r}{hint}; valid: {', '.join(valid)}")


# What a caller may pass as header filters: {"Name": "glob"}, or a list of "Name:glob"
# strings or (name, glob) pairs (a list may name one header twice).
HeaderFilters = Mapping[str, str] | Sequence[str | tuple[str, str]]


def header_filters(value: object) -> tuple[tuple[str, str], ...]:
    """Header filters from any ``HeaderFilters`` shape (None: none)."""
    if value is None:
        return ()
    pairs: list[tuple[str, str]] = []
    if isinstance(value, Mapping):
        for name, pattern in value.items():
            if not isinstance(name, str) or not isinstance(pattern, str):
                raise FilterError(f"headers: {name!r}: {pattern!r}: expected a header name "
                                  "and a glob, both strings")
            pairs.append((name, pattern))
    elif isinstance(value, list | tuple):
        for item in value:
            if (isinstance(item, tuple) and len(item) == 2
                    and all(isinstance(x, str) for x in item)):
                pairs.append(item)
                continue
            name, colon, pattern = item.partition(":") if isinstance(item, str) else ("", "", "")
            if not colon:
                raise FilterError(f"header filter {item!r}: expected Name:glob")
            pairs.append((name, pattern.strip()))
    else:
        raise FilterError(f'headers: expected {{"Name": "glob"}} or ["Name:glob", ...], '
                          f"got {type(value).__name__}")
    for name, _ in pairs:
        if not name.strip():
            raise FilterError("header filter with an empty name: expected Name:glob")
    return tuple((name.strip(), pattern) for name, pattern in pairs)


def _text(key: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise FilterError(f"{key}: expected a string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Query:
    """Which journal entries a test means: method exact, uri and header values as globs
    (only ``*`` is special, as in scenarios: scenario/globs.py), rule by its label or
    name, ``since`` a sequence number (entries after it), ``direction`` "received" or
    "sent" (by the responder), ``code`` a status among the entry's ``codes`` (what
    the responder answered, or for a sent request what the client answered). Unset
    filters match all."""

    method: str | None = None
    uri: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    rule: str | None = None
    since: int | None = None
    direction: str | None = None
    code: int | None = None
    dtmf: str | None = None  # the digits a call's stream received, exactly ("1234#")

    @classmethod
    def build(cls, method: object = None, uri: object = None, headers: object = None,
              rule: object = None, since: object = None, direction: object = None,
              code: object = None, dtmf: object = None) -> Query:
        """A Query from loosely typed input (JSON, keyword arguments); FilterError says
        which value is wrong."""
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)
                                  or since < 0):
            raise FilterError(f"since: expected a sequence number, got {since!r}")
        if direction is not None and direction not in DIRECTIONS:
            raise FilterError(f"direction: expected {' or '.join(map(repr, DIRECTIONS))}, "
                              f"got {direction!r}")
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)
                                 or not 100 <= code <= 699):
            raise FilterError(f"code: expected a status code 100-699, got {code!r}")
        return cls(_text("method", method), _text("uri", uri), header_filters(headers),
                   _text("rule", rule), since, _text("direction", direction), code,
                   _text("dtmf", dtmf))

    @classmethod
    def of(cls, value: object) -> Query:
        """A Query given as such or as a dict of filters (a step of a sequence, from
        Python or JSON); FilterError names an unknown key."""
        if isinstance(value, Query):
            return value
        if not isinstance(value, Mapping):
            raise FilterError(f"expected a Query or an object of filters, got {value!r}")
        check_keys(map(str, value), FILTERS)
        return cls.build(*(value.get(key) for key in FILTERS))

    def matches(self, entry: JournalEntry) -> bool:
        if self.since is not None and entry.seq <= self.since:
            return False
        if self.direction is not None and entry.direction != self.direction:
            return False
        if self.code is not None and self.code not in entry.codes:
            return False
        if self.dtmf is not None and (entry.media is None or entry.media.dtmf != self.dtmf):
            return False
        if self.method is not None and entry.method != self.method:
            return False
        if self.uri is not None and (entry.uri is None or not glob_match(self.uri, entry.uri)):
            return False
        if self.rule is not None and (entry.rule is None or (
                entry.rule != self.rule and f"'{self.rule}'" not in entry.rule)):
            return False
        for name, pattern in self.headers:
            value = entry.header(name)
            if value is None or not glob_match(pattern, value):
                return False
        return True

    def select(self, entries: Iterable[JournalEntry]) -> list[JournalEntry]:
        return [e for e in entries if self.matches(e)]

    def describe(self) -> str:
        """``method='INVITE', uri='sip:486@*'`` (``anything`` when nothing is set)."""
        parts = [f"{k}={v!r}" for k, v in (("method", self.method), ("uri", self.uri))
                 if v is not None]
        if self.headers:
            parts.append(f"headers={dict(self.headers)!r}")
        parts += [f"{k}={v!r}" for k, v in (("rule", self.rule), ("since", self.since),
                                             ("direction", self.direction),
                                             ("code", self.code)) if v is not None]
        return ", ".join(parts) or "anything"
