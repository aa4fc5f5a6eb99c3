"""The admin API's perimeter (issue 18): no open non-loopback bind, the token from a file
or the environment, CSRF (every state-changing route refuses what a cross-site form or
simple request can send), foreign Origins, DNS rebinding (Host), the console's token
page and 404s, and the WebSocket listeners' Origin allow-list.

Nothing here binds beyond loopback: the non-loopback cases are refused before a socket
is made, or checked on the parsed arguments."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from sipresponder.ops import consoleapi as console_module
from sipresponder.ops.admin import Admin
from sipresponder.ops.cli import main
from sipresponder.ops.cliargs import build_parser
from sipresponder.ops.gatherer import Cluster
from sipresponder.ops.serve import admin_perimeter
from sipresponder.ops.serveconfig import apply_env
from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import make_request, udp_exchange

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = '[[rule]]\nname = "busy"\nmatch = { user = "busy" }\ncode = 486\n'
TIMEOUT = 10.0
READS = ("GET", "HEAD", "OPTIONS")
# What a page of any site can make a browser send without a CORS preflight.
SIMPLE_TYPES = [None, "text/plain", "text/plain; charset=utf-8",
                "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """main(["serve", ...]) configures the "sipresponder" logger; put it back."""
    logger = logging.getLogger("sipresponder")
    requests = logging.getLogger("sipresponder.requests")
    saved = (logger.handlers[:], logger.level, logger.propagate, requests.level)
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[2]
    logger.setLevel(saved[1])
    requests.setLevel(saved[3])


class Running:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession) -> None:
        self.responder = responder
        self.admin = admin
        self.http = http
        assert admin.address is not None
        self.port = admin.address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, **kwargs: object) -> tuple[int, str]:
        async with self.http.request(method, self.base + path, **kwargs) as resp:  # type: ignore[arg-type]
            return resp.status, await resp.text()


@pytest.fixture
async def admin_factory() -> AsyncIterator[object]:
    started: list[Running] = []

    async def start(token: str | None = None, hosts: tuple[str, ...] = ()) -> Running:
        responder = await Responder(parse_scenario(SCENARIO, "<test>")).start()
        admin = Admin(responder, SCENARIO, token)
        admin.hosts = frozenset(hosts)
        await admin.start("127.0.0.1", 0)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT))
        running = Running(responder, admin, http)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.http.close()
        await running.admin.close()
        await running.responder.stop()


@pytest.fixture
async def running(admin_factory: object) -> Running:
    return await admin_factory()  # type: ignore[operator, no-any-return]


def state_changing_routes(app: aiohttp.web.Application) -> list[tuple[str, str]]:
    """(method, a concrete path) of every route but GET/HEAD: the router's own list, so
    that a route added later is covered without editing this test."""
    out = []
    for route in app.router.routes():
        if route.method in READS:
            continue
        canonical = route.resource.canonical if route.resource is not None else ""
        out.append((route.method, re.sub(r"\{[^}]*\}", "x", canonical)))
    return sorted(set(out))


# -- the bind ---------------------------------------------------------------------------
def serve_args(*argv: str, **environ: str) -> argparse.Namespace:
    args = build_parser().parse_args(["serve", *argv])
    apply_env(args, {f"SIPRESPONDER_{k.upper()}": v for k, v in environ.items()})
    return args


@pytest.mark.parametrize("argv, environ", [
    (["--admin", "0.0.0.0:0"], {}),
    (["--admin", "[::]:0"], {}),
    (["--admin", "192.0.2.10:0"], {}),
    (["--admin", "admin.example:0"], {}),  # a name: whatever it resolves to may change
    (["--admin", "0.0.0.0:0", "--workers", "2"], {}),
    ([], {"SIPRESPONDER_ADMIN": "0.0.0.0:8080"}),  # the container's way
], ids=["ipv4-any", "ipv6-any", "address", "name", "workers", "env"])
def test_a_non_loopback_admin_without_a_token_refuses_to_start(
        argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("SIPRESPONDER_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--listen", "udp:127.0.0.1:0", *argv]) == 2
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert line.startswith("error: --admin ") and "is not a loopback address" in line
    assert "--admin-insecure" in line and "--admin-token-file" in line


@pytest.mark.parametrize("environ", [
    {"admin": "0.0.0.0:8080", "admin_insecure": "1"},
    {"admin": "0.0.0.0:8080", "admin_token": "s3cret"},
    {"admin": "127.0.0.1:8080"},
    {"admin": "localhost:8080"},
    {"admin": "[::1]:8080"},
])
def test_loopback_a_token_or_the_flag_is_accepted(environ: dict[str, str]) -> None:
    args = serve_args(**environ)
    assert admin_perimeter(args, token_in_argv=False) is not None


def test_the_flag_says_the_open_api_out_loud(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sipresponder"):
        admin_perimeter(serve_args("--admin", "0.0.0.0:8080", "--admin-insecure"), False)
    assert "has no token (--admin-insecure)" in caplog.text


def test_a_token_on_the_command_line_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sipresponder"):
        admin_perimeter(serve_args("--admin", "127.0.0.1:0", "--admin-token", "t0k"), True)
    [record] = [r for r in caplog.records if "--admin-token" in r.getMessage()]
    assert "ps, /proc/PID/cmdline" in record.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sipresponder"):  # the environment's
        args = serve_args("--admin", "127.0.0.1:0", admin_token="t0k")
        admin_perimeter(args, False)
    assert args.admin_token == "t0k" and not caplog.records


def test_token_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "token"
    good.write_text("s3cret-token\n")  # the line break echo and editors add
    args = serve_args("--admin", "0.0.0.0:8080", "--admin-token-file", str(good))
    admin_perimeter(args, False)
    assert args.admin_token == "s3cret-token"
    env = serve_args(admin="127.0.0.1:0", admin_token_file=str(good))
    admin_perimeter(env, False)
    assert env.admin_token == "s3cret-token"
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "spaced").write_text("two words\n")
    (tmp_path / "big").write_text("x" * 5000)
    os.mkfifo(tmp_path / "fifo")  # must not hang start-up
    for name, why in [("empty", "the admin token is empty"),
                      ("spaced", "printable ASCII without spaces"),
                      ("big", "larger than 4096 octets"), ("fifo", "not a regular file"),
                      ("missing", "No such file or directory")]:
        bad = serve_args("--admin", "127.0.0.1:0", "--admin-token-file", str(tmp_path / name))
        with pytest.raises(ValueError, match=re.escape(why)):
            admin_perimeter(bad, False)
    both = serve_args("--admin", "127.0.0.1:0", "--admin-token-file", str(good),
                      "--admin-token", "x")
    with pytest.raises(ValueError, match="not both"):
        admin_perimeter(both, True)


def test_admin_flags_need_admin(capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPRESPONDER_ADMIN", raising=False)
    for flag in (["--admin-insecure"], ["--admin-token-file", "x"], ["--admin-host", "a"]):
        assert main(["serve", "--listen", "udp:127.0.0.1:0", *flag]) == 2
        assert f"{flag[0]} needs --admin" in capsys.readouterr().err


async def _read_until(stream: asyncio.StreamReader, marker: str) -> str:
    async def scan() -> str:
        while True:
            line = (await stream.readline()).decode()
            assert line, f"serve exited before {marker!r}"
            if marker in line:
                return line
    return await asyncio.wait_for(scan(), TIMEOUT)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
async def test_serve_takes_its_token_from_a_file_and_checks_host_names(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-a-file\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SIPRESPONDER_ADMIN_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0",
        "--admin", "127.0.0.1:0", "--admin-token-file", str(token), "--log-level", "info",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        line = await _read_until(proc.stderr, "admin API on http://")
        base = line.split("admin API on ", 1)[1].strip()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
            async with http.get(base + "/api/requests/count") as resp:
                assert resp.status == 401
            good = {"Authorization": "Bearer from-a-file"}
            async with http.get(base + "/api/requests/count", headers=good) as resp:
                assert resp.status == 200
            # With a token any Host is accepted: a rebinding page does not have it.
            async with http.get(base + "/api/requests/count",
                                headers={**good, "Host": "rebound.example"}) as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
async def test_serve_admin_host_names_are_accepted_and_others_refused() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SIPRESPONDER_ADMIN_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0",
        "--admin", "127.0.0.1:0", "--admin-host", "Responder.Lab", "--log-level", "info",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=env)
    assert proc.stderr is not None
    try:
        line = await _read_until(proc.stderr, "admin API on http://")
        base = line.split("admin API on ", 1)[1].strip()
        port = base.rsplit(":", 1)[1]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
            for host, status in [(f"responder.lab:{port}", 200), ("responder.lab.", 200),
                                 (f"evil.example:{port}", 421)]:
                async with http.get(base + "/api/requests/count",
                                    headers={"Host": host}) as resp:
                    assert resp.status == status, host
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), TIMEOUT) == 0


# -- CSRF -------------------------------------------------------------------------------
async def test_every_state_changing_route_refuses_a_simple_request(running: Running) -> None:
    routes = state_changing_routes(running.admin.app())
    # The router's list, checked against the routes the issue names.
    for expected in [("POST", "/api/reset"), ("POST", "/api/requests/wait"),
                     ("POST", "/api/requests/verify"), ("POST", "/api/scenario/check"),
                     ("PUT", "/api/scenario"), ("DELETE", "/api/requests")]:
        assert expected in routes
    await udp_exchange(running.responder.address("udp")[1],
                       make_request("OPTIONS", "sip:busy@127.0.0.1"))
    for method, path in routes:
        for content_type in SIMPLE_TYPES:
            headers = {} if content_type is None else {"Content-Type": content_type}
            status, text = await running.call(method, path, data=b"{}", headers=headers)
            assert status == 415, (method, path, content_type, text)
            assert "X-Sipresponder: 1" in text and "application/json" in text
            assert "\n" not in text.strip()
    assert len(running.responder.journal) == 1  # DELETE /api/requests, /api/reset: refused
    assert running.responder.server is not None
    assert [r.name for r in running.responder.server.engine.scenario.rules] == ["busy"]


async def test_our_clients_ways_pass_the_csrf_check(running: Running) -> None:
    for headers in ({"Content-Type": "application/json"},
                    {"Content-Type": "Application/JSON; charset=utf-8"},
                    {"X-Sipresponder": "1", "Content-Type": "text/plain"}):
        status, text = await running.call("POST", "/api/requests/wait", data=b'{"timeout": 0}',
                                          headers=headers)
        assert status == 408, text  # past the perimeter: the wait itself timed out
    status, _ = await running.call("PUT", "/api/scenario", data=SCENARIO,
                                   headers={"Content-Type": "application/toml"})
    assert status == 200


def test_the_cluster_admin_has_the_same_perimeter(tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO, "<test>")
    cluster = Cluster(scenario, SCENARIO, 2, tmp_path, 10)
    gatherer = Admin(cluster)
    middlewares = gatherer.app().middlewares
    assert middlewares[0] == gatherer._perimeter  # before the token check, as in Admin


async def test_verify_cli_passes_the_csrf_check(running: Running) -> None:
    code = await asyncio.to_thread(
        main, ["verify", "--admin", running.base, "--method", "OPTIONS", "--none",
               "--within", "0"])
    assert code == 0


# -- Origin -----------------------------------------------------------------------------
async def test_a_foreign_origin_is_refused(running: Running) -> None:
    json_type = {"Content-Type": "application/json"}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{running.port}.evil",
                   f"http://localhost:{running.port}"):  # another origin than the Host's
        for method, path in [("GET", "/api/requests"), ("POST", "/api/reset")]:
            status, text = await running.call(method, path, headers={**json_type,
                                                                    "Origin": origin})
            assert status == 403, (origin, path)
            assert "not this admin API's own origin" in text
    own = f"http://127.0.0.1:{running.port}"
    status, _ = await running.call("POST", "/api/reset", headers={**json_type, "Origin": own})
    assert status == 200


# -- Host (DNS rebinding) ---------------------------------------------------------------
async def test_host_must_be_an_address_localhost_or_a_listed_name(admin_factory: object) -> None:
    r: Running = await admin_factory(hosts=("sip-lab.internal",))  # type: ignore[operator]
    port = r.port
    for host, status in [(f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200),
                         (f"[::1]:{port}", 200), ("LOCALHOST", 200), ("192.0.2.7:80", 200),
                         (f"sip-lab.internal:{port}", 200),
                         (f"rebound.example:{port}", 421), ("localhost.evil.example", 421),
                         ("127.0.0.1.nip.io", 421), ("[::1", 421), ("a:b:c", 421)]:
        code, text = await r.call("GET", "/api/requests/count", headers={"Host": host})
        assert code == status, (host, text)
        if status == 421:
            assert "DNS rebinding" in text and "--admin-host" in text
    # /healthz too: nothing is served by a rebound name.
    code, _ = await r.call("GET", "/healthz", headers={"Host": "rebound.example"})
    assert code == 421


async def test_with_a_token_any_host_is_accepted(admin_factory: object) -> None:
    r: Running = await admin_factory(token="s3cret")  # type: ignore[operator]
    code, _ = await r.call("GET", "/api/requests/count", headers={"Host": "rebound.example"})
    assert code == 401  # the rebound page has no token
    code, _ = await r.call("GET", "/api/requests/count", headers={
        "Host": "proxy.example", "Authorization": "Bearer s3cret"})
    assert code == 200


# -- the console behind a token, and its 404s -------------------------------------------
async def test_a_browser_without_the_token_gets_a_page_asking_for_it(
        admin_factory: object) -> None:
    r: Running = await admin_factory(token="s3cret")  # type: ignore[operator]
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for path in ("/", "/console", "/?token=wrong"):
        async with r.http.get(r.base + path, headers=html, allow_redirects=False) as resp:
            assert resp.status == 401
            assert resp.content_type == "text/html"
            page = await resp.text()
        assert '<input id="token" name="token" type="password"' in page
        assert ("the one given is not it" in page) == ("wrong" in path)
    code, text = await r.call("GET", "/", headers={"Accept": "application/json"})
    assert (code, text) == (401, '{"error": "missing or wrong bearer token"}')
    async with r.http.get(r.base + "/console?token=s3cret", allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (302, "/?token=s3cret")
    async with r.http.get(r.base + "/?token=s3cret", headers=html) as resp:
        assert resp.status == 200 and "frame-ancestors 'none'" in resp.headers[
            "Content-Security-Policy"]


async def test_a_missing_asset_does_not_show_the_install_path(
        running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = str(console_module.STATIC)
    code, text = await running.call("GET", "/console/nope.js")
    assert code == 404 and installed not in text and "/" not in text.replace("\\/", "")
    monkeypatch.setattr(console_module, "STATIC", tmp_path)  # no index.html there
    code, text = await running.call("GET", "/")
    assert code == 404 and str(tmp_path) not in text and installed not in text
    assert text == '{"error": "the console page is not installed"}'


# -- WebSocket Origin -------------------------------------------------------------------
WS_SCENARIO = '[settings]\nws_origins = ["https://App.Example/"]\n\n' + SCENARIO


async def test_websocket_origin_allow_list() -> None:
    request = make_request("OPTIONS", "sip:busy@127.0.0.1", transport="WS",
                           via_host="x.invalid").decode()
    sip = [Subprotocol("sip")]
    async with Responder(parse_scenario(WS_SCENARIO, "<test>"), ["ws:127.0.0.1:0"]) as r:
        url = r.ws_url()
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, subprotocols=sip, open_timeout=TIMEOUT,
                               origin=Origin("https://evil.example")):
                pass
        assert refused.value.response.status_code == 403
        assert b"ws_origins" in refused.value.response.body
        assert r.server is not None and r.server.engine.counters["ws_origin_refused"] == 1
        for origin in (Origin("https://app.example"), None):  # listed; not a browser
            async with connect(url, subprotocols=sip, open_timeout=TIMEOUT,
                               origin=origin) as ws:
                await ws.send(request)
                answer = await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert str(answer).startswith("SIP/2.0 486 ")
    async with (Responder(parse_scenario(SCENARIO, "<test>"), ["ws:127.0.0.1:0"]) as r,
                connect(r.ws_url(), subprotocols=sip, open_timeout=TIMEOUT,
                        origin=Origin("https://evil.example")) as ws):
        await ws.send(request)  # no list: any page, as before
        assert str(await asyncio.wait_for(ws.recv(), TIMEOUT)).startswith("SIP/2.0 486 ")


@pytest.mark.parametrize("value", ['["app.example"]', '["https://a.example/path"]',
                                   '["ftp://a.example"]', '[""]', '"https:/a.example"'])
def test_a_bad_ws_origin_is_refused_at_load(value: str) -> None:
    with pytest.raises(ScenarioError, match="ws_origins"):
        parse_scenario(f"[settings]\nws_origins = {value}\n", "<test>")


@pytest.mark.skipif(sys.platform != "linux", reason="--workers forks (Linux)")
async def test_the_perimeter_holds_under_workers() -> None:
    """The gatherer of --workers serves the same checks and the same event-stream cap
    (the workers' private channels, over Unix sockets, are not browsers' business)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPRESPONDER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sipresponder", "serve", "--workers", "2",
        "--listen", "udp:127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--admin-max-event-clients", "1",
        stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        env={**env, "PYTHONPATH": str(ROOT)})
    assert proc.stderr is not None
    try:
        line = await _read_until(proc.stderr, "admin API on http://")
        base = line.split("admin API on ", 1)[1].split()[0]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
            async with http.post(base + "/api/reset", data=b"x",
                                 headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 415
            async with http.get(base + "/api/requests", headers={"Host": "evil.example"}) as resp:
                assert resp.status == 421
            async with http.get(base + "/api/requests",
                                headers={"Origin": "http://evil.example"}) as resp:
                assert resp.status == 403
            # What passes goes on to every worker, through their private channels.
            async with http.post(base + "/api/reset", headers={"X-Sipresponder": "1"}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.put(base + "/api/scenario", data=SCENARIO,
                                headers={"Content-Type": "application/toml"}) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(base + "/api/events") as stream:
                assert stream.status == 200
                await stream.content.readline()
                async with http.get(base + "/api/events") as refused:
                    assert refused.status == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_verify_and_pcap_read_their_token_from_a_file(
        admin_factory: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SIPRESPONDER_ADMIN_TOKEN", raising=False)
    r: Running = await admin_factory(token="s3cret")  # type: ignore[operator]
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    ask = ["verify", "--admin", r.base, "--method", "OPTIONS", "--none", "--within", "0"]
    assert await asyncio.to_thread(main, [*ask, "--token-file", str(token)]) == 0
    assert await asyncio.to_thread(main, ask) == 2  # no token: 401
    out = tmp_path / "j.pcap"
    assert await asyncio.to_thread(main, ["pcap", "--admin", r.base, "--token-file",
                                          str(token), "--output", str(out)]) == 0
    assert out.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")
    capsys.readouterr()
    assert await asyncio.to_thread(main, [*ask, "--token-file", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: --token-file ")
