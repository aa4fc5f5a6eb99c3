"""The requests `sipresponder ping` sends, pure: one per method, and for an INVITE the
ACK, BYE or CANCEL that RFC 3261 makes the caller send after it.

Each request carries what its method needs to be well-formed and harmless to a real
server: an INVITE offers inactive audio on the discard port, a REGISTER carries no
Contact (a query of the bindings, RFC 3261 10.2.3, which changes nothing), a
SUBSCRIBE has ``Expires: 0`` (a fetch, RFC 6665 4.1.2.4), a MESSAGE a short text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .. import __version__

# A request's answer is another request (ACK) or needs an INVITE in progress (CANCEL):
# neither makes a ping of its own.
NOT_PINGABLE: Final = {"ACK": "an ACK is never answered", "CANCEL": "a CANCEL needs an INVITE "
                       "in progress (ping --method INVITE sends one when it gives up)"}
# Methods that set up a dialog or a subscription carry a Contact (RFC 3261 8.1.1.8,
# RFC 6665 4.1.2.1, 4.1.3); OPTIONS has one to say where the pinger can be reached.
_WITH_CONTACT: Final = frozenset({"OPTIONS", "INVITE", "SUBSCRIBE", "NOTIFY", "REFER"})
# An event package every presence server knows (RFC 3856), for the event methods.
_EVENT: Final = "presence"
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")  # RFC 3261 25.1 token
_USERINFO = re.compile(r"(sips?:)[^@;?]*@", re.IGNORECASE)


def method_name(text: str) -> str:
    """The method ``--method`` names, upper-cased; ValueError for one ping cannot send."""
    name = text.strip().upper()
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"{text!r} is not a SIP method name")
    if name in NOT_PINGABLE:
        raise ValueError(f"{name} cannot be pinged: {NOT_PINGABLE[name]}")
    return name


@dataclass(frozen=True, slots=True)
class Leg:
    """What the requests of one ping share: the transport, the Request-URI, who sends
    (its address for Via and Contact) and the identifiers RFC 3261 8.1.1 asks for."""

    transport: str  # upper case, for the Via
    uri: str
    local: tuple[str, int]
    call_id: str
    tag: str

    @property
    def sent_by(self) -> str:
        host, port = self.local
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def via(self, branch: str) -> str:
        # ;rport asks for the answer to come back to the port it was sent from
        # (RFC 3581), which is what a NATed or containerised pinger needs.
        return f"Via: SIP/2.0/{self.transport} {self.sent_by};branch={branch};rport"


def _message(start: str, headers: list[str], body: bytes = b"") -> bytes:
    lines = [start, *headers, f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def offer(local: tuple[str, int]) -> bytes:
    """An SDP offer (RFC 4566) of inactive PCMU audio on the discard port: a valid
    offer that no media follows."""
    host = local[0]
    family = "IP6" if ":" in host else "IP4"
    return "".join(f"{line}\r\n" for line in (
        "v=0", f"o=sipresponder-ping 1 1 IN {family} {host}", "s=-",
        f"c=IN {family} {host}", "t=0 0", "m=audio 9 RTP/AVP 0", "a=rtpmap:0 PCMU/8000",
        "a=inactive")).encode()


def build_request(method: str, leg: Leg, branch: str) -> bytes:
    """The request ``ping --method METHOD`` sends first (CSeq 1)."""
    uri, to = leg.uri, f"<{leg.uri}>"
    if method == "REGISTER":
        # RFC 3261 10.2: the Request-URI names the registrar's domain, without a user;
        # To is the address of record, and so is From when registering oneself.
        uri = _USERINFO.sub(r"\1", leg.uri, count=1)
        aor = re.split(r"[;?]", leg.uri, maxsplit=1)[0]
        if uri == leg.uri:  # no user in the target: register "ping" there
            aor = re.sub(r"^(sips?:)", r"\1ping@", aor, flags=re.IGNORECASE)
        to = f"<{aor}>"
    sender = to.strip("<>") if method == "REGISTER" else f"sip:ping@{leg.sent_by}"
    headers = [
        leg.via(branch),
        "Max-Forwards: 70",
        f"From: <{sender}>;tag={leg.tag}",
        f"To: {to}",
        f"Call-ID: {leg.call_id}",
        f"CSeq: 1 {method}",
    ]
    if method in _WITH_CONTACT:
        headers.append(f"Contact: <sip:ping@{leg.sent_by}>")
    body = b""
    if method == "OPTIONS":
        headers.append("Accept: application/sdp")
    elif method == "INVITE":
        body = offer(leg.local)
        headers.append("Content-Type: application/sdp")
    elif method in ("SUBSCRIBE", "NOTIFY", "PUBLISH"):
        headers.append(f"Event: {_EVENT}")
        if method == "SUBSCRIBE":
            headers.append("Expires: 0")
        elif method == "NOTIFY":  # RFC 6665 8.2.3: required in every NOTIFY
            headers.append("Subscription-State: terminated;reason=noresource")
    elif method == "MESSAGE":
        body = b"ping"
        headers.append("Content-Type: text/plain")
    headers.append(f"User-Agent: sipresponder-ping/{__version__}")
    return _message(f"{method} {uri} SIP/2.0", headers, body)


def header_values(raw: bytes, *names: str) -> list[str]:
    """A header's values in a message or its head (long and compact names), unfolded."""
    wanted = {n.lower() for n in names}
    head = raw.split(b"\r\n\r\n", 1)[0]
    text = re.sub(r"\r?\n[ \t]+", " ", head.decode("utf-8", "replace"))
    out = []
    for line in text.splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in wanted:
            out.append(value.strip())
    return out


