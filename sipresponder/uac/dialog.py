"""Dialog state and in-dialog requests (RFC 3261 12), sans-I/O.

A ``Dialog`` is made from either side: ``Dialog.from_uas`` when the responder answered
a dialog-creating request (12.1.1), ``Dialog.from_uac`` when it sent one and got a
2xx or a 101-199 with a To tag (12.1.2). ``Dialog.request`` writes the octets of a
request inside it (12.2.1.1), ``Dialog.next_hop`` says where that request goes (8.1.2,
RFC 3263 without DNS, RFC 3581), and ``Dialogs`` is the bounded table that matches a
received request to its dialog with the verdicts of 12.2.2 (481, 500).

Nothing here sends, retransmits or times: the client transaction (uac/transactions)
does that with the octets and the hop this module gives it.

Where a request goes, the rule implemented (``next_hop``):

1. The hop is the first Route's URI when the route set is not empty (loose or strict
   routing alike, 8.1.2), else the remote target.
2. Its transport is the URI's ``;transport=``, else TLS for a sips: URI, else UDP
   (RFC 3263 4.1 without NAPTR/SRV). Its port is the URI's, else 5061 over TLS and
   5060 otherwise (RFC 3261 19.1.2).
3. Over a connection (the dialog was made over TCP, TLS, WS or WSS): when the hop is
   that peer, the request goes on the connection it came on (RFC 5923's idea; RFC 7118
   5.2 for WebSocket, whose Contact host is a ``.invalid`` name on purpose): the hop
   ``Hop.source`` is the original ``Source``. "That peer" is: no ``;transport=`` naming
   another transport, and the hop's host is the connection's remote address or a name
   (a name could not be reached otherwise: the project never resolves names).
4. Over UDP with no route set (the hop is the client itself), the source address and
   port of the request that made the dialog are used instead of the Contact when the
   Contact's address is not the packet's source and either it is a private-use,
   shared (CGN), loopback or link-local address (a client behind NAT put its own
   address in Contact: Kamailio nathelper's fix_nated_contact) or the client asked
   for symmetric routing with ``rport`` (RFC 3581) and wrote the same host in its
   Via and its Contact. A public Contact address other than the source is used as
   written (a multihomed client means it).
5. Otherwise a host name is an error naming it: sipresponder never resolves names.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, Protocol

from ..sip.abnf import METHOD, parse_params
from ..sip.headers import NameAddr, parse_name_addr
from ..sip.message import Request
from ..sip.response import one_line
from ..sip.transports import SECURE, Transport, is_transport
from ..sip.uri import URI, parse_uri
from ..uas.events import Source

DialogId = tuple[str, str, str]  # (Call-ID, local tag, remote tag), RFC 3261 12

# Requests that may change the remote target and so carry our Contact (RFC 3261
# 12.2: re-INVITE; RFC 3311 UPDATE; RFC 6665 4.1.2.1 / 4.1.3 SUBSCRIBE and NOTIFY;
# RFC 3515 2.4.1 REFER).
TARGET_REFRESH: Final = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})
# 8.1.1.5: a CSeq generated here stays below 2**31.
MAX_LOCAL_CSEQ: Final = 2**31 - 1
MAX_FORWARDS: Final = 70  # RFC 3261 8.1.1.6
# The first header line of a request built without a sent-by: the transport layer,
# which knows its address and the transaction's branch, puts the Via there
# (``with_via``). Never valid SIP, so it cannot leave unfilled unnoticed.
VIA_SLOT: Final = "Via: <via>\r\n"
DEFAULT_PORTS: Final[dict[Transport, int]] = {
    "udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}
CONNECTION: Final = frozenset({"tcp", "tls", "ws", "wss"})
# Addresses a client behind NAT writes: RFC 1918 private, RFC 6598 shared (CGN),
# RFC 4193 unique local, and loopback and link-local. Named here, not
# ``ip.is_private``, which also counts the documentation ranges (RFC 5737) and others
# that are no sign of NAT.
_NATTED = tuple(ipaddress.ip_network(net) for net in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
    "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"))


class DialogError(ValueError):
    """A message that cannot make or use a dialog; the text is one line naming why."""


class ResponseView(Protocol):
    """What dialog creation and target refresh read of a received response: its
    status code and its header fields (a parsed response of the transaction layer)."""

    @property
    def status(self) -> int: ...

    def get(self, name: str) -> str | None: ...

    def values(self, name: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Hop:
    """Where a request goes: ``address`` over ``transport``, or on the connection of
    ``source`` when it is set (the adapter writes on ``source.conn``)."""

    transport: Transport
    address: tuple[str, int]
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """What 12.2.2 says of a received request: ``dialog`` when it belongs to one,
    else ``code``/``reason`` to answer (481, 500; 400 for an unreadable CSeq); all
    None for a request outside any dialog (no To tag) or an ACK to drop (an ACK is
    never answered)."""

    dialog: Dialog | None = None
    code: int | None = None
    reason: str = ""


def _party(addr: NameAddr) -> str:
    """A From/To value without its tag: display name and URI, in angle brackets so
    that URI parameters stay URI parameters (RFC 3261 20.10)."""
    uri = f"<{addr.uri.raw}>"
    return f"{addr.display} {uri}" if addr.display else uri


def _values(message: Request | ResponseView, name: str, what: str) -> list[str]:
    try:
        return message.values(name)
    except ValueError as exc:
        raise DialogError(f"{what} has a malformed {name.title()}: {exc}") from None


def _contact_uri(values: list[str], what: str) -> URI:
    if not values:
        raise DialogError(f"{what} has no Contact: no remote target (RFC 3261 12.1)")
    try:
        contact = parse_name_addr(values[0])
    except ValueError as exc:
        raise DialogError(f"{what} has a malformed Contact: {exc}") from None
    if not contact.uri.is_sip:
        raise DialogError(f"{what}'s Contact is not a SIP or SIPS URI: {contact.uri.raw!r}")
    return contact.uri


def _uri_param(uri: URI, name: str) -> str | None:
    try:
        params = parse_params(uri.params[1:]) if uri.params else []
    except ValueError:
        return None
    for key, value in params:
        if key.lower() == name:
            return value if value is not None else ""
    return None


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return None


def _behind_nat(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """An address a client writes when it cannot be reached at it from outside."""
    return any(ip.version == net.version and ip in net for net in _NATTED)


def _cseq(request: Request, what: str) -> int:
    try:
        return request.cseq[0]
    except (KeyError, ValueError):
        raise DialogError(f"{what} has no valid CSeq") from None


def _name_addr(request: Request, name: str, what: str) -> NameAddr:
    try:
        return parse_name_addr(request.fields[name][0])
    except KeyError:
        raise DialogError(f"{what} has no {name.title()} header field") from None
    except ValueError as exc:
        raise DialogError(f"{what} has a malformed {name.title()}: {exc}") from None


@dataclass(slots=True)
class Dialog:
    """One dialog's state (RFC 3261 12): what 12.1 stores, and ``source``, the arrival
    that made it (its transport and, on a stream, its connection) for ``next_hop``.

    ``local`` and ``remote`` are the From/To values without tags; ``contact`` our
    Contact URI, sent in target refresh requests; ``invite_cseq`` the CSeq number of
    the last INVITE sent in the dialog, which its ACK carries (13.2.2.4);
    ``nat_host`` the host of the creating request's Via when that Via asked for
    rport (RFC 3581), for the NAT rule of ``next_hop``.
    """

    call_id: str
    local_tag: str
    remote_tag: str
    local: str
    remote: str
    remote_target: URI
    route_set: tuple[str, ...]
    local_cseq: int
    remote_cseq: int | None
    secure: bool
    source: Source | None = None
    contact: str | None = None
    early: bool = False
    invite_cseq: int | None = None
    nat_host: str | None = None
    _routes: tuple[URI, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        routes: list[URI] = []
        for value in self.route_set:
            try:
                uri = parse_name_addr(value).uri
            except ValueError as exc:
                raise DialogError(f"malformed Record-Route value {value!r}: {exc}") from None
            if not uri.is_sip:
                raise DialogError(f"Record-Route value {value!r} is not a SIP or SIPS URI")
            routes.append(uri)
        self._routes = tuple(routes)
        if self.contact is not None:
            try:
                parse_uri(self.contact)
            except ValueError as exc:
                raise DialogError(f"our Contact {self.contact!r} is not a URI: {exc}") from None

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation ----------------------------------------------------------------
    @classmethod
    def from_uas(cls, request: Request, local_tag: str, *, source: Source,
                 local_cseq: int = 0, contact: str | None = None,
                 early: bool = False) -> Dialog:
        """The dialog of a request we answered with a 2xx (``early``: a 101-199) that
        carried To tag ``local_tag`` (12.1.1). The local CSeq starts empty there;
        ``local_cseq`` is the value chosen for it (12.2.1.1): the first request sent
        gets ``local_cseq + 1``."""
        what = f"the {request.method} that makes the dialog"
        from_ = _name_addr(request, "from", what)
        to = _name_addr(request, "to", what)
        target = _contact_uri(_values(request, "contact", what), what)
        call_id = request.get("call-id")
        if not call_id:
            raise DialogError(f"{what} has no Call-ID")
        nat_host = None
        try:
            via = request.top_via_lenient()
            if via.has_param("rport"):
                nat_host = via.host
        except ValueError:
            pass
        try:
            secure = source.transport in SECURE and request.uri.scheme == "sips"
        except ValueError:
            secure = False
        return cls(
            call_id=call_id, local_tag=local_tag, remote_tag=from_.tag or "",
            local=_party(to), remote=_party(from_), remote_target=target,
            route_set=tuple(_values(request, "record-route", what)),
            local_cseq=local_cseq, remote_cseq=_cseq(request, what), secure=secure,
            source=source, contact=contact, early=early, nat_host=nat_host)

    @classmethod
    def from_uac(cls, request: Request, response: ResponseView, *,
                 source: Source | None = None, contact: str | None = None) -> Dialog:
        """The dialog of a request we sent (``request``, parsed) and the 2xx or
        101-199 with a To tag it got (12.1.2); ``source``: the response's arrival."""
        what = f"the {response.status} to our {request.method}"
        if not 101 <= response.status <= 299:
            raise DialogError(f"a {response.status} makes no dialog (RFC 3261 12.1)")
        to_value = response.get("to")
        if to_value is None:
            raise DialogError(f"{what} has no To header field")
        try:
            to = parse_name_addr(to_value)
        except ValueError as exc:
            raise DialogError(f"{what} has a malformed To: {exc}") from None
        if not to.tag:
            raise DialogError(f"{what} has no To tag: no dialog (RFC 3261 12.1)")
        from_ = _name_addr(request, "from", f"our {request.method}")
        call_id = request.get("call-id")
        if not call_id:
            raise DialogError(f"our {request.method} has no Call-ID")
        cseq = _cseq(request, f"our {request.method}")
        try:
            secure = (source is not None and source.transport in SECURE
                      and request.uri.scheme == "sips")
        except ValueError:
            secure = False
        return cls(
            call_id=call_id, local_tag=from_.tag or "", remote_tag=to.tag,
            local=_party(from_), remote=_party(to),
            remote_target=_contact_uri(_values(response, "contact", what), what),
            route_set=tuple(reversed(_values(response, "record-route", what))),
            local_cseq=cseq, remote_cseq=None, secure=secure, source=source,
            contact=contact, early=response.status < 200,
            invite_cseq=cseq if request.method == "INVITE" else None)

    # -- target refresh (12.2.1.2, 12.2.2) ----------------------------------------
    def refresh(self, contacts: list[str]) -> None:
        """Replace the remote target with the first of ``contacts`` (the Contact
        values of an accepted re-INVITE/UPDATE or of its 2xx); none leaves it. The
        route set never changes after creation (12.2.1.2)."""
        if contacts:
            self.remote_target = _contact_uri(contacts, "the target refresh")

    def confirm(self, response: ResponseView) -> None:
        """An early dialog confirmed by the 2xx: its Contact refreshes the target."""
        self.early = False
        self.refresh(_values(response, "contact", "the 2xx"))

    # -- requests (12.2.1.1) --------------------------------------------------------
    def request(self, method: str, *, headers: tuple[tuple[str, str], ...] = (),
                body: bytes = b"", content_type: str | None = None,
                sent_by: str | None = None, branch: str | None = None) -> bytes:
        """The octets of ``method`` in this dialog.

        CSeq: the local sequence number plus one, kept (an ACK carries the last
        INVITE's number instead, 13.2.2.4). The Via is built from ``sent_by`` and
        ``branch`` over ``next_hop``'s transport when given, else ``VIA_SLOT``.
        ``headers`` are put as given (each on one line), after the dialog's own.
        """
        method = method.upper()
        if not METHOD.fullmatch(method):
            raise DialogError(f"{method!r} is not a SIP method name (RFC 3261 25.1 token)")
        if method == "CANCEL":
            raise DialogError("CANCEL is built by its client transaction (RFC 3261 9.1),"
                              " not by the dialog")
        if method == "ACK" and self.invite_cseq is None:
            raise DialogError("no INVITE was sent in this dialog: nothing to ACK")
        if method != "ACK" and self.local_cseq >= MAX_LOCAL_CSEQ:
            raise DialogError(f"local CSeq {self.local_cseq} cannot grow below 2**31"
                              " (RFC 3261 8.1.1.5)")
        if method in TARGET_REFRESH and self.contact is None:
            raise DialogError(f"a {method} refreshes the target and needs our Contact:"
                              " the dialog has none")
        if body and not content_type:
            raise DialogError(f"the {method}'s body has no Content-Type")
        if sent_by is not None:
            if not branch:
                raise DialogError("a Via needs a branch (RFC 3261 8.1.1.7)")
            hop = self.next_hop().transport.upper()
            via = f"Via: SIP/2.0/{hop} {one_line(sent_by)};branch={one_line(branch)};rport\r\n"
        else:
            via = VIA_SLOT
        # Every refusal is above: a request refused consumes no sequence number.
        if method == "ACK":
            number = self.invite_cseq
        else:
            self.local_cseq += 1
            number = self.local_cseq
            if method == "INVITE":
                self.invite_cseq = number
        uri, routes = self._request_uri_and_routes()
        lines = [f"{method} {uri} SIP/2.0\r\n", via, f"Max-Forwards: {MAX_FORWARDS}\r\n"]
        lines += [f"Route: {route}\r\n" for route in routes]
        lines.append(f"From: {self.local};tag={self.local_tag}\r\n")
        lines.append(f"To: {self.remote};tag={self.remote_tag}\r\n" if self.remote_tag
                     else f"To: {self.remote}\r\n")
        lines.append(f"Call-ID: {self.call_id}\r\nCSeq: {number} {method}\r\n")
        if method in TARGET_REFRESH:
            lines.append(f"Contact: <{self.contact}>\r\n")
        # What came from the peer was read as latin-1 (parse_request): written back
        # the same way it is the peer's octets; what the scenario adds is text.
        extra = [f"{one_line(name)}: {one_line(value)}\r\n" for name, value in headers]
        if body:
            extra.append(f"Content-Type: {one_line(content_type or '')}\r\n")
        extra.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1") + "".join(extra).encode() + body

    def _request_uri_and_routes(self) -> tuple[str, list[str]]:
        """12.2.1.1: loose routing (the first route has ``lr``) keeps the remote target
        as Request-URI and the route set as Route; strict routing puts the first
        route in the Request-URI (without its headers) and the remote target last."""
        if not self._routes or _uri_param(self._routes[0], "lr") is not None:
            return self.remote_target.raw, list(self.route_set)
        first = self._routes[0].raw.partition("?")[0]
        return first, [*self.route_set[1:], f"<{self.remote_target.raw}>"]

    # -- where it goes ------------------------------------------------------------
    def next_hop(self) -> Hop:
        """Where the next request goes: see the module's docstring for the rule."""
        uri = self._routes[0] if self._routes else self.remote_target
        named = _uri_param(uri, "transport")
        if named is not None:
            name = named.lower()
            if not is_transport(name):
                raise DialogError(f"next hop {uri.raw!r} names transport {named!r},"
                                  " which sipresponder does not speak")
            transport: Transport = name
        else:
            transport = "tls" if uri.scheme == "sips" else "udp"
        port = uri.port or DEFAULT_PORTS[transport]
        ip = _literal_ip(uri.host)
        source = self.source
        if source is not None and source.conn is not None and source.transport in CONNECTION:
            same = named is None or transport == source.transport
            if same and (ip is None or _literal_ip(source.remote[0]) == ip):
                return Hop(source.transport, source.remote, source)
        if ip is None:
            raise DialogError(f"next hop {uri.host!r} is a host name: sipresponder never"
                              " resolves names, give a literal address")
        if (source is not None and source.transport == "udp" and transport == "udp"
                and not self._routes):
            packet = _literal_ip(source.remote[0])
            if packet is not None and packet != ip and (
                    _behind_nat(ip) or (self.nat_host is not None
                                        and _literal_ip(self.nat_host) == ip)):
                return Hop("udp", source.remote)
        host = str(ip)
        return Hop(transport, (host, port))


