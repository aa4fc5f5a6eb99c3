"""The admin HTTP API (serve --admin), over real HTTP on loopback, and `verify`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sipresponder.ops import admin as admin_module
from sipresponder.ops.admin import PUT_SCENARIO_PATH, Admin
from sipresponder.ops.cli import main
from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import UDPClient, make_request, udp_exchange

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """
[[rule]]
name = "busy"
match = { method = "INVITE", user = "bob", headers = { "User-Agent" = "^TestPhone" } }
code = 486
[default]
code = 404
"""


class Running:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession) -> None:
        self.responder, self.admin, self.http = responder, admin, http
        host, port = admin.address  # type: ignore[misc]
        self.base = f"http://{host}:{port}"
        self.udp_port = responder.address("udp")[1]

    def url(self, path: str) -> str:
        return self.base + path

    async def sip(self, method: str, user: str, headers: list[tuple[str, str]] | None = None,
                  expect: int = 1) -> list[int]:
        req = make_request(method, f"sip:{user}@127.0.0.1", headers=headers)
        return [r.code for r in await udp_exchange(self.udp_port, req, expect=expect)]


@pytest.fixture
async def admin_factory() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    started: list[Running] = []

    async def start(scenario: str = SCENARIO, token: str | None = None) -> Running:
        responder = await Responder(parse_scenario(scenario, "<test>")).start()
        admin = Admin(responder, scenario, token)
        await admin.start("127.0.0.1", 0)
        # X-Sipresponder: what the admin API asks of every POST, PUT and DELETE (CSRF).
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                     headers={"X-Sipresponder": "1"})
        running = Running(responder, admin, http)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.http.close()
        await running.admin.close()
        await running.responder.stop()


@pytest.fixture
async def running(admin_factory: Callable[..., Awaitable[Running]]) -> Running:
    return await admin_factory()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition with a bounded deadline (for state with no event to await)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def get_json(r: Running, path: str, status: int = 200, **kwargs) -> dict:
    async with r.http.get(r.url(path), **kwargs) as resp:
        assert resp.status == status, await resp.text()
        return await resp.json()


# -- basic endpoints ----------------------------------------------------------------------
async def test_healthz_and_openapi(running: Running) -> None:
    health = await get_json(running, "/healthz")
    assert health["status"] == "ok"
    assert health["request_path"] in ("compiled", "pure Python")
    doc = await get_json(running, "/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    routes = {(resource.canonical, method.lower())
              for route in running.admin.app().router.routes()
              for resource, method in [(route.resource, route.method)]
              if method != "HEAD"}
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == documented


async def test_requests_listing_and_filters(running: Running) -> None:
    assert await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")]) == [486]
    assert await running.sip("INVITE", "bob", [("User-Agent", "Other")]) == [404]
    assert await running.sip("OPTIONS", "carol") == [404]

    body = await get_json(running, "/api/requests")
    assert body["count"] == 3
    first = body["entries"][0]
    assert first["method"] == "INVITE" and first["uri"] == "sip:bob@127.0.0.1"
    assert first["rule"] == "rule 'busy' (#1)" and first["codes"] == [486]
    assert first["transport"] == "udp" and first["remote"][0] == "127.0.0.1"
    assert first["raw"].startswith("INVITE sip:bob@127.0.0.1 SIP/2.0\r\n")
    assert first["responses"][0].startswith("SIP/2.0 486 ")
    assert ["User-Agent", "TestPhone/1"] in first["headers"]
    assert first["near_miss"] is None and first["outcome"]
    assert isinstance(first["seq"], int) and isinstance(first["time"], float)
    received = datetime.fromisoformat(first["received_at"])
    assert first["received_at"].endswith("Z") and received.utcoffset() == timedelta(0)
    miss = body["entries"][1]["near_miss"]
    assert miss == {"rule": "rule 'busy' (#1)", "failed": ["header User-Agent ~ '^TestPhone'"]}

    async def count(**params) -> int:
        return (await get_json(running, "/api/requests/count", params=params))["count"]

    assert await count(method="INVITE") == 2
    assert await count(uri="sip:carol@*") == 1
    assert await count(uri="sip:dave@*") == 0
    assert await count(rule="busy") == 1
    assert await count(rule="[default]") == 2
    assert await count(header="User-Agent:TestPhone*") == 1
    assert await count(method="INVITE", header="User-Agent:*") == 2
    assert await count(since=str(first["seq"])) == 2
    # header= is repeatable
    params = [("header", "User-Agent:Other"), ("header", "Call-ID:*")]
    assert await count() == 3
    listed = await get_json(running, "/api/requests", params=params)
    assert [e["seq"] for e in listed["entries"]] == [body["entries"][1]["seq"]]

    error = await get_json(running, "/api/requests", 400, params={"since": "x"})
    assert "since" in error["error"]
    error = await get_json(running, "/api/requests/count", 400, params={"header": "NoColon"})
    assert "Name:glob" in error["error"]


async def test_delete_requests_and_reset(running: Running) -> None:
    await running.sip("OPTIONS", "a")
    assert (await get_json(running, "/api/requests/count"))["count"] == 1
    async with running.http.delete(running.url("/api/requests")) as resp:
        assert resp.status == 200
    assert (await get_json(running, "/api/requests/count"))["count"] == 0
    await running.sip("OPTIONS", "b")
    async with running.http.post(running.url("/api/reset")) as resp:
        assert resp.status == 200
    assert (await get_json(running, "/api/requests"))["entries"] == []


# -- wait -----------------------------------------------------------------------------------
async def test_concurrent_waits_all_return_when_requests_arrive(running: Running) -> None:
    async def wait(body: dict) -> tuple[int, dict]:
        async with running.http.post(running.url("/api/requests/wait"), json=body) as resp:
            return resp.status, await resp.json()

    tasks = [
        asyncio.create_task(wait({"method": "INVITE", "uri": "sip:bob@*", "timeout": 10})),
        asyncio.create_task(wait({"method": "OPTIONS", "count": 2, "timeout": 10})),
        asyncio.create_task(wait({"headers": ["User-Agent:TestPhone*"], "timeout": 10})),
        asyncio.create_task(wait({"rule": "busy", "headers": {"User-Agent": "Test*"},
                                  "timeout": 10})),
    ]
    assert running.responder.changes is not None
    changed = running.responder.changes.event
    # All four handlers are parked on the journal's change event before anything arrives.
    await until(lambda: len(changed._waiters) >= len(tasks))  # type: ignore[union-attr]
    assert not any(t.done() for t in tasks)
    await running.sip("OPTIONS", "x")
    await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/2")])
    await running.sip("OPTIONS", "y")
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert [status for status, _ in results] == [200] * 4
    assert [body["count"] for _, body in results] == [1, 2, 1, 1]
    assert results[0][1]["entries"][0]["codes"] == [486]
    assert [e["uri"] for e in results[1][1]["entries"]] == ["sip:x@127.0.0.1", "sip:y@127.0.0.1"]


async def test_wait_timeout_returns_408_with_the_journal(running: Running) -> None:
    await running.sip("OPTIONS", "carol")
    started = time.monotonic()
    async with running.http.post(running.url("/api/requests/wait"),
                                 json={"method": "INVITE", "timeout": 0.3}) as resp:
        assert resp.status == 408
        body = await resp.json()
    assert 0.25 <= time.monotonic() - started < 5
    assert body["error"] == ("expected 1 request(s) matching method='INVITE' within 0.3 s, "
                             "got 0")
    assert "OPTIONS sip:carol@127.0.0.1 -> [default], answered [404]" in body["listing"]
    assert [e["method"] for e in body["journal"]] == ["OPTIONS"]


async def test_wait_timeout_is_capped(running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_module, "MAX_WAIT", 0.2)
    started = time.monotonic()
    async with running.http.post(running.url("/api/requests/wait"),
                                 json={"method": "INVITE", "timeout": 3600}) as resp:
        assert resp.status == 408
        assert "within 0.2 s" in (await resp.json())["error"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("body, message", [
    ("[1, 2]", "JSON object"),
    ("{", "not JSON"),
    ('{"count": 0}', "count"),
    ('{"timeout": -1}', "timeout"),
    ('{"method": 5}', "method"),
    ('{"headers": ["NoColon"]}', "Name:glob"),
])
async def test_wait_rejects_bad_bodies(running: Running, body: str, message: str) -> None:
    async with running.http.post(running.url("/api/requests/wait"), data=body,
                                 headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 400
        assert message in (await resp.json())["error"]


# -- strict filters ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/requests", "/api/requests/count"])
async def test_a_misspelled_query_parameter_is_a_400_not_a_pass(running: Running,
                                                                 path: str) -> None:
    await running.sip("OPTIONS", "carol")
    error = await get_json(running, path, 400, params={"metod": "INVITE"})
    assert error["error"] == ("unknown query parameter 'metod' (did you mean 'method'?); "
                              "valid: method, uri, header, rule, since, direction, code, dtmf")
    error = await get_json(running, path, 400, params=[("method", "A"), ("method", "B")])
    assert "more than once" in error["error"]


@pytest.mark.parametrize("endpoint", ["wait", "verify"])
async def test_a_misspelled_body_key_is_a_400_not_a_pass(running: Running,
                                                          endpoint: str) -> None:
    await running.sip("OPTIONS", "carol")
    async with running.http.post(running.url(f"/api/requests/{endpoint}"),
                                 json={"metod": "REGISTER", "timeout": 1}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error.startswith("unknown key 'metod' (did you mean 'method'?); valid: method, "
                            "uri, headers, rule, since")


async def test_uri_filter_matches_an_ipv6_reference(running: Running) -> None:
    await running.sip("OPTIONS", "x")
    uri = "sip:alice@[::1]:42005"
    req = make_request("OPTIONS", uri)
    await udp_exchange(running.udp_port, req)
    body = await get_json(running, "/api/requests", params={"uri": uri})
    assert [e["uri"] for e in body["entries"]] == [uri]
    async with running.http.post(running.url("/api/requests/wait"),
                                 json={"uri": uri, "timeout": 2}) as resp:
        assert resp.status == 200


# -- verify: exactly, at most, none -----------------------------------------------------------
async def post(r: Running, path: str, body: dict) -> tuple[int, dict]:
    async with r.http.post(r.url(path), json=body) as resp:
        return resp.status, await resp.json()


async def test_verify_endpoint(running: Running) -> None:
    await running.sip("OPTIONS", "carol")
    status, body = await post(running, "/api/requests/verify",
                              {"method": "INVITE", "none": True, "within": 0.2})
    assert (status, body) == (200, {"count": 0, "entries": []})
    status, body = await post(running, "/api/requests/verify",
                              {"method": "OPTIONS", "exactly": 1, "within": 0.2})
    assert status == 200 and [e["uri"] for e in body["entries"]] == ["sip:carol@127.0.0.1"]
    status, body = await post(running, "/api/requests/verify",
                              {"at_most": 0, "within": 30, "uri": "sip:carol@*"})
    assert status == 409
    assert body["error"] == ("expected no request(s) matching uri='sip:carol@*' "
                             "(window 30 s), got 1")
    assert [e["uri"] for e in body["entries"]] == ["sip:carol@127.0.0.1"]
    assert "OPTIONS sip:carol@127.0.0.1 -> [default], answered [404]" in body["listing"]
    assert len(body["journal"]) == 1
    status, body = await post(running, "/api/requests/verify",
                              {"method": "BYE", "exactly": 1, "timeout": 0.2, "within": 0})
    assert status == 408 and body["entries"] == []
    assert "expected exactly 1 request(s) matching method='BYE' within 0.2 s" in body["error"]


async def test_verify_none_fails_when_a_request_arrives_in_the_window(running: Running) -> None:
    task = asyncio.create_task(post(running, "/api/requests/verify",
                                    {"method": "OPTIONS", "none": True, "within": 30}))
    await running.sip("OPTIONS", "late")
    status, body = await asyncio.wait_for(task, 10)
    assert status == 409 and body["entries"][0]["uri"] == "sip:late@127.0.0.1"


@pytest.mark.parametrize(("body", "message"), [
    ({}, "give exactly one of"),
    ({"exactly": 1, "none": True}, "give exactly one of"),
    ({"exactly": -1}, "exactly: expected an integer >= 0"),
    ({"none": "yes"}, "none: expected true or false"),
    ({"none": True, "within": -1}, "within"),
    ({"none": True, "headers": "X"}, "headers"),
    ({"count": 1}, "unknown key 'count'"),
])
async def test_verify_rejects_bad_bodies(running: Running, body: dict, message: str) -> None:
    status, answer = await post(running, "/api/requests/verify", body)
    assert status == 400 and message in answer["error"]


# -- one rule by name ---------------------------------------------------------------------------
async def scenario_text(r: Running) -> str:
    async with r.http.get(r.url("/api/scenario")) as resp:
        return await resp.text()


async def test_put_and_delete_one_rule(running: Running) -> None:
    async def put(name: str, body: str) -> tuple[int, dict]:
        async with running.http.put(running.url(f"/api/rules/{name}"), data=body) as resp:
            return resp.status, await resp.json()

    # added after the last rule
    status, body = await put("carol", 'match = { user = "carol" }\ncode = 480\n')
    assert (status, body) == (200, {"status": "added", "rule": "carol", "number": 2, "rules": 2,
                                    "warnings": []})
    assert await running.sip("OPTIONS", "carol") == [480]
    text = await scenario_text(running)
    assert SCENARIO.split("[default]")[0] in text  # the rest is kept as written
    assert parse_scenario(text, "<t>").rules[1].name == "carol"
    assert '[[rule]]\nname = "carol"\nmatch = {user = "carol"}\ncode = 480\n' in text

    # replaced in place: still first, now answering 603; a [match] subtable is fine
    status, body = await put("busy", 'code = 603\n[match]\nmethod = "INVITE"\nuser = "bob"\n')
    assert (status, body["status"]) == (200, "replaced")
    assert await running.sip("INVITE", "bob") == [603]
    text = await scenario_text(running)
    assert [r.name for r in parse_scenario(text, "<t>").rules] == ["busy", "carol"]
    assert 'name = "busy"\ncode = 603\nmatch = {method = "INVITE", user = "bob"}\n' in text

    # deleted
    async with running.http.delete(running.url("/api/rules/carol")) as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "deleted"
    assert await running.sip("OPTIONS", "carol") == [404]
    assert "carol" not in await scenario_text(running)
    async with running.http.delete(running.url("/api/rules/carol")) as resp:
        assert resp.status == 404
        assert (await resp.json()) == {"error": "no rule named 'carol'"}


@pytest.mark.parametrize(("body", "message"), [
    ("code = 302\n", "<PUT /api/rules/busy>: rule 'busy' (#1)"),  # 302 needs a Contact
    ("code = 99\n", "field 'code'"),
    ("nonsense = 1\ncode = 200\n", "nonsense"),
    ('name = "other"\ncode = 200\n', "the URL's name and the body's must agree"),
    ("code = \n", "not TOML"),
    ("", "the body is empty"),
])
async def test_put_rule_is_validated_like_a_scenario(running: Running, body: str,
                                                     message: str) -> None:
    async with running.http.put(running.url("/api/rules/busy"), data=body) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert message in error and "\n" not in error
    assert await scenario_text(running) == SCENARIO
    assert await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")]) == [486]


async def test_put_rule_error_is_the_loaders_one_line_message(running: Running) -> None:
    async with running.http.put(running.url("/api/rules/busy"), data="code = 302\n") as resp:
        error = (await resp.json())["error"]
    edited = SCENARIO.replace(
        'match = { method = "INVITE", user = "bob", headers = { "User-Agent" = "^TestPhone" } }'
        '\ncode = 486\n', "code = 302\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(edited, "<PUT /api/rules/busy>")
    assert error == str(info.value)


async def test_deleting_the_last_rule_leaves_the_default(running: Running) -> None:
    async with running.http.delete(running.url("/api/rules/busy")) as resp:
        assert resp.status == 200 and (await resp.json())["rules"] == 0
    assert await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")]) == [404]
    assert "[[rule]]" not in await scenario_text(running)


# -- scenario -------------------------------------------------------------------------------
async def test_get_and_put_scenario(running: Running) -> None:
    async with running.http.get(running.url("/api/scenario")) as resp:
        assert resp.status == 200
        assert await resp.text() == SCENARIO
    new = '[default]\ncode = 480\nreason = "Gone Fishing"\n'
    async with running.http.put(running.url("/api/scenario"), data=new) as resp:
        assert resp.status == 200
    assert await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")]) == [480]
    async with running.http.get(running.url("/api/scenario")) as resp:
        assert await resp.text() == new


class KeepRecords(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("bad", ["[[rule]\ncode = 200\n", "[[rule]]\ncode = 302\n",
                                 "[default]\ncode = 99\n"])
async def test_put_bad_scenario_is_refused_and_the_old_one_stays(running: Running,
                                                                  bad: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(bad, PUT_SCENARIO_PATH)
    keep = KeepRecords(logging.WARNING)
    records = keep.records
    logger = logging.getLogger("sipresponder")
    logger.addHandler(keep)
    try:
        async with running.http.put(running.url("/api/scenario"), data=bad) as resp:
            assert resp.status == 400
            assert (await resp.json()) == {"error": str(info.value),
                                           "errors": [str(e) for e in info.value.errors],
                                           "line": 1 if "[[rule]\n" in bad else 2 - ("302" in bad),
                                           "column": 7 if "[[rule]\n" in bad else 1}
    finally:
        logger.removeHandler(keep)
    # the operator sees the rejection too, on one line with the error
    [record] = [r for r in records if "rejected" in r.getMessage()]
    assert record.levelno == logging.WARNING
    # One event name for a refused swap, whichever route or role refused it.
    assert getattr(record, "event", None) == "scenario_refused"
    assert str(info.value) in record.getMessage() and "\n" not in record.getMessage()
    assert "\n" not in str(info.value)
    assert await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")]) == [486]
    async with running.http.get(running.url("/api/scenario")) as resp:
        assert await resp.text() == SCENARIO


async def test_put_scenario_swaps_under_load(running: Running) -> None:
    scenarios = {480: "[default]\ncode = 480\n", 603: "[default]\ncode = 603\n"}
    swaps = 20
    swapped = asyncio.Event()
    sent = 0
    codes: list[int] = []

    async def sender() -> None:
        nonlocal sent
        client = await UDPClient.connect(running.udp_port)
        try:
            while not swapped.is_set() or sent < 50:
                sent += 1
                responses = await client.exchange(make_request("OPTIONS", "sip:x@127.0.0.1"))
                assert len(responses) == 1, "a request got no response"
                codes.append(responses[0].code)
        finally:
            client.close()

    async def swapper() -> None:
        try:
            for i in range(swaps):
                code = (480, 603)[i % 2]
                async with running.http.put(running.url("/api/scenario"),
                                            data=scenarios[code]) as resp:
                    assert resp.status == 200
                # let some requests through under each scenario
                target = len(codes) + 3
                await until(lambda t=target: len(codes) >= t, timeout=10)
        finally:
            swapped.set()

    await asyncio.wait_for(asyncio.gather(swapper(), *(sender() for _ in range(4))), 60)
    assert len(codes) == sent
    assert set(codes) <= {404, 486, 480, 603}
    assert {480, 603} <= set(codes)
    counters = running.responder.server.engine.counters  # type: ignore[union-attr]
    assert counters["internal_errors"] == 0
    assert counters["request:OPTIONS"] == sent
    assert sum(v for k, v in counters.items() if k.startswith("response:")) == sent
    assert len(running.responder.journal) == min(sent, running.responder.journal.size)


# -- auth and metrics -----------------------------------------------------------------------
async def test_token_auth(admin_factory: Callable[..., Awaitable[Running]]) -> None:
    r = await admin_factory(token="s3cret")
    assert (await get_json(r, "/healthz"))["status"] == "ok"
    for method, path in [("GET", "/api/requests"), ("GET", "/api/requests/count"),
                         ("POST", "/api/requests/wait"), ("DELETE", "/api/requests"),
                         ("POST", "/api/requests/verify"),
                         ("PUT", "/api/rules/busy"), ("DELETE", "/api/rules/busy"),
                         ("GET", "/api/scenario"), ("PUT", "/api/scenario"),
                         ("POST", "/api/reset"), ("GET", "/api/state"),
                         ("DELETE", "/api/state"), ("GET", "/metrics"),
                         ("GET", "/api/openapi.json")]:
        async with r.http.request(method, r.url(path)) as resp:
            assert resp.status == 401, (method, path)
            assert resp.headers["WWW-Authenticate"] == "Bearer"
        async with r.http.request(method, r.url(path),
                                  headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401, (method, path)
    good = {"Authorization": "Bearer s3cret"}
    assert (await get_json(r, "/api/requests/count", headers=good))["count"] == 0
    async with r.http.get(r.url("/api/scenario"), headers=good) as resp:
        assert resp.status == 200


async def test_metrics(running: Running) -> None:
    await running.sip("INVITE", "bob", [("User-Agent", "TestPhone/1")])
    await running.sip("INVITE", "bob")
    await running.sip("OPTIONS", "carol")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # garbage: dropped
        sock.sendto(b"\x00\x01garbage", ("127.0.0.1", running.udp_port))
    await until(lambda: len(running.responder.journal) == 4)
    async with running.http.get(running.url("/metrics")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("sipresponder_requests_total", (("method", "INVITE"),))] == 2
    assert samples[("sipresponder_requests_total", (("method", "OPTIONS"),))] == 1
    assert samples[("sipresponder_responses_total", (("code", "486"),))] == 1
    assert samples[("sipresponder_responses_total", (("code", "404"),))] == 2
    assert samples[("sipresponder_events_total", (("reason", "dropped"),))] == 1
    assert samples[("sipresponder_events_total", (("reason", "dropped:not a request"),))] == 1
    assert samples[("sipresponder_journal_entries", ())] == 4
    # Every message handled (4, the garbage included) is in the processing-time histogram.
    assert samples[("sipresponder_processing_seconds_count", ())] == 4
    assert samples[("sipresponder_processing_seconds_bucket", (("le", "+Inf"),))] == 4
    assert samples[("sipresponder_processing_seconds_sum", ())] > 0


# -- verify ---------------------------------------------------------------------------------
async def test_verify_exit_codes_and_junit(running: Running, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    async def verify(*args: str) -> int:
        return await asyncio.to_thread(main, ["verify", *args])

    await running.sip("INVITE", "486", [("User-Agent", "TestPhone/1")])
    ok_xml, fail_xml, err_xml = tmp_path / "ok.xml", tmp_path / "fail.xml", tmp_path / "err.xml"
    assert await verify("--admin", running.base, "--method", "INVITE", "--uri", "sip:486@*",
                        "--header", "User-Agent:TestPhone*", "--timeout", "2",
                        "--junit", str(ok_xml)) == 0
    assert "OK: 1 request(s)" in capsys.readouterr().out
    suite = ET.parse(ok_xml).getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        "testsuite", "1", "0", "0")
    [case] = suite.findall("testcase")
    assert "method=INVITE" in case.get("name") and list(case) == []

    assert await verify("--admin", running.base, "--method", "BYE", "--timeout", "0.2",
                        "--junit", str(fail_xml)) == 1
    out = capsys.readouterr().out
    assert "expected 1 request(s) matching method='BYE' within 0.2 s, got 0" in out
    assert "INVITE sip:486@127.0.0.1 -> [default], answered [404]" in out
    suite = ET.parse(fail_xml).getroot()
    assert suite.get("failures") == "1"
    [failure] = suite.find("testcase").findall("failure")
    assert "method='BYE'" in failure.get("message")
    assert "INVITE sip:486@127.0.0.1" in failure.text

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    assert await verify("--admin", f"http://127.0.0.1:{dead}", "--method", "INVITE",
                        "--junit", str(err_xml)) == 2
    assert "cannot reach" in capsys.readouterr().err
    assert ET.parse(err_xml).getroot().get("errors") == "1"
    assert await verify("--admin", "127.0.0.1:1", "--method", "INVITE") == 2
    assert await verify("--admin", running.base, "--header", "NoColon") == 2
    assert await verify("--admin", running.base, "--timeout", "-1") == 2  # server says 400


async def test_verify_with_token(admin_factory: Callable[..., Awaitable[Running]]) -> None:
    r = await admin_factory(token="tok")
    await r.sip("OPTIONS", "x")
    args = ["verify", "--admin", r.base, "--method", "OPTIONS", "--timeout", "1"]
    assert await asyncio.to_thread(main, args) == 2  # 401
    assert await asyncio.to_thread(main, [*args, "--token", "tok"]) == 0


async def test_verify_token_from_the_environment(admin_factory: Callable[..., Awaitable[Running]],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    r = await admin_factory(token="tok")
    await r.sip("OPTIONS", "x")
    args = ["verify", "--admin", r.base, "--method", "OPTIONS", "--timeout", "1"]
    monkeypatch.delenv("SIPRESPONDER_ADMIN_TOKEN", raising=False)
    assert await asyncio.to_thread(main, args) == 2
    assert "give --token or set SIPRESPONDER_ADMIN_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("SIPRESPONDER_ADMIN_TOKEN", "tok")  # what `serve` reads too
    assert await asyncio.to_thread(main, args) == 0
    assert await asyncio.to_thread(main, [*args, "--token", "wrong"]) == 2  # the flag wins


async def test_verify_exactly_at_most_none(running: Running, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    async def verify(*args: str) -> int:
        return await asyncio.to_thread(main, ["verify", "--admin", running.base, *args])

    await running.sip("OPTIONS", "a")
    await running.sip("OPTIONS", "b")
    assert await verify("--method", "INVITE", "--none", "--within", "0.2") == 0
    assert "OK: 0 request(s) matching none=True method=INVITE" in capsys.readouterr().out
    assert await verify("--method", "OPTIONS", "--exactly", "2", "--within", "0.2") == 0
    assert await verify("--method", "OPTIONS", "--at-most", "2", "--within", "0.2") == 0
    assert await verify("--uri", "sip:a@*", "--exactly", "1", "--within", "0.2") == 0
    capsys.readouterr()
    junit = tmp_path / "none.xml"
    assert await verify("--method", "OPTIONS", "--none", "--within", "30",
                        "--junit", str(junit)) == 1
    out = capsys.readouterr().out
    assert "FAILED: expected no request(s) matching method='OPTIONS' (window 30 s), got 2" in out
    assert "OPTIONS sip:b@127.0.0.1 -> [default], answered [404]" in out
    assert ET.parse(junit).getroot().get("failures") == "1"
    assert await verify("--method", "OPTIONS", "--at-most", "1", "--within", "30") == 1
    assert await verify("--method", "OPTIONS", "--exactly", "3", "--timeout", "0.2",
                        "--within", "0") == 1
    assert await verify("--method", "OPTIONS", "--since", "1", "--exactly", "1",
                        "--within", "0.2") == 0


def test_verify_options_are_exclusive_and_count_0_points_to_none(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["verify", "--admin", "http://127.0.0.1:1", "--count", "0"])
    assert info.value.code == 2
    assert "--count means at least; for none use --none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["verify", "--admin", "http://127.0.0.1:1", "--none", "--exactly", "1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_verify_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("urllib.request.urlopen", interrupted)
    assert main(["verify", "--admin", "http://127.0.0.1:1", "--method", "INVITE"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "verify: interrupted\n" and "Traceback" not in captured.out


# -- the real command: --admin, SIGHUP ------------------------------------------------------
async def _read_until(stream: asyncio.StreamReader, needle: str, timeout: float = 10) -> str:
    """Read stderr lines until one contains ``needle`` (bounded)."""
    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            assert line, f"process ended before logging {needle!r}"
            if needle in line:
                return line

    return await asyncio.wait_for(scan(), timeout)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP is POSIX")
async def test_serve_admin_and_sighup_reload(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    first, second = "[default]\ncode = 480\n", "[default]\ncode = 603\n"
    scenario.write_text(first)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario),
        "--listen", "udp:127.0.0.1:0", "--admin", "127.0.0.1:0", "--log-level", "warning",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        udp_line = await _read_until(proc.stderr, "listening on udp:")
        udp_port = int(udp_line.rsplit(":", 1)[1])
        admin_line = await _read_until(proc.stderr, "admin API on http://")
        base = admin_line.split("admin API on ", 1)[1].strip()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async def scenario_text() -> str:
                async with http.get(base + "/api/scenario") as resp:
                    assert resp.status == 200
                    return await resp.text()

            async def code() -> int:
                [resp] = await udp_exchange(udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
                return resp.code

            assert await scenario_text() == first
            assert await code() == 480

            scenario.write_text(second)
            proc.send_signal(signal.SIGHUP)
            await _read_until(proc.stderr, "SIGHUP: reloaded scenario")
            deadline = time.monotonic() + 10
            while await scenario_text() != second:
                assert time.monotonic() < deadline, "GET /api/scenario never showed the reload"
            assert await code() == 603

            scenario.write_text("[default]\ncode = 99\n")
            proc.send_signal(signal.SIGHUP)
            line = await _read_until(proc.stderr, "SIGHUP:")
            assert f"{scenario}: [default]: field 'code'" in line
            assert "the running scenario stays" in line
            assert await scenario_text() == second
            assert await code() == 603
            async with http.get(base + "/api/requests/count") as resp:
                assert (await resp.json())["count"] == 3
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


def test_serve_rejects_bad_admin_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--listen", "udp:127.0.0.1:0", "--admin", "127.0.0.1:99999"]) == 2
    assert "invalid port" in capsys.readouterr().err
    assert main(["serve", "--listen", "udp:127.0.0.1:0", "--admin-token", "t"]) == 2
    assert "--admin-token needs --admin" in capsys.readouterr().err


async def test_serve_watch_reloads_on_file_change(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("[default]\ncode = 480\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario), "--watch",
        "--listen", "udp:127.0.0.1:0", "--log-level", "warning",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        udp_line = await _read_until(proc.stderr, "listening on udp:")
        udp_port = int(udp_line.rsplit(":", 1)[1])
        [resp] = await udp_exchange(udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
        assert resp.code == 480
        scenario.write_text("[default]\ncode = 603\nreason = \"Changed\"\n")
        await _read_until(proc.stderr, "file changed: reloaded scenario")
        [resp] = await udp_exchange(udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
        assert (resp.code, resp.reason) == (603, "Changed")
        scenario.write_text("[default]\ncode = 99\n")
        line = await _read_until(proc.stderr, "file changed:")
        assert "the running scenario stays" in line
        [resp] = await udp_exchange(udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
        assert resp.code == 603
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_serve_watch_follows_body_files_and_warns_when_the_file_is_gone(
        tmp_path: Path) -> None:
    """Issue 12: --watch ignored a changed body_file and said nothing when the scenario
    file was deleted."""
    scenario, body = tmp_path / "s.toml", tmp_path / "body.txt"
    body.write_text("first\r\n")
    scenario.write_text('[default]\ncode = 200\ncontent_type = "text/plain"\n'
                        'body_file = "body.txt"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario), "--watch",
        "--listen", "udp:127.0.0.1:0",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None

    async def answer() -> bytes:
        [resp] = await udp_exchange(udp_port, make_request("MESSAGE", "sip:a@127.0.0.1"))
        assert resp.code == 200
        return resp.body

    try:
        udp_line = await _read_until(proc.stderr, "listening on udp:")
        udp_port = int(udp_line.rsplit(":", 1)[1])
        assert await answer() == b"first\r\n"
        body.write_text("the second body\r\n")
        await _read_until(proc.stderr, "file changed: reloaded scenario")
        assert await answer() == b"the second body\r\n"
        scenario.unlink()
        line = await _read_until(proc.stderr, "is gone")
        assert "WARNING" in line and str(scenario) in line
        assert "still serving the last good scenario" in line
        assert await answer() == b"the second body\r\n"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


# -- rule order, warnings, every error (issue 18) -----------------------------------------
CATCH_ALL = """
[[rule]]
name = "busy"
match = { user = "bob" }
code = 486

