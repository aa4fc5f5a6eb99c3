"""What goes in and out of the core: plain data, no sockets.

A transport turns an arrival into a ``Source`` and octets, calls
``Engine.handle(data, source, now)`` and gets an ``Outcome`` back: the ``Send``
list to write, and what the engine made of the request, for whoever records it (the
testing journal, through a ``Recorder`` the transport is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sip.transports import Transport

if TYPE_CHECKING:
    from ..scenario.model import Rule, Scenario
    from ..sip.message import Request
    from .transactions import Transaction


@dataclass(slots=True, frozen=True)
class Source:
    """The arrival of one message.

    ``conn`` identifies the stream connection it came on (None for UDP), so that a
    response on TCP goes back on the same connection (RFC 3261 18.2.2).
    """

    transport: Transport
    remote: tuple[str, int]
    local: tuple[str, int]
    conn: int | None = None


@dataclass(slots=True)
class Send:
    """Octets to write: to ``remote`` over UDP, or on connection ``conn`` over TCP."""

    data: bytes
    transport: Transport
    remote: tuple[str, int]
    conn: int | None = None
    close_after: bool = False


class Outcome:
    """What ``Engine.handle`` did with one message.

    ``note`` says why no rule answered ("rejected: 400 ...", "dropped: ...",
    "retransmission: ..."); None means ``rule`` answered. ``request`` is None when
    the octets never became one (dropped before or by the parser, or an internal
    error). ``transaction`` is the stateful transaction the request started, if
    any: the responses it sends later (timer steps, a 487 after CANCEL) go to its
    ``responses`` list, the same list for the whole life of the transaction.

    A plain __slots__ class built once per message, positionally: the stateless
    path pays for one allocation and nothing else.
    """

    __slots__ = (
        "data",
        "note",
        "request",
        "rule",
        "scenario",
        "sends",
        "source",
        "time",
        "transaction",
    )

    def __init__(
        self,
        data: bytes,
        source: Source,
        time: float,
        scenario: Scenario,
        sends: list[Send],
        request: Request | None,
        rule: Rule | None,
        note: str | None,
        transaction: Transaction | None = None,
    ) -> None:
        self.data = data
        self.source = source
        self.time = time
        self.scenario = scenario  # the one the whole message was handled with
        self.sends = sends
        self.request = request
        self.rule = rule
        self.note = note
        self.transaction = transaction

    def __repr__(self) -> str:
        what = self.note if self.note is not None else self.rule.label if self.rule else ""
        return f"<Outcome {what!r}: {len(self.sends)} send(s)>"


# Called by the transport with every Outcome it got from the engine (the testing
# journal's ``record``); None in production, where nothing is recorded.
Recorder = Callable[[Outcome], None]
