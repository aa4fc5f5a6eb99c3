"""A loaded, validated scenario: settings, ordered rules and the default response.

Plain dataclasses, a leaf of the core: the loader (scenario.loader) fills them, the
engine reads them. What other packages plug in (the request checks of
uas.validation, the Digest guard of auth.guard) is typed here by the shape the
engine calls, so that this module imports neither.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..call.media import MediaPlan
from .template import Template

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..uas.events import Source


@dataclass(slots=True)
class Settings:
    server: str = "sipresponder"
    supported: tuple[str, ...] = ("replaces", "norefersub")
    accept: tuple[str, ...] = (
        "application/sdp",
        "text/plain",
        "message/sipfrag",
        "multipart/mixed",
        "application/dtmf-relay",
        "application/pidf+xml",
        "message/cpim",
        "application/im-iscomposing+xml",
        "application/simple-message-summary",
    )
    accept_encoding: tuple[str, ...] = ("identity",)
    accept_language: tuple[str, ...] = ("en",)
    tag_key: str = "sipresponder"
    response_routing: str = "source"  # "source" (symmetric, like rport) or "via"
    max_message_size: int = 65535
    max_body_file: int = 1 << 20  # octets: the largest body_file a scenario may read
    timer_t1: float = 0.5  # RFC 3261 17.1.1.1
    timer_t2: float = 4.0
    max_transactions: int = 10000
    tcp_read_timeout: float = 32.0  # an incomplete message older than this closes the stream
    tcp_idle_timeout: float = 600.0  # a connection silent this long is closed
    max_connections: int = 1024  # concurrent TCP connections; more are refused
    # Connection fairness (issue 18): stream connections (TCP, TLS, WS) one source IP may
    # hold, counted from accept (0: no cap); seconds from accept to a finished TLS
    # handshake or WebSocket upgrade.
    max_connections_per_source: int = 64
    tls_handshake_timeout: float = 10.0
    max_headers: int = 128  # header fields in one request; more earn a 513
    max_line_length: int = 8192  # octets in one header line; longer earns a 513
    rate_limit: float = 0.0  # requests per second per source IP; 0 = no limit
    rate_burst: int = 0  # token-bucket depth; 0 = max(1, rate_limit)
    rate_limit_action: str = "drop"  # "drop" or "503" (with Retry-After)
    max_amplification: float = 4.0  # UDP response octets per request octet; 0 = no limit
    loop_ttl: float = 32.0  # seconds a request is remembered for merged-request detection
    media_address: str = ""  # c= address of SDP answers; "" = the local address
    # The even ports of [rtp_port_min, rtp_port_max] carry the RTP streams of rules
    # with `media` (call/table.py); a stream ends at the latest after media_max_seconds.
    rtp_port_min: int = 40000
    rtp_port_max: int = 40999
    media_max_seconds: float = 3600.0
    # How long an `action = "provisional-only"` INVITE transaction waits for its CANCEL
    # before it is forgotten (silently): the bound on the state ringing forever keeps.
    ring_timeout: float = 180.0
    # The seed of the engine's random choices (probability); -1 = a new one every run.
    seed: int = -1
    # Origins whose web pages may open a ws:/wss: listener (scheme://host[:port], as a
    # browser sends them); empty: any. A handshake without Origin is not a browser's.
    ws_origins: tuple[str, ...] = ()
    checks: dict[str, bool] = field(default_factory=dict)  # request-check switches


Matcher = Callable[["Request", "Source"], bool]
# Whether a stateful rule that matched may answer now (uas.state.States.admits).
Admit = Callable[["Rule", "Request", "Source"], bool]


@dataclass(slots=True)
class Condition:
    """One compiled condition of a rule; ``what`` describes it for logs and errors.

    ``request_line``: the test reads only the Request-URI and the listener (transport,
    local address), which the compiled path keys its answers by (uas/fast.py)."""

    what: str
    test: Matcher
    request_line: bool = False


@dataclass(slots=True)
class ResponseSpec:
    """One response a rule sends: a provisional one or the final one."""

    code: int | Template
    reason: Template | None = None
    headers: list[tuple[str, Template]] = field(default_factory=list)
    # Typed header fields (Contact, Retry-After, ...): header name -> rows.
    typed: dict[str, list[Template]] = field(default_factory=dict)
    body: Template | None = None
    content_type: str | None = None
    sdp: bool = True  # answer an SDP offer in a 2xx to INVITE (and offer when none came)
    delay: float = 0.0  # seconds to wait before sending, after the previous response
    # A delay drawn per request: ("uniform", low, high) or ("lognormal", median, sigma);
    # ``delay`` then holds the largest or the median, so that the rule is stateful.
    delay_draw: tuple[str, float, float] | None = None
    fill_required: bool = False

    def sets(self, header: str) -> bool:
        lower = header.lower()
        return header in self.typed or any(n.lower() == lower for n, _ in self.headers)


# What the far end may send in a rule's `then` (scenario/steps.py). CANCEL and ACK are
# the transaction's and the dialog's to send, PRACK the answer to a reliable
# provisional: none of them is a step of its own.
STEP_METHODS = ("BYE", "INVITE", "UPDATE", "INFO", "MESSAGE", "NOTIFY", "REFER", "OPTIONS")
# A re-INVITE or UPDATE step's offer: its direction attribute (RFC 4566 6), or "none"
# for a request without an offer (the client offers in its 2xx, RFC 3261 14.1).
STEP_SDP = ("sendrecv", "sendonly", "recvonly", "inactive", "none")


@dataclass(slots=True, frozen=True)
class FarEndStep:
    """One step of a rule's ``then``: the far end sends ``send`` ``after`` seconds
    after the previous step is over (the first: after the ACK of the 2xx to an INVITE,
    else after the answer). ``sdp``: a re-INVITE's or UPDATE's offer direction, "none"
    for no offer, None for the method's default (INVITE and UPDATE offer sendrecv);
    ``headers`` and ``body`` are templates rendered against the request that
    triggered the rule."""

    send: str
    after: float = 0.0
    sdp: str | None = None
    headers: tuple[tuple[str, Template], ...] = ()
    body: Template | None = None
    content_type: str | None = None
    # (username, password) answering a 401 or 407 to this step's request.
    credentials: tuple[str, str] | None = None
    codecs: tuple[str, ...] | None = None  # the offer's codecs, in order (None: ours)
    # An INVITE still unanswered this many seconds after it left is CANCELled.
    cancel_after: float | None = None


@dataclass(slots=True, frozen=True)
class SessionTimer:
    """A rule's ``session_timer`` (RFC 4028, uas/sessiontimer.py): our minimum
    interval (the Min-SE of a 422), the interval we ask for when the request names
    none, who refreshes when the request does not say, and the method our refresh
    uses."""

    min_se: int = 90
    interval: int = 1800
    refresher: str = "uas"
    refresh: str = "UPDATE"


# `action` values: send the responses; send nothing; send the provisionals and no final.
ACTIONS = ("answer", "none", "provisional-only")
# `fault` values on stream transports: close the connection or reset it (RST), before
# the final response or after it. On UDP they mean "not answered".
CONNECTION_FAULTS = ("close-before", "close-after", "reset-before", "reset-after")
# `fault` values that send a malformed final response in place of the real one.
MALFORMED_FAULTS = ("truncated", "bad-content-length", "broken-header", "random-bytes")
FAULTS = CONNECTION_FAULTS + MALFORMED_FAULTS


@dataclass(slots=True, frozen=True)
class Behaviour:
    """What a rule does other than send its responses as they are: the rule keys
    ``action``, ``fault``, ``repeat_final`` and ``probability``. A rule without any
    of them has none (Rule.behaviour is None), so that the engine's stateless path
    pays one attribute test for the lot."""

    action: str = "answer"
    fault: str | None = None
    repeat_final: bool = False
    probability: float = 1.0  # of answering at all; the rest are not answered
    # ``[[rule.choice]]``: final responses drawn by weight (Rule.final is the first).
    choices: tuple[ResponseSpec, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def note(self) -> str | None:
        """What the journal says the rule did (None: just answered)."""
        if self.action == "none":
            return "not answered"
        if self.action == "provisional-only":
            return "not answered: provisional responses only"
        parts = [f"fault: {self.fault}"] if self.fault else []
        if self.repeat_final:
            parts.append("final response sent twice")
        return "; ".join(parts) or None


SCOPES = ("global", "call-id", "source", "from", "to")
AFTER = ("repeat-last", "cycle", "fall-through")
START = "start"  # the state every scope key is in until a rule moves it


@dataclass(slots=True)
class Step:
    """One answer of a rule's ``sequence``: its provisionals and its final response."""

    provisional: list[ResponseSpec]
    final: ResponseSpec


