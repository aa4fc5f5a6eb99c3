"""The ladder (sequence) diagram of journal entries, as data: lanes, calls, arrows.

Sans-I/O: journal entries in, a JSON-ready dict out (``GET /api/ladder``, which the
console draws). One lane per peer (transport + address:port, in order of first
appearance) and one for the responder; the entries grouped into calls by Call-ID;
one arrow per message (the request, then each response sent for it) in time order,
each with its label, class, delta from the previous arrow and the entry's outcome.
An arrow is a frame on the wire: a response sent again (Timer G until the ACK, the
last response for a retransmitted request) is one more arrow, of class
``retransmission`` and with ``retransmission`` true, so the ladder has the frames of a
live capture of the same exchange, in its order (the journal's times are stamped in
that order, in microseconds: journal/record.py ``Journal.stamp``).

A request the responder sent (``JournalEntry.direction`` "sent", the far end's) is
drawn the other way: from the responder's lane to the peer's, and what the client
answered back to the responder; its arrows carry ``"sent": true``.

Arrow ids are ``"<seq>.0"`` for an entry's request and ``"<seq>.<i + 1>"`` for its
response ``i`` (``response_index``), stable across reads while the entry exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..journal.record import JournalEntry
from ..uas.outcome import SENT

RESPONDER = "responder"  # the responder's lane id

# The arrow class of a status code, by its first digit (RFC 3261 7.2).
_CODE_CLASSES = {"1": "provisional", "2": "success", "3": "redirect", "4": "client-error",
                 "5": "server-error", "6": "global-error"}


def lane_id(transport: str, address: tuple[str, int]) -> str:
    """``udp:127.0.0.1:5061``, ``tcp:[::1]:5061``."""
    return f"{transport}:{_hostport(address)}"


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def status_line(response: bytes) -> tuple[int | None, str]:
    """The code and ``486 Busy Here`` of a response's octets; (None, a description)
    when they do not start with a status line (a fault's malformed octets)."""
    first = response.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    text = first.decode("latin-1")
    version, _, rest = text.partition(" ")
    code = rest[:3]
    if version.upper() != "SIP/2.0" or not code.isdigit() or rest[3:4] not in ("", " "):
        return None, f"(malformed response, {len(response)} octets)"
    return int(code), rest.strip()


def response_class(code: int | None) -> str:
    if code is None:
        return "server-error"  # malformed octets: drawn as an error, the outcome says fault
    return _CODE_CLASSES.get(str(code)[0], "server-error")


def request_label(entry: JournalEntry) -> str:
    """``INVITE sip:486@127.0.0.1``; for octets that never became a request, their size."""
    if entry.method is None:
        return f"(not a request, {len(entry.raw)} octets)"
    return f"{entry.method} {entry.uri}" if entry.uri else entry.method


def _request_class(entry: JournalEntry) -> str:
    if entry.kind == "absorbed":
        return "absorbed"
    if entry.kind == "retransmission":
        return "retransmission"
    return "request"


def _summary(entries: list[JournalEntry]) -> str:
    """``INVITE -> 180, 200; ACK; BYE (sent) -> 200``: each request (retransmissions
    left out, requests and responses alike) with the codes it got, or its outcome when
    it got none; one the responder sent says so."""
    parts = []
    for entry in entries:
        if entry.kind == "retransmission":
            continue
        what = entry.method or "?"
        if entry.direction == SENT:
            what += " (sent)"
        codes = [c for i, c in enumerate(status_line(r)[0] for r in entry.responses)
                 if c is not None and not entry.retransmission(i)]
        if codes:
            parts.append(f"{what} -> {', '.join(map(str, codes))}")
        elif entry.kind in ("absorbed", "answered", "sent"):
            parts.append(what)
        else:
            parts.append(f"{what} ({entry.kind})")
    return "; ".join(parts)


def ladder(entries: Iterable[JournalEntry]) -> dict[str, Any]:
    """The ladder model of ``entries`` (any order): see the module docstring."""
    ordered = sorted(entries, key=lambda e: e.seq)
    lanes: dict[str, dict[str, Any]] = {}
    locals_seen: list[str] = []
    calls: dict[str | None, list[JournalEntry]] = {}
    loose: list[tuple[str | None, list[JournalEntry]]] = []  # entries with no Call-ID
    arrows: list[dict[str, Any]] = []
    for entry in ordered:
        peer = lane_id(entry.transport, entry.remote)
        if peer not in lanes:
            lanes[peer] = {"id": peer, "kind": "peer",
                           "label": f"{_hostport(entry.remote)} ({entry.transport.upper()})"}
        local = f"{_hostport(entry.local)} ({entry.transport.upper()})"
        if entry.local[1] and local not in locals_seen:
            locals_seen.append(local)
        if entry.call_id is None:
            loose.append((None, [entry]))
        else:
            calls.setdefault(entry.call_id, []).append(entry)
        sent = entry.direction == SENT
        # A sent request goes from the responder to the peer, its answers come back.
        source, target = (RESPONDER, peer) if sent else (peer, RESPONDER)
        common = {"seq": entry.seq, "outcome": entry.kind, "call_id": entry.call_id,
                  "sent": sent}
        arrows.append({"id": f"{entry.seq}.0", "response_index": None, "from": source,
                       "to": target, "label": request_label(entry),
                       "class": _request_class(entry),
                       "retransmission": entry.kind == "retransmission",
                       "time": entry.time, **common})
        times = entry.response_times
        for i, response in enumerate(entry.responses):
            code, label = status_line(response)
            again = entry.retransmission(i)
            if entry.kind == "rejected":
                cls = "rejected"
            elif again or entry.kind == "retransmission":
                cls = "retransmission"
            else:
                cls = response_class(code)
            arrows.append({"id": f"{entry.seq}.{i + 1}", "response_index": i,
                           "from": target, "to": source, "label": label, "class": cls,
                           "retransmission": again,
                           "time": times[i] if i < len(times) else entry.time, **common})
    # Stable: a response sent in the same instant as its request stays after it.
    arrows.sort(key=lambda a: a["time"])
    previous: float | None = None
    for arrow in arrows:
        arrow["delta"] = 0.0 if previous is None else max(0.0, arrow["time"] - previous)
        previous = arrow["time"]
    responder = {"id": RESPONDER, "kind": "responder",
                 "label": "sipresponder" + (f" {', '.join(locals_seen)}" if locals_seen else "")}
    groups = [*calls.items(), *loose]
    groups.sort(key=lambda g: g[1][0].seq)
    return {
        "lanes": [*lanes.values(), responder],
        "calls": [_call(call_id, members) for call_id, members in groups],
        "arrows": arrows,
    }


def _call(call_id: str | None, entries: list[JournalEntry]) -> dict[str, Any]:
    last = max(max([e.time, *e.response_times]) for e in entries)
    return {"call_id": call_id, "first": entries[0].time, "last": last,
            "entries": [e.seq for e in entries], "summary": _summary(entries)}
