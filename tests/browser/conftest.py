"""Browser fixtures: the responder as a real `serve --admin` subprocess and Debian's
chromium driven by Selenium through chromedriver.

Like the interop peers, chromium and chromedriver are system binaries (the browser cannot
be downloaded here): without them the tests skip with a reason, and fail when CI=true.
The browser runs headless with its network features off (no update checks, no sync);
it only ever talks to the responder on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require_binary
from tests.interop.conftest import _TROUBLE, STOP_TIMEOUT, ResponderProcess, _stop

START_TIMEOUT = 20.0  # s until the listening and admin lines (a cold CI start is slow)
WAIT = 10.0  # s: the longest explicit wait for the page to show something
TOKEN = "console-test-token"  # --admin-token: the page must carry it on every request
VIEWPORT = (1280, 720)

_LISTENING = re.compile(r"listening on (udp|tcp):127\.0\.0\.1:([0-9]+)")
_ADMIN = re.compile(r"admin API on (http://127\.0\.0\.1:[0-9]+)")

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--force-color-profile=srgb",
)


@dataclass
class ConsoleServer:
    """The responder with its admin API; ``url`` opens the console (token included)."""

    responder: ResponderProcess
    base: str  # http://127.0.0.1:PORT
    token: str | None
    scenario: Path

    @property
    def url(self) -> str:
        return f"{self.base}/?token={self.token}" if self.token else f"{self.base}/"


def _start_console_server(scenario: Path, token: str | None = TOKEN, workers: int = 1
                          ) -> tuple[ConsoleServer, threading.Thread]:
    cmd = [sys.executable, "-m", "sipresponder", "serve", "--scenario", str(scenario),
           "--listen", "udp:127.0.0.1:0", "--listen", "tcp:127.0.0.1:0",
           "--admin", "127.0.0.1:0", *(["--admin-token", token] if token else []),
           *(["--workers", str(workers)] if workers > 1 else [])]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    running = ResponderProcess(proc)
    ready = threading.Event()
    found: dict[str, Any] = {}

    def drain() -> None:
        # Reads stderr to its end, so the server never blocks on a full pipe.
        assert proc.stderr is not None
        for line in proc.stderr:
            running.log.append(line)
            if match := _LISTENING.search(line):
                running.ports[match[1]] = int(match[2])
            if match := _ADMIN.search(line):
                found["admin"] = match[1]
            if len(running.ports) == 2 and "admin" in found:
                ready.set()
        ready.set()  # EOF: it died before it listened

    reader = threading.Thread(target=drain, name="console-server-stderr", daemon=True)
    reader.start()
    if not ready.wait(START_TIMEOUT) or "admin" not in found or len(running.ports) != 2:
        _stop(proc)
        reader.join(5)
        pytest.fail(f"serve --admin did not report its ports within {START_TIMEOUT}s "
                    f"(exit code {proc.returncode}):\n{running.log_text}")
    running.udp_port, running.tcp_port = running.ports["udp"], running.ports["tcp"]
    return ConsoleServer(running, found["admin"], token, scenario), reader


@contextmanager
def serving_console(scenario: Path, token: str | None = TOKEN, workers: int = 1
                    ) -> Iterator[ConsoleServer]:
    """`sipresponder serve --admin [--admin-token] [--workers N]` on OS-picked loopback
    ports (with workers, the admin line comes once every worker answers); on exit,
    checks that it stopped cleanly and logged no error."""
    server, reader = _start_console_server(scenario, token, workers)
    try:
        yield server
    finally:
        proc = server.responder.proc
        graceful = _stop(proc)
        reader.join(STOP_TIMEOUT)
    log = server.responder.log_text
    assert graceful, f"responder ignored SIGTERM for {STOP_TIMEOUT}s:\n{log}"
    assert proc.returncode == 0, f"responder exited with {proc.returncode}:\n{log}"
    # The refused scenario of the test is logged as a warning; nothing may be an error.
    trouble = [line for line in server.responder.log if _TROUBLE.search(line)]
    assert not trouble, "responder logged errors:\n" + log


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """The console's server with a token, serving a copy of the default scenario (the
    tests edit it through the console)."""
    scenario = tmp_path_factory.mktemp("console") / "scenario.toml"
    scenario.write_text((ROOT / "scenarios" / "default.toml").read_text())
    with serving_console(scenario) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium at 1280x720 through chromedriver (Selenium)."""
    chromium = require_binary("chromium", "apt-get install chromium")
    chromedriver = require_binary("chromedriver", "apt-get install chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:  # pragma: no cover - the test extra installs it
        message = "selenium is not installed (pip install -e '.[test]'); the test needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="console-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    options.add_argument(f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never looks for (or downloads) a driver.
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        # The viewport itself, not the window around it, is 1280x720.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1,
            "mobile": False})
        driver.set_script_timeout(WAIT)
        yield driver
    finally:
        driver.quit()
        profile.cleanup()
