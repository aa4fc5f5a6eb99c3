"""Unit tests of headers.py: the general parsers of Via, name-addr (From, To, Contact) and
CSeq, with the examples of RFC 3261 and RFC 4475 (fastpath.py mirrors these parsers)."""

from __future__ import annotations

import pytest

from sipresponder.sip.headers import parse_cseq, parse_name_addr, parse_via, split_values


# -- name-addr (From, To, Contact) ---------------------------------------------------------
def test_quoted_display_name_with_escapes() -> None:
    addr = parse_name_addr('"J Rosenberg \\\\\\"" <sip:jdrosen@example.com> ; tag = 98asjd8')
    assert addr.display == '"J Rosenberg \\\\\\""'
    assert addr.uri.raw == "sip:jdrosen@example.com"
    assert addr.tag == "98asjd8"
    assert addr.bracketed


def test_quoted_display_name_with_ctl_and_utf8_octets() -> None:
    addr = parse_name_addr('"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f \xc3\xa9" <sip:a@example.com>')
    assert addr.uri.host == "example.com" and "\x00" in addr.display


def test_unterminated_display_name_raises() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        parse_name_addr('"Mr. J. User <sip:j.user@example.com>')


def test_unbracketed_uri_parameters_belong_to_the_header() -> None:
    addr = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;tag=x")
    assert addr.uri.raw == "sip:+19725552222@gw1.example.net" and addr.uri.params == ""
    assert addr.params == [("unknownparam", None), ("tag", "x")]
    assert not addr.bracketed


def test_bracketed_uri_keeps_its_parameters() -> None:
    addr = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert addr.uri.params == ";unknownparam" and addr.params == []


def test_liberal_name_addr_forms() -> None:
    assert parse_name_addr("caller<sip:caller@example.com>;tag=323").display == "caller"
    assert parse_name_addr("< sip:t.watson@example.org >").uri.raw == "sip:t.watson@example.org"
    assert parse_name_addr("Bell, Alexander <sip:a@example.com>").display == "Bell, Alexander"


# -- CSeq ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("1 INVITE", (1, "INVITE")), ("0009  INVITE", (9, "INVITE")),
    ("4294967295 BYE", (2**32 - 1, "BYE")), ("00000000000000000001 ACK", (1, "ACK")),
])
def test_cseq(value: str, expected: tuple[int, str]) -> None:
    assert parse_cseq(value) == expected


@pytest.mark.parametrize("value", ["4294967296 BYE", "36893488147419103232 REGISTER",
                                   "1INVITE", "1 INVITE x", "-1 INVITE", "INVITE", "1 IN<VITE"])
def test_bad_cseq(value: str) -> None:
    with pytest.raises(ValueError):
        parse_cseq(value)


# -- Via -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "host", "port"), [
    ("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3", "[2001:db8::9:1]", 6050),
    ("SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3", "[2001:db8::9:1]", None),
    ("SIP/2.0/TCP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19", "[::ffff:192.0.2.10]", 19823),
    ("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8",
     "spindle.example.com", None),
])
def test_via_hosts(value: str, host: str, port: int | None) -> None:
    via = parse_via(value)
    assert (via.host, via.port) == (host, port)
    assert via.branch.startswith("z9hG4bK")


def test_via_received_with_and_without_brackets() -> None:
    with_delim = parse_via("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bK1")
    assert with_delim.param("received") == "[2001:db8::9:255]"
    bare = parse_via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bK1")
    assert bare.param("received") == "2001:db8::9:255"


@pytest.mark.parametrize("value", ["SIP/2.0/UDP 2001:db8::1;branch=z9hG4bK1",
                                   "SIP/2.0/UDP 192.0.2.15;;", "SIP/2.0/UDP",
                                   "SIP/2.0/UDP host:99999"])
def test_bad_vias(value: str) -> None:
    with pytest.raises(ValueError):
        parse_via(value)


