"""Protocol checks a UAS makes before any scenario rule sees a request (RFC 3261 8.2).

Each check returns a ``Rejection`` (status, reason, header fields the status needs)
or None. Structural checks always run: a request whose CSeq, Request-URI, From, To
or Via cannot be parsed can be neither matched nor answered correctly. The semantic
checks in ``CHECKS`` can be switched in a scenario's ``[settings.checks]``; those
the RFC makes a MUST are on by default. They run in the order RFC 3261 8.2 gives:
method, headers, URI, extensions, content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sip.abnf import split_top_level
from ..sip.fastpath import parse_via
from ..sip.uri import URIError

if TYPE_CHECKING:
    from ..scenario.model import Refusal, Scenario
    from ..sip.message import Request

# Header fields every request carries exactly once (RFC 3261 8.1.1; 7.3.1 allows only
# list-valued headers to repeat).
MANDATORY = (("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq"))
SINGLE = (*MANDATORY, ("max-forwards", "Max-Forwards"), ("content-type", "Content-Type"))
ACCEPTED_SCHEMES = ("sip", "sips", "tel")
# List-valued header fields the responder splits into values (RFC 3261 7.3.1) after
# this check: an unterminated quoted string or '<' in them must earn a 400 here.
SPLIT = (("contact", "Contact"), ("require", "Require"), ("accept", "Accept"),
         ("content-encoding", "Content-Encoding"), ("content-language", "Content-Language"))


@dataclass(slots=True)
class Rejection:
    code: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


# One RFC 3261 8.2 check: the request passes (None) or earns a Rejection. (A rule's
# match condition is another thing: scenario.model's ``Condition``.)
Check = Callable[["Request", "Scenario"], "Rejection | None"]


def _structure(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h): the mandatory fields and their grammar."""
    fields = request.fields
    for key, name in MANDATORY:
        if key not in fields:
            return Rejection(400, f"Missing {name} header field")
    try:
        request.cseq  # noqa: B018 - parse now to reject a bad CSeq before the rules run
    except ValueError as exc:
        return Rejection(400, f"Invalid CSeq header field ({exc})")
    try:
        request.uri  # noqa: B018
    except URIError as exc:
        return Rejection(400, f"Malformed Request-URI ({exc})")
    try:
        request.to  # noqa: B018
    except ValueError as exc:
        return Rejection(400, f"Malformed To header field ({exc})")
    try:
        request.from_  # noqa: B018
    except ValueError as exc:
        return Rejection(400, f"Malformed From header field ({exc})")
    # The engine parsed the top Via already; when that parse was strict, only the
    # other values are left to check.
    skip_top = request.top_via_checked()
    for row in fields["via"]:
        try:
            values = split_top_level(row)
            for value in values:
                if skip_top:
                    skip_top = False
                    if value:
                        continue
                if not value:
                    raise ValueError("empty value")
                parse_via(value)
        except ValueError:
            return Rejection(400, "Malformed Via header field")
    for key, name in SPLIT:
        rows = fields.get(key)
        if rows is None:
            continue
        try:
            for row in rows:
                # Without quotes, a row splits cleanly when its last '<' is closed.
                if '"' in row or row.rfind("<") > row.rfind(">"):
                    split_top_level(row)
        except ValueError as exc:
            return Rejection(400, f"Malformed {name} header field ({exc})")
    return None


def _duplicates(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h), which defers any repeat."""
    if len(request.fields) == len(request.headers):
        return None  # no header field name repeats
    for key, name in SINGLE:
        rows = request.fields.get(key)
        if rows is not None and len(rows) > 1:
            return Rejection(400, f"Duplicate {name} header field")
    return None


def _uri_scheme(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``answer`` (csrc/table.h): only a line the engine took is learned."""
    if request.uri.scheme not in ACCEPTED_SCHEMES:
        return Rejection(416, "Unsupported URI Scheme")
    return None


