"""Issue 18, file access: a scenario pushed over the admin API reads only regular files
under the started scenario's folder, within ``max_body_file``; the operator's own
scenario may name any file but still only a regular one within the limit. Also: the
admin API loads scenarios off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sipresponder.ops import pushed
from sipresponder.ops.admin import Admin
from sipresponder.ops.pushed import parse_pushed, pushed_files
from sipresponder.scenario import files
from sipresponder.scenario.bundled import bundled_scenario
from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.files import FileAccess
from sipresponder.scenario.loader import ScenarioError, load_scenario, parse_scenario
from sipresponder.testing.api import Responder
from tests.sipclient import make_request, udp_exchange

SECRET = b"v=0\r\no=secret 1 1 IN IP4 192.0.2.1\r\n"


def rule(body_file: str, extra: str = "") -> str:
    return (f'{extra}[[rule]]\nname = "r"\ncode = 200\n'
            f'body_file = "{body_file}"\ncontent_type = "text/plain"\n')


def pushed_error(text: str, base: Path | None) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_pushed(text, "<PUT /api/scenario>", base)
    return info.value


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The started scenario's folder, with a body file, beside a secret outside it."""
    (tmp_path / "scenario").mkdir()
    (tmp_path / "scenario" / "ok.txt").write_bytes(b"hello")
    (tmp_path / "outside.txt").write_bytes(SECRET)
    return tmp_path / "scenario"


# -- what a pushed scenario may name ----------------------------------------------------
@pytest.mark.parametrize("name", [
    "/etc/passwd",
    "/proc/self/environ",
    "../outside.txt",
    "sub/../../outside.txt",
    "/dev/zero",
])
def test_a_pushed_scenario_cannot_name_a_file_outside_the_folder(folder: Path,
                                                                 name: str) -> None:
    error = pushed_error(rule(name), folder)
    assert error.field == "body_file"
    assert "is outside the scenario's folder" in str(error)
    assert "\n" not in str(error)


def test_a_symlink_out_of_the_folder_is_refused(folder: Path) -> None:
    (folder / "link.txt").symlink_to(folder.parent / "outside.txt")
    (folder / "dir").symlink_to(folder.parent)
    for name in ("link.txt", "dir/outside.txt"):
        error = pushed_error(rule(name), folder)
        assert "is outside the scenario's folder" in str(error), name


