"""The admin API over requests the responder sent: ``direction`` in every entry, the
direction and code filters (GET, wait, verify), the ordered verification (POST
/api/requests/verify with steps).
The sent requests are fabricated Exchanges recorded as the far end records them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.ops.cli import main
from sipresponder.ops.openapi import OPENAPI
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from sipresponder.uac.exchange import Exchange
from tests.sipclient import make_request, udp_exchange

SCENARIO = """
[[rule]]
name = "answer"
match = { method = "INVITE" }
code = 200
[default]
code = 200
"""


class Running:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession) -> None:
        self.responder, self.http = responder, http
        host, port = admin.address  # type: ignore[misc]
        self.base = f"http://{host}:{port}"

    async def get(self, path: str, status: int = 200) -> Any:
        async with self.http.get(self.base + path) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()

    async def post(self, path: str, body: object, status: int = 200) -> Any:
        async with self.http.post(self.base + path, json=body) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    responder = await Responder(parse_scenario(SCENARIO, "<test>")).start()
    admin = Admin(responder, SCENARIO)
    await admin.start("127.0.0.1", 0)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                 headers={"X-Sipresponder": "1"})
    try:
        yield Running(responder, admin, http)
    finally:
        await http.close()
        await admin.close()
        await responder.stop()


def sent_bye(r: Running, call_id: str, code: int) -> None:
    local = r.responder.address("udp")
    data = make_request("BYE", "sip:alice@127.0.0.1:40000", call_id=call_id, cseq=2,
                        via_host=f"{local[0]}:{local[1]}", to_tag="t", from_tag="f")
    exchange = Exchange(data, "BYE", "udp", ("127.0.0.1", 40000), local, call_id,
                        "rule 'answer' (#1), step 1")
    r.responder.journal.record_sent(exchange)
    exchange.received((f"SIP/2.0 {code} X\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\n"
                       "Content-Length: 0\r\n\r\n").encode())


async def a_call(r: Running, call_id: str, code: int) -> None:
    port = r.responder.address("udp")[1]
    await udp_exchange(port, make_request("INVITE", "sip:a@127.0.0.1", call_id=call_id))
    sent_bye(r, call_id, code)


async def test_direction_and_code_filters_and_the_entry_field(running: Running) -> None:
    await a_call(running, "c1", 200)
    everything = await running.get("/api/requests")
    assert [(e["method"], e["direction"], e["kind"]) for e in everything["entries"]] == [
        ("INVITE", "received", "answered"), ("BYE", "sent", "sent")]
    sent = await running.get("/api/requests?direction=sent&code=200")
    assert [e["method"] for e in sent["entries"]] == ["BYE"]
    assert (await running.get("/api/requests/count?direction=received"))["count"] == 1
    assert (await running.get("/api/requests/count?code=481"))["count"] == 0
    bad = await running.get("/api/requests?direction=up", status=400)
    assert bad["error"] == "direction: expected 'received' or 'sent', got 'up'"
    bad = await running.get("/api/requests?code=2xx", status=400)
    assert bad["error"] == "code='2xx': expected a status code 100-699"
    found = await running.post("/api/requests/verify", {
        "method": "BYE", "direction": "sent", "code": 200, "exactly": 1, "within": 0})
    assert found["count"] == 1
    waited = await running.post("/api/requests/wait", {"direction": "sent", "timeout": 1})
    assert waited["entries"][0]["call_id"] == "c1"


async def test_verify_sequence(running: Running) -> None:
    await a_call(running, "c1", 481)
    await a_call(running, "c2", 200)
    steps = [{"method": "INVITE"}, {"method": "BYE", "direction": "sent", "code": 200}]
    found = await running.post("/api/requests/verify", {"steps": steps})
    assert [(e["method"], e["call_id"]) for e in found["entries"]] == [
        ("INVITE", "c2"), ("BYE", "c2")]
    failed = await running.post("/api/requests/verify",
                                {"steps": steps, "call_id": "c1", "timeout": 0}, status=408)
    assert failed["error"].endswith(
        "call 'c1' got to step 1 (#1 INVITE sip:a@127.0.0.1), then step 2 (method='BYE', "
        "direction='sent', code=200) was not found after #1; closest: #2 sent BYE "
        "sip:alice@127.0.0.1:40000 had codes [481], not 200")
    assert failed["listing"].splitlines()[0] == "call 'c1' (--> received, <-- sent):"
    assert "#2 <-- BYE" in failed["listing"]
    assert [e["method"] for e in failed["entries"]] == ["INVITE"]
    for body, error in [({"steps": []}, "steps: expected a non-empty list"),
                        ({"steps": [{"method": "BYE", "drection": "sent"}]},
                         "step 1: unknown filter 'drection' (did you mean 'direction'?)"),
                        ({"steps": steps, "call_id": 5}, "call_id: expected a string"),
                        ({"steps": steps, "calls": 1}, "unknown key 'calls'"),
                        ({"steps": steps, "exactly": 1},
                         "exactly: not with steps (the filters go in each step; with steps "
                         "give only steps, call_id, timeout)"),
                        ({"method": "BYE", "exactly": 1, "call_id": "c1"},
                         "call_id goes with steps")]:
        answer = await running.post("/api/requests/verify", body, status=400)
        assert answer["error"].startswith(error), answer


def test_the_openapi_document_names_the_new_filters_and_body() -> None:
    names = [p["name"] for p in OPENAPI["paths"]["/api/requests"]["get"]["parameters"]]
    assert names[-2:] == ["direction", "code"]
    verify = OPENAPI["paths"]["/api/requests/verify"]["post"]
    assert {"$ref": "#/components/schemas/VerifySequence"} in (
        verify["requestBody"]["content"]["application/json"]["schema"]["oneOf"])
    entry = OPENAPI["components"]["schemas"]["Entry"]["properties"]
    assert entry["direction"]["enum"] == ["received", "sent"]


# -- sipresponder verify --------------------------------------------------------------------
async def test_cli_verify_direction_code_and_steps(running: Running,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    async def verify(*args: str) -> int:
        return await asyncio.to_thread(main, ["verify", "--admin", running.base, *args])

    await a_call(running, "c1", 481)
    assert await verify("--method", "BYE", "--direction", "sent", "--code", "481",
                        "--exactly", "1", "--within", "0") == 0
    assert "OK: 1 request(s) matching exactly=1 method=BYE direction=sent code=481" in (
        capsys.readouterr().out)
    assert await verify("--direction", "sent", "--code", "200", "--timeout", "0") == 1
    assert "#2 sent to udp:127.0.0.1:40000 BYE" in capsys.readouterr().out
    assert await verify("--step", "method=INVITE", "--step", "method=BYE,direction=sent",
                        "--call-id", "c1", "--timeout", "1") == 0
    assert "OK: method=INVITE then method=BYE,direction=sent" in capsys.readouterr().out
    assert await verify("--step", "method=INVITE", "--step",
                        "method=BYE,direction=sent,code=200", "--timeout", "0") == 1
    out = capsys.readouterr().out
    assert "then step 2 (method='BYE', direction='sent', code=200) was not found after #1" in out
    assert "call 'c1' (--> received, <-- sent):\n  #1 --> INVITE" in out
    assert await verify("--step", "method") == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert await verify("--step", "method=BYE", "--exactly", "1") == 2
    assert "--step takes the filters in each step, not --exactly" in capsys.readouterr().err
    assert await verify("--call-id", "c1") == 2
    assert await verify("--step", "methd=BYE", "--timeout", "0") == 2  # server says 400
    assert "step 1: unknown filter 'methd'" in capsys.readouterr().err


def test_cli_direction_and_code_are_checked_before_asking() -> None:
    for bad in (["--direction", "up"], ["--code", "2xx"], ["--code", "99"]):
        with pytest.raises(SystemExit):
            main(["verify", "--admin", "http://127.0.0.1:1", *bad])
