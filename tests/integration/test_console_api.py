"""The web console's HTTP API (ops/consoleapi.py) over real HTTP and SIP on loopback:
the live event stream, the ladder, the scenario check, rules with hits, metrics as
JSON, one entry with its rule's TOML, the pcap download, the ?token= rules."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncio_dgram
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.ops.cli import main
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import TCPClient, make_request, udp_exchange

SCENARIO = """\
[[rule]]
name = "busy"
match = { method = "INVITE", user = "486" }
code = 486

[[rule]]
name = "ringing"
match = { method = "INVITE", user = "ring" }
provisional = [180]
code = 200
delay = 0.2

[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200

[default]
code = 404
"""
EVENT_TIMEOUT = 5.0


class Console:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession,
                 token: str | None) -> None:
        self.responder, self.admin, self.http = responder, admin, http
        host, port = admin.address  # type: ignore[misc]
        self.base = f"http://{host}:{port}"
        self.udp_port = responder.address("udp")[1]
        self.tcp_port = responder.address("tcp")[1]
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get(self, path: str, **params: str) -> Any:
        async with self.http.get(self.base + path, params=params, headers=self.headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    async def invite_busy(self) -> str:
        """INVITE -> 486 -> ACK on UDP; the Call-ID."""
        call_id = "busy-call@test"
        invite = make_request("INVITE", "sip:486@127.0.0.1", call_id=call_id,
                              branch="z9hG4bK-busy")
        [response] = await udp_exchange(self.udp_port, invite)
        assert response.code == 486
        ack = make_request("ACK", "sip:486@127.0.0.1", call_id=call_id, branch="z9hG4bK-busy",
                           to_tag=response.get("To").split("tag=")[1])  # type: ignore[union-attr]
        await udp_exchange(self.udp_port, ack, expect=0, timeout=0.1)
        await self.responder.wait_for("ACK", count=1, timeout=EVENT_TIMEOUT)
        return call_id


@pytest.fixture
async def console_factory() -> AsyncIterator[Callable[..., Awaitable[Console]]]:
    started: list[Console] = []

    async def start(token: str | None = None) -> Console:
        responder = await Responder(parse_scenario(SCENARIO, "<test>"),
                                    ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]).start()
        admin = Admin(responder, SCENARIO, token)
        await admin.start("127.0.0.1", 0)
        # X-Sipresponder: what the admin API asks of every POST, PUT and DELETE (CSRF).
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                     headers={"X-Sipresponder": "1"})
        console = Console(responder, admin, http, token)
        started.append(console)
        return console

    yield start
    for console in started:
        await console.http.close()
        await console.admin.close()
        await console.responder.stop()


@pytest.fixture
async def console(console_factory: Callable[..., Awaitable[Console]]) -> Console:
    return await console_factory()


class EventStream:
    """An SSE client: reads events (name, data) off an open /api/events response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self) -> tuple[str, Any]:
        async def read() -> tuple[str, Any]:
            event, data = "message", ""
            while True:
                line = (await self.response.content.readline()).decode()
                assert line, "the event stream ended"
                line = line.rstrip("\r\n")
                if not line:
                    if data:
                        return event, json.loads(data)
                    continue
                if line.startswith(":") or line.startswith("retry:"):
                    continue
                field, _, value = line.partition(": ")
                if field == "event":
                    event = value
                elif field == "data":
                    data += value
        return await asyncio.wait_for(read(), EVENT_TIMEOUT)


