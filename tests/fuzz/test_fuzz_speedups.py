"""The fuzz targets of the compiled path, short (fuzz/fuzz_speedups.py, fuzz/fuzz_batch.py).

CI replays their seeds (the torture corpus, fuzz/seeds/, fuzz/seeds-speedups/,
fuzz/seeds-batch/) through each target's oracle -- the compiled table defers or
sends exactly the engine's octets; the batch reader answers or hands back every
datagram, in order -- pins what the long runs found as ``test_regression_*``, and
runs each atheris target for a few thousand inputs. fuzz/README.md has the long
runs, with AddressSanitizer.

Skipped, with the reason, where the extension is not built (SIPRESPONDER_NO_EXTENSIONS
or no compiler) or atheris is not installed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from sipresponder.uas.compiled import STATUS, speedups

pytestmark = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


TABLE_SEEDS = files(ROOT / "tests" / "torture", FUZZ / "seeds", FUZZ / "seeds-speedups")
BATCH_SEEDS = files(FUZZ / "seeds-batch")


def target(name: str) -> ModuleType:
    """fuzz/<name>.py, imported once under its own name (fuzz_batch imports
    fuzz_speedups by that name)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def fuzz_speedups() -> Iterator[ModuleType]:
    module = target("fuzz_speedups")
    yield module
    # The oracle's handler collects the warnings it reads: not beyond these tests.
    logging.getLogger("sipresponder").removeHandler(module.DISAGREEMENTS)


def test_table_target_holds_on_the_seeds(fuzz_speedups: ModuleType) -> None:
    for path in TABLE_SEEDS:
        fuzz_speedups.check(path.read_bytes())
    # Some answered compiled (else the oracle compared nothing): the taught lines.
    assert fuzz_speedups.oracle().answered > 0


@pytest.mark.skipif(speedups is None or not getattr(speedups, "HAVE_MMSG", 0),
                    reason="no recvmmsg/sendmmsg here (Linux only)")
def test_batch_target_holds_on_the_seeds(fuzz_speedups: ModuleType) -> None:
    fuzz_batch = target("fuzz_batch")
    for path in BATCH_SEEDS:
        fuzz_batch.check(path.read_bytes())
    assert fuzz_batch.batch_oracle().answered > 0


def test_a_disagreement_is_a_failure(fuzz_speedups: ModuleType) -> None:
    """The oracle is not vacuous: an answer that is not the engine's octets fails."""
    checker = fuzz_speedups.oracle()
    source = checker.sources[0]
    data = fuzz_speedups.clean_request("OPTIONS", "bench", source, 77)
    got = checker.handle(data, source, learn=False)
    assert isinstance(got, bytes) and got
    with pytest.raises(fuzz_speedups.FuzzFailure, match="but the engine sent"):
        checker.check_answer(data, source, got.replace(b"200 OK", b"200 Ok", 1))


