"""Message framing on stream transports (RFC 3261 18.3, RFC 5626 3.5.1 keep-alives)."""

from __future__ import annotations

from dataclasses import dataclass

from .fastpath import content_lengths
from .message import find_header_end, too_large


@dataclass(slots=True)
class Message:
    data: bytes


@dataclass(slots=True, frozen=True)
class Ping:
    """A CRLFCRLF keep-alive; the answer is a single CRLF (RFC 5626 3.5.1)."""


@dataclass(slots=True, frozen=True)
class FramingError:
    """The stream cannot be framed any further: answer ``head`` if possible, then close."""

    head: bytes
    code: int
    reason: str


PING = Ping()
Frame = Message | Ping | FramingError


class StreamFramer:
    """Cuts a byte stream into SIP messages; buffers at most ``max_message_size`` octets.

    Work per feed is proportional to the octets fed, not to the octets buffered: a
    peer that sends a big message one octet per segment must not cost quadratic time.
    ``_scanned`` is how much of the buffer is known to hold no header end, and
    ``_expect`` the total length of the message whose header section is already read.

    Mirrored in C by ``stream_total`` (csrc/scan.h) for a plain Content-Length.
    """

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._scanned = 0
        self._expect = 0
        self.failed = False

    @property
    def pending(self) -> int:
        """Octets of an incomplete message held in the buffer."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        if self.failed:
            return []
        buf = self._buffer
        buf += data
        frames: list[Frame] = []
        if self._expect:
            if len(buf) < self._expect:
                return frames  # still inside the body
            frames.append(Message(bytes(buf[: self._expect])))
            del buf[: self._expect]
            self._expect = 0
        while buf:
            if buf[0] in b"\r\n":
                # CRLFs between messages are keep-alives (RFC 3261 7.5, RFC 5626 3.5.1).
                if buf.startswith(b"\r\n\r\n"):
                    del buf[:4]
                    frames.append(PING)
                    continue
                if len(buf) < 4 and b"\r\n\r".startswith(buf):
                    break  # "\r", "\r\n" or "\r\n\r": maybe the start of a ping
                del buf[: 2 if buf.startswith(b"\r\n") else 1]
                continue
            head_end, body_start = find_header_end(buf, max(0, self._scanned - 3))
            if head_end < 0:
                if len(buf) > self.max_message_size:
                    frames.append(self._too_large(bytes(buf[:4096])))
                else:
                    self._scanned = len(buf)
                break
            self._scanned = 0
            if body_start > self.max_message_size:
                # The header section alone is too big: the same answer whether it came
                # in one segment or trickled in (and went over the limit unfinished).
                frames.append(self._too_large(bytes(buf[:4096])))
                break
            head = bytes(buf[:head_end])
            lengths = content_lengths(head)
            if not lengths:
                frames.append(self._fail(head, 400, "Missing Content-Length header field"))
                break
            if len(lengths) > 1:
                frames.append(self._fail(head, 400, "Multiple Content-Length header fields"))
                break
            text = lengths[0].strip()
            if not text.isdigit():
                frames.append(self._fail(head, 400, "Invalid Content-Length header field"))
                break
            # Compare lengths first so a 10**100 never becomes a big integer.
            if len(text.lstrip(b"0")) > 9 or body_start + int(text) > self.max_message_size:
                # Answer before the body arrives: never buffer a huge declared body.
                frames.append(self._too_large(head))
                break
            total = body_start + int(text)
            if len(buf) < total:
                self._expect = total
                break
            frames.append(Message(bytes(buf[:total])))
            del buf[:total]
        return frames

    def _too_large(self, head: bytes) -> FramingError:
        # The same answer the parser and the engine give a datagram over the limits.
        return self._fail(head, *too_large(f"over {self.max_message_size} octets"))

    def _fail(self, head: bytes, code: int, reason: str) -> FramingError:
        self.failed = True
        self._buffer.clear()
        return FramingError(head, code, reason)
