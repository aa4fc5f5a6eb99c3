"""Unit tests of uri.py: SIP, SIPS and tel URIs (RFC 3261 19.1, 25.1; RFC 3966; RFC 5118)."""

from __future__ import annotations

import pytest

from sipresponder.sip.uri import URIError, parse_uri


@pytest.mark.parametrize(("uri", "host", "port"), [
    ("sip:[2001:db8::10]", "[2001:db8::10]", None),
    ("sip:[2001:db8::10]:5070", "[2001:db8::10]", 5070),
    ("sip:[2001:db8::10:5070]", "[2001:db8::10:5070]", None),  # RFC 5118 4.3: no port
    ("sip:user@[2001:DB8::1];transport=tcp", "[2001:db8::1]", None),
    ("sips:[::ffff:192.0.2.10]:19823", "[::ffff:192.0.2.10]", 19823),
    ("sip:user@[2001:db8::192.0.2.1]", "[2001:db8::192.0.2.1]", None),
    ("sip:user@[2001:db8:::192.0.2.1]", "[2001:db8:::192.0.2.1]", None),  # RFC 5118 4.10
    ("sip:192.0.2.1:5060", "192.0.2.1", 5060),
    ("SIP:User@Example.COM", "example.com", None),
])
def test_uri_hosts_and_ports(uri: str, host: str, port: int | None) -> None:
    parsed = parse_uri(uri)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize("uri", [
    "sip:2001:db8::10",  # RFC 5118 4.2: IPv6 without brackets
    "sip:[2001:db8::10",
    "sip:[2001:db8:::1]",  # ':::' is tolerated only before an embedded IPv4 address
    "sip:[gggg::1]",
    "sip:[2001:db8::1]:99999",
    "sip:host:port",
    "<sip:user@example.com>",
    "sip:user@example.com; lr",
    "sip:",
])
def test_bad_uris(uri: str) -> None:
    with pytest.raises(URIError):
        parse_uri(uri)


def test_uri_user_is_unescaped() -> None:
    assert parse_uri("sip:sips%3Auser%40example.com@example.net").user == "sips:user@example.com"
    assert parse_uri("sip:user;par=u%40example.net@example.com").user == "user;par=u@example.net"
    assert parse_uri("sip:null-%00-null@example.com").user == "null-\x00-null"


def test_other_schemes_parse_generically() -> None:
    assert parse_uri("tel:+1-201-555-0123;ext=1").user == "+1-201-555-0123"
    assert parse_uri("nobodyKnowsThisScheme:totallyopaquecontent").scheme == (
        "nobodyknowsthisscheme")
    assert parse_uri("soap.beep://192.0.2.103:3002").scheme == "soap.beep"


# RFC 3261 19.1.3: the example SIP and SIPS URIs.
@pytest.mark.parametrize(("text", "scheme", "user", "host", "port", "params"), [
    ("sip:alice@atlanta.com", "sip", "alice", "atlanta.com", None, ""),
    ("sip:alice:secretword@atlanta.com;transport=tcp", "sip", "alice", "atlanta.com", None,
     ";transport=tcp"),
    ("sips:alice@atlanta.com?subject=project%20x&priority=urgent", "sips", "alice",
     "atlanta.com", None, ""),
    ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "sip", "+1-212-555-1212",
     "gateway.com", None, ";user=phone"),
    ("sips:1212@gateway.com", "sips", "1212", "gateway.com", None, ""),
    ("sip:alice@192.0.2.4", "sip", "alice", "192.0.2.4", None, ""),
    ("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com", "sip", "", "atlanta.com", None,
     ";method=REGISTER"),
    ("sip:alice;day=tuesday@atlanta.com", "sip", "alice;day=tuesday", "atlanta.com", None, ""),
    ("sip:bob@biloxi.com:5061", "sip", "bob", "biloxi.com", 5061, ""),
])
def test_rfc_3261_example_uris(text: str, scheme: str, user: str, host: str,
                               port: int | None, params: str) -> None:
    uri = parse_uri(text)
    assert (uri.raw, uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        text, scheme, user, host, port, params)
    assert uri.is_sip


def test_tel_uris() -> None:
    # RFC 3966 3: global and local numbers; parameters kept as written.
    uri = parse_uri("tel:+1-201-555-0123")
    assert (uri.scheme, uri.user, uri.host, uri.port, uri.params) == (
        "tel", "+1-201-555-0123", "", None, "")
    assert parse_uri("tel:7042;phone-context=example.com").params == (
        ";phone-context=example.com")
    assert not uri.is_sip


@pytest.mark.parametrize("text", ["tel:", "tel:1 2", "mailto:<a@b>", 'x:"y"', "1sip:a@b", "sip"])
def test_bad_non_sip_uris(text: str) -> None:
    with pytest.raises(URIError):
        parse_uri(text)


def test_uri_error_is_a_value_error() -> None:
    assert issubclass(URIError, ValueError)
