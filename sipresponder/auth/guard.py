"""Rules that demand Digest authentication (RFC 3261 22): the rule's own response or,
in its place, a challenge, a refusal or a 400.

A rule with ``auth = "www"`` answers as a UAS or registrar does (401 with
WWW-Authenticate, credentials in Authorization); ``auth = "proxy"`` as a proxy does
(407 with Proxy-Authenticate, credentials in Proxy-Authorization), RFC 3261 22.2 and
22.3. The engine asks ``Guard.check`` right after the rule matched (the rule holds
the guard as a ``scenario.model.AuthCheck``); ``config.py`` reads the settings into
``AuthConfig``, ``digest.py`` is the RFC 7616 codec. No state is kept between
requests: nonces carry their own time and signature.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..scenario.model import ResponseSpec, Rule
from ..scenario.template import Template
from .digest import (
    ALGORITHMS,
    Algorithm,
    Credentials,
    NonceSigner,
    challenge,
    digest_matches,
    parse_credentials,
    request_digest,
)

if TYPE_CHECKING:
    from ..sip.message import Request

# The nonce key when the scenario sets none: random, once per process, so that a
# scenario reload keeps the nonces already handed out valid. Several processes or
# hosts serving one realm need a shared `auth.secret`.
_PROCESS_KEY = os.urandom(32)

CHALLENGE_CODES = {"www": 401, "proxy": 407}
_HEADERS = {
    "www": ("WWW-Authenticate", "authorization", "Authorization"),
    "proxy": ("Proxy-Authenticate", "proxy-authorization", "Proxy-Authorization"),
}
# RFC 3261 9.2: CANCEL is hop-by-hop and cannot be resubmitted, so it cannot be
# challenged; ACK never reaches the rules.
_NEVER_CHALLENGED = frozenset({"CANCEL", "ACK"})


@dataclass(slots=True)
class User:
    """One credentials entry: HA1 per hash family ("MD5", "SHA-256", "SHA-512-256")."""

    ha1: dict[str, str]


@dataclass(slots=True)
class AuthConfig:
    """The scenario's ``[auth]`` table."""

    realm: str = "sipresponder"
    algorithms: tuple[Algorithm, ...] = (ALGORITHMS["md5"],)
    qop: bool = True  # False: RFC 2069 challenges (no qop, no cnonce)
    nonce_lifetime: float = 300.0
    wrong_password: int = 403  # 401 / 407: challenge again
    unknown_user: int = 403
    secret: str = ""
    users: dict[str, User] = field(default_factory=dict)
    signer: NonceSigner = field(init=False)

    def __post_init__(self) -> None:
        self.finish()

    def finish(self) -> None:
        """(Re)build what derives from the settings; the loader calls it after filling them."""
        key = self.secret.encode("utf-8") if self.secret else _PROCESS_KEY
        self.signer = NonceSigner(key, self.realm, self.nonce_lifetime)


@dataclass(slots=True)
class Verdict:
    """What became of the credentials, for the log line and the tests."""

    outcome: str  # "ok", "challenge", "stale", "wrong-password", "unknown-user", "malformed"
    detail: str = ""


