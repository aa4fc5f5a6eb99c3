"""`sipresponder ping`: its pure parts, then against the in-process responder and
against silent, refusing and misbehaving peers."""

from __future__ import annotations

import asyncio
import re
import socket

import asyncio_dgram
import pytest

from sipresponder.ops.cli import main
from sipresponder.ops.ping import (
    Answer,
    Expect,
    PingError,
    Target,
    build_options,
    default_target,
    parse_answer,
    parse_target,
    ping,
    take_message,
)
from sipresponder.ops.pingmessages import (
    Leg,
    ack_for_failure,
    build_request,
    cancel,
    in_dialog,
    method_name,
)
from sipresponder.sip.message import parse_request
from sipresponder.testing.api import Responder
from tests.sipclient import parse_response


@pytest.mark.parametrize(("text", "transport", "expected"), [
    ("127.0.0.1", None, Target("udp", "127.0.0.1", 5060, "sip:127.0.0.1:5060")),
    ("localhost:5070", None, Target("udp", "localhost", 5070, "sip:localhost:5070")),
    ("tcp:[::1]:5080", None, Target("tcp", "::1", 5080, "sip:[::1]:5080")),
    ("[::1]", "tcp", Target("tcp", "::1", 5060, "sip:[::1]:5060")),
    ("udp:0.0.0.0:5060", None, Target("udp", "127.0.0.1", 5060, "sip:127.0.0.1:5060")),
    ("udp::5062", None, Target("udp", "127.0.0.1", 5062, "sip:127.0.0.1:5062")),
    ("tcp:[::]:5060", None, Target("tcp", "::1", 5060, "sip:[::1]:5060")),
    ("sip:486@example.com", None, Target("udp", "example.com", 5060, "sip:486@example.com")),
    ("sip:bob:pw@[::1]:5090;transport=TCP", None,
     Target("tcp", "::1", 5090, "sip:bob:pw@[::1]:5090;transport=TCP")),
    ("sip:bob@host:5062;transport=tcp", "udp",
     Target("udp", "host", 5062, "sip:bob@host:5062;transport=tcp")),
    ("SIP:200@10.1.2.3?Subject=x", None, Target("udp", "10.1.2.3", 5060, "SIP:200@10.1.2.3?Subject=x")),
])
def test_parse_target(text: str, transport: str | None, expected: Target) -> None:
    assert parse_target(text, transport) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("sips:bob@host", "TLS"),
    ("::1:5060", "brackets"),
    ("host:99999", "invalid port"),
    ("host:0", "invalid port"),
    ("[::1", "expected [IPv6]:PORT"),
    ("sip:bob@", "expected sip:"),
    ("tls:host:5061", "transport 'tls'"),
    ("sip:host;transport=sctp", "transport 'sctp'"),
    ("sip:bob@:5060", "no host"),
])
def test_parse_target_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_target(text)


def test_default_target_follows_the_first_listen_address() -> None:
    assert default_target({}) == "udp:127.0.0.1:5060"
    assert default_target({"SIPRESPONDER_LISTEN": " tcp:0.0.0.0:5070, udp:0.0.0.0:5070"}) == \
        "tcp:0.0.0.0:5070"
    assert default_target({"SIPRESPONDER_LISTEN": "tls:0.0.0.0:5061 wss::8443 UDP::5062"}) == \
        "UDP::5062"  # ping speaks neither TLS nor WebSocket
    assert parse_target(default_target({"SIPRESPONDER_LISTEN": "tcp:0.0.0.0:5070"})) == \
        Target("tcp", "127.0.0.1", 5070, "sip:127.0.0.1:5070")


def test_expect() -> None:
    default = Expect.parse("2xx")
    assert 200 in default and 299 in default
    assert 199 not in default and 300 not in default
    several = Expect.parse("486, 3xx 603")
    assert [c for c in (200, 302, 399, 486, 487, 603) if c in several] == [302, 399, 486, 603]
    assert several.text == "486,3xx,603"
    for bad in ("", "abc", "700", "99", "7xx", "2XX0"):
        with pytest.raises(ValueError):
            Expect.parse(bad)


