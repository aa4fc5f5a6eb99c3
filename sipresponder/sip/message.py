"""A parsed SIP request and the parser that produces it (RFC 3261 7, 18.3, 25)."""

from __future__ import annotations

from .abnf import METHOD, SIP_VERSION, STANDARD_METHOD_SET, SUPPORTED_VERSION, WSP
from .fastpath import (
    HEADER_NAMES,
    header_name,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_lines,
)
from .headers import NameAddr, Via, split_values
from .uri import URI


class NotARequest(Exception):
    """The octets are a response or unparseable garbage: nothing can be answered."""


class Request:
    """A request whose header fields are split and unfolded, and parsed further on demand.

    ``error`` holds the (status, reason) the message earns when the parser already
    knows it is broken; the message is still exposed so that a response can echo
    whatever Via/From/To/Call-ID/CSeq it does carry. ``bare_cr``: a line of the
    header section holds a CR that is not half of a CRLF (the echo must cut there).
    The parsed views go through the fast path (fastpath.py).
    """

    __slots__ = (
        "_cseq",
        "_from",
        "_to",
        "_top_via",
        "_top_via_strict",
        "_uri",
        "_vias",
        "bare_cr",
        "body",
        "error",
        "fields",
        "headers",
        "method",
        "raw",
        "uri_raw",
        "version",
    )

    def __init__(
        self,
        method: str,
        uri_raw: str,
        version: str,
        headers: list[tuple[str, str]],
        body: bytes,
        raw: bytes,
        error: tuple[int, str] | None,
        fields: dict[str, list[str]] | None = None,
        bare_cr: bool = False,
    ) -> None:
        self.method = method
        self.uri_raw = uri_raw
        self.version = version
        self.headers = headers
        self.body = body
        self.raw = raw
        self.error = error
        self.bare_cr = bare_cr
        if fields is None:
            fields = {}
            for name, value in headers:
                fields.setdefault(name.lower(), []).append(value)
        self.fields = fields
        self._uri: URI | None = None
        self._vias: list[str] | None = None
        self._top_via: Via | None = None
        self._top_via_strict = False
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._cseq: tuple[int, str] | None = None

    # -- raw access -------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The first row of a header field (long name, any case), or None."""
        rows = self.fields.get(name.lower())
        return rows[0] if rows else None

    def rows(self, name: str) -> list[str]:
        return self.fields.get(name.lower(), [])

    def values(self, name: str) -> list[str]:
        """All comma-separated values of a list-valued header, in order."""
        return split_values(self.fields.get(name.lower(), []))

    # -- parsed views (each raises ValueError when malformed) -------------------
    @property
    def uri(self) -> URI:
        if self._uri is None:
            self._uri = parse_uri(self.uri_raw)
        return self._uri

    @property
    def via_values(self) -> list[str]:
        if self._vias is None:
            self._vias = self.values("via")
        return self._vias

    def top_via(self) -> Via:
        vias = self.via_values
        if not vias:
            raise ValueError("no Via header field")
        return parse_via(vias[0])

    def top_via_lenient(self) -> Via:
        """The top Via, parsed only as far as routing a response needs (once: routing,
        the echo, the To tag and transaction matching all read it).

        The full grammar is tried first; top_via_checked() then says whether it held.
        """
        top = self._top_via
        if top is None:
            vias = self.via_values
            if not vias:
                raise ValueError("no Via header field")
            try:
                top = parse_via(vias[0])
                self._top_via_strict = True
            except ValueError:
                top = parse_via(vias[0], lenient=True)
            self._top_via = top
        return top

    def top_via_checked(self) -> bool:
        """True when top_via_lenient() has parsed the top Via and it follows the full
        grammar: what top_via() would return, so a structural check need not parse it
        again. False before top_via_lenient() and for a Via only the lenient parse read.
        """
        return self._top_via_strict

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = parse_name_addr(self.fields["from"][0])
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = parse_name_addr(self.fields["to"][0])
        return self._to

    @property
    def cseq(self) -> tuple[int, str]:
        if self._cseq is None:
            self._cseq = parse_cseq(self.fields["cseq"][0])
        return self._cseq

    @property
    def call_id(self) -> str:
        return self.fields["call-id"][0]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_raw}>"


def find_header_end(data: bytes | bytearray, start: int = 0) -> tuple[int, int]:
    """(end of the header section, start of the body), or (-1, -1) if not there yet.

    The empty line is CRLF CRLF (RFC 3261 7); bare-LF senders are tolerated. The
    earlier of the two wins, so a bare-LF message whose body holds a CRLF CRLF is not
    cut inside its body. ``start``: where to look from, when ``data[:start + 3]`` is
    already known to hold neither.
    """
    end = data.find(b"\r\n\r\n", start)
    lf_end = data.find(b"\n\n", start, len(data) if end < 0 else end)
    if lf_end >= 0:
        return lf_end, lf_end + 2
    if end >= 0:
        return end, end + 4
    return -1, -1


def too_large(detail: str) -> tuple[int, str]:
    """The answer to a request refused for its size, whichever limit it broke.

    513 Message Too Large (RFC 3261 21.5.7: "the message length exceeded its
    capabilities"), never 400: the request may be well formed, only more than this
    responder takes, and a client can tell the two apart. ``detail`` names the limit.
    """
    return 513, f"Message Too Large ({detail})"