@dataclass(slots=True)
class Guard:
    """A rule's authentication requirement, compiled at load time."""

    kind: str  # "www" or "proxy"
    config: AuthConfig
    _refusals: dict[str, Rule] = field(default_factory=dict)
    # The last challenge: a nonce lasts a second, and so does its compiled response.
    _challenge: tuple[str, bool, Rule] | None = None

    def check(self, rule: Rule, request: Request, now: float) -> Rule:
        """``rule`` itself when the request carries valid credentials (or cannot be
        challenged); otherwise a stand-in rule whose response is the answer."""
        if request.method in _NEVER_CHALLENGED:
            return rule
        verdict = self.verify(request, now)
        if verdict.outcome == "ok":
            return rule
        return self.answer(rule, verdict, now)

    def verify(self, request: Request, now: float) -> Verdict:
        config = self.config
        creds = self._credentials(request)
        if isinstance(creds, Verdict):
            return creds
        alg = ALGORITHMS.get((creds.get("algorithm") or "MD5").lower())  # RFC 7616 3.4: MD5
        if alg is None or alg not in config.algorithms:
            return Verdict("challenge", f"algorithm {creds.get('algorithm')} not offered")
        qop = creds.get("qop")
        if qop is not None and qop.lower() != "auth":
            return Verdict("challenge", f"qop {qop} not offered")
        if (qop is None) == config.qop:
            # What the challenge offered decides the form: qop=auth, or RFC 2069.
            return Verdict("challenge", "qop missing" if config.qop else "qop not offered")
        state = config.signer.check(creds.get("nonce") or "", now)
        if state == "invalid":
            return Verdict("challenge", "nonce not issued here")
        user = config.users.get(creds.username)
        if user is None:
            return Verdict("unknown-user", f"unknown user {creds.username!r}")
        stored = user.ha1.get(alg.family)
        expected = (
            request_digest(
                alg,
                stored,
                method=request.method,
                uri=creds.get("uri") or "",
                nonce=creds.get("nonce") or "",
                qop=qop.lower() if qop else None,
                nc=creds.get("nc"),
                cnonce=creds.get("cnonce"),
            )
            if stored is not None
            else ""
        )
        ok = bool(expected) and digest_matches(expected, creds.get("response") or "")
        if not ok:
            return Verdict("wrong-password", f"wrong password for {creds.username!r}")
        if state == "stale":
            # RFC 7616 3.3: stale=true only when the digest was right for that nonce,
            # so that the client retries without asking its user again.
            return Verdict("stale", f"nonce expired for {creds.username!r}")
        return Verdict("ok")

    def _credentials(self, request: Request) -> Credentials | Verdict:
        """The request's credentials for our realm, or the verdict when it has none."""
        _, field_key, field_name = _HEADERS[self.kind]
        for row in request.fields.get(field_key, ()):
            try:
                parsed = parse_credentials(row)
            except ValueError as exc:
                return Verdict("malformed", f"Malformed {field_name} header field ({exc})")
            # RFC 3261 22.4: credentials for other realms (other proxies) are not ours.
            if parsed is not None and parsed.realm == self.config.realm:
                return parsed
        return Verdict("challenge", "no credentials for this realm")

    def answer(self, rule: Rule, verdict: Verdict, now: float) -> Rule:
        config = self.config
        outcome = verdict.outcome
        if outcome == "malformed":
            return self._stand_in(rule, "malformed", ResponseSpec(400, _const(verdict.detail)))
        code = {"wrong-password": config.wrong_password, "unknown-user": config.unknown_user}.get(
            outcome, CHALLENGE_CODES[self.kind]
        )
        if code not in (401, 407):
            refusal = self._refusals.get(outcome)
            if refusal is None:
                refusal = self._stand_in(rule, outcome, ResponseSpec(code, sdp=False))
                self._refusals[outcome] = refusal
            return refusal
        nonce = config.signer.make(now)
        stale = outcome == "stale"
        cached = self._challenge
        if cached is not None and cached[0] == nonce and cached[1] == stale:
            return cached[2]
        header = _HEADERS[self.kind][0]
        rows = [
            (header, _const(challenge(config.realm, nonce, alg, qop=config.qop, stale=stale)))
            for alg in config.algorithms
        ]
        spec = ResponseSpec(CHALLENGE_CODES[self.kind], headers=rows, sdp=False)
        stand_in = self._stand_in(rule, "stale nonce" if stale else "challenge", spec)
        self._challenge = (nonce, stale, stand_in)
        return stand_in

    @staticmethod
    def _stand_in(rule: Rule, what: str, spec: ResponseSpec) -> Rule:
        # Named after the rule, so that logs and the journal say which rule asked for
        # credentials and what became of them: rule 'register: auth challenge' (#3).
        name = f"{rule.name or '#' + str(rule.number)}: auth {what}"
        return Rule(name, rule.number, [], rule.methods, [], spec)


def _const(text: str) -> Template:
    """A template that renders as ``text``: no braces are interpreted."""
    return Template(text, (text,))
