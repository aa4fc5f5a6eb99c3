"""RTCP (RFC 3550 6.4-6.6): sender and receiver reports, SDES, BYE, compound packets,
and the NTP timestamp arithmetic the reports use (RFC 3550 4, 6.4.1).

Every RTCP packet starts with the same word (RFC 3550 6.4.1)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|    RC   |   PT=SR=200   |             length            |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

``length`` is the packet's size in 32-bit words minus one, so a compound packet (RFC
3550 6.1: several packets in one datagram) is walked word-exact. A report block (6.4.1)::

    |                 SSRC_1 (SSRC of first source)                 |
    | fraction lost |       cumulative number of packets lost       |
    |           extended highest sequence number received           |
    |                      interarrival jitter                      |
    |                         last SR (LSR)                         |
    |                   delay since last SR (DLSR)                  |

SR (200): sender SSRC, NTP timestamp (64 bits), RTP timestamp, sender's packet and
octet counts, then RC report blocks; RR (201): sender SSRC then RC report blocks;
both may end with profile-specific extensions (kept as octets). SDES (202, 6.5): SC
chunks, each an SSRC then items (type, length, text) ended by a zero octet and padded
to a word. BYE (203, 6.6): SC SSRCs, then optionally a length octet and a reason.
Other packet types (APP, feedback...) are kept as ``UnknownRtcp``. The datagram comes
from anyone: ``parse_rtcp`` raises nothing but a one-line ``ValueError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

SR, RR, SDES, BYE = 200, 201, 202, 203
SDES_CNAME = 1
# RFC 3550 4: NTP counts seconds from 1900-01-01, Unix time from 1970-01-01.
NTP_UNIX_OFFSET = 2_208_988_800

_HEADER = struct.Struct("!BBH")
_SENDER_INFO = struct.Struct("!IQIII")
_BLOCK = struct.Struct("!IIIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """RFC 3550 6.4.1. ``fraction_lost`` is the 8-bit fixed-point fraction (0-255),
    ``cumulative_lost`` signed (24 bits: duplicates can make it negative), ``jitter`` in
    timestamp units, ``last_sr`` the middle 32 bits of the last SR's NTP timestamp and
    ``delay_since_last_sr`` in units of 1/65536 s."""

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    last_sr: int = 0
    delay_since_last_sr: int = 0


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One source's items: (type, text octets); type 1 is CNAME (RFC 3550 6.5.1)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...]

    @property
    def cname(self) -> str | None:
        for kind, text in self.items:
            if kind == SDES_CNAME:
                return text.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class Sdes:
    chunks: tuple[SdesChunk, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    """``reason``: the octets as sent (RFC 3550 6.6 says UTF-8; a peer may send
    anything), so what is read packs back the same; ``reason_text`` decodes it."""

    ssrcs: tuple[int, ...]
    reason: bytes | None = None

    @property
    def reason_text(self) -> str | None:
        return None if self.reason is None else self.reason.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """A packet type this module does not read (APP, RFC 4585 feedback, XR...):
    its count field and the octets after its first word, padding removed."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | Sdes | Bye | UnknownRtcp


# -- reading ------------------------------------------------------------------------------
def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """The packets of a (compound) RTCP datagram, in order; ValueError (one line)
    when any of them is malformed."""
    if not data:
        raise ValueError("empty RTCP datagram")
    packets: list[RtcpPacket] = []
    offset = 0
    size = len(data)
    while offset < size:
        if size - offset < 4:
            raise ValueError(f"truncated RTCP header at octet {offset}")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise ValueError(f"RTCP version {first >> 6}, not 2 (packet at octet {offset})")
        end = offset + 4 * (words + 1)
        if end > size:
            raise ValueError(f"RTCP packet type {packet_type} announces {4 * (words + 1)} "
                             f"octets, {size - offset} left")
        body_end = end
        if first & 0x20:
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise ValueError(f"RTCP padding of {padding} octets does not fit "
                                 f"packet type {packet_type}")
            body_end = end - padding
        packets.append(_read(packet_type, first & 0x1F, bytes(data[offset + 4:body_end])))
        offset = end
    return packets