def with_via(data: bytes, via: str) -> bytes:
    """``data`` (from ``Dialog.request`` without a sent-by) with its Via in the slot."""
    slot = VIA_SLOT.encode()
    if slot not in data:
        raise DialogError("the request has no Via slot to fill")
    return data.replace(slot, f"Via: {one_line(via)}\r\n".encode(), 1)


class Dialogs:
    """The live dialogs by ID, at most ``capacity``: past it the least recently used
    goes (a dialog whose client vanished without a BYE must not hold a slot for
    ever); ``evicted`` counts them."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("a dialog table holds at least one dialog")
        self.capacity = capacity
        self.evicted = 0
        self._table: OrderedDict[DialogId, Dialog] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, key: DialogId) -> bool:
        return key in self._table

    def add(self, dialog: Dialog) -> list[DialogId]:
        """Keep ``dialog``; the IDs of those forgotten to make room (the caller may
        keep state per dialog: it drops theirs)."""
        self._table[dialog.id] = dialog
        self._table.move_to_end(dialog.id)
        gone: list[DialogId] = []
        while len(self._table) > self.capacity:
            gone.append(self._table.popitem(last=False)[0])
            self.evicted += 1
        return gone

    def get(self, key: DialogId) -> Dialog | None:
        return self._table.get(key)

    def remove(self, key: DialogId) -> Dialog | None:
        return self._table.pop(key, None)

    def by_call_id(self, call_id: str) -> list[Dialog]:
        return [d for d in self._table.values() if d.call_id == call_id]

    def match(self, request: Request) -> Verdict:
        """12.2.2 for a received request: its dialog (To tag = local tag, From tag =
        remote tag), or 481 when its To tag names none, or 500 when its CSeq is
        lower than the remote CSeq. An in-order request raises the remote CSeq.

        The remote target is not refreshed here: the TU calls ``Dialog.refresh``
        when it accepts a target refresh request (RFC 6141 3.2: only a 2xx does)."""
        try:
            to_tag = request.to.tag
            from_tag = request.from_.tag or ""
            call_id = request.call_id
        except (KeyError, ValueError):
            return Verdict()
        if to_tag is None:
            return Verdict()
        dialog = self._table.get((call_id, to_tag, from_tag))
        if dialog is None:
            if request.method == "ACK":
                return Verdict()
            return Verdict(code=481, reason="Call/Transaction Does Not Exist")
        self._table.move_to_end(dialog.id)
        if request.method in ("ACK", "CANCEL"):
            # Both carry the CSeq number of the request they belong to (13.2.2.4, 9.1).
            return Verdict(dialog)
        try:
            number = request.cseq[0]
        except (KeyError, ValueError):
            return Verdict(code=400, reason="Bad CSeq")
        if dialog.remote_cseq is not None and number < dialog.remote_cseq:
            return Verdict(code=500, reason="CSeq Out of Order")
        dialog.remote_cseq = number
        return Verdict(dialog)


__all__ = ["Dialog", "DialogError", "DialogId", "Dialogs", "Hop", "ResponseView", "Verdict",
           "with_via"]