@dataclass(slots=True)
class RuleState:
    """What makes a rule stateful (a sequence, ``when_state``, ``new_state``); the
    counters and states themselves live in uas.state, per process."""

    scope: str = "global"  # one of SCOPES
    sequence: tuple[Step, ...] = ()  # empty: the rule's own response every time
    after: str = "repeat-last"  # one of AFTER: once the sequence is exhausted
    when_state: str | None = None  # the rule applies only in this state
    new_state: str | None = None  # answering moves the scope key to this state


@dataclass(slots=True)
class Rule:
    name: str
    number: int  # 1-based position in the file; 0 for the default
    conditions: list[Condition]
    methods: frozenset[str] | None  # None: any method
    provisional: list[ResponseSpec]
    final: ResponseSpec
    # Digest authentication the request must pass first (an auth.guard.Guard), or None.
    auth: AuthCheck | None = None
    user: str | None = None  # the Request-URI user this rule requires, if one exact one
    behaviour: Behaviour | None = None  # not answering, faults, chance; None: none
    state: RuleState | None = None  # a sequence or named states, else None (stateless)
    # What the far end does after answering (uac/farend.py); empty: nothing, and the
    # rule stays on the stateless path.
    then: tuple[FarEndStep, ...] = ()
    session_timer: SessionTimer | None = None  # RFC 4028 on INVITE and UPDATE
    media: MediaPlan | None = None  # the call's RTP stream (call/media.py); None: none
    # Any of then, session_timer and media: the rule acts after its answer, so it is
    # answered statefully; one flag, so that the stateless path pays one test for all.
    acts: bool = False
    # ``reliable = true``: its provisionals to an INVITE that offers 100rel are sent
    # reliably (RFC 3262: Require: 100rel, RSeq, retransmitted until the PRACK);
    # ``reliable = "require"`` (``require_100rel``): an INVITE that does not gets 421.
    reliable: bool = False
    require_100rel: bool = False

    @property
    def stateful(self) -> bool:
        return (
            bool(self.provisional)
            or self.final.delay > 0
            or isinstance(self.final.code, Template)
            or (self.behaviour is not None and self.behaviour.action == "provisional-only")
            or self.state is not None
            or bool(self.then)
            or self.session_timer is not None
            or self.media is not None
        )

    def matches(self, request: Request, source: Source) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return False
        for condition in self.conditions:  # noqa: SIM110 - a plain loop is faster here
            if not condition.test(request, source):
                return False
        return True

    @property
    def label(self) -> str:
        """How errors and logs name the rule: rule 'busy' (#3), rule #4 or [default]."""
        if self.number == 0:
            return "[default]"
        return f"rule {self.name!r} (#{self.number})" if self.name else f"rule #{self.number}"


