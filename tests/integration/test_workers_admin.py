"""``serve --workers 2 --admin``: one admin API over both workers (ops/gatherer.py).

The real CLI runs as a subprocess; requests go from many source ports, so that the
kernel's SO_REUSEPORT hash hands some to each worker (with ``--udp-balance datagram``
whichever worker reads first takes each), and every check is made through the
supervisor's admin address. Where a test asserts that both workers answered, it sends
24 requests from 24 source ports (all on one worker: a chance of 2**-23).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.sipclient import make_request

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="--workers forks (Linux)")

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on udp:127\.0\.0\.1:(\d+)")
ADMIN = re.compile(r"admin API on (http://127\.0\.0\.1:\d+) \(gathering from 2 workers\)")
SINGLE_ADMIN = re.compile(r"admin API on (http://127\.0\.0\.1:\d+)$")


class Cluster:
    """A running ``serve --workers 2 --admin 127.0.0.1:0`` and what it logged; with
    ``workers=1``, the same without ``--workers`` (one process), for the checks that
    must read the same either way."""

    def __init__(self, *extra: str, token: str | None = None, workers: int = 2) -> None:
        self.token = token
        self.workers = workers
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIPRESPONDER_")}
        scale = ["--workers", str(workers)] if workers > 1 else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sipresponder", "serve", *scale,
             "--admin", "127.0.0.1:0", "--listen", "udp:127.0.0.1:0", *extra],
            stderr=subprocess.PIPE, text=True, env={**env, "PYTHONPATH": str(ROOT)})
        self.lines: list[str] = []
        self._news = threading.Condition()
        threading.Thread(target=self._drain, daemon=True).start()
        self.base = self.wait_match(ADMIN if workers > 1 else SINGLE_ADMIN)
        self.udp = int(self.wait_match(LISTENING, workers))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._news:
                self.lines.append(line)
                self._news.notify_all()
        with self._news:
            self.lines.append("")  # the end
            self._news.notify_all()

    def wait_line(self, pattern: str, times: int = 1, timeout: float = 20) -> str:
        """The ``times``-th line matching ``pattern`` logged so far or within ``timeout``."""
        def found() -> list[str]:
            return [line for line in self.lines if re.search(pattern, line)]

        with self._news:
            ok = self._news.wait_for(lambda: len(found()) >= times or "" in self.lines, timeout)
            if not ok or len(found()) < times:
                pytest.fail(f"no line matching {pattern!r}; logged:\n{''.join(self.lines)}")
            return found()[times - 1]

    def wait_match(self, pattern: re.Pattern[str], times: int = 1) -> str:
        """The first group of the ``times``-th line matching ``pattern``."""
        found = pattern.search(self.wait_line(pattern.pattern, times))
        assert found is not None
        return found[1]

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             timeout: float = 15) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        # X-Sipresponder: what the admin API asks of every POST, PUT and DELETE (CSRF).
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"X-Sipresponder": "1"})
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, body
        return body

    def healthy(self) -> Any:
        """/healthz once it says every worker is up (a busy machine may make a worker
        miss the one-second bound of one probe; the bound here is 15 s)."""
        deadline = time.monotonic() + 15
        while True:
            status, body = self.call("GET", "/healthz")
            if status == 200:
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)  # polling the probe; the bound is the deadline

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                assert self.proc.wait(10) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait(10)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    running = Cluster()
    yield running
    running.stop()


def ask(port: int, request: bytes) -> bytes:
    """One request from a fresh socket (a new source port), its answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(request, ("127.0.0.1", port))
        return sock.recv(65535)


def options(tag: str, user: str = "200") -> bytes:
    return make_request("OPTIONS", f"sip:{user}@127.0.0.1", call_id=f"{tag}@workers-admin")


