"""A rule's ``then``: the requests the far end sends after answering, read from
``[[rule.then]]`` tables; errors raise ``FieldError`` naming the step and its key.

    [[rule.then]]
    after = 1          # seconds after the previous step (the first: after the ACK)
    send = "BYE"

What each step does on the wire is uac/farend.py's; here only what can be refused
before anything runs: an unknown method, an offer on a method that carries none, a
REFER without a Refer-To (RFC 3515 2.4.1: "A REFER request MUST contain exactly one
Refer-To header field value").
"""

from __future__ import annotations

from ..sip.abnf import TOKEN
from ..sip.sdp import OFFER_CODECS
from .fields import FieldError, kind, reject_unknown, string, template
from .model import STEP_METHODS, STEP_SDP, FarEndStep, SessionTimer
from .template import Template

STEP_KEYS = frozenset({"send", "after", "sdp", "headers", "body", "content_type",
                       "credentials", "codecs", "cancel_after"})
# Written by the far end itself (the dialog's, the transaction's and the body's).
STEP_RESERVED = frozenset(h.lower() for h in (
    "Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Route", "Contact",
    "Content-Length", "Content-Type"))
# Methods that carry an SDP offer by default (RFC 3261 14.1, RFC 3311 5.1).
OFFERS = frozenset({"INVITE", "UPDATE"})
# At most this many steps a rule: a script is for a call's few acts, and each live
# one is held in memory per dialog.
MAX_STEPS = 32


def build_steps(value: object) -> tuple[FarEndStep, ...]:
    """The ``then`` key: an array of tables, each one step."""
    if not isinstance(value, list) or not value:
        raise FieldError("then", "must be an array of tables ([[rule.then]]), each one step")
    if len(value) > MAX_STEPS:
        raise FieldError("then", f"has {len(value)} steps; at most {MAX_STEPS}")
    steps = []
    for i, raw in enumerate(value):
        try:
            steps.append(_step(raw))
        except FieldError as exc:
            raise exc.within(f"then[{i}]") from None
    return tuple(steps)


def _step(raw: object) -> FarEndStep:
    if not isinstance(raw, dict):
        raise FieldError(None, f"must be a table, not {kind(raw)}")
    reject_unknown(raw, STEP_KEYS)
    if "send" not in raw:
        raise FieldError("send", f"missing: the method to send, one of {', '.join(STEP_METHODS)}")
    method = string("send", raw["send"]).upper()
    if method not in STEP_METHODS:
        raise FieldError("send", f"must be one of {', '.join(STEP_METHODS)}, not {raw['send']!r}")
    after = raw.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int | float) or not 0 <= after <= 3600:
        raise FieldError("after", "must be a number of seconds from 0 to 3600")
    sdp = None
    if "sdp" in raw:
        sdp = string("sdp", raw["sdp"])
        if sdp not in STEP_SDP:
            raise FieldError("sdp", f"must be one of {', '.join(STEP_SDP)}, not {sdp!r}")
        if method not in OFFERS:
            raise FieldError("sdp", f"a {method} carries no offer: only INVITE and UPDATE do")
    headers = _headers(raw.get("headers", {}))
    if method == "REFER" and not any(n.lower() == "refer-to" for n, _ in headers):
        raise FieldError("headers", 'a REFER needs a Refer-To (RFC 3515 2.4.1): '
                                    'headers = { Refer-To = "<sip:carol@{local.hostport}>" }')
    body = template("body", string("body", raw["body"])) if "body" in raw else None
    content_type = None
    if "content_type" in raw:
        content_type = string("content_type", raw["content_type"])
        if not content_type or any(c in content_type for c in "\r\n"):
            raise FieldError("content_type", "must be a media type on one line")
    if body is not None and content_type is None and method != "NOTIFY":
        # A NOTIFY's follows its event package (uac/farend.py: sipfrag for refer).
        raise FieldError("content_type", "a body needs its content_type")
    if body is not None and method in OFFERS and sdp not in (None, "none"):
        raise FieldError("body", f"a {method} with an SDP offer has its body made for it: "
                                 'drop body or say sdp = "none"')
    credentials = _credentials(raw["credentials"]) if "credentials" in raw else None
    codecs = None
    if "codecs" in raw:
        if method not in OFFERS or sdp == "none" or body is not None:
            raise FieldError("codecs", "names the codecs of an offer: only an INVITE or"
                                       " UPDATE whose SDP the far end makes has one")
        codecs = _codecs(raw["codecs"])
    cancel_after = None
    if "cancel_after" in raw:
        value = raw["cancel_after"]
        if method != "INVITE":
            raise FieldError("cancel_after", "only an INVITE can be CANCELled (RFC 3261 9)")
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 < value <= 3600):
            raise FieldError("cancel_after", "must be a number of seconds above 0, up to 3600")
        cancel_after = float(value)
    return FarEndStep(method, float(after), sdp, headers, body, content_type, credentials,
                      codecs, cancel_after)


