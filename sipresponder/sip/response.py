"""Serializing responses to a request (RFC 3261 8.2.6, 8.2.7, 18.2.1; RFC 3581).

What the response copies from the request (Via, From, To, Call-ID, CSeq) is computed
once per request into an ``Echo``; each response sent for that request is then a
status line, that block, its own header fields and its body.
"""

from __future__ import annotations

import hashlib
import ipaddress

from .abnf import split_top_level
from .headers import Via
from .message import Request

CRLF = "\r\n"
_LINE_BREAKS = str.maketrans("\r\n", "  ")


def one_line(text: str) -> str:
    """``text`` with any CR or LF turned into SP: one header line stays one line.

    The parser refuses a bare CR in a request (400), but that 400 still echoes the
    request's From, To, Via...: whatever a request or a template puts in a response
    header must not be able to end the line and start a forged header field.
    """
    if "\r" in text or "\n" in text:
        return text.translate(_LINE_BREAKS)
    return text


def _same_ip(host: str, ip: str) -> bool:
    """Mirrored in C by ``same_ip`` (csrc/echo.h)."""
    if host.startswith("["):
        host = host[1:-1]
    if host == ip:
        return True
    if ":" in host and ":" in ip:
        try:
            return ipaddress.IPv6Address(host) == ipaddress.IPv6Address(ip)
        except ValueError:
            return False
    return False


def top_via_value(via: Via, remote: tuple[str, int]) -> str:
    """The top Via as the response carries it: received and rport filled in.

    18.2.1: add received= when sent-by is a name or an address other than the packet
    source. RFC 3581 4: when the request has a valueless rport, fill it with the source
    port and always add received. An existing received or rport is replaced, never
    repeated (RFC 3261 7.3.1 allows a parameter name once).

    Mirrored in C by ``write_top_via`` (csrc/echo.h).
    """
    ip, port = remote
    wants_rport = via.param("rport") == ""
    needs_received = wants_rport or not _same_ip(via.host, ip)
    if not needs_received and not via.has_param("received"):
        return via.raw
    params: list[str] = []
    have_received = False
    for name, value in via.params:
        lower = name.lower()
        if lower == "received":
            if not needs_received:
                params.append(f"{name}={value}" if value is not None else name)
                continue
            params.append(f"received={ip}")
            have_received = True
        elif lower == "rport" and wants_rport:
            params.append(f"rport={port}")
        else:
            params.append(f"{name}={value}" if value is not None else name)
    if needs_received and not have_received:
        params.append(f"received={ip}")
    return via.head + "".join(";" + p for p in params)


def to_tag(request: Request, key: bytes) -> str:
    """A To tag derived from the request alone (RFC 3261 19.3 only asks for uniqueness).

    Retransmissions of a request, its CANCEL and every response in one transaction get
    the same tag, with no state kept: the hash covers Call-ID, From tag, top Via branch
    and CSeq number, which all stay the same across them (and works for RFC 2543
    requests without branch or From tag).

    Mirrored in C by ``write_to_tag`` (csrc/echo.h, BLAKE2s from csrc/blake2s.h).
    """
    vias = request.via_values
    branch = ""
    if vias:
        try:
            branch = request.top_via_lenient().branch
        except ValueError:
            branch = vias[0]
    try:
        from_tag = request.from_.tag or ""
    except (KeyError, ValueError):
        from_tag = ""
    cseq = (request.get("cseq") or "").split(" ", 1)[0]
    material = "\0".join((request.get("call-id") or "", from_tag, branch, cseq))
    return hashlib.blake2s(material.encode("latin-1"), key=key, digest_size=8).hexdigest()