class AuthCheck(Protocol):
    """What a rule's ``auth`` is to the engine (auth.guard.Guard is the one there is)."""

    def check(self, rule: Rule, request: Request, now: float) -> Rule:
        """``rule`` when the request may have its response, else a stand-in rule
        whose response is the answer (a challenge, a refusal, a 400)."""
        ...


class Refusal(Protocol):
    """What a request check answers in place of the rules (uas.validation.Rejection)."""

    code: int
    reason: str
    headers: list[tuple[str, str]]


# One RFC 3261 8.2 request check (uas.validation.Check): a refusal, or None to go on.
RequestCheck = Callable[["Request", "Scenario"], "Refusal | None"]


@dataclass(slots=True)
class Scenario:
    """What the engine answers with. Build one with scenario.loader.assemble (or load
    a file): it derives ``allow``, ``known_methods`` and the request checks from the
    rules and settings; built here directly, no request check runs and ``switch``
    knows no check."""

    path: str
    settings: Settings
    rules: list[Rule]
    default: Rule
    allow: tuple[str, ...]  # the Allow header value: methods the scenario answers
    known_methods: frozenset[str]  # others get 501 Not Implemented
    # The request checks (uas.validation) the loader computed from settings.checks:
    # the enabled ones in order, the same less those that read only the body, and
    # every switchable check by name, on or off.
    checks: tuple[RequestCheck, ...] = ()
    switches: dict[str, bool] = field(default_factory=dict)
    bodyless_checks: tuple[RequestCheck, ...] = ()
    # The body_file paths the loader read, resolved: `serve --watch` watches them too.
    body_files: tuple[Path, ...] = ()
    _tag_key: bytes = field(default=b"", init=False, repr=False)
    # Some rule sends reliable provisionals (RFC 3262): then PRACKs are the
    # transactions' to answer, and a Require of 100rel alone waits for the rule match.
    reliable: bool = field(default=False, init=False)
    _generic: tuple[Rule, ...] = field(default=(), init=False, repr=False)
    # Keyed by str only; typed str | None so that a request whose Request-URI has no
    # parsable user looks up None and gets the generic rules.
    _by_user: dict[str | None, tuple[Rule, ...]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        # Rules in file order, by the exact user they need (rules with no exact user
        # are candidates for every request).
        # One pass, so that the time is the size of the index: a test of every rule
        # per user took 20 s for a 1 MB scenario of per-user rules (issue 18).
        generic: list[Rule] = []
        by_user: dict[str, list[Rule]] = {}
        for rule in self.rules:
            if rule.user is None:
                generic.append(rule)
                for rules in by_user.values():
                    rules.append(rule)
            elif rule.user in by_user:
                by_user[rule.user].append(rule)
            else:
                by_user[rule.user] = [*generic, rule]
        self._generic = tuple(generic)
        self._by_user = {user: tuple(rules) for user, rules in by_user.items()}
        self._tag_key = hashlib.blake2s(self.settings.tag_key.encode()).digest()
        self.reliable = any(rule.reliable for rule in self.rules)

    def switch(self, name: str) -> bool:
        """Whether the request check ``name`` is on (its default unless the scenario says)."""
        return self.switches[name]

    @property
    def tag_key(self) -> bytes:
        """settings.tag_key as a BLAKE2s key (at most 32 octets)."""
        return self._tag_key

    def match(self, request: Request, source: Source, admit: Admit | None = None) -> Rule:
        """The first rule that matches, else the default.

        A stateful rule (``rule.state``) that matches is taken only if ``admit`` says
        so (its state is not the one it needs, or its sequence fell through).

        Only the rules that could match this Request-URI user are tried: a scenario
        of many per-user rules costs one dictionary lookup, not a test per rule.
        """
        for rule in self.candidates(request):
            if rule.matches(request, source) and (
                rule.state is None or admit is None or admit(rule, request, source)
            ):
                return rule
        return self.default

    def candidates(self, request: Request) -> tuple[Rule, ...]:
        """The rules that could match ``request``, in file order: those with no exact
        Request-URI user, and those whose user is the request's."""
        rules = self._generic
        if self._by_user:
            try:
                user = request.uri.user
            except ValueError:
                user = None
            rules = self._by_user.get(user, rules)
        return rules

    @property
    def stateful_rules(self) -> list[Rule]:
        """The rules with a sequence or named states (per-process state)."""
        return [r for r in self.rules if r.state is not None]