def test_the_request_parses_and_asks_for_rport() -> None:
    target = parse_target("tcp:[::1]:5080")
    raw = build_options(target, ("::1", 40000), branch="z9hG4bK-1", call_id="c1@x", tag="t1")
    request = parse_request(raw, datagram=True)
    assert request.method == "OPTIONS"
    assert raw.startswith(b"OPTIONS sip:[::1]:5080 SIP/2.0\r\n")
    assert b"\r\nVia: SIP/2.0/TCP [::1]:40000;branch=z9hG4bK-1;rport\r\n" in raw
    assert b"\r\nCSeq: 1 OPTIONS\r\n" in raw
    assert raw.endswith(b"\r\nContent-Length: 0\r\n\r\n")


def test_parse_answer_matches_by_call_id() -> None:
    ours = b"SIP/2.0 486 Busy Here\r\ni: abc@h\r\nContent-Length: 0\r\n\r\n"
    assert parse_answer(ours, "abc@h") == Answer(486, "Busy Here", ours)
    assert parse_answer(ours.replace(b"abc@h", b"other@h"), "abc@h") is None
    with pytest.raises(PingError, match="not a SIP response"):
        parse_answer(b"OPTIONS sip:x SIP/2.0\r\n\r\n", "abc@h")


def test_take_message_frames_a_stream() -> None:
    one = b"SIP/2.0 200 OK\r\nl: 4\r\n\r\nbody"
    two = b"SIP/2.0 180 Ringing\r\nContent-Length: 0\r\n\r\n"
    assert take_message(one[:-1]) is None
    assert take_message(b"\r\n\r\n" + one + two) == (one, two)
    assert take_message(two) == (two, b"")
    with pytest.raises(PingError, match="Content-Length"):
        take_message(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")


# --- against the in-process responder ---------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_ping_gets_200(responder, transport: str) -> None:
    port = responder.udp_port if transport == "udp" else responder.tcp_port
    answer, rtt = await ping(parse_target(f"{transport}:127.0.0.1:{port}"), timeout=5)
    assert answer.status_line == "SIP/2.0 200 OK"
    assert 0 < rtt < 5
    response = parse_response(answer.raw)  # an independent parser accepts it whole
    assert response.get("CSeq") == "1 OPTIONS"
    assert re.search(r";rport=[0-9]+", response.get("Via"))  # answered to our source port


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_provisional_responses_are_reported_then_the_final_one(responder,
                                                                     transport: str) -> None:
    port = responder.udp_port if transport == "udp" else responder.tcp_port
    seen: list[int] = []
    target = parse_target(f"sip:180@127.0.0.1:{port};transport={transport}")
    answer, _ = await ping(target, timeout=5, on_provisional=lambda a, rtt: seen.append(a.code))
    assert seen == [180]
    assert answer.code == 200


async def test_silence_is_a_timeout_after_retransmissions() -> None:
    silent = await asyncio_dgram.bind(("127.0.0.1", 0))
    port = silent.sockname[1]
    with pytest.raises(PingError, match=rf"no response from udp:127.0.0.1:{port} within 0.8 s"):
        await ping(parse_target(f"udp:127.0.0.1:{port}"), timeout=0.8)
    # Timer E: sent at once and again after T1 (0.5 s), the same octets both times.
    copies = []
    while len(copies) < 2:
        data, _ = await asyncio.wait_for(silent.recv(), 1)
        copies.append(data)
    silent.close()
    assert copies[0] == copies[1]
    assert copies[0].startswith(b"OPTIONS ")


def _free_port(kind: socket.SocketKind) -> int:
    """A port with nothing bound to it (bound, then released)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_refused(transport: str) -> None:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    port = _free_port(kind)
    with pytest.raises(PingError, match="connection refused"):
        await ping(parse_target(f"{transport}:127.0.0.1:{port}"), timeout=5)


async def test_stray_responses_are_skipped_and_rport_is_honoured() -> None:
    """A peer that first sends a response to some other request: ping waits on."""
    peer = await asyncio_dgram.bind(("127.0.0.1", 0))

    async def answer_twice() -> None:
        data, source = await peer.recv()
        call_id = re.search(rb"\r\nCall-ID: ([^\r]+)", data)[1]
        stray = b"SIP/2.0 500 Stray\r\nCall-ID: someone-else\r\nContent-Length: 0\r\n\r\n"
        await peer.send(stray, source)
        await peer.send(b"SIP/2.0 202 Fine\r\nCall-ID: " + call_id +
                        b"\r\nContent-Length: 0\r\n\r\n", source)

    task = asyncio.create_task(answer_twice())
    answer, _ = await ping(parse_target(f"127.0.0.1:{peer.sockname[1]}"), timeout=5)
    await task
    peer.close()
    assert (answer.code, answer.reason) == (202, "Fine")


# --- the command line: exit codes and what it prints -------------------------------------
# main() runs its own event loop, so it goes to a thread while the responder runs here.

async def test_cli_exit_codes(responder, capsys) -> None:
    udp = f"127.0.0.1:{responder.udp_port}"
    assert await asyncio.to_thread(main, ["ping", udp]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"SIP/2\.0 200 OK  \(udp:{udp}, [0-9.]+ ms\)\n", out), out

    assert await asyncio.to_thread(main, ["ping", f"sip:486@{udp}"]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("SIP/2.0 486 Busy Here  (")
    assert "error: expected 2xx, got 486 Busy Here\n" in captured.err

    assert await asyncio.to_thread(
        main, ["ping", "--expect", "486", "-t", "tcp", f"sip:486@127.0.0.1:{responder.tcp_port}"]
    ) == 0

    refused = _free_port(socket.SOCK_STREAM)
    assert await asyncio.to_thread(main, ["ping", f"tcp:127.0.0.1:{refused}"]) == 2
    assert "connection refused" in capsys.readouterr().err

    assert await asyncio.to_thread(main, ["ping", "--timeout", "0", udp]) == 2
    assert "--timeout 0" in capsys.readouterr().err


async def test_cli_defaults_come_from_the_environment(responder, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SIPRESPONDER_LISTEN", f"tcp:0.0.0.0:{responder.tcp_port} udp:0.0.0.0:1")
    monkeypatch.setenv("SIPRESPONDER_PING_EXPECT", "3xx")
    assert await asyncio.to_thread(main, ["ping"]) == 1
    assert "error: expected 3xx, got 200 OK\n" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["ping", "--expect", "200"]) == 0
    assert f"(tcp:127.0.0.1:{responder.tcp_port}, " in capsys.readouterr().out


# --- --method (issue 18) -------------------------------------------------------------------

def test_method_names() -> None:
    assert method_name("invite") == "INVITE"
    assert method_name(" MESSAGE ") == "MESSAGE"
    assert method_name("X-CUSTOM.1") == "X-CUSTOM.1"
    for bad, message in (("ACK", "ACK cannot be pinged: an ACK is never answered"),
                         ("cancel", "CANCEL cannot be pinged: a CANCEL needs an INVITE"),
                         ("IN VITE", "'IN VITE' is not a SIP method name"),
                         ("", "'' is not a SIP method name")):
        with pytest.raises(ValueError, match=re.escape(message)):
            method_name(bad)


LEG = Leg("UDP", "sip:alice@[::1]:5080;transport=udp", ("::1", 40000), "c1@x", "t1")


@pytest.mark.parametrize(("method", "present", "absent"), [
    ("INVITE", ["Contact: <sip:ping@[::1]:40000>", "Content-Type: application/sdp",
                "c=IN IP6 ::1", "a=inactive"], []),
    ("REGISTER", ["REGISTER sip:[::1]:5080;transport=udp SIP/2.0",
                  "From: <sip:alice@[::1]:5080>;tag=t1", "To: <sip:alice@[::1]:5080>"],
     ["Contact:", "Expires:"]),
    ("SUBSCRIBE", ["Event: presence", "Expires: 0", "Contact: "], []),
    ("NOTIFY", ["Event: presence", "Subscription-State: terminated", "Contact: "], []),
    ("MESSAGE", ["Content-Type: text/plain", "Content-Length: 4"], ["Contact:"]),
    ("INFO", ["INFO sip:alice@[::1]:5080;transport=udp SIP/2.0", "CSeq: 1 INFO"],
     ["Contact:"]),
])
def test_each_method_is_a_well_formed_request(method: str, present: list[str],
                                             absent: list[str]) -> None:
    raw = build_request(method, LEG, "z9hG4bK-1")
    request = parse_request(raw, datagram=True)  # the responder's own parser takes it
    assert request.method == method and request.error is None
    text = raw.decode()
    for part in present:
        assert part in text, (part, text)
    for part in absent:
        assert part not in text, (part, text)


def test_register_without_a_user_registers_ping() -> None:
    raw = build_request("REGISTER", Leg("TCP", "sip:example.test", ("10.0.0.1", 5), "c", "t"),
                        "z9hG4bK-2").decode()
    assert raw.startswith("REGISTER sip:example.test SIP/2.0\r\n")
    assert "\r\nTo: <sip:ping@example.test>\r\n" in raw


OK_2XX = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP [::1]:40000;branch=z9hG4bK-1\r\n"
          b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
          b"Record-Route: <sip:p3.example;lr>\r\n"
          b"From: <sip:ping@[::1]:40000>;tag=t1\r\nTo: <sip:alice@h>;tag=bob1\r\n"
          b"Call-ID: c1@x\r\nCSeq: 1 INVITE\r\nContact: \"Bob\" <sip:bob@192.0.2.9:5062>;x=y\r\n"
          b"Content-Length: 0\r\n\r\n")


def test_ack_and_bye_of_a_2xx_follow_the_dialog() -> None:
    """RFC 3261 13.2.2.4 and 15.1.1: new branches, the remote target from Contact, the
    route set from Record-Route reversed, the To tag of the 2xx, CSeq 1 ACK then 2 BYE."""
    ack = in_dialog("ACK", 1, LEG, OK_2XX, "z9hG4bK-a").decode()
    bye = in_dialog("BYE", 2, LEG, OK_2XX, "z9hG4bK-b").decode()
    for message, cseq in ((ack, "1 ACK"), (bye, "2 BYE")):
        method = cseq.split()[1]
        assert message.startswith(f"{method} sip:bob@192.0.2.9:5062 SIP/2.0\r\n")
        assert f"\r\nCSeq: {cseq}\r\n" in message
        assert "\r\nTo: <sip:alice@h>;tag=bob1\r\n" in message
        assert "\r\nFrom: <sip:ping@[::1]:40000>;tag=t1\r\n" in message
        assert re.findall(r"\r\nRoute: ([^\r]+)", message) == [
            "<sip:p3.example;lr>", "<sip:p2.example;lr>", "<sip:p1.example;lr>"]
        assert parse_request(message.encode(), datagram=True).error is None
    assert ";branch=z9hG4bK-a;" in ack and ";branch=z9hG4bK-b;" in bye


def test_ack_of_a_failure_and_cancel_stay_in_the_invites_transaction() -> None:
    """RFC 3261 17.1.1.3 and 9.1: the INVITE's Request-URI and top Via (its branch);
    the ACK takes the response's To tag, the CANCEL the INVITE's To."""
    invite = build_request("INVITE", LEG, "z9hG4bK-inv")
    busy = OK_2XX.replace(b"200 OK", b"486 Busy Here")
    ack = ack_for_failure(invite, busy).decode()
    assert ack.startswith("ACK sip:alice@[::1]:5080;transport=udp SIP/2.0\r\n")
    assert "branch=z9hG4bK-inv;" in ack and "\r\nCSeq: 1 ACK\r\n" in ack
    assert "\r\nTo: <sip:alice@h>;tag=bob1\r\n" in ack
    cancelled = cancel(invite).decode()
    assert cancelled.startswith("CANCEL sip:alice@[::1]:5080;transport=udp SIP/2.0\r\n")
    assert "branch=z9hG4bK-inv;" in cancelled and "\r\nCSeq: 1 CANCEL\r\n" in cancelled
    assert "\r\nTo: <sip:alice@[::1]:5080;transport=udp>\r\n" in cancelled
    with pytest.raises(ValueError, match="the response has no To header"):
        ack_for_failure(invite, b"SIP/2.0 486 Busy Here\r\nCSeq: 1 INVITE\r\n\r\n")


def _calls(responder) -> list[tuple[str, list[int]]]:
    return [(e.method, e.codes) for e in responder.journal]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_invite_answered_is_acked_and_ended_with_a_bye(transport: str) -> None:
    async with Responder() as r:
        port = r.address(transport)[1]
        ended: list[int] = []
        answer, _ = await ping(parse_target(f"sip:200@127.0.0.1:{port};transport={transport}"),
                               5, method="INVITE", on_teardown=lambda a, t: ended.append(a.code))
        assert answer.code == 200 and ended == [200]
        entries = await r.wait_for(count=3, timeout=5)
        assert [(e.method, e.codes) for e in entries] == [
            ("INVITE", [200]), ("ACK", []), ("BYE", [200])]
        invite, ack, bye = entries
        assert {e.call_id for e in entries} == {invite.call_id}
        assert ack.header("CSeq") == "1 ACK" and bye.header("CSeq") == "2 BYE"
        tag = re.search(r";tag=([^;]+)", parse_response(invite.responses[0]).get("To"))[1]
        assert f";tag={tag}" in ack.header("To") and f";tag={tag}" in bye.header("To")


async def test_invite_refused_is_acked_in_its_transaction() -> None:
    async with Responder() as r:
        answer, _ = await ping(parse_target(f"sip:486@127.0.0.1:{r.address()[1]}"), 5,
                               method="INVITE")
        assert answer.code == 486
        invite, ack = await r.wait_for(count=2, timeout=5)
        assert (invite.method, ack.method) == ("INVITE", "ACK")
        assert ack.outcome == "ACK absorbed"  # matched the INVITE's transaction
        branch = re.search(r"branch=([^;]+)", invite.header("Via"))[1]
        assert f"branch={branch};" in ack.header("Via")


RINGING = """
[[rule]]
name = "ring-forever"
match = { method = "INVITE" }
provisional = [180]
action = "provisional-only"
"""


async def test_invite_that_only_rings_is_cancelled_at_the_timeout() -> None:
    async with Responder(RINGING) as r:
        seen: list[int] = []
        with pytest.raises(PingError, match=r"^no final response from udp:127\.0\.0\.1:[0-9]+ "
                           r"within 0\.5 s \(after SIP/2\.0 180 Ringing\); the INVITE was "
                           r"cancelled$"):
            await ping(parse_target(f"127.0.0.1:{r.address()[1]}"), 0.5, method="INVITE",
                       on_provisional=lambda a, t: seen.append(a.code))
        assert seen == [180]
        entries = await r.wait_for(count=3, timeout=5)
        assert [e.method for e in entries] == ["INVITE", "CANCEL", "ACK"]
        # (which entry journals the 487 is the journal's business: issue 18 item 10)
        assert entries[1].codes[0] == 200 and 487 in entries[0].codes + entries[1].codes
        assert entries[2].outcome == "ACK absorbed"  # it ended the INVITE's transaction


@pytest.mark.parametrize("method", ["REGISTER", "SUBSCRIBE", "MESSAGE", "INFO", "NOTIFY"])
async def test_other_methods_reach_the_rules_for_them(method: str) -> None:
    async with Responder(f'[[rule]]\nmatch = {{ method = "{method}" }}\ncode = 202\n'
                         "[default]\ncode = 500\n") as r:
        answer, _ = await ping(parse_target(f"tcp:127.0.0.1:{r.address('tcp')[1]}"), 5,
                               method=method)
        assert answer.code == 202
        [entry] = r.requests()
        assert entry.method == method and entry.header("CSeq") == f"1 {method}"


async def test_cli_method(capsys) -> None:
    async with Responder() as r:
        udp = f"127.0.0.1:{r.address()[1]}"
        assert await asyncio.to_thread(main, ["ping", "--method", "invite", udp]) == 0
        out = capsys.readouterr().out
        assert re.fullmatch(rf"SIP/2\.0 200 OK  \(INVITE, udp:{udp}, [0-9.]+ ms\)\n"
                            rf"SIP/2\.0 200 OK  \(BYE, udp:{udp}, [0-9.]+ ms\)\n", out), out
        assert await asyncio.to_thread(main, ["ping", "-m", "INVITE", f"sip:486@{udp}"]) == 1
        captured = capsys.readouterr()
        assert captured.out.startswith("SIP/2.0 486 Busy Here  (INVITE, ")
        assert "error: expected 2xx, got 486 Busy Here\n" in captured.err
        with pytest.raises(SystemExit):
            await asyncio.to_thread(main, ["ping", "--method", "ACK", udp])
        assert "ACK cannot be pinged: an ACK is never answered" in capsys.readouterr().err


def _reply(request: bytes, status: bytes, to_tag: bytes = b";tag=uas1") -> bytes:
    """A response to ``request`` echoing its Via, From, To (plus a tag), Call-ID, CSeq."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    keep = [line for line in head[1:] if line.split(b":", 1)[0].lower() in (
        b"via", b"from", b"to", b"call-id", b"cseq")]
    keep = [line + to_tag if line.lower().startswith(b"to:") and b";tag=" not in line
            else line for line in keep]
    return (b"SIP/2.0 " + status + b"\r\n" + b"\r\n".join(keep) +
            b"\r\nContact: <sip:uas@127.0.0.1>\r\nContent-Length: 0\r\n\r\n")


