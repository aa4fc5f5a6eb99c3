"""A rule's ``fault`` and ``repeat_final`` applied to its final response: plain
functions of a ``Send`` and the engine's seeded ``random.Random``, without I/O.

Connection faults become a ``Send`` that closes (or resets) its stream; on UDP,
which has no connection, they send nothing. Malformed faults replace the octets by
ones a strict SIP parser must refuse.
"""

from __future__ import annotations

import random
import re

from ..scenario.model import CONNECTION_FAULTS, Behaviour
from .events import Send

# The line a "broken-header" response carries after its status line: no colon, so no
# header field (RFC 3261 7.3 / RFC 5234 message-header).
BROKEN_LINE = b"This line is not a header field\r\n"
# How many octets more than the body a "bad-content-length" response claims: a
# stream client waits for octets that never come, a datagram is short (RFC 3261 18.3).
EXTRA_LENGTH = 100
_CONTENT_LENGTH = re.compile(rb"\r\n(?:Content-Length|l)[ \t]*:[ \t]*(\d+)", re.IGNORECASE)


def apply(behaviour: Behaviour, send: Send, rng: random.Random) -> list[Send]:
    """What to send in place of the final response ``send``."""
    fault = behaviour.fault
    if fault is None:
        out = [send]
    elif fault in CONNECTION_FAULTS:
        if send.transport == "udp":
            return []  # no connection to close: the fault is not answering
        data = send.data if fault.endswith("-after") else b""
        return [
            Send(data, send.transport, send.remote, send.conn, True, fault.startswith("reset"))
        ]
    else:
        out = [Send(malform(fault, send.data, rng), send.transport, send.remote, send.conn)]
    if behaviour.repeat_final and send.data:
        out = out + out
    return out


def malform(fault: str, data: bytes, rng: random.Random) -> bytes:
    """``data`` (a serialized response) made malformed the way ``fault`` names."""
    if not data:
        return data  # withheld (settings.max_amplification): nothing to break
    if fault == "truncated":
        # Cut inside the header section so that the empty line that ends it never
        # comes: no parser can take this for a whole message.
        end = data.find(b"\r\n\r\n")
        cut = len(data) // 2 if end < 0 else min(len(data) // 2, end)
        return data[: max(1, cut)]
    if fault == "bad-content-length":
        found = _CONTENT_LENGTH.search(data)
        if found is None:
            return data
        wrong = str(int(found.group(1)) + EXTRA_LENGTH).encode()
        return data[: found.start(1)] + wrong + data[found.end(1) :]
    if fault == "broken-header":
        eol = data.find(b"\r\n")
        return data[: eol + 2] + BROKEN_LINE + data[eol + 2 :]
    if fault == "random-bytes":
        # Never a status line by chance: the first octet is not 'S'.
        noise = bytearray(rng.randbytes(len(data)))
        if noise[0] == ord("S"):
            noise[0] = 0
        return bytes(noise)
    raise ValueError(f"unknown fault {fault!r}")
