"""The DTMF fuzz target's short CI pass (fuzz/fuzz_dtmf.py): its seeds and random
inputs through the oracle, a check that the oracle catches a collector that counts
retransmitted end packets, and a few thousand atheris executions when atheris is
installed. Long runs: fuzz/README.md's commands with fuzz/fuzz_dtmf.py.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.media import dtmf
from sipresponder.media.dtmf import sender_packets

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"

_spec = importlib.util.spec_from_file_location("fuzz_dtmf", FUZZ / "fuzz_dtmf.py")
assert _spec is not None and _spec.loader is not None
fuzz_dtmf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_dtmf)

SEEDS = fuzz_dtmf.seed_inputs()


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_hold(name: str) -> None:
    fuzz_dtmf.check(SEEDS[name])


def test_decode_reads_back_what_encode_wrote() -> None:
    packets = [(7, True, b"\x01\x0a\x00\xa0"), (0xFFFFFFFF, False, b"\x01"), (0, False, b"")]
    assert fuzz_dtmf.decode(fuzz_dtmf.encode(packets)) == packets


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=400))
def test_random_inputs_hold(data: bytes) -> None:
    fuzz_dtmf.check(data)


def test_the_oracle_catches_a_retransmitted_end_counted_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Careless(dtmf.DigitCollector):
        def feed(self, rtp_timestamp: int, payload: bytes, marker: bool) -> str | None:
            got = super().feed(rtp_timestamp, payload, marker)
            event = dtmf.parse_event(payload)
            return got or (event.digit if event.end else None)

    monkeypatch.setattr(fuzz_dtmf, "DigitCollector", Careless)
    with pytest.raises(fuzz_dtmf.FuzzFailure, match="digits from 1 event starts"):
        fuzz_dtmf.check(fuzz_dtmf.encode(sender_packets("5", 1000)))


def test_atheris_short_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris)")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, data in SEEDS.items():
        (corpus / name).write_bytes(data)
    run = subprocess.run(
        [sys.executable, str(FUZZ / "fuzz_dtmf.py"), str(corpus), "-runs=3000",
         "-max_len=512", "-seed=1", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0, tail
    assert re.search(r"Done \d+ runs", run.stderr), tail
