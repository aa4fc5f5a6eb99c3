"""The far end acts: the requests the responder sends of its own accord, sans-I/O.

A rule with ``then`` steps (scenario/steps.py) hands its answered request here
(``FarEnd.answered``); the steps run one after the other, each ``after`` seconds
after the previous one is over (the first after the ACK of our 2xx to an INVITE,
RFC 3261 13.3.1.4, or 64*T1 after the 2xx when no ACK comes; else after the answer):

- in a dialog (RFC 3261 12): the one the request made (a 2xx to INVITE, SUBSCRIBE or
  REFER, our To tag the Echo's), or the one it was sent in (its To tag: adopted from
  the request when the far end did not know it yet, e.g. a REFER in a call whose
  INVITE rule has no steps);
- or, after a request that makes no dialog (a REGISTER, an out-of-dialog MESSAGE),
  out of any dialog, to the request's Contact: a new Call-ID each time, and an
  INVITE there calls the client in (its 2xx makes the dialog the next steps use).

Each request goes through its client transaction (uac/transactions.py: Timers A, B,
E, F, K, the ACK of a non-2xx); a 2xx to our INVITE is ACKed here, from the dialog
(RFC 3261 13.2.2.4), with an SDP answer when our INVITE offered none. A 491 to our
re-INVITE is retried after RFC 3261 14.1's back-off; a 408 or 481 to an in-dialog
request ends the dialog (12.2.1.2), and so does a BYE, sent or received.

Nothing here reads a clock or a socket: the engine passes ``now`` in, hands over the
responses that arrive (``response``), asks ``next_deadline()`` and calls
``fire(now)``; every call returns the ``Send``s to write. Each request sent is told
to ``recorders`` as an ``Exchange`` (the journal's entry with direction "sent").
"""

from __future__ import annotations

import logging
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..auth.digest import answer, parse_challenge
from ..scenario.model import FarEndStep
from ..scenario.template import RenderContext, compile_template
from ..sip.headers import parse_name_addr
from ..sip.message import Request, parse_request
from ..sip.sdp import make_answer, make_offer
from ..sip.uri import URI, parse_uri
from ..uas.events import Send, Source
from ..uas.plan import own_contact, sdp_session
from ..uas.transactions import TimerQueue
from .dialog import Dialog, DialogError, DialogId, Dialogs, Hop
from .exchange import Exchange, SentRecorder
from .packages import SIPFRAG, default_body
from .responses import Response, parse_response
from .transactions import (
    Actions,
    ClientRequest,
    ClientTransactions,
    Destination,
    Received,
    Terminated,
    TimedOut,
    Timers,
    TooManyTransactions,
    TransportFailed,
    TxnKey,
    build_cancel,
    new_branch,
)

if TYPE_CHECKING:
    from ..scenario.model import Rule, Settings
    from ..uas.sessiontimer import Negotiated
    from ..uas.transactions import Transaction

log = logging.getLogger("sipresponder")

# Methods whose 2xx makes a dialog (RFC 3261 12.1, RFC 6665 4.1.2.2, RFC 3515 2.4.4).
DIALOG_MAKERS = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
# Statuses to an in-dialog request that end the dialog (RFC 3261 12.2.1.2).
DIALOG_ENDING = frozenset({408, 481})
# Out-of-dialog requests carry this user in From and Contact, as our responses do
# (uas/plan.py own_contact).
OUR_USER = "sipresponder"
# How many times a step's re-INVITE answered 491 is tried again (RFC 3261 14.1).
MAX_GLARE_RETRIES = 5


@dataclass(slots=True, eq=False)
class Script:
    """A rule's steps running for one request: ``context`` the request that
    triggered them (templates read it), ``dialog`` the dialog they run in (None:
    out of any dialog, until an INVITE step's 2xx makes one). ``index`` the step
    to run next; ``uas`` the server transaction of an INVITE whose ACK starts it."""

    steps: tuple[FarEndStep, ...]
    name: str  # who started it: "rule 'hangup' (#2)", "the admin API"
    context: RenderContext
    dialog: Dialog | None
    index: int = 0
    timer: int | None = None
    uas: Transaction | None = None
    retries: int = 0
    over: bool = False
    outbound: Dialog | None = None  # the first step's state, for a call made here

    @property
    def step(self) -> FarEndStep:
        return self.steps[self.index]

    @property
    def label(self) -> str:
        return f"{self.name}, step {self.index + 1} of {len(self.steps)}"


@dataclass(slots=True, eq=False)
class Pending:
    """One client transaction of ours: its request (parsed, for the dialog a 2xx
    makes), the exchange the journal shows, and what sent it."""

    request: Request
    exchange: Exchange
    dialog: Dialog
    destination: Destination
    script: Script | None
    offered: bool  # our INVITE carried an SDP offer (else the ACK carries the answer)
    ack: Send | None = None  # the ACK of its 2xx, sent again for each retransmission
    final: int | None = None
    # What it carried besides the dialog's own fields, to send it again with
    # credentials after a 401 or 407 (RFC 3261 22.2), once (``authed``).
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None
    authed: bool = False
    provisional: bool = False  # a 1xx came: a CANCEL may be sent now (RFC 3261 9.1)
    cancel: bool = False  # cancel_after passed before any 1xx: CANCEL at the first


