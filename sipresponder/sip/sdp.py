"""SDP answers to offers (RFC 3264 6) and a default offer, for 2xx responses to INVITE.

The responder has no media: it answers with a plausible description (RTP ports it
will never read from) so that a client's offer/answer state machine completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# RFC 3551 6, Table 4 and 5: the static payload types an offer may list without an
# a=rtpmap line (RFC 4566 6: "rtpmap ... may be omitted for static payload types").
STATIC_PAYLOAD_TYPES = {
    "0": "PCMU/8000", "3": "GSM/8000", "4": "G723/8000", "5": "DVI4/8000",
    "6": "DVI4/16000", "7": "LPC/8000", "8": "PCMA/8000", "9": "G722/8000",
    "10": "L16/44100/2", "11": "L16/44100", "12": "QCELP/8000", "13": "CN/8000",
    "14": "MPA/90000", "15": "G728/8000", "16": "DVI4/11025", "17": "DVI4/22050",
    "18": "G729/8000", "25": "CelB/90000", "26": "JPEG/90000", "28": "nv/90000",
    "31": "H261/90000", "32": "MPV/90000", "33": "MP2T/90000", "34": "H263/90000",
}
# The static types an answer names in an a=rtpmap line of its own (the usual voice and
# video codecs); other static types are answered without one, as RFC 4566 6 allows.
_STATIC_RTPMAP = {pt: STATIC_PAYLOAD_TYPES[pt] for pt in ("0", "8", "9", "18", "3", "31", "34")}
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


def _head(address: str, session_id: int, version: int | None = None) -> list[str]:
    kind = _addr_type(address)
    return [
        "v=0",
        f"o=sipresponder {session_id} {session_id if version is None else version} IN {kind}"
        f" {address}",
        "s=sipresponder",
        f"c=IN {kind} {address}",
        "t=0 0",
    ]


# What an offer of ours may list, by the name a scenario gives (RFC 3551 6, Table 4;
# RFC 4733 for telephone-event): payload type, rtpmap, fmtp.
OFFER_CODECS: dict[str, tuple[str, str, str | None]] = {
    "PCMU": ("0", "PCMU/8000", None),
    "PCMA": ("8", "PCMA/8000", None),
    "G722": ("9", "G722/8000", None),
    "telephone-event": ("101", "telephone-event/8000", "0-16"),
}
DEFAULT_OFFER = ("PCMU", "PCMA", "telephone-event")


def make_offer(address: str, session_id: int, version: int | None = None,
               direction: str = "sendrecv", codecs: tuple[str, ...] | None = None) -> bytes:
    """Our offer: PCMU, PCMA and telephone-event, or ``codecs`` (names of
    ``OFFER_CODECS``, in order: a codec change). ``version``: the o= line's session
    version, which each new offer of a session raises (RFC 3264 8); ``direction``:
    hold is sendonly or inactive (RFC 3264 8.4)."""
    chosen = [OFFER_CODECS[name] for name in codecs or DEFAULT_OFFER]
    lines = [*_head(address, session_id, version),
             f"m=audio {_BASE_PORT} RTP/AVP {' '.join(pt for pt, _, _ in chosen)}"]
    for pt, rtpmap, fmtp in chosen:
        lines.append(f"a=rtpmap:{pt} {rtpmap}")
        if fmtp is not None:
            lines.append(f"a=fmtp:{pt} {fmtp}")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def make_answer(offer: bytes, address: str, session_id: int,
                audio: tuple[int, str] | None = None) -> bytes | None:
    """An answer with one m-line per offered m-line, in order; None if no m-line.
    ``audio``: (our RTP port, the payload type we send) for the first active audio
    stream, when a real stream of ours answers it (call/offer.py), in place of the
    offerer's first codec on a port nobody reads."""
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
        port = _BASE_PORT + 2 * i
        if audio is not None and m.kind == "audio":
            port, chosen = audio
            audio = None  # the first active audio stream only
        events = [pt for pt in fmts if rtpmap.get(pt, "").lower().startswith("telephone-event/")]
        pts = [chosen, *(e for e in events if e != chosen)]
        lines.append(f"m={m.kind} {port} {m.proto} {' '.join(pts)}")
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


