"""Unit tests of abnf.py: the lexical pieces of the grammar (RFC 3261 7, 25)."""

from __future__ import annotations

import pytest

from sipresponder.sip.abnf import (
    COMPACT_FORMS,
    SCHEME,
    SIP_VERSION,
    STANDARD_METHODS,
    TOKEN,
    canonical_name,
    content_lengths,
    header_name,
    parse_params,
    skip_quoted,
    split_lines,
    split_top_level,
)


@pytest.mark.parametrize("value", ['"unterminated <sip:a@b>, <sip:c@d>', "<sip:a@b, sip:c@d",
                                   '"x\\", <sip:c@d>'])
def test_unterminated_quote_or_bracket_raises(value: str) -> None:
    with pytest.raises(ValueError):
        split_top_level(value)


def test_split_top_level_respects_quotes_and_brackets() -> None:
    # RFC 3261 7.3.1: rows combine with commas; RFC 3261 20.10's Contact example.
    row = ('"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
           '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1')
    assert split_top_level(row) == [
        '"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600',
        '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1',
    ]
    assert split_top_level('"a,b" <sip:x;p=1,2>; q=1', ";") == ['"a,b" <sip:x;p=1,2>', "q=1"]
    assert split_top_level(" a ,\tb ") == ["a", "b"]


def test_skip_quoted_honours_quoted_pairs() -> None:
    # quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F)              RFC 3261 25.1
    text = '"a\\"b" rest'
    assert text[skip_quoted(text, 0):] == " rest"
    with pytest.raises(ValueError):
        skip_quoted('"a\\"', 0)


def test_parse_params() -> None:
    # generic-param = token [ EQUAL gen-value ]                     RFC 3261 25.1
    assert parse_params("received=192.0.2.207;branch=z9hG4bK77asjd; rport") == [
        ("received", "192.0.2.207"), ("branch", "z9hG4bK77asjd"), ("rport", None)]
    assert parse_params('x="a;b" ; lr') == [("x", '"a;b"'), ("lr", None)]
    for bad in (";", "a;;b", "a=", "bad name=1", "=1"):
        with pytest.raises(ValueError):
            parse_params(bad)


@pytest.mark.parametrize(("raw", "expected"), [
    ("Call-ID", ("Call-ID", "call-id")), ("CALL-ID", ("Call-ID", "call-id")),
    ("i", ("Call-ID", "call-id")), ("CSEQ", ("CSeq", "cseq")), ("v", ("Via", "via")),
    ("X-Custom", ("X-Custom", "x-custom")), ("www-authenticate", ("WWW-Authenticate",
                                                                 "www-authenticate")),
    ("", None), ("Bad Name", None), ("Via:", None), ("a\x00", None),
])
def test_header_name(raw: str, expected: tuple[str, str] | None) -> None:
    # header-name = token; compact forms expand (RFC 3261 7.3.3)
    assert header_name(raw) == expected
    if expected is not None:
        assert canonical_name(raw) == expected[0]


@pytest.mark.parametrize(("head", "lines", "bare_cr"), [
    ("A\r\nB\r\nC", ["A", "B", "C"], False),
    ("A\nB\r\nC", ["A", "B", "C"], False),  # a bare LF ends a line too (tolerated)
    ("A\r\nB\rX\r\nC", ["A", "B\rX", "C"], True),  # RFC 3261 25.1: CR only in CRLF
    ("A\r", ["A"], False),
    ("", [""], False),
])
def test_split_lines(head: str, lines: list[str], bare_cr: bool) -> None:
    assert split_lines(head) == (lines, bare_cr)


@pytest.mark.parametrize(("head", "values"), [
    (b"INVITE x SIP/2.0\r\nContent-Length: 12\r\nVia: a", [b" 12"]),
    (b"INVITE x SIP/2.0\r\nl:3", [b"3"]),  # compact form (RFC 3261 7.3.3)
    (b"INVITE x SIP/2.0\r\nCONTENT-LENGTH : 4\r\n  5", [b" 4\r\n  5"]),  # folded
    (b"INVITE x SIP/2.0\r\nContent-Length: 1\r\nl: 2", [b" 1", b" 2"]),
    (b"INVITE x SIP/2.0\r\nContent-Lengthy: 1\r\nLength: 2", []),
])
def test_content_lengths(head: bytes, values: list[bytes]) -> None:
    assert content_lengths(head) == values


def test_grammar_tokens() -> None:
    assert TOKEN.fullmatch("z9hG4bK-._!%*+`'~") and not TOKEN.fullmatch("a b")
    assert SIP_VERSION.fullmatch("SIP/2.0") and SIP_VERSION.fullmatch("sip/12.34")
    assert not SIP_VERSION.fullmatch("SIP/2")
    assert SCHEME.fullmatch("soap.beep") and not SCHEME.fullmatch("1sip")
    assert STANDARD_METHODS[:6] == ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER")
    assert set(COMPACT_FORMS) == set("vftimlckseourbxyajdn")
