"""The pure-Python engine, forced with SIPRESPONDER_NO_EXTENSIONS=1, passes the suites
that exercise the request path: the reference the compiled path is compared with must
itself stay green (issue 13). The rest of the suite runs with the extension built."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sipresponder.uas.compiled import NO_EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]
SUITES = [
    "tests/unit", "tests/torture", "tests/integration/test_api.py",
    "tests/integration/test_e2e_default.py", "tests/integration/test_compiled_path.py",
    "tests/integration/test_limits.py", "tests/integration/test_faults.py",
]


@pytest.mark.timeout(900)
def test_the_pure_python_path_passes() -> None:
    if os.environ.get(NO_EXTENSIONS, "") not in ("", "0"):
        pytest.skip("this run is the pure-Python path already")
    env = {**os.environ, NO_EXTENSIONS: "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *SUITES],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=880,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