def _read(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == SR:
        if len(body) < 24 + 24 * count:
            raise ValueError(f"SR with {count} report blocks needs {24 + 24 * count} "
                             f"octets after its header, has {len(body)}")
        ssrc, ntp, rtp, packets, octets = _SENDER_INFO.unpack_from(body)
        return SenderReport(ssrc, ntp, rtp, packets, octets, _blocks(body, 24, count),
                            _extension(body, 24 + 24 * count, "SR"))
    if packet_type == RR:
        if len(body) < 4 + 24 * count:
            raise ValueError(f"RR with {count} report blocks needs {4 + 24 * count} "
                             f"octets after its header, has {len(body)}")
        return ReceiverReport(int.from_bytes(body[:4], "big"), _blocks(body, 4, count),
                              _extension(body, 4 + 24 * count, "RR"))
    if packet_type == SDES:
        return _read_sdes(count, body)
    if packet_type == BYE:
        return _read_bye(count, body)
    return UnknownRtcp(packet_type, count, body)


def _extension(body: bytes, offset: int, name: str) -> bytes:
    extension = body[offset:]
    if len(extension) % 4:
        # Only padding (P) can make a report's tail ragged: the octets before it are words.
        raise ValueError(f"{name} profile extension of {len(extension)} octets: not whole "
                         "32-bit words")
    return extension


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for index in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + 24 * index)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _read_sdes(count: int, body: bytes) -> Sdes:
    chunks: list[SdesChunk] = []
    offset = 0
    for _ in range(count):
        if len(body) - offset < 4:
            raise ValueError(f"SDES announces {count} chunks, the packet ends at chunk "
                             f"{len(chunks) + 1}")
        ssrc = int.from_bytes(body[offset:offset + 4], "big")
        offset += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if offset >= len(body):
                raise ValueError("SDES chunk without its terminating null item")
            kind = body[offset]
            if kind == 0:
                # The null item ends the chunk; zeros follow up to the next word.
                offset = (offset + 4) & ~3
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise ValueError(f"SDES item type {kind} runs past the packet")
            length = body[offset + 1]
            items.append((kind, body[offset + 2:offset + 2 + length]))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return Sdes(tuple(chunks))


def _read_bye(count: int, body: bytes) -> Bye:
    if len(body) < 4 * count:
        raise ValueError(f"BYE announces {count} SSRC, has room for {len(body) // 4}")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    rest = body[4 * count:]
    reason = None
    if rest:
        if 1 + rest[0] > len(rest):
            raise ValueError(f"BYE reason of {rest[0]} octets runs past the packet")
        reason = rest[1:1 + rest[0]]
    return Bye(ssrcs, reason)


