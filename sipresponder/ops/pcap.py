"""Journal entries as a classic pcap file (``GET /api/requests.pcap``, ``sipresponder pcap``).

Sans-I/O: entries in, the file's octets out. Each request and each response is its
own packet, with the real addresses and ports, a retransmitted response as many
times as it was sent (``JournalEntry.retransmitted``), at its real time: one clock
for the whole file, as a live capture has, the journal's (monotonic, in
microseconds, stamped in the order the messages crossed the wire: journal/record.py
``Journal.stamp``), put on the calendar by the first entry's wall-clock arrival.
Sorted by it, the packets are in the order of a capture of the same exchange. The
framing is synthetic: Ethernet (locally administered MACs), IPv4 or IPv6, and UDP for
udp entries or TCP for every stream transport. Checksums are computed, so no dissector
flags them. A response is written back to the address its request came from (the
journal keeps no other; RFC 3261 18.2.2 sends it there unless the Via says otherwise).
A request the responder sent (``JournalEntry.direction`` "sent", the far end's) is
written from its local address to its remote one, and the client's answers back.

TCP: each (peer, responder) address pair is one connection, opened by a synthetic
three-way handshake just before its first message (from whichever side sent it: a
far end calling in opens its own connection); sequence and acknowledgement
numbers then follow the octets each side sent, so Wireshark's TCP analysis sees no
gap, overlap or unseen ACK and reassembles each SIP message from its Content-Length.
A message over ``SEGMENT`` octets is split into segments.

tls and wss entries are written without TLS: the journal holds the SIP the responder
read, not the records it came in, and re-encrypting them would only hide it. Both
are plain TCP carrying the SIP messages, which Wireshark dissects as SIP by its
heuristic (tried once the TLS dissector refuses the octets on 5061 or 443; an HTTP
upgrade on 443 would draw an "unencrypted HTTP" warning). ws entries are TCP carrying
WebSocket frames (RFC 7118) after a synthetic HTTP upgrade with
``Sec-WebSocket-Protocol: sip``: on a web port (80, 8080) plain TCP would be taken
for HTTP, while this way Wireshark and sngrep follow the upgrade and dissect each
frame's payload as SIP, as it was on the wire.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ..journal.record import JournalEntry
from ..uas.outcome import SENT

MAGIC = 0xA1B2C3D4  # microsecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
SEGMENT = 32768  # octets of TCP payload a packet at most (well under IPv4's 65535)
UDP_MAX = 65507  # octets of UDP payload IPv4 can carry; more is cut (cannot be sent anyway)
PEER_MAC = bytes.fromhex("020000000001")
RESPONDER_MAC = bytes.fromhex("020000000002")
PEER_ISN = 0x10000000  # initial sequence numbers of the synthetic connections
RESPONDER_ISN = 0x50000000
HANDSHAKE_LEAD = 1e-6  # s: the handshake's packets come this much before the first message

_SYN, _ACK, _PSH = 0x02, 0x10, 0x08
WEBSOCKET = ("ws",)  # framed as WebSocket; wss is written as tls is (see the docstring)
# The responder's answer to the synthetic upgrade (the accept value of RFC 6455's own
# example key, the one the upgrade sends).
WS_ACCEPTED = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kACCzm4l0ETVaI=\r\n"
               b"Sec-WebSocket-Protocol: sip\r\n\r\n")


@dataclass(slots=True)
class Message:
    """One message on the wire: when, which way, what."""

    time: float  # seconds since the epoch
    transport: str
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    from_peer: bool
    order: int = 0  # ties in time keep the journal's order


def messages(entries: Iterable[JournalEntry]) -> list[Message]:
    """The requests and responses of ``entries`` in time order."""
    ordered = sorted(entries, key=lambda e: e.seq)
    if not ordered:
        return []
    # Each entry's own wall clock would put a response of one entry and the request of
    # another in whatever order the two clocks' skew says (NTP slews the wall clock):
    # the journal's clock orders, one arrival dates.
    epoch = ordered[0].received_at.timestamp() - ordered[0].time
    out: list[Message] = []
    for entry in ordered:
        local = _local(entry)
        # from_peer: which side of a synthetic TCP connection (peer, responder) sent it.
        asked = entry.direction != SENT
        src, dst = (entry.remote, local) if asked else (local, entry.remote)
        out.append(Message(entry.time, entry.transport, src, dst, entry.raw, asked))
        for i, response in enumerate(entry.responses):
            sent = entry.response_times[i] if i < len(entry.response_times) else entry.time
            out.append(Message(max(sent, entry.time), entry.transport, dst, src, response,
                               not asked))
    for order, message in enumerate(out):
        message.order = order
    out.sort(key=lambda m: (m.time, m.order))
    for message in out:
        message.time += epoch
    return out


def _local(entry: JournalEntry) -> tuple[str, int]:
    """The responder's address; an entry recorded without one gets the unspecified
    address of the peer's family (port 0 is a real UDP/TCP value in a header)."""
    if entry.local[0]:
        return entry.local
    return ("::" if ":" in entry.remote[0] else "0.0.0.0", 0)