def parse_request(data: bytes, *, datagram: bool, max_headers: int = 0,
                  max_line_length: int = 0, strict_length: bool = True) -> Request:
    """Parse one request. ``datagram`` selects UDP framing (RFC 3261 18.3).

    ``max_headers`` and ``max_line_length`` (0: no limit) bound the header section;
    past them the request earns a 513 naming the limit (see ``too_large``) and the
    parser reads no further into the offending line (or past the last field allowed).
    ``strict_length`` False takes a UDP body that is shorter than its Content-Length
    as it is instead of answering 400.

    On UDP the body ends at Content-Length and extra octets are discarded; a missing
    Content-Length means the body runs to the end of the datagram. On a stream the
    caller has already framed the message, so the body is exactly what follows the
    headers. Raises NotARequest for responses and for octets that are not a request.

    Mirrored in C by ``scan`` (csrc/scan.h) for the requests the compiled path covers.
    """
    head_end, body_start = find_header_end(data)
    if head_end < 0:
        if not datagram:
            raise NotARequest("incomplete header section")
        # End of datagram ends the header section (RFC 4475 3.1.2.15's baddn.dat).
        head_end = body_start = len(data)
    head = data[:head_end].decode("latin-1")
    lines, bare_cr = split_lines(head)

    error: tuple[int, str] | None = None
    start = lines[0]
    if start[:4].upper() == "SIP/":
        raise NotARequest("a response")
    # Request-Line  =  Method SP Request-URI SP SIP-Version CRLF     RFC 3261 25.1
    parts = start.split(" ")
    method = parts[0]
    if (method not in STANDARD_METHOD_SET and not METHOD.fullmatch(method)) or len(parts) < 2:
        raise NotARequest("not a SIP request line")
    uri_raw = parts[1]
    version = parts[2] if len(parts) > 2 else ""
    if len(parts) != 3 or not uri_raw or not version or (bare_cr and "\r" in start):
        error = (400, "Malformed Request-Line")
    elif version != SUPPORTED_VERSION:
        if not SIP_VERSION.fullmatch(version):
            error = (400, "Malformed SIP-Version")
        elif version.upper() != SUPPORTED_VERSION:
            error = (505, "Version Not Supported")

    # message-header  =  (header-name HCOLON header-value) CRLF
    # HCOLON  =  *( SP / HTAB ) ":" SWS                              RFC 3261 25.1
    headers: list[tuple[str, str]] = []
    fields: dict[str, list[str]] = {}
    known_name = HEADER_NAMES.get
    # A refusal for size wins over any 400 (as the engine's max_message_size check
    # does): the parser skipped what was too big, so what it found wrong is partial.
    oversize: tuple[int, str] | None = None
    # Per-line limit checks only when the whole header section could break them.
    if len(head) <= max_line_length:
        max_line_length = 0
    if len(lines) <= max_headers:
        max_headers = 0
    for line in lines[1:]:
        if not line:
            continue
        if bare_cr and "\r" in line:
            error = error or (400, "Malformed header line (bare CR)")
        if max_line_length and len(line) > max_line_length:
            oversize = oversize or too_large(f"header line over {max_line_length} octets")
            continue
        first = line[0]
        if max_headers and len(headers) >= max_headers and first not in WSP:
            oversize = oversize or too_large(f"over {max_headers} header fields")
            break
        if first in WSP:
            # Folding (RFC 3261 7.3.1): a continuation line joins the previous value.
            if not headers:
                error = error or (400, "Malformed header folding")
                continue
            name, value = headers[-1]
            more = line.strip(WSP)
            value = f"{value} {more}" if value else more
            headers[-1] = (name, value)
            fields[name.lower()][-1] = value
            continue
        colon = line.find(":")
        known = known_name(line[:colon]) if colon > 0 else None
        if known is None:
            known = header_name(line[:colon].rstrip(WSP) if colon > 0 else "")
            if known is None:
                error = error or (400, "Malformed header line")
                continue
        name, key = known
        value = line[colon + 1 :].strip(WSP)
        headers.append((name, value))
        rows = fields.get(key)
        if rows is None:
            fields[key] = [value]
        else:
            rows.append(value)

    error = oversize or error
    request = Request(method, uri_raw, version, headers, b"", data, error, fields, bare_cr)
    rest = data[body_start:]
    lengths = request.fields.get("content-length")
    if lengths is None:
        request.body = rest if datagram else b""
        return request
    if len(lengths) > 1:
        request.error = error or (400, "Multiple Content-Length header fields")
        return request
    text = lengths[0]
    if not text.isdigit() or not text.isascii():
        request.error = error or (400, "Invalid Content-Length header field")
        return request
    # Leading zeros are legal (1*DIGIT); compare lengths before int() sees 10**100.
    if len(text.lstrip("0")) > 9 or int(text) > len(rest):
        if strict_length or not datagram:
            request.error = error or (400, "Content-Length larger than the message body")
        else:
            request.body = rest
        return request
    request.body = rest[: int(text)]
    return request
