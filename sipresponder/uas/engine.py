"""Request in, responses out: the whole per-request path of the responder, without I/O.

``Engine.handle`` takes the octets of one message (a UDP datagram or a framed TCP
message), where it came from and the current time, and returns what to send. Rules
that answer over time leave timers behind: the transport asks ``next_deadline()``
and calls ``fire(now)`` when it passes (the aioquic style of sans-I/O timers).
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial

from ..scenario.model import ResponseSpec, Rule, Scenario
from ..scenario.template import RenderContext, compile_template
from ..sip.headers import Via
from ..sip.message import NotARequest, Request, parse_request
from ..sip.response import Echo, serialize
from ..testing.journal import Journal, fill_entry
from .events import Send, Source
from .limitlog import LimitLog
from .merged import MergedRequests
from .plan import compile_response
from .ratelimit import RateLimiter
from .transactions import TimerQueue, Transaction, TxnKey, dialog_key, transaction_key
from .validation import Rejection, check_request

log = logging.getLogger("sipresponder")

# Compiled responses kept per response spec (one per code, method, transport and
# local address actually seen).
_PLANS_PER_SPEC = 256
# Transports where one arrival is one whole message (RFC 7118 5.1 for WebSocket): a
# missing Content-Length means the body runs to the end, as in a datagram.
_MESSAGE_TRANSPORTS = frozenset({"udp", "ws", "wss"})


class Engine:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario  # also sets up the rate limiter and merged-request cache
        self.timers = TimerQueue()
        self.transactions: dict[TxnKey, Transaction] = {}
        self.by_dialog: dict[TxnKey, Transaction] = {}
        self.counters: Counter[str] = Counter()
        self.limit_log = LimitLog()
        self.journal: Journal | None = None  # set to record every request (tests, admin)
        self._seen: tuple[Request | None, Rule | None, str | None] | None = None
        self._new_txn: Transaction | None = None

    @property
    def scenario(self) -> Scenario:
        return self._scenario

    @scenario.setter
    def scenario(self, scenario: Scenario) -> None:
        """Swap scenarios atomically; per-source state restarts with the new limits."""
        settings = scenario.settings
        self.limiter = (
            RateLimiter(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        self.merged = MergedRequests(settings.loop_ttl) if scenario.switch("loop") else None
        self._scenario = scenario

    # -- the per-request path -----------------------------------------------------------
    def handle(self, data: bytes, source: Source, now: float) -> list[Send]:
        journal = self.journal
        if journal is not None:
            return self._handle_journaled(journal, data, source, now)
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
            return []

    def _handle_journaled(
        self, journal: Journal, data: bytes, source: Source, now: float
    ) -> list[Send]:
        entry = journal.record(now, source, data)
        self._seen = None
        self._new_txn = None
        try:
            sends = self._handle(data, source, now)
        except Exception:
            self._seen = None
            sends = []
            self.counters["internal_errors"] += 1
            log.exception(
                "internal error handling %d octets from %s:%s:%d",
                len(data),
                source.transport,
                source.remote[0],
                source.remote[1],
            )
        if self._seen is not None:
            request, rule, outcome = self._seen
            fill_entry(entry, request, rule, outcome, self._scenario, source)
        entry.responses.extend(s.data for s in sends if s.data)
        if self._new_txn is not None:
            self._new_txn.entry = entry
        journal.completed(entry)
        return sends

    def _handle(self, data: bytes, source: Source, now: float) -> list[Send]:
        # One scenario object for the whole request, even if another is swapped in.
        scenario = self._scenario
        settings = scenario.settings
        limited = self.limiter is not None and not self.limiter.allow(source.remote[0], now)
        if limited and (
            settings.rate_limit_action == "drop"
            or not self.limiter.may_reject(source.remote[0], now)
        ):  # type: ignore[union-attr]
            self.counters["rate_limited"] += 1
            self._seen = (None, None, "dropped: over the per-source rate limit")
            self.limit_log.hit(
                "rate_limit", "%s over the per-source rate limit: dropped", source.remote[0]
            )
            return []
        try:
            request = parse_request(
                data,
                datagram=source.transport in _MESSAGE_TRANSPORTS,
                max_headers=settings.max_headers,
                max_line_length=settings.max_line_length,
                strict_length=scenario.switch("content_length"),
            )
        except NotARequest as exc:
            self._drop(source, f"not a request ({exc})")
            return []
        if len(data) > settings.max_message_size:
            request.error = (513, "Message Too Large")
        try:
            via = request.top_via_lenient()
        except ValueError:
            self._drop(source, "no usable Via: a response could not be routed", request)
            return []
        self.counters[f"request:{request.method}"] += 1
        if request.method == "ACK":
            self._log_request(request, source, "ACK absorbed")
            if self.by_dialog:
                self._absorb_ack(request)
            return []
        if limited:
            self.counters["rate_limited"] += 1
            return [
                self._reject(
                    request,
                    source,
                    via,
                    Rejection(503, "Service Unavailable", [("Retry-After", "1")]),
                )
            ]
        if request.error is not None:
            self.counters["parse_errors"] += 1
        rejection = check_request(request, scenario)
        if rejection is None and self.merged is not None:
            rejection = self._merged(request, via, now)
        if rejection is not None:
            return [self._reject(request, source, via, rejection)]

        if self.transactions:
            out = self._in_transaction(request, source, via, now)
            if out is not None:
                return out

        rule = scenario.match(request, source)
        if rule.auth is not None:  # Digest authentication first: the rule or its stand-in
            rule = rule.auth.check(rule, request, now)
        self._log_request(request, source, None, rule)
        echo = Echo(request, source.remote, scenario.tag_key)
        final = rule.final
        code = self._code(final, request, source)
        if not rule.provisional and not final.delay and code >= 200:
            # Stateless: the same request always gets the same octets back.
            return [self._respond(final, code, request, source, via, echo)]
        steps = [(spec, self._code(spec, request, source)) for spec in rule.provisional]
        if code < 200:
            # A 1xx as the final code (e.g. sip:180@ in the default scenario): send it,
            # then complete the transaction with 200 OK.
            steps.append((final, code))
            final = _with_code(final, 200)
            code = 200
        steps.append((final, code))
        return self._start_transaction(rule, steps, request, source, via, echo, now)

    def handle_framing_error(
        self, head: bytes, code: int, reason: str, source: Source
    ) -> list[Send]:
        """A stream that cannot be framed: answer what the header section allows, then close."""
        try:
            request = parse_request(head + b"\r\n\r\n", datagram=True)
            via = request.top_via_lenient()
        except (NotARequest, ValueError):
            self._drop(source, f"unframeable stream ({code} {reason}), closing")
            return [Send(b"", source.transport, source.remote, source.conn, close_after=True)]
        send = self._reject(request, source, via, Rejection(code, reason))
        return [Send(send.data, send.transport, send.remote, send.conn, close_after=True)]

    def _reject(self, request: Request, source: Source, via: Via, rejection: Rejection) -> Send:
        self._log_request(request, source, f"rejected: {rejection.code} {rejection.reason}")
        headers = rejection.headers
        server = self._scenario.settings.server
        if server:
            headers = [*headers, ("Server", server)]
        echo = Echo(request, source.remote, self._scenario.tag_key)
        return self._send(
            request,
            source,
            via,
            rejection.code,
            rejection.reason,
            serialize(rejection.code, rejection.reason, echo.tagged, headers),
        )

    def _merged(self, request: Request, via: Via, now: float) -> Rejection | None:
        if request.to.tag is not None or request.method == "CANCEL":
            return None
        key = (request.from_.tag or "", request.call_id, request.fields["cseq"][0])
        if self.merged.is_merged(key, via.branch, now):  # type: ignore[union-attr]
            return Rejection(482, "Loop Detected")
        return None

    # -- building one response ------------------------------------------------------------
    def _code(self, spec: ResponseSpec, request: Request, source: Source) -> int:
        if isinstance(spec.code, int):
            return spec.code
        text = spec.code.render(RenderContext(request, source))
        if text.isdigit() and 100 <= int(text) <= 699:
            return int(text)
        log.warning("scenario produced an invalid status code %r; answering 500", text)
        return 500

    def _respond(
        self, spec: ResponseSpec, code: int, request: Request, source: Source, via: Via, echo: Echo
    ) -> Send:
        key = (code, request.method, source.transport, source.local)
        plan = spec.plans.get(key)
        if plan is None:
            if len(spec.plans) >= _PLANS_PER_SPEC:
                spec.plans.clear()  # methods are the sender's to choose: stay bounded
            plan = spec.plans[key] = compile_response(
                spec, code, request.method, source, self._scenario
            )
        code, reason, data = plan.render(request, source, echo, self._scenario)
        return self._send(request, source, via, code, reason, data)

    def _send(
        self, request: Request, source: Source, via: Via, code: int, reason: str, data: bytes
    ) -> Send:
        """Route a response (RFC 3261 18.2.2, RFC 3581 4): same connection on TCP; on
        UDP the source address, and the source port unless the scenario asks for
        strict RFC 3261 routing and the request has no rport."""
        settings = self._scenario.settings
        if source.transport != "udp":
            dest = Send(data, source.transport, source.remote, source.conn)
        elif settings.max_amplification and len(data) > settings.max_amplification * len(
            request.raw
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
        elif settings.response_routing == "source" or via.has_param("rport"):
            dest = Send(data, "udp", source.remote, source.conn)
        else:
            dest = Send(data, "udp", (source.remote[0], via.port or 5060), source.conn)
        if log.isEnabledFor(logging.INFO):
            log.info(
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

    # -- stateful transactions -------------------------------------------------------------
    def _start_transaction(
        self,
        rule: Rule,
        steps: list[tuple[ResponseSpec, int]],
        request: Request,
        source: Source,
        via: Via,
        echo: Echo,
        now: float,
    ) -> list[Send]:
        settings = self.scenario.settings
        if len(self.transactions) >= settings.max_transactions:
            self.limit_log.hit(
                "max_transactions",
                "transaction limit (%d) reached; answering 503",
                settings.max_transactions,
            )
            spec = ResponseSpec(503, typed={"Retry-After": [compile_template("5")]})
            return [self._respond(spec, 503, request, source, via, echo)]
        key = transaction_key(request, request.method)
        txn = Transaction(key, request)
        self.transactions[key] = txn
        self._new_txn = txn
        if request.method == "INVITE":
            self.by_dialog[dialog_key(request)] = txn
        out: list[Send] = []
        if request.method == "INVITE" and steps[0][0].delay > 0 and steps[0][1] != 100:
            # RFC 3261 17.2.1: 100 Trying when the TU will not answer right away.
            trying = ResponseSpec(100, sdp=False)
            txn.last = self._respond(trying, 100, request, source, via, echo)
            out.append(txn.last)
        elapsed = 0.0
        for i, (spec, code) in enumerate(steps):
            final = i == len(steps) - 1
            elapsed += spec.delay
            step = partial(self._step, txn, spec, code, final, source, via, echo)
            if elapsed == 0:
                out.extend(step(now))
            else:
                txn.steps.append(self.timers.add(now + elapsed, step))
        return out

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
        send = self._respond(spec, code, txn.request, source, via, echo)
        txn.last = send
        if txn.entry is not None and send.data:
            # Only set for responses sent after handle() returned (timer steps).
            txn.entry.responses.append(send.data)
        if final:
            self._completed(txn, source, now)
        return [send]

    def _completed(self, txn: Transaction, source: Source, now: float) -> None:
        txn.final_sent = True
        for timer_id in txn.steps:
            self.timers.cancel(timer_id)
        txn.steps.clear()
        t1 = self.scenario.settings.timer_t1
        if source.transport == "udp" and txn.request.method == "INVITE":
            # Timer G / 13.3.1.4: retransmit the final response until the ACK comes.
            txn.retransmit_id = self.timers.add(now + t1, partial(self._retransmit, txn, t1))
        self.timers.add(now + 64 * t1, partial(self._expire, txn))

    def _retransmit(self, txn: Transaction, interval: float, now: float) -> list[Send]:
        if txn.acked or txn.last is None:
            return []
        interval = min(2 * interval, self.scenario.settings.timer_t2)
        txn.retransmit_id = self.timers.add(
            now + interval, partial(self._retransmit, txn, interval)
        )
        self.counters["retransmissions"] += 1
        return [txn.last]

    def _expire(self, txn: Transaction, now: float) -> list[Send]:
        self.timers.cancel(txn.retransmit_id)
        if self.transactions.get(txn.key) is txn:
            del self.transactions[txn.key]
        dkey = dialog_key(txn.request)
        if self.by_dialog.get(dkey) is txn:
            del self.by_dialog[dkey]
        return []

    def _in_transaction(
        self, request: Request, source: Source, via: Via, now: float
    ) -> list[Send] | None:
        """Retransmissions and CANCEL of a stateful transaction; None if there is none."""
        txn = self.transactions.get(transaction_key(request, request.method))
        if txn is not None:
            self.counters["retransmitted_requests"] += 1
            self._seen = (request, None, "retransmission: the last response again")
            return [txn.last] if txn.last is not None else []
        if request.method != "CANCEL":
            return None
        txn = self.transactions.get(transaction_key(request, "INVITE"))
        if txn is None:
            return None
        # RFC 3261 9.2: 200 to the CANCEL; 487 to the INVITE if it had no final yet.
        self._log_request(request, source, "CANCEL of a pending INVITE")
        echo = Echo(request, source.remote, self.scenario.tag_key)
        out = [self._respond(ResponseSpec(200, sdp=False), 200, request, source, via, echo)]
        if not txn.final_sent:
            invite_echo = Echo(txn.request, source.remote, self.scenario.tag_key)
            invite_via = txn.request.top_via_lenient()
            txn.last = self._respond(
                ResponseSpec(487, sdp=False), 487, txn.request, source, invite_via, invite_echo
            )
            out.append(txn.last)
            if txn.entry is not None:
                txn.entry.responses.append(txn.last.data)
            self._completed(txn, source, now)
        return out

    def _absorb_ack(self, request: Request) -> None:
        try:
            txn = self.by_dialog.get(dialog_key(request))
        except (KeyError, ValueError):
            return
        if txn is not None:
            txn.acked = True
            self.timers.cancel(txn.retransmit_id)

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def fire(self, now: float) -> list[Send]:
        return self.timers.fire(now)

    # -- logging ----------------------------------------------------------------------------
    def _log_request(
        self, request: Request, source: Source, outcome: str | None, rule: Rule | None = None
    ) -> None:
        """``outcome`` None: answered by ``rule`` (its label is only made when needed)."""
        self._seen = (request, rule, outcome)
        if log.isEnabledFor(logging.INFO):
            if outcome is None:
                outcome = rule.label if rule is not None else ""
            log.info(
                "recv %s %s from %s:%s:%d (%s)",
                request.method,
                request.uri_raw,
                source.transport,
                source.remote[0],
                source.remote[1],
                outcome,
                extra={
                    "event": "request",
                    "method": request.method,
                    "uri": request.uri_raw,
                    "call_id": request.get("call-id"),
                    "transport": source.transport,
                    "remote": f"{source.remote[0]}:{source.remote[1]}",
                    "outcome": outcome,
                },
            )

    def _drop(self, source: Source, why: str, request: Request | None = None) -> None:
        self.counters["dropped"] += 1
        # A short, bounded label for metrics: "dropped:not a request", "dropped:no usable Via".
        self.counters["dropped:" + why.split(" (", 1)[0].split(":", 1)[0]] += 1
        self._seen = (request, None, f"dropped: {why}")
        if log.isEnabledFor(logging.INFO):
            log.info(
                "drop message from %s:%s:%d: %s",
                source.transport,
                source.remote[0],
                source.remote[1],
                why,
                extra={
                    "event": "drop",
                    "reason": why,
                    "transport": source.transport,
                    "remote": f"{source.remote[0]}:{source.remote[1]}",
                },
            )


def _with_code(spec: ResponseSpec, code: int) -> ResponseSpec:
    return ResponseSpec(
        code,
        None,
        spec.headers,
        spec.typed,
        spec.body,
        spec.content_type,
        spec.sdp,
        0.0,
        spec.fill_required,
    )