async def test_a_2xx_sent_again_gets_its_ack_again() -> None:
    """RFC 3261 13.2.2.4: a UAS that did not hear the ACK repeats its 2xx; the caller
    answers each copy with the ACK, also while its BYE waits."""
    peer = await asyncio_dgram.bind(("127.0.0.1", 0))
    received: list[bytes] = []

    async def uas() -> None:
        invite, source = await peer.recv()
        ok = _reply(invite, b"200 OK")
        await peer.send(ok, source)
        for _ in range(2):  # the ACK, and the BYE (sent at once after it)
            data, _ = await peer.recv()
            received.append(data)
        await peer.send(ok, source)  # as if the ACK had been lost
        data, _ = await peer.recv()
        received.append(data)
        await peer.send(_reply(received[1], b"200 OK"), source)

    task = asyncio.create_task(uas())
    ended: list[int] = []
    answer, _ = await ping(parse_target(f"127.0.0.1:{peer.sockname[1]}"), 5, method="INVITE",
                           on_teardown=lambda a, t: ended.append(a.code))
    await asyncio.wait_for(task, 5)
    peer.close()
    assert (answer.code, ended) == (200, [200])
    assert [m.split(b" ", 1)[0] for m in received] == [b"ACK", b"BYE", b"ACK"]
    assert received[0] == received[2]  # the same ACK, sent again
    assert received[0].startswith(b"ACK sip:uas@127.0.0.1 SIP/2.0\r\n")  # the 2xx's Contact


async def test_a_bye_left_unanswered_is_an_error_saying_so() -> None:
    peer = await asyncio_dgram.bind(("127.0.0.1", 0))

    async def uas() -> None:
        invite, source = await peer.recv()
        await peer.send(_reply(invite, b"200 OK"), source)

    task = asyncio.create_task(uas())
    with pytest.raises(PingError, match=r"no response to the BYE from udp:127\.0\.0\.1:[0-9]+ "
                       r"within 0\.6 s: the call may still be up"):
        await ping(parse_target(f"127.0.0.1:{peer.sockname[1]}"), 0.6, method="INVITE")
    await task
    peer.close()