def test_lenient_via_skips_empty_parameters() -> None:
    via = parse_via("SIP/2.0/UDP 192.0.2.15;;;branch=z9hG4bK1;;", lenient=True)
    assert via.host == "192.0.2.15" and via.branch == "z9hG4bK1"


def test_rport_without_value() -> None:
    via = parse_via("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1;rport")
    assert via.param("rport") == "" and via.has_param("RPORT")


# -- RFC 3261 section 20 examples ---------------------------------------------------------
def test_rfc_3261_via_examples() -> None:
    # RFC 3261 20.42
    via = parse_via("SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7")
    assert (via.head, via.transport, via.host, via.port) == (
        "SIP/2.0/UDP erlang.bell-telephone.com:5060", "UDP", "erlang.bell-telephone.com", 5060)
    assert via.params == [("branch", "z9hG4bK87asdks7")] and via.branch == "z9hG4bK87asdks7"
    via = parse_via("SIP/2.0/UDP 192.0.2.1:5060 ;received=192.0.2.207;branch=z9hG4bK77asjd")
    assert via.head == "SIP/2.0/UDP 192.0.2.1:5060"
    assert via.params == [("received", "192.0.2.207"), ("branch", "z9hG4bK77asjd")]
    assert via.param("RECEIVED") == "192.0.2.207" and via.param("ttl") is None
    assert parse_via("sip/2.0/tls h").transport == "TLS" and parse_via("SIP/2.0/UDP h").branch == ""


@pytest.mark.parametrize(("value", "display", "uri", "tag"), [
    # RFC 3261 20.20 (From)
    ('"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s', '"A. G. Bell"',
     "sip:agb@bell-telephone.com", "a48s"),
    ("sip:+12125551212@server.phone2net.com;tag=887s", "",
     "sip:+12125551212@server.phone2net.com", "887s"),
    ("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8", "Anonymous",
     "sip:c8oqz84zk7z@privacy.org", "hyh8"),
    # RFC 3261 20.39 (To)
    ("The Operator <sip:operator@cs.columbia.edu>;tag=287447", "The Operator",
     "sip:operator@cs.columbia.edu", "287447"),
    ("sip:+12125551212@server.phone2net.com", "", "sip:+12125551212@server.phone2net.com", None),
])
def test_rfc_3261_from_and_to_examples(value: str, display: str, uri: str,
                                       tag: str | None) -> None:
    addr = parse_name_addr(value)
    assert (addr.raw, addr.display, addr.uri.raw, addr.tag) == (value, display, uri, tag)


def test_rfc_3261_contact_example() -> None:
    # RFC 3261 20.10: two values on one row, a mailto: URI among them.
    row = ('"Mr. Watson" <sip:watson@worcester.bell-telephone.com>;q=0.7; expires=3600, '
           '"Mr. Watson" <mailto:watson@bell-telephone.com> ;q=0.1')
    first, second = (parse_name_addr(v) for v in split_values([row]))
    assert first.uri.host == "worcester.bell-telephone.com"
    assert first.params == [("q", "0.7"), ("expires", "3600")]
    assert first.params_raw == ";q=0.7; expires=3600"
    assert (second.uri.scheme, second.params) == ("mailto", [("q", "0.1")])


def test_split_values_over_rows_drops_empty_ones() -> None:
    assert split_values(["a, b", "", "c,,d"]) == ["a", "b", "c", "d"]


def test_rfc_3261_cseq_example() -> None:
    assert parse_cseq("4711 INVITE") == (4711, "INVITE")  # RFC 3261 20.16
    assert parse_cseq("1 FOO-bar") == (1, "FOO-bar")  # extension-method = token


def test_name_addr_errors() -> None:
    for value in ("<sip:a@b", "<>", "<sip:a@b> junk", "<sip:a@b>;;", '"x" sip:a@b', "<a b>"):
        with pytest.raises(ValueError):
            parse_name_addr(value)
