"""Lexical pieces of the SIP grammar (RFC 3261 section 25) shared by the parsers.

Every pattern quotes the ABNF it implements. Messages are decoded as latin-1 so that
each octet maps to one character and anything we echo goes back byte for byte,
UTF-8 included.
"""

from __future__ import annotations

import re

# token       =  1*(alphanum / "-" / "." / "!" / "%" / "*"
#                / "_" / "+" / "`" / "'" / "~" )                  RFC 3261 25.1
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = re.compile(rf"[{TOKEN_CHARS}]+")

# Method            =  INVITEm / ACKm / OPTIONSm / BYEm
#                      / CANCELm / REGISTERm / extension-method
# extension-method  =  token                                       RFC 3261 25.1
METHOD = TOKEN
# Methods of RFC 3261 and the extensions registered with IANA that a UAS may see,
# in the order an Allow header lists them.
STANDARD_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
    "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
)
STANDARD_METHOD_SET = frozenset(STANDARD_METHODS)

# SIP-Version    =  "SIP" "/" 1*DIGIT "." 1*DIGIT                  RFC 3261 25.1
SIP_VERSION = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
SUPPORTED_VERSION = "SIP/2.0"

# Status-Code    =  3DIGIT (100-699 for SIP)                        RFC 3261 25.1
# scheme         =  ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )      RFC 3261 25.1
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")

# LWS  =  [*WSP CRLF] 1*WSP ; linear whitespace
# SWS  =  [LWS] ; sep whitespace                                    RFC 3261 25.1
# After unfolding (RFC 3261 7.3.1) LWS is plain SP / HTAB.
WSP = " \t"

# Compact forms, RFC 3261 7.3.3 and 20, plus the ones later RFCs registered in the
# IANA header-field registry (the issue lists: v f t i m l c k s e o u r b x y a j d n).
COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",  # RFC 3841
    "b": "Referred-By",  # RFC 3892
    "c": "Content-Type",
    "d": "Request-Disposition",  # RFC 3841
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",  # RFC 3841
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",  # RFC 4474
    "o": "Event",  # RFC 6665
    "r": "Refer-To",  # RFC 3515
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",  # RFC 6665
    "v": "Via",
    "x": "Session-Expires",  # RFC 4028
    "y": "Identity",  # RFC 8224
}

# Canonical spelling of the header names the responder writes or reads; other
# names are echoed as the sender spelled them.
_CANONICAL = [
    "Accept", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Authentication-Info", "Authorization",
    "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info",
    "Expires", "From", "Geolocation-Error", "In-Reply-To", "Max-Forwards", "Min-Expires",
    "Min-SE", "MIME-Version", "Organization", "Path", "Permission-Missing", "Priority",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route",
    "Recv-Info", "Reply-To", "Require", "Retry-After", "Route", "Security-Server",
    "Server", "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match",
    "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate", *COMPACT_FORMS.values(),
]
CANONICAL_NAMES: dict[str, str] = {name.lower(): name for name in _CANONICAL}
for _short, _long in COMPACT_FORMS.items():
    CANONICAL_NAMES[_short] = _long


def canonical_name(name: str) -> str:
    """The long, canonically cased form of a header name (compact forms expanded)."""
    return CANONICAL_NAMES.get(name.lower(), name)


def header_name(raw: str) -> tuple[str, str] | None:
    """(canonical name, dictionary key) for a header-name, or None when it is not a token.

    header-name  =  token                                           RFC 3261 25.1
    """
    if not raw or not TOKEN.fullmatch(raw):
        return None
    name = canonical_name(raw)
    return name, name.lower()


def split_lines(head: str) -> tuple[list[str], bool]:
    """The lines of a header section and whether one holds a bare CR.

    Lines end at CRLF (RFC 3261 7); a bare LF is tolerated as a line end too, and a
    CR before it dropped. CR is only ever half of a CRLF (RFC 3261 25.1: not even a
    quoted-pair may hold one). A bare CR would be echoed into the response, where a
    receiver that ends lines at CR would read the rest as a forged header field, so
    the caller must know of one.
    """
    lines = head.split("\n")
    if "\r" not in head:
        return lines, False
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines, any("\r" in line for line in lines)


# On a stream, Content-Length is mandatory and frames the body (RFC 3261 18.3, 20.14).
#   Content-Length  =  ( "Content-Length" / "l" ) HCOLON 1*DIGIT
# The value may be folded onto continuation lines (RFC 3261 7.3.1).
CONTENT_LENGTH = re.compile(
    rb"(?:^|\n)(?:content-length|l)[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.I)


def content_lengths(head: bytes) -> list[bytes]:
    """The values of every Content-Length header field in a raw header section, as
    written (folding kept), for framing a stream before the message is parsed.

    Mirrored in C by ``stream_total`` (csrc/scan.h), with StreamFramer."""
    return CONTENT_LENGTH.findall(head)


def split_top_level(value: str, sep: str = ",") -> list[str]:
    """Split a header value on ``sep`` outside quoted strings and <...> brackets.

    Multiple header field rows may be combined with commas (RFC 3261 7.3.1), but a
    comma inside a quoted-string display name or an angle-bracketed URI does not
    separate values:
      quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
      quoted-pair  =  "\\" (%x00-09 / %x0B-0C / %x0E-7F)          RFC 3261 25.1
    Raises ValueError on an unterminated quoted string or bracket.
    """
    if '"' not in value and "<" not in value:
        # Nothing can protect a separator: the exact answer, not a shortcut to check.
        return [part.strip(WSP) for part in value.split(sep)]
    parts: list[str] = []
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == '"':
            i = skip_quoted(value, i)
            continue
        if ch == "<":
            end = value.find(">", i)
            if end < 0:
                raise ValueError("unterminated '<'")
            i = end + 1
            continue
        if ch == sep:
            parts.append(value[start:i].strip(WSP))
            start = i + 1
        i += 1
    parts.append(value[start:].strip(WSP))
    return parts


def skip_quoted(value: str, i: int) -> int:
    """Index just past the quoted-string that starts at ``value[i] == '"'``."""
    n = len(value)
    i += 1
    while i < n:
        ch = value[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise ValueError("unterminated quoted string")


def parse_params(text: str) -> list[tuple[str, str | None]]:
    """Parse ``*( SEMI generic-param )`` after its first ';' was consumed by the caller.

    generic-param  =  token [ EQUAL gen-value ]
    gen-value      =  token / host / quoted-string                 RFC 3261 25.1
    Raises ValueError for an empty or malformed parameter (e.g. ';;').

    Mirrored in C by ``parse_params`` (csrc/scan.h), for text with no '"' or '<'.
    """
    params: list[tuple[str, str | None]] = []
    for raw in split_top_level(text, ";"):
        name, eq, val = raw.partition("=")
        name = name.strip(WSP)
        if not name or not TOKEN.fullmatch(name):
            raise ValueError(f"malformed parameter {raw!r}")
        if eq:
            val = val.strip(WSP)
            if not val:
                raise ValueError(f"parameter {name!r} has an empty value")
            params.append((name, val))
        else:
            params.append((name, None))
    return params