async def test_events_replay_the_journal_then_stream_new_entries_updates_and_clears(
        console: Console) -> None:
    await udp_exchange(console.udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
    async with console.http.get(console.base + "/api/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = EventStream(response)
        event, past = await stream.next()
        assert (event, past["method"], past["seq"]) == ("entry", "OPTIONS", 1)
        assert past["kind"] == "answered" and past["rule_number"] == 3

        # A delayed final: the entry comes with its 180, the 200 as an update.
        invite = make_request("INVITE", "sip:ring@127.0.0.1", call_id="ring@test")
        exchange = asyncio.create_task(udp_exchange(console.udp_port, invite, expect=2))
        event, live = await stream.next()
        assert (event, live["method"], live["call_id"]) == ("entry", "INVITE", "ring@test")
        assert live["codes"] == [180]
        event, later = await stream.next()
        assert (event, later["seq"], later["codes"]) == ("update", live["seq"], [180, 200])
        assert len(later["response_times"]) == 2 and later["retransmitted"] == [False] * 2
        assert later["response_times"][1] - later["response_times"][0] >= 0.15
        got = await exchange
        assert [r.code for r in got] == [180, 200]
        # Timer G repeats the 200 over UDP until the ACK, each copy journaled (an update).
        ack = make_request("ACK", "sip:ring@127.0.0.1", call_id="ring@test",
                           to_tag=got[1].get("To").split("tag=")[1])  # type: ignore[union-attr]
        await udp_exchange(console.udp_port, ack, expect=0, timeout=0.1)
        await console.responder.wait_for("ACK", count=1, timeout=EVENT_TIMEOUT)

        async with console.http.delete(console.base + "/api/requests") as cleared:
            assert cleared.status == 200
        event, data = await stream.next()
        while event != "cleared":  # a copy of the 200 sent before the ACK came, or the ACK
            assert event == "entry" or data["retransmitted"][-1] is True, (event, data)
            event, data = await stream.next()
        assert data == {}

        async with console.http.put(console.base + "/api/scenario",
                                    data=SCENARIO.replace("486", "600")) as put:
            assert put.status == 200
        event, swapped = await stream.next()
        assert event == "scenario"
        assert [r["name"] for r in swapped["rules"]] == ["busy", "ringing", "options", ""]


async def test_event_streams_end_when_the_admin_stops(console: Console) -> None:
    response = await console.http.get(console.base + "/api/events")
    await console.admin.close()  # bounded by the session timeout, not aiohttp's 60 s
    assert await asyncio.wait_for(response.content.read(), EVENT_TIMEOUT) == b"retry: 2000\n\n"
    response.close()


async def test_ladder_of_a_busy_call_and_an_options(console: Console) -> None:
    call_id = await console.invite_busy()
    await udp_exchange(console.udp_port,
                       make_request("OPTIONS", "sip:a@127.0.0.1", call_id="opt@test"))
    model = await console.get("/api/ladder")
    # udp_exchange sends each request from a socket of its own: a lane each.
    peers = [f"udp:127.0.0.1:{e.remote[1]}" for e in console.responder.journal]
    assert [lane["id"] for lane in model["lanes"]] == [*peers, "responder"]
    assert [lane["kind"] for lane in model["lanes"]] == ["peer"] * 3 + ["responder"]
    assert model["lanes"][0]["label"] == peers[0][4:] + " (UDP)"
    assert [(c["call_id"], c["summary"]) for c in model["calls"]] == [
        (call_id, "INVITE -> 486; ACK"), ("opt@test", "OPTIONS -> 200")]
    arrows = [(a["label"], a["class"], a["from"] == "responder", a["outcome"])
              for a in model["arrows"]]
    assert arrows == [
        ("INVITE sip:486@127.0.0.1", "request", False, "answered"),
        ("486 Busy Here", "client-error", True, "answered"),
        ("ACK sip:486@127.0.0.1", "absorbed", False, "absorbed"),
        ("OPTIONS sip:a@127.0.0.1", "request", False, "answered"),
        ("200 OK", "success", True, "answered"),
    ]
    times = [a["time"] for a in model["arrows"]]
    assert times == sorted(times) and model["arrows"][0]["delta"] == 0

    only = await console.get("/api/ladder", call_id=call_id)
    assert {a["call_id"] for a in only["arrows"]} == {call_id}
    picked = await console.get("/api/ladder", seq="2,3")
    assert [a["id"] for a in picked["arrows"]] == ["2.0", "3.0", "3.1"]
    async with console.http.get(console.base + "/api/ladder", params={"seq": "x"}) as bad:
        assert bad.status == 400 and "seq='x'" in (await bad.json())["error"]


async def test_one_entry_names_its_rule_table(console: Console) -> None:
    await console.invite_busy()
    entry = await console.get("/api/requests/1")
    assert entry["rule_line"] == 1
    assert entry["rule_toml"].startswith('[[rule]]\nname = "busy"\n')
    assert "ringing" not in entry["rule_toml"]
    ack = await console.get("/api/requests/2")
    assert (ack["rule_toml"], ack["kind"]) == (None, "absorbed")
    async with console.http.get(console.base + "/api/requests/99") as missing:
        assert missing.status == 404 and "99" in (await missing.json())["error"]


async def test_check_gives_line_and_column_and_applies_nothing(console: Console) -> None:
    url = console.base + "/api/scenario/check"
    broken = SCENARIO.replace('name = "ringing"', 'name = "ringing"\ncode = ')
    async with console.http.post(url, data=broken) as r:
        body = await r.json()
        assert (r.status, body["ok"], body["line"], body["column"]) == (422, False, 8, 8)
        assert "invalid TOML" in body["error"]
    semantic = SCENARIO.replace("code = 486", "code = 999")
    async with console.http.post(url, data=semantic) as r:
        body = await r.json()
        assert (r.status, body["line"], body["column"]) == (422, 4, 1)
        assert "rule 'busy' (#1): field 'code'" in body["error"]
    async with console.http.post(url, data=SCENARIO.replace("486", "487")) as r:
        body = await r.json()
        assert (r.status, body["ok"], len(body["rules"])) == (200, True, 4)
        # the rules alone are counted, as PUT /api/scenario counts them ([default] is not)
        assert (body["count"], body["warnings"]) == (3, [])
    dead = SCENARIO + '\n[[rule]]\nname = "again"\nmatch = { method = "OPTIONS" }\ncode = 500\n'
    async with console.http.post(url, data=dead) as r:
        body = await r.json()
        assert (r.status, body["count"]) == (200, 4)
        assert body["warnings"] == ["rule 'again' (#4) can never match: rule 'options' (#3) "
                                    "matches everything it would"]
    typos = '[[rule]]\ncdoe = 1\nmatch = { method = "INVITE", usr = "bob" }\n'
    async with console.http.post(url, data=typos) as r:
        body = await r.json()
        assert r.status == 422
        assert [(e["line"], e["column"], e["error"].split(": ", 3)[-1]) for e in body["errors"]] \
            == [(2, 1, "unknown key (did you mean 'code'?)"),
                (3, 30, "unknown condition (did you mean 'user'?)")]
    async with console.http.post(url, data=b"\xff") as r:
        assert r.status == 422 and "not UTF-8" in (await r.json())["error"]
    # Nothing was applied: 486 still answers.
    [response] = await udp_exchange(console.udp_port, make_request("INVITE", "sip:486@127.0.0.1"))
    assert response.code == 486


async def test_rules_count_hits_since_the_scenario_was_loaded(console: Console) -> None:
    await console.invite_busy()
    for _ in range(2):
        await udp_exchange(console.udp_port, make_request("OPTIONS", "sip:a@127.0.0.1"))
    await udp_exchange(console.udp_port, make_request("INFO", "sip:nobody@127.0.0.1"))
    rules = await console.get("/api/rules")
    assert [(r["number"], r["name"], r["hits"], r["line"], r["stateful"]) for r in rules] == [
        (1, "busy", 1, 1, False), (2, "ringing", 0, 6, True), (3, "options", 2, 13, False),
        (0, "", 1, 18, False)]
    assert rules[0]["label"] == "rule 'busy' (#1)"
    async with console.http.put(console.base + "/api/scenario", data=SCENARIO) as put:
        assert put.status == 200
    assert [r["hits"] for r in await console.get("/api/rules")] == [0, 0, 0, 0]


async def test_metrics_json(console: Console) -> None:
    await console.invite_busy()
    metrics = await console.get("/api/metrics.json")
    assert metrics["requests"] == {"INVITE": 1, "ACK": 1}
    assert metrics["responses"] == {"486": 1}
    latency = metrics["latency"]
    assert latency["count"] == 2 and latency["buckets"][-1] == [None, 2]
    assert metrics["uptime"] > 0


async def test_pcap_download_holds_every_message(console: Console) -> None:
    await console.invite_busy()
    tcp = await TCPClient.connect(console.tcp_port)
    try:
        await tcp.send(make_request("OPTIONS", "sip:a@127.0.0.1", transport="TCP"))
        assert (await tcp.recv()).code == 200
    finally:
        await tcp.close()
    async with console.http.get(console.base + "/api/requests.pcap") as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/vnd.tcpdump.pcap"
        assert r.headers["Content-Disposition"].startswith("attachment; filename=")
        data = await r.read()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    # INVITE, 486, ACK over UDP; SYN, SYN-ACK, ACK, OPTIONS, 200 over TCP.
    offset, packets = 24, 0
    while offset < len(data):
        captured = struct.unpack_from("<8xI", data, offset)[0]
        offset += 16 + captured
        packets += 1
    assert (offset, packets) == (len(data), 8)
    async with console.http.get(console.base + "/api/requests.pcap",
                                params={"method": "ACK"}) as r:
        assert len(await r.read()) < len(data)


async def test_pcap_cli_downloads_the_file(console_factory: Callable[..., Awaitable[Console]],
                                           tmp_path: Any) -> None:
    console = await console_factory(token="s3cret")
    await console.invite_busy()
    out = tmp_path / "journal.pcap"
    code = await asyncio.to_thread(main, ["pcap", "--admin", console.base, "--token", "s3cret",
                                          "--method", "INVITE", "--output", str(out)])
    assert code == 0
    assert out.read_bytes()[:4] == struct.pack("<I", 0xA1B2C3D4)
    assert len(out.read_bytes()) == 24 + 2 * 16 + sum(
        14 + 20 + 8 + len(x) for x in (console.responder.journal._entries[0].raw,
                                       console.responder.journal._entries[0].responses[0]))
    wrong = await asyncio.to_thread(main, ["pcap", "--admin", console.base, "--token", "nope",
                                           "--output", str(tmp_path / "x.pcap")])
    assert wrong == 2 and not (tmp_path / "x.pcap").exists()


async def test_token_on_the_console_paths(console_factory: Callable[..., Awaitable[Console]]
                                          ) -> None:
    console = await console_factory(token="s3cret")
    http, base = console.http, console.base
    async with http.get(base + "/api/events") as r:
        assert r.status == 401
    async with http.get(base + "/api/events", params={"token": "wrong"}) as r:
        assert r.status == 401
    async with http.get(base + "/api/events", params={"token": "s3cret"}) as r:
        assert r.status == 200
    for path in ("/", "/console/app.js"):
        async with http.get(base + path) as r:
            assert r.status == 401, path
        async with http.get(base + path, params={"token": "s3cret"}) as r:
            assert r.status in (200, 404), path  # 404: the asset is not there
    # Only the page, its assets and the stream take ?token=: the API wants the header.
    async with http.get(base + "/api/ladder", params={"token": "s3cret"}) as r:
        assert r.status == 401
    async with http.get(base + "/api/ladder", headers=console.headers) as r:
        assert r.status == 200


async def test_static_files_stay_inside_the_package(console: Console) -> None:
    async with console.http.get(console.base + "/console/..%2f..%2fadmin.py") as r:
        assert r.status == 404
    async with console.http.get(console.base + "/console/no-such-file.js") as r:
        assert r.status == 404
        assert "no such console asset" in (await r.json())["error"]


async def test_an_event_that_cannot_be_encoded_costs_the_event_not_the_message(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    def broken(entry: Any) -> dict[str, Any]:
        raise RuntimeError("bug")

    # The console the admin app made: the owner of the journal listener it added.
    [web_console] = [getattr(f, "__self__", None) for f in console.responder.journal.listeners
                     if getattr(f, "__name__", "") == "_entry_added"]
    async with console.http.get(console.base + "/api/events") as response:
        stream = EventStream(response)
        good = web_console.entry_json
        web_console.entry_json = broken
        [answer] = await udp_exchange(console.udp_port, make_request("OPTIONS", "sip:a@1.2.3.4"))
        assert answer.code == 200
        assert "cannot encode the entry event" in caplog.text
        web_console.entry_json = good
        await udp_exchange(console.udp_port, make_request("OPTIONS", "sip:b@1.2.3.4"))
        event, entry = await stream.next()
        assert (event, entry["seq"], entry["uri"]) == ("entry", 2, "sip:b@1.2.3.4")


def test_pcap_cli_says_why_it_cannot(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.pcap"
    assert main(["pcap", "--admin", "ftp://127.0.0.1:1", "--output", str(out)]) == 2
    assert "expected http://HOST:PORT" in capsys.readouterr().err
    with socket.socket() as unused:  # bound, never listening: the connection is refused
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        assert main(["pcap", "--admin", f"http://127.0.0.1:{port}", "--output", str(out)]) == 2
    assert "cannot reach" in capsys.readouterr().err and not out.exists()


async def test_a_client_that_falls_too_far_behind_gets_its_stream_ended(
        console: Console, monkeypatch: pytest.MonkeyPatch) -> None:
    async with console.http.get(console.base + "/api/events") as response:
        assert await response.content.readline() == b"retry: 2000\n"
        [web_console] = [getattr(f, "__self__", None)
                         for f in console.responder.journal.listeners
                         if getattr(f, "__name__", "") == "_entry_added"]
        monkeypatch.setattr(web_console.hub, "max_events", 2)
        # Three events at once, with no chance for the stream to take them: one too many.
        for _ in range(3):
            web_console.hub.publish("cleared", dict)
        assert not web_console.hub.live
        rest = await asyncio.wait_for(response.content.read(), EVENT_TIMEOUT)
        # The stream ended without the events it could not keep, saying why.
        assert rest.startswith(b"\nevent: overflow\ndata: ") and b"fell 2 events" in rest
        assert b"event: cleared" not in rest


async def test_closing_the_admin_takes_the_console_off_the_responder(console: Console) -> None:
    journal = console.responder.journal
    assert len(journal.listeners) == 2  # the Responder's own waiter and the console's
    assert len(console.admin.host.scenario_listeners) == 1  # the console hears of swaps
    await console.admin.close()
    assert len(journal.listeners) == 1
    # Left: the Responder's own waiter, which a later response wakes too.
    assert len(journal.update_listeners) == 1 and journal.clear_listeners == []
    assert console.admin.host.scenario_listeners == []


async def test_ladder_marks_not_answered_fault_and_rejected(console: Console) -> None:
    scenario = ('[[rule]]\nmatch = { user = "silent" }\naction = "none"\n\n'
                '[[rule]]\nmatch = { user = "broken" }\ncode = 200\nfault = "truncated"\n')
    async with console.http.put(console.base + "/api/scenario", data=scenario) as put:
        assert put.status == 200
    stream = await asyncio_dgram.connect(("127.0.0.1", console.udp_port))
    try:
        await stream.send(make_request("OPTIONS", "sip:silent@127.0.0.1", call_id="silent"))
        await stream.send(make_request("OPTIONS", "sip:broken@127.0.0.1", call_id="broken"))
        truncated, _ = await asyncio.wait_for(stream.recv(), EVENT_TIMEOUT)
        assert truncated.startswith(b"SIP/2.0 200 OK")
        await stream.send(make_request("FOO", "sip:x@127.0.0.1", call_id="foo"))
        rejected, _ = await asyncio.wait_for(stream.recv(), EVENT_TIMEOUT)
        assert rejected.startswith(b"SIP/2.0 501 ")
    finally:
        stream.close()
    model = await console.get("/api/ladder")
    assert [(a["call_id"], a["class"], a["outcome"]) for a in model["arrows"]] == [
        ("silent", "request", "not-answered"),
        ("broken", "request", "fault"), ("broken", "success", "fault"),
        ("foo", "request", "rejected"), ("foo", "rejected", "rejected"),
    ]