def code_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.mark.parametrize("balance", ["source", "datagram"])
def test_the_journal_merges_both_workers(balance: str) -> None:
    running = Cluster("--udp-balance", balance)
    try:
        for i in range(24):
            assert code_of(ask(running.udp, options(f"m{i}"))) == 200
        listed = running.get("/api/requests")
        entries = listed["entries"]
        assert listed["count"] == 24
        call_ids = [dict((k.lower(), v) for k, v in e["headers"])["call-id"] for e in entries]
        assert sorted(call_ids) == sorted(f"m{i}@workers-admin" for i in range(24))
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(set(seqs))  # unique and increasing
        assert {e["worker"] for e in entries} <= {0, 1}
        if balance == "source":  # 24 source ports all hashed to one worker: 2**-23
            assert {e["worker"] for e in entries} == {0, 1}
        # Each worker numbers its own entries; together they are all 24.
        for worker in (0, 1):
            mine = [e["worker_seq"] for e in entries if e["worker"] == worker]
            assert sorted(mine) == list(range(1, len(mine) + 1))
        assert running.get("/api/requests/count")["count"] == 24
        assert running.get("/api/requests/count?uri=sip:200@*")["count"] == 24
        assert running.get("/api/requests/count?uri=sip:404@*")["count"] == 0
        since = seqs[11]
        later = running.get(f"/api/requests?since={since}")["entries"]
        assert [e["seq"] for e in later] == seqs[12:]
        # New entries are numbered after everything listed so far, whichever worker.
        ask(running.udp, options("after"))
        [newest] = running.get(f"/api/requests?since={seqs[-1]}")["entries"]
        assert newest["seq"] > seqs[-1]
        # /metrics adds up both workers' counters; both are up.
        status, metrics = running.call("GET", "/metrics")
        assert status == 200
        assert 'sipresponder_requests_total{method="OPTIONS"} 25.0' in metrics
        assert 'sipresponder_responses_total{code="200"} 25.0' in metrics
        assert 'sipresponder_worker_up{worker="0"} 1.0' in metrics
        assert 'sipresponder_worker_up{worker="1"} 1.0' in metrics
        # DELETE empties every worker's journal; numbering goes on.
        assert running.call("DELETE", "/api/requests")[0] == 200
        assert running.get("/api/requests")["count"] == 0
        ask(running.udp, options("fresh"))
        [fresh] = running.get("/api/requests")["entries"]
        assert fresh["seq"] > newest["seq"]
    finally:
        running.stop()


def test_wait_and_verify_count_requests_on_both_workers(cluster: Cluster) -> None:
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(cluster.call, "POST", "/api/requests/wait",
                              {"uri": "sip:200@*", "count": 24, "timeout": 20})
        for i in range(24):
            ask(cluster.udp, options(f"w{i}"))
        status, body = waiting.result(30)
    assert status == 200, body
    assert body["count"] == 24
    assert time.monotonic() - started < 15  # woken by the 24th request, not the timeout
    assert {e["worker"] for e in body["entries"]} == {0, 1}
    status, body = cluster.call("POST", "/api/requests/verify",
                                {"uri": "sip:200@*", "exactly": 24, "within": 0.2})
    assert status == 200 and body["count"] == 24
    status, body = cluster.call("POST", "/api/requests/verify",
                                {"uri": "sip:200@*", "at_most": 23, "within": 0.2})
    assert status == 409
    assert body["error"].startswith("expected at most 23 request(s)")
    assert len(body["journal"]) == 24
    status, body = cluster.call("POST", "/api/requests/wait", {"count": 25, "timeout": 0.3})
    assert status == 408 and "got 24" in body["error"]
    status, body = cluster.call("POST", "/api/requests/wait", {"cuont": 9})
    assert status == 400 and "'cuont'" in body["error"]