# -- writing ------------------------------------------------------------------------------
def _packet(packet_type: int, count: int, body: bytes, pad_bit: bool = False) -> bytes:
    """``pad_bit``: fill to the word with RTCP padding (P set, the count last), so a
    body of any length reads back exactly; else with zeros, as SDES and BYE define."""
    if not 0 <= count <= 31:
        raise ValueError(f"{count} items in one RTCP packet: the count field holds 0-31")
    first = 0x80 | count
    if len(body) % 4:
        fill = 4 - len(body) % 4
        if pad_bit:
            first |= 0x20
            body += bytes(fill - 1) + bytes((fill,))
        else:
            body += bytes(fill)
    return _HEADER.pack(first, packet_type, len(body) // 4) + body


def _pack_blocks(blocks: tuple[ReportBlock, ...]) -> bytes:
    out = []
    for b in blocks:
        if not -0x800000 <= b.cumulative_lost <= 0x7FFFFF:
            raise ValueError(f"cumulative lost {b.cumulative_lost} does not fit 24 bits "
                             "(clamp it, RFC 3550 A.3)")
        if not 0 <= b.fraction_lost <= 255:
            raise ValueError(f"fraction lost {b.fraction_lost} out of range 0-255")
        out.append(_BLOCK.pack(b.ssrc, b.fraction_lost << 24 | b.cumulative_lost & 0xFFFFFF,
                               b.highest_sequence, b.jitter, b.last_sr,
                               b.delay_since_last_sr))
    return b"".join(out)


def _whole_words(extension: bytes) -> bytes:
    if len(extension) % 4:
        raise ValueError(f"report extension of {len(extension)} octets: not whole words")
    return extension


def pack_sr(report: SenderReport) -> bytes:
    try:
        info = _SENDER_INFO.pack(report.ssrc, report.ntp_timestamp, report.rtp_timestamp,
                                 report.packet_count, report.octet_count)
        return _packet(SR, len(report.reports), info + _pack_blocks(report.reports)
                       + _whole_words(report.extension))
    except struct.error as error:
        raise ValueError(f"SR field out of range: {error}") from None


def pack_rr(report: ReceiverReport) -> bytes:
    try:
        return _packet(RR, len(report.reports), report.ssrc.to_bytes(4, "big")
                       + _pack_blocks(report.reports) + _whole_words(report.extension))
    except (struct.error, OverflowError) as error:
        raise ValueError(f"RR field out of range: {error}") from None


def pack_sdes(sdes: Sdes) -> bytes:
    body = []
    for chunk in sdes.chunks:
        part = [chunk.ssrc.to_bytes(4, "big")]
        for kind, text in chunk.items:
            if not 1 <= kind <= 255 or len(text) > 255:
                raise ValueError(f"SDES item type {kind} of {len(text)} octets: types "
                                 "are 1-255, texts at most 255 octets")
            part.append(bytes((kind, len(text))) + text)
        item_octets = sum(map(len, part)) - 4
        # At least one null octet ends the item list, then zeros to the word.
        part.append(bytes(4 - item_octets % 4))
        body.append(b"".join(part))
    return _packet(SDES, len(sdes.chunks), b"".join(body))


def pack_bye(bye: Bye) -> bytes:
    body = b"".join(s.to_bytes(4, "big") for s in bye.ssrcs)
    if bye.reason is not None:
        if len(bye.reason) > 255:
            raise ValueError(f"BYE reason of {len(bye.reason)} octets: at most 255")
        body += bytes((len(bye.reason),)) + bye.reason
    return _packet(BYE, len(bye.ssrcs), body)


def pack_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """A compound packet (RFC 3550 6.1: it should start with an SR or RR and carry
    an SDES CNAME; the caller chooses the order)."""
    out = []
    for packet in packets:
        if isinstance(packet, SenderReport):
            out.append(pack_sr(packet))
        elif isinstance(packet, ReceiverReport):
            out.append(pack_rr(packet))
        elif isinstance(packet, Sdes):
            out.append(pack_sdes(packet))
        elif isinstance(packet, Bye):
            out.append(pack_bye(packet))
        else:
            if not 0 <= packet.packet_type <= 255:
                raise ValueError(f"RTCP packet type {packet.packet_type} out of range")
            out.append(_packet(packet.packet_type, packet.count, packet.body, pad_bit=True))
    return b"".join(out)


# -- NTP timestamps (RFC 3550 4: 64-bit fixed point, 32.32 seconds since 1900) -------------
def ntp_from_unix(seconds: float) -> int:
    return round((seconds + NTP_UNIX_OFFSET) * 4294967296.0) & 0xFFFF_FFFF_FFFF_FFFF


def unix_from_ntp(ntp: int) -> float:
    return ntp / 4294967296.0 - NTP_UNIX_OFFSET


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: a report block's LSR (RFC 3550 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def dlsr_units(seconds: float) -> int:
    """A delay in the DLSR field's units, 1/65536 s."""
    return max(0, min(0xFFFFFFFF, round(seconds * 65536)))


def round_trip_seconds(arrival_ntp: int, block: ReportBlock) -> float | None:
    """RFC 3550 6.4.1: the round trip A - LSR - DLSR, from a report block that echoes
    one of our SRs, arriving at ``arrival_ntp``; None when the peer had no SR yet."""
    if block.last_sr == 0:
        return None
    units = (ntp_middle(arrival_ntp) - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    return units / 65536.0
