"""The test-double API: journal, Responder, SyncResponder and the pytest plugin."""

from __future__ import annotations

import socket

import pytest

from sipresponder.scenario.loader import ScenarioError
from sipresponder.testing.api import Responder, SyncResponder
from tests.sipclient import UDPClient, make_request, parse_response

SCENARIO = """
[[rule]]
name = "busy"
match = { method = "INVITE", user = "bob", headers = { "User-Agent" = "^TestPhone" } }
code = 486
[[rule]]
name = "ring"
match = { method = "INVITE", user = "ring" }
provisional = [180]
delay = 0.2
code = 200
[default]
code = 404
"""


async def test_journal_records_requests_rules_and_responses() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            req = make_request("INVITE", "sip:bob@127.0.0.1", headers=[("User-Agent", "TestPhone/1")])
            [resp] = await client.exchange(req)
            assert resp.code == 486
            [entry] = await r.wait_for("INVITE", "sip:bob@*")
            assert entry.raw == req
            assert entry.rule == "rule 'busy' (#1)"
            assert entry.header("user-agent") == "TestPhone/1"
            assert entry.codes == [486]
            assert entry.transport == "udp" and entry.remote[0] == "127.0.0.1"
        finally:
            client.close()


async def test_near_miss_names_the_failed_condition() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            req = make_request("INVITE", "sip:bob@127.0.0.1", headers=[("User-Agent", "Other")])
            [resp] = await client.exchange(req)
            assert resp.code == 404
            [entry] = r.requests(method="INVITE")
            assert entry.rule == "[default]"
            assert entry.near_miss.rule == "rule 'busy' (#1)"
            assert entry.near_miss.failed == ["header User-Agent ~ '^TestPhone'"]
        finally:
            client.close()


async def test_stateful_responses_sent_later_are_journaled() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            await client.send(make_request("INVITE", "sip:ring@127.0.0.1"))
            responses = await client.recv_many(2, timeout=3)
            assert [x.code for x in responses] == [180, 200]
            [entry] = r.requests(rule="ring")
            assert entry.codes == [180, 200]
        finally:
            client.close()


async def test_wait_for_times_out_with_the_journal_in_the_message() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            await client.exchange(make_request("OPTIONS", "sip:carol@127.0.0.1"))
        finally:
            client.close()
        with pytest.raises(AssertionError) as info:
            await r.wait_for("INVITE", timeout=0.2)
        message = str(info.value)
        assert "expected 1 request(s) matching method='INVITE' within 0.2 s, got 0" in message
        assert "OPTIONS sip:carol@127.0.0.1 -> [default], answered [404]" in message


async def test_set_scenario_and_reset() -> None:
    async with Responder(SCENARIO) as r:
        with pytest.raises(ScenarioError):
            r.set_scenario("[[rule]]\ncode = 302\n")  # refused: no Contact
        r.set_scenario("[default]\ncode = 603\n")
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            [resp] = await client.exchange(make_request("INVITE", "sip:bob@127.0.0.1"))
            assert resp.code == 603
        finally:
            client.close()
        assert len(r.journal) == 1
        r.reset()
        assert len(r.journal) == 0


def _udp_exchange_sync(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65535)


def test_sync_responder() -> None:
    with SyncResponder() as r:
        assert r.uri("486").startswith("sip:486@127.0.0.1:")
        resp = parse_response(_udp_exchange_sync(r.address()[1],
                                                 make_request("INVITE", "sip:486@127.0.0.1")))
        assert resp.code == 486
        [entry] = r.wait_for("INVITE", "sip:486@*", timeout=2)
        assert entry.rule == "rule 'status-code' (#2)"


def test_plugin_fixture(sip_responder) -> None:
    port = sip_responder.address("udp")[1]
    resp = parse_response(_udp_exchange_sync(port, make_request("OPTIONS", "sip:bob@127.0.0.1")))
    assert resp.code == 200
    assert [e.method for e in sip_responder.requests()] == ["OPTIONS"]


@pytest.mark.sip_scenario("scenarios/redirects.toml")
def test_plugin_marker_picks_a_scenario_file(sip_responder) -> None:
    port = sip_responder.address("udp")[1]
    resp = parse_response(_udp_exchange_sync(port, make_request("INVITE", "sip:temp@127.0.0.1")))
    assert resp.code == 302


def test_plugin_factory(sip_responder_factory) -> None:
    r = sip_responder_factory("[default]\ncode = 480\nreason = \"Gone Fishing\"\n")
    resp = parse_response(_udp_exchange_sync(r.address()[1], make_request("OPTIONS", "sip:x@y")))
    assert (resp.code, resp.reason) == (480, "Gone Fishing")
