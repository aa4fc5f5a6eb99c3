"""Scenario values that reference the request: ``"{from.user}"``, ``"{call_id}"``...

A template is compiled once at load time into literal parts and variable getters,
so rendering is a join. ``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .body import offer

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..sip.sdp import OfferSummary
    from ..uas.events import Source


@dataclass(slots=True)
class RenderContext:
    request: Request
    source: Source


Getter = Callable[[RenderContext], str]


def _uri_part(attr: str) -> Callable[[RenderContext], str]:
    def get(ctx: RenderContext) -> str:
        value = getattr(ctx.request.uri, attr)
        return "" if value is None else str(value)

    return get


def _addr_part(header: str, attr: str) -> Getter:
    def get(ctx: RenderContext) -> str:
        try:
            addr = ctx.request.from_ if header == "from" else ctx.request.to
        except (KeyError, ValueError):
            return ""
        if attr == "tag":
            return addr.tag or ""
        if attr == "uri":
            return addr.uri.raw
        if attr == "display":
            return addr.display
        value = getattr(addr.uri, attr)
        return "" if value is None else str(value)

    return get


def _header(name: str) -> Getter:
    key = name.lower()

    def get(ctx: RenderContext) -> str:
        rows = ctx.request.fields.get(key)
        return rows[0] if rows else ""

    return get


def _local_hostport(ctx: RenderContext) -> str:
    ip, port = ctx.source.local
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


VARIABLES: dict[str, Getter] = {
    "method": lambda c: c.request.method,
    "ruri": lambda c: c.request.uri_raw,
    "ruri.user": _uri_part("user"),
    "ruri.host": _uri_part("host"),
    "ruri.port": _uri_part("port"),
    "ruri.scheme": _uri_part("scheme"),
    "call_id": lambda c: c.request.get("call-id") or "",
    "cseq": lambda c: c.request.get("cseq") or "",
    "cseq.number": lambda c: str(c.request.cseq[0]),
    "cseq.method": lambda c: c.request.cseq[1],
    "source.ip": lambda c: c.source.remote[0],
    "source.port": lambda c: str(c.source.remote[1]),
    "local.ip": lambda c: c.source.local[0],
    "local.port": lambda c: str(c.source.local[1]),
    "local.hostport": _local_hostport,
    "transport": lambda c: c.source.transport,
    # A stable, request-derived value for example Digest challenges.
    "nonce": lambda c: hashlib.blake2s(
        (c.request.get("call-id") or "").encode("latin-1"), digest_size=16
    ).hexdigest(),
}
def _sdp_part(get_value: Callable[[OfferSummary], str]) -> Getter:
    def get(ctx: RenderContext) -> str:
        summary = offer(ctx.request)
        return "" if summary is None else get_value(summary)

    return get


# The request's SDP offer (empty when it carries none): lists are comma-separated.
VARIABLES.update({
    "sdp.media": _sdp_part(lambda s: ",".join(s.media)),
    "sdp.codecs": _sdp_part(lambda s: ",".join(s.codecs)),
    "sdp.codec": _sdp_part(lambda s: s.codecs[0] if s.codecs else ""),
    "sdp.direction": _sdp_part(lambda s: s.directions[0] if s.directions else ""),
    "sdp.connection": _sdp_part(lambda s: s.connection),
})
for _h in ("from", "to"):
    for _a in ("user", "host", "port", "tag", "uri", "display"):
        VARIABLES[f"{_h}.{_a}"] = _addr_part(_h, _a)

# The variables a template may read and still give the same text for every request
# with the same request line on the same listener: what the compiled path keys by.
REQUEST_LINE_VARIABLES: frozenset[Getter] = frozenset(
    VARIABLES[name]
    for name in ("method", "ruri", "ruri.user", "ruri.host", "ruri.port", "ruri.scheme",
                 "transport", "local.ip", "local.port", "local.hostport")
)

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


class TemplateError(ValueError):
    pass


@dataclass(slots=True, frozen=True)
class Template:
    source: str
    parts: tuple[str | Getter, ...]

    @property
    def is_constant(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    @property
    def constant(self) -> str:
        """The text of a template with no placeholder (check ``is_constant`` first): what
        the response compiler turns into literal header lines once, at load."""
        if not self.is_constant:
            raise ValueError(f"template {self.source!r} depends on the request")
        return "".join(p for p in self.parts if isinstance(p, str))

    @property
    def reads_request_line_only(self) -> bool:
        """Whether the text depends on nothing but the request line and the listener."""
        return all(isinstance(p, str) or p in REQUEST_LINE_VARIABLES for p in self.parts)

    def render(self, ctx: RenderContext) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                try:
                    out.append(part(ctx))
                except (KeyError, ValueError, IndexError):
                    out.append("")  # a malformed or missing source renders as empty
        return "".join(out)


def compile_template(text: str) -> Template:
    parts: list[str | Getter] = []
    literal: list[str] = []
    pos = 0
    for m in _FIELD.finditer(text):
        literal.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        name = m.group(1)
        if name is None:
            raise TemplateError(f"unbalanced {token!r} (write {token * 2} for a literal brace)")
        name = name.strip()
        if name.startswith("header."):
            getter = _header(name[len("header.") :])
        elif name in VARIABLES:
            getter = VARIABLES[name]
        else:
            raise TemplateError(
                f"unknown variable {{{name}}} (known: {', '.join(sorted(VARIABLES))}, header.NAME)"
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(getter)
    literal.append(text[pos:])
    if "".join(literal):
        parts.append("".join(literal))
    return Template(text, tuple(parts))