def _method(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``answer`` (csrc/table.h): only a line the engine took is learned."""
    if request.method not in scenario.known_methods:
        return Rejection(501, "Not Implemented", [("Allow", ", ".join(scenario.allow))])
    return None


def _cseq_method(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h, ``chk_cseq_method``)."""
    if request.cseq[1] != request.method:
        return Rejection(400, "CSeq method does not match the request method")
    return None


def _expires(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h, ``chk_expires``)."""
    # Expires = "Expires" HCOLON delta-seconds; delta-seconds = 1*DIGIT (RFC 3261 20.19)
    expires = request.fields.get("expires")
    if expires is not None and not (expires[0].isdigit() and expires[0].isascii()):
        return Rejection(400, "Invalid Expires header field")
    return None


def _max_forwards(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h, ``chk_max_forwards``)."""
    # Only for scenarios that emulate a proxy: a UAS answers Max-Forwards 0 normally
    # (RFC 4475 3.3.11), so this check is off by default.
    value = request.get("max-forwards")
    if value is not None and value.strip().lstrip("0") == "" and value.strip():
        return Rejection(483, "Too Many Hops")
    return None


def _require(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h), which defers any Require."""
    # RFC 3261 8.2.2.3: 420 listing exactly the tags not understood. Proxy-Require is
    # addressed to proxies; a UAS ignores it.
    if "require" not in request.fields:
        return None
    supported = scenario.settings.supported
    unknown = [t for t in request.values("require") if t not in supported]
    if unknown == ["100rel"] and scenario.reliable:
        # A rule may send reliable provisionals (RFC 3262): the engine decides once
        # the rule is matched, with the same 420 when that rule does not.
        return None
    if unknown:
        return Rejection(420, "Bad Extension", [("Unsupported", ", ".join(unknown))])
    return None


def _content_type(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h, ``chk_content_type``, ``accepted``)."""
    # RFC 3261 8.2.3: 415 naming what the UAS does understand.
    if not request.body:
        return None
    accept = scenario.settings.accept
    ctype = (request.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype and "*/*" not in accept and ctype not in accept:
        return Rejection(415, "Unsupported Media Type", [("Accept", ", ".join(accept))])
    return None


def _content_encoding(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h), which defers any with a body."""
    if not request.body:
        return None
    accepted = scenario.settings.accept_encoding
    for encoding in request.values("content-encoding"):
        if encoding.lower() not in accepted:
            return Rejection(415, "Unsupported Media Type",
                             [("Accept-Encoding", ", ".join(accepted))])
    return None


def _content_language(request: Request, scenario: Scenario) -> Rejection | None:
    """Mirrored in C by ``scan`` (csrc/scan.h), which defers any with a body."""
    if not request.body:
        return None
    accepted = [lang.lower() for lang in scenario.settings.accept_language]
    for language in request.values("content-language"):
        lang = language.lower()
        if "*" not in accepted and lang not in accepted and lang.split("-")[0] not in accepted:
            return Rejection(415, "Unsupported Media Type",
                             [("Accept-Language", ", ".join(scenario.settings.accept_language))])
    return None


@dataclass(frozen=True, slots=True)
class CheckInfo:
    check: Check | None  # None: done by the parser or the engine, switched by name
    default: bool
    answer: str


# The switchable checks, in the order they run, with their default and their answer.
CHECKS: dict[str, CheckInfo] = {
    "version": CheckInfo(None, True, "505 for a SIP-Version other than SIP/2.0"),
    "content_length": CheckInfo(
        None, True, "400 when Content-Length is missing its body on UDP; off: the body is "
        "what the datagram holds"),
    "duplicate_headers": CheckInfo(_duplicates, True,
                                   "400 for a repeated To, From, Call-ID, CSeq, Max-Forwards "
                                   "or Content-Type"),
    "method": CheckInfo(_method, True, "501 with Allow for a method no rule names and no RFC "
                                       "defines"),
    "uri_scheme": CheckInfo(_uri_scheme, True, "416 for a Request-URI scheme other than sip, "
                                               "sips, tel"),
    "cseq_method": CheckInfo(_cseq_method, True, "400 when the CSeq method is not the "
                                                 "request's"),
    "expires": CheckInfo(_expires, True, "400 for an Expires that is not delta-seconds"),
    "max_forwards": CheckInfo(_max_forwards, False, "483 for Max-Forwards: 0 (proxy-like)"),
    "loop": CheckInfo(None, False, "482 for a merged request: same From tag, Call-ID and CSeq "
                                   "as a recent one, other branch (RFC 3261 8.2.2.2)"),
    "require": CheckInfo(_require, True, "420 with Unsupported for Require tags not in "
                                         "settings.supported"),
    "content_type": CheckInfo(_content_type, True, "415 with Accept for a body type not in "
                                                   "settings.accept"),
    "content_encoding": CheckInfo(_content_encoding, True,
                                  "415 with Accept-Encoding for an unknown Content-Encoding"),
    "content_language": CheckInfo(_content_language, False,
                                  "415 with Accept-Language for a Content-Language not in "
                                  "settings.accept_language"),
    "accept": CheckInfo(None, True, "406 when the request's Accept refuses the only body the "
                                    "response could carry (off: the body is left out)"),
}


def enabled_checks(switches: dict[str, bool]) -> tuple[Check, ...]:
    """The check functions to run, in order, given a scenario's switches."""
    out: list[Check] = [_structure]
    for name, info in CHECKS.items():
        if info.check is not None and switches.get(name, info.default):
            out.append(info.check)
    return tuple(out)


# Checks that look at the body only: a request without one skips them.
BODY_CHECKS = frozenset({_content_type, _content_encoding, _content_language})


def check_request(request: Request, scenario: Scenario) -> Refusal | None:
    error = request.error
    if error is not None:
        code, reason = error
        if not (code == 505 and not scenario.switch("version")):
            return Rejection(code, reason)
    for check in scenario.checks if request.body else scenario.bodyless_checks:
        rejection = check(request, scenario)
        if rejection is not None:
            return rejection
    return None
