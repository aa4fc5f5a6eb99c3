"""Client transactions (RFC 3261 17.1, RFC 6026), sans-I/O.

A request the far end sends lives in a client transaction: over UDP it is
retransmitted (Timer A for INVITE, doubling; Timer E for the rest, capped at T2), it
times out (Timer B / F: 64*T1, reported to the TU like a 408, 17.1.1.2), and a
retransmitted final response is absorbed (Timer D / K). An INVITE's non-2xx final
gets its ACK from the transaction itself (17.1.1.3); a 2xx goes up to the TU, whose
dialog ACKs it, and so do the 2xx retransmissions of the next 64*T1 (Timer M, the
"Accepted" state of RFC 6026).

Time is passed in, never read, as on the UAS side (uas/transactions.py): the caller
asks ``next_deadline()`` and calls ``fire(now)`` once it passes. Every call returns
an ``Actions``: the octets to send and the events for the TU.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Literal

from ..sip.headers import MAGIC_COOKIE
from ..sip.message import parse_request
from ..sip.transports import Transport
from ..uas.events import Send
from .responses import Response, parse_response

T1 = 0.5  # RTT estimate (RFC 3261 17.1.1.1)
T2 = 4.0  # the longest interval between non-INVITE retransmissions
T4 = 5.0  # how long a message may stay in the network (Timer K)
TIMER_D = 32.0  # RFC 3261 17.1.1.2: "at least 32 seconds" over unreliable transports


@dataclass(slots=True, frozen=True)
class Timers:
    """T1, T2, T4 and Timer D over unreliable transports, in seconds."""

    t1: float = T1
    t2: float = T2
    t4: float = T4
    d: float = TIMER_D

    def __post_init__(self) -> None:
        # A zero interval would retransmit forever within one fire(now).
        for name in ("t1", "t2", "t4", "d"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"timer {name} must be a positive number of seconds, not {value}")


@dataclass(slots=True, frozen=True)
class Destination:
    """Where the request goes: ``remote`` over ``transport``, on stream connection
    ``conn`` when one is to be reused (None: UDP, or the adapter opens one)."""

    transport: Transport
    remote: tuple[str, int]
    conn: int | None = None

    @property
    def reliable(self) -> bool:
        # RFC 3261 17.1.1.2 / 17.1.2.2: only UDP is retransmitted by the transaction.
        return self.transport != "udp"

    def send(self, data: bytes) -> Send:
        return Send(data, self.transport, self.remote, self.conn)


@dataclass(slots=True, frozen=True)
class ClientRequest:
    """The request a transaction sends: its octets, as the dialog (or the TU) built
    them, and what identifies the transaction: the top Via's branch and the CSeq."""

    data: bytes
    method: str
    branch: str
    cseq: int

    @property
    def key(self) -> TxnKey:
        return (self.branch, self.method)


TxnKey = tuple[str, str]  # (top Via branch, CSeq method): RFC 3261 17.1.3

State = Literal["calling", "trying", "proceeding", "accepted", "completed", "terminated"]


# -- what the TU is told ----------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Received:
    """A response passed up to the TU (a provisional, the final, or for INVITE a 2xx
    retransmission in Accepted)."""

    key: TxnKey
    response: Response


@dataclass(slots=True, frozen=True)
class TimedOut:
    """Timer B or F fired with no final response: for the TU a 408 (17.1.1.2)."""

    key: TxnKey
    timer: Literal["B", "F"]
    status: int = 408


@dataclass(slots=True, frozen=True)
class TransportFailed:
    """The transport could not carry the request (17.1.4): for the TU a 503 (8.1.3.1)."""

    key: TxnKey
    reason: str
    status: int = 503


@dataclass(slots=True, frozen=True)
class Terminated:
    """The transaction is over and forgotten (its table entry is gone)."""

    key: TxnKey


Event = Received | TimedOut | TransportFailed | Terminated


@dataclass(slots=True)
class Actions:
    sends: list[Send] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def extend(self, other: Actions) -> None:
        self.sends.extend(other.sends)
        self.events.extend(other.events)


def new_branch(rng: random.Random) -> str:
    """A branch for a new transaction (RFC 3261 8.1.1.7): the magic cookie and 64
    random bits. ``rng``: random.SystemRandom() in production, seeded in tests."""
    return f"{MAGIC_COOKIE}{rng.getrandbits(64):016x}"


# -- the transactions -------------------------------------------------------------------


