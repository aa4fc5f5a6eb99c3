"""Unit tests of message.py: the request parser (header names, folding, lists, Content-Length
on UDP, Request-Line) and the Request it builds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario
from sipresponder.sip.abnf import canonical_name, split_top_level
from sipresponder.sip.message import NotARequest, Request, parse_request
from sipresponder.sip.response import Echo
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.sipclient import parse_response

DEFAULT_SCENARIO = Path(__file__).resolve().parents[3] / "scenarios" / "default.toml"

ESSENTIAL = [
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1",
    "From: <sip:alice@example.com>;tag=a1",
    "To: <sip:bob@example.com>",
    "Call-ID: parser-test@192.0.2.1",
    "CSeq: 1 OPTIONS",
]


def raw(*headers: str, start: str = "OPTIONS sip:bob@example.com SIP/2.0",
        body: bytes = b"", essential: bool = True, eol: str = "\r\n") -> bytes:
    lines = [start, *(ESSENTIAL if essential else []), *headers]
    return (eol.join(lines) + eol + eol).encode("latin-1") + body


def parse(data: bytes, *, datagram: bool = True) -> Request:
    return parse_request(data, datagram=datagram)


# -- header names ------------------------------------------------------------------------------
COMPACT = {
    "v": "Via", "f": "From", "t": "To", "i": "Call-ID", "m": "Contact",
    "l": "Content-Length", "c": "Content-Type", "k": "Supported", "s": "Subject",
    "e": "Content-Encoding", "o": "Event", "u": "Allow-Events", "r": "Refer-To",
    "b": "Referred-By", "x": "Session-Expires", "y": "Identity", "a": "Accept-Contact",
    "j": "Reject-Contact", "d": "Request-Disposition", "n": "Identity-Info",
}


def test_the_compact_form_table_is_the_registered_one() -> None:
    assert sorted(COMPACT) == sorted("vftimlckseourbxyajdn")


@pytest.mark.parametrize("short", sorted(COMPACT))
@pytest.mark.parametrize("case", [str.lower, str.upper])
def test_compact_form_maps_to_long_name(short: str, case: Callable[[str], str]) -> None:
    long = COMPACT[short]
    assert canonical_name(case(short)) == long
    if short in "vftilc":
        return  # already in ESSENTIAL / changes framing: checked below
    req = parse(raw(f"{case(short)}: value-{short}"))
    assert (long, f"value-{short}") in req.headers
    assert req.get(long) == f"value-{short}"
    assert req.get(long.upper()) == f"value-{short}"


def test_compact_forms_of_the_essential_headers() -> None:
    data = (b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: cid\r\nCSeq: 1 INVITE\r\n"
            b"m: <sip:a@h>\r\nc: application/sdp\r\nl: 3\r\n\r\nabc")
    req = parse(data)
    assert [name for name, _ in req.headers] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Type", "Content-Length"]
    assert req.call_id == "cid" and req.from_.tag == "1" and req.body == b"abc"


@pytest.mark.parametrize("spelling", ["call-id", "CALL-ID", "cAlL-iD", "Call-Id"])
def test_header_names_are_case_insensitive(spelling: str) -> None:
    data = raw(ESSENTIAL[0], ESSENTIAL[1], ESSENTIAL[2], ESSENTIAL[4],
               f"{spelling}: abc", essential=False)
    req = parse(data)
    assert req.call_id == "abc"
    assert req.get("CALL-ID") == req.get("call-id") == "abc"
    assert ("Call-ID", "abc") in req.headers  # canonical spelling


def test_unknown_header_names_keep_their_spelling() -> None:
    req = parse(raw("X-MiXeD-case: 1", "NewFangledHeader:   spaced   value  "))
    assert ("X-MiXeD-case", "1") in req.headers
    assert req.get("x-mixed-CASE") == "1"
    assert req.get("newfangledheader") == "spaced   value"


def test_whitespace_before_the_colon() -> None:
    req = parse(raw("Subject  : hi", "Max-Forwards\t: 70"))
    assert req.get("subject") == "hi" and req.get("max-forwards") == "70"


def test_empty_value() -> None:
    assert parse(raw("s :")).get("subject") == ""


@pytest.mark.parametrize("line", ["No colon here", ": no name", "Bad Name: x", "Bad\x00: x"])
def test_malformed_header_line_is_400(line: str) -> None:
    req = parse(raw(line))
    assert req.error == (400, "Malformed header line")


# -- limits: a refusal for size is 513 (RFC 3261 21.5.7), never 400 ----------------------------------
def test_a_60_kB_header_line_is_513_naming_the_limit() -> None:
    req = parse_request(raw("X-Big: " + "a" * 60_000), datagram=True, max_line_length=8192)
    assert req.error == (513, "Message Too Large (header line over 8192 octets)")
    # The line is skipped, the rest is read: the refusal can be routed and echoed.
    assert req.top_via().branch == "z9hG4bK-1" and req.get("x-big") is None


@pytest.mark.parametrize("datagram", [True, False])
def test_too_many_header_fields_is_513_naming_the_limit(datagram: bool) -> None:
    data = raw(*(f"X-H{i}: v" for i in range(10)))
    req = parse_request(data, datagram=datagram, max_headers=8)
    assert req.error == (513, "Message Too Large (over 8 header fields)")
    assert parse_request(data, datagram=datagram, max_headers=15).error is None


def test_a_line_exactly_at_the_limit_passes() -> None:
    line = "X-Big: " + "a" * 93
    assert parse_request(raw(line), datagram=True, max_line_length=100).error is None
    req = parse_request(raw(line + "a"), datagram=True, max_line_length=100)
    assert req.error == (513, "Message Too Large (header line over 100 octets)")


def test_a_refusal_for_size_wins_over_a_malformed_line() -> None:
    """The parser skipped what was too big, so a 400 for what it did read would blame
    the wrong thing; the engine's max_message_size check overrides a 400 the same way."""
    data = raw("Bad Name: x", "X-Big: " + "a" * 200, "Subject: a\rb")
    req = parse_request(data, datagram=True, max_line_length=100)
    assert req.error == (513, "Message Too Large (header line over 100 octets)")
    assert parse_request(data, datagram=True).error == (400, "Malformed header line")


