"""How an asyncio SIP client's tests use the plugin's async fixture (pytest-asyncio).

The client runs on the test's event loop, so the test must wait with ``await``: the
sync fixture's blocking ``wait_for`` would stall the client it is waiting for.
"""

from __future__ import annotations

import asyncio

import pytest
from tiny_client import acall


@pytest.mark.asyncio  # pytest-asyncio's strict mode needs it; auto mode does not
async def test_busy_callee(sip_responder_async) -> None:
    host, port = sip_responder_async.address("udp")
    call = asyncio.create_task(acall(f"sip:486@{host}:{port}", host, port))
    [invite] = await sip_responder_async.wait_for("INVITE", "sip:486@*")
    assert invite.header("User-Agent") == "TinyClient/1.0"
    assert await call == 486
    await sip_responder_async.wait_for("ACK", "sip:486@*")
    await sip_responder_async.verify("INVITE", exactly=1, within=0.2)


@pytest.mark.asyncio
@pytest.mark.sip_scenario("media.toml")  # the file next to this one
async def test_a_scenario_beside_the_test(sip_responder_async) -> None:
    host, port = sip_responder_async.address("udp")
    assert sip_responder_async.address("tcp") == (host, port)  # one port for both
    assert await acall(f"sip:bob@{host}:{port}", host, port) == 404  # its [default]