class ClientTransaction:
    """What both kinds share: the request, where it goes, the state and the timers
    (by name, each a deadline)."""

    __slots__ = ("deadlines", "destination", "interval", "queued", "request", "state", "timers")

    def __init__(self, request: ClientRequest, destination: Destination,
                 timers: Timers = Timers()) -> None:
        self.request = request
        self.destination = destination
        self.timers = timers
        self.state: State = "terminated"
        self.deadlines: dict[str, float] = {}
        self.interval = timers.t1  # of the pending retransmission timer (A or E)
        self.queued: float | None = None  # the deadline ClientTransactions last queued

    @property
    def key(self) -> TxnKey:
        return self.request.key

    def next_deadline(self) -> float | None:
        return min(self.deadlines.values()) if self.deadlines else None

    def fire(self, now: float) -> Actions:
        """Fire every timer due by ``now``, earliest first."""
        out = Actions()
        while self.deadlines and self.state != "terminated":
            name, when = min(self.deadlines.items(), key=lambda item: item[1])
            if when > now:
                break
            del self.deadlines[name]
            # The next retransmission counts from now: a clock that stalled gets one
            # late copy, not the burst of every copy it missed.
            out.extend(self._timer(name, now))
        return out

    def transport_error(self, reason: str) -> Actions:
        """The transport reported the request undeliverable (17.1.4)."""
        if self.state == "terminated":
            return Actions()
        return self._terminate(Actions(events=[TransportFailed(self.key, reason)]))

    def _terminate(self, out: Actions) -> Actions:
        self.state = "terminated"
        self.deadlines.clear()
        out.events.append(Terminated(self.key))
        return out

    def _retransmit(self, name: str, now: float, interval: float) -> Actions:
        self.interval = interval
        self.deadlines[name] = now + interval
        return Actions(sends=[self.destination.send(self.request.data)])

    def _timer(self, name: str, now: float) -> Actions:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self, now: float) -> Actions:  # pragma: no cover - abstract
        raise NotImplementedError

    def receive(self, response: Response, now: float) -> Actions:  # pragma: no cover
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 17.1.1 (figure 5) with RFC 6026's Accepted state."""

    __slots__ = ("ack",)

    def __init__(self, request: ClientRequest, destination: Destination,
                 timers: Timers = Timers()) -> None:
        super().__init__(request, destination, timers)
        self.ack: bytes | None = None

    def start(self, now: float) -> Actions:
        self.state = "calling"
        t1 = self.timers.t1
        if not self.destination.reliable:
            self.deadlines["A"] = now + t1
        self.deadlines["B"] = now + 64 * t1
        return Actions(sends=[self.destination.send(self.request.data)])

    def receive(self, response: Response, now: float) -> Actions:
        state = self.state
        code = response.status
        if state in ("calling", "proceeding"):
            if code < 200:
                self.state = "proceeding"
                self.deadlines.clear()  # no more A; B only bounds Calling
                return Actions(events=[Received(self.key, response)])
            if code < 300:
                # RFC 6026 8.4: Accepted; the dialog ACKs, later 2xx go up too.
                self.state = "accepted"
                self.deadlines = {"M": now + 64 * self.timers.t1}
                return Actions(events=[Received(self.key, response)])
            self.ack = build_ack(self.request.data, self.request.cseq, response)
            out = Actions(sends=[self.destination.send(self.ack)],
                          events=[Received(self.key, response)])
            if self.destination.reliable:
                return self._terminate(out)  # Timer D is 0 (17.1.1.2)
            self.state = "completed"
            self.deadlines = {"D": now + self.timers.d}
            return out
        if state == "accepted" and 200 <= code < 300:
            return Actions(events=[Received(self.key, response)])
        if state == "completed" and code >= 300 and self.ack is not None:
            return Actions(sends=[self.destination.send(self.ack)])
        return Actions()  # a late provisional or a stray final: absorbed

    def _timer(self, name: str, now: float) -> Actions:
        if name == "A":
            return self._retransmit("A", now, 2 * self.interval)
        if name == "B":
            return self._terminate(Actions(events=[TimedOut(self.key, "B")]))
        return self._terminate(Actions())  # D or M


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 17.1.2 (figure 6)."""

    __slots__ = ()

    def start(self, now: float) -> Actions:
        self.state = "trying"
        t1 = self.timers.t1
        if not self.destination.reliable:
            self.deadlines["E"] = now + t1
        self.deadlines["F"] = now + 64 * t1
        return Actions(sends=[self.destination.send(self.request.data)])

    def receive(self, response: Response, now: float) -> Actions:
        if self.state not in ("trying", "proceeding"):
            return Actions()  # Completed absorbs retransmitted finals
        if response.status < 200:
            self.state = "proceeding"
            return Actions(events=[Received(self.key, response)])
        out = Actions(events=[Received(self.key, response)])
        if self.destination.reliable:
            return self._terminate(out)  # Timer K is 0 (17.1.2.2)
        self.state = "completed"
        self.deadlines = {"K": now + self.timers.t4}
        return out

    def _timer(self, name: str, now: float) -> Actions:
        if name == "E":
            t2 = self.timers.t2
            # 17.1.2.2: doubling up to T2 in Trying; T2 from Proceeding on.
            interval = t2 if self.state == "proceeding" else min(2 * self.interval, t2)
            return self._retransmit("E", now, interval)
        if name == "F":
            return self._terminate(Actions(events=[TimedOut(self.key, "F")]))
        return self._terminate(Actions())  # K


def build_ack(invite: bytes, cseq: int, response: Response) -> bytes:
    """The ACK of a non-2xx final to ``invite`` (RFC 3261 17.1.1.3): its Request-URI,
    Call-ID, From, the single top Via and the Route header fields of the INVITE, the
    To of the response (with its tag), the CSeq number ``cseq`` with method ACK."""
    request = parse_request(invite, datagram=True)
    lines = [f"ACK {request.uri_raw} SIP/2.0"]
    vias = request.via_values
    if vias:
        lines.append(f"Via: {vias[0]}")
    lines.append("Max-Forwards: 70")
    for route in request.rows("route"):
        lines.append(f"Route: {route}")
    for name, value in (("From", request.get("from")), ("To", response.get("to")),
                        ("Call-ID", request.get("call-id"))):
        if value is not None:
            lines.append(f"{name}: {value}")
    lines.append(f"CSeq: {cseq} ACK")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def build_cancel(invite: bytes) -> bytes:
    """The CANCEL of ``invite`` (RFC 3261 9.1): "The Request-URI, Call-ID, To, the
    numeric part of CSeq, and From header fields in the CANCEL request MUST be
    identical to those in the request being cancelled, including tags. A CANCEL
    constructed by a client MUST have only a single Via header field value matching
    the top Via value in the request being cancelled", and its Route header fields."""
    request = parse_request(invite, datagram=True)
    lines = [f"CANCEL {request.uri_raw} SIP/2.0"]
    vias = request.via_values
    if vias:
        lines.append(f"Via: {vias[0]}")
    lines.append("Max-Forwards: 70")
    for route in request.rows("route"):
        lines.append(f"Route: {route}")
    for name in ("From", "To", "Call-ID"):
        value = request.get(name.lower())
        if value is not None:
            lines.append(f"{name}: {value}")
    lines.append(f"CSeq: {request.cseq[0]} CANCEL")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class TooManyTransactions(Exception):
    """The table is full: a new request must wait or be given up."""


