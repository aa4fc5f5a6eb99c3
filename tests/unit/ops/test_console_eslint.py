"""ESLint over the web console's JavaScript (the modules, and index.html's inline
script, which ``npm run lint`` cannot see), configured by eslint.config.js at the repo
root (browser ES modules, the recommended rules and a few more) and pinned by
package.json and package-lock.json. ``npm ci`` at the repo root installs it (.ci/run
does, then ``npm run lint`` before the tests); without it these tests skip with
the reason, and fail when CI=true."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.ops.test_console_page import CONSOLE, MODULES

ROOT = Path(__file__).resolve().parents[3]
ESLINT = ROOT / "node_modules" / "eslint" / "bin" / "eslint.js"
ESLINT_TIMEOUT = 50  # s, under pytest's 60: a cold start on a loaded machine takes a few


def eslint(*args: str, stdin: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """ESLint's exit status and its JSON report, one object per file linted."""
    node = shutil.which("node")
    if node is None or not ESLINT.is_file():
        message = ("ESLint is not installed (apt-get install nodejs npm, then `npm ci` at "
                   "the repo root); the test runs it")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run([node, str(ESLINT), "--format", "json", *args], cwd=ROOT,
                          input=stdin, capture_output=True, text=True,
                          timeout=ESLINT_TIMEOUT, check=False)
    # 0: clean, 1: findings; 2 is ESLint itself failing (a bad config), said on stderr.
    assert done.returncode in (0, 1), done.stderr
    report: list[dict[str, Any]] = json.loads(done.stdout)
    return done.returncode, report


def findings(report: list[dict[str, Any]]) -> list[str]:
    return [f"{Path(file['filePath']).relative_to(ROOT)}:{m.get('line')}:{m.get('column')} "
            f"{m.get('ruleId')}: {m['message']}"
            for file in report for m in file["messages"]]


def test_the_console_javascript_is_lint_clean() -> None:
    status, report = eslint("--max-warnings", "0", ".")
    linted = {Path(file["filePath"]) for file in report}
    # A module left out (by an ignore, or a folder moved out of the config's globs)
    # would pass unseen.
    assert set(MODULES) <= linted, sorted(map(str, set(MODULES) - linted))
    assert findings(report) == []
    assert status == 0


# index.html's inline scripts (no src, no type: classic scripts); the page is ours,
# and the lazy body stops at the first closing tag.
_INLINE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def test_the_pages_inline_script_is_lint_clean() -> None:
    page = (CONSOLE / "index.html").read_text(encoding="utf-8")
    scripts = list(_INLINE.finditer(page))
    assert scripts, "index.html has no inline script: drop this test"
    name = str((CONSOLE / "index.html.js").relative_to(ROOT))
    for script in scripts:
        # Blank lines before it, so a finding's line is its line in index.html.
        text = "\n" * page.count("\n", 0, script.start(1)) + script.group(1)
        status, report = eslint("--max-warnings", "0", "--stdin", "--stdin-filename", name,
                                stdin=text)
        assert findings(report) == []
        assert status == 0


PROBE = """\
import { h } from "./dom.js";
export const title = document.title;
if (title == "x") h("p");
process.exit(1);
"""


def test_the_config_reads_the_console_as_browser_modules() -> None:
    """The probe parses only as a module (import, export), knows the browser's globals
    (document) but not node's (process), and the rules beyond the recommended set
    apply (eqeqeq)."""
    probe = (CONSOLE / "lint-probe.js").relative_to(ROOT)
    status, report = eslint("--stdin", "--stdin-filename", str(probe), stdin=PROBE)
    assert status == 1
    [file] = report
    assert not any(m.get("fatal") for m in file["messages"]), findings(report)
    assert {(m["line"], m["ruleId"]) for m in file["messages"]} == {
        (3, "eqeqeq"), (4, "no-undef")}, findings(report)