# -- what the long runs found --------------------------------------------------------------
def test_regression_uninitialised_table_is_empty_not_a_crash() -> None:
    """fuzz_speedups.py under ASan: Table.__new__(Table) without __init__ had NULL
    entries, and every method dereferenced them (SEGV in Table_forget). A subprocess:
    before the fix this killed the interpreter."""
    run = subprocess.run([sys.executable, str(REGRESSIONS / "speedups_uninitialised_table.py")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 0, (run.returncode, run.stderr[-2000:])
    assert run.stdout.strip() == "ok"


def test_regression_a_check_switch_that_raises_is_the_error() -> None:
    """fuzz_speedups.py (reinit): Table.__init__ ignored PyObject_IsTrue's -1 and
    returned success with the switch's exception pending: a SystemError."""
    assert speedups is not None

    class Untruthful:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    checks: dict[str, object] = {name: True for name in target("fuzz_speedups").CHECK_NAMES}
    checks["max_forwards"] = Untruthful()
    with pytest.raises(RuntimeError, match="no truth value"):
        speedups.Table(b"k", (), 10, 100, 1000, 0.0, checks, True)


@pytest.mark.skipif(speedups is None or not getattr(speedups, "HAVE_MMSG", 0),
                    reason="no recvmmsg/sendmmsg here (Linux only)")
def test_regression_a_datagram_without_source_is_not_given_an_old_one() -> None:
    """fuzz_batch.py (socketpair variant): recvmmsg writes no address for a datagram
    without one, and serve_udp reported the source of a datagram an earlier call had
    read (its sockaddr buffer is on the stack, reused). Now it has no address."""
    assert speedups is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        client.bind(("127.0.0.1", 0))
        client.sendto(b"first", udp.getsockname())
        assert select.select([udp], [], [], 5.0)[0]
        deferred, _, _, _ = speedups.serve_udp(udp.fileno(), None, 1, False, True, False, 1)
        assert deferred == [(b"first", client.getsockname(), speedups.OFF)]
    sender, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sender, reader:
        reader.setblocking(False)
        sender.send(b"second")
        deferred, _, _, received = speedups.serve_udp(reader.fileno(), None, 1, False, True,
                                                      False, 1)
    assert received == 1
    assert deferred == [(b"second", b"", speedups.UNUSUAL)]


# -- the atheris targets themselves: a short CI pass -----------------------------------------
def short_run(tmp_path: Path, name: str, seeds: list[Path], runs: int,
              env: dict[str, str] | None = None) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in seeds:
        shutil.copy(path, corpus / f"{path.parent.name}-{path.name}")
    run = subprocess.run(
        [sys.executable, str(FUZZ / f"{name}.py"), str(corpus),
         f"-dict={FUZZ / 'speedups.dict'}", f"-runs={runs}", "-max_len=4096", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    tail = "\n".join(line for line in run.stderr.splitlines()[-40:]
                     if not line.startswith("INFO: Instrumenting"))
    assert run.returncode == 0, tail
    assert re.search(r"Done \d+ runs", run.stderr), tail
    if env is not None:  # the build the run was told to load is the one it loaded
        assert f"sipresponder._speedups: {env['SIPRESPONDER_SPEEDUPS_SO']}" in run.stderr, tail


def test_atheris_short_run_table(tmp_path: Path) -> None:
    """A few thousand coverage-guided inputs against the compiled table (fuzz/README.md)."""
    short_run(tmp_path, "fuzz_speedups", TABLE_SEEDS, 3000)


def test_atheris_short_run_table_under_asan(tmp_path: Path) -> None:
    """The same, against an AddressSanitizer build with libFuzzer coverage of the C code
    (fuzz/build_asan.sh: clang, atheris's asan_with_fuzzer.so preloaded)."""
    atheris = pytest.importorskip("atheris", reason="atheris is not installed")
    if shutil.which("clang") is None and shutil.which("clang-14") is None:
        pytest.skip("no clang for the AddressSanitizer build (apt-get install -y clang)")
    runtime = Path(atheris.path()) / "asan_with_fuzzer.so"
    if not runtime.is_file():
        pytest.skip(f"atheris ships no {runtime.name} here")
    build = subprocess.run(["sh", str(FUZZ / "build_asan.sh")], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "OUT": str(tmp_path / "asan"),
                                             "PYTHON": sys.executable})
    assert build.returncode == 0, build.stderr
    env = {**os.environ, "SIPRESPONDER_SPEEDUPS_SO": build.stdout.strip(),
           "SIPRESPONDER_FUZZ_PYTHON_COVERAGE": "0", "LD_PRELOAD": str(runtime),
           "ASAN_OPTIONS": "detect_leaks=0"}
    short_run(tmp_path, "fuzz_speedups", TABLE_SEEDS, 3000, env=env)


@pytest.mark.skipif(speedups is None or not getattr(speedups, "HAVE_MMSG", 0),
                    reason="no recvmmsg/sendmmsg here (Linux only)")
def test_atheris_short_run_batch(tmp_path: Path) -> None:
    """A thousand inputs against the batch reader, over loopback."""
    short_run(tmp_path, "fuzz_batch", BATCH_SEEDS, 1000)
