"""A response the far end's client transactions receive, parsed as far as they need
(RFC 3261 7.2, 17.1.3): the status, the top Via's branch, the CSeq and the To.

The UAS side never reads a response (``sip.message.parse_request`` refuses them), so
the UAC side has its own small reader. The header section is split as a request's
is (folding joined, names canonicalised); anything the transactions read and cannot
parse makes ``parse_response`` raise ValueError naming it, so a malformed response
is dropped (RFC 3261 18.1.2), never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.abnf import WSP
from ..sip.fastpath import header_name, parse_cseq, parse_via, split_lines
from ..sip.headers import MAGIC_COOKIE, split_values
from ..sip.message import find_header_end


@dataclass(slots=True, frozen=True)
class Response:
    """One received response: ``status`` and ``reason`` from the Status-Line, the
    header fields by lower-case long name, the body and the octets as they came. What
    a dialog reads of it (``status``, ``get``, ``values``) is uac.dialog's
    ResponseView."""

    status: int
    reason: str
    fields: dict[str, list[str]]
    body: bytes
    raw: bytes
    branch: str  # of the top Via: with the CSeq method, the transaction (17.1.3)
    cseq: tuple[int, str]

    def get(self, name: str) -> str | None:
        """The first row of a header field (long name, any case), or None."""
        rows = self.fields.get(name.lower())
        return rows[0] if rows else None

    def values(self, name: str) -> list[str]:
        """All comma-separated values of a list-valued header (Contact,
        Record-Route...), in order."""
        return split_values(self.fields.get(name.lower(), []))

    @property
    def provisional(self) -> bool:
        return self.status < 200


def parse_response(data: bytes) -> Response:
    """Parse one response (a whole datagram or a framed stream message).

    Raises ValueError with one line naming what is wrong: not a Status-Line, a code
    outside 100-699, no Via or CSeq, a CSeq or top Via that does not parse.
    """
    head_end, body_start = find_header_end(data)
    if head_end < 0:
        head_end = body_start = len(data)
    lines, _ = split_lines(data[:head_end].decode("latin-1"))
    # Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF   RFC 3261 25.1
    version, _, rest = lines[0].partition(" ")
    code_text, _, reason = rest.partition(" ")
    if version.upper() != "SIP/2.0":
        raise ValueError("not a SIP/2.0 Status-Line")
    if len(code_text) != 3 or not code_text.isascii() or not code_text.isdigit():
        raise ValueError("malformed Status-Code")
    code = int(code_text)
    if not 100 <= code <= 699:
        raise ValueError(f"Status-Code {code} outside 100-699")
    fields: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in WSP:
            # Folding (RFC 3261 7.3.1) continues the previous value.
            if last is not None:
                more = line.strip(WSP)
                last[-1] = f"{last[-1]} {more}" if last[-1] else more
            continue
        colon = line.find(":")
        known = header_name(line[:colon].rstrip(WSP)) if colon > 0 else None
        if known is None:
            last = None  # a stray line the transactions never read: skipped
            continue
        last = fields.setdefault(known[1], [])
        last.append(line[colon + 1 :].strip(WSP))
    vias = split_values(fields.get("via", []))
    if not vias:
        raise ValueError("no Via header field")
    branch = parse_via(vias[0], lenient=True).branch
    if not branch.startswith(MAGIC_COOKIE):
        raise ValueError("top Via has no RFC 3261 branch")
    cseq_rows = fields.get("cseq")
    if not cseq_rows:
        raise ValueError("no CSeq header field")
    cseq = parse_cseq(cseq_rows[0])
    body = data[body_start:]
    lengths = fields.get("content-length")
    if lengths and lengths[0].isascii() and lengths[0].isdigit() and len(lengths[0]) < 10:
        body = body[: int(lengths[0])]
    return Response(code, reason, fields, body, data, branch, cseq)
