"""SIP, SIPS and tel URIs (RFC 3261 19.1, 25.1; RFC 3966; RFC 5118 for IPv6 references)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from .abnf import SCHEME

# SIP-URI          =  "sip:" [ userinfo ] hostport
#                     uri-parameters [ headers ]
# SIPS-URI         =  "sips:" [ userinfo ] hostport
#                     uri-parameters [ headers ]
# userinfo         =  ( user / telephone-subscriber ) [ ":" password ] "@"
# hostport         =  host [ ":" port ]
# host             =  hostname / IPv4address / IPv6reference
# hostname         =  *( domainlabel "." ) toplabel [ "." ]
# IPv6reference    =  "[" IPv6address "]"
# port             =  1*DIGIT                                        RFC 3261 25.1
#
# The host check is deliberately a little wider than `hostname` (it admits "_",
# which real deployments use) but never admits ':' outside brackets, so an IPv6
# address without brackets (RFC 5118 4.2) is rejected.
_HOSTPORT = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
# user  =  1*( unreserved / escaped / user-unreserved )
# user-unreserved  =  "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# password  =  *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_USERINFO = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/:]+")
# uri-parameters / headers: everything up to the end of the URI, checked loosely
# (parameter names only need to be tokens; values may hold '[' ']' '/' ':' ...).
_REST = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/:\[\]@]*")


class URIError(ValueError):
    """A Request-URI or header URI that does not follow its grammar."""


# Not frozen: a frozen dataclass costs three times as much to construct. URIs are
# shared through fastpath's parse cache all the same, so nothing may assign to one.
@dataclass(slots=True)
class URI:
    raw: str
    scheme: str  # lower case
    user: str  # unescaped (RFC 3261 19.1.4); "" when absent
    host: str  # brackets kept for IPv6 references; "" for non-SIP schemes
    port: int | None
    params: str  # ';...' as written, "" when absent

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")


def parse_uri(raw: str) -> URI:
    """Parse an absolute URI; SIP and SIPS URIs are checked against their grammar.

    absoluteURI    =  scheme ":" ( hier-part / opaque-part )        RFC 3261 25.1
    Raises URIError. The hot path goes through fastpath.parse_uri, which caches.

    Mirrored in C by ``valid_uri`` (csrc/scan.h): its accepting branches.
    """
    scheme, colon, rest = raw.partition(":")
    if not colon or not SCHEME.fullmatch(scheme):
        raise URIError("no valid URI scheme")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        if not rest or any(c in rest for c in " \t<>\""):
            raise URIError(f"malformed {scheme}: URI")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            return URI(raw, scheme, unquote(number, "latin-1"), "", None,
                       ";" + params if params else "")
        return URI(raw, scheme, "", "", None, "")
    user = ""
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        if not userinfo or not _USERINFO.fullmatch(userinfo):
            raise URIError("malformed user part")
        # A ':' separates the password; RFC 3261 discourages passwords but allows them.
        user = userinfo.partition(":")[0]
        if "%" in user:
            user = unquote(user, "latin-1")
        rest = rest[at + 1 :]
    m = _HOSTPORT.match(rest)
    if m is None:
        raise URIError("malformed host")
    tail = rest[m.end() :]
    if tail and tail[0] not in ";?":
        raise URIError("malformed host or port")
    if not _REST.fullmatch(tail):
        raise URIError("invalid character in URI parameters")
    host = m["host"]
    if host.startswith("[") and not _valid_ipv6(host[1:-1]):
        raise URIError("malformed IPv6 reference")
    port = int(m["port"]) if m["port"] else None
    if port is not None and port > 65535:
        raise URIError("port out of range")
    params = tail.partition("?")[0]
    return URI(raw, scheme, user, host.lower(), port, params)


def _valid_ipv6(addr: str) -> bool:
    """IPv6address as RFC 4291 2.2 writes it.

    RFC 3261's own IPv6address ABNF admits ':::' before an embedded IPv4 address by
    mistake; RFC 5118 4.10 asks receivers to be robust, so that form is read as '::'.
    """
    if ":::" in addr:
        head, _, tail = addr.partition(":::")
        if "." not in tail or ":" in tail:
            return False
        addr = head + "::" + tail
    try:
        ipaddress.IPv6Address(addr)
    except ValueError:
        return False
    return True