def first(raw: bytes, *names: str) -> str:
    """A header's first value; ValueError names it when the message has none (a peer's
    malformed response must end the ping with a message, not a traceback)."""
    values = header_values(raw, *names)
    if not values:
        raise ValueError(f"the response has no {names[0]} header")
    return values[0]


def _uri_of(name_addr: str) -> str:
    """The URI of a name-addr (``"Bob" <sip:b@h>;p=1``) or an addr-spec (``sip:b@h``)."""
    inside = re.search(r"<([^>]*)>", name_addr)
    return inside[1].strip() if inside else name_addr.split(";", 1)[0].strip()


def _route_set(response: bytes) -> list[str]:
    """The Route header values of the dialog: the Record-Route entries of the response,
    in reverse order (RFC 3261 12.1.2). Each entry is a name-addr in angle brackets."""
    entries: list[str] = []
    for value in header_values(response, "record-route"):
        entries += re.findall(r"<[^>]*>[^,]*", value)
    return [e.strip() for e in reversed(entries)]


def ack_for_failure(invite: bytes, response: bytes) -> bytes:
    """The ACK of a non-2xx final response (RFC 3261 17.1.1.3): part of the INVITE's
    transaction, so the INVITE's Request-URI, top Via (its branch), From, Call-ID and
    Route, and the response's To (with the tag it added)."""
    return _in_invite_transaction("ACK", invite, first(response, "To", "t"))


def in_dialog(method: str, cseq: int, leg: Leg, response: bytes, branch: str) -> bytes:
    """A request within the dialog a 2xx to the INVITE set up (RFC 3261 12.2.1.1): the
    ACK of that 2xx (a transaction of its own, CSeq 1) or the BYE that ends the call
    (CSeq 2). The Request-URI is the remote target, the 2xx's Contact (the INVITE's
    Request-URI if it had none); Route is the 2xx's Record-Route, reversed."""
    contact = header_values(response, "contact", "m")
    target = _uri_of(contact[0]) if contact else leg.uri
    headers = [
        leg.via(branch),
        "Max-Forwards: 70",
        f"From: <sip:ping@{leg.sent_by}>;tag={leg.tag}",
        f"To: {first(response, 'To', 't')}",
        f"Call-ID: {leg.call_id}",
        f"CSeq: {cseq} {method}",
        *(f"Route: {r}" for r in _route_set(response)),
        f"User-Agent: sipresponder-ping/{__version__}",
    ]
    return _message(f"{method} {target} SIP/2.0", headers)


def cancel(invite: bytes) -> bytes:
    """The CANCEL of an INVITE still in progress (RFC 3261 9.1): its Request-URI,
    Call-ID, To, From, top Via and Route, with CSeq 1 CANCEL."""
    return _in_invite_transaction("CANCEL", invite, first(invite, "To", "t"))


def _in_invite_transaction(method: str, invite: bytes, to: str) -> bytes:
    """An ACK of a failure or a CANCEL: the INVITE's Request-URI, top Via (its branch),
    From, Call-ID and Route, CSeq 1 with ``method``, and ``to``."""
    uri = invite.split(b"\r\n", 1)[0].decode().split(" ")[1]
    headers = [
        f"Via: {first(invite, 'Via', 'v')}",
        "Max-Forwards: 70",
        f"From: {first(invite, 'From', 'f')}",
        f"To: {to}",
        f"Call-ID: {first(invite, 'Call-ID', 'i')}",
        f"CSeq: 1 {method}",
        *(f"Route: {r}" for r in header_values(invite, "route")),
    ]
    return _message(f"{method} {uri} SIP/2.0", headers)


def cseq_method(raw: bytes) -> str | None:
    """The method in a message's CSeq (which request a response answers)."""
    values = header_values(raw, "cseq")
    parts = values[0].split() if values else []
    return parts[1] if len(parts) == 2 else None