def test_a_scenario_swap_reaches_every_worker(cluster: Cluster) -> None:
    busy = '[[rule]]\nname = "busy"\nmatch = { user = "*" }\ncode = 486\n'
    status, body = cluster.call("PUT", "/api/scenario", raw=busy.encode())
    assert status == 200 and body == {"status": "replaced", "rules": 1, "warnings": []}
    assert cluster.call("GET", "/api/scenario") == (200, busy)
    assert {code_of(ask(cluster.udp, options(f"s{i}"))) for i in range(24)} == {486}
    assert {e["worker"] for e in cluster.get("/api/requests?rule=busy")["entries"]} == {0, 1}
    # Refused once, by the gatherer: nothing changes anywhere.
    status, body = cluster.call("PUT", "/api/scenario", raw=b"[[rule]]\ncode = 99\n")
    assert status == 400 and "field 'code'" in body["error"]
    assert {code_of(ask(cluster.udp, options(f"t{i}"))) for i in range(8)} == {486}
    # One rule by name, on every worker.
    status, body = cluster.call("PUT", "/api/rules/busy", raw=b'match = { user = "*" }\ncode = 603\n')
    assert status == 200 and body["status"] == "replaced"
    assert {code_of(ask(cluster.udp, options(f"u{i}"))) for i in range(16)} == {603}
    assert "code = 603" in cluster.call("GET", "/api/scenario")[1]
    # placed in front of the catch-all, or it would never match (and says so)
    status, body = cluster.call("PUT", "/api/rules/vip", raw=b'match = { user = "vip" }\ncode = 480\n')
    assert status == 200 and body["number"] == 2 and len(body["warnings"]) == 1
    status, body = cluster.call("PUT", "/api/rules/vip?position=first",
                                raw=b'match = { user = "vip" }\ncode = 480\n')
    assert status == 200 and (body["number"], body["warnings"]) == (1, [])
    assert {code_of(ask(cluster.udp, options(f"v{i}", "vip"))) for i in range(8)} == {480}


