"""The hot path's shortcuts decide exactly what the full grammar code decides.

Each shortcut (the name-addr cache that adds a From tag to a parsed prefix, the
CSeq fast path, the quote-free list check, the CRLF-only line split) is compared
with the general code on generated values that stress where they could differ.
"""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipresponder.uas.events import Source
from sipresponder.scenario.loader import parse_scenario
from sipresponder.sip import framing, headers
from sipresponder.sip.framing import content_lengths
from sipresponder.sip.abnf import split_top_level
from sipresponder.sip.headers import parse_cseq, parse_name_addr, parse_via
from sipresponder.sip.message import parse_request
from tests.sipclient import make_request

PIECES = st.sampled_from([
    "sip:alice@example.com", "<sip:bob@10.0.0.1:5060>", '"A;tag=x" ', '"', "<", ">", ";",
    ";tag=", "tag=", "abc", "1", " ", ";tag=abc", ";foo", "=", ";lr", "\\", "sips:x@y",
    "TAG", ";tag=a;tag=b", ",", "\t", "é",
])
VALUES = st.lists(PIECES, min_size=0, max_size=8).map("".join)


def _outcome(parse, value: str):
    try:
        addr = parse(value)
    except ValueError as exc:
        return ("error", type(exc))
    return (addr.display, addr.uri, addr.bracketed, addr.params, addr.params_raw)


@settings(max_examples=800, deadline=None)
@given(VALUES, VALUES)
@example("<sip:a@b>", ";tag=x")
@example('"x;tag=y" <sip:a@b>', "")
@example("<sip:a@b>;foo=", ";tag=x")
@example("<sip:a@b", ";tag=x>")
def test_name_addr_with_cached_prefix_equals_full_parse(prefix: str, rest: str) -> None:
    headers._PARSED.clear()
    value = prefix + rest
    with contextlib.suppress(ValueError):
        parse_name_addr(prefix)  # warm the cache the way the first request of a call does
    assert _outcome(parse_name_addr, value) == _outcome(headers._parse_name_addr, value)


def test_many_tags_do_not_recurse() -> None:
    value = "<sip:a@b>" + ";tag=x" * 20000
    assert parse_name_addr(value).tag == "x"


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet="0123456789 INVITEOPTSACKBYE\t²x", max_size=16))
@example("1 INVITE")
@example("² INVITE")
@example("1234567890 INVITE")
def test_cseq_fast_path_equals_grammar(value: str) -> None:
    def slow(text: str):
        m = headers._CSEQ.fullmatch(text.strip(headers.WSP))
        if m is None or not headers.TOKEN.fullmatch(m[2]):
            return "error"
        if len(m[1].lstrip("0")) > 10 or int(m[1]) > headers.MAX_CSEQ:
            return "error"
        return int(m[1]), m[2]

    try:
        fast = parse_cseq(value)
    except ValueError:
        fast = "error"
    assert fast == slow(value)


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet='<>"a,; \\', max_size=12))
def test_quote_free_list_check_is_exact(row: str) -> None:
    if '"' in row:
        return
    try:
        split_top_level(row)
        ok = True
    except ValueError:
        ok = False
    assert ok == (row.rfind("<") <= row.rfind(">"))


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["\r\n", "\n", "\r", "Via: x", " y", ":", "\r\r\n", "\n\r"]),
                max_size=10).map("".join))
def test_crlf_only_split_agrees_with_the_general_one(head: str) -> None:
    # parse_request splits on CRLF when every CR and LF is part of one; the general
    # split (on LF, then dropping a CR before it) must give the same lines then.
    crlf = head.count("\r\n")
    if crlf == head.count("\n") == head.count("\r"):
        general = [line[:-1] if line.endswith("\r") else line for line in head.split("\n")]
        assert head.split("\r\n") == general


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from([
    b"\r\n", b"\n", b"\r", b"Content-Length", b"content-length", b"l", b"L", b":", b" ", b"\t",
    b"12", b"x", b"INVITE sip:a@b SIP/2.0", b"Content-Lengthx", b"\r\n ", b"Via: a",
]), max_size=12).map(b"".join))
@example(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 1\r2")
@example(b"Content-Length: 5\r\nContent-Length: 6")
@example(b"INVITE x SIP/2.0\r\nContent-Length: 5\r\n 7")
def test_content_length_scan_equals_the_pattern(head: bytes) -> None:
    assert content_lengths(head) == framing._CONTENT_LENGTH.findall(head)


USERS = st.sampled_from(["alice", "bob", "486", "a*", "*", "b%40c", "Bob"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["user", "method", "uri", "none"]), USERS), max_size=8),
    st.sampled_from(["alice", "bob", "486", "a-b", "b@c", "Bob", ""]),
    st.sampled_from(["INVITE", "OPTIONS"]),
)
def test_rule_index_picks_what_a_linear_scan_picks(rules, user: str, method: str) -> None:
    lines = []
    for kind, value in rules:
        condition = {
            "user": f'{{ user = "{value}" }}',
            "method": f'{{ method = "{method}" }}',
            "uri": f'{{ uri = "sip:{value}@*" }}',
            "none": "{}",
        }[kind]
        lines.append(f"[[rule]]\nmatch = {condition}\ncode = 480\n")
    scenario = parse_scenario("\n".join(lines), "<test>")
    uri = f"sip:{user.replace('@', '%40')}@127.0.0.1" if user else "sip:127.0.0.1"
    request = parse_request(make_request(method, uri), datagram=True)
    source = Source("udp", ("127.0.0.1", 5999), ("127.0.0.1", 5060), 1)
    linear = next((r for r in scenario.rules if r.matches(request, source)), scenario.default)
    assert scenario.match(request, source) is linear


VIA_PIECES = st.sampled_from([
    "SIP/2.0/UDP 10.0.0.1:5060", "SIP/2.0/TCP host.example.com", ";branch=", "z9hG4bK-1",
    ";rport", ";received=1.2.3.4", ";", "=", " ", '"', "<", ">", "x", ";branch=a;branch=b",
    ";Branch=z", ";ttl=1", ":5061",
])


@settings(max_examples=1500, deadline=None)
@given(st.lists(VIA_PIECES, max_size=8).map("".join), st.booleans())
@example("SIP/2.0/UDP h;branch=z9hG4bK-1;rport", True)
@example("SIP/2.0/UDP h;rport;branch=z9;received=1.2.3.4", True)
@example("SIP/2.0/UDP h;;branch=z9", True)
@example('SIP/2.0/UDP h;x="a;branch=b"', True)
def test_via_with_cached_rest_equals_full_parse(value: str, warm: bool) -> None:
    headers._VIAS.clear()
    if warm:
        with contextlib.suppress(ValueError):
            parse_via(value)  # the second parse of this shape comes from the cache

    def outcome(parse):
        try:
            via = parse(value)
        except ValueError as exc:
            return ("error", type(exc))
        return (via.raw, via.head, via.transport, via.host, via.port, via.params)

    assert outcome(parse_via) == outcome(lambda v: headers._parse_via(v, lenient=False))
