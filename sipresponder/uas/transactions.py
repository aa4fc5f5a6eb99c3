"""Server transactions for rules that answer over time (RFC 3261 17.2, 13.3.1.4).

All the state the core keeps about requests lives here. A rule that sends
provisional responses or waits before its final response makes its transaction
stateful: ``Transactions`` keeps it so that a retransmitted request gets the last
response again, a CANCEL can end it with 487, and over UDP the final response is
retransmitted (Timer G) until the ACK arrives; the transaction is forgotten 64*T1
after its final response. A rule's reliable provisionals (RFC 3262, the state in
``reliable.Reliable``) are retransmitted here until their PRACK, which ``prack``
answers, and hold the steps after them. Time is passed in, never read: the transport
asks ``next_deadline()`` and calls ``fire(now)`` when it passes (the aioquic style).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..scenario.model import ResponseSpec
from ..scenario.template import compile_template
from ..sip.headers import MAGIC_COOKIE
from ..sip.response import Echo
from .eventlog import log_request
from .reliable import RSEQ_START_MAX, Reliable, mark, parse_rack
from .validation import Rejection

if TYPE_CHECKING:
    from ..call.media import MediaSession
    from ..scenario.model import Scenario
    from ..sip.headers import Via
    from ..sip.message import Request
    from .events import Send, Source
    from .limits import LimitLog

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
    cancelled: bool = False  # a CANCEL ended it with 487 (RFC 3261 9.2)
    # The call's RTP stream (call/media.py) a rule's `media` opened with its 2xx: the
    # journal entry of the INVITE shows it (JournalEntry.media).
    media: MediaSession | None = None
    steps: list[int] = field(default_factory=list)  # timer ids of pending responses
    retransmit_id: int | None = None
    # The octets of every response sent in the transaction, in the order they left:
    # from the first (sent while the request is handled) to the last (a timer step,
    # the 487 after a CANCEL), Timer G's retransmissions included; ``retransmitted``
    # (parallel) marks those. An Outcome names the transaction so that its recorder
    # can follow both lists: they are what the wire carried.
    responses: list[bytes] = field(default_factory=list)
    retransmitted: list[bool] = field(default_factory=list)
    # Told after each response joins ``responses`` (the journal, to stamp and announce
    # a late one).
    on_response: Callable[[], None] | None = None
    # What the final response becomes (a rule's fault, uas.faults.apply); None: itself.
    finish: Callable[[Send], list[Send]] | None = None
    # Its provisionals are reliable (RFC 3262, uas/reliable.py); None: they are not.
    reliable: Reliable | None = None

    def sent(self, send: Send, *, repeat: bool = False, announce: bool = True) -> Send:
        """Note ``send`` as sent in the transaction: its latest response, or with
        ``repeat`` a retransmission of it. ``announce`` False: the message being
        handled caused it (a CANCEL's 487) and its Outcome names this transaction
        (``Outcome.ended``), whose recorder tells ``on_response`` once that message is
        recorded, so that a journal shows the response after the request that caused
        it, as the wire does."""
        if not repeat:
            self.last = send
        if send.data:  # empty: withheld (settings.max_amplification)
            self.responses.append(send.data)
            self.retransmitted.append(repeat)
            if announce and self.on_response is not None:
                self.on_response()
        return send


def draw_delay(draw: tuple[str, float, float], rng: random.Random) -> float:
    """One delay from a response's distribution (ResponseSpec.delay_draw), in 0-3600 s."""
    kind, a, b = draw
    value = rng.uniform(a, b) if kind == "uniform" else rng.lognormvariate(math.log(a), b)
    return min(max(value, 0.0), 3600.0)


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


# Builds, routes and counts one response (the engine's): spec, code, the request,
# where it came from, its top Via, its echo.
Respond = Callable[[ResponseSpec, int, "Request", "Source", "Via", Echo], "Send"]

# Responses the transaction layer makes itself, the same for every request (so their
# compiled plans are cached like a rule's).
TRYING = ResponseSpec(100, sdp=False)  # RFC 3261 17.2.1
CANCEL_OK = ResponseSpec(200, sdp=False)  # RFC 3261 9.2
REQUEST_TERMINATED = ResponseSpec(487, sdp=False)  # RFC 3261 9.2
BUSY = ResponseSpec(503, typed={"Retry-After": [compile_template("5")]})  # max_transactions
PRACK_OK = ResponseSpec(200, sdp=False)  # RFC 3262 3
# RFC 3262 3: a reliable provisional unacknowledged for 64*T1 -> reject with a 5xx.
NO_PRACK = ResponseSpec(504, reason=compile_template("No PRACK"), sdp=False)
NO_PRACK_CODE = 504
NO_TRANSACTION = Rejection(481, "Call/Transaction Does Not Exist")  # RFC 3262 4


class Transactions:
    """The stateful transactions, their timers, and the ACKs and CANCELs that end them."""

    def __init__(
        self,
        scenario: Scenario,
        respond: Respond,
        counters: Counter[str],
        limit_log: LimitLog,
    ) -> None:
        self.scenario = scenario  # the engine's current one (its settings, its tag key)
        self.respond = respond
        self.counters = counters
        self.limit_log = limit_log
        self.timers = TimerQueue()
        # The engine's seeded generator (it sets its own here): drawn delays.
        self.random = random.Random()
        self.table: dict[TxnKey, Transaction] = {}
        self.by_dialog: dict[TxnKey, Transaction] = {}

    def __len__(self) -> int:
        return len(self.table)

    # -- requests ---------------------------------------------------------------------------
    def start(
        self,
        steps: list[tuple[ResponseSpec, int]],
        request: Request,
        source: Source,
        via: Via,
        echo: Echo,
        now: float,
        *,
        ends: bool = True,
        finish: Callable[[Send], list[Send]] | None = None,
        reliable: bool = False,
    ) -> tuple[list[Send], Transaction | None]:
        """Send ``steps`` (response, code), each after its delay; the last is final.

        With ``ends`` False no step is final: the transaction rings until a CANCEL
        ends it, or settings.ring_timeout after its last step, when it is forgotten
        without a word. ``finish`` turns the final response into what is sent.
        ``reliable`` (an INVITE): its provisionals but 100 are sent reliably
        (RFC 3262), and a step waits for the PRACK of the one before it.

        Returns what to send now and the new transaction, or a 503 and None at
        settings.max_transactions."""
        settings = self.scenario.settings
        if len(self.table) >= settings.max_transactions:
            self.limit_log.hit(
                "max_transactions",
                "transaction limit (%d) reached; answering 503",
                settings.max_transactions,
            )
            return [self.respond(BUSY, 503, request, source, via, echo)], None
        key = transaction_key(request, request.method)
        txn = Transaction(key, request, finish=finish)
        if reliable:
            # Our To tag: the one the echo adds, or a re-INVITE's own.
            tag = echo.tag or request.to.tag or ""
            txn.reliable = Reliable(
                self.random.randint(1, RSEQ_START_MAX), tag, source, via, echo
            )
        self.table[key] = txn
        if request.method == "INVITE":
            self.by_dialog[dialog_key(request)] = txn
        out: list[Send] = []
        delays = [
            spec.delay if spec.delay_draw is None else draw_delay(spec.delay_draw, self.random)
            for spec, _ in steps
        ]
        if request.method == "INVITE" and delays[0] > 0 and steps[0][1] != 100:
            # RFC 3261 17.2.1: 100 Trying when the TU will not answer right away.
            out.append(txn.sent(self.respond(TRYING, 100, request, source, via, echo)))
        elapsed = 0.0
        for i, (spec, code) in enumerate(steps):
            final = ends and i == len(steps) - 1
            elapsed += delays[i]
            step = partial(self._step, txn, spec, code, final, source, via, echo)
            if elapsed == 0:
                out.extend(step(now))
            else:
                txn.steps.append(self.timers.add(now + elapsed, step))
        if not ends:
            lifetime = elapsed + settings.ring_timeout
            txn.steps.append(self.timers.add(now + lifetime, partial(self._expire, txn)))
        return out, txn

    def match(
        self, request: Request, source: Source, via: Via, now: float
    ) -> tuple[list[Send], str, Transaction | None] | None:
        """A retransmitted request or a CANCEL of a pending INVITE: what to send, the
        journal's note and the INVITE transaction a CANCEL ended (its 487 is among
        the sends, and joins that transaction's responses unannounced: see
        ``Transaction.sent``); None when the request belongs to no transaction."""
        txn = self.table.get(transaction_key(request, request.method))
        if txn is not None:
            self.counters["retransmitted_requests"] += 1
            sends = [txn.last] if txn.last is not None else []
            return sends, "retransmission: the last response again", None
        if request.method != "CANCEL":
            return None
        txn = self.table.get(transaction_key(request, "INVITE"))
        if txn is None:
            return None
        # RFC 3261 9.2: 200 to the CANCEL; 487 to the INVITE if it had no final yet.
        note = "CANCEL of a pending INVITE"
        log_request(request, source, note)
        tag_key = self.scenario.tag_key
        echo = Echo(request, source.remote, tag_key)
        out = [self.respond(CANCEL_OK, 200, request, source, via, echo)]
        if txn.final_sent:
            return out, note, None
        invite = txn.request
        txn.cancelled = True
        out.append(txn.sent(self.respond(
            REQUEST_TERMINATED, 487, invite, source, invite.top_via_lenient(),
            Echo(invite, source.remote, tag_key),
        ), announce=False))
        self._completed(txn, source, now)
        return out, note, txn

    def absorb_ack(self, request: Request) -> None:
        """An ACK ends Timer G of its INVITE (RFC 3261 17.2.1); it gets no response."""
        if not self.by_dialog:
            return
        try:
            txn = self.by_dialog.get(dialog_key(request))
        except (KeyError, ValueError):
            return
        if txn is not None:
            txn.acked = True
            self.timers.cancel(txn.retransmit_id)

    # -- time -------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def fire(self, now: float) -> list[Send]:
        return self.timers.fire(now)

    def _step(
        self,
        txn: Transaction,
        spec: ResponseSpec,
        code: int,
        final: bool,
        source: Source,
        via: Via,
        echo: Echo,
        now: float,
    ) -> list[Send]:
        if txn.final_sent:
            return []
        rel = txn.reliable
        if rel is not None and (rel.unacked is not None or rel.held) and (final or code > 100):
            # RFC 3262 3: no reliable provisional, nor the final response, before the
            # PRACK of the one outstanding; ``prack`` sends it then.
            rel.held.append(partial(self._step, txn, spec, code, final, source, via, echo))
            return []
        send = self.respond(spec, code, txn.request, source, via, echo)
        if not final:
            if rel is not None and code > 100:
                return [self._reliably(txn, rel, send, now)]
            return [txn.sent(send)]
        sends = [send] if txn.finish is None else txn.finish(send)
        if not sends:
            txn.last = None  # nothing final to repeat: no provisional again either
        for each in sends:
            txn.sent(each)
        self._completed(txn, source, now)
        return sends

    def _completed(self, txn: Transaction, source: Source, now: float) -> None:
        txn.final_sent = True
        for timer_id in txn.steps:
            self.timers.cancel(timer_id)
        txn.steps.clear()
        self._unreliable(txn)
        t1 = self.scenario.settings.timer_t1
        if source.transport == "udp" and txn.request.method == "INVITE":
            # Timer G / 13.3.1.4: retransmit the final response until the ACK comes.
            txn.retransmit_id = self.timers.add(now + t1, partial(self._retransmit, txn, t1))
        # Timer H / J: the transaction absorbs retransmissions for 64*T1, then goes.
        self.timers.add(now + 64 * t1, partial(self._expire, txn))

    def _retransmit(self, txn: Transaction, interval: float, now: float) -> list[Send]:
        if txn.acked or txn.last is None:
            return []
        interval = min(2 * interval, self.scenario.settings.timer_t2)
        txn.retransmit_id = self.timers.add(
            now + interval, partial(self._retransmit, txn, interval)
        )
        self.counters["retransmissions"] += 1
        return [txn.sent(txn.last, repeat=True)]

    def _expire(self, txn: Transaction, now: float) -> list[Send]:
        self.timers.cancel(txn.retransmit_id)
        self._unreliable(txn)
        if self.table.get(txn.key) is txn:
            del self.table[txn.key]
        dkey = dialog_key(txn.request)
        if self.by_dialog.get(dkey) is txn:
            del self.by_dialog[dkey]
        return []

    # -- reliable provisionals (RFC 3262) ----------------------------------------------------
    def _reliably(self, txn: Transaction, rel: Reliable, send: Send, now: float) -> Send:
        """Send a provisional reliably: its RSeq, then (UDP) retransmitted at T1,
        doubling, and over any transport a 5xx final at 64*T1 without its PRACK."""
        rseq = rel.rseq
        rel.rseq += 1
        rel.unacked, rel.unacked_rseq = mark(send, rseq), rseq
        t1 = self.scenario.settings.timer_t1
        if rel.source.transport == "udp":
            rel.timers.append(self.timers.add(
                now + t1, partial(self._retransmit_reliable, txn, rel, rseq, t1)))
        rel.timers.append(self.timers.add(now + 64 * t1, partial(self._no_prack, txn, rel)))
        return txn.sent(send)

    def _retransmit_reliable(
        self, txn: Transaction, rel: Reliable, rseq: int, interval: float, now: float
    ) -> list[Send]:
        if txn.final_sent or rel.unacked is None or rel.unacked_rseq != rseq:
            return []
        # RFC 3262 3: the interval doubles with no T2 cap (unlike Timer G).
        interval *= 2
        rel.timers.append(self.timers.add(
            now + interval, partial(self._retransmit_reliable, txn, rel, rseq, interval)))
        self.counters["retransmissions"] += 1
        return [txn.sent(rel.unacked, repeat=True)]

    def _no_prack(self, txn: Transaction, rel: Reliable, now: float) -> list[Send]:
        """RFC 3262 3: no PRACK for 64*T1, so the INVITE is rejected with a 5xx."""
        if txn.final_sent or rel.unacked is None:
            return []
        self.counters["prack_timeouts"] += 1
        send = self.respond(NO_PRACK, NO_PRACK_CODE, txn.request, rel.source, rel.via, rel.echo)
        txn.sent(send)
        self._completed(txn, rel.source, now)
        return [send]

    def _unreliable(self, txn: Transaction) -> None:
        """The transaction is over: its reliable provisional's timers stop."""
        rel = txn.reliable
        if rel is not None:
            for timer_id in rel.timers:
                self.timers.cancel(timer_id)
            rel.timers.clear()
            rel.held.clear()
            rel.unacked = None

    def prack(
        self, request: Request, source: Source, via: Via, now: float
    ) -> tuple[list[Send], str] | Rejection:
        """A PRACK (RFC 3262 3, 4): 200 when its RAck names the outstanding reliable
        provisional of a live INVITE transaction of its dialog (which stops that
        one's retransmissions, and lets the held steps go at ``now``: the transport's
        next ``fire``), or again for a retransmitted PRACK; 481 when it names none;
        400 when its RAck is malformed."""
        try:
            rack = parse_rack(request.get("rack"))
        except ValueError as exc:
            return Rejection(400, f"Malformed RAck header field ({exc})")
        try:
            from_tag = request.from_.tag or ""
            to_tag = request.to.tag
        except (KeyError, ValueError):
            return NO_TRANSACTION
        txn = self.by_dialog.get((request.call_id, from_tag, str(rack.cseq)))
        rel = txn.reliable if txn is not None else None
        if (
            txn is None
            or rel is None
            or txn.request.method != rack.method
            or to_tag != rel.tag
        ):
            return NO_TRANSACTION
        key = transaction_key(request, "PRACK")
        again = rel.answered.get(key)
        if again is not None:
            self.counters["retransmitted_requests"] += 1
            return [again], "retransmission: the last response again"
        if txn.final_sent or rel.unacked is None or rack.rseq != rel.unacked_rseq:
            return NO_TRANSACTION
        for timer_id in rel.timers:
            self.timers.cancel(timer_id)
        rel.timers.clear()
        rel.unacked = None
        echo = Echo(request, source.remote, self.scenario.tag_key)
        send = self.respond(PRACK_OK, 200, request, source, via, echo)
        rel.answered[key] = send
        if rel.held:
            # Held until then (not taken now): a step whose timer is due before this
            # one fires still queues behind them, in order.
            txn.steps.append(self.timers.add(now, partial(self._release, rel)))
        return [send], f"PRACK of the reliable provisional RSeq {rack.rseq}"

    def _release(self, rel: Reliable, now: float) -> list[Send]:
        """The steps held behind a PRACKed provisional, in order: each holds itself
        again behind the next reliable provisional."""
        held, rel.held = rel.held, []
        out: list[Send] = []
        for step in held:
            out.extend(step(now))
        return out
