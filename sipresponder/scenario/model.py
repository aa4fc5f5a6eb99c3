"""A loaded, validated scenario: settings, ordered rules and the default response."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .template import Template

if TYPE_CHECKING:
    from ..auth.guard import Guard
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
    timer_t1: float = 0.5  # RFC 3261 17.1.1.1
    timer_t2: float = 4.0
    max_transactions: int = 10000
    tcp_read_timeout: float = 32.0  # an incomplete message older than this closes the stream
    tcp_idle_timeout: float = 600.0  # a connection silent this long is closed
    max_connections: int = 1024  # concurrent TCP connections; more are refused
    max_headers: int = 128  # header fields in one request; more earn a 400
    max_line_length: int = 8192  # octets in one header line; longer earns a 400
    rate_limit: float = 0.0  # requests per second per source IP; 0 = no limit
    rate_burst: int = 0  # token-bucket depth; 0 = max(1, rate_limit)
    rate_limit_action: str = "drop"  # "drop" or "503" (with Retry-After)
    max_amplification: float = 4.0  # UDP response octets per request octet; 0 = no limit
    loop_ttl: float = 32.0  # seconds a request is remembered for merged-request detection
    media_address: str = ""  # c= address of SDP answers; "" = the local address
    checks: dict[str, bool] = field(default_factory=dict)  # sanity-check switches


Matcher = Callable[["Request", "Source"], bool]


@dataclass(slots=True)
class Check:
    """One compiled condition of a rule; ``what`` describes it for logs and errors."""

    what: str
    test: Matcher


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
    fill_required: bool = False

    def sets(self, header: str) -> bool:
        lower = header.lower()
        return header in self.typed or any(n.lower() == lower for n, _ in self.headers)


@dataclass(slots=True)
class Rule:
    name: str
    number: int  # 1-based position in the file; 0 for the default
    checks: list[Check]
    methods: frozenset[str] | None  # None: any method
    provisional: list[ResponseSpec]
    final: ResponseSpec
    # Digest authentication the request must pass first (an auth.Guard), or None.
    auth: Guard | None = None
    user: str | None = None  # the Request-URI user this rule requires, if one exact one

    @property
    def stateful(self) -> bool:
        return (
            bool(self.provisional) or self.final.delay > 0 or isinstance(self.final.code, Template)
        )

    def matches(self, request: Request, source: Source) -> bool:
        if self.methods is not None and request.method not in self.methods:
            return False
        for check in self.checks:  # noqa: SIM110 - a plain loop is faster on the hot path
            if not check.test(request, source):
                return False
        return True

    @property
    def label(self) -> str:
        """How errors and logs name the rule: rule 'busy' (#3), rule #4 or [default]."""
        if self.number == 0:
            return "[default]"
        return f"rule {self.name!r} (#{self.number})" if self.name else f"rule #{self.number}"


@dataclass(slots=True)
class Scenario:
    path: str
    settings: Settings
    rules: list[Rule]
    default: Rule
    allow: tuple[str, ...]  # the Allow header value: methods the scenario answers
    known_methods: frozenset[str]  # others get 501 Not Implemented
    checks: tuple[Callable[..., Any], ...] = ()  # enabled sanity checks, in order
    switches: dict[str, bool] = field(default_factory=dict)  # every check: on or off
    _tag_key: bytes = b""
    bodyless_checks: tuple[Callable[..., Any], ...] = ()  # ``checks`` less the body checks
    _generic: tuple[Rule, ...] = ()
    _by_user: dict[str, tuple[Rule, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ..uas.validation import BODY_CHECKS, CHECKS

        # Rules in file order, by the exact user they need (rules with no exact user
        # are candidates for every request).
        self._generic = tuple(r for r in self.rules if r.user is None)
        self._by_user = {
            user: tuple(r for r in self.rules if r.user in (None, user))
            for user in {r.user for r in self.rules if r.user is not None}
        }
        self.bodyless_checks = tuple(c for c in self.checks if c not in BODY_CHECKS)
        self._tag_key = hashlib.blake2s(self.settings.tag_key.encode()).digest()
        self.switches = {
            name: self.settings.checks.get(name, info.default) for name, info in CHECKS.items()
        }

    def switch(self, name: str) -> bool:
        """Whether the sanity check ``name`` is on (its default unless the scenario says)."""
        return self.switches[name]

    @property
    def tag_key(self) -> bytes:
        """settings.tag_key as a BLAKE2s key (at most 32 octets)."""
        return self._tag_key

    def match(self, request: Request, source: Source) -> Rule:
        """The first rule that matches, else the default.

        Only the rules that could match this Request-URI user are tried: a scenario
        of many per-user rules costs one dictionary lookup, not a test per rule.
        """
        rules = self._generic
        if self._by_user:
            try:
                user = request.uri.user
            except ValueError:
                user = None
            rules = self._by_user.get(user, rules)  # type: ignore[arg-type]
        for rule in rules:
            if rule.matches(request, source):
                return rule
        return self.default
