"""Reliable provisional responses, the UAS side of RFC 3262 (100rel and PRACK).

A rule with ``reliable = true`` answering an INVITE whose Supported or Require lists
``100rel`` sends each provisional response but 100 reliably: with ``Require: 100rel``
and ``RSeq``, retransmitted (over UDP) until a PRACK names it, one at a time, the final
response held until the last one is acknowledged. ``Reliable`` is that state of one
INVITE transaction; ``uas/transactions.py`` drives it with its timers and matches the
PRACKs. Plain data and pure functions: no clock, no socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sip.abnf import TOKEN

if TYPE_CHECKING:
    from ..sip.headers import Via
    from ..sip.message import Request
    from ..sip.response import Echo
    from .events import Send, Source

TAG = "100rel"
# RFC 3262 3: RSeq starts anywhere in 1 .. 2**31 - 1; it is a 32-bit number.
RSEQ_START_MAX = 2**31 - 1
RSEQ_MAX = 2**32 - 1


def offers_100rel(request: Request) -> bool:
    """Whether the request supports or requires 100rel (RFC 3262 3)."""
    return _lists_100rel(request, "supported") or _lists_100rel(request, "require")


def requires_100rel(request: Request) -> bool:
    return _lists_100rel(request, "require")


def _lists_100rel(request: Request, key: str) -> bool:
    """Whether header ``key`` lists 100rel; a list that does not split (an open quote:
    validation refuses it in Require, nothing checks Supported) lists nothing."""
    if key not in request.fields:
        return False
    try:
        return TAG in request.values(key)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class RAck:
    """RAck = response-num LWS CSeq-num LWS Method (RFC 3262 7.2)."""

    rseq: int
    cseq: int
    method: str


def parse_rack(value: str | None) -> RAck:
    """The RAck of a PRACK; ValueError naming what is wrong (one line)."""
    if value is None:
        raise ValueError("no RAck header field")
    parts = value.split()
    if len(parts) != 3:
        raise ValueError("want 'response-num CSeq-num Method'")
    rseq, cseq, method = parts
    for name, number in (("response-num", rseq), ("CSeq-num", cseq)):
        if not (number.isascii() and number.isdigit()) or len(number) > 10:
            raise ValueError(f"{name} is not a 32-bit number")
        if int(number) > RSEQ_MAX:
            raise ValueError(f"{name} is over 2**32-1")
    if not TOKEN.fullmatch(method):
        raise ValueError("the method is not a token")
    return RAck(int(rseq), int(cseq), method)


def mark(send: Send, rseq: int) -> Send:
    """``send`` (a provisional response) made reliable: ``Require: 100rel`` and its
    ``RSeq`` right after the status line. An empty one (withheld) stays empty."""
    data = send.data
    end = data.find(b"\r\n")
    if end < 0:
        return send
    send.data = b"%s\r\nRequire: 100rel\r\nRSeq: %d%s" % (data[:end], rseq, data[end:])
    return send


# A held step: what the transaction sends once the outstanding provisional is PRACKed.
Step = Callable[[float], "list[Send]"]


@dataclass(slots=True)
class Reliable:
    """One INVITE transaction's reliable provisionals: the next RSeq, the one
    outstanding (at most one: RFC 3262 3), its timers, the steps held behind it, and
    the PRACKs already answered (so that a retransmitted one gets its 200 again)."""

    rseq: int  # the RSeq of the next reliable provisional
    tag: str  # our To tag: a PRACK's To must carry it
    source: Source
    via: Via
    echo: Echo
    unacked: Send | None = None
    unacked_rseq: int = 0
    timers: list[int] = field(default_factory=list)  # retransmission and give-up
    held: list[Step] = field(default_factory=list)
    answered: dict[tuple[str, ...], Send] = field(default_factory=dict)
