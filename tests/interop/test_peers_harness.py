"""baresip and linphonec against an in-process responder, through tests/interop/peers.py.

What works today proves the harness: each client registers (the journal shows the
REGISTER answered 200), calls sip:200@ (answered; the client hangs up: INVITE, ACK and
BYE in the journal, from the client's port) and calls sip:486@ (refused, and the client
says so). The tests of the far end (the responder calling in, hanging up, holding,
notifying and transferring: design20.md's ``[[rule.then]]``) follow, skipped until it
is merged; each carries its scenario inline.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.journal.record import JournalEntry
from sipresponder.testing.api import SyncResponder
from tests.interop import peers
from tests.interop.conftest import free_port
from tests.interop.peers import Baresip, Linphonec, Peer, PeerError

pytestmark = pytest.mark.interop

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


def unregisters(entry: JournalEntry) -> bool:
    """An unregistration: Expires: 0 (linphonec) or a Contact's expires=0 (baresip)."""
    return entry.header("Expires") == "0" or bool(
        re.search(r";\s*expires\s*=\s*0\b", entry.header("Contact") or ""))


def test_registers(peer: Peer, responder: SyncResponder) -> None:
    peer.registered()
    [register] = responder.wait_for("REGISTER", timeout=JOURNAL_TIMEOUT)
    assert status(register) == 200
    assert register.remote == ("127.0.0.1", peer.port)
    assert (register.header("To") or "").find("sip:alice@127.0.0.1") >= 0


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_leaving_unregisters(peer_name: str, responder: SyncResponder, tmp_path: Path) -> None:
    """The end of the block is the client's own way out, not a kill: it unregisters."""
    with PEERS[peer_name](responder.address("udp"), tmp_path) as client:
        client.registered()
    assert client.proc is None
    register, unregister = responder.wait_for("REGISTER", count=2, timeout=JOURNAL_TIMEOUT)
    assert not unregisters(register) and unregisters(unregister), unregister.raw
    assert status(unregister) == 200 and unregister.remote == ("127.0.0.1", client.port)


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


