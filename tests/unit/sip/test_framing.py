"""The TCP StreamFramer: Content-Length framing, keep-alives and unrecoverable streams."""

from __future__ import annotations

import pytest

from sipresponder.sip.framing import PING, FramingError, Message, StreamFramer

MAX = 65535


def message(n: int, body: bytes = b"", *, length: str | None = None,
            length_name: str | None = "Content-Length") -> bytes:
    """A request with ``body``; ``length`` overrides the Content-Length value and
    ``length_name=None`` leaves the header out."""
    head = (f"OPTIONS sip:bob@example.com SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK-{n}\r\n"
            f"From: <sip:a@example.com>;tag={n}\r\nTo: <sip:b@example.com>\r\n"
            f"Call-ID: frame-{n}\r\nCSeq: {n} OPTIONS\r\n")
    if length_name is not None:
        head += f"{length_name}: {len(body) if length is None else length}\r\n"
    return head.encode() + b"\r\n" + body


# A body that holds what a text search would mistake for message boundaries.
TRICKY_BODY = b"v=0\r\n\r\nINVITE sip:x SIP/2.0\r\nContent-Length: 99\r\n\r\n\x00\xff"
STREAM = message(1) + message(2, TRICKY_BODY) + message(3, b"hello")
PARTS = [message(1), message(2, TRICKY_BODY), message(3, b"hello")]


def test_one_message() -> None:
    framer = StreamFramer(MAX)
    assert framer.feed(PARTS[1]) == [Message(PARTS[1])]
    assert framer.pending == 0 and not framer.failed


def test_pipelined_messages_in_one_chunk() -> None:
    assert StreamFramer(MAX).feed(STREAM) == [Message(p) for p in PARTS]


def test_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(STREAM)):
        framer = StreamFramer(MAX)
        frames = framer.feed(STREAM[:cut]) + framer.feed(STREAM[cut:])
        assert frames == [Message(p) for p in PARTS], f"cut at {cut}"
        assert framer.pending == 0


def test_one_byte_at_a_time() -> None:
    framer = StreamFramer(MAX)
    frames = []
    for i in range(len(STREAM)):
        frames += framer.feed(STREAM[i : i + 1])
    assert frames == [Message(p) for p in PARTS]


def test_incomplete_message_is_held() -> None:
    framer = StreamFramer(MAX)
    data = message(1, b"0123456789")
    assert framer.feed(data[:-3]) == []
    assert framer.pending == len(data) - 3
    assert framer.feed(data[-3:]) == [Message(data)]
    assert framer.pending == 0


def test_crlfcrlf_keepalive_is_a_ping() -> None:
    framer = StreamFramer(MAX)
    assert framer.feed(b"\r\n\r\n") == [PING]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [PING]
    assert framer.pending == 0


def test_pings_between_and_around_messages() -> None:
    framer = StreamFramer(MAX)
    frames = framer.feed(b"\r\n\r\n" + PARTS[0] + b"\r\n\r\n" + PARTS[1] + b"\r\n\r\n")
    assert frames == [PING, Message(PARTS[0]), PING, Message(PARTS[1]), PING]


def test_a_lone_crlf_before_a_message_is_ignored() -> None:
    # RFC 3261 7.5: CRLFs before the start-line are skipped on streams.
    assert StreamFramer(MAX).feed(b"\r\n" + PARTS[0]) == [Message(PARTS[0])]


@pytest.mark.parametrize("name", ["Content-Length", "content-length", "CONTENT-LENGTH", "l",
                                  "L", "Content-Length  "])
def test_content_length_spellings(name: str) -> None:
    data = message(1, b"abc", length_name=name)
    assert StreamFramer(MAX).feed(data + PARTS[0]) == [Message(data), Message(PARTS[0])]


def test_folded_and_zero_padded_content_length() -> None:
    data = message(1, b"abcde", length="\r\n 0005")
    assert StreamFramer(MAX).feed(data) == [Message(data)]


