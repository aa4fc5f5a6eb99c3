"""A rule's response compiled once per (code, method, transport, local address).

Which header fields a response carries depends on its code, the request's method,
the scenario and the rule, and only in a few places on the request itself (its
Record-Route, the Contacts it registers, the Require tags we do not support, the
Timestamp a 100 copies). ``compile_response`` decides everything that does not
depend on the request once and keeps it as literal text; what does becomes a
small function. Answering a request is then the echo block plus a join.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..scenario.template import RenderContext, Template, compile_template
from ..sip.abnf import split_top_level
from ..sip.codes import HEADER_FIELDS, Level, reason_for, requirements
from ..sip.fastpath import parse_name_addr
from ..sip.response import (
    CRLF,
    NO_BODY,
    Echo,
    accepts,
    header_line,
    one_line,
    serialize,
    status_line,
)
from ..sip.sdp import make_answer, make_offer
from ..sip.transports import SECURE, Transport

if TYPE_CHECKING:
    from ..scenario.model import ResponseSpec, Scenario
    from ..sip.message import Request
    from .events import Source

# Header lines that depend on the request: "Name: value\r\n" each, or "".
Lines = Callable[[RenderContext], str]

_EXAMPLES: dict[str, Template] = {
    name: compile_template(h.example) for name, h in HEADER_FIELDS.items()
}
# Methods whose 2xx (and 101-199) responses establish a dialog (RFC 3261 12.1.1).
DIALOG_METHODS = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
_DEFAULT_EXPIRES = 3600
# Required headers the scenario's settings fill in when a rule does not.
_DERIVED = frozenset({"Allow", "Accept", "Accept-Encoding", "Accept-Language"})
# The URI transport parameter of our own Contact per transport (RFC 3261 19.1.1;
# RFC 7118 5.2 defines only "ws", which with sips: means a secure WebSocket).
_URI_TRANSPORT: dict[Transport, str] = {
    "udp": "", "tcp": ";transport=tcp", "tls": ";transport=tls",
    "ws": ";transport=ws", "wss": ";transport=ws",
}


@dataclass(slots=True)
class ResponsePlan:
    spec: ResponseSpec  # kept alive while the plan is cached: see PlanCache
    code: int
    reason: str | Template
    head: str  # the status line, when the reason is literal
    parts: tuple[str | Lines, ...]  # header lines between the echo and the body
    body: Template | None
    sdp: bool  # an SDP answer/offer is the body (2xx to INVITE)
    content_type: str | None
    # Everything after the echo, when nothing there depends on the request: the
    # header lines and serialize()'s NO_BODY, joined once here instead of per request.
    fixed: str | None = None

    def __post_init__(self) -> None:
        if self.body is None and not self.sdp:
            literal = [p for p in self.parts if isinstance(p, str)]
            if len(literal) == len(self.parts):
                self.fixed = "".join(literal) + NO_BODY

    def render(
        self, request: Request, source: Source, echoes: Echo, scenario: Scenario
    ) -> tuple[int, str, bytes]:
        """(code, reason, octets) of the response to ``request``."""
        code = self.code
        echo = echoes.untagged if code == 100 else echoes.tagged
        reason = self.reason
        if isinstance(reason, str):
            if self.fixed is not None:
                # serialize() of a bodyless response, with the header lines pre-joined.
                return code, reason, (self.head + echo + self.fixed).encode("latin-1")
            ctx = RenderContext(request, source)
            status = self.head
        else:
            ctx = RenderContext(request, source)
            reason = reason.render(ctx)
            status = status_line(code, reason)
        headers = "".join([p if isinstance(p, str) else p(ctx) for p in self.parts])
        body = b""
        ctype = self.content_type
        if self.body is not None:
            body = self.body.render(ctx).encode("latin-1")
        elif self.sdp:
            body, ctype = _sdp(request, source, scenario), "application/sdp"
        if body and "accept" in request.fields and ctype and not accepts(
            request.fields["accept"], ctype.split(";", 1)[0].strip().lower()
        ):
            # RFC 3261 21.4.7: the only body we could send is one the UAC refuses.
            if scenario.switch("accept"):
                return _not_acceptable(echoes.tagged, ctype, scenario)
            body = b""
        return code, reason, serialize(status, echo, headers, body, ctype)


# (id of the ResponseSpec, code, method, transport, local address)
PlanKey = tuple[int, int, str, Transport, tuple[str, int]]


class PlanCache:
    """The compiled responses of one scenario, bounded.

    Keyed by the spec's identity: specs are not hashable (mutable dataclasses), and
    comparing them field by field would cost more than compiling. An id is only
    unique while its object lives, so every cached plan holds its spec
    (``ResponsePlan.spec``): no other object can take that id while the plan can be
    found. Specs made per request (the Digest challenge with its fresh nonce) each
    get a plan of their own, then go when the cache is cleared.
    """

    __slots__ = ("_completions", "_plans", "get", "max_plans", "scenario")

    def __init__(self, scenario: Scenario, max_plans: int = 4096) -> None:
        self.scenario = scenario
        self.max_plans = max_plans
        self._plans: dict[PlanKey, ResponsePlan] = {}
        # The hot path calls the dict's own get: no Python-level call on a hit.
        self.get: Callable[[PlanKey], ResponsePlan | None] = self._plans.get
        self._completions: dict[int, tuple[ResponseSpec, ResponseSpec]] = {}

    def compile(self, spec: ResponseSpec, code: int, method: str, source: Source) -> ResponsePlan:
        """Compile and keep the plan ``get`` did not have."""
        plans = self._plans
        if len(plans) >= self.max_plans:
            plans.clear()  # methods are the sender's to choose: stay bounded
        plan = compile_response(spec, code, method, source, self.scenario)
        plans[(id(spec), code, method, source.transport, source.local)] = plan
        return plan

    def completion(self, spec: ResponseSpec) -> ResponseSpec:
        """The 200 OK that completes a transaction whose final ``spec`` is a 1xx
        (e.g. sip:180@ in the default scenario): ``spec``'s header fields and body,
        the registry's reason phrase, no delay. One per spec, so that its plans are cached."""
        entry = self._completions.get(id(spec))
        if entry is None:
            if len(self._completions) >= self.max_plans:
                self._completions.clear()
            # ``spec`` stays in the entry so that its id keeps naming it (see above).
            done = replace(spec, code=200, reason=None, delay=0.0)
            entry = self._completions[id(spec)] = (spec, done)
        return entry[1]

    def __len__(self) -> int:
        return len(self._plans)


