"""The pytest plugin in a user's folder, run as a user would run it."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sipclient import make_request, parse_response

ROOT = Path(__file__).resolve().parents[2]


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "--rootdir", str(folder), *args, str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_a_users_folder_runs_warning_free(tmp_path: Path) -> None:
    """Issue 12: pytest-asyncio (the `test` extra) warned that
    asyncio_default_fixture_loop_scope was unset in every folder without it."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_user.py").write_text(
        "def test_plain(sip_responder):\n"
        "    assert sip_responder.uri('486').startswith('sip:486@')\n\n"
        "async def test_async(sip_responder):\n"
        "    assert sip_responder.uri('200').startswith('sip:200@')\n")
    proc = run_pytest(tmp_path, "-p", "asyncio", "-o", "asyncio_mode=auto")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert "warning" not in (proc.stdout + proc.stderr).lower()


def test_a_users_own_loop_scope_is_kept(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = fixture-scope\n")
    (tmp_path / "test_user.py").write_text(
        "def test_scope(pytestconfig):\n"
        "    assert pytestconfig.getini('asyncio_default_fixture_loop_scope') == "
        "'fixture-scope'\n")
    proc = run_pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- issue 18 ------------------------------------------------------------------------------
# The inner test files talk SIP through tests/sipclient.py (the subprocess gets the
# repository on PYTHONPATH) and print nothing of their own.
CLIENT = '''
import asyncio
import socket

import pytest

from tests.sipclient import make_request, parse_response, udp_exchange


def options(port, user="bob", headers=None, method="OPTIONS"):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(make_request(method, f"sip:{user}@127.0.0.1", headers=headers),
                    ("127.0.0.1", port))
        return parse_response(sock.recv(65535)).code
'''


def summary_lines(output: str) -> list[str]:
    """The lines of pytest's short test summary (``FAILED ...``, ``ERROR ...``)."""
    return [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]


def run_wide(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """run_pytest with a terminal wide enough that pytest trims no summary line, and
    without CI set (which would make pytest print whole messages there instead)."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILD_NUMBER")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="400")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
         "--rootdir", str(folder), *args, str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_marker_paths_resolve_beside_the_test_file(tmp_path: Path) -> None:
    """Issue 18: `sip_scenario("busy.toml")` was looked up in the working folder only,
    so a scenario kept next to its test was not found when pytest ran from the root."""
    sub = tmp_path / "tests" / "sip"
    sub.mkdir(parents=True)
    (sub / "busy.toml").write_text('[default]\ncode = 486\n')
    (tmp_path / "here.toml").write_text('[default]\ncode = 603\n')
    (sub / "test_paths.py").write_text(CLIENT + '''

@pytest.mark.sip_scenario("busy.toml")
def test_beside_the_test_file(sip_responder):
    assert options(sip_responder.address()[1]) == 486

@pytest.mark.sip_scenario("here.toml")
def test_in_the_working_folder(sip_responder):
    assert options(sip_responder.address()[1]) == 603

@pytest.mark.sip_scenario("redirects")
def test_a_bundled_name(sip_responder):
    assert options(sip_responder.address()[1], user="temp", method="INVITE") == 302

@pytest.mark.sip_scenario("nowhere.toml")
def test_nowhere(sip_responder):
    pass
''')
    proc = run_wide(tmp_path)
    out = proc.stdout + proc.stderr
    assert "3 passed, 1 error" in out, out
    [error] = summary_lines(out)
    assert error == (
        f"ERROR tests/sip/test_paths.py::test_nowhere - Failed: sip_scenario('nowhere.toml'): "
        "no such "
        f"scenario file: tried {sub / 'nowhere.toml'}, {tmp_path / 'nowhere.toml'}, and the "
        "bundled scenarios (ci-test-double, client-torture, default, far-end, media-lab, "
        "pbx-lab, redirects, registrar)"), out
    assert "Traceback" not in out and "sipresponder/" not in out, out


def test_resolve_scenario_prefers_the_test_files_folder(tmp_path: Path) -> None:
    from sipresponder.testing.pytest_plugin import resolve_scenario

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "x.toml").write_text("[default]\ncode = 500\n")
    test_file = tmp_path / "a" / "test_x.py"
    assert resolve_scenario("x.toml", test_file, tmp_path / "b", tmp_path) == \
        tmp_path / "a" / "x.toml"
    assert resolve_scenario("x.toml", tmp_path / "c" / "test_x.py", tmp_path / "b",
                            tmp_path) == tmp_path / "b" / "x.toml"
    toml = "[default]\ncode = 500\n"
    assert resolve_scenario(toml, test_file, tmp_path, tmp_path) == toml
    assert resolve_scenario("[default]", test_file, tmp_path, tmp_path) == "[default]"


def test_async_fixture_and_the_blocking_call(tmp_path: Path) -> None:
    """Issue 18: in an async test the sync fixture's wait_for blocked the loop that the
    client needed, and then blamed the client ("nothing arrived"). The async fixture
    waits on the test's own loop (in pytest-asyncio's default, strict, mode); the
    blocking call is refused at once, with a line saying what to use."""
    (tmp_path / "test_async.py").write_text(CLIENT + '''

@pytest.mark.asyncio
async def test_async_fixture(sip_responder_async):
    port = sip_responder_async.address("udp")[1]
    # the client runs on this loop, and only gets to send while the test awaits
    client = asyncio.ensure_future(udp_exchange(port, make_request("OPTIONS", "sip:a@b")))
    [entry] = await sip_responder_async.wait_for("OPTIONS", timeout=10)
    assert [r.code for r in await client] == [200]
    assert await sip_responder_async.verify("INVITE", none=True, within=0) == []

@pytest.mark.asyncio
@pytest.mark.sip_scenario("[default]\\ncode = 480\\n")
async def test_async_fixture_with_marker_and_factory(sip_responder_async,
                                                     sip_responder_async_factory):
    [response] = await udp_exchange(sip_responder_async.address()[1],
                                    make_request("OPTIONS", "sip:a@b"))
    assert response.code == 480
    other = await sip_responder_async_factory("[default]\\ncode = 603\\n")
    [response] = await udp_exchange(other.address()[1], make_request("OPTIONS", "sip:a@b"))
    assert response.code == 603

@pytest.mark.asyncio
async def test_sync_fixture_blocking_the_loop(sip_responder):
    sip_responder.wait_for("OPTIONS", timeout=30)
''')
    proc = run_wide(tmp_path, "-p", "asyncio", "-o", "asyncio_mode=strict")
    out = proc.stdout + proc.stderr
    assert "1 failed, 2 passed" in out, out
    [failed] = summary_lines(out)
    assert failed == (
        "FAILED test_async.py::test_sync_fixture_blocking_the_loop - sipresponder.testing.api."
        "BlockingCall: SyncResponder.wait_for() would block the running event loop of this "
        "thread, and with it the client under test: in an async test use the "
        "sip_responder_async fixture (a Responder) and `await sip_responder_async.wait_for"
        "(...)`"), out


async def test_blocking_calls_are_refused_inside_a_running_loop() -> None:
    from sipresponder.testing.api import BlockingCall, SyncResponder

    with SyncResponder() as r:
        for call in (lambda: r.wait_for("OPTIONS", timeout=30),
                     lambda: r.verify("OPTIONS", none=True, within=30)):
            with pytest.raises(BlockingCall, match="await sip_responder_async"):
                call()
        assert r.requests() == []  # a quick call is no deadlock: still allowed


def test_failures_read_well_in_pytest(tmp_path: Path) -> None:
    """Issue 18: a failure printed the whole of verify()'s source above the message,
    the short summary was cut at the exception's module path, and a header filter's
    miss did not show the value that arrived."""
    (tmp_path / "test_fail.py").write_text(CLIENT + '''

def test_header_miss(sip_responder):
    options(sip_responder.address()[1], method="INVITE", headers=[("X-Foo", "baz")])
    sip_responder.wait_for("INVITE", headers={"X-Foo": "bar*"}, timeout=0.2)

def test_too_many(sip_responder):
    options(sip_responder.address()[1], user="a")
    options(sip_responder.address()[1], user="b")
    sip_responder.verify("OPTIONS", at_most=1, within=5)

@pytest.mark.asyncio
async def test_async_nothing(sip_responder_async):
    await sip_responder_async.verify("BYE", exactly=1, timeout=0.2, within=0)
''')
    proc = run_wide(tmp_path, "-p", "asyncio", "-o", "asyncio_mode=strict")
    out = proc.stdout + proc.stderr
    assert "3 failed" in out, out
    assert summary_lines(out) == [
        "FAILED test_fail.py::test_header_miss - WaitTimeout: expected 1 request(s) matching "
        "method='INVITE', headers={'X-Foo': 'bar*'} within 0.2 s, got 0; closest: #1 INVITE "
        "sip:bob@127.0.0.1 had X-Foo: 'baz', not 'bar*'",
        "FAILED test_fail.py::test_too_many - VerifyFailed: expected at most 1 request(s) "
        "matching method='OPTIONS' (window 5 s), got 2: #1 OPTIONS sip:a@127.0.0.1, "
        "#2 OPTIONS sip:b@127.0.0.1",
        "FAILED test_fail.py::test_async_nothing - VerifyFailed: expected exactly 1 request(s) "
        "matching method='BYE' within 0.2 s, got 0; nothing arrived at all",
    ], out
    # the journal listing, with the filtered header's value on each line
    assert re.search(r"\nE       the journal holds:\nE         #1 udp:127\.0\.0\.1:[0-9]+ "
                     r"INVITE sip:bob@127\.0\.0\.1 -> rule 'invite' \(#5\), answered \[200\]; "
                     r"X-Foo: 'baz'\n", out), out
    # none of sipresponder's own frames, nor those of the futures between the threads
    for internal in ("sipresponder/testing", "concurrent/futures", "def verify(",
                     "def wait_for(", "__tracebackhide__", "run_coroutine_threadsafe"):
        assert internal not in out, (internal, out)
    # each failure points at the test's own line, never at ours
    assert re.findall(r"\n(\S+):[0-9]+: (WaitTimeout|VerifyFailed)\n", out) == [
        ("test_fail.py", "WaitTimeout"), ("test_fail.py", "VerifyFailed"),
        ("test_fail.py", "VerifyFailed")], out


def test_udp_and_tcp_share_one_port(sip_responder) -> None:
    """Issue 18: the fixture's UDP and TCP listeners had different ports, so a client
    falling back from UDP to TCP (RFC 3261 18.1.1) found nothing there."""
    udp, tcp = sip_responder.address("udp"), sip_responder.address("tcp")
    assert udp == tcp
    with socket.create_connection(tcp, timeout=5) as conn:
        conn.sendall(make_request("OPTIONS", "sip:486@127.0.0.1", transport="TCP"))
        assert parse_response(conn.recv(65535)).code == 486
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(make_request("OPTIONS", "sip:486@127.0.0.1"), udp)
        assert parse_response(sock.recv(65535)).code == 486
    assert [e.transport for e in sip_responder.requests()] == ["tcp", "udp"]


async def test_a_port_taken_for_tcp_is_given_up_for_a_fresh_one(monkeypatch) -> None:
    """The UDP port the OS picks may be some other process's TCP port: the responder
    tries another, still one port for both."""
    from sipresponder.testing import api
    from sipresponder.transport.address import ListenAddress, bind_socket

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    calls: list[ListenAddress] = []

    def bind_first_on_the_taken_port(addr: ListenAddress) -> socket.socket:
        calls.append(addr)
        return bind_socket(ListenAddress("udp", addr.host, port) if len(calls) == 1 else addr)

    monkeypatch.setattr(api, "bind_socket", bind_first_on_the_taken_port)
    try:
        async with api.Responder() as r:
            assert r.address("udp") == r.address("tcp") != ("127.0.0.1", port)
            assert len(calls) == 2
    finally:
        taken.close()


async def test_explicit_ports_are_kept() -> None:
    from sipresponder.testing.api import Responder

    async with Responder(listen=["udp:127.0.0.1:0"]) as one:
        port = one.address("udp")[1]
        # a TCP listener on a port of its own, and a UDP one on the port named
        with pytest.raises(OSError, match=r"cannot listen on udp:127\.0\.0\.1"):
            await Responder(listen=[f"udp:127.0.0.1:{port}", "tcp:127.0.0.1:0"]).start()


def test_a_wait_on_another_loop_is_one_clear_line() -> None:
    """A Responder started on one loop and awaited on another (a fixture and a test of
    different pytest-asyncio loop scopes) would never be woken: it says so instead."""
    from sipresponder.testing.api import Responder

    responder = Responder()
    with pytest.raises(RuntimeError, match=r"the responder is not running \(use `async with"):
        asyncio.run(responder.wait_for(timeout=0))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(responder.start())
        with pytest.raises(RuntimeError, match="awaited on another event loop than the one "
                           "the responder started on: give the test and the fixture the "
                           "same loop scope"):
            asyncio.run(responder.verify(none=True, within=0))
    finally:
        loop.run_until_complete(responder.stop())
        loop.close()
