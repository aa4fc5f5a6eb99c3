"""The pcap writer, read back with struct: headers, checksums, TCP sequence numbers,
WebSocket frames, times."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sipresponder.journal.record import JournalEntry
from sipresponder.ops.pcap import (
    MAGIC,
    PEER_ISN,
    RESPONDER_ISN,
    SEGMENT,
    write_pcap,
)
from tests.unit.ops.exchanges import (
    CANCEL_FRAMES,
    HANGUP_FRAMES,
    TIMER_G_FRAMES,
    UDP,
    Frame,
    cancelled_call,
    hangup_call,
    timer_g_call,
)

ARRIVAL = datetime(2026, 12, 1, 8, 0, 0, 250000, tzinfo=UTC)
REQUEST = (b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-1"
           b"\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
RESPONSE = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"


def entry(seq: int, transport: str = "udp", remote: tuple[str, int] = ("127.0.0.1", 40000),
          local: tuple[str, int] = ("127.0.0.1", 5060), raw: bytes = REQUEST,
          responses: list[bytes] | None = None, time: float = 100.0,
          response_times: list[float] | None = None) -> JournalEntry:
    responses = [RESPONSE] if responses is None else responses
    return JournalEntry(seq, time, transport, remote, raw, local=local, responses=responses,
                        response_times=response_times or [time] * len(responses),
                        received_at=ARRIVAL + timedelta(seconds=time - 100.0))


@dataclass
class Packet:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    protocol: str
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0


def checksum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def read(data: bytes) -> list[Packet]:
    magic, major, minor, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, linktype) == (MAGIC, 2, 4, 1)
    packets, offset = [], 24
    while offset < len(data):
        seconds, micros, captured, length = struct.unpack_from("<IIII", data, offset)
        assert captured == length
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        ethertype = struct.unpack_from("!H", frame, 12)[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            assert ip[0] == 0x45 and checksum_ok(ip[:20])
            assert struct.unpack_from("!H", ip, 2)[0] == len(ip)
            protocol, src, dst = ip[9], ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
            body = ip[20:]
            pseudo = ip[12:20] + struct.pack("!BBH", 0, protocol, len(body))
        else:
            assert ethertype == 0x86DD
            assert struct.unpack_from("!H", ip, 4)[0] == len(ip) - 40
            protocol, src, dst = ip[6], ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
            body = ip[40:]
            pseudo = ip[8:40] + struct.pack("!IxxxB", len(body), protocol)
        assert checksum_ok(pseudo + body), "transport checksum"
        sport, dport = struct.unpack_from("!HH", body)
        when = seconds + micros / 1e6
        if protocol == 17:
            assert struct.unpack_from("!H", body, 4)[0] == len(body)
            packets.append(Packet(when, (str(src), sport), (str(dst), dport), "udp", body[8:]))
        else:
            assert protocol == 6
            seq, ack, offset_byte, flags = struct.unpack_from("!IIBB", body, 4)
            header = (offset_byte >> 4) * 4
            packets.append(Packet(when, (str(src), sport), (str(dst), dport), "tcp",
                                  body[header:], seq, ack, flags))
    assert offset == len(data)
    return packets


def test_udp_request_and_response_with_their_addresses_and_times() -> None:
    late = entry(1, responses=[b"SIP/2.0 180 Ringing\r\n\r\n", RESPONSE],
                 response_times=[100.0, 101.5])
    packets = read(write_pcap([late]))
    assert [(p.src, p.dst, p.payload) for p in packets] == [
        (("127.0.0.1", 40000), ("127.0.0.1", 5060), REQUEST),
        (("127.0.0.1", 5060), ("127.0.0.1", 40000), b"SIP/2.0 180 Ringing\r\n\r\n"),
        (("127.0.0.1", 5060), ("127.0.0.1", 40000), RESPONSE),
    ]
    start = ARRIVAL.timestamp()
    assert [round(p.time - start, 6) for p in packets] == [0.0, 0.0, 1.5]


def test_packets_in_time_order_across_entries() -> None:
    first = entry(1, response_times=[103.0])  # its response after the next request
    second = entry(2, time=102.0, remote=("127.0.0.1", 40001))
    times = [p.time for p in read(write_pcap([second, first]))]
    assert times == sorted(times) and len(times) == 4


def test_ipv6() -> None:
    [request, response] = read(write_pcap([entry(1, remote=("::1", 40000), local=("::1", 5060))]))
    assert (request.src, request.dst) == (("::1", 40000), ("::1", 5060))
    assert response.payload == RESPONSE


def test_tcp_connection_handshake_then_sequence_numbers_follow_the_octets() -> None:
    entries = [entry(1, "tcp"), entry(2, "tcp", time=101.0), entry(3, "tcp", time=102.0,
                                                                   remote=("127.0.0.1", 40001))]
    packets = read(write_pcap(entries))
    one = [p for p in packets if 40000 in (p.src[1], p.dst[1])]
    assert [p.flags for p in one[:3]] == [0x02, 0x12, 0x10]  # SYN, SYN-ACK, ACK
    assert (one[0].seq, one[1].seq, one[1].ack) == (PEER_ISN, RESPONDER_ISN, PEER_ISN + 1)
    data = one[3:]
    assert [p.payload for p in data] == [REQUEST, RESPONSE] * 2
    peer_seq, responder_seq = PEER_ISN + 1, RESPONDER_ISN + 1
    for packet in data:
        if packet.src[1] == 40000:
            assert (packet.seq, packet.ack) == (peer_seq, responder_seq)
            peer_seq += len(packet.payload)
        else:
            assert (packet.seq, packet.ack) == (responder_seq, peer_seq)
            responder_seq += len(packet.payload)
    # The second peer's connection has its own handshake.
    assert [p.flags for p in packets if 40001 in (p.src[1], p.dst[1])][:3] == [0x02, 0x12, 0x10]


def test_a_large_tcp_message_is_split_into_segments() -> None:
    big = REQUEST + b"x" * (2 * SEGMENT)
    packets = read(write_pcap([entry(1, "tcp", raw=big, responses=[])]))[3:]
    assert [len(p.payload) for p in packets] == [SEGMENT, SEGMENT, len(REQUEST)]
    assert b"".join(p.payload for p in packets) == big
    assert packets[1].seq == packets[0].seq + SEGMENT


def test_tls_and_wss_entries_are_plain_tcp() -> None:
    for transport in ("tls", "wss"):
        packets = read(write_pcap([entry(1, transport, local=("127.0.0.1", 5061))]))
        assert [p.payload for p in packets[3:]] == [REQUEST, RESPONSE]


def test_ws_entries_are_websocket_frames_after_an_upgrade() -> None:
    packets = read(write_pcap([entry(1, "ws", local=("127.0.0.1", 8080))]))[3:]
    upgrade, accepted, request, response = (p.payload for p in packets)
    assert upgrade.startswith(b"GET / HTTP/1.1\r\n") and b"Sec-WebSocket-Protocol: sip" in upgrade
    assert accepted.startswith(b"HTTP/1.1 101 ")
    # Client frames are masked (RFC 6455 5.3), the server's are not.
    assert request[0] == 0x81 and request[1] == 0x80 | 126
    size = struct.unpack_from("!H", request, 2)[0]
    mask, body = request[4:8], request[8:]
    assert size == len(REQUEST) == len(body)
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == REQUEST
    assert response[:2] == bytes([0x81, len(RESPONSE)]) and response[2:] == RESPONSE


def test_an_empty_journal_is_a_valid_file_and_odd_input_does_not_crash() -> None:
    assert read(write_pcap([])) == []
    odd = [entry(1, raw=b"\xff" * 3, responses=[b"garbage"], response_times=[]),
           entry(2, local=("", 0)), entry(3, remote=("::ffff:127.0.0.1", 1), local=("::", 5060)),
           entry(4, remote=("not-an-address", 1), local=("fe80::1%lo", 5060))]
    packets = read(write_pcap(odd))
    assert [p.payload for p in packets[:2]] == [b"\xff" * 3, b"garbage"]
    assert packets[2].dst == ("0.0.0.0", 0)
    assert (packets[4].src, packets[4].dst) == (("::ffff:7f00:1", 1), ("::", 5060))
    assert (packets[6].src, packets[6].dst) == (("::ffff:0:0", 1), ("fe80::1", 5060))


def wire_frames(packets: list[Packet]) -> list[Frame]:
    """(from the peer?, method or code, CSeq) of each packet, as tshark lists them."""
    out = []
    for packet in packets:
        head = packet.payload.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
        words = head[0].split(" ")
        what = words[1] if words[0] == "SIP/2.0" else words[0]
        cseq = next(line.split(":", 1)[1].strip() for line in head
                    if line.lower().startswith("cseq:"))
        out.append((packet.src == UDP.remote, what, cseq))
    return out


def test_a_cancelled_call_has_six_packets_like_the_wire() -> None:
    """Seven before: the 487 was on the CANCEL's entry too, and the first copy came
    before the CANCEL."""
    packets = read(write_pcap(cancelled_call()))
    assert wire_frames(packets) == CANCEL_FRAMES
    assert [p.time for p in packets] == sorted(p.time for p in packets)


def test_timer_g_retransmissions_are_packets_at_their_times() -> None:
    entries = timer_g_call()
    packets = read(write_pcap(entries))
    assert wire_frames(packets) == TIMER_G_FRAMES
    start = entries[0].received_at.timestamp()
    assert [round(p.time - start, 6) for p in packets] == [
        0.0, 0.000001, 0.000002, 0.5, 1.5, 1.6]


def test_one_clock_orders_the_file_whatever_each_arrival_says() -> None:
    """A response of one entry and the next entry's request 2 us apart on the journal's
    clock, while the wall clock read at the second arrival was slewed 1 ms back: the
    file keeps the journal's order (it followed each entry's wall clock before)."""
    first = entry(1, response_times=[100.000003])
    second = entry(2, time=100.000001, remote=("127.0.0.1", 40001))
    second.received_at = ARRIVAL + timedelta(seconds=0.000001 - 0.001)
    packets = read(write_pcap([first, second]))
    assert [(p.src[1], p.dst[1]) for p in packets] == [
        (40000, 5060), (40001, 5060), (5060, 40001), (5060, 40000)]
    assert [round(p.time - ARRIVAL.timestamp(), 6) for p in packets] == [
        0.0, 0.000001, 0.000001, 0.000003]


def test_a_sent_request_goes_from_the_responder_and_its_answer_back() -> None:
    """The far end's BYE: src the responder's address, dst the client's; the client's
    200 the other way, 50 ms later, in the file's time order."""
    entries = hangup_call()
    packets = read(write_pcap(entries))
    assert wire_frames(packets) == HANGUP_FRAMES
    bye, ok = packets[3:]
    assert (bye.src, bye.dst) == (UDP.local, UDP.remote)
    assert (ok.src, ok.dst) == (UDP.remote, UDP.local)
    assert round(ok.time - bye.time, 6) == 0.05
    assert [p.time for p in packets] == sorted(p.time for p in packets)


def test_a_sent_request_on_its_own_tcp_connection_is_opened_by_the_responder() -> None:
    """A far end calling in over TCP opens the connection: its SYN comes first, and the
    sequence numbers still follow each side's octets."""
    [*_, bye] = hangup_call("tcp")
    packets = read(write_pcap([bye]))
    syn, syn_ack, ack, request, answer = packets
    assert (syn.src, syn.flags, syn.seq) == (UDP.local, 0x02, RESPONDER_ISN)
    assert (syn_ack.src, syn_ack.flags, syn_ack.ack) == (UDP.remote, 0x12, RESPONDER_ISN + 1)
    assert (ack.src, ack.seq, ack.ack) == (UDP.local, RESPONDER_ISN + 1, PEER_ISN + 1)
    assert (request.src, request.seq, request.ack) == (UDP.local, RESPONDER_ISN + 1,
                                                       PEER_ISN + 1)
    assert request.payload == bye.raw
    assert (answer.src, answer.seq, answer.ack) == (
        UDP.remote, PEER_ISN + 1, RESPONDER_ISN + 1 + len(bye.raw))