def _codecs(value: object) -> tuple[str, ...]:
    names = {name.lower(): name for name in OFFER_CODECS}
    items = value if isinstance(value, list) else None
    if not items or not all(isinstance(v, str) and v.lower() in names for v in items):
        raise FieldError("codecs", f"must be a non-empty list of {', '.join(OFFER_CODECS)}")
    chosen = tuple(names[str(v).lower()] for v in items)
    if len(set(chosen)) != len(chosen):
        raise FieldError("codecs", "names a codec twice")
    if chosen == ("telephone-event",):
        raise FieldError("codecs", "telephone-event alone carries no audio: add a codec")
    return chosen


def _credentials(value: object) -> tuple[str, str]:
    """``credentials = { username = "alice", password = "..." }``: what answers a 401
    or 407 the client (or its proxy) gives this step's request."""
    if not isinstance(value, dict) or set(value) != {"username", "password"}:
        raise FieldError("credentials", 'must be a table { username = "...", password = "..." }')
    username, password = value["username"], value["password"]
    for key, text in (("username", username), ("password", password)):
        if not isinstance(text, str) or not text or any(c in text for c in '\r\n"\\'):
            raise FieldError(f"credentials.{key}",
                             "must be a non-empty string without quotes, backslashes or breaks")
    return str(username), str(password)


def _headers(value: object) -> tuple[tuple[str, Template], ...]:
    if not isinstance(value, dict):
        raise FieldError("headers", "must be a table of header name = value")
    out = []
    for name, text in value.items():
        field = f"headers.{name}"
        if not TOKEN.fullmatch(name):
            raise FieldError(field, "is not a valid header name")
        if name.lower() in STEP_RESERVED:
            raise FieldError(field, "is written by the far end itself and cannot be set here")
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            raise FieldError(field, f"must be a string or a number, not {kind(text)}")
        if any(c in str(text) for c in "\r\n"):
            raise FieldError(field, "must not contain line breaks")
        out.append((name, template(field, str(text))))
    return tuple(out)


SESSION_TIMER_KEYS = frozenset({"min_se", "interval", "refresher", "refresh"})


def build_session_timer(value: object) -> SessionTimer:
    """``session_timer = { min_se = 90, interval = 1800, refresher = "uas",
    refresh = "UPDATE" }`` (every key optional)."""
    if not isinstance(value, dict):
        raise FieldError("session_timer", "must be a table such as { min_se = 90 }")
    reject_unknown(value, SESSION_TIMER_KEYS)
    numbers = {}
    for key, default in (("min_se", 90), ("interval", 1800)):
        number = value.get(key, default)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 86400:
            # RFC 4028 4 puts the floor at 90 s; below it is allowed for tests that
            # must not wait 45 s for a refresh.
            raise FieldError(f"session_timer.{key}", "must be whole seconds from 1 to 86400")
        numbers[key] = number
    if numbers["interval"] < numbers["min_se"]:
        raise FieldError("session_timer.interval", "must not be below min_se")
    refresher = value.get("refresher", "uas")
    if refresher not in ("uas", "uac"):
        raise FieldError("session_timer.refresher", f'must be "uas" or "uac", not {refresher!r}')
    refresh = value.get("refresh", "UPDATE")
    if refresh not in ("UPDATE", "INVITE"):
        raise FieldError("session_timer.refresh",
                         f'must be "UPDATE" or "INVITE", not {refresh!r}')
    return SessionTimer(numbers["min_se"], numbers["interval"], str(refresher), str(refresh))
