"""What ``Engine.handle`` made of one message, for the transport and for a recorder.

A transport calls ``Engine.handle(data, source, now)``, writes ``outcome.sends``
and gives the whole ``Outcome`` to its ``Recorder``, if it has one (the testing
journal's ``record``). The engine knows nothing of who records: no side channel.
Kept apart from ``events`` (Source, Send), which the scenario's conditions import:
an Outcome names rules and transactions, which sit above them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario.model import Rule, Scenario
    from ..sip.message import Request
    from .events import Send, Source
    from .plan import ResponsePlan
    from .transactions import Transaction


class Outcome:
    """What ``Engine.handle`` did with one message.

    ``note`` says why no rule answered ("rejected: 400 ...", "dropped: ...",
    "retransmission: ..."); None means ``rule`` answered. ``request`` is None when
    the octets never became one (dropped before or by the parser, or an internal
    error). ``transaction`` is the stateful transaction the request started, if
    any: the responses it sends later (timer steps, a 487 after CANCEL, Timer G's
    retransmissions) go to its ``responses`` list, the same list for the whole life of
    the transaction. ``ended`` is the INVITE transaction a CANCEL ended: the 487 among
    ``sends`` is that transaction's response, not this message's, and joined its list
    unannounced; a recorder announces it (``Transaction.on_response``) after it has
    recorded this message, the order the wire shows. ``plan`` is the compiled response
    the one stateless answer was rendered from, as is (its code and header lines), for
    the compiled path to learn from (``FastPath.learn``); None for every other answer.

    A plain __slots__ class built once per message, positionally: the stateless
    path pays for one allocation and nothing else.
    """

    __slots__ = (
        "data",
        "ended",
        "note",
        "plan",
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
        ended: Transaction | None = None,
        plan: ResponsePlan | None = None,
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
        self.ended = ended
        self.plan = plan

    @property
    def kind(self) -> str:
        """One word for what became of the message, one of ``KINDS``."""
        return note_kind(self.note, self.rule is not None)

    def __repr__(self) -> str:
        what = self.note if self.note is not None else self.rule.label if self.rule else ""
        return f"<Outcome {what!r}: {len(self.sends)} send(s)>"


KINDS = ("answered", "absorbed", "retransmission", "not-answered", "cancelled", "fault",
         "rejected", "dropped", "sent")
# A journal entry's direction, and the kind of one the responder sent (never an
# Outcome's: the engine handles what arrives; the far end, uac/, sends).
SENT = "sent"
RECEIVED = "received"
DIRECTIONS = (RECEIVED, SENT)
# The note of a response to a request the far end sent (uac/farend.py): it joins the
# sent request's journal entry instead of making one (Journal.record skips it).
RESPONSE_NOTE = "response to a request the far end sent"
# What a journal entry's outcome reads once a CANCEL ended its INVITE (never an
# Outcome's note: the INVITE was handled before the CANCEL came).
CANCELLED = "cancelled"
_NOTE_KINDS = (
    ("ACK absorbed", "absorbed"),
    (CANCELLED, "cancelled"),
    ("retransmission", "retransmission"),
    ("not answered", "not-answered"),
    ("rejected", "rejected"),
    ("dropped", "dropped"),
)


def note_kind(note: str | None, has_rule: bool) -> str:
    """One of ``KINDS`` (the console draws each differently) for an Outcome's ``note``
    and whether a rule matched: read off the note, which the engine writes in these
    words."""
    if note is None:
        # No rule and no note: an internal error cost the message (nothing sent).
        return "answered" if has_rule else "dropped"
    for prefix, kind in _NOTE_KINDS:
        if note.startswith(prefix):
            return kind
    if "fault:" in note:  # "fault: truncated", "choice[1]; fault: ..."
        return "fault"
    return "answered"  # "CANCEL of a pending INVITE", "choice[0]", "sent twice"


# Called by the transport with every Outcome it got from the engine (the testing
# journal's ``record``); None in production, where nothing is recorded.
Recorder = Callable[[Outcome], None]


# Called by the transport with what the compiled path answered without an Outcome
# (Journal.record_answered): octets, source, time, scenario, the rule that answered,
# the response sent, and a note (an absorbed ACK has no rule and no response).
AnsweredRecorder = Callable[
    [bytes, "Source", float, "Scenario", "Rule | None", "bytes | None", "str | None"], None
]
