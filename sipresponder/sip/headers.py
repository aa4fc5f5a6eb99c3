"""Structured views of the header fields the responder reads: Via, From/To/Contact, CSeq."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .abnf import TOKEN, WSP, parse_params, skip_quoted, split_top_level
from .uri import URI, parse_uri

# via-parm          =  sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol     =  protocol-name SLASH protocol-version SLASH transport
# protocol-name     =  "SIP" / token
# protocol-version  =  token
# transport         =  "UDP" / "TCP" / "TLS" / "SCTP" / other-transport
# sent-by           =  host [ COLON port ]
# SLASH = SWS "/" SWS ; COLON = SWS ":" SWS                         RFC 3261 25.1
_T = r"[A-Za-z0-9\-.!%*_+`'~]+"
_VIA = re.compile(
    rf"[ \t]*(?P<proto>{_T})[ \t]*/[ \t]*(?P<version>{_T})[ \t]*/[ \t]*(?P<transport>{_T})"
    r"[ \t]+(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-_.]+)"
    r"(?:[ \t]*:[ \t]*(?P<port>[0-9]{1,5}))?[ \t]*(?P<params>;.*)?"
)

MAGIC_COOKIE = "z9hG4bK"  # RFC 3261 8.1.1.7


@dataclass(slots=True)
class Via:
    raw: str
    head: str  # sent-protocol and sent-by, as written, without the parameters
    transport: str  # upper case
    host: str  # brackets kept for IPv6
    port: int | None
    params: list[tuple[str, str | None]]

    def param(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return value if value is not None else ""
        return None

    def has_param(self, name: str) -> bool:
        name = name.lower()
        return any(key.lower() == name for key, _ in self.params)

    @property
    def branch(self) -> str:
        return self.param("branch") or ""


def parse_via(value: str, *, lenient: bool = False) -> Via:
    """Parse one via-parm (one comma-separated Via value). Raises ValueError.

    ``lenient`` skips malformed parameters instead of failing: enough to route a
    response (a 400) for a request whose Via has stray ';;' (RFC 4475 3.1.2.1).
    The hot path goes through fastpath.parse_via, which parses a client's Via
    without its branch once.

    Mirrored in C by ``parse_via`` (csrc/scan.h), the strict reading.
    """
    m = _VIA.fullmatch(value)
    if m is None:
        raise ValueError("malformed Via header field")
    port = int(m["port"]) if m["port"] else None
    if port is not None and port > 65535:
        raise ValueError("Via port out of range")
    raw_params = m["params"]
    params: list[tuple[str, str | None]]
    if not raw_params:
        params = []
    elif lenient:
        params = []
        try:
            # gen-value may be a quoted-string holding ';' (RFC 3261 25.1).
            items = split_top_level(raw_params[1:], ";")
        except ValueError:  # an unterminated quote: cut at every ';'
            items = raw_params[1:].split(";")
        for item in items:
            name, eq, val = item.partition("=")
            name = name.strip(WSP)
            if name and TOKEN.fullmatch(name):
                params.append((name, val.strip(WSP) if eq else None))
    else:
        params = parse_params(raw_params[1:])
    head = value[: m.start("params")] if raw_params else value
    return Via(value, head.rstrip(WSP), m["transport"].upper(), m["host"], port, params)


@dataclass(slots=True)
class NameAddr:
    """from-spec / to-spec / contact-param: [display] <uri> *(;param) or uri *(;param)."""

    raw: str
    display: str
    uri: URI
    bracketed: bool
    params: list[tuple[str, str | None]]
    params_raw: str  # ';...' as written after the URI, "" when absent

    @property
    def tag(self) -> str | None:
        for key, value in self.params:
            if key.lower() == "tag":
                return value
        return None


def parse_name_addr(value: str, parse_uri: Callable[[str], URI] = parse_uri) -> NameAddr:
    """Parse a From, To or single Contact value. Raises ValueError.

    name-addr      =  [ display-name ] LAQUOT addr-spec RAQUOT
    addr-spec      =  SIP-URI / SIPS-URI / absoluteURI
    display-name   =  *(token LWS)/ quoted-string                  RFC 3261 25.1
    When the URI is not in angle brackets, everything after its first ';' is a
    header parameter, never a URI parameter (RFC 3261 20.10).
    Liberal in the ways RFC 4475 asks an element to be: no LWS before '<'
    (3.1.1.6), LWS inside the brackets (3.1.2.14), and an unquoted display name
    with non-token characters (3.1.2.15) are accepted.

    ``parse_uri`` parses the addr-spec: fastpath.parse_name_addr, the one the hot
    path calls, passes its cached URI parser.

    Mirrored in C by ``parse_name_addr`` (csrc/scan.h).
    """
    text = value.strip(WSP)
    i = 0
    if text.startswith('"'):
        i = skip_quoted(text, 0)
        display = text[:i]
        lt = text.find("<", i)
        if lt < 0 or text[i:lt].strip(WSP):
            raise ValueError("expected '<' after the display name")
    else:
        lt = text.find("<")
        semi = text.find(";")
        if lt >= 0 and (semi < 0 or lt < semi):
            display = text[:lt].strip(WSP)
        else:
            lt = -1
            display = ""
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise ValueError("missing '>'")
        uri_text = text[lt + 1 : gt].strip(WSP)
        rest = text[gt + 1 :].strip(WSP)
        bracketed = True
    else:
        uri_text, sep, rest = text.partition(";")
        uri_text = uri_text.strip(WSP)
        rest = ";" + rest if sep else ""
        bracketed = False
    if not uri_text:
        raise ValueError("missing URI")
    uri = parse_uri(uri_text)
    if rest and not rest.startswith(";"):
        raise ValueError("unexpected text after the URI")
    params = parse_params(rest[1:]) if rest else []
    return NameAddr(value, display, uri, bracketed, params, rest)


# CSeq  =  "CSeq" HCOLON 1*DIGIT LWS Method                         RFC 3261 25.1
# The sequence number must be less than 2**31 when generated and fit 32 bits (8.1.1.5).
_CSEQ = re.compile(r"([0-9]+)[ \t]+(\S+)")
MAX_CSEQ = 2**32 - 1


def parse_cseq(value: str) -> tuple[int, str]:
    """(sequence number, method) of a CSeq value. Raises ValueError.

    The hot path goes through fastpath.parse_cseq, which reads "1 INVITE" without
    the pattern.

    Mirrored in C by ``parse_cseq`` (csrc/scan.h).
    """
    m = _CSEQ.fullmatch(value.strip(WSP))
    if m is None or not TOKEN.fullmatch(m[2]):
        raise ValueError("malformed CSeq header field")
    digits: str = m[1]
    # Compare lengths first so a 10**100 never becomes a big integer.
    if len(digits.lstrip("0")) > 10 or int(digits) > MAX_CSEQ:
        raise ValueError("CSeq sequence number out of range")
    return int(digits), m[2]


def split_values(rows: list[str]) -> list[str]:
    """All comma-separated values of a multi-value header, in order."""
    out: list[str] = []
    for row in rows:
        out.extend(v for v in split_top_level(row) if v)
    return out