def test_similar_header_names_are_not_content_length() -> None:
    data = message(1, length_name=None).replace(
        b"\r\n\r\n", b"\r\nX-Content-Length: 5\r\nlx: 5\r\nContent-Length: 0\r\n\r\n")
    assert StreamFramer(MAX).feed(data) == [Message(data)]


def test_missing_content_length_is_400_and_the_stream_is_dead() -> None:
    framer = StreamFramer(MAX)
    data = message(1, b"body", length_name=None)
    [error] = framer.feed(data)
    assert isinstance(error, FramingError)
    assert (error.code, error.reason) == (400, "Missing Content-Length header field")
    assert error.head == data[: data.index(b"\r\n\r\n")]
    assert framer.failed and framer.pending == 0
    assert framer.feed(PARTS[0]) == [], "nothing is framed after a framing error"


def test_messages_before_a_framing_error_are_delivered() -> None:
    frames = StreamFramer(MAX).feed(PARTS[0] + message(2, length_name=None))
    assert frames[0] == Message(PARTS[0])
    assert isinstance(frames[1], FramingError) and frames[1].code == 400


@pytest.mark.parametrize("value", ["-999", "abc", "1 2", "5;x", "+5", "", "0x10"])
def test_invalid_content_length_is_400(value: str) -> None:
    [error] = StreamFramer(MAX).feed(message(1, b"abc", length=value))
    assert isinstance(error, FramingError)
    assert (error.code, error.reason) == (400, "Invalid Content-Length header field")


def test_multiple_content_lengths_are_400() -> None:
    data = message(1, b"abc").replace(b"\r\n\r\n", b"\r\nl: 3\r\n\r\n")
    [error] = StreamFramer(MAX).feed(data)
    assert isinstance(error, FramingError)
    assert (error.code, error.reason) == (400, "Multiple Content-Length header fields")


@pytest.mark.parametrize("value", ["999999999", "9" * 10, "9" * 100, str(MAX)])
def test_huge_content_length_is_513_at_once_without_buffering(value: str) -> None:
    framer = StreamFramer(MAX)
    data = message(1, b"only the start of the body", length=value)
    [error] = framer.feed(data)
    assert isinstance(error, FramingError)
    assert (error.code, error.reason) == (513, f"Message Too Large (over {MAX} octets)")
    assert error.head.startswith(b"OPTIONS ") and framer.pending == 0 and framer.failed


def test_the_size_limit_counts_the_whole_message() -> None:
    data = message(1, b"x" * 1000)
    assert StreamFramer(len(data)).feed(data) == [Message(data)]
    [error] = StreamFramer(len(data) - 1).feed(data[:-1000])  # judged before the body
    assert isinstance(error, FramingError) and error.code == 513


def test_endless_header_section_is_513() -> None:
    framer = StreamFramer(1000)
    assert framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n") == []
    frames = framer.feed(b"X-Junk: " + b"a" * 1000 + b"\r\n")
    assert len(frames) == 1 and isinstance(frames[0], FramingError)
    assert frames[0].code == 513 and framer.pending == 0
    assert frames[0].reason == "Message Too Large (over 1000 octets)"


def test_a_60_kB_header_line_within_max_message_size_is_framed() -> None:
    """The framer bounds only the message; the parser refuses the line (with 513 too)."""
    data = message(1).replace(b"\r\n\r\n", b"\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n")
    assert StreamFramer(MAX).feed(data) == [Message(data)]
    [error] = StreamFramer(len(data) - 1).feed(data)
    assert isinstance(error, FramingError)
    assert (error.code, error.reason) == (513, f"Message Too Large (over {len(data) - 1} octets)")


def test_bare_lf_messages() -> None:
    data = message(1, b"ab\r\n\r\n").replace(b"\r\n", b"\n", 8)
    assert data.count(b"\r\n") == 2  # only inside the body
    assert StreamFramer(MAX).feed(data + PARTS[0]) == [Message(data), Message(PARTS[0])]
