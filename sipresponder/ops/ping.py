"""`sipresponder ping`: send one request (OPTIONS, or `--method`) and report the answer,
like `sipsak -s`.

Made for container health checks and Kubernetes probes, and handy by hand. The top
half is pure (target parsing, the request, response framing and matching, the
expected-code test); only `ping()` does I/O. It does not reuse the server's parser
on purpose: a health check that agreed with the server's own bugs would prove little,
and it keeps `ping` quick to start (a probe runs it every few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from ..sip.transports import Transport, is_transport
from .pingmessages import (
    Leg,
    ack_for_failure,
    build_request,
    cancel,
    cseq_method,
    header_values,
    in_dialog,
    method_name,
)
from .serveconfig import split_list

DEFAULT_PORT = 5060
# ping speaks neither TLS nor WebSocket: a probe needs no certificate or HTTP stack.
PING_TRANSPORTS: Final[tuple[Transport, ...]] = ("udp", "tcp")
# RFC 3261 17.1.2.2 (Timer E): a UDP request is retransmitted at T1, doubling up to T2.
T1, T2 = 0.5, 4.0
# How long a cancelled INVITE waits for its 487, to ACK it, after the timeout.
CANCEL_GRACE = 2.0
# A wildcard listen address is not a destination: ping the same host over loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class PingError(Exception):
    """No usable answer: unresolvable, refused, timed out, or a malformed response."""


@dataclass(frozen=True, slots=True)
class Target:
    transport: Transport  # one of PING_TRANSPORTS
    host: str  # IPv6 without brackets
    port: int
    uri: str  # the Request-URI

    def __str__(self) -> str:
        return f"{self.transport}:{_hostport(self.host, self.port)}"


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split_host(text: str) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPv6] or [IPv6]:PORT; the port defaults to 5060."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6]:PORT")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") > 1:
        raise ValueError(f"{text!r}: IPv6 addresses go in brackets, e.g. [::1]:5060")
    else:
        host, _, port_text = text.partition(":")
        port_text = port_text or str(DEFAULT_PORT)
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"{text!r}: invalid port {port_text!r}")
    return _WILDCARDS.get(host, host), int(port_text)


_SIP_URI = re.compile(
    r"sips?:(?:[^@;?]*@)?(?P<hostport>\[[^\]]*\](?::[0-9]*)?|[^;?:]*(?::[0-9]*)?)(?P<rest>[;?].*)?",
    re.IGNORECASE,
)


def parse_target(text: str, transport: str | None = None) -> Target:
    """A sip: URI (its user part and ;transport= kept), PROTO:HOST:PORT as `serve
    --listen` takes it, or HOST[:PORT]. ``transport`` (from --transport) wins."""
    text = text.strip()
    lower = text.lower()
    if lower.startswith("sips:"):
        raise ValueError(f"{text!r}: sips: needs TLS, which ping does not speak")
    if lower.startswith("sip:"):
        m = _SIP_URI.fullmatch(text)
        if m is None or not m["hostport"]:
            raise ValueError(f"{text!r}: expected sip:[user@]host[:port][;params]")
        host, port = _split_host(m["hostport"])
        param = re.search(r";transport=([a-z]+)", m["rest"] or "", re.IGNORECASE)
        proto = (transport or (param[1] if param else "udp")).lower()
        uri = text
    else:
        proto_text, sep, rest = text.partition(":")
        if sep and proto_text.lower() in PING_TRANSPORTS:
            proto, text = proto_text.lower(), rest
        elif sep and proto_text.isalpha() and (":" in rest or rest.startswith("[")):
            raise ValueError(f"{text!r}: transport {proto_text!r} is not udp or tcp")
        else:
            proto = "udp"
        host, port = _split_host(text)
        host = host or "127.0.0.1"  # as `serve --listen udp::5060` means every address
        proto = (transport or proto).lower()
        uri = f"sip:{_hostport(host, port)}"
    if not (is_transport(proto) and proto in PING_TRANSPORTS):
        raise ValueError(f"{text!r}: transport {proto!r} is not udp or tcp")
    if not host:
        raise ValueError(f"{text!r}: no host")
    return Target(proto, host, port, uri)


def default_target(environ: Mapping[str, str]) -> str:
    """What `ping` without a target pings: the first UDP or TCP address of
    SIPRESPONDER_LISTEN (so that a container's HEALTHCHECK follows its listen
    configuration), else 5060/udp."""
    for item in split_list(environ.get("SIPRESPONDER_LISTEN", "")):
        if item.lower().startswith(("udp:", "tcp:")):
            return item
    return f"udp:127.0.0.1:{DEFAULT_PORT}"


@dataclass(frozen=True, slots=True)
class Expect:
    """Which final codes count as success: exact codes and classes such as 2xx."""

    codes: frozenset[int]
    classes: frozenset[int]
    text: str

    @classmethod
    def parse(cls, text: str) -> Expect:
        codes, classes = set(), set()
        for item in text.replace(",", " ").split():
            if re.fullmatch(r"[1-6]xx", item, re.IGNORECASE):
                classes.add(int(item[0]))
            elif item.isdigit() and 100 <= int(item) <= 699:
                codes.add(int(item))
            else:
                raise ValueError(f"{item!r}: expected a code such as 486 or a class such as 2xx")
        if not codes and not classes:
            raise ValueError("expected at least one code or class")
        return cls(frozenset(codes), frozenset(classes), ",".join(text.replace(",", " ").split()))

    def __contains__(self, code: int) -> bool:
        return code in self.codes or code // 100 in self.classes


def build_options(target: Target, local: tuple[str, int], *, branch: str, call_id: str,
                  tag: str) -> bytes:
    """The OPTIONS request (RFC 3261 11): ``build_request`` for OPTIONS."""
    return build_request("OPTIONS", Leg(target.transport.upper(), target.uri, local, call_id,
                                        tag), branch)


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    reason: str
    raw: bytes

    @property
    def status_line(self) -> str:
        return f"SIP/2.0 {self.code} {self.reason}"

    @property
    def method(self) -> str | None:
        """The method of the request this answers (its CSeq's)."""
        return cseq_method(self.raw)


_STATUS = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ([^\r\n]*)\r?\n")


def parse_answer(data: bytes, call_id: str) -> Answer | None:
    """The response in ``data`` if it answers our request (same Call-ID); None for a
    stray message. Raises PingError for something that is not a SIP response."""
    m = _STATUS.match(data)
    if m is None:
        raise PingError(f"not a SIP response: {data[:60]!r}")
    head = data.split(b"\r\n\r\n", 1)[0]
    if call_id not in header_values(head, "call-id", "i"):
        return None
    return Answer(int(m[1]), m[2].decode("utf-8", "replace"), data)


def take_message(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Split the first whole message off a TCP stream (framed by Content-Length, which
    RFC 3261 18.3 makes mandatory on streams); None until it has all arrived."""
    buffer = buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lengths = header_values(buffer[:end], "content-length", "l")
    if not lengths or not lengths[0].isdigit():
        raise PingError("response on a stream without a valid Content-Length")
    stop = end + 4 + int(lengths[0])
    if len(buffer) < stop:
        return None
    return buffer[:stop], buffer[stop:]


# --- I/O --------------------------------------------------------------------------------

class _Datagrams(asyncio.DatagramProtocol):
    """Received datagrams and socket errors (an ICMP port unreachable arrives as
    ConnectionRefusedError) in one queue, so a waiting reader hears of either."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)


class _Channel:
    """The one socket a ping talks over: every request of it goes to the target (the
    next hop, as a phone sends to its outbound proxy), every answer comes back here."""

    reliable: bool
    local: tuple[str, int]

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def receive(self) -> bytes:
        """The next whole message; raises what the socket reported."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _UDPChannel(_Channel):
    reliable = False

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _Datagrams) -> None:
        self._transport, self._protocol = transport, protocol
        self.local = transport.get_extra_info("sockname")[:2]

    def send(self, data: bytes) -> None:
        self._transport.sendto(data)

    async def receive(self) -> bytes:
        item = await self._protocol.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self._transport.close()


class _TCPChannel(_Channel):
    reliable = True

    def __init__(self, target: Target, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._target, self._reader, self._writer = target, reader, writer
        self._buffer = b""
        self.local = writer.get_extra_info("sockname")[:2]

    def send(self, data: bytes) -> None:
        self._writer.write(data)  # a few hundred octets: the socket buffer takes them

    async def receive(self) -> bytes:
        while (taken := take_message(self._buffer)) is None:
            chunk = await self._reader.read(65536)
            if not chunk:
                raise PingError(f"{self._target}: connection closed before a final response")
            self._buffer += chunk
        message, self._buffer = taken
        return message

    def close(self) -> None:
        self._writer.close()


async def _open(target: Target) -> _Channel:
    loop = asyncio.get_running_loop()
    if target.transport == "udp":
        transport, protocol = await loop.create_datagram_endpoint(
            _Datagrams, remote_addr=(target.host, target.port))
        return _UDPChannel(transport, protocol)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    return _TCPChannel(target, reader, writer)


OnProvisional = Callable[[Answer, float], None] | None


async def _transaction(channel: _Channel, request: bytes, call_id: str, method: str,
                       on_provisional: OnProvisional = None,
                       on_other: Callable[[Answer], None] | None = None
                       ) -> tuple[Answer, float]:
    """Send ``request`` and wait for its final response (our Call-ID and the request's
    CSeq method); returns it and the round trip from the first send. Over UDP the
    request is sent again on RFC 3261's timers: an INVITE on Timer A (T1, doubling,
    until a provisional response), anything else on Timer E (T1, doubling up to T2,
    then T2 once a provisional came). ``on_other``: responses of this call to another
    of its requests (a 2xx of the INVITE sent again while the BYE waits)."""
    started = time.perf_counter()
    channel.send(request)
    interval = T1
    next_send: float | None = None if channel.reliable else started + T1
    while True:
        if next_send is None:
            data = await channel.receive()
        else:
            try:
                data = await asyncio.wait_for(channel.receive(),
                                              max(0.0, next_send - time.perf_counter()))
            except TimeoutError:  # UDP may lose the request or the answer: send again
                channel.send(request)
                interval = 2 * interval if method == "INVITE" else min(2 * interval, T2)
                next_send = time.perf_counter() + interval
                continue
        answer = parse_answer(data, call_id)
        if answer is None:
            continue
        if answer.method not in (method, None):  # None: no CSeq, so nothing says it is not
            if on_other is not None:
                on_other(answer)
            continue
        rtt = time.perf_counter() - started
        if answer.code >= 200:
            return answer, rtt
        if on_provisional is not None:
            on_provisional(answer, rtt)
        if next_send is not None:  # a provisional answer: keep quiet (longer)
            interval = T2
            next_send = None if method == "INVITE" else time.perf_counter() + T2


async def ping(target: Target, timeout: float, on_provisional: OnProvisional = None, *,
               method: str = "OPTIONS", on_teardown: OnProvisional = None
               ) -> tuple[Answer, float]:
    """Send one ``method`` request and wait for its final response; returns it and the
    round-trip time in seconds (first send to final response). An INVITE's call is
    then ended as RFC 3261 says: a non-2xx is ACKed in its transaction, a 2xx gets an
    ACK and a BYE (whose final response goes to ``on_teardown``); an INVITE with no
    final response by the timeout is CANCELled. Each final response is waited for up
    to ``timeout`` seconds. PingError on any failure."""
    where = str(target)
    try:
        return await _ping(target, timeout, on_provisional, method, on_teardown)
    except ConnectionRefusedError:
        raise PingError(f"{where}: connection refused (is anything listening there?)") from None
    except OSError as exc:
        raise PingError(f"{where}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a response the follow-up requests cannot be built from
        raise PingError(f"{where}: {exc}") from None


def _ids() -> tuple[str, str, str]:
    """A Call-ID, a From tag and a branch (RFC 3261 8.1.1.7: starting z9hG4bK)."""
    ids = secrets.token_hex(8)
    return f"{ids}@sipresponder-ping", ids[:8], f"z9hG4bK-{ids}"


async def _ping(target: Target, timeout: float, on_provisional: OnProvisional, method: str,
                on_teardown: OnProvisional) -> tuple[Answer, float]:
    where = str(target)
    call_id, tag, branch = _ids()
    try:
        channel = await asyncio.wait_for(_open(target), timeout)
    except TimeoutError:
        raise PingError(f"no response from {where} within {timeout:g} s") from None
    try:
        leg = Leg(target.transport.upper(), target.uri, channel.local, call_id, tag)
        request = build_request(method, leg, branch)
        heard: list[Answer] = []

        def provisional(answer: Answer, rtt: float) -> None:
            heard.append(answer)
            if on_provisional is not None:
                on_provisional(answer, rtt)

        try:
            async with asyncio.timeout(timeout):
                answer, rtt = await _transaction(channel, request, call_id, method, provisional)
        except TimeoutError:
            if method != "INVITE" or not heard:
                raise PingError(f"no response from {where} within {timeout:g} s") from None
            # RFC 3261 9.1: an INVITE that got a provisional response can be cancelled
            # (before one, the CANCEL could overtake it); its 487 is then ACKed.
            ended = await _cancel(channel, leg, request, call_id)
            raise PingError(f"no final response from {where} within {timeout:g} s (after "
                            f"{heard[-1].status_line}); the INVITE was cancelled"
                            + ("" if ended else ", with no answer to that")) from None
        if method == "INVITE":
            await _end_call(channel, leg, request, answer, timeout, on_teardown, where)
        return answer, rtt
    finally:
        channel.close()


async def _end_call(channel: _Channel, leg: Leg, invite: bytes, answer: Answer,
                    timeout: float, on_teardown: OnProvisional, where: str) -> None:
    """ACK the INVITE's final response; after a 2xx, end the call with a BYE."""
    if answer.code >= 300:  # 17.1.1.3: the ACK is part of the INVITE's transaction
        channel.send(ack_for_failure(invite, answer.raw))
        return
    # 13.2.2.4: the ACK of a 2xx is a transaction of its own, sent again for each 2xx
    # that arrives again (the UAS repeats it until it hears the ACK).
    ack = in_dialog("ACK", 1, leg, answer.raw, _ids()[2])
    channel.send(ack)

    def again(other: Answer) -> None:
        if other.method == "INVITE" and 200 <= other.code < 300:
            channel.send(ack)

    bye = in_dialog("BYE", 2, leg, answer.raw, _ids()[2])
    try:
        async with asyncio.timeout(timeout):
            ended, rtt = await _transaction(channel, bye, leg.call_id, "BYE", on_other=again)
    except TimeoutError:
        raise PingError(f"no response to the BYE from {where} within {timeout:g} s: the "
                        "call may still be up") from None
    if on_teardown is not None:
        on_teardown(ended, rtt)


async def _cancel(channel: _Channel, leg: Leg, invite: bytes, call_id: str) -> bool:
    """CANCEL the INVITE and ACK its final response (a 487, or a 2xx that crossed the
    CANCEL, which then gets its ACK and BYE); False if no final response came within
    CANCEL_GRACE seconds."""
    channel.send(cancel(invite))
    try:
        async with asyncio.timeout(CANCEL_GRACE):
            while True:
                answer = parse_answer(await channel.receive(), call_id)
                if answer is not None and answer.method == "INVITE" and answer.code >= 200:
                    break
            await _end_call(channel, leg, invite, answer, CANCEL_GRACE, None, "")
    except (TimeoutError, PingError):
        return False
    return True


# --- command line -----------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ping_parser = sub.add_parser(
        "ping",
        help="send one OPTIONS (or --method) and check the answer (health checks, like "
        "sipsak -s)",
        description="Send one SIP request (OPTIONS unless --method says otherwise) and wait "
        "for the final response. Exit 0 when its code is expected, 1 for another code, 2 "
        "for no answer (timeout, refused).",
    )
    ping_parser.add_argument(
        "target",
        nargs="?",
        help="sip:[user@]host[:port][;transport=tcp], PROTO:HOST:PORT or HOST[:PORT] "
        "(default: the first SIPRESPONDER_LISTEN address, else udp:127.0.0.1:5060; "
        "a wildcard host means loopback)",
    )
    ping_parser.add_argument(
        "--method", "-m", default="OPTIONS", type=_method, metavar="NAME",
        help="the request's method (default OPTIONS), e.g. INVITE (a 2xx is ACKed and the "
        "call ended with a BYE, anything else ACKed), REGISTER (a query of the bindings, "
        "no Contact), SUBSCRIBE (a fetch, Expires: 0), MESSAGE, INFO, NOTIFY")
    ping_parser.add_argument("--transport", "-t", choices=PING_TRANSPORTS,
                             help="override the target's transport")
    ping_parser.add_argument(
        "--expect", "-e", default=None, metavar="CODES",
        help="final codes that count as success, e.g. 200, 486 or 2xx,3xx "
        "(default: SIPRESPONDER_PING_EXPECT, else 2xx)")
    ping_parser.add_argument("--timeout", type=float, default=5.0,
                             help="seconds to wait for each final response (default 5)")
    ping_parser.add_argument("--verbose", "-v", action="store_true",
                             help="print every response whole")


