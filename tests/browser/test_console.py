"""The web console in a real browser, used the way a developer uses it.

`sipresponder serve --admin --admin-token` runs as a subprocess; SIPp places an
INVITE -> 180 -> 200 -> ACK -> BYE call and a 486 call, sipsak sends an OPTIONS over
TCP, and a raw UDP socket sends a malformed request (a bad CSeq: rejected with 400)
whose Subject carries an HTML injection attempt. Headless chromium opens the console
with the token in its URL, and the tests read what the page shows: the ladder's arrows
in order with their labels and lanes, the message panel of a clicked (or Enter-ed)
arrow with its raw text and matched rule, filters that hide what they should, the
exports, and the scenario editor refusing a broken scenario (the responder keeps
answering the old way) and applying a fixed one (it answers the new way).

Every wait is an explicit WebDriverWait with a bounded timeout; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import WAIT, ConsoleServer, serving_console
from tests.conftest import ROOT, require_binary
from tests.interop.test_sipp import run_sipp
from tests.interop.test_sipsak import sipsak

pytestmark = [pytest.mark.browser, pytest.mark.interop]

SCREENSHOT = "console-ladder.png"


@dataclass
class Traffic:
    """What was sent, as the journal recorded it (for comparing with the page)."""

    invite_call: str  # Call-ID of the INVITE -> 180 -> 200 -> ACK -> BYE call
    invite_port: int  # SIPp's local UDP port: its lane
    busy_call: str
    options_call: str
    malformed_call: str


def api(server: ConsoleServer, path: str) -> Any:
    request = urllib.request.Request(server.base + path,
                                     headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.load(response)


def send_malformed(port: int, call_id: str) -> bytes:
    """A request with an unreadable CSeq and markup in a header, over UDP; the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        message = (
            "OPTIONS sip:broken@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{call_id}\r\n"
            "From: <sip:probe@127.0.0.1>;tag=probe\r\n"
            "To: <sip:broken@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: one OPTIONS\r\n"
            'Subject: <img src=x onerror="window.injected=1"><b>bold</b>\r\n'
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
        sock.sendto(message, ("127.0.0.1", port))
        return sock.recv(65535)


@pytest.fixture(scope="module")
def traffic(console_server: ConsoleServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Traffic:
    responder = console_server.responder
    work = tmp_path_factory.mktemp("sipp")
    run = run_sipp(work, "invite_bye.xml", "180", "u1", responder.udp_port, "-d", "100",
                   calls=1)
    assert run.returncode == 0, run.output
    run = run_sipp(work, "invite_busy.xml", "486", "u1", responder.udp_port, calls=1)
    assert run.returncode == 0, run.output
    result = sipsak(responder, "tcp", "-vv", "-s", "sip:200@127.0.0.1:{port}")
    assert result.returncode == 0, result.stdout + result.stderr
    malformed = f"console-malformed-{uuid.uuid4().hex[:8]}"
    answer = send_malformed(responder.udp_port, malformed)
    assert answer.startswith(b"SIP/2.0 400 "), answer[:200]

    entries = api(console_server, "/api/requests")["entries"]
    by_method: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_method.setdefault(entry["method"] or "", []).append(entry)
    [invite_180] = [e for e in by_method["INVITE"] if e["uri"].startswith("sip:180@")]
    [invite_486] = [e for e in by_method["INVITE"] if e["uri"].startswith("sip:486@")]
    [options] = [e for e in by_method["OPTIONS"] if e["call_id"] != malformed]
    assert len(entries) == 7, [(e["method"], e["codes"]) for e in entries]
    return Traffic(invite_180["call_id"], invite_180["remote"][1], invite_486["call_id"],
                   options["call_id"], malformed)


# -- helpers on the page ------------------------------------------------------------------
def wait_for(driver: Any, condition: Callable[[Any], Any], what: str,
             state: Callable[[], str] | None = None) -> Any:
    """An explicit bounded wait; on a timeout the message says what the page showed
    instead (``state``)."""
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # A node redrawn between finding and reading it is stale, or not there yet while
        # its panel loads: read again.
        return WebDriverWait(driver, WAIT, ignored_exceptions=(
            StaleElementReferenceException, IndexError)).until(condition)
    except TimeoutException:
        shown = f"; it shows {state()}" if state else ""
        raise AssertionError(f"page never showed {what} within {WAIT}s{shown}") from None


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def first(driver: Any, selector: str) -> Any:
    """The first element ``selector`` finds, once there is one (bounded wait)."""
    return wait_for(driver, lambda d: css(d, selector)[0], selector)


def arrows(driver: Any) -> list[dict[str, Any]]:
    """The ladder's arrows as drawn: data, label text, line geometry and style."""
    result: list[dict[str, Any]] = driver.execute_script("""
        return [...document.querySelectorAll('#ladder .arrow')].map((g) => {
          const line = g.querySelector('.line');
          const box = line.getBBox();
          const style = getComputedStyle(line);
          return {id: g.dataset.id, cls: g.dataset.class, from: g.dataset.from,
                  to: g.dataset.to, label: g.dataset.label, outcome: g.dataset.outcome,
                  text: g.querySelector('.label').textContent, callId: g.dataset.callId,
                  x1: +line.getAttribute('x1'), x2: +line.getAttribute('x2'), y: box.y,
                  dash: style.strokeDasharray, head: line.getAttribute('marker-end'),
                  again: g.dataset.retransmission};
        });""")
    return result


def call_rows(driver: Any) -> list[str]:
    """The Call-IDs listed, read in one script (the list is redrawn as events come)."""
    rows: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#calls li.call')].map((li) => li.dataset.callId);")
    return rows


def open_console(driver: Any, server: ConsoleServer, calls: int) -> None:
    """Load the page (token in the URL) and wait for the stream to deliver ``calls``."""
    driver.get(server.url)
    wait_for(driver, lambda d: css(d, "#conn")[0].text == "live", "the live event stream")
    wait_for(driver, lambda d: len(call_rows(d)) == calls, f"{calls} calls in the list")


def pick_call(driver: Any, call_id: str, arrow_count: int) -> list[dict[str, Any]]:
    [row] = [r for r in css(driver, "#calls li.call") if r.get_attribute("data-call-id") == call_id]
    row.find_element("css selector", "button").click()
    wait_for(driver, lambda d: css(d, "#ladder")[0].get_attribute("data-arrows") == str(arrow_count)
             and {a["callId"] for a in arrows(d)} == {call_id}, f"the ladder of call {call_id}")
    return arrows(driver)


def save_screenshot(driver: Any, tmp_path: Path, name: str = SCREENSHOT) -> Path:
    png = driver.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG"), "not a PNG screenshot"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 720), f"screenshot is {width}x{height}, not 1280x720"
    path = tmp_path / name
    path.write_bytes(png)
    if target := os.environ.get("SIPRESPONDER_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        (Path(target) / name).write_bytes(png)
    return path


# -- the tests ----------------------------------------------------------------------------
def test_the_ladder_shows_the_call_in_order_with_labels_and_lanes(
        browser: Any, console_server: ConsoleServer, traffic: Traffic, tmp_path: Path) -> None:
    open_console(browser, console_server, calls=4)
    drawn = pick_call(browser, traffic.invite_call, 6)

    assert [a["cls"] for a in drawn] == [
        "request", "provisional", "success", "absorbed", "request", "success"]
    labels = [a["label"] for a in drawn]
    assert labels[0].startswith("INVITE sip:180@127.0.0.1:"), labels
    assert labels[1:3] == ["180 Ringing", "200 OK"], labels
    assert labels[3].startswith("ACK sip:"), labels
    assert labels[4].startswith("BYE sip:"), labels
    assert labels[5] == "200 OK", labels
    assert all(a["text"].startswith(a["label"][:12]) for a in drawn), [a["text"] for a in drawn]
    # Top to bottom in time order, each row below the one before.
    ys = [a["y"] for a in drawn]
    assert ys == sorted(ys) and len(set(ys)) == len(ys), ys

    # Two lanes: SIPp's address (left) and the responder (right); requests go right,
    # responses come back left.
    peer = f"udp:127.0.0.1:{traffic.invite_port}"
    for arrow in drawn:
        request = arrow["cls"] in ("request", "absorbed")
        assert (arrow["from"], arrow["to"]) == ((peer, "responder") if request else ("responder", peer))
        assert (arrow["x1"] < arrow["x2"]) == request, arrow
    lanes = [lane.text for lane in css(browser, "#ladder .lane .lane-title")]
    assert lanes == [f"127.0.0.1:{traffic.invite_port}", "sipresponder"], lanes

    # Told apart by more than colour: the line style and the arrow head differ.
    styles = {a["cls"]: (a["dash"], a["head"]) for a in drawn}
    assert styles["provisional"][0] not in ("none", ""), styles
    assert styles["success"][0] == "none", styles
    assert styles["absorbed"][0] not in ("none", styles["provisional"][0]), styles
    assert len({head for _, head in styles.values()}) == 4, styles
    words = [w.text for w in css(browser, "#ladder .arrow .label .word")]
    assert "(provisional)" in words and "(ACK absorbed)" in words, words

    # The artifact: the ladder with the INVITE's message open beside it.
    first(browser, f'#ladder .arrow[data-id="{drawn[0]["id"]}"]').click()
    wait_for(browser, lambda d: css(d, "#detail .rule-toml"), "the INVITE's matched rule")
    assert len(arrows(browser)) == 6  # redrawn narrower, still whole
    shot = save_screenshot(browser, tmp_path)
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one


def test_clicking_an_arrow_shows_its_message_and_the_matched_rule(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    from selenium.webdriver.common.keys import Keys

    open_console(browser, console_server, calls=4)
    drawn = pick_call(browser, traffic.invite_call, 6)
    first(browser, f'#ladder .arrow[data-id="{drawn[0]["id"]}"]').click()
    wait_for(browser, lambda d: css(d, "#detail .start-line")
             and css(d, "#detail .start-line")[0].text.startswith("INVITE sip:180@"),
             "the INVITE's raw text")
    names = {n.text for n in css(browser, "#detail pre.raw .hname")}
    assert {"Via", "From", "To", "Call-ID", "CSeq", "Content-Type"} <= names, names
    raw = first(browser, "#detail pre.raw").text
    assert f"Call-ID: {traffic.invite_call}" in raw
    assert "m=audio" in raw  # the SDP body too
    table = {row.find_element("css selector", "th").text: row.find_element("css selector", "td").text
             for row in css(browser, "#detail table.headers tbody tr")}
    assert table["Call-ID"] == traffic.invite_call, table
    assert "status-code" in first(browser, "#detail .rule-name").text
    assert 'name = "status-code"' in first(browser, "#detail pre.rule-toml").text
    sent = [s.text for s in css(browser, "#detail ol.responses summary")]
    assert [s.split(" +")[0] for s in sent] == ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"], sent

    # The keyboard: the arrows are focusable and Enter opens one.
    target = first(browser, f'#ladder .arrow[data-id="{drawn[2]["id"]}"]')
    browser.execute_script("arguments[0].focus()", target)
    target.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: css(d, "#detail-title")[0].text == "Response SIP/2.0 200 OK",
             "the 200 OK after Enter")
    assert first(browser, "#detail .start-line").text == "SIP/2.0 200 OK"

    # The rule's link opens it in the scenario editor, caret on its table.
    first(browser, '#detail [data-action="show-rule"]').click()
    wait_for(browser, lambda d: css(d, "#tab-scenario")[0].is_displayed(), "the scenario tab")
    selected = browser.execute_script(
        "const t = document.querySelector('#scenario-text');"
        "return t.value.slice(t.selectionStart, t.selectionEnd);")
    assert selected == "[[rule]]", selected
    following = browser.execute_script(
        "const t = document.querySelector('#scenario-text'); return t.value.slice(t.selectionEnd, t.selectionEnd + 40);")
    assert 'name = "status-code"' in following


def test_a_malformed_request_is_shown_as_rejected_and_as_text(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    open_console(browser, console_server, calls=4)
    drawn = pick_call(browser, traffic.malformed_call, 2)
    assert [a["cls"] for a in drawn] == ["request", "rejected"]
    assert drawn[0]["outcome"] == "rejected"
    assert drawn[1]["label"].startswith("400 "), drawn
    first(browser, f'#ladder .arrow[data-id="{drawn[0]["id"]}"]').click()
    wait_for(browser, lambda d: css(d, "#detail .start-line")
             and css(d, "#detail .start-line")[0].text.startswith("OPTIONS sip:broken@"),
             "the malformed request's raw text")
    # Attacker-controlled text is text: the markup shows as written and never runs.
    assert '<img src=x onerror="window.injected=1"><b>bold</b>' in first(browser, "#detail pre.raw").text
    assert not css(browser, "#detail img, #detail b, #calls img, #ladder img")
    assert browser.execute_script("return window.injected === undefined")


def test_filters_hide_what_they_should(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    open_console(browser, console_server, calls=4)
    everything = {traffic.invite_call, traffic.busy_call, traffic.options_call,
                  traffic.malformed_call}
    assert set(call_rows(browser)) == everything

    def only(calls: set[str], what: str) -> None:
        wait_for(browser, lambda d: set(call_rows(d)) == calls
                 and {a["callId"] for a in arrows(d)} == calls, what,
                 lambda: f"calls {call_rows(browser)}")

    method = first(browser, "#filter-method")
    method.send_keys("OPTIONS")
    only({traffic.options_call, traffic.malformed_call}, "only the OPTIONS calls")
    assert all(not a["label"].startswith(("INVITE", "ACK", "BYE")) for a in arrows(browser))

    from selenium.webdriver.support.ui import Select

    Select(first(browser, "#filter-status")).select_by_value("4xx")
    only({traffic.malformed_call}, "only the OPTIONS with a 4xx")

    first(browser, "#filters-reset").click()
    only(everything, "every call after Reset")

    first(browser, "#filter-text").send_keys("Busy Here")
    only({traffic.busy_call}, "only the call answered 486 Busy Here")
    first(browser, "#filters-reset").click()
    first(browser, "#filter-source").send_keys("tcp")
    only({traffic.options_call}, "only sipsak's TCP call")
    first(browser, "#filters-reset").click()
    only(everything, "every call again")


def test_exports_are_a_pcap_a_standalone_svg_and_json(
        browser: Any, console_server: ConsoleServer, traffic: Traffic, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior",
                            {"behavior": "allow", "downloadPath": str(downloads)})
    open_console(browser, console_server, calls=4)
    pick_call(browser, traffic.busy_call, 3)

    def downloaded(name: str) -> bytes:
        path = downloads / name
        wait_for(browser, lambda _: path.exists() and path.stat().st_size > 0, f"{name} saved")
        return path.read_bytes()

    first(browser, "#export-svg").click()
    svg = ET.fromstring(downloaded("sipresponder-ladder.svg"))
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.tag == f"{ns}svg"
    assert svg.find(f"{ns}style") is not None, "the SVG carries its own styles"
    labels = [g.get("data-label") for g in svg.iter(f"{ns}g") if "arrow" in (g.get("class") or "").split()]
    assert labels[0].startswith("INVITE sip:486@") and "486 Busy Here" in labels, labels

    first(browser, "#export-json").click()
    selection = json.loads(downloaded("sipresponder-selection.json"))
    assert {e["call_id"] for e in selection["entries"]} == {traffic.busy_call}
    assert [e["method"] for e in selection["entries"]] == ["INVITE", "ACK"]

    first(browser, "#export-pcap").click()  # with the token: fetched, then saved
    pcap = downloaded("sipresponder.pcap")
    assert pcap[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x0a\x0d\x0d\x0a"), pcap[:4]
    assert b"486 Busy Here" in pcap and traffic.options_call.encode() not in pcap


def test_a_broken_scenario_is_refused_and_a_fixed_one_applied(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    from selenium.webdriver.common.keys import Keys

    responder = console_server.responder

    def options_answer() -> str:
        result = sipsak(responder, "udp", "-vv", "-s", "sip:127.0.0.1:{port}")
        out = result.stdout + result.stderr
        for line in out.splitlines():
            if line.startswith("SIP/2.0 "):
                return line.strip()
        raise AssertionError(f"sipsak got no status line:\n{out}")

    assert options_answer().startswith("SIP/2.0 200 ")
    browser.get(console_server.url + "#scenario")
    editor = wait_for(browser, lambda d: css(d, "#scenario-text")[0]
                      if css(d, "#scenario-text")[0].get_attribute("value") else None,
                      "the running scenario in the editor")
    assert editor.get_attribute("value") == console_server.scenario.read_text()
    status = first(browser, "#scenario-status")

    broken = '[[rule]]\nname = "options"\nmatch = { method = "OPTIONS" }\ncode = 99\n'
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(broken)
    wait_for(browser, lambda d: status.get_attribute("data-state") == "error", "the error")
    assert status.text.startswith("line 4, column 1: rule 'options' (#1): field 'code': 99"), status.text
    assert [c.text for c in css(browser, "#scenario-gutter .error")] == ["4"]
    assert first(browser, "#scenario-mark").is_displayed()
    first(browser, "#scenario-apply").click()
    wait_for(browser, lambda d: "Not applied" in status.text, "the refused Apply")
    assert options_answer().startswith("SIP/2.0 200 "), "the broken scenario was applied"

    # Fix the one line: the error goes, the diff shows the change, Apply swaps it in.
    editor.send_keys(Keys.CONTROL, Keys.END)  # each send_keys releases Ctrl at its end
    editor.send_keys(Keys.BACKSPACE * 3, "480\n")
    wait_for(browser, lambda d: status.get_attribute("data-state") == "ok",
             "a valid scenario", lambda: f"{status.text!r} for {editor.get_attribute('value')!r}")
    assert not css(browser, "#scenario-gutter .error")
    added = [line.text for line in css(browser, "#scenario-diff .dadd")]
    assert "+code = 480" in added, added
    first(browser, "#scenario-apply").click()
    wait_for(browser, lambda d: status.text.startswith("Applied"), "the applied scenario")
    assert options_answer().startswith("SIP/2.0 480 ")
    wait_for(browser, lambda d: [r.get_attribute("data-rule") for r in css(d, "#rules-body tr")][:1]
             == ["options"], "the new rule in the rules table")
    fixed = broken.replace("code = 99", "code = 480")
    request = urllib.request.Request(console_server.base + "/api/scenario", headers={
        "Authorization": f"Bearer {console_server.token}"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.read().decode() == fixed


def test_a_later_response_updates_the_call_and_its_ladder(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    """A final response sent 2 s after the 180 reaches the page as an ``update`` event:
    the call first reads OPTIONS 180, then OPTIONS 180 200, and its ladder grows."""
    put_scenario(console_server, '[[rule]]\nname = "slow"\nmatch = { user = "slow" }\n'
                 'provisional = [180]\ncode = 200\ndelay = 2.0\n\n[default]\ncode = 480\n')
    open_console(browser, console_server, calls=len(call_rows_now(browser, console_server)))
    binary = require_binary("sipsak")
    peer = subprocess.Popen(
        [binary, "-s", f"sip:slow@127.0.0.1:{console_server.responder.udp_port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def summary_of_slow(d: Any) -> str:
            text: str = d.execute_script(
                "const rows = [...document.querySelectorAll('#calls li.call')]"
                ".filter((li) => li.textContent.includes('OPTIONS 180'));"
                "return rows.length ? rows[0].querySelector('.call-summary').textContent : '';")
            return text

        wait_for(browser, lambda d: summary_of_slow(d) == "OPTIONS 180", "the call before its final")
        row = first(browser, "#calls li.call:last-child")
        call_id = row.get_attribute("data-call-id")
        drawn = pick_call(browser, call_id, 2)
        assert [a["cls"] for a in drawn] == ["request", "provisional"], drawn
        assert drawn[0]["label"].startswith("OPTIONS sip:slow@127.0.0.1:"), drawn
        assert drawn[1]["label"] == "180 Ringing", drawn
        wait_for(browser, lambda d: summary_of_slow(d) == "OPTIONS 180 200", "the call after its final")
        wait_for(browser, lambda d: [a["label"] for a in arrows(d)][2:] == ["200 OK"], "the 200 in the ladder")
        delta = browser.execute_script(
            "return [...document.querySelectorAll('#ladder .arrow .delta')].pop().textContent")
        assert delta.startswith("Δ 2.0") or delta.startswith("Δ 1.99"), delta
    finally:
        assert peer.wait(WAIT) == 0  # sipsak got its 200


WIRE_SCENARIO = """\
[settings]
timer_t1 = 0.05

[[rule]]
name = "ring"
match = { method = "INVITE", user = "ring" }
provisional = [180]
action = "provisional-only"

[[rule]]
name = "answer"
match = { method = "INVITE", user = "answer" }
provisional = [180]
code = 200

[default]
code = 200
"""


def wire_calls(port: int) -> tuple[str, str]:
    """INVITE, 180, CANCEL, 200, 487, ACK; then INVITE, 180, 200 and Timer G's copies
    of the 200 until the client ACKs after the third. The two Call-IDs."""
    from tests.sipclient import make_request, parse_response

    tag = uuid.uuid4().hex[:8]
    cancelled, repeated = f"console-cancel-{tag}", f"console-timer-g-{tag}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(("127.0.0.1", port))
        via = f"127.0.0.1:{sock.getsockname()[1]}"

        def send(method: str, user: str, call_id: str, branch: str, to_tag: str | None = None,
                 expect: int = 0) -> list[Any]:
            sock.send(make_request(method, f"sip:{user}@127.0.0.1", via_host=via,
                                   call_id=call_id, branch=branch, to_tag=to_tag))
            return [parse_response(sock.recv(65535)) for _ in range(expect)]

        assert [r.code for r in send("INVITE", "ring", cancelled, f"z9hG4bK-{tag}c",
                                     expect=1)] == [180]
        got = send("CANCEL", "ring", cancelled, f"z9hG4bK-{tag}c", expect=2)
        assert sorted(r.code for r in got) == [200, 487]
        final = next(r for r in got if r.code == 487)
        send("ACK", "ring", cancelled, f"z9hG4bK-{tag}c", final.get("To").split("tag=")[1])
        got = send("INVITE", "answer", repeated, f"z9hG4bK-{tag}g", expect=4)
        assert [r.code for r in got] == [180, 200, 200, 200]
        send("ACK", "answer", repeated, f"z9hG4bK-{tag}a", got[1].get("To").split("tag=")[1])
    return cancelled, repeated


def test_a_cancelled_call_and_timer_g_copies_are_drawn_as_the_wire_had_them(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    """The CANCEL's 487 once, after its 200, and a CANCELLED badge on the INVITE; each
    copy of a 200 sent again an arrow of its own, drawn and labelled as a retransmission."""
    put_scenario(console_server, WIRE_SCENARIO)
    cancelled, repeated = wire_calls(console_server.responder.udp_port)
    wait_for(browser, lambda d: sum(e["method"] == "ACK" and e["call_id"] in (cancelled, repeated)
                                    for e in api(console_server, "/api/requests")["entries"]) == 2,
             "both ACKs in the journal")
    entries = api(console_server, "/api/requests")["entries"]
    [invite] = [e for e in entries if e["call_id"] == repeated and e["method"] == "INVITE"]
    open_console(browser, console_server, calls=len(call_rows_now(browser, console_server)))

    drawn = pick_call(browser, cancelled, 6)
    assert [(a["cls"], a["label"].split(" ")[0]) for a in drawn] == [
        ("request", "INVITE"), ("provisional", "180"), ("request", "CANCEL"),
        ("success", "200"), ("client-error", "487"), ("absorbed", "ACK")], drawn
    badges = [b.text for b in css(browser, '#ladder .badge[data-outcome="cancelled"] text')]
    assert badges == ["CANCELLED"], badges

    copies = len(invite["responses"]) - 2  # Timer G's, each a frame on the wire
    assert copies >= 2 and invite["retransmitted"] == [False, False] + [True] * copies
    drawn = pick_call(browser, repeated, 1 + len(invite["responses"]) + 1)
    again = [a for a in drawn if a["again"] == "true"]
    assert len(again) == copies and all(a["cls"] == "retransmission" for a in again), drawn
    assert all(a["label"] == "200 OK" and "(retransmission)" in a["text"] for a in again), drawn
    assert again[0]["dash"] not in ("none", ""), again[0]
    assert [a["again"] for a in drawn[:3]] == ["false"] * 3, drawn


def put_scenario(server: ConsoleServer, text: str) -> None:
    request = urllib.request.Request(
        server.base + "/api/scenario", data=text.encode(), method="PUT",
        headers={"Authorization": f"Bearer {server.token}",
                 "Content-Type": "application/toml"})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 200


def test_the_counters_of_a_stateful_rule_and_their_reset(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    put_scenario(console_server, '[[rule]]\nname = "flaky"\nmatch = { user = "flaky" }\n'
                 'sequence = [{ code = 503, retry_after = 1 }, { code = 200 }]\n\n'
                 '[default]\ncode = 404\n')
    result = sipsak(console_server.responder, "udp", "-s", "sip:flaky@127.0.0.1:{port}")
    assert result.returncode == 1, "the first request of the sequence gets 503"
    browser.get(console_server.url + "#scenario")
    wait_for(browser, lambda d: [[c.text for c in r.find_elements("css selector", "td")]
                                 for r in css(d, '#state-box [data-table="counters"] tbody tr')]
             == [["1", "global", "", "1"]], "the sequence's counter")
    hits = wait_for(browser, lambda d: {r.get_attribute("data-rule"): r.find_element(
        "css selector", ".hits").text for r in css(d, "#rules-body tr")}, "the rules")
    assert hits == {"flaky": "1", "": "0"}, hits
    first(browser, "#state-reset").click()
    wait_for(browser, lambda d: "No stateful rule holds state" in first(d, "#state-box").text,
             "the counters after Reset")
    assert api(console_server, "/api/state") == {"states": [], "counters": []}


def test_metrics_are_charts(browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    browser.get(console_server.url + "#metrics")
    wait_for(browser, lambda d: len(css(d, "#tab-metrics svg.chart")) == 3, "three charts")
    legend = " ".join(li.text for li in css(browser, "#chart-requests .legend-list li"))
    assert "INVITE" in legend and "OPTIONS" in legend, legend
    bars = css(browser, "#chart-latency rect.bar")
    assert bars, "no histogram bars"


def test_the_keyboard_moves_between_tabs_and_calls(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    from selenium.webdriver.common.keys import Keys

    open_console(browser, console_server, calls=len(call_rows_now(browser, console_server)))

    def selected_tab() -> str:
        tab: str = browser.execute_script(
            "return document.querySelector('[role=tab][aria-selected=true]').id")
        return tab

    first(browser, "#tab-button-journal").send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: selected_tab() == "tab-button-scenario", "the Scenario tab")
    assert browser.switch_to.active_element.get_attribute("id") == "tab-button-scenario"
    browser.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: selected_tab() == "tab-button-metrics", "the Metrics tab")
    browser.switch_to.active_element.send_keys(Keys.HOME)
    wait_for(browser, lambda d: first(d, "#tab-journal").is_displayed(), "the Journal tab")

    rows = call_rows(browser)
    first(browser, "#calls li.call .call-button").send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert focused.find_element("xpath", "..").get_attribute("data-call-id") == rows[1]
    focused.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: {a["callId"] for a in arrows(d)} == {rows[1]},
             "the second call's ladder after Enter")


def call_rows_now(browser: Any, server: ConsoleServer) -> set[str | None]:
    """The calls the journal holds now (what the list should show)."""
    return {e["call_id"] or f"#{e['seq']}" for e in api(server, "/api/requests")["entries"]}


CONTRAST_SCRIPT = """
const rgb = (text) => text.match(/[0-9.]+/g).slice(0, 3).map(Number);
const lum = ([r, g, b]) => {
  const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const background = rgb(getComputedStyle(document.querySelector('#ladder svg .bg')).fill);
const page = rgb(getComputedStyle(document.body).backgroundColor);
const found = [];
for (const node of document.querySelectorAll('#ladder svg text, #ladder svg tspan')) {
  if (!node.textContent.trim()) continue;
  const where = node.closest('.badge') ? null : background;  // badges have their own fill
  if (!where) continue;
  found.push([node.closest('[data-class]') ? node.closest('[data-class]').dataset.class : node.getAttribute('class'),
              node.textContent.slice(0, 30), ratio(rgb(getComputedStyle(node).fill), where)]);
}
for (const node of document.querySelectorAll('#calls .call-summary, #calls .call-meta span')) {
  found.push(['list', node.textContent.slice(0, 30), ratio(rgb(getComputedStyle(node).color), page)]);
}
return {dark: lum(background) < 0.2, texts: found};
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_is_readable_in_light_and_dark_mode(
        browser: Any, console_server: ConsoleServer, traffic: Traffic, scheme: str,
        tmp_path: Path) -> None:
    """Every label of the ladder and the call list has WCAG AA contrast (4.5:1) with its
    background, in the scheme the system prefers."""
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": scheme}]})
    try:
        open_console(browser, console_server, calls=len(call_rows_now(browser, console_server)))
        wait_for(browser, lambda d: int(first(d, "#ladder").get_attribute("data-arrows") or 0) > 0,
                 "the ladder of every call")
        seen = browser.execute_script(CONTRAST_SCRIPT)
        assert seen["dark"] == (scheme == "dark"), seen["dark"]
        poor = [text for text in seen["texts"] if text[2] < 4.5]
        assert not poor, f"text below 4.5:1 in {scheme} mode: {poor}"
        kinds = {text[0] for text in seen["texts"]}
        assert {"request", "provisional", "success", "client-error", "absorbed", "rejected",
                "list"} <= kinds, kinds
        if scheme == "dark":
            save_screenshot(browser, tmp_path, "console-ladder-dark.png")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


MODULES_SCRIPT = r"""
const [done, token] = [arguments[arguments.length - 1], arguments[0]];
const load = (name) => import(`/console/${name}.js?token=${token}`);
Promise.all([load("diff"), load("journal"), load("message")]).then(([diff, journal, message]) => {
  const ops = (a, b) => diff.lineDiff(a, b).map((d) => d.op + d.text);
  const long = Array.from({length: 20}, (_, i) => `line ${i}`);
  const changed = [...long];
  changed[10] = "changed";
  const filter = journal.buildFilter({uri: "sip:486@*", status: "4xx"});
  const entry = (uri, codes, extra = {}) => ({seq: 1, uri, codes, method: "INVITE", raw: "", ...extra});
  const pre = message.rawMessage("INVITE sip:a@b SIP/2.0\r\nVia: x\r\n <b>folded</b>\r\n\r\nv=0");
  done({
    replace: ops("a\nb\nc", "a\nx\nc"),
    insert: ops("a\nc", "a\nb\nc"),
    same: ops("a", "a"),
    hunks: diff.hunks(diff.lineDiff(long.join("\n"), changed.join("\n")), 2).map((d) => d.op + d.text),
    filter: [filter(entry("sip:486@127.0.0.1", [100, 486])), filter(entry("sip:486@x", [200])),
             filter(entry("sip:200@x", [486]))],
    noAnswer: journal.buildFilter({status: "none"})(entry("sip:x", [])),
    rule: [journal.buildFilter({rule: "busy"})(entry("x", [], {rule: "rule 'busy' (#1)"})),
           journal.buildFilter({rule: "(none)"})(entry("x", [], {rule: "rule 'busy' (#1)"}))],
    summary: journal.summarize([entry("x", [], {method: "OPTIONS", kind: "not-answered"}),
                                entry("x", [], {method: "OPTIONS", kind: "not-answered"}),
                                entry("x", [180, 200], {kind: "answered"})]),
    start: pre.querySelector(".start-line").textContent,
    names: [...pre.querySelectorAll(".hname")].map((n) => n.textContent),
    markup: pre.querySelectorAll("b").length,
    headers: message.parseHeaders("SIP/2.0 200 OK\r\nVia: a\r\n  b\r\nTo: c\r\n\r\nbody: no"),
  });
}, (error) => done({error: String(error)}));
"""


def test_the_page_modules_diff_filter_and_mark_up(
        browser: Any, console_server: ConsoleServer) -> None:
    """The page's own logic, run in the browser as the page runs it: the LCS line diff,
    the filters, the call summary and the raw-message markup."""
    browser.get(console_server.url)
    got = browser.execute_async_script(MODULES_SCRIPT, console_server.token)
    assert "error" not in got, got
    assert got["replace"] == [" a", "-b", "+x", " c"]
    assert got["insert"] == [" a", "+b", " c"]
    assert got["same"] == [" a"]
    assert got["hunks"] == ["…8 unchanged lines", " line 8", " line 9", "-line 10", "+changed",
                            " line 11", " line 12", "…7 unchanged lines"]
    assert got["filter"] == [True, False, False]
    assert got["noAnswer"] is True
    assert got["rule"] == [True, False]
    assert got["summary"] == "OPTIONS (no answer) ×2 · INVITE 180 200"
    assert got["start"] == "INVITE sip:a@b SIP/2.0"
    assert got["names"] == ["Via"]  # a folded line is no header name
    assert got["markup"] == 0  # "<b>folded</b>" stayed text
    assert got["headers"] == [["Via", "a b"], ["To", "c"]]


# Last: it empties the journal the tests above read.
def test_pause_holds_new_entries_back_and_clear_empties_the_journal(
        browser: Any, console_server: ConsoleServer, traffic: Traffic) -> None:
    browser.get(console_server.url + "#journal")
    wait_for(browser, lambda d: css(d, "#conn")[0].text == "live", "the live event stream")
    before = len(api(console_server, "/api/requests")["entries"])
    calls = len(call_rows_now(browser, console_server))
    wait_for(browser, lambda d: len(call_rows(d)) == calls, "every call")
    shown = call_rows(browser)

    first(browser, "#pause").click()
    # (the scenario test left OPTIONS answered 480: sipsak's exit status is 1 for that)
    result = sipsak(console_server.responder, "udp", "-s", "sip:200@127.0.0.1:{port}")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    wait_for(browser, lambda d: css(d, "#pending")[0].text == "paused: 1 new", "the held entry")
    assert call_rows(browser) == shown, "a paused list changed"
    assert len(api(console_server, "/api/requests")["entries"]) == before + 1

    first(browser, "#pause").click()  # Resume
    wait_for(browser, lambda d: len(call_rows(d)) == len(shown) + 1, "the held call after Resume")

    first(browser, "#clear").click()
    wait_for(browser, lambda d: not call_rows(d) and css(d, "#calls .empty"), "an empty list")
    assert api(console_server, "/api/requests")["entries"] == []
    assert css(browser, "#ladder .empty-ladder")


def test_without_a_token_the_console_works_the_same(
        browser: Any, tmp_path: Path) -> None:
    """`serve --admin` without --admin-token, the way most open it: no import map, plain
    links; the page still goes live and draws what arrives."""
    scenario = tmp_path / "scenario.toml"
    scenario.write_text((ROOT / "scenarios" / "default.toml").read_text())
    with serving_console(scenario, token=None) as plain:
        browser.get(plain.url)
        wait_for(browser, lambda d: first(d, "#conn").text == "live", "the live event stream")
        assert not css(browser, 'script[type="importmap"]')
        result = sipsak(plain.responder, "udp", "-s", "sip:200@127.0.0.1:{port}")
        assert result.returncode == 0, result.stdout + result.stderr
        wait_for(browser, lambda d: len(call_rows(d)) == 1
                 and first(d, "#ladder").get_attribute("data-arrows") == "2", "the OPTIONS")
        assert [a["label"] for a in arrows(browser)][1] == "200 OK"
        assert first(browser, "#export-pcap").get_attribute("href") == f"{plain.base}/api/requests.pcap"


def test_without_its_token_the_console_asks_for_it(
        browser: Any, console_server: ConsoleServer) -> None:
    """Behind a token, a browser that opens / without it gets a form (not a raw JSON
    401); typing the token in opens the live console."""
    browser.get(console_server.base + "/console")
    field = first(browser, "input#token")
    assert "asks for its token" in browser.page_source
    field.send_keys(console_server.token)
    field.submit()
    wait_for(browser, lambda d: first(d, "#conn").text == "live", "the live event stream",
             lambda: browser.current_url)
    assert browser.current_url.startswith(f"{console_server.base}/?token={console_server.token}")


# -- issue 18: the editor counts, places and warns; the badge and the title read right ----
QUIET = """\
# the silent one
[[rule]]
name = "silent"
match = { user = "silent" }
action = "none"

# answers everything else
[[rule]]
name = "ok"
code = 200
"""


def send_unanswered(port: int) -> None:
    """An OPTIONS to the rule that never answers (nothing comes back to wait for)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        local = sock.getsockname()[1]
        sock.sendto((
            "OPTIONS sip:silent@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKquiet1\r\n"
            "From: <sip:probe@127.0.0.1>;tag=q\r\nTo: <sip:silent@127.0.0.1>\r\n"
            "Call-ID: console-quiet-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))


def test_the_no_answer_badge_the_rule_panel_and_the_editors_counts(
        browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    scenario = tmp_path / "quiet.toml"
    scenario.write_text(QUIET)
    with serving_console(scenario, token=None) as server:
        browser.get(server.url)
        wait_for(browser, lambda d: first(d, "#conn").text == "live", "the live event stream")
        send_unanswered(server.responder.udp_port)
        wait_for(browser, lambda d: first(d, "#ladder .badge"), "the NO ANSWER badge")
        assert first(browser, "#ladder-title").text == "Ladder: the 1 call"  # not "all 1 call"
        # The badge is painted to its right end: the point just inside it hits it, where
        # the SVG's box used to clip it.
        hit = browser.execute_script("""
            const rect = document.querySelector('#ladder .badge rect').getBoundingClientRect();
            const at = document.elementFromPoint(rect.right - 1.5, (rect.top + rect.bottom) / 2);
            return !!(at && at.closest('.badge'));""")
        assert hit, "the NO ANSWER badge is clipped at its right end"
        assert first(browser, "#ladder .badge text").text == "NO ANSWER"

        # The matched rule's panel: its own comment, not the next rule's.
        first(browser, "#ladder .arrow").click()
        toml = wait_for(browser, lambda d: first(d, "#detail pre.rule-toml").text, "the rule")
        assert toml.startswith("# the silent one\n[[rule]]\nname = \"silent\""), toml
        assert "answers everything else" not in toml

        # The editor: a key in an inline table is placed at its column, every error shown.
        browser.get(server.url + "#scenario")
        editor = wait_for(browser, lambda d: css(d, "#scenario-text")[0]
                          if css(d, "#scenario-text")[0].get_attribute("value") else None,
                          "the running scenario in the editor")
        status = first(browser, "#scenario-status")
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys('[[rule]]\nname = "a"\nmatch = { method = "OPTIONS", usr = "x" }\n'
                         "cdoe = 1\n")
        wait_for(browser, lambda d: status.get_attribute("data-state") == "error", "the errors")
        assert status.text == (
            "line 4, column 1: rule 'a' (#1): field 'cdoe': unknown key (did you mean "
            "'code'?) (1 more error: line 3, column 31: rule 'a' (#1): field 'match.usr': "
            "unknown condition (did you mean 'user'?))"), status.text
        assert sorted(c.text for c in css(browser, "#scenario-gutter .error")) == ["3", "4"]

        # Valid with a dead rule: counted as Apply counts, and the warning shown.
        editor.send_keys(Keys.CONTROL, "a")
        editor.send_keys('[[rule]]\nname = "all"\ncode = 200\n\n'
                         '[[rule]]\nname = "dead"\nmatch = { method = "BYE" }\ncode = 486\n')
        warning = ("1 warning: rule 'dead' (#2) can never match: rule 'all' (#1) matches "
                   "everything it would")
        wait_for(browser, lambda d: status.get_attribute("data-state") == "warn",
                 "the warning", lambda: repr(status.text))
        assert status.text == f"Valid (2 rules); not applied yet. {warning}"
        first(browser, "#scenario-apply").click()
        wait_for(browser, lambda d: status.text.startswith("Applied"), "the applied scenario")
        assert status.text == f"Applied: 2 rules running. {warning}"
