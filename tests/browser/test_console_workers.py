"""The web console under ``serve --workers 2 --admin``, read in a real browser exactly as
with one process (issue 18: it showed the snapshot and then nothing live, no rules, and
zero metrics).

The same checks run against one process and against two workers: requests from many
source ports (so that both workers answer some) appear live in the call list, a later
response updates its call, the rules' hits and the sequence counters are every
worker's, and the metrics tab charts them and says where the requests went (the
compiled path or the engine, and why). Every wait is bounded; nothing sleeps.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import WAIT, ConsoleServer, serving_console
from tests.browser.test_console import call_rows, css, first, wait_for
from tests.sipclient import make_request

pytestmark = [pytest.mark.browser, pytest.mark.interop]

SCENARIO = """\
[[rule]]
name = "ring"
match = { user = "ring" }
provisional = [180]
delay = 0.5
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


@pytest.fixture(scope="module", params=[1, 2], ids=["single", "workers"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ConsoleServer]:
    scenario = tmp_path_factory.mktemp("workers-console") / "scenario.toml"
    scenario.write_text(SCENARIO)
    with serving_console(scenario, workers=request.param) as server:
        yield server


def api(server: ConsoleServer, path: str) -> Any:
    request = urllib.request.Request(server.base + path,
                                     headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.load(response)


def ask(server: ConsoleServer, message: bytes, answers: int = 1) -> list[bytes]:
    """One request from a fresh source port (the kernel's hash spreads them over the
    workers), and its first ``answers`` responses."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(message, ("127.0.0.1", server.responder.udp_port))
        return [sock.recv(65535) for _ in range(answers)]


def call_summary(driver: Any, call_id: str) -> str:
    text: str = driver.execute_script(
        "const li = [...document.querySelectorAll('#calls li.call')]"
        ".find((li) => li.dataset.callId === arguments[0]);"
        "return li ? li.querySelector('.call-summary').textContent : '';", call_id)
    return text


def test_the_console_is_live_and_adds_up_every_worker(
        browser: Any, served: ConsoleServer) -> None:
    browser.get(served.url)
    wait_for(browser, lambda d: css(d, "#conn")[0].text == "live", "the live event stream")
    assert call_rows(browser) == []
    # Sent after the page opened: only the live stream can bring them.
    for i in range(24):
        [answer] = ask(served, make_request("OPTIONS", "sip:alice@127.0.0.1",
                                            call_id=f"live-{i}"))
        assert answer.startswith(b"SIP/2.0 200 ")
    for i in range(2):
        [answer] = ask(served, make_request(
            "INVITE", "sip:bob@127.0.0.1", call_id=f"sdp-{i}",
            headers=[("Content-Type", "application/sdp")], body=OFFER))
        assert answer.startswith(b"SIP/2.0 200 ")
    for i in range(3):
        [answer] = ask(served, make_request("OPTIONS", "sip:counted@127.0.0.1",
                                            call_id=f"counted-{i}"))
        assert answer.startswith(b"SIP/2.0 486 ")
    wanted = {f"live-{i}" for i in range(24)} | {"sdp-0", "sdp-1"} | {
        f"counted-{i}" for i in range(3)}
    wait_for(browser, lambda d: set(call_rows(d)) == wanted, "the 29 calls sent",
             lambda: str(sorted(call_rows(browser))))
    if "--workers" in list(served.responder.proc.args):  # type: ignore[arg-type]
        workers = {e["worker"] for e in api(served, "/api/requests")["entries"]}
        assert workers == {0, 1}, "every request went to one worker (a chance of 2**-28)"

    # A later response reaches the page as an update of its call.
    answers = ask(served, make_request("OPTIONS", "sip:ring@127.0.0.1", call_id="ringing"),
                  answers=2)
    assert [a[:11] for a in answers] == [b"SIP/2.0 180", b"SIP/2.0 200"]
    wait_for(browser, lambda d: call_summary(d, "ringing") == "OPTIONS 180 200",
             "the ringing call with its final response",
             lambda: call_summary(browser, "ringing"))

    # The rules' hits and the sequence counters: every worker's.
    browser.get(served.url + "#scenario")
    hits = wait_for(browser, lambda d: {
        r.get_attribute("data-rule"): r.find_element("css selector", ".hits").text
        for r in css(d, "#rules-body tr")} or None, "the rules")
    assert hits == {"ring": "1", "counted": "3", "options": "24", "invite": "2", "": "0"}
    rows = wait_for(browser, lambda d: [
        [c.text for c in r.find_elements("css selector", "td")]
        for r in css(d, '#state-box [data-table="counters"] tbody tr')] or None,
        "the sequence's counters")
    assert sorted(row[2] for row in rows) == ["counted-0", "counted-1", "counted-2"]

    # The metrics: charts of every worker's counts, and where the requests went.
    browser.get(served.url + "#metrics")
    wait_for(browser, lambda d: len(css(d, "#tab-metrics svg.chart")) == 3, "three charts")
    status = first(browser, "#metrics-status").text
    assert "30 requests" in status and "31 responses" in status, status
    legend = " ".join(li.text for li in css(browser, "#chart-requests .legend-list li"))
    assert "INVITE" in legend and "OPTIONS" in legend, legend
    paths = wait_for(browser, lambda d: first(d, "#metrics-paths").text or None,
                     "where the requests went")
    health = api(served, "/healthz")
    assert paths == f"Request path: {health['requests_by_path_text']}"
    if health["request_path"] == "compiled":
        assert "sdp-answer" in paths and "stateful" in paths, paths
    else:
        assert paths.endswith("no-extension 100 %"), paths
