"""The test-double API: journal, Responder, SyncResponder and the pytest plugin."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import pytest

from sipresponder.journal.record import FilterError
from sipresponder.scenario.loader import ScenarioError
from sipresponder.testing.api import Responder, SyncResponder, VerifyFailed
from tests.sipclient import UDPClient, make_request, parse_response, udp_exchange

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


# -- filters: one glob, strict shapes ------------------------------------------------------
async def test_uri_filter_matches_an_ipv6_reference_literally() -> None:
    async with Responder(SCENARIO) as r:
        port = r.address("udp")[1]
        uri = "sip:alice@[::1]:42005"
        await udp_exchange(port, make_request("OPTIONS", uri))
        [entry] = await r.wait_for("OPTIONS", uri, timeout=2)  # fnmatch never matched this
        assert entry.uri == uri
        assert r.requests(uri="sip:alice@[::1]*") == [entry]
        assert r.requests(uri="sip:alice@[:]:42005") == []  # no character classes


async def test_python_api_refuses_bad_filters() -> None:
    async with Responder(SCENARIO) as r:
        with pytest.raises(FilterError, match="headers: expected"):
            r.requests(headers="User-Agent:x")
        with pytest.raises(FilterError, match="Name:glob"):
            await r.wait_for(headers=["User-Agent"], timeout=0)
        with pytest.raises(TypeError):
            r.requests(metod="INVITE")
        with pytest.raises(FilterError, match="none=True"):
            await r.wait_for("INVITE", count=0, timeout=0)


async def test_entries_have_a_wall_clock_arrival_time() -> None:
    async with Responder(SCENARIO) as r:
        before = datetime.now(UTC)
        await udp_exchange(r.address("udp")[1], make_request("OPTIONS", "sip:a@127.0.0.1"))
        [entry] = await r.wait_for("OPTIONS", timeout=2)
        assert before <= entry.received_at <= datetime.now(UTC)
        assert entry.received_at_text.endswith("Z") and "T" in entry.received_at_text


# -- verify: exactly, at most, none --------------------------------------------------------
async def _send(r: Responder, *users: str) -> None:
    for user in users:
        await udp_exchange(r.address("udp")[1], make_request("OPTIONS", f"sip:{user}@127.0.0.1"))


async def test_verify_none_and_at_most_hold_over_the_window() -> None:
    async with Responder(SCENARIO) as r:
        await _send(r, "carol")
        assert await r.verify("INVITE", none=True, within=0.2) == []
        [entry] = await r.verify("OPTIONS", at_most=1, within=0.2)
        assert entry.uri == "sip:carol@127.0.0.1"
        assert len(await r.verify(at_most=3, within=0)) == 1


async def test_verify_none_fails_as_soon_as_one_arrives() -> None:
    async with Responder(SCENARIO) as r:
        # A long window: the failure must come from the arrival, not from its end.
        task = asyncio.create_task(r.verify("OPTIONS", uri="sip:dave@*", none=True, within=30))
        await _send(r, "dave")
        with pytest.raises(VerifyFailed) as info:
            await asyncio.wait_for(task, 10)
        failure = info.value
        assert isinstance(failure, AssertionError) and failure.too_many
        assert [e.uri for e in failure.entries] == ["sip:dave@127.0.0.1"]
        assert failure.summary == ("expected no request(s) matching method='OPTIONS', "
                                   "uri='sip:dave@*' (window 30 s), got 1")
        assert "OPTIONS sip:dave@127.0.0.1 -> [default], answered [404]" in str(failure)


async def test_verify_at_most_counts_what_is_already_journaled() -> None:
    async with Responder(SCENARIO) as r:
        await _send(r, "a", "b")
        with pytest.raises(VerifyFailed) as info:
            await asyncio.wait_for(r.verify("OPTIONS", at_most=1, within=30), 10)
        assert len(info.value.entries) == 2
        assert "expected at most 1 request(s)" in info.value.summary
        assert await r.verify("OPTIONS", since=1, at_most=1, within=0) != []


async def test_verify_exactly_waits_for_n_then_settles() -> None:
    async with Responder(SCENARIO) as r:
        task = asyncio.create_task(r.verify("OPTIONS", exactly=2, within=0.3, timeout=10))
        await _send(r, "a", "b")
        found = await asyncio.wait_for(task, 15)
        assert [e.uri for e in found] == ["sip:a@127.0.0.1", "sip:b@127.0.0.1"]

        # one more arrives during the settle window: too many, at once
        task = asyncio.create_task(r.verify("OPTIONS", exactly=2, within=30, timeout=10))
        await _send(r, "c")
        with pytest.raises(VerifyFailed) as info:
            await asyncio.wait_for(task, 10)
        assert info.value.too_many and len(info.value.entries) == 3
        assert "expected exactly 2 request(s) matching method='OPTIONS'" in info.value.summary

        # too few before the timeout
        with pytest.raises(VerifyFailed) as info:
            await r.verify("INVITE", exactly=1, within=0, timeout=0.2)
        assert not info.value.too_many and info.value.entries == []
        assert info.value.summary == ("expected exactly 1 request(s) matching "
                                      "method='INVITE' within 0.2 s, got 0")
        assert await r.verify("INVITE", exactly=0, within=0.1) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "give exactly one of"),
    ({"exactly": 1, "none": True}, r"got exactly, none"),
    ({"exactly": 1, "at_most": 1}, "got exactly, at_most"),
    ({"exactly": -1}, "exactly: expected an integer >= 0"),
    ({"at_most": 1.5}, "at_most: expected an integer"),
    ({"none": True, "within": -1}, "within: expected a number of seconds"),
])
async def test_verify_refuses_unclear_expectations(kwargs: dict, message: str) -> None:
    async with Responder(SCENARIO) as r:
        with pytest.raises(ValueError, match=message):
            await r.verify("INVITE", **kwargs)


def test_sync_verify_through_the_fixture(sip_responder) -> None:
    port = sip_responder.address("udp")[1]
    _udp_exchange_sync(port, make_request("OPTIONS", "sip:bob@127.0.0.1"))
    [entry] = sip_responder.verify("OPTIONS", exactly=1, within=0.2)
    assert entry.uri == "sip:bob@127.0.0.1"
    assert sip_responder.verify("INVITE", none=True, within=0.2) == []
    with pytest.raises(VerifyFailed, match=r"the journal holds:\n  #1 udp:127\.0\.0\.1"):
        sip_responder.verify("OPTIONS", none=True, within=5)
