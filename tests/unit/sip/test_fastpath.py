"""The hot path's shortcuts decide exactly what the full grammar code decides.

Each shortcut (the name-addr cache that adds a From tag to a parsed prefix, the
CSeq fast path, the quote-free list check, the CRLF-only line split) is compared
with the general code on generated values that stress where they could differ.
"""

from __future__ import annotations

import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sipresponder.scenario.loader import parse_scenario
from sipresponder.sip import abnf, fastpath, headers, uri
from sipresponder.sip.abnf import split_top_level
from sipresponder.sip.fastpath import (
    content_lengths,
    parse_cseq,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_lines,
)
from sipresponder.sip.message import parse_request
from sipresponder.uas.events import Source
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
@example("", "sip:alice@example.com;tag=abc\t;tag=abc")  # found by this test
@example("<sip:a@b>;foo \t", ";tag=x")
def test_name_addr_with_cached_prefix_equals_full_parse(prefix: str, rest: str) -> None:
    fastpath.NAME_ADDRS.clear()
    value = prefix + rest
    with contextlib.suppress(ValueError):
        parse_name_addr(prefix)  # warm the cache the way the first request of a call does
    assert _outcome(parse_name_addr, value) == _outcome(headers.parse_name_addr, value)


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
    assert content_lengths(head) == abnf.CONTENT_LENGTH.findall(head)


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
    fastpath.VIAS.clear()
    if warm:
        with contextlib.suppress(ValueError):
            parse_via(value)  # the second parse of this shape comes from the cache

    def outcome(parse):
        try:
            via = parse(value)
        except ValueError as exc:
            return ("error", type(exc))
        return (via.raw, via.head, via.transport, via.host, via.port, via.params)

    assert outcome(parse_via) == outcome(headers.parse_via)


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["\r\n", "\n", "\r", "Via: x", " y", ":", "\r\r\n", "\n\r"]),
                max_size=10).map("".join))
@example("INVITE sip:a@b SIP/2.0\r\nVia: x\rFrom: y")
@example("a\r\nb\nc")
def test_line_split_equals_the_general_one(head: str) -> None:
    assert split_lines(head) == abnf.split_lines(head)


URI_PIECES = st.sampled_from([
    "sip:", "sips:", "tel:", "alice", "@", "example.com", ":5060", ";transport=tcp", "?x=y",
    "[2001:db8::1]", "%40", "x", ":", ";", " ", "<", "999999",
])


def _uri_outcome(parse, value: str):
    try:
        return parse(value)
    except ValueError as exc:
        return ("error", type(exc))


@settings(max_examples=800, deadline=None)
@given(st.lists(URI_PIECES, max_size=6).map("".join), st.booleans())
def test_cached_uri_equals_full_parse(value: str, warm: bool) -> None:
    fastpath.URIS.clear()
    if warm:
        with contextlib.suppress(ValueError):
            parse_uri(value)
    assert _uri_outcome(parse_uri, value) == _uri_outcome(uri.parse_uri, value)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ViaFROMl-: \t!x", max_size=8))
@example("v")
@example("Call-ID")
def test_header_name_table_equals_the_grammar(raw: str) -> None:
    assert fastpath.header_name(raw) == abnf.header_name(raw)
    assert fastpath.header_name(raw) == abnf.header_name(raw)  # now from the table


def test_bounded_cache_clears_when_full() -> None:
    cache: fastpath.BoundedCache[int] = fastpath.BoundedCache(3, max_key_length=4)
    for i, key in enumerate("abc"):
        assert cache.put(key, i) == i
    assert len(cache) == 3 and cache.get("b") == 1
    cache.put("d", 3)  # full: the old working set goes, the new entry stays
    assert len(cache) == 1 and cache.get("a") is None and cache.get("d") == 3
    assert cache.put("toolong", 9) == 9 and "toolong" not in cache
    cache.clear()
    assert len(cache) == 0


def test_bounded_cache_can_stop_growing_instead() -> None:
    cache: fastpath.BoundedCache[int] = fastpath.BoundedCache(2, clear_when_full=False)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("c", 3)
    assert len(cache) == 2 and cache.get("a") == 1 and "c" not in cache


def test_parse_caches_stay_bounded() -> None:
    fastpath.URIS.clear()
    fastpath.NAME_ADDRS.clear()
    for n in range(fastpath.URIS.max_entries + 10):
        parse_name_addr(f"<sip:u{n}@example.com>")
    assert 0 < len(fastpath.URIS) <= fastpath.URIS.max_entries
    assert 0 < len(fastpath.NAME_ADDRS) <= fastpath.NAME_ADDRS.max_entries
    long = "<sip:" + "a" * 300 + "@example.com>"
    assert parse_name_addr(long).uri.user == "a" * 300
    assert long not in fastpath.NAME_ADDRS


def test_a_from_tag_reuses_the_parsed_prefix() -> None:
    fastpath.NAME_ADDRS.clear()
    first = parse_name_addr('"Alice" <sip:alice@example.com>;tag=1')
    second = parse_name_addr('"Alice" <sip:alice@example.com>;tag=2')
    assert '"Alice" <sip:alice@example.com>' in fastpath.NAME_ADDRS
    assert second.uri is first.uri and (first.tag, second.tag) == ("1", "2")
    assert second.params_raw == ";tag=2"