class ClientTransactions:
    """The live client transactions by (branch, CSeq method), their timers, and
    responses routed to them (RFC 3261 17.1.3). At most ``max_transactions``."""

    def __init__(self, timers: Timers = Timers(), max_transactions: int = 10_000) -> None:
        self.timers = timers
        self.max_transactions = max_transactions
        self.table: dict[TxnKey, ClientTransaction] = {}
        # (deadline, order, key); an entry whose deadline is no longer its
        # transaction's is skipped when it surfaces.
        self._heap: list[tuple[float, int, TxnKey]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self.table)

    def get(self, key: TxnKey) -> ClientTransaction | None:
        return self.table.get(key)

    def start(self, request: ClientRequest, destination: Destination, now: float) -> Actions:
        """Start a transaction for ``request`` and send it. Raises TooManyTransactions
        when the table is full, ValueError when the key is already live or the branch
        lacks the magic cookie (17.1.3 matches on it alone)."""
        if len(self.table) >= self.max_transactions:
            raise TooManyTransactions(
                f"client transaction limit ({self.max_transactions}) reached")
        if not request.branch.startswith(MAGIC_COOKIE):
            raise ValueError(f"branch {request.branch!r} lacks the z9hG4bK magic cookie")
        if request.method == "ACK":
            raise ValueError("an ACK is sent outside any client transaction (17.1.1.3)")
        if not request.data.startswith(f"{request.method} ".encode("latin-1")):
            raise ValueError(f"the octets of a {request.method} do not start with its method")
        if request.key in self.table:
            raise ValueError(f"a client transaction {request.key} is already live")
        kind = InviteClientTransaction if request.method == "INVITE" else (
            NonInviteClientTransaction)
        txn = kind(request, destination, self.timers)
        self.table[txn.key] = txn
        return self._after(txn, txn.start(now))

    def receive(self, data: bytes | Response, now: float) -> Actions | None:
        """Route a received response to its transaction. None: it matches none (or
        does not parse), and goes to the core as a stray (17.1.3, 18.1.2)."""
        if isinstance(data, Response):
            response = data
        else:
            try:
                response = parse_response(data)
            except ValueError:
                return None
        txn = self.table.get((response.branch, response.cseq[1]))
        if txn is None:
            return None
        return self._after(txn, txn.receive(response, now))

    def transport_error(self, key: TxnKey, reason: str) -> Actions:
        txn = self.table.get(key)
        if txn is None:
            return Actions()
        return self._after(txn, txn.transport_error(reason))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> Actions:
        out = Actions()
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._current(entry):
                continue
            txn = self.table[entry[2]]
            txn.queued = None  # popped: whatever its deadline is now gets queued again
            out.extend(self._after(txn, txn.fire(now)))
        return out

    def _current(self, entry: tuple[float, int, TxnKey]) -> bool:
        txn = self.table.get(entry[2])
        return txn is not None and txn.next_deadline() == entry[0]

    def _after(self, txn: ClientTransaction, actions: Actions) -> Actions:
        if txn.state == "terminated":
            if self.table.get(txn.key) is txn:
                del self.table[txn.key]
        else:
            deadline = txn.next_deadline()
            # Pushed only when it moved: retransmitted responses must not grow the heap.
            if deadline is not None and deadline != txn.queued:
                txn.queued = deadline
                heapq.heappush(self._heap, (deadline, next(self._order), txn.key))
        return actions
