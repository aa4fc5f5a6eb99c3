"""The pure-C fuzz target of the scanner and the echo, short (fuzz/fuzz_scan.c).

fuzz/build_scan.sh builds it with clang, libFuzzer, AddressSanitizer and
UndefinedBehaviorSanitizer; CI runs it over the seeds (the torture corpus,
fuzz/seeds/, fuzz/seeds-speedups/) and a few thousand more inputs, bounded in
runs and time. fuzz/README.md has the long runs. Skipped without clang, except in CI
(which installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
SEEDS = [ROOT / "tests" / "torture", FUZZ / "seeds", FUZZ / "seeds-speedups"]


@pytest.fixture(scope="module")
def fuzz_scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("clang") is None and shutil.which("clang-14") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI installs clang (.ci/run): it is missing")
        pytest.skip("no clang (apt-get install -y clang)")
    out = tmp_path_factory.mktemp("scan")
    build = subprocess.run(["sh", str(FUZZ / "build_scan.sh")], capture_output=True,
                           text=True, timeout=180, env={**os.environ, "OUT": str(out)})
    assert build.returncode == 0, build.stderr[-4000:]
    return Path(build.stdout.strip())


def test_short_run_under_asan_and_ubsan(fuzz_scan: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [str(fuzz_scan), str(corpus), *map(str, SEEDS), f"-dict={FUZZ / 'speedups.dict'}",
         "-runs=20000", "-max_total_time=60", "-max_len=4096", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=150, cwd=tmp_path)
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0, tail
    assert re.search(r"Done \d+ runs", run.stderr), tail

