"""What an INVITE's SDP offer lets a media stream of ours do, and our answer
(RFC 3264 6), sans-I/O.

The first active audio stream (port not 0, an RTP profile) is the one we answer with a
real stream: the first of PCMU and PCMA in the offerer's order (RFC 3264 6.1: "the
answerer SHOULD use the ... most preferred" of the formats it supports), with
telephone-event when offered (RFC 4733 7.1.1); the address our packets start towards
is its c= line's (media-level, else session-level) and its port. An offer with no such
stream, or none of our codecs, gets no stream (None): the answer is then the plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip.sdp import STATIC_PAYLOAD_TYPES, make_answer
from .media import Negotiated

CODECS = ("PCMU", "PCMA")


@dataclass(frozen=True, slots=True)
class AudioOffer:
    """The offer's first active audio stream: where it listens and its formats with
    their encoding names (rtpmap, else the static type's)."""

    address: str
    port: int
    formats: tuple[tuple[str, str], ...]

    def choose(self) -> Negotiated | None:
        codec = next(((pt, name) for pt, name in self.formats
                      if name.split("/")[0].upper() in CODECS), None)
        if codec is None:
            return None
        event = next((pt for pt, name in self.formats
                      if name.lower().startswith("telephone-event/")), None)
        remote = (self.address, self.port) if self.address and self.port else None
        return Negotiated(codec[1].split("/")[0].upper(), int(codec[0]),
                          int(event) if event is not None else None, remote)


def audio_offer(body: bytes) -> AudioOffer | None:
    """The first active audio RTP stream of an SDP body (lenient as sip/sdp.py's
    read_offer: broken lines are skipped), or None."""
    text = body.decode("utf-8", "replace")
    session_address = ""
    address = ""
    port = 0
    formats: list[str] = []
    names: dict[str, str] = {}
    found = False
    inside = False  # in the stream we found
    for raw in text.splitlines():
        kind, _, value = raw.strip().partition("=")
        if kind == "m":
            if found:
                break
            parts = value.split()
            # RTP/AVP or RTP/AVPF: a secure profile (RTP/SAVP, SRTP) needs keys we do
            # not have yet (issue 21: SDES, RFC 4568).
            inside = (len(parts) >= 4 and parts[0] == "audio"
                      and parts[2].upper() in ("RTP/AVP", "RTP/AVPF")
                      and parts[1].partition("/")[0].isdigit()
                      and parts[1].partition("/")[0] != "0")
            if inside:
                found = True
                port = int(parts[1].partition("/")[0])
                formats = parts[3:]
        elif kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                host = parts[2].partition("/")[0]
                if not found:
                    session_address = host
                elif inside:
                    address = host
        elif kind == "a" and inside and value.startswith("rtpmap:"):
            pt, _, encoding = value[len("rtpmap:"):].partition(" ")
            if encoding.strip():
                names[pt.strip()] = encoding.strip()
    if not found or not 0 < port < 65536:
        return None
    named = tuple((pt, names.get(pt) or STATIC_PAYLOAD_TYPES.get(pt, "")) for pt in formats)
    return AudioOffer(address or session_address, port, named)


def answer(offer_body: bytes, address: str, session_id: int, port: int
           ) -> tuple[bytes, Negotiated] | None:
    """Our answer with our stream on ``port``, and what it agreed; None when the
    offer has nothing our stream can do."""
    offer = audio_offer(offer_body)
    negotiated = offer.choose() if offer is not None else None
    if negotiated is None:
        return None
    body = make_answer(offer_body, address, session_id, (port, str(negotiated.payload_type)))
    return (body, negotiated) if body is not None else None
