"""`sipresponder ping`: send one OPTIONS request and report the answer, like `sipsak -s`.

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

from .. import __version__
from ..sip.transports import Transport, is_transport
from .serveconfig import split_list

DEFAULT_PORT = 5060
# ping speaks neither TLS nor WebSocket: a probe needs no certificate or HTTP stack.
PING_TRANSPORTS: Final[tuple[Transport, ...]] = ("udp", "tcp")
# RFC 3261 17.1.2.2 (Timer E): a UDP request is retransmitted at T1, doubling up to T2.
T1, T2 = 0.5, 4.0
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
    """The OPTIONS request (RFC 3261 11); ;rport asks for the answer to come back to the
    port it was sent from (RFC 3581), which is what a NATed or containerised pinger needs."""
    sent_by = _hostport(local[0], local[1])
    lines = [
        f"OPTIONS {target.uri} SIP/2.0",
        f"Via: SIP/2.0/{target.transport.upper()} {sent_by};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:ping@{sent_by}>;tag={tag}",
        f"To: <{target.uri}>",
        f"Call-ID: {call_id}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:ping@{sent_by}>",
        "Accept: application/sdp",
        f"User-Agent: sipresponder-ping/{__version__}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    reason: str
    raw: bytes

    @property
    def status_line(self) -> str:
        return f"SIP/2.0 {self.code} {self.reason}"


_STATUS = re.compile(rb"SIP/2\.0 ([1-6][0-9][0-9]) ([^\r\n]*)\r?\n")


def header_values(head: bytes, *names: str) -> list[str]:
    """Values of a header (long and compact names) in a message head, unfolded."""
    wanted = {n.lower() for n in names}
    text = re.sub(r"\r?\n[ \t]+", " ", head.decode("utf-8", "replace"))
    out = []
    for line in text.splitlines()[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in wanted:
            out.append(value.strip())
    return out


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


OnProvisional = Callable[[Answer, float], None] | None


async def ping(target: Target, timeout: float,
               on_provisional: OnProvisional = None) -> tuple[Answer, float]:
    """Send the OPTIONS and wait for its final response; returns it and the round-trip
    time in seconds (first send to final response). PingError on any failure."""
    ids = secrets.token_hex(8)
    call_id, tag, branch = f"{ids}@sipresponder-ping", ids[:8], f"z9hG4bK-{ids}"
    where = str(target)
    try:
        async with asyncio.timeout(timeout):
            if target.transport == "udp":
                return await _over_udp(target, call_id, tag, branch, on_provisional)
            return await _over_tcp(target, call_id, tag, branch, on_provisional)
    except TimeoutError:
        raise PingError(f"no response from {where} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise PingError(f"{where}: connection refused (is anything listening there?)") from None
    except OSError as exc:
        raise PingError(f"{where}: {exc.strerror or exc}") from None


async def _over_udp(target: Target, call_id: str, tag: str, branch: str,
                    on_provisional: OnProvisional) -> tuple[Answer, float]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Datagrams, remote_addr=(target.host, target.port))
    try:
        local = transport.get_extra_info("sockname")[:2]
        request = build_options(target, local, branch=branch, call_id=call_id, tag=tag)
        started = time.perf_counter()
        interval, next_send = T1, started
        while True:
            now = time.perf_counter()
            if now >= next_send:  # UDP may lose the request or the answer: send again
                transport.sendto(request)
                next_send = now + interval
                interval = min(2 * interval, T2)
            try:
                item = await asyncio.wait_for(proto.queue.get(), next_send - now)
            except TimeoutError:
                continue
            if isinstance(item, Exception):
                raise item
            answer = parse_answer(item, call_id)
            if answer is None:
                continue
            rtt = time.perf_counter() - started
            if answer.code >= 200:
                return answer, rtt
            if on_provisional is not None:
                on_provisional(answer, rtt)
            interval = T2  # a provisional answer: keep quiet longer (17.1.2.2)
            next_send = time.perf_counter() + T2
    finally:
        transport.close()


async def _over_tcp(target: Target, call_id: str, tag: str, branch: str,
                    on_provisional: OnProvisional) -> tuple[Answer, float]:
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        local = writer.get_extra_info("sockname")[:2]
        started = time.perf_counter()
        writer.write(build_options(target, local, branch=branch, call_id=call_id, tag=tag))
        await writer.drain()
        buffer = b""
        while True:
            taken = take_message(buffer)
            if taken is None:
                chunk = await reader.read(65536)
                if not chunk:
                    raise PingError(f"{target}: connection closed before a final response")
                buffer += chunk
                continue
            message, buffer = taken
            answer = parse_answer(message, call_id)
            if answer is None:
                continue
            rtt = time.perf_counter() - started
            if answer.code >= 200:
                return answer, rtt
            if on_provisional is not None:
                on_provisional(answer, rtt)
    finally:
        writer.close()


# --- command line -----------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ping_parser = sub.add_parser(
        "ping",
        help="send one OPTIONS and check the answer (health checks, like sipsak -s)",
        description="Send one SIP OPTIONS request and wait for the final response. Exit 0 "
        "when its code is expected, 1 for another code, 2 for no answer (timeout, refused).",
    )
    ping_parser.add_argument(
        "target",
        nargs="?",
        help="sip:[user@]host[:port][;transport=tcp], PROTO:HOST:PORT or HOST[:PORT] "
        "(default: the first SIPRESPONDER_LISTEN address, else udp:127.0.0.1:5060; "
        "a wildcard host means loopback)",
    )
    ping_parser.add_argument("--transport", "-t", choices=PING_TRANSPORTS,
                             help="override the target's transport")
    ping_parser.add_argument(
        "--expect", "-e", default=None, metavar="CODES",
        help="final codes that count as success, e.g. 200, 486 or 2xx,3xx "
        "(default: SIPRESPONDER_PING_EXPECT, else 2xx)")
    ping_parser.add_argument("--timeout", type=float, default=5.0,
                             help="seconds to wait for the final response (default 5)")
    ping_parser.add_argument("--verbose", "-v", action="store_true",
                             help="print every response whole")


def run(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    try:
        target = parse_target(args.target or default_target(environ), args.transport)
        expect = Expect.parse(args.expect or environ.get("SIPRESPONDER_PING_EXPECT") or "2xx")
        if not args.timeout > 0:
            raise ValueError(f"--timeout {args.timeout:g}: expected a positive number")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def show(answer: Answer, rtt: float) -> None:
        if args.verbose:
            print(answer.raw.decode("utf-8", "replace").rstrip("\r\n"))
        print(f"{answer.status_line}  ({target}, {rtt * 1000:.1f} ms)", flush=True)

    try:
        answer, rtt = asyncio.run(ping(target, args.timeout, show))
    except PingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    show(answer, rtt)
    if answer.code not in expect:
        print(f"error: expected {expect.text}, got {answer.code} {answer.reason}",
              file=sys.stderr)
        return 1
    return 0
