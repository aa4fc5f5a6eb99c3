"""One request the responder sent, and what came back: the wire of a client
transaction, as the journal keeps it (``Journal.record_sent``).

The far end (uac/farend.py) makes an ``Exchange`` for every request it sends (an ACK
included), tells its listeners before the octets leave, and adds each response its
client transaction receives with ``received``; the journal entry shares the lists,
as a received request's entry shares its server transaction's (uas/transactions.py),
so a response that arrives later shows in it without the core knowing the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..sip.transports import Transport


@dataclass(slots=True, eq=False)
class Exchange:
    """``data``: the request's octets as first sent, ``method`` its method, sent over
    ``transport`` from ``local`` to ``remote``; ``call_id`` its Call-ID. ``responses``
    holds the octets of every response received for it, in order; ``retransmitted``
    (parallel) marks a response that repeats one already received (a 2xx
    retransmission before our ACK). ``resent`` counts the request's own
    retransmissions (Timers A and E). ``note`` says why it was sent ("rule 'hangup'
    (#2), step 1", "admin API") and, once over, how it ended when no final came
    ("timed out (Timer F)", "transport failed: ..."). ``on_response``: told after
    each response joins (the journal stamps and announces it)."""

    data: bytes
    method: str
    transport: Transport
    remote: tuple[str, int]
    local: tuple[str, int]
    call_id: str
    note: str = ""
    responses: list[bytes] = field(default_factory=list)
    retransmitted: list[bool] = field(default_factory=list)
    resent: int = 0
    on_response: Callable[[], None] | None = None

    def received(self, data: bytes, *, repeat: bool = False) -> None:
        self.responses.append(data)
        self.retransmitted.append(repeat)
        if self.on_response is not None:
            self.on_response()

    def ended(self, note: str) -> None:
        """No final came: say why (a timeout, a transport failure), and tell."""
        self.note = f"{self.note}; {note}" if self.note else note
        if self.on_response is not None:
            self.on_response()

    @property
    def codes(self) -> list[int]:
        """The status codes received, retransmissions left out."""
        return [int(r[8:11]) for r, again in zip(self.responses, self.retransmitted, strict=True)
                if r[8:11].isdigit() and not again]


# Told of each request the far end sends, before its octets leave (Journal.record_sent).
SentRecorder = Callable[[Exchange], None]

__all__ = ["Exchange", "SentRecorder"]