def _method(text: str) -> str:
    try:
        return method_name(text)
    except ValueError as exc:  # argparse prints an ArgumentTypeError's text as it is
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    try:
        target = parse_target(args.target or default_target(environ), args.transport)
        expect = Expect.parse(args.expect or environ.get("SIPRESPONDER_PING_EXPECT") or "2xx")
        if not args.timeout > 0:
            raise ValueError(f"--timeout {args.timeout:g}: expected a positive number")
        method = method_name(getattr(args, "method", "OPTIONS"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(answer: Answer, rtt: float) -> None:
        if args.verbose:
            print(answer.raw.decode("utf-8", "replace").rstrip("\r\n"))
        # an OPTIONS line stays as health checks have always parsed it
        what = "" if method == "OPTIONS" else f"{answer.method}, "
        print(f"{answer.status_line}  ({what}{target}, {rtt * 1000:.1f} ms)", flush=True)

    teardown: list[tuple[Answer, float]] = []
    try:
        answer, rtt = asyncio.run(ping(target, args.timeout, show, method=method,
                                       on_teardown=lambda a, t: teardown.append((a, t))))
    except PingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    show(answer, rtt)
    for ended, took in teardown:  # the BYE after a 2xx, printed after what it ends
        show(ended, took)
    if answer.code not in expect:
        print(f"error: expected {expect.text}, got {answer.code} {answer.reason}",
              file=sys.stderr)
        return 1
    for ended, _ in teardown:
        if not 200 <= ended.code < 300:
            print(f"error: the BYE that ended the call got {ended.code} {ended.reason}: "
                  "the call may still be up", file=sys.stderr)
            return 1
    return 0
