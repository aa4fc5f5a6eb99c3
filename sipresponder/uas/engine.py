"""Request in, responses out: the per-request pipeline of the responder, without I/O.

``Engine.handle`` takes the octets of one message (a UDP datagram or a framed TCP
message), where it came from and the current time, and returns an ``Outcome``: what
to send, and what became of the request. ``_handle`` reads top to bottom as the
pipeline: rate limit, parse, route, validate (RFC 3261 8.2), transaction match,
rule match, authenticate, respond. State lives elsewhere: transactions and their
timers in ``transactions.Transactions`` (the transport asks ``next_deadline()``
and calls ``fire(now)``), per-source limits in ``limits``, compiled responses in
``plan.PlanCache``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ..scenario.model import Refusal, ResponseSpec, Rule, Scenario
from ..scenario.template import RenderContext
from ..sip.headers import Via
from ..sip.message import NotARequest, Request, parse_request, too_large
from ..sip.response import Echo, header_line, serialize, status_line, with_body
from ..sip.routing import response_destination
from ..sip.transports import MESSAGE_FRAMED
from . import faults
from .compiled import speedups
from .eventlog import log_drop, log_request
from .events import Send, Source
from .fast import (
    ACK,
    NO_EXTENSION,
    TRANSACTION,
    VALIDATION,
    FastPath,
    scenario_reason,
)
from .limits import DROP, LimitLog, MergedRequests, RateLimiter
from .outcome import RESPONSE_NOTE, Outcome
from .plan import PlanCache, ResponsePlan
from .reliable import offers_100rel, requires_100rel
from .sessiontimer import SESSION_METHODS, Negotiated, negotiate, with_lines
from .state import States
from .transactions import Transactions
from .validation import Rejection, check_request

if TYPE_CHECKING:
    from ..call.media import Negotiated as Agreed
    from ..call.table import MediaTable
    from ..uac.exchange import SentRecorder
    from ..uac.farend import FarEnd

log = logging.getLogger("sipresponder")
# Per-request and per-connection lines: a logger of their own, kept at WARNING unless
# --log-level info or debug asks, so that start-up lines at INFO do not turn them on.
traffic_log = logging.getLogger("sipresponder.requests")

RATE_LIMITED = Rejection(503, "Service Unavailable", [("Retry-After", "1")])
LOOP_DETECTED = Rejection(482, "Loop Detected")  # RFC 3261 8.2.2.2
NO_100REL = Rejection(420, "Bad Extension", [("Unsupported", "100rel")])  # RFC 3262 4
NEEDS_100REL = Rejection(421, "Extension Required", [("Require", "100rel")])  # RFC 3262 3


class Engine:
    def __init__(self, scenario: Scenario) -> None:
        self.counters: Counter[str] = Counter()
        self.limit_log = LimitLog()
        self.transactions = Transactions(scenario, self._respond, self.counters, self.limit_log)
        # The far end (uac/farend.py): made by the first rule with `then` steps that
        # answers (or the first API call); None until then, so that a scenario
        # without steps pays one test per ACK, response and timer, and no more.
        self.far: FarEnd | None = None
        # Told of every request the far end sends (Journal.record_sent); kept here so
        # that a far end made later finds them.
        self.sent_recorders: list[SentRecorder] = []
        # The calls' RTP streams (call/table.py): made by the first rule with `media`
        # that answers; None until then.
        self.media: MediaTable | None = None
        self.scenario = scenario  # also sets up the per-scenario state below

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        """Swap scenarios atomically; per-source state restarts with the new limits."""
        settings = scenario.settings
        self.limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst, settings.rate_limit_action)
            if settings.rate_limit
            else None
        )
        self.merged = MergedRequests(settings.loop_ttl) if scenario.switch("loop") else None
        self.plans = PlanCache(scenario)
        # The compiled answers of this scenario (uas/fast.py), when the extension is
        # built and the scenario allows it; None: every request takes handle().
        refused = NO_EXTENSION if speedups is None else scenario_reason(scenario)
        self.fast = (
            FastPath(scenario, self.counters, self.transactions)
            if refused is None else None
        )
        # Where every request of this scenario goes when none may be compiled: the
        # counter key of the reason (uas/fast.py); None: per request, as it goes.
        self._engine_only = refused
        # Every random choice comes from here, never the global generator: with
        # settings.seed, a run replays the same choices from each scenario swap on.
        self.random = random.Random(settings.seed if settings.seed >= 0 else None)
        self.transactions.random = self.random
        # Sequence counters and named states start again with each scenario.
        self.states = States()
        self._stateful = bool(scenario.stateful_rules)
        # A rule sends reliable provisionals (RFC 3262): PRACKs are answered by the
        # transactions, and a rule that does not Require 100rel of a request refuses it.
        self._reliable = scenario.reliable
        self.transactions.scenario = scenario
        self._scenario = scenario

    # -- the per-request path -----------------------------------------------------------
    def handle(self, data: bytes, source: Source, now: float) -> Outcome:
        try:
            return self._handle(data, source, now)
        except Exception:
            # A bug must cost one message, never the listener: log it with the octets.
            self.counters["internal_errors"] += 1
            log.exception(
                "internal error handling %d octets from %s:%s:%d: %r",
                len(data),
                source.transport,
                source.remote[0],
                source.remote[1],
                data[:2000],
            )
            return Outcome(data, source, now, self._scenario, [], None, None, None)

    def _handle(self, data: bytes, source: Source, now: float) -> Outcome:
        # One scenario object for the whole request, even if another is swapped in.
        scenario = self._scenario
        settings = scenario.settings
        limiter = self.limiter
        over = limiter.verdict(source.remote[0], now) if limiter is not None else None
        if over is not None and over == DROP:
            self.counters["rate_limited"] += 1
            self.limit_log.hit(
                "rate_limit", "%s over the per-source rate limit: dropped", source.remote[0]
            )
            note = "dropped: over the per-source rate limit"
            return Outcome(data, source, now, scenario, [], None, None, note)
        try:
            request = parse_request(
                data,
                datagram=source.transport in MESSAGE_FRAMED,
                max_headers=settings.max_headers,
                max_line_length=settings.max_line_length,
                strict_length=scenario.switch("content_length"),
            )
        except NotARequest as exc:
            far = self.far
            if far is not None and data.startswith(b"SIP/2.0 "):
                sends = far.response(data, source, now)
                if sends is not None:
                    return Outcome(data, source, now, scenario, sends, None, None, RESPONSE_NOTE)
            why = f"not a request ({exc})"
            self._dropped(source, why)
            return Outcome(data, source, now, scenario, [], None, None, f"dropped: {why}")
        if len(data) > settings.max_message_size:
            request.error = too_large(f"over {settings.max_message_size} octets")
        try:
            via = request.top_via_lenient()
        except ValueError:
            why = "no usable Via: a response could not be routed"
            self._dropped(source, why)
            return Outcome(data, source, now, scenario, [], request, None, f"dropped: {why}")
        counters = self.counters
        counters[f"request:{request.method}"] += 1
        # Where it went (uas/fast.py): one increment per request, the key chosen by
        # the branch below, or here once for a scenario the table never answers.
        fast = self.fast
        if fast is None:
            counters[self._engine_only or NO_EXTENSION] += 1
        if request.method == "ACK":
            if fast is not None:
                counters[ACK] += 1
            log_request(request, source, "ACK absorbed")
            self.transactions.absorb_ack(request)
            if self.far is not None:
                self.far.acked(request, now)
            return Outcome(data, source, now, scenario, [], request, None, "ACK absorbed")
        rejection: Refusal | None
        if over is not None:  # REJECT: a 503, at most one a second per source
            self.counters["rate_limited"] += 1
            rejection = RATE_LIMITED
        else:
            if request.error is not None:
                self.counters["parse_errors"] += 1
            rejection = check_request(request, scenario)
            merged = self.merged
            if rejection is None and merged is not None and merged.is_merged(
                request, via.branch, now
            ):
                rejection = LOOP_DETECTED
        if rejection is not None:
            if fast is not None:
                counters[VALIDATION] += 1
            note = f"rejected: {rejection.code} {rejection.reason}"
            log_request(request, source, note)
            send = self._reject(request, source, via, rejection)
            return Outcome(data, source, now, scenario, [send], request, None, note)

        transactions = self.transactions
        if self._reliable and request.method == "PRACK":
            if fast is not None:
                counters[TRANSACTION] += 1
            acked = transactions.prack(request, source, via, now)
            if isinstance(acked, tuple):
                return Outcome(data, source, now, scenario, acked[0], request, None, acked[1])
            note = f"rejected: {acked.code} {acked.reason}"
            log_request(request, source, note)
            send = self._reject(request, source, via, acked)
            return Outcome(data, source, now, scenario, [send], request, None, note)
        if transactions.table:
            found = transactions.match(request, source, via, now)
            if found is not None:
                sends, note, ended = found
                if fast is not None:
                    counters[TRANSACTION] += 1
                if ended is not None and self.media is not None:
                    self.media.close(request.call_id)  # a CANCELled call has no stream
                return Outcome(data, source, now, scenario, sends, request, None, note,
                               None, ended)

        media = self.media
        if media is not None:
            if request.method == "BYE":
                media.close(request.call_id)
            elif request.method == "INFO":
                media.info(request.call_id, request.get("content-type"), request.body)
        far = self.far
        if far is not None:
            refused = far.inbound(request, now)
            if refused is not None:  # RFC 3261 14.2: a re-INVITE while ours is pending
                note = f"rejected: {refused[0]} {refused[1]}"
                send = self._reject(request, source, via, Rejection(*refused))
                return Outcome(data, source, now, scenario, [send], request, None, note)
        if self._stateful:
            rule = scenario.match(request, source, self.states.admits)
        else:
            rule = scenario.match(request, source)
        if fast is not None:
            counters[fast.reasons[rule.number]] += 1
        reliable = False
        if self._reliable:
            invite = request.method == "INVITE"
            reliable = rule.reliable and invite and offers_100rel(request)
            refusal: Rejection | None = None
            if (not reliable and requires_100rel(request) and scenario.switch("require")
                    and "100rel" not in settings.supported):
                # validation._require left 100rel to the rule, and this one does not
                # send reliable provisionals: the 420 every other scenario gives.
                refusal = NO_100REL
            elif rule.require_100rel and invite and not reliable:
                refusal = NEEDS_100REL
            if refusal is not None:
                note = f"rejected: {refusal.code} {refusal.reason}"
                log_request(request, source, note)
                send = self._reject(request, source, via, refusal)
                return Outcome(data, source, now, scenario, [send], request, None, note)
        provisional = rule.provisional
        final = rule.final
        if rule.auth is not None:  # Digest authentication first: the rule or its stand-in
            rule = rule.auth.check(rule, request, now)
            provisional, final = rule.provisional, rule.final
        if rule.state is not None:  # a challenge (a stand-in rule) neither counts nor moves
            provisional, final = self.states.take(rule, request, source)
        log_request(request, source, None, rule)
        if rule.behaviour is not None:
            return self._behave(data, source, now, scenario, request, via, rule, reliable)
        echo = Echo(request, source.remote, scenario.tag_key)
        code = self._code(final, request, source)
        if (not provisional and not final.delay and code >= 200 and rule.state is None
                and not rule.acts):
            # Stateless: the same request always gets the same octets back. A stateful
            # rule keeps a transaction so that a retransmission is not counted again.
            plan = self._plan(final, code, request.method, source)
            code, reason, octets = plan.render(request, source, echo, scenario)
            send = self._send(request, source, via, code, reason, octets)
            # The plan rides along only when the octets are its own (not a 406 in place
            # of a body the request's Accept refuses): the compiled path learns from it.
            return Outcome(data, source, now, scenario, [send], request, rule, None, None,
                           None, plan if code == plan.code else None)
        then = rule.then
        if (then and request.method == "SUBSCRIBE"
                and self.far_end().unknown_subscription(request)):
            note = "rejected: 481 Call/Transaction Does Not Exist (no such subscription)"
            send = self._reject(request, source, via, Rejection(
                481, "Call/Transaction Does Not Exist"))
            return Outcome(data, source, now, scenario, [send], request, rule, note)
        session: Negotiated | None = None
        if (rule.session_timer is not None and request.method in SESSION_METHODS
                and 200 <= code < 300):
            got = negotiate(rule.session_timer, request)
            if not isinstance(got, Negotiated):  # 422 (RFC 4028 9), or 400
                status, why, min_se = got
                note = f"rejected: {status} {why}"
                send = self._reject(request, source, via, Rejection(
                    status, why, [("Min-SE", min_se)] if min_se else []))
                return Outcome(data, source, now, scenario, [send], request, rule, note)
            session = got
        steps = [(spec, self._code(spec, request, source)) for spec in provisional]
        if code < 200:
            # A 1xx as the final code (e.g. sip:180@ in the default scenario): send it,
            # then complete the transaction with 200 OK.
            steps.append((final, code))
            final = self.plans.completion(final)
            code = 200
        steps.append((final, code))
        finish: Callable[[Send], list[Send]] | None = (
            None if session is None else partial(_with_lines, session.lines))
        stream = None
        media_plan = rule.media
        if media_plan is not None and code < 300 and request.method == "INVITE":
            opened = self._media_answer(request, source, now)
            if isinstance(opened, Rejection):
                note = f"rejected: {opened.code} {opened.reason}"
                send = self._reject(request, source, via, opened)
                return Outcome(data, source, now, scenario, [send], request, rule, note)
            if opened is not None:
                port, body, stream = opened
                media_finish = partial(_with_sdp, body)
                finish = media_finish if finish is None else _then_finish(finish, media_finish)
        sends, txn = transactions.start(steps, request, source, via, echo, now, finish=finish,
                                        reliable=reliable)
        if stream is not None and media_plan is not None:
            if txn is None:
                self.media_table().release(port)
            else:
                txn.media = self.media_table().open(
                    port, request.call_id, self._media_address(source), media_plan, stream,
                    now)
        if (then or session is not None) and txn is not None:
            self.far_end().answered(rule, request, source, echo.tag, code, txn, now,
                                    sum(spec.delay for spec, _ in steps), session)
        return Outcome(data, source, now, scenario, sends, request, rule, None, txn)

    def _behave(
        self,
        data: bytes,
        source: Source,
        now: float,
        scenario: Scenario,
        request: Request,
        via: Via,
        rule: Rule,
        reliable: bool = False,
    ) -> Outcome:
        """A rule with a Behaviour: maybe not answered, maybe only its provisional
        responses, maybe a fault in place of (or around) its final response."""
        behaviour = rule.behaviour
        assert behaviour is not None
        if behaviour.probability < 1.0 and self.random.random() >= behaviour.probability:
            self.counters["not_answered"] += 1
            lost = f"not answered (probability {behaviour.probability:g})"
            return Outcome(data, source, now, scenario, [], request, rule, lost)
        note = behaviour.note
        action = behaviour.action
        if action == "none":
            # Stateless: a retransmission matches the same rule and gets nothing too.
            self.counters["not_answered"] += 1
            return Outcome(data, source, now, scenario, [], request, rule, note)
        echo = Echo(request, source.remote, scenario.tag_key)
        steps = [(spec, self._code(spec, request, source)) for spec in rule.provisional]
        if action == "provisional-only":
            sends, txn = self.transactions.start(
                steps, request, source, via, echo, now, ends=False, reliable=reliable
            )
            return Outcome(data, source, now, scenario, sends, request, rule, note, txn)
        if behaviour.fault is not None:
            self.counters[f"fault:{behaviour.fault}"] += 1
            if source.transport == "udp" and behaviour.fault.startswith(("close", "reset")):
                note = f"fault: {behaviour.fault} (UDP has no connection: not answered)"
        final = rule.final
        choices = behaviour.choices
        if choices:
            [i] = self.random.choices(range(len(choices)), behaviour.weights)
            final = choices[i]
            picked = f"choice[{i}]"
            note = f"{picked}; {note}" if note else picked
        code = self._code(final, request, source)
        finish = partial(faults.apply, behaviour, rng=self.random)
        if not rule.provisional and not final.delay and code >= 200:
            sends = finish(self._respond(final, code, request, source, via, echo))
            return Outcome(data, source, now, scenario, sends, request, rule, note)
        if code < 200:
            steps.append((final, code))
            final = self.plans.completion(final)
            code = 200
        steps.append((final, code))
        sends, txn = self.transactions.start(
            steps, request, source, via, echo, now, finish=finish, reliable=reliable
        )
        return Outcome(data, source, now, scenario, sends, request, rule, note, txn)

    def handle_framing_error(
        self, head: bytes, code: int, reason: str, source: Source
    ) -> list[Send]:
        """A stream that cannot be framed: answer what the header section allows, then close."""
        try:
            request = parse_request(head + b"\r\n\r\n", datagram=True)
            via = request.top_via_lenient()
        except (NotARequest, ValueError):
            self._dropped(source, f"unframeable stream ({code} {reason}), closing")
            return [Send(b"", source.transport, source.remote, source.conn, close_after=True)]
        rejection = Rejection(code, reason)
        log_request(request, source, f"rejected: {rejection.code} {rejection.reason}")
        send = self._reject(request, source, via, rejection)
        return [Send(send.data, send.transport, send.remote, send.conn, close_after=True)]

    # -- media (call/) ------------------------------------------------------------------
    def media_table(self) -> MediaTable:
        """The calls' RTP streams, made on first use."""
        if self.media is None:
            from ..call.table import MediaTable

            settings = self._scenario.settings
            # The media faults draw from the engine's generator: settings.seed replays
            # them like the other chancy behaviours.
            self.media = MediaTable(settings.rtp_port_min, settings.rtp_port_max,
                                    settings.media_max_seconds, self.random)
        return self.media

    def _media_address(self, source: Source) -> str:
        return self._scenario.settings.media_address or source.local[0]

    def _media_answer(self, request: Request, source: Source, now: float
                      ) -> tuple[int, bytes, Agreed] | Rejection | None:
        """A port and our SDP answer for the INVITE's stream, a refusal (no port
        free: 503; an offer without PCMU or PCMA: 488), or None (no offer: the call
        goes on without a stream of ours)."""
        from ..call.offer import answer
        from .plan import sdp_session

        ctype = (request.get("content-type") or "").lower()
        if not request.body or not ctype.startswith("application/sdp"):
            return None
        table = self.media_table()
        port = table.reserve()
        if port is None:
            self.counters["media_ports_exhausted"] += 1
            return Rejection(503, "Service Unavailable", [("Retry-After", "5"), (
                "Warning", '399 sipresponder "no RTP port free in settings.rtp_port_min'
                '-rtp_port_max"')])
        answered = answer(request.body, self._media_address(source), sdp_session(request),
                          port)
        if answered is None:
            table.release(port)
            return Rejection(488, "Not Acceptable Here", [(
                "Warning", '305 sipresponder "Incompatible media format: no RTP/AVP audio'
                ' stream offering PCMU or PCMA"')])
        body, negotiated = answered
        return port, body, negotiated

    def far_end(self) -> FarEnd:
        """The far end, made on first use (and imported then: a scenario without
        `then` steps never loads the UAC side)."""
        if self.far is None:
            from ..uac.farend import FarEnd

            self.far = FarEnd(self._scenario.settings, self.counters, self.sent_recorders)
            self.far.ended.append(self._call_ended)
        return self.far

    def _call_ended(self, call_id: str) -> None:
        if self.media is not None:
            self.media.close(call_id)

    def next_deadline(self) -> float | None:
        mine = self.transactions.next_deadline()
        if self.far is None and self.media is None:
            return mine
        due = [d for d in (mine, self.far.next_deadline() if self.far else None,
                           self.media.next_deadline() if self.media else None)
               if d is not None]
        return min(due) if due else None

    def fire(self, now: float) -> list[Send]:
        sends = self.transactions.fire(now)
        if self.far is not None:
            sends += self.far.fire(now)
        if self.media is not None:
            sends += self.media.fire(now)
        return sends

    # -- building and routing one response ----------------------------------------------------
    def _reject(self, request: Request, source: Source, via: Via, rejection: Refusal) -> Send:
        headers = "".join([header_line(name, value) for name, value in rejection.headers])
        server = self._scenario.settings.server
        if server:
            headers += header_line("Server", server)
        echo = Echo(request, source.remote, self._scenario.tag_key)
        data = serialize(status_line(rejection.code, rejection.reason), echo.tagged, headers)
        return self._send(request, source, via, rejection.code, rejection.reason, data)

    def _code(self, spec: ResponseSpec, request: Request, source: Source) -> int:
        if isinstance(spec.code, int):
            return spec.code
        text = spec.code.render(RenderContext(request, source))
        if text.isascii() and text.isdigit() and 100 <= int(text) <= 699:
            return int(text)
        log.warning("scenario produced an invalid status code %r; answering 500", text)
        return 500

    def _respond(
        self, spec: ResponseSpec, code: int, request: Request, source: Source, via: Via, echo: Echo
    ) -> Send:
        plan = self._plan(spec, code, request.method, source)
        code, reason, data = plan.render(request, source, echo, self._scenario)
        return self._send(request, source, via, code, reason, data)

    def _plan(self, spec: ResponseSpec, code: int, method: str, source: Source
              ) -> ResponsePlan:
        """The compiled response for ``spec`` answering ``method`` with ``code`` on
        ``source``'s listener: from the cache, or compiled now."""
        plans = self.plans
        plan = plans.get((id(spec), code, method, source.transport, source.local))
        if plan is None:
            plan = plans.compile(spec, code, method, source)
        return plan

    def _send(
        self, request: Request, source: Source, via: Via, code: int, reason: str, data: bytes
    ) -> Send:
        settings = self._scenario.settings
        if (
            settings.max_amplification
            and source.transport == "udp"
            and len(data) > settings.max_amplification * len(request.raw)
        ):
            # Never a reflector: a small spoofed datagram must not buy a big response.
            self.counters["amplification_dropped"] += 1
            self.limit_log.hit(
                "max_amplification",
                "not sending %d %s (%d octets) for a %d-octet UDP request from %s:%d: "
                "over settings.max_amplification = %g",
                code,
                reason,
                len(data),
                len(request.raw),
                source.remote[0],
                source.remote[1],
                settings.max_amplification,
            )
            return Send(b"", "udp", source.remote, source.conn)
        remote = response_destination(
            source.transport, source.remote, via, settings.response_routing
        )
        dest = Send(data, source.transport, remote, source.conn)
        if traffic_log.isEnabledFor(logging.INFO):
            traffic_log.info(
                "send %d %s to %s:%s:%d",
                code,
                reason,
                dest.transport,
                dest.remote[0],
                dest.remote[1],
                extra={
                    "event": "response",
                    "code": code,
                    "reason": reason,
                    "call_id": request.get("call-id"),
                    "transport": dest.transport,
                    "remote": f"{dest.remote[0]}:{dest.remote[1]}",
                },
            )
        self.counters[f"response:{code}"] += 1
        return dest

    def _dropped(self, source: Source, why: str) -> None:
        self.counters["dropped"] += 1
        # A short, bounded label for metrics: "dropped:not a request", "dropped:no usable Via".
        self.counters["dropped:" + why.split(" (", 1)[0].split(":", 1)[0]] += 1
        log_drop(source, why)


def _with_lines(lines: bytes, send: Send) -> list[Send]:
    """A final response with header ``lines`` added (a session timer's)."""
    return [Send(with_lines(send.data, lines), send.transport, send.remote, send.conn,
                 send.close_after, send.reset)]


def _with_sdp(body: bytes, send: Send) -> list[Send]:
    """A 2xx with our stream's SDP answer in place of the plan's (call/offer.py)."""
    return [Send(with_body(send.data, body, "application/sdp"), send.transport, send.remote,
                 send.conn, send.close_after, send.reset)]


def _then_finish(first: Callable[[Send], list[Send]], second: Callable[[Send], list[Send]]
                 ) -> Callable[[Send], list[Send]]:
    def both(send: Send) -> list[Send]:
        return [out for done in first(send) for out in second(done)]

    return both
