"""The far end driven from a test (Responder.call, send, call_registered, dialogs) and
from the admin API (/api/calls, /api/dialogs), against a tiny peer in the test that
answers every request with 200 and records what it got."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest

from sipresponder.ops.admin import Admin
from sipresponder.testing.api import (
    CannotSend,
    NoRegistration,
    Responder,
    SyncResponder,
    UnknownDialog,
)
from tests.sipclient import make_request

TIMEOUT = 5.0
ANSWER_SDP = (b"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
              b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@dataclass
class Got:
    """A request the peer received, read independently of the responder's parser."""

    raw: bytes
    method: str
    uri: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert found, f"no {name} in {self.raw!r}"
        return found[0]

    def tag(self, name: str) -> str | None:
        m = re.search(r";\s*tag=([^;>\s]+)", self.get(name))
        return m[1] if m else None


def read(data: bytes) -> Got:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, uri, _ = lines[0].split(" ", 2)
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines[1:])]
    return Got(data, method, uri, headers, body)


@dataclass
class Peer:
    """Answers every request with 200 (its To tagged, an SDP answer to an INVITE);
    ``got`` is every request in arrival order, ``arrived`` wakes a waiter."""

    write: Callable[[bytes], None] | None = None
    port: int = 0
    tag: str = "peertag1"
    got: list[Got] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    answer: bool = True

    def received(self, data: bytes) -> None:
        if data.startswith(b"SIP/2.0"):
            return
        request = read(data)
        self.got.append(request)
        self.arrived.set()
        if request.method == "ACK" or not self.answer or self.write is None:
            return
        to = request.get("To")
        if request.tag("To") is None:
            to += f";tag={self.tag}"
        body = ANSWER_SDP if request.method == "INVITE" else b""
        lines = ["SIP/2.0 200 OK", *(f"Via: {v}" for k, v in request.headers
                                        if k.lower() == "via"),
                 f"From: {request.get('From')}", f"To: {to}",
                 f"Call-ID: {request.get('Call-ID')}", f"CSeq: {request.get('CSeq')}",
                 f"Contact: <sip:peer@127.0.0.1:{self.port}>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def next(self, method: str, after: int = 0) -> Got:
        """The first request of ``method`` past the first ``after`` received."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for got in self.got[after:]:
                if got.method == method:
                    return got
            left = deadline - time.monotonic()
            assert left > 0, f"no {method} came; got {[g.method for g in self.got]}"
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), left)


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.to: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.to = addr
        self.peer.received(data)


@pytest.fixture
async def udp_peer() -> AsyncIterator[tuple[Peer, asyncio.DatagramTransport]]:
    peer = Peer()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _UDP(peer), local_addr=("127.0.0.1", 0))
    peer.port = transport.get_extra_info("sockname")[1]

    def write(data: bytes) -> None:
        assert protocol.to is not None
        transport.sendto(data, protocol.to)

    peer.write = write
    yield peer, transport
    transport.close()


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    async with Responder() as r:
        yield r


async def until(condition: Callable[[], bool]) -> None:
    """Bounded poll, for state no event tells of (the dialog table)."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_call_send_and_hang_up_over_udp(responder: Responder, udp_peer) -> None:
    peer, _ = udp_peer
    call_id = responder.call(f"sip:alice@127.0.0.1:{peer.port}")
    invite = await peer.next("INVITE")
    assert invite.get("Call-ID") == call_id
    assert invite.uri == f"sip:alice@127.0.0.1:{peer.port}"
    assert b"m=audio" in invite.body and b"a=sendrecv" in invite.body
    ours = invite.tag("From")
    assert ours and invite.tag("To") is None
    ack = await peer.next("ACK")
    assert ack.get("Call-ID") == call_id and ack.tag("To") == peer.tag
    await until(lambda: [d["call_id"] for d in responder.dialogs()] == [call_id])
    (dialog,) = responder.dialogs()
    assert dialog["remote_tag"] == peer.tag and dialog["kind"] == "call"

    # hold: a re-INVITE with a=sendonly, in the dialog, its 200 ACKed
    seen = len(peer.got)
    responder.send(call_id, "INVITE", sdp="sendonly")
    reinvite = await peer.next("INVITE", seen)
    assert b"a=sendonly" in reinvite.body
    assert reinvite.tag("From") == ours and reinvite.tag("To") == peer.tag
    assert reinvite.uri == f"sip:peer@127.0.0.1:{peer.port}"  # the remote target
    assert reinvite.get("CSeq") == "2 INVITE"
    await peer.next("ACK", seen)

    seen = len(peer.got)
    responder.send(call_id, "INFO", body="Signal=5\r\nDuration=160\r\n",
                   content_type="application/dtmf-relay")
    info = await peer.next("INFO", seen)
    assert info.get("Content-Type") == "application/dtmf-relay"
    assert info.body == b"Signal=5\r\nDuration=160\r\n"
    assert info.get("CSeq") == "3 INFO"

    seen = len(peer.got)
    responder.send(call_id, "BYE")
    bye = await peer.next("BYE", seen)
    assert (bye.get("Call-ID"), bye.tag("From"), bye.tag("To")) == (call_id, ours, peer.tag)
    assert bye.get("CSeq") == "4 BYE"
    await until(lambda: responder.dialogs() == [])
    with pytest.raises(UnknownDialog, match="no live far-end dialog has Call-ID"):
        responder.send(call_id, "BYE")


async def test_a_calls_steps_run_in_the_dialog(responder: Responder, udp_peer) -> None:
    peer, _ = udp_peer
    call_id = responder.call(f"sip:bob@127.0.0.1:{peer.port}", sdp="none",
                             headers={"X-Test": "api"},
                             then=[{"send": "MESSAGE", "body": "hi",
                                    "content_type": "text/plain"}, {"send": "BYE"}])
    invite = await peer.next("INVITE")
    assert invite.body == b"" and invite.get("X-Test") == "api"
    ack = await peer.next("ACK")
    assert b"m=audio" in ack.body  # the answer to the 200's offer
    message = await peer.next("MESSAGE")
    assert message.body == b"hi" and message.get("Call-ID") == call_id
    bye = await peer.next("BYE")
    assert bye.tag("To") == peer.tag
    await until(lambda: responder.dialogs() == [])


async def test_refusals_are_one_line(responder: Responder, udp_peer) -> None:
    peer, _ = udp_peer
    with pytest.raises(UnknownDialog, match="'nope'"):
        responder.send("nope", "BYE")
    call_id = responder.call(f"sip:alice@127.0.0.1:{peer.port}")
    await peer.next("ACK")
    await until(lambda: bool(responder.dialogs()))
    for kwargs, message in [
            ({"method": "FOO"}, "send: must be one of BYE"),
            ({"method": "BYE", "sdp": "sendonly"}, "sdp: a BYE carries no offer"),
            ({"method": "INFO", "body": "x"}, "content_type: a body needs"),
            ({"method": "INFO", "headers": {"Call-ID": "x"}}, "headers.Call-ID: is written"),
            ({"method": "REFER"}, "headers: a REFER needs a Refer-To")]:
        with pytest.raises(ValueError, match=message) as info:
            responder.send(call_id, **kwargs)
        assert "\n" not in str(info.value)
    for target, message in [("sip:alice@example.com", "never resolves names"),
                            ("mailto:x@y", "only sip: and sips:"),
                            ("nonsense", "is not a URI")]:
        with pytest.raises(ValueError, match=message):
            responder.call(target)
    with pytest.raises(ValueError, match=r"then\[0\].after"):
        responder.call(f"sip:a@127.0.0.1:{peer.port}", then=[{"send": "BYE", "after": -1}])
    with pytest.raises(CannotSend, match=r"no open tcp connection from 127\.0\.0\.1"):
        responder.call(f"sip:alice@127.0.0.1:{peer.port};transport=tcp")
    with pytest.raises(NoRegistration, match=r"no REGISTER for sip:alice@127\.0\.0\.1"):
        responder.call_registered("sip:alice@127.0.0.1")


async def test_call_registered_over_tcp_on_the_clients_connection(
        responder: Responder) -> None:
    """A client registered over TCP is called on the connection it registered on."""
    peer = Peer()
    reader, writer = await asyncio.open_connection(*responder.address("tcp"))
    peer.write = writer.write
    local = writer.get_extra_info("sockname")
    peer.port = local[1]
    aor = "sip:carol@127.0.0.1"
    writer.write(make_request("REGISTER", "sip:127.0.0.1", transport="TCP", headers=[
        ("Contact", f"<sip:carol@127.0.0.1:{peer.port};transport=tcp>"),
        ("Expires", "600")]).replace(b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode()))
    pending = b""

    async def pump() -> None:
        nonlocal pending
        while data := await reader.read(65536):
            pending += data
            while b"\r\n\r\n" in pending:
                head, _, rest = pending.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                size = int(m[1]) if m else 0
                if len(rest) < size:
                    break
                peer.received(head + b"\r\n\r\n" + rest[:size])
                pending = rest[size:]

    task = asyncio.create_task(pump())
    try:
        await responder.wait_for("REGISTER", timeout=TIMEOUT)
        call_id = responder.call_registered(aor, then=[{"send": "BYE"}])
        invite = await peer.next("INVITE")
        assert invite.get("Call-ID") == call_id
        assert invite.uri == f"sip:carol@127.0.0.1:{peer.port};transport=tcp"
        assert invite.get("Via").startswith("SIP/2.0/TCP ")
        await peer.next("ACK")
        await peer.next("BYE")
        await until(lambda: responder.dialogs() == [])
    finally:
        writer.close()
        task.cancel()


async def test_call_registered_over_udp(responder: Responder, udp_peer) -> None:
    peer, transport = udp_peer
    aor = "sip:dave@127.0.0.1"
    register = make_request("REGISTER", "sip:127.0.0.1", headers=[
        ("Contact", f"<sip:dave@127.0.0.1:{peer.port}>;expires=300")]).replace(
        b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode())
    transport.sendto(register, responder.address("udp"))
    await responder.wait_for("REGISTER", timeout=TIMEOUT)
    call_id = responder.call_registered(aor)
    invite = await peer.next("INVITE")
    assert invite.get("Call-ID") == call_id
    assert invite.uri == f"sip:dave@127.0.0.1:{peer.port}"
    unregister = make_request("REGISTER", "sip:127.0.0.1", headers=[
        ("Contact", f"<sip:dave@127.0.0.1:{peer.port}>"), ("Expires", "0")]).replace(
        b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode())
    transport.sendto(unregister, responder.address("udp"))
    await responder.wait_for("REGISTER", count=2, timeout=TIMEOUT)
    with pytest.raises(NoRegistration, match="unregistered"):
        responder.call_registered(aor)


async def test_an_unsolicited_mwi_notify_to_a_registered_client(
        responder: Responder, udp_peer) -> None:
    """RFC 3842 3.5: a NOTIFY of message-summary out of any dialog, to the Contact the
    REGISTER bound, from the API; the client's 200 is its journal entry's code."""
    peer, transport = udp_peer
    aor = "sip:erin@127.0.0.1"
    register = make_request("REGISTER", "sip:127.0.0.1", headers=[
        ("Contact", f"<sip:erin@127.0.0.1:{peer.port}>;expires=300")]).replace(
        b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode())
    transport.sendto(register, responder.address("udp"))
    await responder.wait_for("REGISTER", timeout=TIMEOUT)
    call_id = responder.call_registered(
        aor, method="NOTIFY", headers={"Event": "message-summary"},
        body="Messages-Waiting: yes\r\n", content_type="application/simple-message-summary")
    notify = await peer.next("NOTIFY")
    assert notify.get("Call-ID") == call_id and notify.get("Event") == "message-summary"
    assert notify.body == b"Messages-Waiting: yes\r\n"
    assert (notify.get("Subscription-State") or "").startswith("terminated")
    await responder.verify("NOTIFY", direction="sent", code=200, exactly=1)
    with pytest.raises(ValueError, match="carries no offer"):
        responder.call_registered(aor, method="NOTIFY", sdp="sendonly")


async def test_send_takes_over_a_call_a_rule_without_steps_answered(
        responder: Responder, udp_peer) -> None:
    """The client calls sip:200@ (the default scenario: no steps, no dialog kept);
    the test hangs up all the same: the far end takes the dialog from the journal."""
    peer, transport = udp_peer
    invite = make_request("INVITE", "sip:200@127.0.0.1", from_tag="client1", headers=[
        ("Contact", f"<sip:client@127.0.0.1:{peer.port}>")])
    call_id = read(invite).get("Call-ID")
    transport.sendto(invite, responder.address("udp"))
    [entry] = await responder.wait_for("INVITE", timeout=TIMEOUT)
    ours = re.search(r"(?m)^To: .*;tag=([^;\s]+)", entry.responses[-1].decode())
    assert ours and responder.dialogs() == []
    responder.send(call_id, "INVITE", sdp="inactive")
    reinvite = await peer.next("INVITE")
    assert reinvite.uri == f"sip:client@127.0.0.1:{peer.port}"
    assert (reinvite.get("Call-ID"), reinvite.tag("From"), reinvite.tag("To")) == (
        call_id, ours[1], "client1")
    assert b"a=inactive" in reinvite.body
    await peer.next("ACK")
    seen = len(peer.got)
    responder.send(call_id, "BYE")
    assert (await peer.next("BYE", seen)).tag("To") == "client1"
    await until(lambda: responder.dialogs() == [])
    # A call the client hung up is not taken over.
    second = make_request("INVITE", "sip:200@127.0.0.1", headers=[
        ("Contact", f"<sip:client@127.0.0.1:{peer.port}>")])
    other = read(second).get("Call-ID")
    transport.sendto(second, responder.address("udp"))
    await responder.wait_for("INVITE", count=2, timeout=TIMEOUT)
    tag = re.search(r"(?m)^To: .*;tag=([^;\s]+)",
                    responder.requests("INVITE")[-1].responses[-1].decode())
    assert tag
    transport.sendto(make_request("BYE", "sip:client@127.0.0.1", call_id=other, cseq=2,
                                  to_tag=tag[1]), responder.address("udp"))
    await responder.wait_for("BYE", timeout=TIMEOUT)
    with pytest.raises(UnknownDialog):
        responder.send(other, "BYE")


def test_the_sync_responder_drives_the_far_end() -> None:
    """SyncResponder runs the calls on its loop's thread; the peer is a plain socket."""
    import socket

    with SyncResponder() as r, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(TIMEOUT)
        port = sock.getsockname()[1]
        call_id = r.call(f"sip:erin@127.0.0.1:{port}", sdp="inactive")
        data, _ = sock.recvfrom(65536)
        invite = read(data)
        assert invite.method == "INVITE" and invite.get("Call-ID") == call_id
        assert b"a=inactive" in invite.body
        assert r.dialogs() == []  # no 2xx yet: no dialog
        with pytest.raises(UnknownDialog):
            r.send(call_id, "BYE")


# -- the admin API -------------------------------------------------------------------------
@pytest.fixture
async def admin(responder: Responder) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    server = Admin(responder, "")
    host, port = await server.start("127.0.0.1", 0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                     headers={"X-Sipresponder": "1"}) as http:
        yield f"http://{host}:{port}", http
    await server.close()


async def test_the_admin_api_calls_and_sends(admin, udp_peer) -> None:
    base, http = admin
    peer, _ = udp_peer
    async with http.post(base + "/api/calls", json={
            "target": f"sip:alice@127.0.0.1:{peer.port}", "headers": {"X-Via-Api": "1"},
            "then": [{"send": "INFO", "body": "Signal=1\r\n",
                      "content_type": "application/dtmf-relay"}]}) as resp:
        assert resp.status == 202, await resp.text()
        call_id = (await resp.json())["call_id"]
    invite = await peer.next("INVITE")
    assert invite.get("Call-ID") == call_id and invite.get("X-Via-Api") == "1"
    await peer.next("INFO")
    await until(lambda: bool(peer.got))

    async def dialogs() -> list[dict]:
        async with http.get(base + "/api/dialogs") as resp:
            assert resp.status == 200
            return (await resp.json())["dialogs"]

    deadline = time.monotonic() + TIMEOUT
    while not (found := await dialogs()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    assert found[0]["call_id"] == call_id and found[0]["remote_tag"] == peer.tag

    seen = len(peer.got)
    url = f"{base}/api/dialogs/{call_id}/requests"
    async with http.post(url, json={"send": "INVITE", "sdp": "sendonly"}) as resp:
        assert resp.status == 202, await resp.text()
    assert b"a=sendonly" in (await peer.next("INVITE", seen)).body
    await peer.next("ACK", seen)
    async with http.post(url, json={"send": "BYE"}) as resp:
        assert resp.status == 202, await resp.text()
    await peer.next("BYE", seen)
    deadline = time.monotonic() + TIMEOUT
    while await dialogs():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_the_admin_api_refuses_in_one_line(admin, udp_peer) -> None:
    base, http = admin
    peer, _ = udp_peer
    for path, body, status, message in [
            ("/api/dialogs/nope/requests", {"send": "BYE"}, 404, "no live far-end dialog"),
            ("/api/dialogs/nope/requests", {"send": "BYE", "later": 1}, 400, "'later'"),
            ("/api/dialogs/nope/requests", {"sdp": "sendonly"}, 400, "send: missing"),
            ("/api/calls", {}, 400, "give the target"),
            ("/api/calls", {"target": "sip:a@127.0.0.1", "aor": "sip:a@127.0.0.1"}, 400,
             "give the target"),
            ("/api/calls", {"target": "sip:a@example.com"}, 400, "never resolves names"),
            ("/api/calls", {"target": f"sip:a@127.0.0.1:{peer.port}", "sdp": "loud"}, 400,
             "sdp: must be one of"),
            ("/api/calls", {"target": f"sip:a@127.0.0.1:{peer.port};transport=tcp"}, 409,
             "no open tcp connection"),
            ("/api/calls", {"aor": "sip:nobody@127.0.0.1"}, 404, "no REGISTER for"),
            ("/api/calls", {"aor": "sip:a@127.0.0.1", "transport": "tcp"}, 400,
             "give transport with a target only"),
            ("/api/calls", {"aor": 7}, 400, "aor: expected a string"),
            ("/api/calls", {"target": "sip:a@127.0.0.1", "transport": "sctp"}, 400,
             "transport: expected one of"),
            ("/api/calls", {"target": "sip:a@127.0.0.1", "then": {"send": "BYE"}}, 400,
             "then: must be an array"),
            ("/api/dialogs/nope/requests", "BYE", 400, "body must be a JSON object")]:
        async with http.post(base + path, json=body) as resp:
            text = await resp.text()
            assert resp.status == status, (path, body, text)
            error = (await resp.json())["error"]
            assert message in error and "\n" not in error, (body, error)


async def test_the_openapi_document_lists_the_far_end_routes(admin) -> None:
    base, http = admin
    async with http.get(base + "/api/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert set(paths["/api/dialogs"]) == {"get"}
    assert set(paths["/api/calls"]) == {"post"}
    assert set(paths["/api/dialogs/{call_id}/requests"]) == {"post"}


# -- serve --workers: the gatherer relays to the worker that holds the dialog ---------------
async def test_the_gatherer_relays_to_the_worker_holding_the_registration(
        tmp_path, udp_peer) -> None:
    """Two workers' channels in this process (ops/worker.py), the gatherer's Cluster
    over them: a call to an address of record goes to the worker whose journal has
    its REGISTER, a request to the worker holding the dialog; dialogs say whose."""
    from sipresponder.ops.gatherer import Cluster
    from sipresponder.ops.worker import WorkerChannel
    from sipresponder.scenario.loader import parse_scenario

    peer, transport = udp_peer
    responders = [await Responder().start() for _ in range(2)]
    channels = [WorkerChannel(Admin(r, ""), i, tmp_path / f"worker-{i}.sock")
                for i, r in enumerate(responders)]
    cluster = Cluster(parse_scenario("", "<test>"), "", 2, tmp_path)
    try:
        for channel in channels:
            await channel.start()
        aor = "sip:frank@127.0.0.1"
        transport.sendto(make_request("REGISTER", "sip:127.0.0.1", headers=[
            ("Contact", f"<sip:frank@127.0.0.1:{peer.port}>")]).replace(
            b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode()), responders[1].address("udp"))
        await responders[1].wait_for("REGISTER", timeout=TIMEOUT)
        answer = await cluster.call({"aor": aor})
        assert answer["worker"] == 1
        call_id = answer["call_id"]
        assert (await peer.next("INVITE")).get("Call-ID") == call_id
        await peer.next("ACK")
        deadline = time.monotonic() + TIMEOUT
        while not (found := await cluster.dialogs()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert [(d["call_id"], d["worker"]) for d in found] == [(call_id, 1)]
        seen = len(peer.got)
        sent = await cluster.send(call_id, {"send": "BYE"})
        assert sent["worker"] == 1 and sent["method"] == "BYE"
        assert (await peer.next("BYE", seen)).get("Call-ID") == call_id
        with pytest.raises(UnknownDialog):
            await cluster.send("nope", {"send": "BYE"})
        with pytest.raises(NoRegistration):
            await cluster.call({"aor": "sip:nobody@127.0.0.1"})
        with pytest.raises(ValueError, match="sdp: must be one of"):
            await cluster.call({"target": f"sip:a@127.0.0.1:{peer.port}", "sdp": "loud"})
        answer = await cluster.call({"target": f"sip:a@127.0.0.1:{peer.port}"})
        assert answer["worker"] == 0
        # A call the client made to worker 1's rule without steps: no worker lists
        # it, worker 0 does not know it, worker 1 takes it over from its journal.
        invite = make_request("INVITE", "sip:200@127.0.0.1", headers=[
            ("Contact", f"<sip:client@127.0.0.1:{peer.port}>")])
        transport.sendto(invite, responders[1].address("udp"))
        await responders[1].wait_for("INVITE", timeout=TIMEOUT)
        seen = len(peer.got)
        sent = await cluster.send(read(invite).get("Call-ID"), {"send": "BYE"})
        assert sent["worker"] == 1
        assert (await peer.next("BYE", seen)).get("Call-ID") == read(invite).get("Call-ID")
    finally:
        await cluster.stop()
        for channel in channels:
            await channel.close()
        for r in responders:
            await r.stop()


async def test_call_registered_over_websocket_with_an_invalid_contact_host() -> None:
    """RFC 7118: a browser's Contact host is a .invalid name; the call goes on the
    WebSocket the REGISTER came over (the name is never resolved)."""
    from websockets.asyncio.client import connect

    async with Responder(listen=["ws:127.0.0.1:0"]) as r, connect(
            r.ws_url(), subprotocols=["sip"], open_timeout=TIMEOUT) as ws:
        aor = "sip:gina@127.0.0.1"
        await ws.send(make_request(
            "REGISTER", "sip:127.0.0.1", transport="WS", via_host="x.invalid",
            headers=[("Contact", "<sip:gina@x.invalid;transport=ws>")]).replace(
            b"To: <sip:127.0.0.1>", f"To: <{aor}>".encode()).decode())
        await asyncio.wait_for(ws.recv(), TIMEOUT)  # its 200
        call_id = r.call_registered(aor)
        invite = read((await asyncio.wait_for(ws.recv(), TIMEOUT)).encode())
        assert invite.method == "INVITE" and invite.get("Call-ID") == call_id
        assert invite.uri == "sip:gina@x.invalid;transport=ws"
        assert invite.get("Via").startswith("SIP/2.0/WS ")
