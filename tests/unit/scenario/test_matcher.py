"""scenario.matcher: each ``match`` condition compiled and tested against requests."""

from __future__ import annotations

from typing import Any

import pytest

from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.matcher import compile_conditions, glob_regex
from sipresponder.sip.message import Request, parse_request
from sipresponder.uas.events import Source
from tests.sipclient import make_request

UDP = Source("udp", ("192.0.2.7", 5070), ("127.0.0.1", 5060))


def request(uri: str = "sip:bob@example.com",
            headers: list[tuple[str, str]] | None = None) -> Request:
    return parse_request(make_request("INVITE", uri, headers=headers), datagram=True)


def holds(match: dict[str, Any], req: Request | None = None, source: Source = UDP) -> bool:
    conditions = compile_conditions(match)
    assert conditions
    return all(c.test(req or request(), source) for c in conditions)


def field_error(match: dict[str, Any]) -> FieldError:
    with pytest.raises(FieldError) as info:
        compile_conditions(match)
    return info.value


@pytest.mark.parametrize(("pattern", "text", "matches"), [
    ("bob", "bob", True),
    ("bob", "bobby", False),  # the whole string, not a prefix
    ("b*", "bob", True),
    ("*b", "bob", True),
    ("*", "", True),
    ("b*b", "bb", True),
    ("a.c", "abc", False),  # only '*' is special
    ("[::1]*", "[::1]:5060", True),  # brackets are literal: IPv6 references
    ("?ob", "bob", False),
    ("*\n*", "a\nb", True),  # '*' runs over line breaks too
])
def test_glob_semantics(pattern: str, text: str, matches: bool) -> None:
    assert (glob_regex(pattern).fullmatch(text) is not None) is matches


def test_no_conditions_for_an_empty_table() -> None:
    assert compile_conditions({}) == []


def test_uri_glob_matches_the_whole_request_uri() -> None:
    assert holds({"uri": "sip:bob@*"})
    assert not holds({"uri": "sip:bob"})
    assert not holds({"uri": "sip:alice@*"})


def test_uri_regex_searches() -> None:
    assert holds({"uri_regex": "bob@"})
    assert not holds({"uri_regex": "^bob"})


def test_user_glob_and_regex() -> None:
    assert holds({"user": "b*"})
    assert not holds({"user": "b"})
    assert holds({"user_regex": "o"})
    assert not holds({"user_regex": "^o"})


def test_a_uri_without_user_has_the_empty_user() -> None:
    no_user = request("sip:example.com")
    assert holds({"user": "*"}, no_user)
    assert not holds({"user": "?*"}, no_user)
    assert not holds({"user_regex": "."}, no_user)


def test_user_conditions_fail_on_an_unparsable_request_uri() -> None:
    bad = request()
    bad.uri_raw = "sip:"  # no host: parse_uri raises ValueError
    bad._uri = None
    assert not holds({"user": "*"}, bad)
    assert not holds({"user_regex": ""}, bad)


def test_header_regex_searches_every_row_by_any_name_form() -> None:
    req = request(headers=[("Subject", "hello"), ("Subject", "world"), ("X-Tag", "A")])
    assert holds({"headers": {"subject": "^wor"}}, req)
    assert holds({"headers": {"s": "hell"}}, req)  # compact form of Subject
    assert not holds({"headers": {"Subject": "^x"}}, req)
    assert not holds({"headers": {"X-Missing": ""}}, req)


def test_header_presence_and_absence() -> None:
    req = request(headers=[("X-Tag", "A")])
    assert holds({"headers": {"X-Tag": True}}, req)
    assert not holds({"headers": {"X-Tag": False}}, req)
    assert holds({"headers": {"X-Other": False}}, req)


def test_source_by_address_and_network() -> None:
    assert holds({"source": "192.0.2.0/24"})
    assert holds({"source": ["198.51.100.1", "192.0.2.7"]})
    assert not holds({"source": "192.0.2.8"})
    v6 = Source("udp", ("2001:db8::5", 5060), ("::1", 5060))
    assert holds({"source": "2001:db8::/32"}, source=v6)
    assert not holds({"source": "192.0.2.0/24"}, source=v6)


def test_transport_any_case() -> None:
    tls = Source("tls", ("192.0.2.7", 5061), ("127.0.0.1", 5061), 3)
    assert holds({"transport": ["TLS", "wss"]}, source=tls)
    assert not holds({"transport": "udp"}, source=tls)


def test_conditions_come_in_a_fixed_order_with_their_description() -> None:
    conditions = compile_conditions({
        "transport": "udp", "source": "192.0.2.0/24", "headers": {"X-A": "x", "X-B": True},
        "user_regex": "o", "user": "bob", "uri_regex": "b", "uri": "sip:*",
    })
    assert [c.what for c in conditions] == [
        "uri 'sip:*'", "uri_regex 'b'", "user 'bob'", "user_regex 'o'",
        "header X-A ~ 'x'", "header X-B present", "source in 192.0.2.0/24",
        "transport in ['udp']",
    ]


@pytest.mark.parametrize(("match", "field", "message"), [
    ({"uri": 5}, "uri", "must be a string (glob: '*' matches any run)"),
    ({"user": ["a"]}, "user", "must be a string (glob: '*' matches any run)"),
    ({"uri_regex": 1}, "uri_regex", "must be a regular expression string"),
    ({"user_regex": "("}, "user_regex", "invalid regular expression: "),
    ({"headers": "x"}, "headers", "must be a table of header name = regular expression"),
    ({"headers": {"X-A": "["}}, "headers.X-A", "invalid regular expression: "),
    ({"headers": {"X-A": 1}}, "headers.X-A", "must be a regular expression string"),
    ({"source": 10}, "source", "must be an address/CIDR string or a list of them"),
    ({"source": "10.0.0.300"}, "source", "'10.0.0.300' does not appear to be an IPv4 or IPv6"),
    ({"transport": "sctp"}, "transport", 'must be "udp", "tcp", "tls", "ws", "wss" or a list'),
    ({"transport": [1]}, "transport", 'must be "udp"'),
])
def test_errors_name_the_key_inside_the_match_table(match: dict[str, Any], field: str,
                                                    message: str) -> None:
    error = field_error(match)
    assert error.field == field
    assert error.message.startswith(message)
