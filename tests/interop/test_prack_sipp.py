"""Reliable provisionals (RFC 3262) against SIPp: examples/sipp/prack-uac.xml as the UAC.

The INVITE with Supported: 100rel gets a 180 with Require: 100rel and RSeq, the PRACK
built from it gets 200, then the INVITE gets 200 (SIPp's XML checks each of these,
and the exit code says whether all held). Under loss: a UDP relay between SIPp and
the responder drops the first 180, and SIPp (-nr: it retransmits nothing itself) can
only go on with the responder's retransmission of it.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sipresponder.journal.record import JournalEntry
from sipresponder.testing.api import SyncResponder
from tests.interop.test_sipp import run_sipp
from tests.sipclient import parse_response

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
UAC = str(ROOT / "examples" / "sipp" / "prack-uac.xml")
SCENARIO = """
[[rule]]
name = "prack"
match = { method = "INVITE", user = "prack" }
reliable = true
provisional = [180]
code = 200

[default]
code = 200
"""
RELAY_TIMEOUT = 30.0  # seconds the relay thread may live: a bound, not a wait


class DroppingRelay:
    """A UDP relay: what the client sends goes on to the responder, what the responder
    answers goes back to the client, less the first datagram that starts with
    ``drop``. One thread, loopback only, OS-picked port."""

    def __init__(self, upstream: tuple[str, int], drop: bytes) -> None:
        self.upstream = upstream
        self.drop = drop
        self.dropped: list[bytes] = []
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.port = self.front.getsockname()[1]
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.front, selectors.EVENT_READ)
            sel.register(self.back, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data, peer = sock.recvfrom(65535)
                    if sock is self.front:
                        self._client = peer
                        self.back.sendto(data, self.upstream)
                    elif data.startswith(self.drop) and not self.dropped:
                        self.dropped.append(data)
                    elif self._client is not None:
                        self.front.sendto(data, self._client)

    @contextmanager
    def running(self) -> Iterator[DroppingRelay]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(RELAY_TIMEOUT)
            self.front.close()
            self.back.close()


def entries(responder: SyncResponder, method: str) -> list[JournalEntry]:
    return [e for e in responder.journal if e.method == method]


def codes(entry: JournalEntry) -> list[int]:
    return [parse_response(r).code for r in entry.responses]


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_sipp_prack_uac(tmp_path: Path, transport: str) -> None:
    with SyncResponder(SCENARIO) as responder:
        port = responder.address("udp" if transport == "u1" else "tcp")[1]
        run = run_sipp(tmp_path, UAC, "prack", transport, port, calls=1)
        assert run.returncode == 0, run.output
        assert run.count("SuccessfulCall") == 1, run.output
        [invite] = entries(responder, "INVITE")
        ringing = parse_response(invite.responses[0])
        assert ringing.code == 180 and ringing.get("Require") == "100rel"
        [prack] = entries(responder, "PRACK")
        assert codes(prack) == [200]
        assert prack.outcome == f"PRACK of the reliable provisional RSeq {ringing.get('RSeq')}"
        assert 200 in codes(invite)


def test_sipp_prack_uac_gets_the_180_again_when_the_first_is_lost(tmp_path: Path) -> None:
    with SyncResponder(SCENARIO) as responder:
        relay = DroppingRelay(responder.address("udp"), b"SIP/2.0 180 ")
        with relay.running():
            # -nr: SIPp retransmits nothing, so only the responder's copy can get through.
            run = run_sipp(tmp_path, UAC, "prack", "u1", relay.port, "-nr", calls=1)
        assert run.returncode == 0, run.output
        assert run.count("SuccessfulCall") == 1, run.output
        assert len(relay.dropped) == 1
        [invite] = entries(responder, "INVITE")
        got = codes(invite)
        ringing = got[:got.index(200)]
        # The 180, then its retransmissions (T1, doubling) until the PRACK came.
        assert len(ringing) >= 2 and set(ringing) == {180}, got
        marks = invite.retransmitted[:len(ringing)]
        assert marks == [False] + [True] * (len(ringing) - 1)
        assert len(set(invite.responses[:len(ringing)])) == 1
        [prack] = entries(responder, "PRACK")
        assert codes(prack) == [200]