# -- folding -------------------------------------------------------------------------------------
def test_folding_joins_continuation_lines_with_one_space() -> None:
    req = parse(raw("Subject: first\r\n second\r\n\t\tthird  ", "X-Next: n"))
    assert req.get("subject") == "first second third"
    assert req.get("x-next") == "n"


def test_folding_of_an_empty_first_line() -> None:
    req = parse(raw("TO :\r\n sip:vivek@example.com ;   tag    = 1918", essential=False))
    assert req.get("to") == "sip:vivek@example.com ;   tag    = 1918"
    assert req.to.tag == "1918"


def test_folded_via_and_cseq() -> None:
    data = raw("Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
               "cseq: 0009\r\n  INVITE", start="INVITE sip:a@b SIP/2.0", essential=False)
    req = parse(data)
    via = req.top_via()
    assert (via.transport, via.host, via.branch) == ("UDP", "192.0.2.2", "390skdjuw")
    assert req.cseq == (9, "INVITE")


def test_continuation_before_any_header_is_400() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n" + raw(essential=True)[25:]
    assert parse(data).error == (400, "Malformed header folding")


# -- lists, quoting, name-addr -------------------------------------------------------------------
def test_list_values_from_several_rows_in_order() -> None:
    req = parse(raw("Via: SIP/2.0/UDP h2;branch=z9hG4bK2, SIP/2.0/TCP h3;branch=z9hG4bK3",
                    "v: SIP/2.0/UDP h4;branch=z9hG4bK4"))
    assert [v.split()[1].split(";")[0] for v in req.via_values] == ["192.0.2.1:5060", "h2",
                                                                     "h3", "h4"]


def test_commas_inside_quotes_and_angle_brackets_do_not_split() -> None:
    contact = ('"Doe, John" <sip:jd@example.com;x=a,b>;q=0.5, '
               '"Say \\"hi\\", ok" <sip:s@example.com>, <sip:u@[2001:db8::1]:5060>;expires=60')
    req = parse(raw(f"Contact: {contact}"))
    assert req.values("contact") == [
        '"Doe, John" <sip:jd@example.com;x=a,b>;q=0.5',
        '"Say \\"hi\\", ok" <sip:s@example.com>',
        "<sip:u@[2001:db8::1]:5060>;expires=60",
    ]


def test_empty_list_items_are_dropped() -> None:
    assert split_top_level("a, ,b,") == ["a", "", "b", ""]
    assert parse(raw("Require: a, ,b,")).values("require") == ["a", "b"]


def test_unterminated_quote_in_a_list_header_is_400_not_a_crash() -> None:
    engine = Engine(load_scenario(DEFAULT_SCENARIO))
    source = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
    for name in ("Contact", "Require", "Accept", "Content-Encoding"):
        data = raw(f'{name}: "unterminated, <sip:x@y>', start="INVITE sip:a@b SIP/2.0")
        data = data.replace(b"1 OPTIONS", b"1 INVITE")
        [send] = engine.handle(data, source, 0.0).sends
        resp = parse_response(send.data)
        assert (resp.code, resp.reason) == (
            400, f"Malformed {name} header field (unterminated quoted string)")