# everything else
[[rule]]
name = "catch-all"
code = 200
"""


async def put_rule(running: Running, name: str, body: str, query: str = ""
                   ) -> tuple[int, dict]:
    async with running.http.put(running.url(f"/api/rules/{name}{query}"), data=body,
                                headers={"Content-Type": "application/toml"}) as resp:
        return resp.status, await resp.json()


async def test_put_rule_after_a_catch_all_warns_that_it_can_never_match(
        admin_factory: Callable[..., Awaitable[Running]]) -> None:
    running = await admin_factory(CATCH_ALL)
    status, body = await put_rule(running, "carol", 'match = { user = "carol" }\ncode = 480')
    assert (status, body) == (200, {
        "status": "added", "rule": "carol", "number": 3, "rules": 3,
        "warnings": ["rule 'carol' (#3) can never match: rule 'catch-all' (#2) matches "
                     "everything it would"]})
    assert await running.sip("OPTIONS", "carol") == [200]  # what the warning says


@pytest.mark.parametrize(("query", "number"), [
    ("?position=first", 1), ("?position=before:catch-all", 2), ("?position=after:busy", 2),
])
async def test_put_rule_with_a_position_fires(admin_factory: Callable[..., Awaitable[Running]],
                                              query: str, number: int) -> None:
    running = await admin_factory(CATCH_ALL)
    status, body = await put_rule(running, "carol", 'match = { user = "carol" }\ncode = 480',
                                  query)
    assert (status, body) == (200, {"status": "added", "rule": "carol", "number": number,
                                    "rules": 3, "warnings": []})
    assert await running.sip("OPTIONS", "carol") == [480]
    assert await running.sip("INVITE", "bob") == [486]
    text = await scenario_text(running)
    assert "# everything else\n[[rule]]\nname = \"catch-all\"" in text  # its comment stays


async def test_put_rule_moves_an_existing_rule_only_when_told(
        admin_factory: Callable[..., Awaitable[Running]]) -> None:
    running = await admin_factory(CATCH_ALL)
    status, body = await put_rule(running, "catch-all", "code = 202")
    assert (status, body["status"], body["number"]) == (200, "replaced", 2)
    assert await running.sip("OPTIONS", "bob") == [486]
    status, body = await put_rule(running, "catch-all", "code = 202", "?position=first")
    assert (status, body["status"], body["number"]) == (200, "replaced", 1)
    # now the catch-all takes bob's requests too, and says so
    assert body["warnings"] == ["rule 'busy' (#2) can never match: rule 'catch-all' (#1) "
                                "matches everything it would"]
    assert await running.sip("OPTIONS", "bob") == [202]


@pytest.mark.parametrize(("query", "error"), [
    ("?position=top", "position 'top': expected first, last, before:NAME or after:NAME"),
    ("?position=after:nobody", "position 'after:nobody': no rule named 'nobody' (rules: busy, "
                               "catch-all)"),
    ("?place=first", "unknown query parameter 'place'; valid: position"),
])
async def test_put_rule_with_a_bad_position_is_a_400_naming_it(
        admin_factory: Callable[..., Awaitable[Running]], query: str, error: str) -> None:
    running = await admin_factory(CATCH_ALL)
    assert await put_rule(running, "carol", "code = 480", query) == (400, {"error": error})
    assert await scenario_text(running) == CATCH_ALL


async def test_put_rule_errors_come_all_at_once_with_a_position(running: Running) -> None:
    status, body = await put_rule(running, "carol",
                                  'cdoe = 480\nmatch = { method = "INVITE", usr = "carol" }')
    assert status == 400
    assert body["errors"] == [
        "<PUT /api/rules/carol>: rule 'carol' (#2): field 'cdoe': unknown key (did you mean "
        "'code'?)",
        "<PUT /api/rules/carol>: rule 'carol' (#2): field 'match.usr': unknown condition (did "
        "you mean 'user'?)"]
    assert body["error"] == body["errors"][0]
    # where in the scenario as it would have been: carol's table from line 7, cdoe on 9
    assert (body["line"], body["column"]) == (9, 1)


async def test_put_scenario_answers_warnings_and_every_error(running: Running) -> None:
    async with running.http.put(running.url("/api/scenario"), data=CATCH_ALL +
                                '\n[[rule]]\nname = "dead"\nmatch = { method = "BYE" }\n'
                                'code = 200\n') as resp:
        assert resp.status == 200
        assert (await resp.json())["warnings"] == [
            "rule 'dead' (#3) can never match: rule 'catch-all' (#2) matches everything it "
            "would"]
    async with running.http.put(running.url("/api/scenario"),
                                data='[[rule]]\ncdoe = 1\n[[rule]]\nreasn = "x"\n') as resp:
        assert resp.status == 400
        assert [e.split(": field ")[1] for e in (await resp.json())["errors"]] == [
            "'cdoe': unknown key (did you mean 'code'?)",
            "'reasn': unknown key (did you mean 'reason'?)"]


README_BLOCK = "Add one rule in front of the others, then take it away again"


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None,
                    reason="the docs example runs curl under bash")
async def test_the_readme_rule_example_runs_as_written(
        admin_factory: Callable[..., Awaitable[Running]]) -> None:
    """The admin API page's commands (docs/admin-api.md) against the default scenario,
    with this test's ports."""
    default = (ROOT / "scenarios" / "default.toml").read_text()
    running = await admin_factory(default)
    readme = (ROOT / "docs" / "admin-api.md").read_text()
    block = readme[readme.index(README_BLOCK):].split("```sh\n", 1)[1].split("```", 1)[0]
    put, answer, ping, delete = block.replace("\\\n", "").splitlines()
    assert answer.startswith("# {")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(command: str) -> subprocess.CompletedProcess[str]:
        command = (command.replace("127.0.0.1:8080", running.base.removeprefix("http://"))
                   .replace("127.0.0.1:5060", f"127.0.0.1:{running.udp_port}")
                   .replace("sipresponder ", f"{sys.executable} -m sipresponder ", 1))
        return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=30, env=env)

    assert await running.sip("OPTIONS", "carol") == [200]  # the default scenario's answer
    put_result = await asyncio.to_thread(run, put)
    assert json.loads(put_result.stdout) == json.loads(answer.removeprefix("# "))
    assert (await asyncio.to_thread(run, ping)).returncode == 0  # --expect 480
    assert await running.sip("INVITE", "carol") == [480]  # INVITE too, not only OPTIONS
    assert (await asyncio.to_thread(run, delete)).returncode == 0
    assert await running.sip("OPTIONS", "carol") == [200]
