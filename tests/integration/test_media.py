"""A call's own RTP stream over real loopback sockets: echo as our own stream, DTMF
received and journaled, a tone a client can hear, the refusals (no codec in common, no
port free), the stream's end with the call (BYE, CANCEL, the far end's BYE), and
hostile datagrams on the stream's port while SIP keeps answering."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator

import pytest

from sipresponder.media import g711
from sipresponder.media.dtmf import sender_packets
from sipresponder.media.rtp import pack_rtp, parse_rtp
from sipresponder.media.tones import goertzel_power
from sipresponder.testing.api import Responder
from tests.sipclient import make_request

TIMEOUT = 5.0
SCENARIO = """
[settings]
rtp_port_min = {low}
rtp_port_max = {high}

[[rule]]
match = {{ method = ["BYE", "OPTIONS", "CANCEL", "INFO"] }}
code = 200

[[rule]]
match = {{ method = "INVITE", user = "echo" }}
code = 200
media = "echo"

[[rule]]
match = {{ method = "INVITE", user = "tone" }}
code = 200
media = {{ mode = "tone", tone = 1000 }}

[[rule]]
match = {{ method = "INVITE", user = "ringing" }}
provisional = [180]
code = 200
delay = 30
media = "echo"

[[rule]]
match = {{ method = "INVITE", user = "hangup" }}
code = 200
media = "silence"
[[rule.then]]
after = 0.2
send = "BYE"
"""


def free_range() -> tuple[int, int]:
    """Four even ports nobody listens on now (the test's own range)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            low = probe.getsockname()[1] & ~1
        if low < 1024 or low + 6 > 65534:
            continue
        try:
            for port in range(low, low + 7, 2):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
                    taken.bind(("127.0.0.1", port))
            return low, low + 6
        except OSError:
            continue
    raise RuntimeError("no free even UDP ports")


def offer(port: int, formats: str = "0 101") -> bytes:
    return (f"v=0\r\no=t 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {formats}\r\na=rtpmap:101 telephone-event/8000\r\n"
            ).encode()


class Phone:
    """A UDP SIP client and its RTP socket, on loopback."""

    def __init__(self, responder: Responder) -> None:
        self.server = responder.address("udp")
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.setblocking(False)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.port = self.sip.getsockname()[1]
        self.loop = asyncio.get_running_loop()

    def close(self) -> None:
        self.sip.close()
        self.rtp.close()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendto(self.sip, data, self.server)

    async def recv(self) -> bytes:
        return await asyncio.wait_for(self.loop.sock_recv(self.sip, 65535), TIMEOUT)

    async def final(self) -> bytes:
        while True:
            data = await self.recv()
            if not data.startswith(b"SIP/2.0 1"):
                return data

    def request(self, method: str, user: str, call_id: str, **kw: object) -> bytes:
        return make_request(method, f"sip:{user}@{self.server[0]}:{self.server[1]}",
                            via_host=f"127.0.0.1:{self.port}", call_id=call_id,
                            **kw)  # type: ignore[arg-type]

    async def call(self, user: str, call_id: str, formats: str = "0 101"
                   ) -> tuple[bytes, int | None]:
        """INVITE with an offer, its final, our ACK: the final and the stream's port."""
        await self.send(self.request(
            "INVITE", user, call_id, body=offer(self.rtp.getsockname()[1], formats),
            headers=[("Contact", f"<sip:t@127.0.0.1:{self.port}>"),
                     ("Content-Type", "application/sdp")]))
        final = await self.final()
        if final.startswith(b"SIP/2.0 2"):
            await self.send(self.request("ACK", user, call_id, to_tag=to_tag(final)))
        port = re.search(rb"m=audio (\d+)", final.split(b"\r\n\r\n", 1)[1])
        return final, int(port[1]) if port else None

    async def rtp_recv(self) -> bytes:
        return await asyncio.wait_for(self.loop.sock_recv(self.rtp, 2048), TIMEOUT)


def to_tag(response: bytes) -> str:
    found = re.search(rb"\r\nTo: [^\r]*;tag=([^;\r]+)", response)
    assert found, response
    return found[1].decode()


@pytest.fixture
async def responder() -> AsyncIterator[Responder]:
    low, high = free_range()
    async with Responder(SCENARIO.format(low=low, high=high)) as running:
        yield running


@pytest.fixture
async def phone(responder: Responder) -> AsyncIterator[Phone]:
    client = Phone(responder)
    yield client
    client.close()


async def test_echo_comes_back_as_our_stream_and_dtmf_is_journaled(
        responder: Responder, phone: Phone) -> None:
    final, port = await phone.call("echo", "echo-1")
    assert final.startswith(b"SIP/2.0 200") and port is not None
    assert b"m=audio %d RTP/AVP 0 101" % port in final
    target = ("127.0.0.1", port)
    for n in range(3):
        phone.rtp.sendto(pack_rtp(0, 100 + n, 8000 + 160 * n, 0xABC, bytes([n]) * 160), target)
        echoed = parse_rtp(await phone.rtp_recv())
        assert echoed.payload == bytes([n]) * 160 and echoed.ssrc != 0xABC
    sequence = 200
    for n, digit in enumerate("12#"):
        for timestamp, marker, payload in sender_packets(digit, 50000 + 4000 * n):
            phone.rtp.sendto(pack_rtp(101, sequence, timestamp, 0xABC, payload, marker=marker),
                             target)
            sequence += 1
    [invite] = await responder.wait_for("INVITE", dtmf="12#", timeout=TIMEOUT)
    media = invite.media.summary() if invite.media else {}
    assert (media["codec"], media["packets_received"], media["packets_sent"]) == ("PCMU", 3, 3)
    # A digit in SIP INFO joins them, in the order it came (twice: the compiled path
    # must leave every INFO to the engine).
    for cseq in (2, 3):
        await phone.send(phone.request(
            "INFO", "echo", "echo-1", cseq=cseq, to_tag=to_tag(final),
            body=b"Signal=5\r\nDuration=160\r\n",
            headers=[("Content-Type", "application/dtmf-relay")]))
        assert (await phone.final()).startswith(b"SIP/2.0 200")
    await responder.verify("INVITE", dtmf="12#55", exactly=1)
    await phone.send(phone.request("BYE", "echo", "echo-1", cseq=4, to_tag=to_tag(final)))
    assert (await phone.final()).startswith(b"SIP/2.0 200")
    assert responder.server is not None and responder.server.engine.media is not None
    assert len(responder.server.engine.media) == 0  # the BYE ended the stream


async def test_a_tone_the_client_can_hear(responder: Responder, phone: Phone) -> None:
    _, port = await phone.call("tone", "tone-1")
    assert port is not None
    packets = [parse_rtp(await phone.rtp_recv()) for _ in range(25)]
    assert {p.payload_type for p in packets} == {0}
    pcm = b"".join(g711.decode("PCMU", p.payload) for p in packets)
    assert goertzel_power(pcm, 1000.0) > 100 * goertzel_power(pcm, 1300.0)


async def test_no_codec_in_common_is_488(responder: Responder, phone: Phone) -> None:
    final, _ = await phone.call("echo", "g729-1", formats="18")
    assert final.startswith(b"SIP/2.0 488 Not Acceptable Here")
    assert b"Warning: 305 " in final


async def test_no_port_free_is_503_and_a_call_that_ends_gives_its_port_back(
        responder: Responder, phone: Phone) -> None:
    calls = []
    for n in range(4):  # the range holds four streams
        final, port = await phone.call("echo", f"full-{n}")
        assert port is not None
        calls.append((f"full-{n}", final))
    final, _ = await phone.call("echo", "full-4")
    assert final.startswith(b"SIP/2.0 503") and b"Retry-After: 5" in final
    call_id, first = calls[0]
    await phone.send(phone.request("BYE", "echo", call_id, cseq=2, to_tag=to_tag(first)))
    await phone.final()
    final, port = await phone.call("echo", "full-5")
    assert final.startswith(b"SIP/2.0 200") and port is not None


async def test_a_cancelled_call_and_the_far_ends_bye_end_the_stream(
        responder: Responder, phone: Phone) -> None:
    invite = phone.request("INVITE", "ringing", "ring-1", branch="z9hG4bK-ring",
                           body=offer(phone.rtp.getsockname()[1]),
                           headers=[("Contact", f"<sip:t@127.0.0.1:{phone.port}>"),
                                    ("Content-Type", "application/sdp")])
    await phone.send(invite)
    assert (await phone.recv()).startswith(b"SIP/2.0 1")
    assert responder.server is not None and responder.server.engine.media is not None
    assert len(responder.server.engine.media) == 1
    await phone.send(phone.request("CANCEL", "ringing", "ring-1", branch="z9hG4bK-ring"))
    assert (await phone.final()).startswith(b"SIP/2.0 200")  # the CANCEL's
    terminated = await phone.final()
    assert terminated.startswith(b"SIP/2.0 487")
    # The ACK of the 487 is in the INVITE's transaction (RFC 3261 17.1.1.3).
    await phone.send(phone.request("ACK", "ringing", "ring-1", branch="z9hG4bK-ring",
                                   to_tag=to_tag(terminated)))
    [cancel] = await responder.wait_for("CANCEL", timeout=TIMEOUT)
    assert cancel.outcome.startswith("CANCEL of a pending INVITE"), cancel.outcome
    assert len(responder.server.engine.media) == 0
    await phone.call("hangup", "hang-1")
    assert len(responder.server.engine.media) == 1
    while not (await phone.recv()).startswith(b"BYE "):
        pass
    assert len(responder.server.engine.media) == 0  # the far end's BYE ended it


async def test_hostile_datagrams_on_the_stream_port_while_sip_answers(
        responder: Responder, phone: Phone) -> None:
    _, port = await phone.call("echo", "flood-1")
    assert port is not None
    target = ("127.0.0.1", port)
    phone.rtp.sendto(pack_rtp(0, 1, 160, 0xABC, b"\x55" * 160), target)  # latches
    await phone.rtp_recv()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        for n in range(500):
            stranger.sendto(os.urandom(n % 300), target)
            if n % 50 == 0:
                stranger.sendto(pack_rtp(0, n, n * 160, 0x666, b"\x00" * 160), target)
    await phone.send(phone.request("OPTIONS", "anyone", "opt-1"))
    assert (await phone.final()).startswith(b"SIP/2.0 200")
    [invite] = responder.requests("INVITE")
    media = invite.media.summary() if invite.media else {}
    assert media["packets_received"] == 1 and media["packets_sent"] == 1
    assert int(str(media["foreign"])) + int(str(media["malformed"])) > 0


async def test_a_secure_profile_only_is_488(responder: Responder, phone: Phone) -> None:
    await phone.send(phone.request(
        "INVITE", "echo", "savp-1",
        body=offer(phone.rtp.getsockname()[1]).replace(b"RTP/AVP", b"RTP/SAVP"),
        headers=[("Contact", f"<sip:t@127.0.0.1:{phone.port}>"),
                 ("Content-Type", "application/sdp")]))
    final = await phone.final()
    assert final.startswith(b"SIP/2.0 488") and b"no RTP/AVP audio stream" in final
