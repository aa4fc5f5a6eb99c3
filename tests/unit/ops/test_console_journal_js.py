"""The console's call summary (ops/console/journal.js ``summarize``) run by node: what the
list shows for a cancelled call and for Timer G's retransmissions. The browser tests
draw the ladder; this needs no browser, only node (skipped without it)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.unit.ops.test_console_page import CONSOLE

NODE_TIMEOUT = 30  # s


def summarize(entries: list[dict[str, Any]]) -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs); the test runs journal.js")
    script = (f"import {{ summarize }} from {json.dumps((CONSOLE / 'journal.js').as_uri())};\n"
              f"process.stdout.write(JSON.stringify(summarize({json.dumps(entries)})));\n")
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                          text=True, timeout=NODE_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    text: str = json.loads(done.stdout)
    return text


def test_a_cancelled_invite_and_its_cancel() -> None:
    assert summarize([
        {"method": "INVITE", "codes": [180, 487], "kind": "cancelled"},
        {"method": "CANCEL", "codes": [200], "kind": "answered"},
        {"method": "ACK", "codes": [], "kind": "absorbed"},
    ]) == "INVITE 180 487 (cancelled) · CANCEL 200 · ACK"


def test_timer_g_copies_are_counted_not_listed() -> None:
    assert summarize([
        {"method": "INVITE", "codes": [180, 200], "kind": "answered",
         "retransmitted": [False, False, True, True]},
        {"method": "INVITE", "codes": [], "kind": "retransmission", "retransmitted": [True]},
        {"method": "ACK", "codes": [], "kind": "absorbed"},
    ]) == "INVITE 180 200 (+2 retransmitted) · INVITE (retransmitted) · ACK"



def run_journal_js(expression: str) -> Any:
    """``expression`` evaluated by node with journal.js's exports in scope, as JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (apt-get install nodejs); the test runs journal.js")
    script = (f"import * as j from {json.dumps((CONSOLE / 'journal.js').as_uri())};\n"
              f"process.stdout.write(JSON.stringify({expression}));\n")
    done = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True,
                          text=True, timeout=NODE_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


HANGUP = [
    {"seq": 1, "method": "INVITE", "codes": [200], "kind": "answered", "direction": "received"},
    {"seq": 2, "method": "ACK", "codes": [], "kind": "absorbed"},  # an older server's: received
    {"seq": 3, "method": "BYE", "codes": [200], "kind": "sent", "direction": "sent"},
]


def test_a_request_the_responder_sent_has_an_arrow() -> None:
    assert summarize(HANGUP) == "INVITE 200 · ACK · ← BYE 200"


@pytest.mark.parametrize(("direction", "seqs"), [
    ("sent", [3]), ("received", [1, 2]), ("", [1, 2, 3])])
def test_the_direction_filter(direction: str, seqs: list[int]) -> None:
    entries = json.dumps(HANGUP)
    picked = run_journal_js(
        f"{entries}.filter(j.buildFilter({{ direction: {json.dumps(direction)} }}))"
        ".map((e) => e.seq)")
    assert picked == seqs
