"""Protocol checks a UAS makes before any scenario rule sees a request (RFC 3261 8.2).

Each check returns a ``Rejection`` (status, reason, header fields the status needs)
or None. They run in the order RFC 3261 8.2 gives: method, headers, URI, extensions,
content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .sip.grammar import split_top_level
from .sip.headers import parse_via
from .sip.uri import URIError

if TYPE_CHECKING:
    from .scenario.model import Scenario
    from .sip.message import Request

# Header fields every request carries exactly once (RFC 3261 8.1.1; 7.3.1 allows only
# list-valued headers to repeat).
MANDATORY = (("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq"))
SINGLE = (*MANDATORY, ("max-forwards", "Max-Forwards"), ("content-type", "Content-Type"))
ACCEPTED_SCHEMES = ("sip", "sips", "tel")
# List-valued header fields the responder splits into values (RFC 3261 7.3.1) after
# this check: an unterminated quoted string or '<' in them must earn a 400 here.
SPLIT = (("contact", "Contact"), ("require", "Require"), ("accept", "Accept"),
         ("content-encoding", "Content-Encoding"))


@dataclass(slots=True)
class Rejection:
    code: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def check_request(request: Request, scenario: Scenario) -> Rejection | None:
    if request.error is not None:
        return Rejection(*request.error)
    fields = request.fields
    for key, name in MANDATORY:
        if key not in fields:
            return Rejection(400, f"Missing {name} header field")
    for key, name in SINGLE:
        rows = fields.get(key)
        if rows is not None and len(rows) > 1:
            return Rejection(400, f"Duplicate {name} header field")
    try:
        request.cseq  # noqa: B018 - parse now to reject a bad CSeq before the rules run
    except ValueError as exc:
        return Rejection(400, f"Invalid CSeq header field ({exc})")
    try:
        uri = request.uri
    except URIError as exc:
        return Rejection(400, f"Malformed Request-URI ({exc})")
    if uri.scheme not in ACCEPTED_SCHEMES:
        return Rejection(416, "Unsupported URI Scheme")
    for attr, name in (("to", "To"), ("from_", "From")):
        try:
            getattr(request, attr)
        except ValueError as exc:
            return Rejection(400, f"Malformed {name} header field ({exc})")
    for row in fields["via"]:
        try:
            values = split_top_level(row)
            if any(not v for v in values):
                raise ValueError("empty value")
            for value in values:
                parse_via(value)
        except ValueError:
            return Rejection(400, "Malformed Via header field")
    for key, name in SPLIT:
        try:
            request.values(key)
        except ValueError as exc:
            return Rejection(400, f"Malformed {name} header field ({exc})")
    if request.method not in scenario.known_methods:
        return Rejection(501, "Not Implemented", [("Allow", ", ".join(scenario.allow))])
    if request.cseq[1] != request.method:
        return Rejection(400, "CSeq method does not match the request method")
    expires = fields.get("expires")
    if expires is not None and not expires[0].isdigit():
        return Rejection(400, "Invalid Expires header field")
    settings = scenario.settings
    if "require" in fields:
        # RFC 3261 8.2.2.3: 420 listing exactly the tags not understood. Proxy-Require
        # is addressed to proxies; a UAS ignores it.
        unknown = [t for t in request.values("require") if t not in settings.supported]
        if unknown:
            return Rejection(420, "Bad Extension", [("Unsupported", ", ".join(unknown))])
    if request.body:
        # RFC 3261 8.2.3: 415 naming what the UAS does understand.
        ctype = (request.get("content-type") or "").split(";", 1)[0].strip().lower()
        if ctype and "*/*" not in settings.accept and ctype not in settings.accept:
            return Rejection(415, "Unsupported Media Type",
                             [("Accept", ", ".join(settings.accept))])
        for encoding in request.values("content-encoding"):
            if encoding.lower() not in settings.accept_encoding:
                return Rejection(415, "Unsupported Media Type",
                                 [("Accept-Encoding", ", ".join(settings.accept_encoding))])
    return None
