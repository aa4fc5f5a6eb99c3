"""SDP answers to offers (RFC 3264 6) and a default offer, for 2xx responses to INVITE.

The responder has no media: it answers with a plausible description (RTP ports it
will never read from) so that a client's offer/answer state machine completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_STATIC_RTPMAP = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "18": "G729/8000",
                  "3": "GSM/8000", "31": "H261/90000", "34": "H263/90000"}
_DIRECTIONS = {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive",
               "sendrecv": "sendrecv"}
_BASE_PORT = 40000


@dataclass(slots=True)
class _Media:
    """One offered m-line and the attributes the answer copies from it.

    media-field  =  %x6d "=" media SP port ["/" integer] SP proto 1*(SP fmt)  RFC 4566 9
    """

    kind: str
    port: str
    proto: str
    fmts: list[str]
    rtpmap: dict[str, str] = field(default_factory=dict)
    fmtp: dict[str, str] = field(default_factory=dict)
    direction: str | None = None


def _addr_type(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _head(address: str, session_id: int) -> list[str]:
    kind = _addr_type(address)
    return [
        "v=0",
        f"o=sipresponder {session_id} {session_id} IN {kind} {address}",
        "s=sipresponder",
        f"c=IN {kind} {address}",
        "t=0 0",
    ]


def make_offer(address: str, session_id: int) -> bytes:
    lines = [
        *_head(address, session_id),
        f"m=audio {_BASE_PORT} RTP/AVP 0 8 101",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=sendrecv",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def make_answer(offer: bytes, address: str, session_id: int) -> bytes | None:
    """An answer with one m-line per offered m-line, in order; None if no m-line."""
    text = offer.decode("latin-1")
    media: list[_Media] = []
    session_dir = "sendrecv"
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) < 4:
                return None
            media.append(_Media(parts[0], parts[1], parts[2], parts[3:]))
        elif line.startswith("a="):
            attr = line[2:]
            target = media[-1] if media else None
            if attr in _DIRECTIONS:
                if target is None:
                    session_dir = attr
                else:
                    target.direction = attr
            elif target is not None and attr.startswith(("rtpmap:", "fmtp:")):
                key, _, rest = attr.partition(":")
                pt, _, value = rest.partition(" ")
                (target.rtpmap if key == "rtpmap" else target.fmtp)[pt] = value
    if not media:
        return None
    lines = _head(address, session_id)
    for i, m in enumerate(media):
        fmts, rtpmap, fmtp = m.fmts, m.rtpmap, m.fmtp
        rtp = "RTP/" in m.proto
        if m.port == "0" or m.kind not in ("audio", "video") or not rtp:
            # Declined stream: port 0 keeps the m-line position (RFC 3264 6).
            lines.append(f"m={m.kind} 0 {m.proto} {fmts[0]}")
            continue
        chosen = _choose(fmts, rtpmap)
        events = [pt for pt in fmts if rtpmap.get(pt, "").lower().startswith("telephone-event/")]
        pts = [chosen, *(e for e in events if e != chosen)]
        lines.append(f"m={m.kind} {_BASE_PORT + 2 * i} {m.proto} {' '.join(pts)}")
        for pt in pts:
            name = rtpmap.get(pt) or _STATIC_RTPMAP.get(pt)
            if name:
                lines.append(f"a=rtpmap:{pt} {name}")
            if pt in fmtp:
                lines.append(f"a=fmtp:{pt} {fmtp[pt]}")
        lines.append("a=" + _DIRECTIONS[m.direction or session_dir])
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _choose(fmts: list[str], rtpmap: dict[str, str]) -> str:
    """The offerer's most preferred real codec (RFC 3264 6.1: its order is its preference)."""
    for pt in fmts:
        if not rtpmap.get(pt, "").lower().startswith(("telephone-event/", "cn/")):
            return pt
    return fmts[0]