@pytest.mark.parametrize("peer_name", sorted(PEERS))
def test_a_port_taken_before_the_client_binds_it_is_retried(
        peer_name: str, responder: SyncResponder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """free_port() is bound then closed: another process may bind it before the client
    does. The harness sees the client's "address in use" and starts over on a new port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken_port = taken.getsockname()[1]
        ports = iter([taken_port])
        monkeypatch.setattr(peers, "free_port", lambda: next(ports, None) or free_port())
        with PEERS[peer_name](responder.address("udp"), tmp_path) as client:
            client.registered()
            assert client.ports_tried == [taken_port, client.port], client.output


# -- the harness itself, on a stand-in client (this Python, no SIP) ------------------------
ECHO = """\
import sys
print("ready", flush=True)
for line in sys.stdin:
    print("got:", line.strip(), flush=True)
    if line.strip() == "bye":
        break
"""


class Echo(Peer):
    """Prints "ready", then "got: LINE" for each stdin line, until "bye"."""

    name = "echo"
    READY = re.compile(r"^ready$")
    PORT_TAKEN = re.compile(r"^port taken$")
    REGISTERED = re.compile(r"^registered$")

    def __init__(self, workdir: Path, script: str = ECHO) -> None:
        super().__init__(("127.0.0.1", 9), workdir)
        self.script = script

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script]

    def quit(self) -> None:
        self.send("bye")


def test_wait_for_sees_only_what_follows_a_mark(tmp_path: Path) -> None:
    with Echo(tmp_path) as echo:
        echo.send("one")
        assert echo.wait_for(r"got: (\w+)")[1] == "one"
        mark = echo.mark()
        echo.send("two")
        assert echo.wait_for(r"got: (\w+)", since=mark)[1] == "two"
        with pytest.raises(PeerError, match=r"echo printed nothing matching within 0.2s; "
                                            r"waited for 'got: one'") as failure:
            echo.wait_for("got: one", timeout=0.2, since=mark)
        assert "got: two" in str(failure.value)  # the output's tail comes with it


def test_a_client_that_exits_fails_the_wait_at_once(tmp_path: Path) -> None:
    with Echo(tmp_path) as echo:
        echo.send("bye")
        with pytest.raises(PeerError, match=r"echo exited; waited for 'never'"):
            echo.wait_for("never", timeout=60)
    assert echo.proc is None  # stopped and reaped


def test_a_client_that_never_gets_ready_fails_the_start(tmp_path: Path) -> None:
    echo = Echo(tmp_path, script="print('no sound card')")
    with pytest.raises(PeerError, match=r"echo exited; waited for '\^ready\$'") as failure, \
            echo:
        pass
    assert "no sound card" in str(failure.value)
    assert echo.proc is None


def test_one_command_a_line(tmp_path: Path) -> None:
    with Echo(tmp_path) as echo, pytest.raises(ValueError, match="one command a line"):
        echo.send("/dial sip:a@b\n/quit")


def test_what_would_break_a_configuration_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="user 'a;b=c'"):
        Baresip(("127.0.0.1", 5060), tmp_path, user="a;b=c")
    with pytest.raises(ValueError, match=r"password 'x\\ny'"):
        Linphonec(("127.0.0.1", 5060), tmp_path, password="x\ny")


# -- the far end (design20.md: [[rule.then]]) ------------------------------------------
# The client registers as "callme"; the REGISTER's rule then calls it in (an INVITE to
# its registered Contact). Its unregistration (linphonec: Expires: 0, baresip: the
# Contact's expires=0) has rules of its own, or a client quitting would be called once
# more on its way out.
CALL_IN = """\
[[rule]]
name = "unregister"
match = { method = "REGISTER", headers = { Expires = "^0$" } }
code = 200

[[rule]]
name = "unregister-contact"
match = { method = "REGISTER", headers = { Contact = ";\\\\s*expires\\\\s*=\\\\s*0\\\\b" } }
code = 200

[[rule]]
name = "call-me"
match = { method = "REGISTER", headers = { To = "sips?:callme@" } }
code = 200
[[rule.then]]
send = "INVITE"
{more}
[[rule]]
name = "register"
match = { method = "REGISTER" }
code = 200

[[rule]]
name = "invite"
match = { method = "INVITE" }
code = 200

[[rule]]
name = "in-dialog"
match = { method = ["BYE", "CANCEL", "NOTIFY", "INFO", "UPDATE", "MESSAGE"] }
code = 200

[default]
code = 405
"""


def calling_in(more: str = "") -> str:
    """The CALL_IN scenario with further steps after the INVITE (TOML text)."""
    return CALL_IN.replace("{more}", more)


@pytest.fixture
def far_end(request: pytest.FixtureRequest) -> Iterator[SyncResponder]:
    """A responder serving the test's scenario: ``@pytest.mark.parametrize("far_end",
    [TOML], indirect=True)``."""
    with SyncResponder(request.param, listen=["udp:127.0.0.1:0"]) as running:
        yield running


@pytest.mark.parametrize("far_end", [calling_in()], indirect=True)
def test_baresip_auto_answers_the_far_ends_call(far_end: SyncResponder,
                                                tmp_path: Path) -> None:
    with Baresip(far_end.address("udp"), tmp_path, user="callme") as baresip:
        baresip.registered()
        answering = baresip.wait_for(Baresip.ANSWERING)
        assert answering["code"] == "200"
        established = baresip.wait_for(Baresip.ESTABLISHED)
        assert established["peer"].startswith("sip:sipresponder@127.0.0.1"), established[0]
        mark = baresip.mark()
        baresip.hangup()
        [bye] = far_end.wait_for("BYE", direction="received", timeout=JOURNAL_TIMEOUT)
        assert status(bye) == 200 and bye.remote == ("127.0.0.1", baresip.port)
        # The call the far end made: its INVITE answered 200 by baresip.
        far_end.verify("INVITE", direction="sent", code=200, exactly=1)
        baresip.wait_for(Baresip.HANGING_UP, since=mark)


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "BYE"
""")], indirect=True)
def test_baresip_is_hung_up_on_by_the_far_end(far_end: SyncResponder,
                                              tmp_path: Path) -> None:
    with Baresip(far_end.address("udp"), tmp_path, user="callme") as baresip:
        established = baresip.wait_for(Baresip.ESTABLISHED)
        closed = baresip.wait_for(Baresip.FAR_END_BYE, since=0)
        assert closed["peer"] == established["peer"]
        # The far end's BYE ended the call, answered 200; the client sent none of its own.
        far_end.verify("BYE", direction="sent", code=200, exactly=1)
        far_end.verify("BYE", direction="received", none=True, within=1.0)


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "INVITE"
sdp = "sendonly"
""")], indirect=True)
def test_baresip_is_put_on_hold_by_the_far_end(far_end: SyncResponder,
                                               tmp_path: Path) -> None:
    with Baresip(far_end.address("udp"), tmp_path, user="callme") as baresip:
        baresip.wait_for(Baresip.ESTABLISHED)
        reinvite = baresip.wait_for(Baresip.REINVITE)
        assert reinvite["offer"], reinvite[0]  # the re-INVITE carried the sendonly offer
        # Still in the call (a hold is no hang-up): it hangs up itself afterwards.
        assert not Baresip.FAR_END_BYE.search(baresip.output), baresip.output
        # The call-in and the hold, each answered 200 by baresip.
        far_end.wait_for("INVITE", direction="sent", code=200, count=2,
                         timeout=JOURNAL_TIMEOUT)
        baresip.hangup()
        far_end.wait_for("BYE", direction="received", timeout=JOURNAL_TIMEOUT)


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "BYE"
""")], indirect=True)
def test_linphonec_answers_one_incoming_call(far_end: SyncResponder, tmp_path: Path) -> None:
    with Linphonec(far_end.address("udp"), tmp_path, user="callme") as linphonec:
        incoming = linphonec.wait_for(Linphonec.INCOMING)
        assert "sip:sipresponder@127.0.0.1" in incoming["peer"], incoming[0]
        linphonec.wait_for(Linphonec.AUTO_ANSWERING)
        linphonec.wait_for(Linphonec.CONNECTED)
        ended = linphonec.wait_for(Linphonec.ENDED)  # the far end's BYE, 1 s after the ACK
        assert ended["id"] == incoming["id"] and ended["reason"] == "No error", ended[0]


