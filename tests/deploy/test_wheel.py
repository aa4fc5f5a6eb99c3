"""`pip wheel .` makes a wheel that installs and runs the compiled path with no compiler.

The wheel is built the way a user builds it (pip, isolated build); it is then installed
with no index and a C compiler that always fails (CC=false), and imported from there:
the extension came built inside the wheel. Skips where the extension cannot be built
here (no compiler or headers), as the install itself does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sipresponder.uas.compiled import STATUS, speedups

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")
@pytest.mark.timeout(600)
def test_the_wheel_carries_the_compiled_path(tmp_path: Path) -> None:
    # From a copy without build outputs: a stale build/ would leak into the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".devbench",
        ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache", "node_modules"))
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=550)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = wheels.glob("sipresponder-*.whl")
    assert "linux" in wheel.name or "macosx" in wheel.name, wheel.name  # a platform wheel
    target = tmp_path / "site"
    env = {**os.environ, "CC": "false", "CXX": "false"}
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(target), str(wheel)], capture_output=True, text=True, env=env,
        timeout=120)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert not list(target.glob("sipresponder/csrc/*")), "the C sources went into the wheel"
    # The extension's types travel with it (mypy reads them where it is installed).
    assert (target / "sipresponder" / "_speedups.pyi").is_file()
    assert (target / "sipresponder" / "py.typed").is_file()
    probe = subprocess.run(
        [sys.executable, "-S", "-c",  # -S: see the test below
         "import sipresponder.uas.compiled as c, sipresponder; "
         "print(c.STATUS); print(sipresponder.__file__)"],
        capture_output=True, text=True, timeout=60,
        env={**env, "PYTHONPATH": str(target), "SIPRESPONDER_NO_EXTENSIONS": ""},
        cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    status, location = probe.stdout.splitlines()
    assert status == "compiled (sipresponder._speedups)"
    assert location.startswith(str(target))


@pytest.mark.timeout(600)
def test_without_a_compiler_pip_installs_the_pure_python_path(tmp_path: Path) -> None:
    """`pip install .` where the C compiler fails (CC=false): the install succeeds, and
    the installed package says it runs pure Python and how to get the compiled path."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".devbench",
        ".hypothesis", ".pytest_cache", ".ruff_cache", ".mypy_cache", "node_modules", "fuzz"))
    target = tmp_path / "site"
    env = {**os.environ, "CC": "false", "CXX": "false"}
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--no-cache-dir",
         "--target", str(target), str(source)],
        capture_output=True, text=True, env=env, timeout=550)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert not [p for p in target.glob("sipresponder/_speedups*") if p.suffix != ".pyi"]
    # -S: no site-packages, so that an editable install of this checkout (whose finder
    # would map sipresponder._speedups to the source tree) cannot answer for it.
    probe = subprocess.run(
        [sys.executable, "-S", "-c",
         "import sipresponder.uas.compiled as c, sipresponder; "
         "print(c.STATUS); print(sipresponder.__file__)"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**env, "PYTHONPATH": str(target), "SIPRESPONDER_NO_EXTENSIONS": ""})
    assert probe.returncode == 0, probe.stderr
    status, location = probe.stdout.splitlines()
    assert location.startswith(str(target))
    assert status.startswith("pure Python (the compiled extension is not built"), status
    assert "apt-get install gcc python3-dev" in status