def compile_response(
    spec: ResponseSpec, code: int, method: str, source: Source, scenario: Scenario
) -> ResponsePlan:
    """The plan for ``spec`` answering ``method`` with ``code`` on ``source``'s
    transport and local address."""
    settings = scenario.settings
    # RFC 3261 21.4.6: a 405's Allow lists what the target supports, so never the
    # method being refused, even when a rule names it (the rule that refuses it).
    refused = method if code == 405 else None
    parts: list[str | Lines] = []
    present: set[str] = set()
    for name, rows in spec.typed.items():
        parts.extend(_line(name, t) for t in rows)
        present.add(name.lower())
    for name, t in spec.headers:
        parts.append(_line(name, t))
        present.add(name.lower())
    levels: tuple[Level, ...] = ("must", "should") if spec.fill_required else ("must",)
    for req in requirements(code, levels=levels):
        if any(h.lower() in present for h in req.headers):
            continue
        name = req.headers[0]
        example = _EXAMPLES[name] if spec.fill_required else None
        if name == "Unsupported":
            # The Require tags of this request that we do not support.
            parts.append(_unsupported(settings.supported, example))
            continue
        value = _derived(name, scenario, refused) if name in _DERIVED else None
        if value is None and example is not None:
            if not example.is_constant:
                parts.append(_line(name, example))
                present.add(name.lower())
                continue
            value = example.constant
        if value:
            parts.append(f"{name}: {one_line(value)}{CRLF}")
            present.add(name.lower())
    if code == 100:
        parts.append(_timestamp)  # RFC 3261 8.2.6.1
    if method in DIALOG_METHODS and 100 < code < 300:
        parts.insert(0, _record_route)
        if "contact" not in present:
            parts.append(own_contact_line(source))
    elif 200 <= code < 300:
        if method == "OPTIONS":
            # RFC 3261 11.2: capabilities in the 200 to OPTIONS.
            for name in ("Allow", "Accept", "Accept-Encoding", "Accept-Language", "Supported"):
                if name.lower() not in present:
                    parts.append(f"{name}: {one_line(_derived(name, scenario) or '')}{CRLF}")
        elif method == "REGISTER" and "contact" not in present:
            parts.append(_bindings)
    if settings.server and "server" not in present:
        parts.append(f"Server: {one_line(settings.server)}{CRLF}")

    reason: str | Template
    if spec.reason is None:
        reason = reason_for(code)
    elif spec.reason.is_constant:
        reason = spec.reason.constant
    else:
        reason = spec.reason
    head = f"SIP/2.0 {code} {one_line(reason)}{CRLF}" if isinstance(reason, str) else ""
    return ResponsePlan(
        spec,
        code,
        reason,
        head,
        tuple(_merge_literals(parts)),
        spec.body,
        spec.body is None and spec.sdp and method == "INVITE" and 200 <= code < 300,
        spec.content_type,
    )