def test_a_killed_worker_rejoins_with_the_swapped_scenario(cluster: Cluster) -> None:
    status, _ = cluster.call("PUT", "/api/scenario", raw=b"[default]\ncode = 480\n")
    assert status == 200
    health = cluster.healthy()
    assert health["status"] == "ok" and [w["up"] for w in health["workers"]] == [True, True]
    victim = health["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    cluster.wait_line(r"worker 0 \(pid \d+\) ended with status -9; restarting it")
    cluster.wait_line(LISTENING.pattern, 3)  # the replacement listens
    deadline = time.monotonic() + 15
    while True:
        status, health = cluster.call("GET", "/healthz")
        if status == 200 and health["workers"][0]["pid"] != victim:
            break
        assert time.monotonic() < deadline, health
        time.sleep(0.05)  # polling the restart; the bound is the deadline
    # Every answer, from the replacement too, is the swapped-in scenario's.
    answers = {code_of(ask(cluster.udp, options(f"k{i}"))) for i in range(24)}
    assert answers == {480}
    entries = cluster.get("/api/requests")["entries"]
    assert {e["worker"] for e in entries} == {0, 1}
    status, metrics = cluster.call("GET", "/metrics")
    assert 'sipresponder_worker_up{worker="0"} 1.0' in metrics


def test_a_stuck_worker_is_reported_and_the_swap_undone(cluster: Cluster) -> None:
    pids = [w["pid"] for w in cluster.healthy()["workers"]]
    os.kill(pids[1], signal.SIGSTOP)
    try:
        status, health = cluster.call("GET", "/healthz")
        assert status == 503 and health["status"] == "degraded"
        assert health["workers"][1] == {"worker": 1, "up": False, "error": health[
            "workers"][1]["error"]} and "worker 1 is not answering" in health[
            "workers"][1]["error"]
        status, body = cluster.call("PUT", "/api/scenario", raw=b"[default]\ncode = 480\n")
        assert status == 502
        assert "worker 1 is not answering" in body["error"]
        assert "workers 0 went back to the previous one" in body["error"]
        assert list(body["workers"]) == ["1"]
    finally:
        os.kill(pids[1], signal.SIGCONT)
    assert cluster.healthy()["status"] == "ok"
    # The running scenario stayed everywhere: the default answers 200 to OPTIONS.
    assert {code_of(ask(cluster.udp, options(f"x{i}"))) for i in range(16)} == {200}
    assert "code = 480" not in cluster.call("GET", "/api/scenario")[1]


def test_sighup_reloads_every_worker_once(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("[default]\ncode = 480\n")
    running = Cluster("--scenario", str(scenario))
    try:
        assert {code_of(ask(running.udp, options(f"a{i}"))) for i in range(8)} == {480}
        scenario.write_text("[default]\ncode = 603\n")
        running.proc.send_signal(signal.SIGHUP)
        running.wait_line("SIGHUP: reloaded scenario")
        deadline = time.monotonic() + 10
        while running.call("GET", "/api/scenario")[1] != "[default]\ncode = 603\n":
            assert time.monotonic() < deadline, "GET /api/scenario never showed the reload"
            time.sleep(0.05)  # the swap runs after the log line; the bound is the deadline
        assert {code_of(ask(running.udp, options(f"b{i}"))) for i in range(16)} == {603}
        # The gatherer reloaded, not each worker on its own (nor did they get the signal).
        assert sum("SIGHUP: reloaded" in line for line in running.lines) == 1
        assert not any("SIGHUP to a worker" in line for line in running.lines)
        worker = running.healthy()["workers"][1]["pid"]
        os.kill(worker, signal.SIGHUP)
        running.wait_line("SIGHUP to a worker is ignored: send it to the supervisor")
        assert running.healthy()["workers"][1]["pid"] == worker  # it did not die
    finally:
        running.stop()


def test_states_are_listed_per_worker(tmp_path: Path) -> None:
    scenario = tmp_path / "flaky.toml"
    scenario.write_text('[[rule]]\nname = "flaky"\nsequence = [503, 200]\nscope = "call-id"\n')
    running = Cluster("--scenario", str(scenario))
    try:
        for i in range(24):
            assert code_of(ask(running.udp, options(f"f{i}"))) == 503
        counters = running.get("/api/state")["counters"]
        assert len(counters) == 24 and {c["worker"] for c in counters} == {0, 1}
        assert running.call("DELETE", "/api/state")[0] == 200
        assert running.get("/api/state")["counters"] == []
        assert running.call("POST", "/api/reset")[0] == 200
        assert running.get("/api/requests/count")["count"] == 0
    finally:
        running.stop()


def test_a_restarted_gatherer_numbers_on(cluster: Cluster) -> None:
    for i in range(6):
        ask(cluster.udp, options(f"g{i}"))
    before = cluster.get("/api/requests")["entries"]
    workers = {w["pid"] for w in cluster.healthy()["workers"]}
    children = Path(f"/proc/{cluster.proc.pid}/task/{cluster.proc.pid}/children")
    [gatherer] = {int(p) for p in children.read_text().split()} - workers
    os.kill(gatherer, signal.SIGKILL)
    cluster.wait_line(r"the admin gatherer \(pid \d+\) ended with status -9; restarting it")
    cluster.wait_line(ADMIN.pattern, 2)  # the same address: the supervisor holds it
    ask(cluster.udp, options("after-restart"))
    after = cluster.get(f"/api/requests?since={before[-1]['seq']}")["entries"]
    # The workers' journals merged again, numbered after everything handed out before.
    assert len(after) == 7
    assert min(e["seq"] for e in after) > before[-1]["seq"]
    assert cluster.healthy()["status"] == "ok"


def test_watch_and_the_token_work_with_workers(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("[default]\ncode = 480\n")
    running = Cluster("--scenario", str(scenario), "--watch", "--admin-token", "s3cret",
                      token="s3cret")
    try:
        running.token = None
        assert running.call("GET", "/api/requests")[0] == 401
        assert running.call("GET", "/healthz")[0] != 401  # the probe needs no token
        running.token = "s3cret"
        assert {code_of(ask(running.udp, options(f"a{i}"))) for i in range(8)} == {480}
        scenario.write_text("[default]\ncode = 603\n")
        running.wait_line("file changed: reloaded scenario")
        deadline = time.monotonic() + 10
        while running.call("GET", "/api/scenario")[1] != "[default]\ncode = 603\n":
            assert time.monotonic() < deadline, "GET /api/scenario never showed the reload"
            time.sleep(0.05)  # the swap runs after the log line; the bound is the deadline
        assert {code_of(ask(running.udp, options(f"b{i}"))) for i in range(16)} == {603}
        assert sum("file changed: reloaded" in line for line in running.lines) == 1
    finally:
        running.stop()


def test_a_taken_admin_port_is_refused_before_any_worker_starts() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "sipresponder", "serve", "--workers", "2",
             "--listen", "udp:127.0.0.1:0", "--admin", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "supervising" not in result.stderr


async def test_one_fetch_merges_in_arrival_order_and_since_counts_merged_numbers(
        tmp_path: Path) -> None:
    """In one process, no fork: two responders with their channels, one Cluster."""
    from sipresponder.journal import expect
    from sipresponder.journal.record import Query
    from sipresponder.ops.admin import Admin
    from sipresponder.ops.cluster import socket_path
    from sipresponder.ops.gatherer import Cluster
    from sipresponder.ops.worker import WorkerChannel
    from sipresponder.testing.api import Responder, as_scenario
    from tests.sipclient import udp_exchange

    responders = [await Responder(listen=["udp:127.0.0.1:0"]).start() for _ in range(2)]
    channels = [WorkerChannel(Admin(r, ""), i, socket_path(tmp_path, i))
                for i, r in enumerate(responders)]
    cluster = Cluster(as_scenario(None), "", 2, tmp_path)
    try:
        for channel in channels:
            await channel.start()
        order = [0, 1, 1, 0, 1, 0, 0]
        for n, worker in enumerate(order):
            await udp_exchange(responders[worker].address()[1], options(f"o{n}"))
        await cluster.merge()
        merged = list(cluster.journal)
        assert [e.seq for e in merged] == list(range(1, 8))
        assert [e.worker for e in merged] == order  # type: ignore[attr-defined]
        assert [e.header("Call-ID") for e in merged] == [
            f"o{n}@workers-admin" for n in range(7)]
        await udp_exchange(responders[1].address()[1], options("late"))
        # The same wait as a Responder's (journal/expect.py), over the merged journal.
        found = await expect.wait_for(cluster.journal, cluster.watch,
                                      Query.build(since=7), 1, 5)
        assert [(e.seq, e.header("Call-ID")) for e in found] == [(8, "late@workers-admin")]
        assert (tmp_path / "merged-seq").read_text() == "8"
    finally:
        await cluster.stop()
        for channel in channels:
            await channel.close()
        for responder in responders:
            await responder.stop()


# -- the console's API: the same with one process and with --workers 2 ----------------------
CONSOLE_SCENARIO = """\
[[rule]]
name = "ring"
match = { user = "ring" }
provisional = [180]
delay = 0.3
code = 200

[[rule]]
name = "counted"
match = { user = "counted" }
sequence = [486, 200]
scope = "call-id"

[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200

[[rule]]
name = "invite"
match = { method = "INVITE" }
code = 200
"""
OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.fixture(params=[1, 2], ids=["single", "workers"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """``serve --admin`` with the console's scenario, as one process and as two workers."""
    scenario = tmp_path / "console.toml"
    scenario.write_text(CONSOLE_SCENARIO)
    running = Cluster("--scenario", str(scenario), workers=request.param)
    try:
        yield running
    finally:
        running.stop()


class Events:
    """GET /api/events, read event by event (each read bounded by the socket timeout)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=15)
        self.conn.request("GET", "/api/events")
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200

    def next(self) -> tuple[str, Any]:
        event, data = "message", ""
        while True:
            line = self.resp.fp.readline().decode()
            assert line, "the event stream ended"
            line = line.rstrip("\r\n")
            if not line:
                if data:
                    return event, json.loads(data)
                continue
            if line.startswith((":", "retry:")):
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "data":
                data += value

    def until(self, wanted: str, count: int) -> list[Any]:
        """The data of the next ``count`` events named ``wanted`` (others skipped)."""
        found = []
        while len(found) < count:
            event, data = self.next()
            if event == wanted:
                found.append(data)
        return found

    def close(self) -> None:
        self.conn.close()


def call_id_of(entry: dict[str, Any]) -> str:
    return dict((k.lower(), v) for k, v in entry["headers"])["call-id"]


def test_the_console_streams_entries_and_updates_as_they_arrive(served: Cluster) -> None:
    """Issue 18: under --workers the stream sent its snapshot and then nothing."""
    events = Events(served.base)
    try:
        # From 24 source ports: both workers journal some (all on one: 2**-23).
        for i in range(24):
            assert code_of(ask(served.udp, options(f"live{i}"))) == 200
        live = events.until("entry", 24)
        assert sorted(call_id_of(e) for e in live) == sorted(
            f"live{i}@workers-admin" for i in range(24))
        assert [e["seq"] for e in live] == sorted({e["seq"] for e in live})
        if served.workers > 1:
            assert {e["worker"] for e in live} == {0, 1}
        # A later response (the delayed 200 after the 180) arrives as an update.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.bind(("127.0.0.1", 0))
            sock.sendto(make_request("OPTIONS", "sip:ring@127.0.0.1", call_id="ring@console"),
                        ("127.0.0.1", served.udp))
            assert code_of(sock.recv(65535)) == 180
            assert code_of(sock.recv(65535)) == 200
        [ringing] = events.until("entry", 1)
        assert ringing["codes"][0] == 180
        update = ringing
        while update["codes"][-1] != 200:
            [update] = events.until("update", 1)
            assert update["seq"] == ringing["seq"]
        assert update["codes"] == [180, 200]
        # A swap, and a cleared journal, are events too.
        status, _ = served.call("PUT", "/api/scenario",
                                raw=CONSOLE_SCENARIO.replace("code = 200\n\n[[rule]]\n"
                                                             "name = \"counted\"",
                                                             "code = 202\n\n[[rule]]\n"
                                                             "name = \"counted\""
                                                             ).encode())
        assert status == 200
        assert [rule["name"] for rule in events.until("scenario", 1)[0]["rules"]] == [
            "ring", "counted", "options", "invite", ""]
        assert served.call("DELETE", "/api/requests")[0] == 200
        assert events.until("cleared", 1) == [{}]
    finally:
        events.close()


def test_rules_metrics_and_state_add_up_every_worker(served: Cluster) -> None:
    """Issue 18: under --workers /api/rules was [] and /api/metrics.json all zeros."""
    for i in range(24):
        assert code_of(ask(served.udp, options(f"hit{i}"))) == 200
    for i in range(4):
        invite = make_request("INVITE", "sip:bob@127.0.0.1", call_id=f"sdp{i}@console",
                              headers=[("Content-Type", "application/sdp")], body=OFFER)
        assert code_of(ask(served.udp, invite)) == 200
    for i in range(6):
        assert code_of(ask(served.udp, options(f"count{i}", user="counted"))) == 486
    rules = {rule["name"]: rule for rule in served.get("/api/rules")}
    assert rules["options"]["hits"] == 24
    assert rules["invite"]["hits"] == 4
    assert rules["counted"]["hits"] == 6 and rules["counted"]["stateful"]
    assert rules["ring"]["hits"] == 0
    metrics = served.get("/api/metrics.json")
    assert metrics["requests"] == {"OPTIONS": 30, "INVITE": 4}
    assert metrics["responses"] == {"200": 28, "486": 6}
    assert metrics["latency"]["count"] == 34
    assert metrics["latency"]["buckets"][-1] == [None, 34]
    paths = metrics["paths"]
    assert paths["compiled"] + paths["engine"] == 34
    assert paths["reasons"]["stateful"] == 6
    if compiled_path_built(served):
        assert paths["reasons"]["sdp-answer"] == 4
        # Each worker's engine answers the first OPTIONS, which teaches its table.
        assert paths["compiled"] >= 24 - served.workers
    else:
        assert paths["reasons"] == {"no-extension": 34}
    counters = served.get("/api/state")["counters"]
    assert sorted(c["key"] for c in counters) == sorted(
        f"count{i}@workers-admin" for i in range(6))


def compiled_path_built(served: Cluster) -> bool:
    """Whether the served processes answer on the compiled path (their environment
    is not the test's: ``Cluster`` leaves SIPRESPONDER_* out)."""
    return bool(served.healthy()["request_path"] == "compiled")


def test_metrics_and_healthz_say_where_each_request_went(served: Cluster) -> None:
    """Issue 18: /healthz said "compiled" and nothing showed the split."""
    for i in range(20):
        assert code_of(ask(served.udp, options(f"p{i}"))) == 200
    for i in range(4):
        invite = make_request("INVITE", "sip:bob@127.0.0.1", call_id=f"psdp{i}@console",
                              headers=[("Content-Type", "application/sdp")], body=OFFER)
        assert code_of(ask(served.udp, invite)) == 200
    health = served.healthy()
    paths = health["requests_by_path"]
    assert paths["compiled"] + paths["engine"] == 24
    status, exposition = served.call("GET", "/metrics")
    assert status == 200
    engine_lines = [line for line in exposition.splitlines()
                    if line.startswith("sipresponder_requests_by_path_total{")]
    if compiled_path_built(served):
        assert health["request_path"] == "compiled"
        assert paths["reasons"]["sdp-answer"] == 4
        assert set(paths["reasons"]) <= {"sdp-answer", "not-learned"}
        assert "sdp-answer" in health["requests_by_path_text"]
        assert health["requests_by_path_text"].startswith(
            f"compiled {round(100 * paths['compiled'] / 24)} %, engine ")
        assert ('sipresponder_requests_by_path_total{path="engine",reason="sdp-answer"} 4.0'
                in engine_lines)
        assert (f'sipresponder_requests_by_path_total{{path="compiled",reason="learned"}} '
                f'{float(paths["compiled"])}' in engine_lines)
    else:
        assert health["requests_by_path_text"] == "compiled 0 %, engine 100 %: no-extension 100 %"
    if served.workers > 1:
        assert [w["up"] for w in health["workers"]] == [True, True]


async def test_the_gatherer_follows_the_workers_only_while_a_stream_is_open(
        tmp_path: Path) -> None:
    """In one process: the console's stream under a Cluster gets each worker's entries
    as they come, and the gatherer's following ends with the stream."""
    import asyncio

    import aiohttp

    from sipresponder.ops.admin import Admin
    from sipresponder.ops.cluster import socket_path
    from sipresponder.ops.gatherer import Cluster
    from sipresponder.ops.worker import WorkerChannel
    from sipresponder.testing.api import Responder, as_scenario
    from tests.sipclient import udp_exchange

    async def next_entry(resp: aiohttp.ClientResponse) -> dict[str, Any]:
        while True:
            line = (await resp.content.readline()).decode()
            assert line, "the event stream ended"
            if line.startswith("event: entry"):
                data = (await resp.content.readline()).decode()
                parsed: dict[str, Any] = json.loads(data.removeprefix("data: "))
                return parsed

    responders = [await Responder(listen=["udp:127.0.0.1:0"]).start() for _ in range(2)]
    channels = [WorkerChannel(Admin(r, ""), i, socket_path(tmp_path, i))
                for i, r in enumerate(responders)]
    cluster = Cluster(as_scenario(None), "", 2, tmp_path)
    admin = Admin(cluster)
    try:
        for channel in channels:
            await channel.start()
        _, port = await admin.start()
        assert cluster.streams == 0
        async with aiohttp.ClientSession() as session:
            resp = await session.get(f"http://127.0.0.1:{port}/api/events",
                                     timeout=aiohttp.ClientTimeout(sock_read=15))
            for n, worker in enumerate([1, 0, 1]):
                await udp_exchange(responders[worker].address()[1], options(f"s{n}"))
                entry = await asyncio.wait_for(next_entry(resp), 15)
                assert (entry["worker"], entry["seq"]) == (worker, n + 1)
            follower = cluster._follower
            assert cluster.streams == 1 and follower is not None and not follower.done()
        # The page went away: the next event finds no reader, the stream ends, and the
        # gatherer stops asking the workers.
        await udp_exchange(responders[0].address()[1], options("after"))
        done, _ = await asyncio.wait({follower}, timeout=15)
        assert follower in done and follower.cancelled()
        assert cluster.streams == 0 and cluster._follower is None
    finally:
        await admin.close()
        await cluster.stop()
        for channel in channels:
            await channel.close()
        for responder in responders:
            await responder.stop()