def test_a_symlink_that_stays_inside_is_followed(folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").symlink_to(folder / "ok.txt")
    scenario = parse_pushed(rule("sub/inner.txt"), "<PUT>", folder)
    body = scenario.rules[0].final.body
    assert body is not None and body.constant == "hello"


def test_an_allowed_file_under_the_folder_is_read(folder: Path) -> None:
    (folder / "sdp").mkdir()
    (folder / "sdp" / "answer.sdp").write_bytes(SECRET)
    scenario = parse_pushed(rule("sdp/answer.sdp"), "<PUT>", folder)
    assert scenario.body_files == (folder / "sdp" / "answer.sdp",)


def test_the_error_does_not_say_whether_an_outside_path_exists(folder: Path) -> None:
    exists = pushed_error(rule("../outside.txt"), folder)
    missing = pushed_error(rule("../outsidx.txt"), folder)
    assert str(exists).replace("outside.txt", "NAME") == str(missing).replace("outsidx.txt",
                                                                              "NAME")
    exists = pushed_error(rule("/etc/passwd"), folder)
    missing = pushed_error(rule("/etc/passwx"), folder)
    assert str(exists).replace("passwd", "X") == str(missing).replace("passwx", "X")


def test_without_a_scenario_file_a_pushed_scenario_names_no_file(folder: Path) -> None:
    """Started with a bundled scenario (or none): the package's folder is not the
    operator's, so no body_file at all."""
    for base in (None, bundled_scenario().parent):
        error = pushed_error(rule("default.toml"), base)
        assert error.field == "body_file"
        assert "started without a scenario file" in str(error)
    assert pushed_files(folder).base == folder


# -- what any scenario may read -------------------------------------------------------
def test_devices_fifos_and_proc_are_refused_even_for_the_operator(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes it: a blocking open or read would hang here
    for name in ("/dev/zero", str(fifo), "/proc/self/environ", str(tmp_path)):
        with pytest.raises(ScenarioError) as info:
            parse_scenario(rule(name), "<operator>", tmp_path)
        assert info.value.field == "body_file"
        assert "is not a regular file" in str(info.value), name


def test_a_fifo_inside_the_folder_is_refused_without_blocking(folder: Path) -> None:
    os.mkfifo(folder / "fifo")
    error = pushed_error(rule("fifo"), folder)
    assert "is not a regular file" in str(error)


def test_a_file_over_max_body_file_is_refused(folder: Path) -> None:
    (folder / "big.txt").write_bytes(b"x" * 2000)
    error = pushed_error(rule("big.txt", "[settings]\nmax_body_file = 1999\n"), folder)
    assert error.field == "body_file"
    assert "larger than max_body_file (1999 octets)" in str(error)
    scenario = parse_pushed(rule("big.txt", "[settings]\nmax_body_file = 2000\n"), "<P>", folder)
    assert scenario.settings.max_body_file == 2000


def test_the_default_limit_is_one_mebibyte(folder: Path) -> None:
    (folder / "big.txt").write_bytes(b"x" * ((1 << 20) + 1))
    assert "larger than max_body_file (1048576 octets)" in str(
        pushed_error(rule("big.txt"), folder))


def test_the_command_line_scenario_still_gets_the_checks(tmp_path: Path) -> None:
    """--scenario FILE and --watch may name any file, but a regular one within the limit."""
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(b"x" * 100)
    path = tmp_path / "dir" / "s.toml"
    path.parent.mkdir()
    path.write_text(rule(str(outside)))
    assert load_scenario(path).body_files == (outside,)  # the operator's choice
    path.write_text(rule(str(outside), "[settings]\nmax_body_file = 99\n"))
    with pytest.raises(ScenarioError, match="larger than max_body_file"):
        load_scenario(path)
    path.write_text(rule("/dev/zero"))
    with pytest.raises(ScenarioError, match="is not a regular file"):
        load_scenario(path)


def test_a_symlink_met_after_resolving_is_not_followed(tmp_path: Path) -> None:
    """The open walks down the resolved path with O_NOFOLLOW at every step, so a folder
    or file replaced by a symlink between the check and the open is refused, not
    followed (simulated by handing the reader paths that hold one)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f.txt").write_bytes(b"x")
    (tmp_path / "swapped").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "link").symlink_to(tmp_path / "real" / "f.txt")
    for path in (tmp_path / "swapped" / "f.txt", tmp_path / "real" / "link"):
        with pytest.raises(FieldError, match="cannot read"):
            files._read_regular("body_file", "f.txt", path, 100)
    assert files._read_regular("body_file", "f.txt", tmp_path / "real" / "f.txt", 100) == b"x"


def test_relative_names_of_the_operator_start_at_the_scenario(tmp_path: Path) -> None:
    access = FileAccess.anywhere(tmp_path)
    (tmp_path / "a.txt").write_bytes(b"a")
    assert access.read("body_file", "a.txt") == b"a"


# -- over the admin API -----------------------------------------------------------------
class Api:
    def __init__(self, responder: Responder, admin: Admin, http: aiohttp.ClientSession
                 ) -> None:
        self.responder, self.admin, self.http = responder, admin, http
        host, port = admin.address  # type: ignore[misc]
        self.base = f"http://{host}:{port}"

    async def put(self, path: str, text: str) -> tuple[int, dict[str, object]]:
        async with self.http.put(self.base + path, data=text.encode(),
                                 headers=headers(path)) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, text: str) -> tuple[int, dict[str, object]]:
        async with self.http.post(self.base + path, data=text.encode(),
                                  headers=headers(path)) as resp:
            return resp.status, await resp.json()


def headers(path: str) -> dict[str, str]:
    """What a non-browser client sends to the routes that change state (the admin
    API's CSRF rule: a JSON or TOML content type, or X-Sipresponder)."""
    kind = "application/json" if path.startswith("/api/requests") else "application/toml"
    return {"Content-Type": kind, "X-Sipresponder": "1"}


@pytest.fixture
async def api(folder: Path) -> AsyncIterator[Api]:
    text = '[default]\ncode = 404\n'
    responder = await Responder(parse_scenario(text, "<test>")).start()
    admin = Admin(responder, text, None, base_dir=folder)
    await admin.start("127.0.0.1", 0)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
    try:
        yield Api(responder, admin, http)
    finally:
        await http.close()
        await admin.close()
        await responder.stop()


@pytest.mark.timeout(20)
async def test_the_admin_api_refuses_files_outside_with_a_400(api: Api, folder: Path) -> None:
    os.mkfifo(folder / "fifo")
    for name in ("/etc/passwd", "/proc/self/environ", "../outside.txt", "/dev/zero", "fifo"):
        status, body = await api.put("/api/scenario", rule(name))
        assert status == 400, name
        assert "field 'body_file'" in str(body["error"]), name
        status, body = await api.put("/api/rules/r", f'code = 200\nbody_file = "{name}"\n'
                                     'content_type = "text/plain"\n')
        assert status == 400, name
        assert "field 'body_file'" in str(body["error"]), name
    status, body = await api.post("/api/scenario/check", rule("../outside.txt"))
    assert status == 422 and "outside the scenario's folder" in str(body["error"])
    _, exists = await api.post("/api/scenario/check", rule("/etc/passwd"))
    _, missing = await api.post("/api/scenario/check", rule("/etc/passwx"))
    assert str(exists["error"]).replace("passwd", "X") == \
        str(missing["error"]).replace("passwx", "X")
    # Nothing was swapped in: the default still answers.
    port = api.responder.address("udp")[1]
    [answer] = await udp_exchange(port, make_request("OPTIONS", "sip:x@127.0.0.1"))
    assert answer.code == 404 and SECRET not in answer.raw


@pytest.mark.timeout(20)
async def test_the_admin_api_serves_an_allowed_file(api: Api, folder: Path) -> None:
    (folder / "answer.txt").write_bytes(b"from the folder")
    status, body = await api.put("/api/scenario", rule("answer.txt"))
    assert status == 200, body
    port = api.responder.address("udp")[1]
    [answer] = await udp_exchange(port, make_request("OPTIONS", "sip:x@127.0.0.1"))
    assert answer.code == 200 and answer.body == b"from the folder"


@pytest.mark.timeout(30)
async def test_a_scenario_loads_off_the_event_loop(api: Api, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    """While a PUT's scenario is loading, SIP and /healthz on the same process are
    answered: the load is held at a gate until both answers are in, and the PUT's
    response comes after them (on the loop, the held load would block both)."""
    loading, release = threading.Event(), threading.Event()
    real = pushed.parse_pushed

    def held(*args: object) -> object:
        loading.set()
        release.wait(20)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pushed, "parse_pushed", held)
    big = "".join(f'[[rule]]\nname = "r{i}"\nmatch = {{ user = "u{i}" }}\ncode = 486\n'
                  for i in range(2000))
    put = asyncio.create_task(api.put("/api/scenario", big))
    assert await asyncio.to_thread(loading.wait, 20)
    order = []
    async with api.http.get(api.base + "/healthz") as resp:
        assert resp.status == 200
        order.append("healthz")
    port = api.responder.address("udp")[1]
    [answer] = await udp_exchange(port, make_request("OPTIONS", "sip:x@127.0.0.1"))
    assert answer.code == 404  # the old scenario: the new one is not in yet
    order.append("sip")
    assert not put.done()
    release.set()
    status, body = await put
    order.append("put")
    assert (status, body["rules"]) == (200, 2000)
    assert order == ["healthz", "sip", "put"]


# -- nesting --------------------------------------------------------------------------
@pytest.mark.timeout(20)
async def test_deep_nesting_is_a_400_not_a_500(api: Api) -> None:
    """Issue 18: 100k-deep JSON or TOML raised RecursionError (500)."""
    deep = 100_000
    toml = "x = " + "[" * deep + "]" * deep
    status, body = await api.put("/api/scenario", toml)
    assert status == 400 and "nested deeper than 100 levels" in str(body["error"])
    status, body = await api.put("/api/rules/r", toml)
    assert status == 400 and "nested deeper than 100 levels" in str(body["error"])
    status, body = await api.post("/api/scenario/check", toml)
    assert status == 422 and "nested deeper than 100 levels" in str(body["error"])
    status, body = await api.post("/api/requests/wait", "[" * deep + "]" * deep)
    assert status == 400 and body["error"] == "body is nested deeper than 64 levels (line 1)"
    status, body = await api.post("/api/requests/verify", '{"uri":' * deep)
    assert status == 400 and "nested deeper than 64 levels" in str(body["error"])


# -- --workers: the gatherer relays the operator's reloads as the operator's -----------
@pytest.mark.skipif(sys.platform != "linux", reason="--workers forks (Linux)")
@pytest.mark.timeout(90)
def test_workers_reload_the_operators_files_but_confine_the_apis(tmp_path: Path) -> None:
    """Under --workers --admin a SIGHUP reload reaches the workers through the same
    channel as an API swap; it keeps the operator's freedom (a file outside the folder),
    while the same text PUT over the API is refused."""
    from tests.integration.test_workers_admin import Cluster, ask, code_of, options

    (tmp_path / "dir").mkdir()
    outside = tmp_path / "elsewhere.txt"
    outside.write_bytes(b"operator's")
    scenario = tmp_path / "dir" / "s.toml"
    scenario.write_text("[default]\ncode = 480\n")
    running = Cluster("--scenario", str(scenario))
    try:
        text = (f'[default]\ncode = 603\nbody_file = "{outside}"\n'
                'content_type = "text/plain"\n')
        scenario.write_text(text)
        running.proc.send_signal(signal.SIGHUP)
        running.wait_line("SIGHUP: reloaded scenario")
        deadline = time.monotonic() + 20
        while running.call("GET", "/api/scenario")[1] != text:
            assert time.monotonic() < deadline, f"never swapped in: {''.join(running.lines)}"
            time.sleep(0.05)  # the swap runs after the log line; the bound is the deadline
        answers = [ask(running.udp, options(f"w{i}")) for i in range(16)]
        assert {code_of(a) for a in answers} == {603}
        assert all(a.endswith(b"operator's") for a in answers)
        status, body = running.call("PUT", "/api/scenario", raw=text.encode())
        assert status == 400 and "outside the scenario's folder" in body["error"]
    finally:
        running.stop()


def test_a_name_that_leaves_the_folder_is_refused_even_if_it_comes_back(folder: Path) -> None:
    """'../x/../scenario/ok.txt' resolves inside, but how it resolves depends on what
    x is outside (a symlink goes elsewhere): refused from the name alone, so nothing
    outside can be probed."""
    (folder.parent / "x").symlink_to("/")
    for name in ("../x/../scenario/ok.txt", "../nothing/../scenario/ok.txt",
                 f"{folder}/../scenario/ok.txt"):
        assert "is outside the scenario's folder" in str(pushed_error(rule(name), folder))
    for name in ("./ok.txt", "sub/../ok.txt", str(folder / "ok.txt")):
        (folder / "sub").mkdir(exist_ok=True)
        parse_pushed(rule(name), "<PUT>", folder)