def own_contact(source: Source) -> str:
    """The responder's own address for dialog-creating responses.

    The user part is fixed, not the Request-URI's: a BYE sent to the Contact of
    a 200 for sip:180@host must not match the status-code rule again.
    """
    ip, port = source.local
    host = f"[{ip}]" if ":" in ip else ip
    transport = _URI_TRANSPORT[source.transport]
    return f"<sip:sipresponder@{host}:{port}{transport}>"


def own_contact_line(source: Source) -> str | Lines:
    """The Contact header line of a dialog-creating response on ``source``.

    Literal, except on TLS and WSS: there a dialog the request made secure gets a
    sips: Contact (RFC 3261 12.1.1), which depends on the request. sips: implies
    TLS, so over TLS it needs no transport parameter (the deprecated transport=tls
    is only used with sip:, RFC 5630 3.1.3).
    """
    plain = f"Contact: {own_contact(source)}{CRLF}"
    if source.transport not in SECURE:
        return plain
    ip, port = source.local
    host = f"[{ip}]" if ":" in ip else ip
    transport = ";transport=ws" if source.transport == "wss" else ""
    secure = f"Contact: <sips:sipresponder@{host}:{port}{transport}>{CRLF}"

    def render(ctx: RenderContext) -> str:
        return secure if _sips_dialog(ctx.request) else plain

    return render


def _sips_dialog(request: Request) -> bool:
    """RFC 3261 12.1.1: a SIPS Request-URI, or a SIPS top Record-Route, or (without
    Record-Route) a SIPS Contact makes the dialog secure."""
    if request.uri.scheme == "sips":
        return True
    routes = request.fields.get("record-route")
    rows = routes if routes else request.fields.get("contact", ())
    if not rows:
        return False
    try:
        first = parse_name_addr(split_top_level(rows[0])[0])
    except (ValueError, IndexError):
        return False
    return first.uri.scheme == "sips"


def _derived(header: str, scenario: Scenario, refused: str | None = None) -> str | None:
    settings = scenario.settings
    if header == "Allow":
        return ", ".join(m for m in scenario.allow if m != refused)
    if header == "Accept":
        return ", ".join(settings.accept)
    if header == "Accept-Encoding":
        return ", ".join(settings.accept_encoding)
    if header == "Accept-Language":
        return ", ".join(settings.accept_language)
    if header == "Supported":
        return ", ".join(settings.supported)
    return None


def _merge_literals(parts: list[str | Lines]) -> list[str | Lines]:
    out: list[str | Lines] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        else:
            out.append(part)
    return out


