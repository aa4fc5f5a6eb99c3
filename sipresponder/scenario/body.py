"""The request body as rule conditions and templates read it: its text and its offer.

The offer is parsed only when a condition or a template asks, once per request: a
one-entry cache keyed by the request object itself (held, so its identity cannot be
reused) serves every SDP condition of every rule tried and the templates rendered
right after. Rules without body conditions never come here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sip.sdp import OfferSummary, read_offer

if TYPE_CHECKING:
    from ..sip.message import Request

_last: tuple[object, OfferSummary | None] = (None, None)


def body_text(request: Request) -> str:
    """The body decoded as UTF-8, undecodable octets replaced (U+FFFD), never an error."""
    return request.body.decode("utf-8", "replace")


def is_sdp(request: Request) -> bool:
    """Whether the request carries a body whose Content-Type is application/sdp."""
    if not request.body:
        return False
    ctype = request.get("content-type")
    return ctype is not None and ctype.partition(";")[0].strip().lower() == "application/sdp"


def offer(request: Request) -> OfferSummary | None:
    """The request's SDP summary; None when the body is not application/sdp or not SDP."""
    global _last
    cached_request, summary = _last
    if cached_request is request:
        return summary
    summary = read_offer(request.body) if is_sdp(request) else None
    # One tuple assignment: a reader never sees one request paired with another's offer.
    _last = (request, summary)
    return summary
