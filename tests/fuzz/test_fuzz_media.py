"""The media readers' fuzz target, short (fuzz/fuzz_media.py): its seeds replayed
through every target's oracle, a check that the oracle is not vacuous, and a short
atheris pass. fuzz/README.md has the long run."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sipresponder.media.rtp import RtpPacket

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"
SEEDS = sorted(p for p in (FUZZ / "seeds-media").iterdir() if p.is_file())


@pytest.fixture(scope="module")
def fuzz_media() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_media", FUZZ / "fuzz_media.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_target_holds_on_the_seeds(fuzz_media: ModuleType) -> None:
    assert {"rtp", "rtcp"} <= set(fuzz_media.TARGETS)
    assert len(SEEDS) >= 8
    for path in SEEDS:
        fuzz_media.check(path.read_bytes())


def test_the_oracle_fails_on_a_wrong_repack(fuzz_media: ModuleType,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seed = (FUZZ / "seeds-media" / "rtp-pcma-30ms").read_bytes()
    real = fuzz_media.parse_rtp

    def wrong(data: bytes) -> RtpPacket:
        packet: RtpPacket = real(data)
        return RtpPacket(packet.payload_type, packet.sequence ^ 1, packet.timestamp,
                         packet.ssrc, packet.payload)

    monkeypatch.setattr(fuzz_media, "parse_rtp", wrong)
    with pytest.raises(fuzz_media.FuzzFailure, match="changed the packet"):
        fuzz_media.check_rtp(seed)


def test_the_oracle_fails_on_a_multi_line_error(fuzz_media: ModuleType,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(data: bytes) -> list[object]:
        raise ValueError("two\nlines")

    monkeypatch.setattr(fuzz_media, "parse_rtcp", refuse)
    with pytest.raises(fuzz_media.FuzzFailure, match="not one line"):
        fuzz_media.check_rtcp(b"\x80")


def test_atheris_short_run(tmp_path: Path) -> None:
    """A few thousand coverage-guided inputs from the seeds, every target."""
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in SEEDS:
        shutil.copy(path, corpus / path.name)
    run = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_media.py"), str(corpus), "-runs=5000",
         "-max_len=1500", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    tail = "\n".join(line for line in run.stderr.splitlines()[-40:]
                     if not line.startswith("INFO: Instrumenting"))
    assert run.returncode == 0, tail
    assert re.search(r"Done \d+ runs", run.stderr), tail
