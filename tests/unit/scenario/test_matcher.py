"""scenario.matcher: each ``match`` condition compiled and tested against requests."""

from __future__ import annotations

from typing import Any

import pytest

from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.globs import glob_match
from sipresponder.scenario.matcher import compile_conditions
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
    assert glob_match(pattern, text) is matches


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


# -- body and SDP conditions ------------------------------------------------------

SDP = [("Content-Type", "application/sdp")]
# RFC 4566 5 style offers: PCMU + PCMA (a softphone), G.729 only, a hold (sendonly).
BOTH = (b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        b"m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
G729 = (b"v=0\r\no=alice 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        b"m=audio 49170 RTP/AVP 18\r\n")
HOLD = (b"v=0\r\no=alice 1 2 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
        b"m=audio 49170 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=sendonly\r\n"
        b"m=video 51372 RTP/AVP 31\r\n")


def with_body(body: bytes, headers: list[tuple[str, str]] | None = None) -> Request:
    raw = make_request("INVITE", "sip:bob@example.com", headers=headers, body=body)
    return parse_request(raw, datagram=True)


def test_body_regex_searches_the_body_as_utf8() -> None:
    req = with_body("Hello, wörld\r\n".encode(), [("Content-Type", "text/plain")])
    assert holds({"body": "wörld"}, req)
    assert holds({"body": "^Hello"}, req)
    assert not holds({"body": "^wörld"}, req)  # search, anchored where the pattern says
    assert holds({"body": "\ufffd"}, with_body(b"\xff"))  # undecodable: replaced, no error
    assert not holds({"body": "."}, request())  # no body: searched as ""


def test_bad_body_regex_names_the_field() -> None:
    err = field_error({"body": "("})
    assert err.field == "body" and "invalid regular expression" in err.message
    assert field_error({"body": 3}).field == "body"


@pytest.mark.parametrize(("sdp", "body", "matches"), [
    ({"codecs": ["PCMA/8000"]}, BOTH, True),  # static type 8, no rtpmap
    ({"codecs": "pcma/8000"}, HOLD, True),  # a string, any case
    ({"codecs": ["PCMA/8000", "PCMU/8000"]}, G729, False),
    ({"codecs": ["G729/8000"]}, G729, True),
    ({"no_codecs": ["PCMU/8000", "PCMA/8000"]}, G729, True),  # the 488 case
    ({"no_codecs": ["PCMU/8000", "PCMA/8000"]}, BOTH, False),
    ({"no_codecs": ["PCMU/8000", "PCMA/8000"]}, HOLD, False),
    ({"media": ["video"]}, HOLD, True),
    ({"media": "video"}, BOTH, False),
    ({"direction": "sendonly"}, HOLD, True),
    ({"direction": ["recvonly", "inactive"]}, HOLD, False),
    ({"direction": "sendrecv"}, BOTH, True),  # absent: sendrecv (RFC 3264 5.1)
    ({"direction": "sendrecv"}, HOLD, True),  # the video stream has no attribute
    ({}, BOTH, True),  # an empty table: any SDP body
    ({"media": "audio", "codecs": "G729/8000"}, G729, True),
    ({"media": "audio", "codecs": "G729/8000"}, BOTH, False),
])
def test_sdp_conditions(sdp: dict[str, Any], body: bytes, matches: bool) -> None:
    assert holds({"sdp": sdp}, with_body(body, SDP)) is matches


@pytest.mark.parametrize("sdp", [
    {}, {"codecs": "PCMA/8000"}, {"no_codecs": "PCMA/8000"}, {"media": "audio"},
    {"direction": "sendrecv"},
])
def test_sdp_conditions_need_an_sdp_body(sdp: dict[str, Any]) -> None:
    # No body, or a body of another Content-Type: no SDP condition holds (not even
    # no_codecs: a late-offer INVITE is not "an offer without PCMA").
    assert not holds({"sdp": sdp}, request())
    assert not holds({"sdp": sdp}, with_body(G729, [("Content-Type", "text/plain")]))
    assert not holds({"sdp": sdp}, with_body(b"not sdp", SDP))
    # Content-Type parameters, case and the compact form are all read.
    assert holds({"sdp": {}}, with_body(BOTH, [("c", "Application/SDP; charset=utf-8")]))


def test_sdp_parsed_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import sipresponder.scenario.body as body

    calls = []
    real = body.read_offer
    monkeypatch.setattr(body, "read_offer", lambda b: calls.append(b) or real(b))
    req = with_body(HOLD, SDP)
    assert holds({"sdp": {"media": "audio", "codecs": "PCMA/8000", "direction": "sendonly"}}, req)
    assert holds({"sdp": {"no_codecs": "G729/8000"}}, req)
    assert len(calls) == 1
    assert holds({"sdp": {}}, with_body(HOLD, SDP))  # another request: parsed again
    assert len(calls) == 2


@pytest.mark.parametrize(("sdp", "field", "says"), [
    ("audio", "sdp", "must be a table"),
    ({"codec": ["PCMA/8000"]}, "sdp.codec", "unknown condition"),
    ({"codecs": ["PCMA"]}, "sdp.codecs", "'PCMA' is not a codec"),
    ({"codecs": []}, "sdp.codecs", "non-empty list"),
    ({"no_codecs": [8]}, "sdp.no_codecs", "must be"),
    ({"direction": "hold"}, "sdp.direction", "'hold' is not"),
    ({"media": ""}, "sdp.media", "is not a media type"),
])
def test_bad_sdp_conditions_name_the_field(sdp: object, field: str, says: str) -> None:
    err = field_error({"sdp": sdp})
    assert err.field == field and says in err.message


def test_body_and_sdp_conditions_describe_themselves() -> None:
    whats = [c.what for c in compile_conditions({
        "body": "^Hi",
        "sdp": {"media": ["audio"], "codecs": ["PCMA/8000"], "no_codecs": ["G729/8000"],
                "direction": "sendonly"},
    })]
    assert whats == [
        "body ~ '^Hi'",
        "sdp media include ['audio']",
        "sdp codecs include ['PCMA/8000']",
        "sdp codecs exclude ['G729/8000']",
        "sdp direction in ['sendonly']",
    ]
    assert [c.what for c in compile_conditions({"sdp": {}})] == ["sdp body present"]