class _Connection:
    def __init__(self) -> None:
        self.peer_seq = PEER_ISN + 1
        self.responder_seq = RESPONDER_ISN + 1


def write_pcap(entries: Iterable[JournalEntry]) -> bytes:
    """The pcap file of ``entries``: see the module docstring."""
    out = [struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    connections: dict[tuple[tuple[str, int], tuple[str, int]], _Connection] = {}
    for message in messages(entries):
        if message.transport == "udp":
            data = message.data[:UDP_MAX]
            udp = _udp(message.src, message.dst, data)
            out.append(_record(message.time, _frame(message, 17, udp)))
            continue
        peer, responder = ((message.src, message.dst) if message.from_peer
                           else (message.dst, message.src))
        conn = connections.get((peer, responder))
        if conn is None:
            conn = connections[(peer, responder)] = _Connection()
            lead = 5 if message.transport in WEBSOCKET else 3
            start = message.time - lead * HANDSHAKE_LEAD
            # Only the client opens a WebSocket (the far end reuses its connection).
            out.extend(_handshake(start, peer, responder,
                                  message.from_peer or message.transport in WEBSOCKET))
            if message.transport in WEBSOCKET:
                upgrade = Message(start + 3 * HANDSHAKE_LEAD, "tcp", peer, responder,
                                  _ws_upgrade(responder), True)
                accepted = Message(start + 4 * HANDSHAKE_LEAD, "tcp", responder, peer,
                                   WS_ACCEPTED, False)
                out += _segments(conn, upgrade) + _segments(conn, accepted)
        if message.transport in WEBSOCKET:
            message.data = _ws_frame(message.data, masked=message.from_peer,
                                     key=conn.peer_seq if message.from_peer else 0)
        out += _segments(conn, message)
    return b"".join(out)


def _segments(conn: _Connection, message: Message) -> list[bytes]:
    """``message`` as TCP segments of ``conn``, its sequence numbers moved on."""
    out = []
    for start in range(0, max(len(message.data), 1), SEGMENT):
        chunk = message.data[start:start + SEGMENT]
        if message.from_peer:
            seq, ack = conn.peer_seq, conn.responder_seq
            conn.peer_seq = (conn.peer_seq + len(chunk)) & 0xFFFFFFFF
        else:
            seq, ack = conn.responder_seq, conn.peer_seq
            conn.responder_seq = (conn.responder_seq + len(chunk)) & 0xFFFFFFFF
        segment = _tcp(message.src, message.dst, seq, ack, _ACK | _PSH, chunk)
        out.append(_record(message.time, _frame(message, 6, segment)))
    return out


def _ws_upgrade(responder: tuple[str, int]) -> bytes:
    host = f"[{responder[0]}]" if ":" in responder[0] else responder[0]
    return (f"GET / HTTP/1.1\r\nHost: {host}:{responder[1]}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n").encode()


def _ws_frame(data: bytes, masked: bool, key: int) -> bytes:
    """One final WebSocket frame (RFC 6455 5.2): text when ``data`` is UTF-8 (RFC 7118
    lets either carry SIP), masked from the client as the RFC requires."""
    try:
        data.decode("utf-8")
        opcode = 0x1
    except UnicodeDecodeError:
        opcode = 0x2
    mask_bit = 0x80 if masked else 0
    size = len(data)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, mask_bit | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, mask_bit | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, mask_bit | 127, size)
    if not masked:
        return head + data
    mask = struct.pack("!I", key & 0xFFFFFFFF)
    repeated = (mask * (size // 4 + 1))[:size]
    body = (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
    return head + mask + body


def _handshake(time: float, peer: tuple[str, int], responder: tuple[str, int],
               by_peer: bool = True) -> list[bytes]:
    """SYN, SYN-ACK, ACK from the side that opens (``by_peer``: the peer)."""
    opener, opener_isn, other_isn = ((True, PEER_ISN, RESPONDER_ISN) if by_peer
                                     else (False, RESPONDER_ISN, PEER_ISN))
    steps = [
        (opener, opener_isn, 0, _SYN),
        (not opener, other_isn, opener_isn + 1, _SYN | _ACK),
        (opener, opener_isn + 1, other_isn + 1, _ACK),
    ]
    out = []
    for i, (from_peer, seq, ack, flags) in enumerate(steps):
        src, dst = (peer, responder) if from_peer else (responder, peer)
        segment = _tcp(src, dst, seq, ack, flags, b"")
        out.append(_record(time + i * HANDSHAKE_LEAD,
                           _frame(Message(time, "tcp", src, dst, b"", from_peer), 6, segment)))
    return out


def _record(time: float, frame: bytes) -> bytes:
    seconds = int(time)
    micros = min(round((time - seconds) * 1_000_000), 999_999)
    captured = frame[:SNAPLEN]
    return struct.pack("<IIII", seconds, micros, len(captured), len(frame)) + captured


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # a scope id is not on the wire
    except ValueError:  # not an address (an entry built by hand): the unspecified one
        return ipaddress.IPv4Address(0)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _addresses(src: tuple[str, int], dst: tuple[str, int]
               ) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                          ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Both in one family: an IPv4 peer of an IPv6 responder (or the reverse) is
    written as IPv4-mapped IPv6."""
    s, d = _ip(src[0]), _ip(dst[0])
    if s.version != d.version:
        s = ipaddress.IPv6Address(f"::ffff:{s}") if s.version == 4 else s
        d = ipaddress.IPv6Address(f"::ffff:{d}") if d.version == 4 else d
    return s, d


def _frame(message: Message, protocol: int, payload: bytes) -> bytes:
    """Ethernet + IP around ``payload``."""
    s, d = _addresses(message.src, message.dst)
    macs = (RESPONDER_MAC + PEER_MAC) if message.from_peer else (PEER_MAC + RESPONDER_MAC)
    if s.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64,
                             protocol, 0, s.packed, d.packed)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return macs + b"\x08\x00" + header + payload
    header = struct.pack("!IHBB16s16s", 0x60000000, len(payload), protocol, 64, s.packed,
                         d.packed)
    return macs + b"\x86\xdd" + header + payload


def _pseudo_header(src: tuple[str, int], dst: tuple[str, int], protocol: int,
                   length: int) -> bytes:
    s, d = _addresses(src, dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, protocol, length)
    return s.packed + d.packed + struct.pack("!IxxxB", length, protocol)


def _udp(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> bytes:
    length = 8 + len(data)
    header = struct.pack("!HHHH", src[1], dst[1], length, 0)
    checksum = _checksum(_pseudo_header(src, dst, 17, length) + header + data) or 0xFFFF
    return header[:6] + struct.pack("!H", checksum) + data


def _tcp(src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int,
         data: bytes) -> bytes:
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    checksum = _checksum(_pseudo_header(src, dst, 6, len(header) + len(data)) + header + data)
    return header[:16] + struct.pack("!H", checksum) + header[18:] + data


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
