"""Teaching the compiled path what the engine answers (issue 13), without I/O.

The compiled table (``_speedups.Table``, behind ``uas/compiled.py``) answers a request
when it knows the answer for its request line on its listener: the status line and
the header lines after the echo (a ``ResponsePlan``'s ``head`` and ``fixed``). It
learns that answer from the engine, here, and only when the answer cannot depend on
anything else:

- the engine answered with one response from a rule, no note, no transaction
  (stateless), to the packet's source;
- that rule's conditions read only the request line and the listener
  (``Condition.request_line``), its code is a number or a template of the request
  line, it has no provisional responses, delay, behaviour, state or authentication;
- every rule the scenario would try before it fails on the request line alone;
- its plan is literal after the echo (``ResponsePlan.fixed``: no body, no header
  line that reads the request), or literal around a registrar's Contact bindings,
  which the compiled code renders the way ``plan.bindings`` does.

Before an answer is kept, the table is asked for this very request and must return
the engine's octets byte for byte; otherwise that request line is left to the engine
and a warning names it (the differential tests make that warning a failure).

Everything the compiled code does not cover it defers, and the caller then runs
``Engine.handle``: the Python engine stays the one definition of behaviour.

``FastPath`` is the transports' one entry to the table, in the three shapes they read
in: ``answer`` (one message), ``answer_stream`` (a TCP or TLS read) and ``serve_udp``
(a UDP listener's wake-up; ``read_udp`` without a table). Each journals what the table
answered and hands back, for a request it missed, the listener number that
``learn(outcome, number)`` takes once the engine has answered; ``learn`` reads the
code and the plan from ``Outcome.plan``, what the engine rendered the answer from.
No transport touches the table or the engine's transactions.

Where each request went (/metrics' ``sipresponder_requests_by_path_total``): every
refusal to keep an answer has a reason, one of the ``path:engine:*`` counter keys
below, and ``FastPath.reasons`` holds, per rule number, the reason the requests that
rule matches take the engine: what the rule is (``rule_reason``: digest, stateful,
...) from the start, and what ``learn`` found for its request lines (an SDP answer,
an earlier rule that reads the headers, ...) once it has seen one. The engine adds
one to that key per request it handles (``Engine._handle``): a list index and a
counter increment, no string work. What the table answered counts as compiled: the
requests counted minus those the engine counted here (``ops/metrics.py``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..scenario.template import Template
from ..sip.response import NO_BODY
from ..sip.transports import MESSAGE_FRAMED
from .compiled import MAX_TALLY, speedups, unmirrored_checks
from .compiled import MISS as MISS  # serve_udp / Table.answer's reason that teaches
from .plan import BINDINGS_LINES, compile_response
from .validation import CHECKS

if TYPE_CHECKING:
    from ..scenario.model import Rule, Scenario
    from ..sip.message import Request
    from .compiled import Deferred as SpeedupsDeferred
    from .compiled import ServeUDP, Table
    from .events import Source
    from .outcome import AnsweredRecorder, Outcome
    from .transactions import Transactions

log = logging.getLogger("sipresponder")

# The counters an answer adds to (request, response) and the rule that gave it.
Tally = tuple[str, "str | None", "Rule | None"]
_MAX_LISTENERS = 0xFFFF  # local ids are two octets of the table's key
# A listener bound here hears many local addresses (Source.local): its table entries
# are only those that name none of them (``learn``).
_WILDCARDS = ("0.0.0.0", "::")

# What serve_udp hands back for the engine: each datagram the table did not answer,
# where it came from, and the listener number to learn under when the table missed
# it (None: it knew to defer). See FastPath.learn.
Deferred = list[tuple[bytes, "Source", "int | None"]]
# serve_udp's result: the deferred datagrams, the answers the kernel did not take at
# once (None: none), how many datagrams were read and how many the table answered.
UDPBatch = tuple[Deferred, "list[tuple[bytes, tuple[str, int]]] | None", int, int]

# -- why a request took the engine: keys of Engine.counters ---------------------------
ENGINE_PREFIX = "path:engine:"
# The scenario or the build keeps every request off the compiled path.
NO_EXTENSION = ENGINE_PREFIX + "no-extension"  # not built, or SIPRESPONDER_NO_EXTENSIONS
RATE_LIMIT = ENGINE_PREFIX + "rate-limit"  # settings.rate_limit: per-source state
LOOP_CHECK = ENGINE_PREFIX + "loop-check"  # the merged-request check: per-branch memory
VIA_ROUTING = ENGINE_PREFIX + "via-routing"  # response_routing other than "source"
NO_CHECKS = ENGINE_PREFIX + "no-checks"  # a Scenario built without the loader
# a check the scenario enables that the compiled scan does not mirror (compiled.CHECKS)
UNMIRRORED_CHECK = ENGINE_PREFIX + "unmirrored-check"
# The request itself.
ACK = ENGINE_PREFIX + "ack"  # an ACK while transactions live (it may end Timer G)
VALIDATION = ENGINE_PREFIX + "validation"  # rejected (RFC 3261 8.2 checks), or malformed
TRANSACTION = ENGINE_PREFIX + "transaction"  # a retransmission or CANCEL of a live one
# The rule that matched it.
DIGEST = ENGINE_PREFIX + "digest"  # Digest authentication
STATEFUL = ENGINE_PREFIX + "stateful"  # a sequence or named states
BEHAVIOUR = ENGINE_PREFIX + "behaviour"  # action, fault, repeat_final, probability
# `then` or `session_timer`: the far end acts after the answer
FAR_END = ENGINE_PREFIX + "far-end"
PROVISIONAL = ENGINE_PREFIX + "provisional"  # provisional responses, or a 1xx final
DELAY = ENGINE_PREFIX + "delay"  # a delayed final response
CODE_TEMPLATE = ENGINE_PREFIX + "code-template"  # a code that reads more than the line
CONDITIONS = ENGINE_PREFIX + "conditions"  # conditions on more than the request line
# What learn() found for the rule's request lines.
DTMF_INFO = ENGINE_PREFIX + "dtmf-info"  # an INFO where calls have streams (its digits)
EARLIER_RULE = ENGINE_PREFIX + "earlier-rule"  # an earlier rule reads more than the line
SDP_ANSWER = ENGINE_PREFIX + "sdp-answer"  # the response carries an SDP answer
DYNAMIC_RESPONSE = ENGINE_PREFIX + "dynamic-response"  # a body or field read from the request
LOCAL_ADDRESS = ENGINE_PREFIX + "local-address"  # names the local address on a wildcard
UNUSUAL_ANSWER = ENGINE_PREFIX + "unusual-answer"  # not one response to the source
TABLE_FULL = ENGINE_PREFIX + "table-full"  # more (request, response, rule) tallies than fit
DISAGREES = ENGINE_PREFIX + "disagrees"  # the table's octets differed (a warning says so)
NOT_LEARNED = ENGINE_PREFIX + "not-learned"  # a line not seen yet, or one it does not cover


def applies(scenario: Scenario) -> bool:
    """Whether the compiled path may answer for ``scenario`` at all."""
    return scenario_reason(scenario) is None


def scenario_reason(scenario: Scenario) -> str | None:
    """Why no request of ``scenario`` may take the compiled path (a counter key), or
    None: per-source state (rate limit, merged-request memory) and Via-based routing
    are the engine's alone, and a check the extension does not mirror (logged, once
    per scenario load) could reject what the table would answer."""
    settings = scenario.settings
    if not set(CHECKS) <= scenario.switches.keys():
        return NO_CHECKS  # a Scenario built without the loader runs no checks at all
    if settings.rate_limit:
        return RATE_LIMIT
    if scenario.switch("loop"):
        return LOOP_CHECK
    if settings.response_routing != "source":
        return VIA_ROUTING
    unmirrored = unmirrored_checks(scenario.switches)
    if unmirrored:
        # Fail closed: the C scan would answer requests this check may reject.
        log.warning("compiled path off for this scenario: the extension does not mirror "
                    "the check(s) %s (every request takes the engine)", ", ".join(unmirrored))
        return UNMIRRORED_CHECK
    return None


class FastPath:
    """The compiled answers of one engine's current scenario (one per scenario: a swap
    makes a new one, so nothing learned outlives the scenario it came from)."""

    def __init__(self, scenario: Scenario, counters: Counter[str],
                 transactions: Transactions) -> None:
        assert speedups is not None
        settings = scenario.settings
        switches = {name: scenario.switch(name) for name in CHECKS}
        self.scenario = scenario
        table_type: type[Table] = speedups.Table
        self.table = table_type(
            scenario.tag_key,
            tuple(a.encode("latin-1") for a in settings.accept),
            settings.max_headers,
            settings.max_line_length,
            settings.max_message_size,
            settings.max_amplification,
            switches,
            switches["content_length"],
        )
        # What the table answered, by tally: the counters it adds to and the rule that
        # answered (for the journal). Tally 0 counts absorbed ACKs.
        self.tallies: list[Tally] = [("request:ACK", None, None)]
        self._tally_of: dict[tuple[str, str, int], int] = {}
        # The table adds what it answers to the engine's counters itself, at the end of
        # each call, by tally (these tuples' first two items): no fold per batch here.
        self.table.bind(counters, self.tallies)
        self.counters = counters
        self._media = any(rule.media is not None for rule in scenario.rules)
        # The table absorbs an ACK only while no transaction lives (one may be ending
        # Timer G): the engine's transactions, read at each call.
        self._transactions = transactions
        self._serve: ServeUDP = speedups.serve_udp
        self._local_ids: dict[tuple[str, tuple[str, int]], int] = {}
        self._wildcard_ids: set[int] = set()
        self._warned: set[bytes] = set()
        # By rule number (0: the default): the counter key of a request that rule
        # matched and the engine handled (see the module docstring).
        self.reasons: list[str] = [rule_reason(r) or NOT_LEARNED
                                   for r in (scenario.default, *scenario.rules)]

    def local_id(self, source: Source) -> int | None:
        """The table's number for ``source``'s listener (transport and local address),
        or None when there are too many to number."""
        return self.listener_id(source.transport, source.local)

    def listener_id(self, transport: str, local: tuple[str, int]) -> int | None:
        """The table's number for a listener: a transport and the local address its
        requests arrive on (a wildcard one for a socket bound to 0.0.0.0 or ::, whose
        answers then may not name the local address), or None when there are too many."""
        key = (transport, local)
        found = self._local_ids.get(key)
        if found is None:
            if len(self._local_ids) >= _MAX_LISTENERS:
                return None
            found = self._local_ids[key] = len(self._local_ids) + 1
            if local[0] in _WILDCARDS:
                self._wildcard_ids.add(found)
        return found

    # -- the three shapes the transports read in -----------------------------------------
    def answer(self, data: bytes, source: Source, now: float,
               record: AnsweredRecorder | None) -> bytes | int | None:
        """One whole message (a datagram, a framed stream message, a WebSocket frame):
        the table's response, journaled through ``record`` (b"": an ACK absorbed, nothing
        to send); else, for the engine, the listener number to pass to ``learn`` when
        the table missed (a request line it has not seen), or None."""
        # The lookup inline: this runs for every message the table may answer.
        local_id = self._local_ids.get((source.transport, source.local))
        if local_id is None:
            local_id = self.listener_id(source.transport, source.local)
            if local_id is None:
                return None
        table = self.table
        got = table.answer(
            data, source.remote[0], source.remote[1], local_id,
            source.transport in MESSAGE_FRAMED, not self._transactions.table,
        )
        if isinstance(got, bytes):
            if record is not None:
                self.journal(record, data, source, now, table.last_tally, got or None)
            return got
        return local_id if got == MISS else None

    def answer_stream(self, data: bytes, source: Source, now: float,
                      record: AnsweredRecorder | None) -> tuple[bytes, int, int]:
        """A stream read: the table's responses to the whole messages at the start of
        ``data`` that it answers (framed as ``StreamFramer`` frames them), journaled
        through ``record``, as one write; how many octets they took; how many messages.
        The rest is for the framer and the engine (it never teaches the table: the
        framer's messages take ``answer`` first)."""
        local_id = self._local_ids.get((source.transport, source.local))
        if local_id is None:
            local_id = self.listener_id(source.transport, source.local)
            if local_id is None:
                return b"", 0, 0
        remote = source.remote
        out, used, count, records = self.table.answer_stream(
            data, remote[0], remote[1], local_id, not self._transactions.table,
            record is not None,
        )
        if records:
            assert record is not None
            for offset, length, tally, response in records:
                self.journal(record, data[offset:offset + length], source, now, tally,
                             response)
        return out, used, count

    def serve_udp(self, fd: int, local: tuple[str, int],
                  sources: Callable[[tuple[str, int]], Source], clock: Callable[[], float],
                  record: AnsweredRecorder | None, batches: int) -> UDPBatch:
        """A UDP socket's readable event: up to ``batches`` recvmmsg batches read, what
        the table answers sent with sendmmsg and journaled through ``record`` (at
        ``clock()``), the rest handed back with their ``sources`` for the engine."""
        # Every step inline and nothing built that is not needed: this runs on each
        # wake-up of a UDP listener, most often for one datagram the table answers.
        local_id = self._local_ids.get(("udp", local))
        if local_id is None:
            local_id = self.listener_id("udp", local)
            if local_id is None:
                return read_udp(fd, sources, batches)
        deferred, answered, unsent, received = self._serve(
            fd, self.table, local_id, True, not self._transactions.table,
            record is not None, batches)
        if answered:
            assert record is not None
            now = clock()
            for data, addr, tally, response in answered:
                self.journal(record, data, sources(addr), now, tally, response)
        if not deferred:
            return [], unsent, received, received
        return (_deferred(deferred, sources, local_id), unsent, received,
                received - len(deferred))

    def journal(self, record: AnsweredRecorder, data: bytes, source: Source, now: float,
                tally: int, response: bytes | None) -> None:
        """Give ``record`` (Journal.record_answered) what the table answered for ``data``:
        the rule behind ``tally`` and the response, or, for an absorbed ACK, neither."""
        rule = self.tallies[tally][2]
        record(data, source, now, self.scenario, rule, response,
               None if response is not None else "ACK absorbed")

    # -- learning ------------------------------------------------------------------------
    def learn(self, outcome: Outcome, local_id: int) -> None:
        """After the engine answered a request the table missed under listener
        ``local_id`` (what ``answer`` or ``serve_udp`` handed back): keep the answer
        for its request line when it depends on nothing else, else remember to defer.
        A wildcard listener (0.0.0.0) hears many local addresses: it keeps only an
        answer that names none of them."""
        data = outcome.data
        end = data.find(b"\r\n")
        if end < 0:
            return
        line = data[:end]
        kept = self._answer_for(outcome, local_id in self._wildcard_ids)
        table = self.table
        if kept is None or isinstance(kept, str):
            table.learn(local_id, line, None, None, 0)
            if kept is not None:
                self._refused(outcome.rule, kept)
            return
        head, tail, tally, after = kept
        table.learn(local_id, line, head, tail, tally, after)
        source = outcome.source
        got = table.answer(
            data, source.remote[0], source.remote[1], local_id,
            source.transport in MESSAGE_FRAMED, False, count=False,
        )
        expected = outcome.sends[0].data
        if isinstance(got, bytes) and got == expected:
            self._refused(outcome.rule, NOT_LEARNED, remember=False)
            return
        if isinstance(got, int):
            # This request was unusual to the compiled code (another with the same line
            # may not be): learn again from the next one.
            table.forget(local_id, line)
            self._refused(outcome.rule, NOT_LEARNED, remember=False)
            return
        table.learn(local_id, line, None, None, 0)
        self._refused(outcome.rule, DISAGREES)
        if line not in self._warned and len(self._warned) < 64:
            self._warned.add(line)
            log.warning(
                "compiled path disagrees with the engine for %r (left to the engine): "
                "engine %r, compiled %r", line, expected[:400], got[:400],
            )

    def _refused(self, rule: Rule | None, reason: str, remember: bool = True) -> None:
        """Count the request just handled, and (``remember``) those ``rule`` matches
        from now on, under ``reason``, when ``rule`` is one of this scenario's rules
        (not a stand-in, e.g. a Digest challenge's) and nothing about the rule itself
        already keeps them off the table. ``remember`` False: the line was learned,
        this one request was not compiled only because it was the first."""
        if rule is None:
            return
        number = rule.number
        rules = self.scenario.rules
        own = self.scenario.default if number == 0 else (
            rules[number - 1] if 0 < number <= len(rules) else None)
        if own is not rule or rule_reason(rule) is not None:
            return
        # The engine counted this very request (learn runs right after it) under the
        # rule's reason until now, usually "not-learned": it moves to the reason found.
        counted = self.reasons[number]
        if counted != reason:
            counters = self.counters
            counters[counted] -= 1
            if counters[counted] <= 0:
                del counters[counted]
            counters[reason] += 1
            if remember:
                self.reasons[number] = reason

    def _answer_for(self, outcome: Outcome, any_local: bool = False
                    ) -> tuple[bytes, bytes, int, bytes | None] | str | None:
        """The table's entry for the outcome's request line, or why not: a counter key
        (None: the request counts elsewhere: no rule answered it)."""
        request, rule = outcome.request, outcome.rule
        if request is None or rule is None or outcome.scenario is not self.scenario:
            return None
        if request.method == "CANCEL":
            # A CANCEL's answer depends on the live transactions (RFC 3261 9.2: a
            # ringing INVITE's ends with 487), which the table cannot see.
            return TRANSACTION
        if request.method == "INFO" and self._media:
            # Its digits belong in a call's media journal (call/table.py info): the
            # engine must see every INFO of a scenario whose calls have streams.
            return DTMF_INFO
        why = rule_reason(rule)
        if why is not None:
            return why
        if outcome.note is not None:
            return UNUSUAL_ANSWER
        if outcome.transaction is not None:
            return PROVISIONAL  # a 1xx final code, completed by a 200
        if request.error is not None:
            return VALIDATION
        if len(outcome.sends) != 1:
            return UNUSUAL_ANSWER
        send = outcome.sends[0]
        source = outcome.source
        if send.remote != source.remote or send.close_after or send.reset or not send.data:
            return UNUSUAL_ANSWER
        if not _earlier_rules_fail(self.scenario, request, source, rule):
            return EARLIER_RULE
        plan = outcome.plan  # what the engine rendered the response from, as is
        if plan is None:
            return UNUSUAL_ANSWER
        code = plan.code
        if code < 200:
            return PROVISIONAL
        if not isinstance(plan.reason, str):
            return DYNAMIC_RESPONSE
        if any_local:
            # The same plan compiled for another local address must read the same.
            elsewhere = replace(source, local=("192.0.2.254", 9))
            other = compile_response(rule.final, code, request.method, elsewhere,
                                     self.scenario)
            if other.head != plan.head or other.parts != plan.parts:
                return LOCAL_ADDRESS
        if plan.fixed is not None:
            tail, after = plan.fixed, None
        else:
            # A registrar's 200: literal lines around the request's Contact bindings,
            # which the compiled code renders as plan.bindings does.
            parts = plan.parts
            dynamic = [i for i, p in enumerate(parts) if not isinstance(p, str)]
            if plan.sdp:
                return SDP_ANSWER
            if (plan.body is not None or len(dynamic) != 1
                    or parts[dynamic[0]] is not BINDINGS_LINES):
                return DYNAMIC_RESPONSE
            at = dynamic[0]
            tail = "".join(p for p in parts[:at] if isinstance(p, str))
            after = "".join(p for p in parts[at + 1:] if isinstance(p, str)) + NO_BODY
        tally = self._tally(f"request:{request.method}", f"response:{code}", rule)
        if tally is None:
            return TABLE_FULL
        return (plan.head.encode("latin-1"), tail.encode("latin-1"), tally,
                None if after is None else after.encode("latin-1"))

    def _tally(self, request_key: str, response_key: str, rule: Rule) -> int | None:
        key = (request_key, response_key, id(rule))  # rules live as long as the scenario
        index = self._tally_of.get(key)
        if index is None:
            if len(self.tallies) >= MAX_TALLY:
                return None
            index = self._tally_of[key] = len(self.tallies)
            self.tallies.append((request_key, response_key, rule))
        return index


def read_udp(fd: int, sources: Callable[[tuple[str, int]], Source],
             batches: int) -> UDPBatch:
    """``FastPath.serve_udp`` without a table (or with the compiled path off for now):
    the same batched read, every datagram handed back for the engine."""
    assert speedups is not None
    deferred, _answered, unsent, received = speedups.serve_udp(fd, None, 0, False, True,
                                                               False, batches)
    return (_deferred(deferred, sources, None) if deferred else [], unsent,
            received, 0)


def _deferred(deferred: list[SpeedupsDeferred],
              sources: Callable[[tuple[str, int]], Source], local_id: int | None) -> Deferred:
    return [(data, sources(addr), local_id if reason == MISS else None)
            for data, addr, reason in deferred
            # bytes: an address Python could not name either (never seen on IP)
            if not isinstance(addr, bytes)]


def _request_line_template(value: object) -> bool:
    return isinstance(value, int) or (
        isinstance(value, Template) and value.reads_request_line_only
    )


def rule_reason(rule: Rule) -> str | None:
    """Why ``rule`` does not match, or answer, the same for every request with one
    request line on one listener (a counter key); None when it does."""
    final = rule.final
    if rule.auth is not None:
        return DIGEST
    if rule.state is not None:
        return STATEFUL
    if rule.behaviour is not None:
        return BEHAVIOUR
    if rule.then or rule.session_timer is not None or rule.media is not None:
        return FAR_END
    if rule.provisional:
        return PROVISIONAL
    if final.delay or final.delay_draw is not None:
        return DELAY
    if not _request_line_template(final.code):
        return CODE_TEMPLATE
    if not all(c.request_line for c in rule.conditions):
        return CONDITIONS
    return None


def _earlier_rules_fail(scenario: Scenario, request: Request, source: Source,
                        rule: Rule) -> bool:
    """Whether every rule ``Scenario.match`` tries before ``rule`` fails on a condition
    of the request line (or its method), so that it fails for every request with this
    line. ``rule`` the default: every candidate must."""
    for earlier in scenario.candidates(request):
        if earlier is rule:
            return True
        if earlier.methods is not None and request.method not in earlier.methods:
            continue
        if not any(c.request_line and not c.test(request, source) for c in earlier.conditions):
            return False
    return rule.number == 0