class Echo:
    """The header block a response copies from its request, with and without a To tag.

    Mirrored in C by ``echo`` (csrc/echo.h).
    """

    __slots__ = ("tag", "tagged", "untagged")

    def __init__(self, request: Request, remote: tuple[str, int], tag_key: bytes) -> None:
        fields = request.fields
        vias = request.via_values
        if vias:
            try:
                top = top_via_value(request.top_via_lenient(), remote)
            except ValueError:
                top = vias[0]
            vias = [top, *vias[1:]]
        from_ = fields.get("from")
        call_id = fields.get("call-id")
        cseq = fields.get("cseq")
        to_rows = fields.get("to")
        if request.bare_cr:
            # The only way a CR gets into a value; an LF never does (lines end there).
            vias = [one_line(v) for v in vias]
            from_, call_id, cseq, to_rows = (
                [one_line(rows[0])] if rows else rows for rows in (from_, call_id, cseq, to_rows)
            )
        head = f"Via: {vias[0]}\r\n" if len(vias) == 1 else "".join(
            [f"Via: {v}\r\n" for v in vias]
        )
        if from_:
            head = f"{head}From: {from_[0]}\r\n"
        if call_id:
            tail = f"Call-ID: {call_id[0]}\r\nCSeq: {cseq[0]}\r\n" if cseq else (
                f"Call-ID: {call_id[0]}\r\n"
            )
        else:
            tail = f"CSeq: {cseq[0]}\r\n" if cseq else ""
        self.tag = ""
        if to_rows is None:
            self.untagged = self.tagged = head + tail
            return
        to_value = to_rows[0]
        self.untagged = f"{head}To: {to_value}\r\n{tail}"
        try:
            has_tag = request.to.tag is not None
        except ValueError:
            has_tag = True  # an unparseable To is echoed as it came
        if has_tag:
            self.tagged = self.untagged
        else:
            self.tag = to_tag(request, tag_key)
            self.tagged = f"{head}To: {to_value};tag={self.tag}\r\n{tail}"


def status_line(code: int, reason: str) -> str:
    """Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (RFC 3261 7.2)."""
    return f"SIP/2.0 {code} {one_line(reason)}{CRLF}"


def header_line(name: str, value: str) -> str:
    """message-header = field-name HCOLON field-value CRLF (RFC 3261 7.3), on one line."""
    return f"{name}: {one_line(value)}{CRLF}"


# What ``serialize`` ends a bodyless response with: a compiled plan whose header
# lines are all literal keeps them with this suffix as one string (plan.ResponsePlan).
NO_BODY = f"Content-Length: 0{CRLF}{CRLF}"


def serialize(status: str, echo: str, headers: str, body: bytes = b"",
              content_type: str | None = None) -> bytes:
    """The octets of a response: ``status`` (a ``status_line``), the request's
    ``echo``, the response's own ``headers`` (``header_line``s), then Content-Type
    when there is a body, Content-Length (RFC 3261 18.3: always, as on a stream
    it frames the message) and the body. The only writer of a response's octets."""
    if body:
        return (f"{status}{echo}{headers}Content-Type: {one_line(content_type or '')}{CRLF}"
                f"Content-Length: {len(body)}{CRLF}{CRLF}").encode("latin-1") + body
    return (status + echo + headers + NO_BODY).encode("latin-1")


def with_body(data: bytes, body: bytes, content_type: str) -> bytes:
    """``data`` (a response ``serialize`` wrote) with ``body`` in place of its own: its
    Content-Type and Content-Length say so (the SDP answer of a call's own RTP stream,
    which only the engine knows the port of, call/offer.py)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data
    lines = [line for line in data[:end].split(b"\r\n")
             if line.split(b":", 1)[0].strip().lower() not in (b"content-type", b"c",
                                                               b"content-length", b"l")]
    lines += [f"Content-Type: {one_line(content_type)}".encode(),
              f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def accepts(accept_rows: list[str], media_type: str) -> bool:
    """Whether an Accept header admits ``media_type`` (RFC 3261 20.1; q=0 refuses)."""
    main = media_type.split("/", 1)[0]
    for row in accept_rows:
        for item in split_top_level(row):
            if not item:
                continue
            rng, *params = item.split(";")
            rng = rng.strip().lower()
            if any(_is_q_zero(p) for p in params):
                continue
            if rng in ("*/*", media_type, f"{main}/*"):
                return True
    return False


def _is_q_zero(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value) == 0.0
    except ValueError:
        return False
