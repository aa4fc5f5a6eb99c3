"""Two versions of sipresponder in one process, Engine.handle timed in interleaved windows.

    python bench/ab_inprocess.py WINDOW ROUNDS NAME=TREE NAME=TREE ...

Each TREE holds sipresponder/ and scenarios/ (a checkout or a git worktree of another
commit). Windows of WINDOW calls alternate between the versions, ROUNDS times, on
20,000 distinct OPTIONS (to sip:bob@) and INVITEs (to sip:486@, with SDP) that vary
the From tag, branch and Call-ID as a client does. The figures are thread CPU time
per call: the minimum window (the quietest moment of a shared machine), the median,
and the median of the paired ratios against the first version. The CRC of the first
response shows that both answer with the same octets.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import zlib
from typing import Any

SDP = (b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.1\r\ns=-\r\n"
       b"c=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
DISTINCT = 20000


def message(method: str, user: str, n: int) -> bytes:
    uri = f"sip:{user}@127.0.0.1:5060"
    body = SDP if method == "INVITE" else b""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-{n:08x}-abc;rport",
        "Max-Forwards: 70",
        f"From: \"Alice\" <sip:alice@example.com>;tag={n * 7919:x}a",
        f"To: <{uri}>",
        f"Call-ID: {n:x}-call@192.0.2.1",
        f"CSeq: 1 {method}",
        "Contact: <sip:alice@127.0.0.1:5999>",
        "User-Agent: bench",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def load(tree: str) -> tuple[list[Any], Any]:
    """Two engines (OPTIONS, INVITE) and a Source from the sipresponder in ``tree``."""
    for name in [m for m in sys.modules if m == "sipresponder" or m.startswith("sipresponder.")]:
        del sys.modules[name]
    sys.path.insert(0, tree)
    try:
        try:
            from sipresponder.uas.engine import Engine
            from sipresponder.uas.events import Source
        except ImportError:  # before issue 11's package tree
            from sipresponder.engine import Engine  # type: ignore[no-redef]
            from sipresponder.peer import Source  # type: ignore[no-redef]
        from sipresponder.scenario.loader import load_scenario

        engines = [Engine(load_scenario(f"{tree}/scenarios/default.toml")) for _ in range(2)]
        return engines, Source("udp", ("127.0.0.1", 5999), ("127.0.0.1", 5060))
    finally:
        sys.path.remove(tree)


def main() -> None:
    window, rounds = int(sys.argv[1]), int(sys.argv[2])
    versions = []
    for arg in sys.argv[3:]:
        name, tree = arg.split("=", 1)
        versions.append((name, *load(tree)))
    for k, (method, user) in enumerate((("OPTIONS", "bob"), ("INVITE", "486"))):
        messages = [message(method, user, n) for n in range(DISTINCT)]
        runs = []
        for name, engines, source in versions:
            engine = engines[k]
            out = engine.handle(messages[0], source, 0.0)
            sends = out.sends if hasattr(out, "sends") else out  # an Outcome after issue 11
            for m in messages[:2000]:
                engine.handle(m, source, 1.0)
            runs.append((name, engine.handle, source, zlib.crc32(sends[0].data), []))
        offset = 0
        for r in range(rounds):
            for _name, handle, source, _crc, times in runs if r % 2 == 0 else runs[::-1]:
                gc.collect()
                started = time.thread_time()
                for i in range(offset, offset + window):
                    handle(messages[i % DISTINCT], source, 1.0)
                times.append((time.thread_time() - started) / window * 1e6)
            offset += window
        base = runs[0][4]
        for name, _handle, _source, crc, times in runs:
            paired = statistics.median(t / b for t, b in zip(times, base, strict=True))
            print(f"{method:8} {name:10} min {min(times):7.3f} us  median "
                  f"{statistics.median(times):7.3f} us  vs {runs[0][0]}: min "
                  f"{min(times) / min(base) - 1:+.1%}, paired median {paired - 1:+.1%}  "
                  f"crc {crc}", flush=True)


if __name__ == "__main__":
    main()