DIRECTIONS = frozenset(_DIRECTIONS)


@dataclass(slots=True, frozen=True)
class OfferSummary:
    """What rule conditions and templates read from an offer, over its active streams
    (m-lines whose port is not 0: RFC 3264 5.1, port 0 offers a stream disabled).

    ``codecs``: "encoding name/clock rate[/encoding parameters]" as the offer spells
    them (a=rtpmap, else the RFC 3551 static type), in offer order, once each.
    ``codec_keys``: the same lowercased, plus each "name/rate" without its parameters,
    so that "opus/48000" finds "opus/48000/2". ``directions``: each stream's
    direction attribute, its own else the session's else sendrecv (RFC 3264 5.1).
    ``connection``: the session-level c= address, else the first media-level one.
    """

    media: tuple[str, ...]
    codecs: tuple[str, ...]
    codec_keys: frozenset[str]
    directions: tuple[str, ...]
    connection: str


@dataclass(slots=True)
class _Stream:
    kind: str
    active: bool
    rtp: bool
    fmts: list[str]
    rtpmap: dict[str, str] = field(default_factory=dict)
    direction: str | None = None


def read_offer(body: bytes) -> OfferSummary | None:
    """The summary of an SDP body, or None when it is not one (no v= line first).

    Lenient where RFC 4566 5 is strict (LF alone ends a line, unknown or broken lines
    are skipped): conditions must be decidable on whatever a client sends. The lines
    read (RFC 4566 9):

        proto-version    = %x76 "=" 1*DIGIT CRLF
        connection-field = [%x63 "=" nettype SP addrtype SP connection-address CRLF]
        media-field      = %x6d "=" media SP port ["/" integer] SP proto 1*(SP fmt) CRLF
        attribute-fields = *(%x61 "=" attribute CRLF)
        attribute        = (att-field ":" att-value) / att-field
    and the rtpmap attribute (RFC 4566 6):
        a=rtpmap:<payload type> <encoding name>/<clock rate> [/<encoding parameters>]
    """
    text = body.decode("utf-8", "replace")
    lines = [raw.strip() for raw in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines or not lines[0].startswith("v="):
        return None
    streams: list[_Stream] = []
    session_dir: str | None = None
    session_conn = ""
    media_conn = ""
    for line in lines[1:]:
        kind, _, value = line.partition("=")
        if kind == "m":
            parts = value.split()
            if len(parts) < 4:
                continue  # not a media-field: skipped, like any broken line
            port = parts[1].partition("/")[0]
            streams.append(_Stream(parts[0], port != "0", "RTP/" in parts[2].upper(), parts[3:]))
        elif kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                # connection-address may carry "/ttl[/count]" for multicast: the host only.
                address = parts[2].partition("/")[0]
                if not streams:
                    session_conn = address
                elif not media_conn:
                    media_conn = address
        elif kind == "a":
            target = streams[-1] if streams else None
            if value in DIRECTIONS:
                if target is None:
                    session_dir = value
                else:
                    target.direction = value
            elif target is not None and value.startswith("rtpmap:"):
                pt, _, encoding = value[len("rtpmap:"):].partition(" ")
                encoding = encoding.strip()
                if encoding:
                    target.rtpmap[pt.strip()] = encoding
    media: list[str] = []
    codecs: dict[str, None] = {}  # ordered, once each
    directions: list[str] = []
    for s in streams:
        if not s.active:
            continue
        media.append(s.kind)
        directions.append(s.direction or session_dir or "sendrecv")
        if not s.rtp:
            continue  # fmt is not a payload type outside RTP (RFC 4566 5.14)
        for pt in s.fmts:
            name = s.rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
            if name:
                codecs.setdefault(name)
    keys: set[str] = set()
    for name in codecs:
        low = name.lower()
        keys.add(low)
        encoding, _, rest = low.partition("/")
        keys.add(f"{encoding}/{rest.partition('/')[0]}")
    return OfferSummary(
        tuple(media), tuple(codecs), frozenset(keys), tuple(directions),
        session_conn or media_conn,
    )