@dataclass(slots=True)
class DialogUse:
    """What the far end keeps per dialog besides the dialog: the scripts running in
    it, our SDP session (id, version) and whether it is only a subscription (ended
    by a NOTIFY saying terminated) or carries a call."""

    context: RenderContext
    scripts: list[Script] = field(default_factory=list)
    session: int = 0
    version: int = 0
    inviting: TxnKey | None = None  # our INVITE in flight (glare: RFC 3261 14.2)
    call: bool = False
    ours: bool = False  # we chose the Call-ID (we called in): RFC 3261 14.1's owner
    notified: int = 0  # NOTIFYs sent: a dialog-info document's version (RFC 4235 4.1)
    # The session timer the last 2xx negotiated and our refresh method, and the
    # timer that refreshes or ends the session (RFC 4028 10).
    expiry: tuple[Negotiated, str] | None = None
    expiry_timer: int | None = None


class FarEnd:
    """The far end's dialogs, client transactions and running scripts (see the
    module's docstring). ``recorders`` is the engine's list, told of each request
    sent before its octets leave."""

    def __init__(self, settings: Settings, counters: Counter[str],
                 recorders: list[SentRecorder], rng: random.Random | None = None) -> None:
        self.settings = settings
        self.counters = counters
        self.recorders = recorders
        # Back-off draws (14.1); branches, tags and Call-IDs come from the system's
        # generator: a seeded scenario must not replay them after a swap.
        self.random = rng or random.Random()
        self._ids = random.SystemRandom()
        self.timers = TimerQueue()
        self.transactions = ClientTransactions(
            Timers(t1=settings.timer_t1, t2=settings.timer_t2), settings.max_transactions)
        self.dialogs = Dialogs(settings.max_transactions)
        self.uses: dict[DialogId, DialogUse] = {}
        self.pending: dict[TxnKey, Pending] = {}
        # The exchanges of the live transactions by id() of their octets, which the
        # transaction sends again as they are (Exchange.resent).
        self._sent: dict[int, Exchange] = {}
        # INVITEs we answered with 2xx whose ACK starts a script:
        # (Call-ID, their tag, our tag) -> the script.
        self.awaiting_ack: dict[tuple[str, str, str], Script] = {}
        # Told the Call-ID of each dialog that ends, or whose BYE we send (the engine
        # closes its RTP stream).
        self.ended: list[Callable[[str], None]] = []

    # -- what the engine tells it ----------------------------------------------------
    def answered(self, rule: Rule, request: Request, source: Source, local_tag: str,
                 code: int, uas: Transaction | None, now: float, delay: float = 0.0,
                 session: Negotiated | None = None) -> None:
        """``rule`` (which has steps, or a session timer) answered ``request`` with
        ``code`` (its final; ``delay`` seconds from now), our To tag ``local_tag``
        ("" when the request had one): start its script, and the session timer its
        2xx negotiated (``session``)."""
        dialog = None
        context = RenderContext(request, source)
        try:
            to_tag = request.to.tag
            from_tag = request.from_.tag or ""
            call_id = request.call_id
        except (KeyError, ValueError) as exc:
            self._failed(rule.label, f"the request's dialog fields do not parse: {exc}")
            return
        ok = 200 <= code < 300
        try:
            if to_tag:
                dialog = self.dialogs.get((call_id, to_tag, from_tag))
                if dialog is None:
                    dialog = self._adopt(Dialog.from_uas(
                        request, to_tag, source=source, contact=_contact(source)), request,
                        context)
            elif ok and request.method in DIALOG_MAKERS:
                dialog = self._adopt(Dialog.from_uas(
                    request, local_tag, source=source, contact=_contact(source)), request,
                    context)
        except DialogError as exc:
            self._failed(rule.label, str(exc))
            return
        if dialog is not None and ok and request.method == "SUBSCRIBE":
            self._subscription(dialog, request, uas, now + delay)
        if dialog is not None and session is not None and rule.session_timer is not None:
            self._session_timer(dialog, self.uses[dialog.id], session,
                                rule.session_timer.refresh, now + delay)
        if not rule.then:
            return
        script = Script(rule.then, rule.label, context, dialog, uas=uas)
        if dialog is not None:
            self.uses[dialog.id].scripts.append(script)
        if request.method == "INVITE" and ok and not to_tag:
            # 13.3.1.4: the 2xx is retransmitted until the ACK; without one in 64*T1
            # the UAS should end the dialog. The script starts at either.
            self.awaiting_ack[(call_id, from_tag, local_tag)] = script
            script.timer = self.timers.add(
                now + delay + 64 * self.settings.timer_t1, partial(self._no_ack, script))
            return
        self._schedule(script, now + delay)

    def acked(self, request: Request, now: float) -> None:
        """An ACK arrived: the one of a 2xx whose script waits starts it."""
        try:
            key = (request.call_id, request.from_.tag or "", request.to.tag or "")
        except (KeyError, ValueError):
            return
        script = self.awaiting_ack.pop(key, None)
        if script is None:
            return
        self.timers.cancel(script.timer)
        if script.uas is not None and script.uas.cancelled:
            self._end_script(script)  # the ACK of a 487: the call never was
            return
        self._schedule(script, now)

    def inbound(self, request: Request, now: float) -> tuple[int, str] | None:
        """A request the client sent: what the far end must answer in place of the
        rules (a 491 to a re-INVITE while ours is pending, RFC 3261 14.2), else None.
        A BYE in a far-end dialog ends it (the rules still answer it)."""
        method = request.method
        if method not in ("BYE", "INVITE", "UPDATE"):
            return None
        try:
            key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        except (KeyError, ValueError):
            return None
        use = self.uses.get(key)
        if use is None:
            return None
        if method == "BYE":
            self._end_dialog(key, "the client sent BYE")
            return None
        expiry = use.expiry
        if expiry is not None and expiry[0].refresher == "uac":
            # The client refreshed (RFC 4028 10): its session lives another interval.
            dialog = self.dialogs.get(key)
            if dialog is not None:
                self._session_timer(dialog, use, expiry[0], expiry[1], now)
        if use.inviting is not None and use.inviting in self.pending:
            return 491, "Request Pending"
        return None

    def response(self, data: bytes, source: Source, now: float) -> list[Send] | None:
        """A response that arrived: the Sends it causes, or None when it belongs to
        no request of ours (a stray, which the engine drops)."""
        try:
            parsed = parse_response(data)
        except ValueError:
            return None
        actions = self.transactions.receive(parsed, now)
        if actions is None:
            return None
        return self._apply(actions, now, source)

    def undeliverable(self, send: Send, reason: str, now: float) -> list[Send]:
        """The transport could not write ``send`` (its connection is gone): when it is
        one of our requests, its transaction fails with a 503 (RFC 3261 17.1.4) and
        its step is over; the Sends that causes."""
        exchange = self._sent.get(id(send.data))
        if exchange is None or exchange.data is not send.data:
            return []
        for key, pending in self.pending.items():
            if pending.exchange is exchange:
                return self._apply(self.transactions.transport_error(key, reason), now, None)
        return []

    # -- time ------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        mine = self.timers.next_deadline()
        theirs = self.transactions.next_deadline()
        if mine is None:
            return theirs
        return mine if theirs is None else min(mine, theirs)

    def fire(self, now: float) -> list[Send]:
        out = self.timers.fire(now)
        actions = self.transactions.fire(now)
        for send in actions.sends:
            # Timers A and E resend the request's own octets (an ACK of a non-2xx
            # is new octets): count them on its exchange.
            exchange = self._sent.get(id(send.data))
            if exchange is not None and exchange.data is send.data:
                exchange.resent += 1
                self.counters["far_end_retransmissions"] += 1
        out += self._apply(actions, now, None)
        return out

    # -- what tests and the admin API ask --------------------------------------------
    def live(self) -> list[dict[str, object]]:
        """The live dialogs, JSON-able: Call-ID, tags, peer, state, scripts."""
        out: list[dict[str, object]] = []
        for key, use in self.uses.items():
            dialog = self.dialogs.get(key)
            if dialog is None:
                continue
            out.append({
                "call_id": dialog.call_id, "local_tag": dialog.local_tag,
                "remote_tag": dialog.remote_tag, "local": dialog.local,
                "remote": dialog.remote, "remote_target": dialog.remote_target.raw,
                "transport": dialog.source.transport if dialog.source else None,
                "kind": "call" if use.call else "subscription",
                "steps_left": sum(len(s.steps) - s.index for s in use.scripts
                                  if not s.over),
            })
        return out

    def send(self, call_id: str, step: FarEndStep, now: float, *, note: str = "the API"
             ) -> list[Send]:
        """Send ``step`` (its templates read the request that made the dialog) in the
        live dialog of ``call_id`` now; DialogError when there is none, or it cannot
        be sent (one line naming why)."""
        found = [d for d in self.dialogs.by_call_id(call_id) if d.id in self.uses]
        if not found:
            raise DialogError(f"no live far-end dialog has Call-ID {call_id!r}")
        dialog = found[-1]
        use = self.uses[dialog.id]
        script = Script((step,), note, use.context, dialog)
        use.scripts.append(script)
        return self._run(script, now, raising=True)

    def adopt(self, request: Request, source: Source, local_tag: str) -> None:
        """Track the dialog that ``request`` (received on ``source``, answered 2xx with
        our To tag ``local_tag`` by a rule without steps) made, so that ``send`` can
        use it: the APIs find such a call in the journal. DialogError names why not."""
        self._adopt(Dialog.from_uas(request, local_tag, source=source,
                                    contact=_contact(source)), request,
                    RenderContext(request, source))

    def call(self, target: str, source: Source, steps: tuple[FarEndStep, ...], now: float,
             *, note: str = "the API") -> tuple[str, list[Send]]:
        """Call ``target`` (a SIP URI with a literal address) in: ``steps[0]`` is the
        INVITE (its offer, headers), the rest run in the dialog its 2xx makes. The
        request goes out on ``source``'s listener (its ``remote`` the target's
        address). Returns the new Call-ID and what to send; DialogError names why not."""
        try:
            uri = parse_uri(target)
        except ValueError as exc:
            raise DialogError(f"cannot call {target!r}: {exc}") from None
        if not steps:
            raise DialogError("nothing to send: give the call at least one step")
        dialog = self._dialog_to(uri, f"<{uri.raw}>", source, None)
        # What the steps' templates read: the call as a request would carry it.
        method = steps[0].send
        head = (f"{method} {uri.raw} SIP/2.0\r\nVia: SIP/2.0/{source.transport.upper()}"
                f" {_hostport(source.local)};branch=z9hG4bKapi\r\nFrom: {dialog.local}"
                f";tag={dialog.local_tag}\r\nTo: {dialog.remote}\r\nCall-ID:"
                f" {dialog.call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n")
        context = RenderContext(parse_request(head.encode("latin-1"), datagram=True), source)
        script = Script(steps, note, context, None, outbound=dialog)
        return dialog.call_id, self._run(script, now, raising=True)

    def unknown_subscription(self, request: Request) -> bool:
        """A SUBSCRIBE in a dialog (a To tag) that names no subscription of ours: RFC
        6665 4.2.1.2 answers it 481."""
        try:
            key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        except (KeyError, ValueError):
            return False
        return bool(key[1]) and key not in self.uses

    # -- subscriptions (RFC 6665 4.2.2) ------------------------------------------------
    def _subscription(self, dialog: Dialog, request: Request, uas: Transaction | None,
                      now: float) -> None:
        """A SUBSCRIBE was accepted: its subscription ends after the Expires of our
        answer (else of the request, else 3600 s) unless refreshed, with a NOTIFY
        saying terminated;reason=timeout (RFC 6665 4.2.2)."""
        use = self.uses.get(dialog.id)
        if use is None:
            return
        self.timers.cancel(use.expiry_timer)
        use.expiry_timer = None
        answered = _expires(uas.last.data) if uas is not None and uas.last else None
        asked = (request.get("expires") or "").strip()
        expires = answered if answered is not None else (
            int(asked) if asked.isdigit() else 3600)
        if expires > 0:
            use.expiry_timer = self.timers.add(
                now + expires, partial(self._subscription_over, dialog.id))

    def _subscription_over(self, key: DialogId, now: float) -> list[Send]:
        use = self.uses.get(key)
        dialog = self.dialogs.get(key)
        if use is None or dialog is None:
            return []
        use.expiry_timer = None
        state = compile_template("terminated;reason=timeout")
        step = FarEndStep("NOTIFY", headers=(("Subscription-State", state),))
        script = Script((step,), "the subscription expired (RFC 6665 4.2.2)", use.context,
                        dialog)
        use.scripts.append(script)
        return self._run(script, now)

    # -- session timers (RFC 4028 10) -------------------------------------------------
    def _session_timer(self, dialog: Dialog, use: DialogUse, session: Negotiated,
                       refresh: str, now: float) -> None:
        """As the refresher, refresh at half the interval; else send BYE when no
        refresh came by the interval less min(32, a third of it)."""
        self.timers.cancel(use.expiry_timer)
        use.expiry = (session, refresh)
        if session.refresher == "uas":
            use.expiry_timer = self.timers.add(
                now + session.refresh_at(), partial(self._refresh, dialog.id))
        else:
            use.expiry_timer = self.timers.add(
                now + session.expires_at(), partial(self._expired, dialog.id))

    def _refresh(self, key: DialogId, now: float) -> list[Send]:
        use = self.uses.get(key)
        dialog = self.dialogs.get(key)
        if use is None or dialog is None or use.expiry is None:
            return []
        session, method = use.expiry
        value = compile_template(f"{session.interval};refresher=uas")
        step = FarEndStep(method, headers=(("Session-Expires", value),))
        # The next refresh counts from this one (its 2xx keeps the interval).
        use.expiry_timer = self.timers.add(
            now + session.refresh_at(), partial(self._refresh, key))
        script = Script((step,), "session refresh (RFC 4028 10)", use.context, dialog)
        use.scripts.append(script)
        return self._run(script, now)

    def _expired(self, key: DialogId, now: float) -> list[Send]:
        use = self.uses.get(key)
        dialog = self.dialogs.get(key)
        if use is None or dialog is None:
            return []
        use.expiry_timer = None
        self.counters["far_end_session_expired"] += 1
        script = Script((FarEndStep("BYE"),), "session expired without a refresh"
                        " (RFC 4028 10)", use.context, dialog)
        use.scripts.append(script)
        return self._run(script, now)

    # -- scripts -----------------------------------------------------------------------
    def _adopt(self, dialog: Dialog, request: Request, context: RenderContext) -> Dialog:
        known = self.dialogs.get(dialog.id)
        if known is not None:
            return known
        self._keep(dialog)
        use = DialogUse(context, session=sdp_session(request), call=request.method == "INVITE")
        self.uses[dialog.id] = use
        return dialog

    def _keep(self, dialog: Dialog) -> None:
        # The table forgets the least recently used past its capacity: so do we.
        for gone in self.dialogs.add(dialog):
            self._forget(gone)

    def _schedule(self, script: Script, now: float) -> None:
        if script.index >= len(script.steps):
            self._end_script(script)
            return
        when = now + script.step.after
        script.timer = self.timers.add(when, partial(self._run, script))

    def _no_ack(self, script: Script, now: float) -> list[Send]:
        for key, waiting in list(self.awaiting_ack.items()):
            if waiting is script:
                del self.awaiting_ack[key]
        if script.uas is not None and script.uas.cancelled:
            self._end_script(script)
            return []
        self.counters["far_end_no_ack"] += 1
        self._schedule(script, now)
        return []

    def _run(self, script: Script, now: float, *, raising: bool = False) -> list[Send]:
        """Send the script's next step. ``raising``: a step that cannot be sent raises
        its DialogError (the API's caller hears why) instead of logging it."""
        script.timer = None
        if script.over or script.index >= len(script.steps):
            return []
        step = script.step
        dialog = script.dialog
        try:
            if dialog is None:
                # A call made by the API keeps its target (and Call-ID) for the
                # steps out of any dialog; a rule's script goes to the Contact of
                # the request that triggered it, on a new Call-ID each step.
                dialog = script.outbound or self._outbound(script.context)
            headers, body, content_type, offered = self._content(script, dialog, step)
            return self._send(dialog, step.send, headers, body, content_type, offered,
                              script, script.label, now)
        except DialogError as exc:
            self._end_script(script)
            if raising:
                raise
            self._failed(script.label, str(exc))
            return []

    def _content(self, script: Script, dialog: Dialog, step: FarEndStep
                 ) -> tuple[list[tuple[str, str]], bytes, str | None, bool]:
        ctx = script.context
        headers = [(name, value.render(ctx)) for name, value in step.headers]
        body = step.body.render(ctx).encode() if step.body is not None else b""
        content_type = step.content_type
        method = step.send
        offered = False
        if method in ("INVITE", "UPDATE") and step.body is None and step.sdp != "none":
            use = self.uses.get(dialog.id)
            session = use.session if use is not None else self._ids.getrandbits(31)
            version = session
            if use is not None:
                use.version += 1
                version = session + use.version
            address = self.settings.media_address or ctx.source.local[0]
            body = make_offer(address, session, version, step.sdp or "sendrecv", step.codecs)
            content_type = "application/sdp"
            offered = True
        if method == "NOTIFY":
            trigger = ctx.request
            refer = trigger.method == "REFER"
            event = next((v for n, v in headers if n.lower() in ("event", "o")), None)
            if event is None:
                event = "refer" if refer else trigger.get("event")
                if event is None:
                    raise DialogError("a NOTIFY needs an Event header: give it in the"
                                      " step's headers (the request that triggered it has"
                                      " none to follow)")
                headers.append(("Event", event))
            state = next((v for n, v in headers if n.lower() == "subscription-state"), None)
            if state is None:
                state = _subscription_state(script)
                headers.append(("Subscription-State", state))
            if step.body is None:
                use = self.uses.get(dialog.id)
                version = 0
                if use is not None:
                    version = use.notified
                    use.notified += 1
                made = default_body(event, _resource(trigger), version=version,
                                    terminated=state.lower().startswith("terminated"))
                if made is not None and content_type is None:
                    body, content_type = made
            elif content_type is None:
                content_type = SIPFRAG if refer else "text/plain"
        return headers, body, content_type, offered

    def _outbound(self, ctx: RenderContext) -> Dialog:
        """A dialog-less request's state: to the triggering request's Contact (a
        REGISTER's: the binding it made), as the client's party (a REGISTER's To,
        the address of record, else its From), from us, on a new Call-ID."""
        request, source = ctx.request, ctx.source
        contacts = request.rows("contact")
        if not contacts or contacts[0].strip() == "*":
            raise DialogError(f"the {request.method} that triggered the step has no"
                              " Contact to send to")
        try:
            target = parse_name_addr(contacts[0].split(",")[0].strip()).uri
            party = request.to if request.method == "REGISTER" else request.from_
        except (KeyError, ValueError) as exc:
            raise DialogError(f"the {request.method}'s Contact or address does not"
                              f" parse: {exc}") from None
        nat_host = None
        try:
            via = request.top_via_lenient()
            if via.has_param("rport"):
                nat_host = via.host
        except ValueError:
            pass
        return self._dialog_to(target, f"<{party.uri.raw}>", source, nat_host)

    def _dialog_to(self, target: URI, party: str, source: Source, nat_host: str | None
                   ) -> Dialog:
        """The state of a request out of any dialog: to ``target`` (``party`` in To),
        from us on ``source``'s listener, on a new Call-ID and From tag."""
        ip, port = source.local
        host = f"[{ip}]" if ":" in ip else ip
        return Dialog(
            call_id=f"{self._ids.getrandbits(96):024x}@{host}",
            local_tag=f"{self._ids.getrandbits(64):016x}", remote_tag="",
            local=f"<sip:{OUR_USER}@{host}:{port}>", remote=party,
            remote_target=target, route_set=(), local_cseq=0, remote_cseq=None,
            secure=False, source=source, contact=_contact(source), nat_host=nat_host)

    def _send(self, dialog: Dialog, method: str, headers: list[tuple[str, str]], body: bytes,
              content_type: str | None, offered: bool, script: Script | None, note: str,
              now: float, *, credentials: tuple[str, str] | None = None) -> list[Send]:
        """Send ``method`` in (or, without a remote tag, out of) ``dialog``;
        ``credentials``: an Authorization (or Proxy-) header answering a challenge."""
        sent = headers if credentials is None else [*headers, credentials]
        destination = self._destination(dialog.next_hop(), dialog)
        branch = new_branch(self._ids)
        source = dialog.source
        assert source is not None  # every dialog here is made with one
        data = dialog.request(method, headers=tuple(sent), body=body,
                              content_type=content_type, sent_by=_hostport(source.local),
                              branch=branch)
        request = parse_request(data, datagram=True)
        exchange = Exchange(data, method, destination.transport, destination.remote,
                            source.local, dialog.call_id, note)
        try:
            actions = self.transactions.start(
                ClientRequest(data, method, branch, request.cseq[0]), destination, now)
        except TooManyTransactions as exc:
            raise DialogError(str(exc)) from None
        key = (branch, method)
        self.pending[key] = Pending(request, exchange, dialog, destination, script, offered,
                                    headers=headers, body=body, content_type=content_type,
                                    authed=credentials is not None)
        use = self.uses.get(dialog.id)
        if method == "INVITE" and use is not None:
            use.inviting = key
        if method == "INVITE" and script is not None and script.step.cancel_after:
            self.timers.add(now + script.step.cancel_after, partial(self._cancel, key))
        self.counters[f"far_end_sent:{method}"] += 1
        self._sent[id(data)] = exchange
        self._record(exchange)
        if method == "BYE":
            # RFC 3261 15.1.1: the session ends when the BYE is sent, not answered.
            for listener in self.ended:
                listener(dialog.call_id)
        return self._apply(actions, now, None)

    def _cancel(self, key: TxnKey, now: float) -> list[Send]:
        """cancel_after passed: CANCEL our INVITE if it has no final yet, now if a
        provisional came, else at the first one (RFC 3261 9.1)."""
        pending = self.pending.get(key)
        if pending is None or pending.final is not None:
            return []
        if not pending.provisional:
            pending.cancel = True
            return []
        return self._send_cancel(pending, now)

    def _send_cancel(self, pending: Pending, now: float) -> list[Send]:
        pending.cancel = False
        invite = pending.exchange.data
        data = build_cancel(invite)
        destination = pending.destination
        exchange = Exchange(data, "CANCEL", destination.transport, destination.remote,
                            pending.exchange.local, pending.exchange.call_id,
                            pending.exchange.note)
        branch = pending.request.top_via_lenient().branch
        try:
            actions = self.transactions.start(
                ClientRequest(data, "CANCEL", branch, pending.request.cseq[0]),
                destination, now)
        except (TooManyTransactions, ValueError) as exc:
            self._failed(pending.exchange.note, f"cannot CANCEL: {exc}")
            return []
        # The CANCEL has its own transaction (and exchange); its 200 ends nothing here:
        # the INVITE's 487 does.
        self.pending[(branch, "CANCEL")] = Pending(
            parse_request(data, datagram=True), exchange, pending.dialog, destination,
            None, False)
        self.counters["far_end_sent:CANCEL"] += 1
        self._record(exchange)
        return self._apply(actions, now, None)

    def _destination(self, hop: Hop, dialog: Dialog) -> Destination:
        if hop.source is not None:
            return Destination(hop.transport, hop.address, hop.source.conn)
        source = dialog.source
        if hop.transport == "udp" and source is not None and source.transport == "udp":
            # The listener the dialog's request came in on sends (its conn numbers it).
            return Destination("udp", hop.address, source.conn)
        via = f"{source.transport} connection {source.conn}" if source else "nothing"
        raise DialogError(
            f"cannot reach {hop.transport}:{hop.address[0]}:{hop.address[1]}: the dialog"
            f" came over {via}, and sipresponder opens no connections of its own")

    def _record(self, exchange: Exchange) -> None:
        for recorder in self.recorders:
            recorder(exchange)

    # -- what the transactions said ------------------------------------------------------
    def _apply(self, actions: Actions, now: float, source: Source | None) -> list[Send]:
        out = list(actions.sends)
        # The ACK an INVITE transaction sends for a non-2xx final (17.1.1.3): journaled
        # with the final's event below, the first time (a repeated final's is not).
        acks = [s for s in actions.sends if s.data.startswith(b"ACK ")]
        for event in actions.events:
            pending = self.pending.get(event.key)
            if pending is None:
                continue
            if isinstance(event, Received):
                if (acks and event.response.status >= 300 and pending.final is None
                        and pending.request.method == "INVITE"):
                    ack = acks.pop(0)
                    self._record(Exchange(ack.data, "ACK", ack.transport, ack.remote,
                                          pending.exchange.local, pending.exchange.call_id,
                                          pending.exchange.note))
                out += self._received(pending, event.response, now, source)
            elif isinstance(event, TimedOut):
                pending.exchange.ended(f"timed out (Timer {event.timer}): no final response")
                out += self._over(pending, event.status, None, now)
            elif isinstance(event, TransportFailed):
                pending.exchange.ended(f"transport failed: {event.reason}")
                out += self._over(pending, event.status, None, now)
            elif isinstance(event, Terminated):
                gone = self.pending.pop(event.key, None)
                if gone is not None:
                    self._sent.pop(id(gone.exchange.data), None)
        return out

    def _received(self, pending: Pending, response: Response, now: float,
                  source: Source | None) -> list[Send]:
        status = response.status
        again = pending.final is not None and status >= 200
        pending.exchange.received(response.raw, repeat=again)
        if status < 200:
            pending.provisional = True
            if pending.cancel:
                return self._send_cancel(pending, now)
            return []
        if again:
            # A 2xx retransmitted (its ACK was lost, 13.2.2.4): the same ACK again.
            return [pending.ack] if pending.ack is not None and 200 <= status < 300 else []
        pending.final = status
        return self._over(pending, status, response, now, source)

    def _over(self, pending: Pending, status: int, response: Response | None, now: float,
              source: Source | None = None) -> list[Send]:
        """The final status of one of our requests (a 408 or 503 of the transaction
        when none came): ACK a 2xx to INVITE, then move the script on."""
        out: list[Send] = []
        method = pending.request.method
        dialog = pending.dialog
        use = self.uses.get(dialog.id)
        if use is not None and use.inviting is not None and method == "INVITE":
            use.inviting = None
        script = pending.script
        if status in (401, 407) and response is not None and script is not None:
            again = self._authenticate(pending, script, status, response, now)
            if again is not None:
                return out + again
        if method == "INVITE" and response is not None and 200 <= status < 300:
            try:
                dialog = self._confirmed(pending, response, source)
                out += self._ack(pending, dialog, response)
            except DialogError as exc:
                self._failed(pending.exchange.note, f"the 2xx to our INVITE: {exc}")
                if script is not None:
                    self._end_script(script)
                return out
            if script is not None:
                script.dialog = dialog
        if (method == "INVITE" and status == 491 and script is not None
                and script.retries < MAX_GLARE_RETRIES):
            script.retries += 1
            # 14.1: 2.1-4 s when we own the Call-ID (we called in), else 0-2 s.
            owner = use is not None and use.ours
            wait = self.random.uniform(2.1, 4.0) if owner else self.random.uniform(0, 2)
            script.timer = self.timers.add(now + wait, partial(self._run, script))
            return out
        in_dialog = bool(dialog.remote_tag)
        if method == "INVITE" and status >= 300 and not in_dialog:
            # The call we made failed (busy, declined, cancelled, timed out): the
            # steps after it were for the dialog it would have made.
            if script is not None:
                self._end_script(script)
            return out
        if method == "BYE" or (in_dialog and status in DIALOG_ENDING):
            self._end_dialog(dialog.id, f"{method} got {status}")
            return out
        if method == "NOTIFY" and use is not None and not use.call and _terminates(
                pending.request):
            self._end_dialog(dialog.id, "the subscription is terminated")
            return out
        if script is not None and not script.over:
            script.retries = 0
            script.index += 1
            self._schedule(script, now)
        return out

    def _authenticate(self, pending: Pending, script: Script, status: int,
                      response: Response, now: float) -> list[Send] | None:
        """A 401 or 407 to a step with ``credentials``: the same request again with
        the answer to the challenge (RFC 3261 22.2, a new CSeq), once; None when
        there is nothing to answer with (the step goes on with the 4xx as its final)."""
        step = script.steps[script.index] if script.index < len(script.steps) else None
        if step is None or step.credentials is None or pending.authed:
            return None
        name = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
        try:
            offered = [c for c in (parse_challenge(v) for v in response.fields.get(
                name.lower(), [])) if c is not None]
            if not offered:
                raise ValueError(f"the {status} has no Digest {name}")
            username, password = step.credentials
            value = answer(offered[0], username=username, password=password,
                           method=pending.request.method, uri=pending.request.uri_raw,
                           cnonce=f"{self._ids.getrandbits(64):016x}")
        except (KeyError, ValueError) as exc:
            self._failed(script.label, f"cannot answer the {status}: {exc}")
            return None
        header = "Authorization" if status == 401 else "Proxy-Authorization"
        try:
            return self._send(pending.dialog, pending.request.method, pending.headers,
                              pending.body, pending.content_type, pending.offered, script,
                              pending.exchange.note, now, credentials=(header, value))
        except DialogError as exc:
            self._failed(script.label, str(exc))
            return None

    def _confirmed(self, pending: Pending, response: Response, source: Source | None
                   ) -> Dialog:
        """The dialog a 2xx to our INVITE confirms: the one it was sent in, or for a
        call made here (no remote tag yet) a new one (12.1.2)."""
        dialog = pending.dialog
        if dialog.remote_tag:
            dialog.refresh(response.values("contact"))
            return dialog
        made = Dialog.from_uac(pending.request, response, source=dialog.source,
                               contact=dialog.contact)
        made.nat_host = dialog.nat_host
        known = self.dialogs.get(made.id)
        if known is not None:
            return known
        self._keep(made)
        source = dialog.source
        assert source is not None  # every dialog here is made with one
        context = (pending.script.context if pending.script is not None
                   else RenderContext(pending.request, source))
        use = DialogUse(context, session=sdp_session(pending.request), call=True, ours=True)
        self.uses[made.id] = use
        if pending.script is not None:
            use.scripts.append(pending.script)
        return made

    def _ack(self, pending: Pending, dialog: Dialog, response: Response) -> list[Send]:
        """13.2.2.4: the ACK of a 2xx, built by the dialog, on a new branch; the
        answer in it when our INVITE made no offer and the 2xx did."""
        body = b""
        content_type = None
        if not pending.offered and response.body:
            source = dialog.source
            address = self.settings.media_address or (source.local[0] if source else "")
            answer = make_answer(response.body, address, sdp_session(pending.request))
            if answer is not None:
                body, content_type = answer, "application/sdp"
        source = dialog.source
        assert source is not None
        destination = self._destination(dialog.next_hop(), dialog)
        data = dialog.request("ACK", body=body, content_type=content_type,
                              sent_by=_hostport(source.local), branch=new_branch(self._ids))
        exchange = Exchange(data, "ACK", destination.transport, destination.remote,
                            source.local, dialog.call_id, pending.exchange.note)
        self._record(exchange)
        pending.ack = destination.send(data)
        return [pending.ack]

    # -- ending ------------------------------------------------------------------------
    def _end_script(self, script: Script) -> None:
        script.over = True
        self.timers.cancel(script.timer)
        if script.dialog is not None:
            use = self.uses.get(script.dialog.id)
            if use is not None and script in use.scripts:
                use.scripts.remove(script)

    def _end_dialog(self, key: DialogId, why: str) -> None:
        log.debug("far end: dialog %s ends: %s", key[0], why)
        self.dialogs.remove(key)
        self._forget(key)
        for listener in self.ended:
            listener(key[0])

    def _forget(self, key: DialogId) -> None:
        use = self.uses.pop(key, None)
        if use is None:
            return
        self.timers.cancel(use.expiry_timer)
        for script in use.scripts:
            script.over = True
            self.timers.cancel(script.timer)

    def _failed(self, what: str, why: str) -> None:
        self.counters["far_end_errors"] += 1
        log.warning("far end: %s: %s", what, why,
                    extra={"event": "far_end_error", "reason": why})