def _line(name: str, template: Template) -> str | Lines:
    if template.is_constant:
        return f"{name}: {one_line(template.constant)}{CRLF}"

    def render(ctx: RenderContext) -> str:
        return f"{name}: {one_line(template.render(ctx))}{CRLF}"

    return render


def _unsupported(supported: tuple[str, ...], example: Template | None) -> Lines:
    def render(ctx: RenderContext) -> str:
        tags = [t for t in ctx.request.values("require") if t not in supported]
        if tags:
            return f"Unsupported: {one_line(', '.join(tags))}{CRLF}"
        if example is not None:
            value = example.render(ctx)
            return f"Unsupported: {one_line(value)}{CRLF}" if value else ""
        return ""

    return render


def _timestamp(ctx: RenderContext) -> str:
    rows = ctx.request.fields.get("timestamp")
    return f"Timestamp: {one_line(rows[0])}{CRLF}" if rows else ""


def _record_route(ctx: RenderContext) -> str:
    rows = ctx.request.fields.get("record-route")
    return "".join(f"Record-Route: {one_line(rr)}{CRLF}" for rr in rows) if rows else ""


def _bindings(ctx: RenderContext) -> str:
    return "".join(f"Contact: {one_line(c)}{CRLF}" for c in bindings(ctx.request))


# The one header-line part that reads the request which the compiled path renders
# itself (uas/fast.py): a registrar-like 200's Contact list.
BINDINGS_LINES = _bindings


def bindings(request: Request) -> list[str]:
    """The Contact values a registrar-like 200 lists: each binding with its expiry.

    A binding keeps its URI byte for byte; a URI that came without angle brackets is
    put in them so its header parameters stay outside (RFC 3261 20.10).

    Mirrored in C by ``write_bindings`` (csrc/echo.h).
    """
    default = _DEFAULT_EXPIRES
    header = request.get("expires")
    # isascii(): str.isdigit() holds for '²', which int() refuses (found by the
    # differential fuzzing of the compiled path: an internal error per request).
    if header is not None and header.isascii() and header.isdigit():
        default = min(int(header), 2**32 - 1)
    out = []
    for value in request.values("contact"):
        if value == "*":
            continue
        try:
            contact = parse_name_addr(value)
        except ValueError:
            continue
        expires = None
        for name, pval in contact.params:
            if name.lower() == "expires":
                expires = pval
        if expires is None:
            expires_value = default
        elif expires.isascii() and expires.isdigit():
            expires_value = min(int(expires), 2**32 - 1)
        else:
            expires_value = default
        if expires_value == 0:
            continue  # unregistered
        if contact.bracketed:
            base = value.strip()
        else:
            display = f"{contact.display} " if contact.display else ""
            base = f"{display}<{contact.uri.raw}>{contact.params_raw}"
        if expires is None:
            base += f";expires={expires_value}"
        out.append(base)
    return out


def sdp_session(request: Request) -> int:
    """The o= session id of our answer to ``request``'s INVITE: the far end's later
    offers in that dialog keep it and raise the version (RFC 3264 8)."""
    return int(hashlib.blake2s(request.raw[:256], digest_size=4).hexdigest(), 16)


def _sdp(request: Request, source: Source, scenario: Scenario) -> bytes:
    address = scenario.settings.media_address or source.local[0]
    session = sdp_session(request)
    offer = b""
    ctype = request.get("content-type")
    if request.body and ctype is not None and ctype.lower().startswith("application/sdp"):
        offer = request.body
    return (make_answer(offer, address, session) if offer else None) or make_offer(
        address, session
    )


def _not_acceptable(echo: str, ctype: str, scenario: Scenario) -> tuple[int, str, bytes]:
    headers = header_line("Warning", f'399 sipresponder "No acceptable body format: {ctype}"')
    if scenario.settings.server:
        headers += header_line("Server", scenario.settings.server)
    return 406, "Not Acceptable", serialize(status_line(406, "Not Acceptable"), echo, headers)
