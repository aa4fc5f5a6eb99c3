"""Issue 18, linear-time matching: scenario regexes run on RE2 and globs never
backtrack, so a pathological pattern against a long text is answered at once. Each test
asserts the answer under a pytest-timeout that Python's backtracking ``re`` would blow
by orders of magnitude (``^(a+)+$`` doubles its time with every octet)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from sipresponder.journal.record import Query
from sipresponder.ops.admin import Admin
from sipresponder.scenario.edit import put_rule
from sipresponder.scenario.globs import glob_match
from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.scenario.positions import rule_tables
from sipresponder.testing.api import Responder
from tests.sipclient import make_request, udp_exchange

EVIL = "^(a+)+$"
STARS = "*a*a*a*a*a*a*a*a*a*a*a*a*b"
SCENARIO = f"""
[[rule]]
name = "body"
match = {{ method = "MESSAGE", body = "{EVIL}" }}
code = 486
[[rule]]
name = "header"
match = {{ method = "INFO", headers = {{ "X-Evil" = "{EVIL}" }} }}
code = 403
[[rule]]
name = "uri"
match = {{ method = "OPTIONS", uri_regex = "^sip:(a+)+$" }}
code = 410
[[rule]]
name = "user"
match = {{ method = "NOTIFY", user_regex = "{EVIL}" }}
code = 480
[[rule]]
name = "glob"
match = {{ method = "PUBLISH", uri = "sip:{STARS}@*" }}
code = 603
[default]
code = 404
"""
LONG = "a" * 10_000 + "b"  # no match, the worst case for a backtracking engine


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    responder = await Responder(parse_scenario(SCENARIO, "<redos>")).start()
    try:
        yield responder
    finally:
        await responder.stop()


async def code_of(responder: Responder, request: bytes) -> int:
    [answer] = await udp_exchange(responder.address("udp")[1], request)
    return answer.code


@pytest.mark.timeout(20)
async def test_a_pathological_body_regex_is_answered(responder: Responder) -> None:
    message = make_request("MESSAGE", "sip:x@127.0.0.1", body=LONG.encode(),
                           headers=[("Content-Type", "text/plain")])
    assert await code_of(responder, message) == 404
    message = make_request("MESSAGE", "sip:x@127.0.0.1", body=b"a" * 10_000,
                           headers=[("Content-Type", "text/plain")])
    assert await code_of(responder, message) == 486


@pytest.mark.timeout(20)
async def test_a_pathological_header_regex_is_answered(responder: Responder) -> None:
    info = make_request("INFO", "sip:x@127.0.0.1", headers=[("X-Evil", "a" * 4000 + "b")])
    assert await code_of(responder, info) == 404
    info = make_request("INFO", "sip:x@127.0.0.1", headers=[("X-Evil", "a" * 4000)])
    assert await code_of(responder, info) == 403


@pytest.mark.timeout(20)
async def test_pathological_uri_and_user_regexes_are_answered(responder: Responder) -> None:
    assert await code_of(responder, make_request("OPTIONS", "sip:" + "a" * 4000 + "b")) == 404
    assert await code_of(responder, make_request("OPTIONS", "sip:" + "a" * 4000)) == 410
    user = "a" * 4000
    assert await code_of(responder, make_request("NOTIFY", f"sip:{user}b@127.0.0.1")) == 404
    assert await code_of(responder, make_request("NOTIFY", f"sip:{user}@127.0.0.1")) == 480


@pytest.mark.timeout(20)
async def test_a_many_star_scenario_glob_is_answered(responder: Responder) -> None:
    user = "a" * 4000
    assert await code_of(responder, make_request("PUBLISH", f"sip:{user}@h")) == 404
    assert await code_of(responder, make_request("PUBLISH", f"sip:{user}b@h")) == 603


@pytest.mark.timeout(10)
def test_a_many_star_journal_glob_over_a_long_uri() -> None:
    uri = "sip:" + "a" * 20_000 + "@example.com"
    assert not glob_match(STARS, uri)
    assert glob_match(STARS, uri[:-12] + "b")
    assert glob_match("*" * 5000 + "b", "a" * 20_000 + "b")
    assert not glob_match("*a" * 2000 + "*b", "a" * 20_000)


@pytest.mark.timeout(20)
async def test_the_admin_api_journal_filter_with_many_stars(responder: Responder) -> None:
    """The exact probe of issue 18 (5.2 s then over 75 characters), over 5,000."""
    admin = Admin(responder, SCENARIO)
    await admin.start("127.0.0.1", 0)
    try:
        uri = "sip:" + "a" * 5000 + "@127.0.0.1"
        assert await code_of(responder, make_request("OPTIONS", uri)) == 404
        host, port = admin.address  # type: ignore[misc]
        async with aiohttp.ClientSession() as http:
            params = {"uri": "*a*a*a*a*a*a*b"}
            async with http.get(f"http://{host}:{port}/api/requests", params=params) as resp:
                assert resp.status == 200
                assert (await resp.json())["count"] == 0
            params = {"uri": "*a*a*a*a*a*a*@127.0.0.1"}
            async with http.get(f"http://{host}:{port}/api/requests", params=params) as resp:
                assert (await resp.json())["count"] == 1
    finally:
        await admin.close()
    assert Query.build(uri="*a*a*a*a*a*a*b").select(responder.journal) == []


@pytest.mark.parametrize(("where", "pattern", "field", "reason"), [
    ("body", "(a)\\\\1", "match.body", "invalid escape sequence: \\1"),
    ("uri_regex", "(?=sip)", "match.uri_regex", "invalid perl operator: (?="),
    ("user_regex", "(?<!x)bob", "match.user_regex", "invalid perl operator: (?<"),
    ("headers", "{ X = '^a\\Z' }", "match.headers.X", "invalid escape sequence: \\Z"),
])
def test_what_re2_refuses_is_a_load_time_error_naming_the_field(
        where: str, pattern: str, field: str, reason: str) -> None:
    value = pattern if where == "headers" else f'"{pattern}"'
    text = f"[[rule]]\nname = 'r'\nmatch = {{ {where} = {value} }}\ncode = 200\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "<re2>")
    assert info.value.field == field
    assert reason in str(info.value)
    assert "RE2" in str(info.value) and "\n" not in str(info.value)


HOSTILE_LINE = "[" + " " * 5000 + "a" + " " * 5000  # took minutes in the header regexes


@pytest.mark.timeout(20)
async def test_the_check_endpoint_on_a_hostile_header_line(responder: Responder) -> None:
    """The console's check locates errors by scanning table headers; its regex took
    cubic time on a "[" followed by spaces."""
    admin = Admin(responder, SCENARIO)
    await admin.start("127.0.0.1", 0)
    try:
        host, port = admin.address  # type: ignore[misc]
        async with aiohttp.ClientSession() as http, http.post(
                f"http://{host}:{port}/api/scenario/check", data=HOSTILE_LINE,
                headers={"Content-Type": "application/toml", "X-Sipresponder": "1"}) as resp:
            assert resp.status == 422
            assert "invalid TOML" in (await resp.json())["error"]
    finally:
        await admin.close()


@pytest.mark.timeout(20)
def test_rule_edits_and_positions_on_a_hostile_header_line() -> None:
    text = (f'[[rule]]\nname = "a"\ncode = 200\ncontent_type = "text/plain"\n'
            f'body = """\n{HOSTILE_LINE}\n"""\n')
    parse_scenario(text, "<hostile>")  # valid: the line is inside a string
    edited, added = put_rule(text, "b", "code = 486")
    assert added and parse_scenario(edited, "<edited>").rules[1].name == "b"
    first, second = rule_tables(edited)
    assert first.line == 1 and second.line > first.line