def _contact(source: Source) -> str:
    """Our Contact URI on ``source``'s listener, as our responses give it."""
    return own_contact(source).strip("<>")


def _hostport(address: tuple[str, int]) -> str:
    ip, port = address
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _subscription_state(script: Script) -> str:
    """The Subscription-State of a NOTIFY step that names none (RFC 6665 4.1.3):
    terminated after an unsubscribe (Expires: 0) and for the last NOTIFY of a
    REFER's (RFC 3515 2.4.5: the final sipfrag ends it), else active for the
    subscription's expiry."""
    trigger = script.context.request
    expires = (trigger.get("expires") or "").strip()
    if trigger.method == "REFER":
        last = not any(s.send == "NOTIFY" for s in script.steps[script.index + 1:])
        return "terminated;reason=noresource" if last else "active;expires=60"
    if trigger.method != "SUBSCRIBE" or expires == "0":
        return "terminated;reason=timeout"
    return f"active;expires={expires if expires.isdigit() else 3600}"


_EXPIRES = re.compile(rb"\r\nExpires[ \t]*:[ \t]*([0-9]{1,10})[ \t]*\r\n", re.IGNORECASE)


def _expires(response: bytes) -> int | None:
    """The Expires of a response we sent (our own octets: one plain line)."""
    found = _EXPIRES.search(response, 0, response.find(b"\r\n\r\n") + 2)
    return int(found[1]) if found else None


def _resource(request: Request) -> str:
    """What a subscription is about: the URI in the To of the request that made it
    (a SUBSCRIBE's To is the resource, RFC 6665 4.1.2.1; a REGISTER's the AoR)."""
    try:
        return request.to.uri.raw
    except (KeyError, ValueError):
        return request.uri_raw


def _terminates(request: Request) -> bool:
    state = request.get("subscription-state") or ""
    return state.split(";", 1)[0].strip().lower() == "terminated"


__all__ = ["FarEnd", "Script"]
