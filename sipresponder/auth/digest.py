"""HTTP Digest authentication as SIP uses it (RFC 3261 22, RFC 7616, RFC 8760), without I/O.

Three pieces, each a pure function of its inputs:

- challenges: one ``WWW-Authenticate`` / ``Proxy-Authenticate`` value per algorithm;
- credentials: parsing an ``Authorization`` / ``Proxy-Authorization`` value;
- the request digest (RFC 7616 3.4.1 with qop=auth, RFC 2069 without qop) and
  stateless nonces: a timestamp signed with an HMAC, so that no server state is
  needed to tell a nonce we issued, a forged one and an expired ("stale") one apart.

Hashes are computed over UTF-8 text (RFC 7616 3.4.4: the charset SIP uses).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from ..sip.abnf import TOKEN, WSP


@dataclass(frozen=True, slots=True)
class Algorithm:
    """A Digest algorithm: its name in challenges and the hash behind it.

    ``family`` names the unsessioned algorithm whose H(username:realm:password)
    is the stored HA1 (MD5-sess uses MD5's HA1, RFC 7616 3.4.2).
    """

    name: str
    hash_name: str
    family: str
    sess: bool

    def H(self, text: str) -> str:  # the RFC's name for it
        return hashlib.new(self.hash_name, text.encode("utf-8")).hexdigest()

    @property
    def digest_length(self) -> int:
        return hashlib.new(self.hash_name).digest_size * 2


# RFC 7616 6.1 (the IANA "HTTP Digest Algorithm Values" registry) and RFC 8760 2.1:
# SIP implementations support SHA-256 and SHA-512/256 and keep MD5 for old clients.
ALGORITHMS: dict[str, Algorithm] = {
    a.name.lower(): a
    for a in (
        Algorithm("MD5", "md5", "MD5", False),
        Algorithm("MD5-sess", "md5", "MD5", True),
        Algorithm("SHA-256", "sha256", "SHA-256", False),
        Algorithm("SHA-256-sess", "sha256", "SHA-256", True),
        Algorithm("SHA-512-256", "sha512_256", "SHA-512-256", False),
        Algorithm("SHA-512-256-sess", "sha512_256", "SHA-512-256", True),
    )
}
FAMILIES = ("MD5", "SHA-256", "SHA-512-256")


def algorithm(name: str) -> Algorithm:
    """The algorithm of that name (case-insensitive, RFC 7616 3.3); KeyError if unknown."""
    return ALGORITHMS[name.lower()]


# -- challenges -------------------------------------------------------------------------
def quote(text: str) -> str:
    """A quoted-string (RFC 3261 25.1):
    quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
    quoted-pair    =  "\\" (%x00-09 / %x0B-0C / %x0E-7F)
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenge(
    realm: str, nonce: str, alg: Algorithm, *, qop: bool = True, stale: bool = False
) -> str:
    """One challenge, for one header line (RFC 3261 25.1):

    challenge      =  ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
    digest-cln     =  realm / domain / nonce / opaque / stale / algorithm
                      / qop-options / auth-param
    stale          =  "stale" EQUAL ( "true" / "false" )
    algorithm      =  "algorithm" EQUAL ( "MD5" / "MD5-sess" / token )
    qop-options    =  "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT

    ``algorithm`` is a token and goes unquoted, directly followed by a comma: clients
    that find it with a regular expression (sipvicious' svcrack) read the quotes or
    whatever follows as part of the name. ``qop=False`` makes the RFC 2069 challenge.
    """
    parts = [f"Digest realm={quote(realm)}", f"nonce={quote(nonce)}", f"algorithm={alg.name}"]
    if qop:
        parts.append('qop="auth"')
    if stale:
        parts.append("stale=true")
    return ", ".join(parts)


# -- credentials --------------------------------------------------------------------------
@dataclass(slots=True)
class Credentials:
    """The directives of a Digest credential, names lower-cased, values unquoted."""

    params: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    @property
    def username(self) -> str:
        return self.params["username"]

    @property
    def realm(self) -> str:
        return self.params["realm"]


# credentials       =  ("Digest" LWS digest-response) / other-response
# digest-response   =  dig-resp *(COMMA dig-resp)
# dig-resp          =  username / realm / nonce / digest-uri / dresponse / algorithm
#                      / cnonce / opaque / message-qop / nonce-count / auth-param
# username          =  "username" EQUAL username-value
# username-value    =  quoted-string
# digest-uri        =  "uri" EQUAL LDQUOT digest-uri-value RDQUOT
# message-qop       =  "qop" EQUAL qop-value
# cnonce            =  "cnonce" EQUAL cnonce-value
# nonce-count       =  "nc" EQUAL nc-value
# nc-value          =  8LHEX
# dresponse         =  "response" EQUAL request-digest
# request-digest    =  LDQUOT 32LHEX RDQUOT
# auth-param        =  auth-param-name EQUAL ( token / quoted-string )
# other-response    =  auth-scheme LWS auth-param *(COMMA auth-param)      RFC 3261 25.1
#
# RFC 8760 2.4 widens request-digest to the length of the algorithm's hash. Read
# leniently where clients are known to differ and nothing can be misread: a quoted
# token value (qop="auth", algorithm="MD5") and an unquoted URI are accepted.
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_NC = re.compile(r"[0-9A-Fa-f]{8}")


def parse_credentials(value: str) -> Credentials | None:
    """The Digest credentials of one Authorization / Proxy-Authorization value.

    None for another scheme (``Basic ...``: a UAS ignores what it does not use);
    ValueError, naming the problem, for a Digest value that breaks the grammar or
    lacks a directive RFC 7616 3.4 requires.
    """
    text = value.strip(WSP)
    scheme_end = next((k for k, ch in enumerate(text) if ch in WSP), len(text))
    if text[:scheme_end].lower() != "digest":
        return None
    params = _directives(text[scheme_end:])
    _check_directives(params)
    return Credentials(params)


def _directives(rest: str) -> dict[str, str]:
    """``digest-cln *(COMMA digest-cln)`` (or the credential's digest-response list):
    names lower-cased, values unquoted; ValueError names what breaks the grammar."""
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while True:
        name, val, i = _directive(rest, i)
        if name in params:
            raise ValueError(f"directive {name!r} appears twice")
        params[name] = val
        i = _skip_wsp(rest, i)
        if i >= n:
            return params
        if rest[i] != ",":
            raise ValueError(f"expected ',' after directive {name!r}")
        i += 1


def parse_challenge(value: str) -> dict[str, str] | None:
    """The directives of one WWW-Authenticate / Proxy-Authenticate Digest challenge
    (its grammar is ``challenge`` above); None for another scheme; ValueError for a
    Digest challenge without realm or nonce, or one that breaks the grammar."""
    text = value.strip(WSP)
    scheme_end = next((k for k, ch in enumerate(text) if ch in WSP), len(text))
    if text[:scheme_end].lower() != "digest":
        return None
    params = _directives(text[scheme_end:])
    for name in ("realm", "nonce"):
        if name not in params:
            raise ValueError(f"the challenge has no {name}")
    return params


def answer(challenge_params: dict[str, str], *, username: str, password: str, method: str,
           uri: str, cnonce: str) -> str:
    """The credentials (an Authorization or Proxy-Authorization value) answering a
    challenge, as a UAC computes them (RFC 3261 22.4, RFC 7616 3.4), with qop=auth
    when the challenge offers it and nc 00000001. KeyError: an unknown algorithm."""
    alg = algorithm(challenge_params.get("algorithm", "MD5"))
    realm, nonce = challenge_params["realm"], challenge_params["nonce"]
    offered = {q.strip().lower() for q in challenge_params.get("qop", "").split(",")}
    qop = "auth" if "auth" in offered else None
    nc = "00000001" if qop else None
    response = request_digest(alg, ha1(alg, username, realm, password), method=method,
                              uri=uri, nonce=nonce, qop=qop, nc=nc,
                              cnonce=cnonce if qop or alg.sess else None)
    parts = [f"Digest username={quote(username)}", f"realm={quote(realm)}",
             f"nonce={quote(nonce)}", f"uri={quote(uri)}", f"response={quote(response)}",
             f"algorithm={alg.name}"]
    if qop:
        parts += [f"qop={qop}", f"nc={nc}", f"cnonce={quote(cnonce)}"]
    if "opaque" in challenge_params:
        parts.append(f"opaque={quote(challenge_params['opaque'])}")
    return ", ".join(parts)


def _skip_wsp(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in WSP:
        i += 1
    return i


def _directive(text: str, i: int) -> tuple[str, str, int]:
    """The auth-param at ``text[i:]`` (after optional LWS): its lower-case name, its
    value (unquoted) and the index past it."""
    i = _skip_wsp(text, i)
    match = TOKEN.match(text, i)
    if match is None:
        raise ValueError("expected a directive name")
    name = match.group(0).lower()
    i = _skip_wsp(text, match.end())
    if i >= len(text) or text[i] != "=":
        raise ValueError(f"directive {name!r} has no value")
    i = _skip_wsp(text, i + 1)
    if i < len(text) and text[i] == '"':
        val, i = _unquote(text, i)
        return name, val, i
    start = i
    while i < len(text) and text[i] != "," and text[i] not in WSP:
        i += 1
    if i == start:
        raise ValueError(f"directive {name!r} has an empty value")
    return name, text[start:i], i


def _check_directives(params: dict[str, str]) -> None:
    for name in _REQUIRED:
        if name not in params:
            raise ValueError(f"no {name} directive")
    if params.get("qop") is not None:
        # RFC 7616 3.4: with a qop, cnonce and nc MUST be sent.
        if "cnonce" not in params or "nc" not in params:
            raise ValueError("qop without cnonce and nc")
        if not _NC.fullmatch(params["nc"]):
            raise ValueError("nc is not 8 hex digits")


def _unquote(text: str, i: int) -> tuple[str, int]:
    """The content of the quoted-string at ``text[i] == '"'`` and the index past it."""
    out = []
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted string")


# -- the digest ---------------------------------------------------------------------------
def ha1(alg: Algorithm, username: str, realm: str, password: str) -> str:
    """H(username ":" realm ":" passwd): what a server may store instead of the password."""
    return alg.H(f"{username}:{realm}:{password}")


def request_digest(
    alg: Algorithm,
    stored_ha1: str,
    *,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
) -> str:
    """The expected ``response`` directive.

    RFC 7616 3.4.1 / 3.4.2 / 3.4.3 (qop=auth):
      A1       = unq(username) ":" unq(realm) ":" passwd
                 (-sess: H(that) ":" unq(nonce) ":" unq(cnonce))
      A2       = Method ":" request-uri
      response = KD(H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2))
    RFC 2069 2.1.2 (no qop):
      response = KD(H(A1), unq(nonce) ":" H(A2))
    where KD(secret, data) = H(secret ":" data). ``stored_ha1`` is H(A1) of the
    unsessioned algorithm; the -sess variants derive their session key from it.
    """
    key = stored_ha1.lower()
    if alg.sess:
        key = alg.H(f"{key}:{nonce}:{cnonce or ''}")
    ha2 = alg.H(f"{method}:{uri}")
    if qop is None:
        return alg.H(f"{key}:{nonce}:{ha2}")
    return alg.H(f"{key}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def digest_matches(expected: str, given: str) -> bool:
    """Constant-time comparison of hex digests, case-insensitive (LHEX is lower case,
    but a client's upper-case hex is the same number)."""
    return hmac.compare_digest(expected.lower().encode(), given.lower().encode())


# -- stateless nonces ---------------------------------------------------------------------
_STAMP = 10  # hex digits of the issue time: seconds, good for 34,000 years
_MAC = 32  # hex digits of the signature: 128 bits of HMAC-SHA-256


class NonceSigner:
    """Nonces that carry their own issue time, signed so that only we can make them.

    nonce = hex(issue time, seconds) || hex(HMAC-SHA-256(key, that || ":" realm))[:128 bits]

    RFC 7616 3.3 suggests exactly this shape (a time stamp plus a hash with a private
    key) so that a server can refuse old nonces without remembering any. A nonce may
    be replayed until it expires: without state there is no nonce-count check.
    """

    def __init__(self, key: bytes, realm: str, lifetime: float) -> None:
        self._key = key
        self._realm = realm.encode("utf-8")
        self.lifetime = lifetime

    def _mac(self, stamp: str) -> str:
        mac = hmac.new(self._key, stamp.encode() + b":" + self._realm, hashlib.sha256)
        return mac.hexdigest()[:_MAC]

    def make(self, now: float) -> str:
        stamp = format(max(0, int(now)), f"0{_STAMP}x")
        return stamp + self._mac(stamp)

    def check(self, nonce: str, now: float) -> str:
        """ "valid", "stale" (ours, but older than the lifetime) or "invalid"."""
        if len(nonce) != _STAMP + _MAC:
            return "invalid"
        stamp, mac = nonce[:_STAMP], nonce[_STAMP:]
        if not hmac.compare_digest(mac.encode(), self._mac(stamp).encode()):
            return "invalid"
        try:
            issued = int(stamp, 16)
        except ValueError:
            return "invalid"
        age = now - issued
        if age < 0:
            return "invalid"  # signed by us, but from the future: another clock
        return "valid" if age <= self.lifetime else "stale"
