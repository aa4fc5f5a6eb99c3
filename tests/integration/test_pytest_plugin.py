"""The pytest plugin in a user's folder, run as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