# -- Content-Length on UDP -------------------------------------------------------------------------
def test_extra_octets_after_content_length_are_ignored() -> None:
    req = parse(raw("Content-Length: 3", body=b"abcINVITE sip:x SIP/2.0\r\n"))
    assert req.error is None and req.body == b"abc"


def test_missing_content_length_means_the_rest_of_the_datagram() -> None:
    req = parse(raw(body=b"v=0\r\n\r\nrest"))
    assert req.error is None and req.body == b"v=0\r\n\r\nrest"


def test_missing_content_length_on_a_stream_means_no_body() -> None:
    # The framer refuses such a stream; the parser never guesses.
    assert parse(raw(body=b"xyz"), datagram=False).body == b""


def test_content_length_frames_a_body_with_empty_lines_and_nuls() -> None:
    body = b"--b\r\n\r\n\x00\x00\n\n\r\n\r\n--b--"
    req = parse(raw(f"Content-Length: {len(body)}", body=body + b"junk"))
    assert req.body == body


@pytest.mark.parametrize(("value", "body", "expected"), [
    ("0", b"", b""), ("0005", b"12345678", b"12345"), (" 2 ", b"abc", b"ab"),
    ("00000000000000000003", b"abcd", b"abc"),
])
def test_content_length_values(value: str, body: bytes, expected: bytes) -> None:
    req = parse(raw(f"Content-Length:{value}", body=body))
    assert req.error is None and req.body == expected


@pytest.mark.parametrize("value", ["9999", "6", "9" * 40, "999999999"])
def test_content_length_larger_than_the_datagram_is_400(value: str) -> None:
    req = parse(raw(f"Content-Length: {value}", body=b"abcde"))
    assert req.error is not None and req.error[0] == 400
    assert "Content-Length" in req.error[1]


@pytest.mark.parametrize("value", ["-999", "-0", "abc", "1 2", "5;x", "0x10", "+5", "",
                                   "\xb2", "1.0"])
def test_negative_or_non_numeric_content_length_is_400(value: str) -> None:
    req = parse(raw(f"Content-Length: {value}", body=b"abcde"))
    assert req.error == (400, "Invalid Content-Length header field")


def test_two_content_lengths_are_400() -> None:
    req = parse(raw("Content-Length: 13", "l: 5", body=b"x" * 20))
    assert req.error == (400, "Multiple Content-Length header fields")


def test_no_empty_line_on_udp_ends_headers_at_the_datagram_end() -> None:
    data = raw("l: 0")[:-2]  # RFC 4475 baddn.dat: no empty line
    req = parse(data)
    assert req.error is None and req.get("content-length") == "0" and req.body == b""


def test_incomplete_header_section_on_a_stream_is_not_a_request() -> None:
    with pytest.raises(NotARequest):
        parse(raw()[:-2], datagram=False)


def test_bare_lf_line_ends_are_tolerated() -> None:
    req = parse(raw("Content-Length: 4", body=b"ab\r\n\r\n", eol="\n"))
    assert req.error is None and req.call_id == "parser-test@192.0.2.1"
    assert req.body == b"ab\r\n"  # the CRLF CRLF inside the body does not end the headers


# -- what is not a request ---------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 100 \r\n\r\n",
    b"sip/2.0 180 Ringing\r\n\r\n",
    b"SIP/2.0 4294967301 better not break the receiver\r\n\r\n",
    b"", b"\r\n\r\n", b"\r\n", b"\x00\x01\x02\xff\xfe", b"garbage", b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b" OPTIONS sip:a@b SIP/2.0\r\n\r\n",
    b"OPT<IONS sip:a@b SIP/2.0\r\n\r\n",
])
def test_responses_and_garbage_are_not_requests(data: bytes) -> None:
    with pytest.raises(NotARequest):
        parse(data)


# -- Request-Line and SIP-Version ----------------------------------------------------------------
@pytest.mark.parametrize("version", ["SIP/3.0", "SIP/7.0", "SIP/2.1", "SIP/20.0", "sip/3.0"])
def test_other_versions_are_505(version: str) -> None:
    req = parse(raw(start=f"OPTIONS sip:a@b {version}"))
    assert req.error == (505, "Version Not Supported")


@pytest.mark.parametrize("version", ["SIP/2.0", "sip/2.0", "Sip/2.0"])
def test_version_is_case_insensitive(version: str) -> None:
    assert parse(raw(start=f"OPTIONS sip:a@b {version}")).error is None


