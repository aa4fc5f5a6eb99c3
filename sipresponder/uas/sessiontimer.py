"""Session timers (RFC 4028) on the answering side, sans-I/O: what a rule with
``session_timer`` answers an INVITE or UPDATE with.

    Session-Expires  =  ("Session-Expires" / "x") HCOLON delta-seconds
                        *(SEMI se-params)
    se-params        =  refresher-param / generic-param
    refresher-param  =  "refresher" EQUAL  ("uas" / "uac")
    Min-SE  =  "Min-SE" HCOLON delta-seconds *(SEMI generic-param)
                                                      (RFC 4028 4, 5)

RFC 4028 9 (UAS behaviour), as ``negotiate`` follows it:
- a Session-Expires below our minimum gets "422 Session Interval Too Small" with our
  Min-SE ("the UAS MUST reject it with a 422 ... MUST contain a Min-SE header field");
- else the 2xx carries Session-Expires with the interval asked for (or, when the
  request named none, ours, at least its Min-SE) and a refresher: the request's when
  it named one ("the UAS MUST set the refresher parameter ... to the same value"),
  else ours, and "uas" when the client does not support the extension (it cannot
  refresh); and "Require: timer" when the client listed ``timer`` in Supported.

The far end (uac/farend.py) then refreshes at half the interval when it is the
refresher, and sends BYE when no refresh came by the interval less min(32, one
third of it) when it is not (RFC 4028 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip.abnf import parse_params

if TYPE_CHECKING:
    from ..scenario.model import SessionTimer
    from ..sip.message import Request

TOO_SMALL = (422, "Session Interval Too Small")
# The requests a session timer negotiates on (RFC 4028 7, 9: INVITE and UPDATE).
SESSION_METHODS = frozenset({"INVITE", "UPDATE"})


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the 2xx says: the session interval in seconds and who refreshes, and
    the header lines that say it."""

    interval: int
    refresher: str  # "uas" or "uac"
    lines: bytes

    def refresh_at(self) -> float:
        """When the refresher sends its refresh (RFC 4028 10: half the interval)."""
        return self.interval / 2

    def expires_at(self) -> float:
        """When the other side gives up without a refresh: the interval less
        min(32, interval/3) (RFC 4028 10)."""
        return self.interval - min(32.0, self.interval / 3)


def _delta(value: str) -> tuple[int, dict[str, str | None]] | None:
    head, _, rest = value.partition(";")
    head = head.strip()
    if not head.isdigit() or len(head) > 10:
        return None
    try:
        params = dict(parse_params(rest)) if rest else {}
    except ValueError:
        params = {}
    return int(head), {k.lower(): v for k, v in params.items()}


def negotiate(timer: SessionTimer, request: Request) -> Negotiated | tuple[int, str, str]:
    """The answer's Session-Expires for ``request`` under ``timer``, or a refusal:
    (code, reason, Min-SE value)."""
    supported = "timer" in {t.lower() for t in request.values("supported")}
    asked = request.get("session-expires") or request.get("x")
    their_min = _delta(request.get("min-se") or "")
    floor = max(timer.min_se, their_min[0] if their_min else 0)
    refresher = timer.refresher if supported else "uas"
    if asked is not None:
        parsed = _delta(asked)
        if parsed is None:
            return 400, "Bad Session-Expires", ""
        interval, params = parsed
        if interval < timer.min_se:
            return TOO_SMALL[0], TOO_SMALL[1], str(floor)
        named = (params.get("refresher") or "").lower()
        if named in ("uas", "uac"):
            refresher = named
    else:
        interval = max(timer.interval, floor)
    if refresher == "uac" and not supported:
        refresher = "uas"  # a client without the extension cannot refresh
    lines = f"Session-Expires: {interval};refresher={refresher}\r\n"
    if supported:
        lines += "Require: timer\r\n"
    return Negotiated(interval, refresher, lines.encode())


def with_lines(data: bytes, lines: bytes) -> bytes:
    """``data`` (a response) with header ``lines`` added at the end of its header
    section; octets that have no header section end come back as they are."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data
    return data[:end + 2] + lines + data[end + 2:]
