#!/usr/bin/env python3
"""Fill a libFuzzer corpus directory with the torture corpus and the committed seeds.

    python fuzz/seed_corpus.py [CORPUS_DIR]        (default: fuzz/corpus)

Copies every message of tests/torture/ (RFC 4475, RFC 5118 archive and wire copies)
and fuzz/seeds/ into CORPUS_DIR, named by content hash so that re-running it never
duplicates a file and never removes what the fuzzer has added since.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORTURE = HERE.parent / "tests" / "torture"
SOURCES = [TORTURE / "rfc4475", TORTURE / "rfc5118", TORTURE / "rfc5118-wire", HERE / "seeds"]


def seed(corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    added = 0
    for source in SOURCES:
        for path in sorted(p for p in source.iterdir() if p.is_file()):
            data = path.read_bytes()
            target = corpus / f"seed-{hashlib.sha1(data).hexdigest()}"
            if not target.exists():
                target.write_bytes(data)
                added += 1
    return added


if __name__ == "__main__":
    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    added = seed(corpus)
    total = sum(1 for p in corpus.iterdir() if p.is_file())
    print(f"{corpus}: {added} seed inputs added, {total} in the corpus")