@pytest.mark.parametrize("start", [
    "OPTIONS sip:a@b SIP/2.0  ",  # RFC 4475 trws.dat
    "OPTIONS sip:a@b SIP/2.0 ",
    "INVITE  sip:a@b  SIP/2.0",  # lwsstart.dat
    "INVITE sip:a@b; lr SIP/2.0",  # lwsruri.dat
    "INVITE sip:a@b",
    "INVITE sip:a@b SIP/3.0 ",
])
def test_malformed_request_lines_are_400_never_505(start: str) -> None:
    req = parse(raw(start=start))
    assert req.error == (400, "Malformed Request-Line")


@pytest.mark.parametrize("version", ["SIP/2", "HTTP/1.1", "SIP/2.0a", "SIP2.0"])
def test_malformed_versions_are_400(version: str) -> None:
    assert parse(raw(start=f"OPTIONS sip:a@b {version}")).error == (400, "Malformed SIP-Version")


def test_method_is_case_sensitive_and_any_token() -> None:
    req = parse(raw(start="!interesting-Method0123456789_*+`.%indeed'~ sip:a@b SIP/2.0"))
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~" and req.error is None
    assert parse(raw(start="invite sip:a@b SIP/2.0")).method == "invite"


def test_request_keeps_raw_and_uri() -> None:
    data = raw(start="OPTIONS sip:bob@example.com;transport=tcp SIP/2.0")
    req = parse(data)
    assert req.raw == data and req.uri_raw == "sip:bob@example.com;transport=tcp"
    assert req.uri.params == ";transport=tcp"


# -- the Request itself ------------------------------------------------------------------
def test_a_request_built_by_hand_can_be_echoed() -> None:
    # Not every Request comes from the parser (tests, a compiled core): bare_cr has a
    # default, and the echo of a response reads it.
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-hand;rport"),
        ("From", "<sip:alice@example.com>;tag=a1"),
        ("To", "<sip:bob@example.com>"),
        ("Call-ID", "hand@192.0.2.1"),
        ("CSeq", "7 OPTIONS"),
    ]
    request = Request("OPTIONS", "sip:bob@example.com", "SIP/2.0", headers, b"", b"", None)
    assert request.bare_cr is False and request.error is None
    assert request.get("call-id") == "hand@192.0.2.1" and request.cseq == (7, "OPTIONS")
    echo = Echo(request, ("192.0.2.1", 5070), b"k" * 16)
    # RFC 3581 4: with rport, both rport and received are filled in.
    assert echo.untagged == (
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-hand;rport=5070;received=192.0.2.1\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: hand@192.0.2.1\r\n"
        "CSeq: 7 OPTIONS\r\n"
    )
    assert echo.tag and echo.tagged == echo.untagged.replace(
        "To: <sip:bob@example.com>", f"To: <sip:bob@example.com>;tag={echo.tag}")


def test_a_bare_cr_is_flagged_and_cut_from_the_echo() -> None:
    req = parse(raw("Subject: a\rInjected: b"))
    assert req.bare_cr and req.error == (400, "Malformed header line (bare CR)")
    assert not parse(raw("Subject: a")).bare_cr
    request = Request("OPTIONS", "sip:b@h", "SIP/2.0", [
        ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"), ("Call-ID", "x\rForged: 1"), ("CSeq", "1 OPTIONS"),
    ], b"", b"", None, bare_cr=True)
    assert "Call-ID: x Forged: 1\r\n" in Echo(request, ("192.0.2.1", 5060), b"k").untagged


def test_top_via_checked_says_whether_the_strict_parse_held() -> None:
    req = parse(raw())
    assert not req.top_via_checked()  # nothing parsed yet
    assert req.top_via_lenient().branch == "z9hG4bK-1"
    assert req.top_via_checked()
    stray = parse(raw(start="OPTIONS sip:a@b SIP/2.0", essential=False) .replace(
        b"\r\n\r\n", b"\r\nVia: SIP/2.0/UDP 192.0.2.15;;branch=z9hG4bK1\r\n\r\n"))
    assert stray.top_via_lenient().branch == "z9hG4bK1"  # RFC 4475 3.1.2.1: routable
    assert not stray.top_via_checked()  # ... but the structural check must refuse it
    with pytest.raises(ValueError):
        stray.top_via()


def test_parsed_views() -> None:
    req = parse(raw("Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>"))
    assert req.uri.user == "bob" and req.from_.tag == "a1" and req.to.tag is None
    assert req.cseq == (1, "OPTIONS") and req.call_id == "parser-test@192.0.2.1"
    assert req.values("contact") == ["<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"]
    assert req.rows("via") == [ESSENTIAL[0][5:]] and req.rows("x-none") == []
    assert req.top_via().host == "192.0.2.1" and repr(req) == (
        "<Request OPTIONS sip:bob@example.com>")
