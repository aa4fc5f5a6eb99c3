"""Sequences and named states over UDP: 503-then-200 per Call-ID, cycle,
fall-through, 401 until registered, and their reset through the Python API, the
admin API and a scenario swap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder, SyncResponder
from tests.sipclient import UDPClient, make_request, udp_exchange

SCENARIO = """
[[rule]]
name = "flaky"
match.user = "flaky"
scope = "call-id"
[[rule.sequence]]
code = 503
retry_after = 5
[[rule.sequence]]
code = 200

[[rule]]
name = "cycle"
match.user = "cycle"
sequence = [486, 200]
after = "cycle"

[[rule]]
name = "twice"
match.user = "twice"
sequence = [500, 500]
after = "fall-through"

[[rule]]
match.user = "twice"
code = 200

[[rule]]
name = "register"
match.method = "REGISTER"
scope = "source"
code = 200
new_state = "registered"

[[rule]]
name = "until-registered"
match.method = "MESSAGE"
scope = "source"
when_state = "start"
code = 401
www_authenticate = 'Digest realm="lab", nonce="1"'

[[rule]]
match.method = "MESSAGE"
scope = "source"
when_state = "registered"
code = 200
"""


async def codes(port: int, user: str, n: int = 1, method: str = "OPTIONS",
                call_id: str | None = None) -> list[int]:
    out = []
    for _ in range(n):
        uri = f"sip:{user}@127.0.0.1" if user else "sip:127.0.0.1"
        [response] = await udp_exchange(port, make_request(method, uri, call_id=call_id))
        out.append(response.code)
    return out


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    r = await Responder(parse_scenario(SCENARIO, "<test>")).start()
    yield r
    await r.stop()


async def test_503_with_retry_after_then_200_per_call_id(responder: Responder) -> None:
    port = responder.address("udp")[1]
    client = await UDPClient.connect(port)
    try:
        [first] = await client.exchange(make_request("OPTIONS", "sip:flaky@h", call_id="a@t"))
        assert (first.code, first.get("Retry-After")) == (503, "5")
    finally:
        client.close()
    assert await codes(port, "flaky", call_id="a@t") == [200]
    assert await codes(port, "flaky", 2, call_id="b@t") == [503, 200]


async def test_cycle_and_fall_through(responder: Responder) -> None:
    port = responder.address("udp")[1]
    assert await codes(port, "cycle", 3) == [486, 200, 486]
    assert await codes(port, "twice", 3) == [500, 500, 200]


async def test_401_until_registered_then_200(responder: Responder) -> None:
    port = responder.address("udp")[1]
    assert await codes(port, "bob", method="MESSAGE") == [401]
    assert await codes(port, "", method="REGISTER") == [200]
    assert await codes(port, "bob", 2, method="MESSAGE") == [200, 200]
    assert responder.states()["states"] == [
        {"scope": "source", "key": "127.0.0.1", "state": "registered"}]


async def test_reset_states_and_reset_and_a_swap_start_over(responder: Responder) -> None:
    port = responder.address("udp")[1]
    assert await codes(port, "cycle") == [486]
    responder.reset_states()
    assert responder.states() == {"states": [], "counters": []}
    assert await codes(port, "cycle") == [486]
    responder.reset()
    assert await codes(port, "cycle") == [486]
    responder.set_scenario(parse_scenario(SCENARIO, "<test>"))
    assert await codes(port, "cycle") == [486]


async def test_admin_get_and_delete_state(responder: Responder) -> None:
    admin = Admin(responder, SCENARIO)
    await admin.start("127.0.0.1", 0)
    host, port = admin.address  # type: ignore[misc]
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                         headers={"X-Sipresponder": "1"}) as http:
            sip = responder.address("udp")[1]
            assert await codes(sip, "flaky", call_id="x@t") == [503]
            async with http.get(base + "/api/state") as resp:
                assert resp.status == 200
                body = await resp.json()
            assert body["counters"] == [{"rule": 1, "scope": "call-id", "key": "x@t",
                                         "count": 1}]
            async with http.delete(base + "/api/requests") as resp:  # the journal only
                assert resp.status == 200
            assert await codes(sip, "flaky", call_id="x@t") == [200]
            async with http.delete(base + "/api/state") as resp:
                assert resp.status == 200
            assert await codes(sip, "flaky", call_id="x@t") == [503]
            async with http.post(base + "/api/reset") as resp:
                assert resp.status == 200
            assert await codes(sip, "flaky", call_id="x@t") == [503]
            async with http.get(base + "/api/openapi.json") as resp:
                assert "/api/state" in (await resp.json())["paths"]
    finally:
        await admin.close()


def test_sync_responder_states_and_reset() -> None:
    with SyncResponder(parse_scenario(SCENARIO, "<test>")) as r:
        port = r.address("udp")[1]
        assert asyncio.run(codes(port, "cycle", 2)) == [486, 200]
        assert r.states()["counters"] == [{"rule": 2, "scope": "global", "key": "",
                                           "count": 2}]
        r.reset_states()
        assert asyncio.run(codes(port, "cycle")) == [486]
