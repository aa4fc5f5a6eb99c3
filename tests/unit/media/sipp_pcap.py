"""The RTP packets of SIPp's bundled pcaps (Debian's sip-tester: /usr/share/sip-tester),
read by a tiny pcap reader (classic libpcap format, Ethernet, IPv4, UDP): no scapy.

``udp_payloads(name)`` skips the test, with the reason, when the file is missing, and
fails it under CI=true, as tests/conftest.py's ``require_binary`` does for binaries.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

SIPP_PCAPS = Path("/usr/share/sip-tester")


def sipp_pcap(name: str) -> Path:
    path = SIPP_PCAPS / name
    if not path.is_file():
        message = f"{path} is missing (apt-get install sip-tester); the test reads it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def read_udp_payloads(data: bytes) -> list[bytes]:
    """The UDP payloads of a little- or big-endian classic pcap of Ethernet frames."""
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise ValueError(f"not a classic pcap file (magic {magic.hex()})")
    (link_type,) = struct.unpack_from(order + "I", data, 20)
    assert link_type == 1, f"link type {link_type}: this reader knows Ethernet (1) only"
    out = []
    offset = 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16: offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue  # not IPv4
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 17:
            continue  # not UDP
        (total,) = struct.unpack_from("!H", ip, 2)
        udp = ip[header:total]
        (length,) = struct.unpack_from("!H", udp, 4)
        out.append(bytes(udp[8:length]))
    return out


def udp_payloads(name: str) -> list[bytes]:
    return read_udp_payloads(sipp_pcap(name).read_bytes())
