"""baresip and linphonec against an in-process responder, through tests/interop/peers.py.

What works today proves the harness: each client registers (the journal shows the
REGISTER answered 200), calls sip:200@ (answered; the client hangs up: INVITE, ACK and
BYE in the journal, from the client's port) and calls sip:486@ (refused, and the client
says so). The tests of the far end (the responder calling in, hanging up, holding,
notifying and transferring: design20.md's ``[[rule.then]]``) follow, skipped until it
is merged; each carries its scenario inline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.journal.record import JournalEntry
from sipresponder.testing.api import SyncResponder
from tests.interop.peers import Baresip, Linphonec, Peer

pytestmark = pytest.mark.interop

FAR_END = pytest.mark.skip(reason="far end not merged yet")
JOURNAL_TIMEOUT = 10.0  # seconds for a request the client already reported sent

PEERS = {"baresip": Baresip, "linphonec": Linphonec}


@pytest.fixture
def responder() -> Iterator[SyncResponder]:
    """The default scenario (REGISTER 200, sip:NNN@ answered NNN, INVITE 200, BYE 200)
    on an OS-picked loopback UDP port."""
    with SyncResponder(listen=["udp:127.0.0.1:0"]) as running:
        yield running


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest, responder: SyncResponder,
         tmp_path: Path) -> Iterator[Peer]:
    with PEERS[request.param](responder.address("udp"), tmp_path / request.param) as client:
        yield client


def status(entry: JournalEntry) -> int:
    """The code of the last response the responder sent to ``entry``."""
    assert entry.responses, f"{entry.method} was not answered: {entry.outcome}"
    return int(entry.responses[-1].split(b" ", 2)[1])


def test_registers(peer: Peer, responder: SyncResponder) -> None:
    peer.registered()
    [register] = responder.wait_for("REGISTER", timeout=JOURNAL_TIMEOUT)
    assert status(register) == 200
    assert register.remote == ("127.0.0.1", peer.port)
    assert (register.header("To") or "").find("sip:alice@127.0.0.1") >= 0


def test_call_answered_then_hung_up_by_the_client(peer: Peer,
                                                  responder: SyncResponder) -> None:
    peer.registered()
    uri = responder.uri("200")
    peer.dial(uri)
    if isinstance(peer, Baresip):
        peer.wait_for(Baresip.ESTABLISHED)
    else:
        peer.wait_for(Linphonec.CONNECTED)
    [invite] = responder.wait_for("INVITE", f"{uri}*", timeout=JOURNAL_TIMEOUT)
    assert status(invite) == 200
    [ack] = responder.wait_for("ACK", headers={"Call-ID": invite.call_id or ""},
                               timeout=JOURNAL_TIMEOUT)
    mark = peer.mark()
    peer.hangup()
    [bye] = responder.wait_for("BYE", headers={"Call-ID": invite.call_id or ""},
                               timeout=JOURNAL_TIMEOUT)
    assert status(bye) == 200
    for entry in (invite, ack, bye):
        assert entry.remote == ("127.0.0.1", peer.port), entry.remote
    if isinstance(peer, Linphonec):
        ended = peer.wait_for(Linphonec.ENDED, since=mark)
        assert ended["reason"] == "No error", ended[0]


def test_call_to_a_busy_user_fails(peer: Peer, responder: SyncResponder) -> None:
    peer.registered()
    uri = responder.uri("486")
    peer.dial(uri)
    if isinstance(peer, Baresip):
        refused = peer.wait_for(Baresip.REFUSED)
        assert (refused["code"], refused["reason"].strip()) == ("486", "Busy Here")
    else:
        peer.wait_for(Linphonec.ERROR)
    [invite] = responder.wait_for("INVITE", f"{uri}*", timeout=JOURNAL_TIMEOUT)
    assert status(invite) == 486
    # The client acknowledged the failure: the ACK of a non-2xx shares the INVITE's
    # transaction, so it is in the journal as a request of its own.
    responder.wait_for("ACK", headers={"Call-ID": invite.call_id or ""},
                       timeout=JOURNAL_TIMEOUT)
