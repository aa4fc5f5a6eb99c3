"""scenario.template: compiled once, rendered from a request and its source."""

from __future__ import annotations

import hashlib

import pytest

from sipresponder.scenario.template import (
    VARIABLES,
    RenderContext,
    Template,
    TemplateError,
    compile_template,
)
from sipresponder.sip.message import Request, parse_request
from sipresponder.uas.events import Source
from tests.sipclient import make_request

UDP = Source("udp", ("192.0.2.7", 5070), ("127.0.0.1", 5060))
V6 = Source("tcp", ("2001:db8::7", 5070), ("2001:db8::1", 5062), 4)


def request(uri: str = "sip:bob@example.com:5080;transport=udp",
            headers: list[tuple[str, str]] | None = None) -> Request:
    return parse_request(
        make_request("INVITE", uri, headers=headers, call_id="abc@host", cseq=7),
        datagram=True,
    )


def render(text: str, req: Request | None = None, source: Source = UDP) -> str:
    return compile_template(text).render(RenderContext(req or request(), source))


def test_constant_text_is_one_literal_part() -> None:
    t = compile_template("plain text")
    assert t.is_constant and t.parts == ("plain text",)
    assert t.source == "plain text"
    assert compile_template("").parts == ()
    assert compile_template("").is_constant


def test_doubled_braces_are_literal() -> None:
    t = compile_template("{{x}} and }}{{")
    assert t.is_constant
    assert t.parts == ("{x} and }{",)


def test_a_variable_makes_it_non_constant_and_keeps_literals_around_it() -> None:
    t = compile_template("<sip:{ruri.user}@x>")
    assert not t.is_constant
    assert len(t.parts) == 3
    assert t.parts[0] == "<sip:" and t.parts[2] == "@x>"
    assert render("<sip:{ruri.user}@x>") == "<sip:bob@x>"


@pytest.mark.parametrize(("text", "expected"), [
    ("{method}", "INVITE"),
    ("{ruri}", "sip:bob@example.com:5080;transport=udp"),
    ("{ruri.user}", "bob"),
    ("{ruri.host}", "example.com"),
    ("{ruri.port}", "5080"),
    ("{ruri.scheme}", "sip"),
    ("{call_id}", "abc@host"),
    ("{cseq}", "7 INVITE"),
    ("{cseq.number}/{cseq.method}", "7/INVITE"),
    ("{from.user}@{from.host}", "tester@example.com"),
    ("{from.tag}", "fromtag1"),
    ("{from.uri}", "sip:tester@example.com"),
    ("{from.port}", ""),
    ("{to.tag}", ""),
    ("{to.user}", "bob"),
    ("{source.ip}:{source.port}", "192.0.2.7:5070"),
    ("{local.ip}:{local.port}", "127.0.0.1:5060"),
    ("{local.hostport}", "127.0.0.1:5060"),
    ("{transport}", "udp"),
    ("{ method }", "INVITE"),  # blanks inside the braces are trimmed
])
def test_variables(text: str, expected: str) -> None:
    assert render(text) == expected


def test_ipv6_local_hostport_is_bracketed() -> None:
    assert render("{local.hostport}", source=V6) == "[2001:db8::1]:5062"


def test_header_variable_is_the_first_row_of_any_name_form() -> None:
    req = request(headers=[("X-Tag", "one"), ("X-Tag", "two")])
    assert render("{header.X-Tag}", req) == "one"
    assert render("{header.x-tag}", req) == "one"
    assert render("{header.X-Missing}", req) == ""


def test_nonce_is_stable_per_call_id() -> None:
    expected = hashlib.blake2s(b"abc@host", digest_size=16).hexdigest()
    assert render("{nonce}") == expected


def test_a_malformed_source_renders_empty() -> None:
    req = request(headers=[])
    req.fields["from"] = ["not a name-addr <"]
    req._from = None
    assert render("[{from.user}]", req) == "[]"


def test_every_variable_renders_a_string() -> None:
    ctx = RenderContext(request(), UDP)
    for name in VARIABLES:
        assert isinstance(compile_template(f"{{{name}}}").render(ctx), str)


@pytest.mark.parametrize(("text", "message"), [
    ("{nope}", "unknown variable {nope} (known: "),
    ("{", "unbalanced '{' (write {{ for a literal brace)"),
    ("a}b", "unbalanced '}' (write }} for a literal brace)"),
    ("{from.nope}", "unknown variable {from.nope}"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        compile_template(text)
    assert str(info.value).startswith(message)


def test_a_template_built_by_hand_renders_its_parts() -> None:
    assert Template("x", ("a", "{b}")).render(RenderContext(request(), UDP)) == "a{b}"


# RFC 3264 10.1's audio offer, PCMU/PCMA by static type, plus telephone-events.
OFFER = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\n"
         b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\n"
         b"a=rtpmap:97 telephone-event/8000\r\na=recvonly\r\n"
         b"m=video 51372 RTP/AVP 31\r\n")


@pytest.mark.parametrize(("text", "expected"), [
    ("{sdp.media}", "audio,video"),
    ("{sdp.codecs}", "PCMU/8000,PCMA/8000,telephone-event/8000,H261/90000"),
    ("{sdp.codec}", "PCMU/8000"),
    ("{sdp.direction}", "recvonly"),
    ("{sdp.connection}", "192.0.2.10"),
])
def test_sdp_variables(text: str, expected: str) -> None:
    raw = make_request("INVITE", "sip:bob@example.com",
                       headers=[("Content-Type", "application/sdp")], body=OFFER)
    assert render(text, parse_request(raw, datagram=True)) == expected


def test_sdp_variables_are_empty_without_an_offer() -> None:
    text = "[{sdp.media}|{sdp.codecs}|{sdp.codec}|{sdp.direction}|{sdp.connection}]"
    assert render(text) == "[||||]"
    raw = make_request("MESSAGE", "sip:bob@example.com",
                       headers=[("Content-Type", "text/plain")], body=OFFER)
    assert render(text, parse_request(raw, datagram=True)) == "[||||]"


def test_a_constant_template_gives_its_text_without_a_request() -> None:
    assert compile_template("Busy Here").constant == "Busy Here"


def test_a_template_with_a_placeholder_has_no_constant_text() -> None:
    template = compile_template("{ruri.user}")
    assert not template.is_constant
    with pytest.raises(ValueError, match="depends on the request"):
        template.constant  # noqa: B018