# RFC 3842 3.5: an unsolicited NOTIFY of message-summary, out of any dialog, to the
# registered Contact.
MWI = calling_in("").replace('send = "INVITE"', """\
send = "NOTIFY"
headers = { Event = "message-summary", Subscription-State = "active" }
content_type = "application/simple-message-summary"
body = "Messages-Waiting: yes\\r\\nMessage-Account: sip:callme@127.0.0.1\\r\\nVoice-Message: 2/8 (0/2)\\r\\n"
""")


@pytest.mark.parametrize("far_end", [MWI], indirect=True)
def test_linphonec_receives_a_message_waiting_notify(far_end: SyncResponder,
                                                     tmp_path: Path) -> None:
    with Linphonec(far_end.address("udp"), tmp_path, user="callme") as linphonec:
        linphonec.registered()
        notify = linphonec.wait_for(Linphonec.NOTIFY)
        assert notify["uri"].startswith("sip:callme@127.0.0.1"), notify[0]
        # Its log echoes the request it got: the event and the summary's first line.
        linphonec.wait_for(Linphonec.MWI)
        linphonec.wait_for(r"^Messages-Waiting: yes")
        far_end.wait_for("NOTIFY", direction="sent", code=200, timeout=JOURNAL_TIMEOUT)
        # No call came of it.
        assert not Linphonec.INCOMING.search(linphonec.output), linphonec.output


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "REFER"
headers = { Refer-To = "<sip:transfer-target@{local.hostport}>" }
""")], indirect=True)
def test_linphonec_follows_a_transfer(far_end: SyncResponder, tmp_path: Path) -> None:
    """RFC 3515: the far end REFERs the answered call to sip:transfer-target@ (itself);
    linphonec accepts (202) and calls the target, which answers 200; it reports the
    outcome with NOTIFYs of message/sipfrag in the REFER's subscription."""
    with Linphonec(far_end.address("udp"), tmp_path, user="callme") as linphonec:
        first = linphonec.wait_for(Linphonec.CONNECTED)
        transfer = linphonec.wait_for(Linphonec.OUTGOING)
        assert "sip:transfer-target@127.0.0.1" in transfer["peer"], transfer[0]
        assert transfer["id"] != first["id"]
        [invite] = far_end.wait_for("INVITE", "sip:transfer-target@*",
                                    direction="received", timeout=JOURNAL_TIMEOUT)
        assert status(invite) == 200
        far_end.wait_for("NOTIFY", headers={"Event": "refer*"}, direction="received",
                         timeout=JOURNAL_TIMEOUT)
        far_end.wait_for("REFER", direction="sent", code=202, timeout=JOURNAL_TIMEOUT)
        linphonec.hangup()


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "INVITE"
sdp = "sendonly"
""")], indirect=True)
def test_linphonec_is_put_on_hold_by_the_far_end(far_end: SyncResponder,
                                                 tmp_path: Path) -> None:
    with Linphonec(far_end.address("udp"), tmp_path, user="callme") as linphonec:
        connected = linphonec.wait_for(Linphonec.CONNECTED)
        paused = linphonec.wait_for(Linphonec.PAUSED_BY_REMOTE)
        assert paused["id"] == connected["id"], paused[0]
        far_end.wait_for("INVITE", direction="sent", code=200, count=2,
                         timeout=JOURNAL_TIMEOUT)
        linphonec.hangup()
        far_end.wait_for("BYE", direction="received", timeout=JOURNAL_TIMEOUT)


@pytest.mark.parametrize("far_end", [calling_in("""
[[rule.then]]
after = 1
send = "REFER"
headers = { Refer-To = "<sip:transfer-target@{local.hostport}>" }
""")], indirect=True)
def test_baresip_follows_a_transfer(far_end: SyncResponder, tmp_path: Path) -> None:
    with Baresip(far_end.address("udp"), tmp_path, user="callme") as baresip:
        baresip.wait_for(Baresip.ESTABLISHED)
        transfer = baresip.wait_for(Baresip.TRANSFER)
        assert "sip:transfer-target@127.0.0.1" in transfer["target"], transfer[0]
        [invite] = far_end.wait_for("INVITE", "sip:transfer-target@*",
                                    direction="received", timeout=JOURNAL_TIMEOUT)
        assert status(invite) == 200
        far_end.wait_for("NOTIFY", headers={"Event": "refer*"}, direction="received",
                         timeout=JOURNAL_TIMEOUT)
        far_end.wait_for("REFER", direction="sent", code=202, timeout=JOURNAL_TIMEOUT)
