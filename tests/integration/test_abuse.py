"""Abuse over real loopback sockets: slow-loris, floods, the connection cap, TCP
timeouts, the per-source rate limiter and the UDP amplification cap.

The responder runs in-process (so the tests can read its connection table and
counters); the attackers that must not share its event loop (200 dribbling TCP
connections, a datagram flood) run in plain threads with blocking sockets. Every wait
is for a condition, polled, with a deadline; other sleeps only pace what a client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable

import pytest

from sipresponder.uas.compiled import STATUS, speedups
from tests.sipclient import TCPClient, UDPClient, make_request, parse_response

OPTIONS_ONLY = """
[[rule]]
name = "options"
match = { method = "OPTIONS" }
code = 200
"""


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``condition`` (polled on the event loop) or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


class HighWater(dict):
    """A dict that remembers the most entries it ever held (the server's _tcp table)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.high = len(self)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.high = max(self.high, len(self))


# -- attackers in threads -------------------------------------------------------------------
class SlowLoris(threading.Thread):
    """``count`` TCP connections, each with the start of a request, then one more octet
    per connection every ``interval`` seconds (never the end of the header section)."""

    def __init__(self, port: int, count: int, interval: float = 0.05) -> None:
        super().__init__(name="slowloris", daemon=True)
        self.port, self.count, self.interval = port, count, interval
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.socks: list[socket.socket] = []
        self.error: BaseException | None = None
        self.dribbled = 0

    def run(self) -> None:
        try:
            for i in range(self.count):
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                sock.sendall(b"OPTIONS sip:loris@127.0.0.1 SIP/2.0\r\n"
                             b"Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-loris-%d\r\n"
                             b"X-Slow: " % i)
                self.socks.append(sock)
            self.ready.set()
            while not self.stop.wait(self.interval):
                for sock in self.socks:
                    with contextlib.suppress(OSError):  # closed by the server: fine
                        sock.send(b"a")
                        self.dribbled += 1
        except BaseException as exc:  # reported by the test, never lost in the thread
            self.error = exc
            self.ready.set()
        finally:
            for sock in self.socks:
                sock.close()


class Flood(threading.Thread):
    """Random datagrams (random octets, truncated and mangled SIP) at ``rate`` a second,
    at most ``limit`` of them."""

    def __init__(self, port: int, rate: int = 10_000, limit: int = 50_000) -> None:
        super().__init__(name="flood", daemon=True)
        self.port, self.rate, self.limit = port, rate, limit
        self.stop = threading.Event()
        self.sent = 0

    def payloads(self, rng: random.Random) -> list[bytes]:
        valid = make_request("OPTIONS", "sip:flood@127.0.0.1")
        out = []
        for _ in range(256):
            kind = rng.random()
            if kind < 0.7:
                out.append(os.urandom(rng.randint(1, 1400)))
            elif kind < 0.85:
                out.append(valid[: rng.randint(1, len(valid) - 1)].replace(b"Via", b"Vja"))
            else:
                mangled = bytearray(valid)
                for _ in range(8):
                    mangled[rng.randrange(len(mangled))] = rng.randrange(256)
                out.append(bytes(mangled).replace(b"Via:", b"Vxa:"))
        return out

    def run(self) -> None:
        rng = random.Random(1)
        payloads = self.payloads(rng)
        batch = max(1, self.rate // 100)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            next_at = time.monotonic()
            while not self.stop.is_set() and self.sent < self.limit:
                for _ in range(batch):
                    with contextlib.suppress(OSError):
                        sock.sendto(rng.choice(payloads), ("127.0.0.1", self.port))
                    self.sent += 1
                next_at += 0.01
                self.stop.wait(max(0.0, next_at - time.monotonic()))


def kernel_udp_drops(port: int) -> int:
    """The datagrams the kernel dropped for the UDP sockets bound to ``port`` (their
    receive buffers were full): the last column of /proc/net/udp."""
    drops = 0
    with open("/proc/net/udp") as table:
        next(table)  # the heading
        for line in table:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                drops += int(fields[-1])
    return drops


async def options_over_udp(client: UDPClient) -> float:
    req = make_request("OPTIONS", "sip:probe@127.0.0.1")
    start = time.perf_counter()
    [resp] = await client.exchange(req, timeout=10.0)
    elapsed = time.perf_counter() - start
    assert resp.code == 200
    assert resp.get("Call-ID") in req.decode()
    return elapsed


async def options_over_fresh_tcp(port: int) -> float:
    """Connect, ask, read the 200: all of it counts."""
    req = make_request("OPTIONS", "sip:probe@127.0.0.1", transport="TCP")
    start = time.perf_counter()
    client = await asyncio.wait_for(TCPClient.connect(port), 10.0)
    try:
        await client.send(req)
        resp = await client.recv(10.0)
        elapsed = time.perf_counter() - start
    finally:
        await client.close()
    assert resp.code == 200
    assert resp.get("Call-ID") in req.decode()
    return elapsed


# The flood's pace (10,000 datagrams a second, a single probe datagram with no
# retransmission, 90 % of the flood counted) is the compiled UDP batch reader's: the
# pure-Python reader on a busy machine falls behind, the kernel drops the overflow, the
# probes with it, and the test fails for want of CPU, not for a fault.
@pytest.mark.skipif(speedups is None, reason=f"the flood needs the compiled UDP reader's pace "
                    f"(compiled path: {STATUS})")
async def test_slowloris_and_flood_leave_options_answered_and_the_cap_holds(
        responder_factory) -> None:
    cap, loris_count, extra = 250, 200, 100
    responder = await responder_factory(f"""
[settings]
max_connections = {cap}
max_connections_per_source = 0
tcp_read_timeout = 30.0
tcp_idle_timeout = 60.0
{OPTIONS_ONLY}""")
    server, counters = responder.server, responder.engine.counters
    loris = SlowLoris(responder.tcp_port, loris_count)
    flood = Flood(responder.udp_port)
    extras: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    udp = await UDPClient.connect(responder.udp_port)
    loris.start()
    try:
        await until(lambda: loris.ready.is_set() and len(server._tcp) == loris_count, 15,
                    f"{loris_count} slow-loris connections")
        assert loris.error is None, loris.error
        flood.start()
        await until(lambda: flood.sent >= 1000 and loris.dribbled >= 2 * loris_count, 15,
                    "the flood and the dribbling to be under way")

        # Under attack, a well-formed OPTIONS is answered over UDP and over a fresh
        # TCP connection (connect included), probed every 10 ms for ~0.7 s.
        sent_before, dribbled_before = flood.sent, loris.dribbled
        udp_times, tcp_times = [], []
        for _ in range(30):
            udp_times.append(await options_over_udp(udp))
            await asyncio.sleep(0.01)
            tcp_times.append(await options_over_fresh_tcp(responder.tcp_port))
            await asyncio.sleep(0.01)
        print(f"OPTIONS under attack: udp max {max(udp_times) * 1000:.1f} ms, "
              f"tcp max {max(tcp_times) * 1000:.1f} ms, "
              f"{flood.sent - sent_before} random datagrams and "
              f"{loris.dribbled - dribbled_before} dribbled octets meanwhile")
        # Every probe was answered (options_over_* assert the 200 within a generous
        # timeout); how fast is measured, not asserted: a busy machine made a 0.1 s
        # bound fail here (issue 12), and time bounds belong in bench/.
        assert len(udp_times) == len(tcp_times) == 30
        # the attack went on the whole time
        assert flood.sent - sent_before >= 1000, "the flood stalled during the measurement"
        assert loris.dribbled - dribbled_before >= 5 * loris_count, "the dribbling stalled"
        flood.stop.set()
        await asyncio.to_thread(flood.join, 5)
        # Every datagram of the flood was dropped, by the responder (counted) or, when
        # a busy machine left the responder behind, by the kernel when the socket's
        # buffer was full (its drops column): none of them was answered.
        await until(lambda: counters["dropped"] + kernel_udp_drops(responder.udp_port)
                    >= 0.9 * flood.sent, 15, "the responder to drop the flood")
        assert sum(v for k, v in counters.items() if k.startswith("response:")) >= 60
        # the slow-loris connections are all still there, dribbling (and the probes'
        # connections are gone)
        await until(lambda: len(server._tcp) == loris_count, 15, "the probes to be closed")
        assert loris.error is None

        # Now more connections than the cap: never more than `cap` held; the refused
        # ones are closed at once and counted.
        server._tcp = HighWater(server._tcp)
        for _ in range(extra):
            extras.append(await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", responder.tcp_port), 5))
        refused = loris_count + extra - cap
        await until(lambda: counters["tcp_refused"] == refused, 15,
                    f"{refused} connections to be refused")
        reads = [asyncio.ensure_future(reader.read(1)) for reader, _ in extras]
        done: set[asyncio.Future] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while len(done) < refused and loop.time() < deadline:
            finished, _ = await asyncio.wait(reads, timeout=0.05,
                                             return_when=asyncio.FIRST_COMPLETED)
            done |= finished
        assert len(done) == refused, "every refused connection is closed by the responder"
        for fut in done:
            with contextlib.suppress(ConnectionError):
                assert fut.result() == b""
        assert len(server._tcp) == cap
        assert server._tcp.high == cap
        assert counters["tcp_refused"] == refused
        # the accepted extras work, and UDP still does with every slot taken
        alive = [extras[i] for i, fut in enumerate(reads) if fut not in done]
        for fut in reads:
            fut.cancel()
        assert len(alive) == cap - loris_count
        reader, writer = alive[0]
        req = make_request("OPTIONS", "sip:extra@127.0.0.1", transport="TCP")
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert parse_response(head).code == 200
        await options_over_udp(udp)
        assert server._tcp.high == cap
    finally:
        flood.stop.set()
        loris.stop.set()
        udp.close()
        for _, writer in extras:
            writer.close()
        await asyncio.to_thread(loris.join, 5)
        await asyncio.to_thread(flood.join, 5)
    assert counters["internal_errors"] == 0


async def test_slow_connections_close_after_read_timeout_idle_after_idle_timeout(
        responder_factory) -> None:
    read_timeout, idle_timeout, slack = 0.5, 1.0, 0.4
    responder = await responder_factory(f"""
[settings]
tcp_read_timeout = {read_timeout}
tcp_idle_timeout = {idle_timeout}
{OPTIONS_ONLY}""")
    counters = responder.engine.counters
    loop = asyncio.get_running_loop()

    async def closed(reader: asyncio.StreamReader) -> None:
        """Read until the responder closes (FIN, or RST when it closed with our
        dribbled octets unread)."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass

    async def slow() -> float:
        """A partial request, then an octet every 0.1 s: the dribble does not extend
        the read timeout. Returns seconds from the first octet to the close."""
        reader, writer = await asyncio.open_connection("127.0.0.1", responder.tcp_port)
        writer.write(b"OPTIONS sip:slow@127.0.0.1 SIP/2.0\r\n")
        start = loop.time()
        done = asyncio.ensure_future(closed(reader))
        try:
            while not done.done() and loop.time() - start < read_timeout + 2:
                with contextlib.suppress(ConnectionError):
                    writer.write(b"a")
                await asyncio.wait([done], timeout=0.1)
            await asyncio.wait_for(done, 1)
            return loop.time() - start
        finally:
            writer.close()

    async def idle() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", responder.tcp_port)
        start = loop.time()
        try:
            await asyncio.wait_for(closed(reader), idle_timeout + 2)
            return loop.time() - start
        finally:
            writer.close()

    async def busy() -> tuple[int, float]:
        """A complete request every 0.3 s for 1.5 s: activity keeps the connection
        open past the idle timeout; then it goes idle and is closed."""
        client = await TCPClient.connect(responder.tcp_port)
        answered = 0
        try:
            for _ in range(6):
                await client.send(make_request("OPTIONS", "sip:busy@127.0.0.1",
                                               transport="TCP"))
                answered += (await client.recv()).code == 200
                await asyncio.sleep(0.3)
            last = loop.time()
            assert await asyncio.wait_for(client.reader.read(), idle_timeout + 2) == b""
            return answered, loop.time() - last
        finally:
            await client.close()

    async def pinging() -> tuple[int, float]:
        """A CRLFCRLF keep-alive every 0.3 s for 1.5 s counts as activity too."""
        reader, writer = await asyncio.open_connection("127.0.0.1", responder.tcp_port)
        pongs = 0
        try:
            for _ in range(6):
                writer.write(b"\r\n\r\n")
                pongs += await asyncio.wait_for(reader.readexactly(2), 2) == b"\r\n"
                await asyncio.sleep(0.3)
            last = loop.time()
            await asyncio.wait_for(closed(reader), idle_timeout + 2)
            return pongs, loop.time() - last
        finally:
            writer.close()

    results = await asyncio.gather(*(slow() for _ in range(10)), *(idle() for _ in range(10)),
                                   busy(), pinging())
    slow_times, idle_times = results[:10], results[10:20]
    (answered, busy_idle), (pongs, ping_idle) = results[20], results[21]
    assert pongs == 6
    assert idle_timeout - 0.35 <= ping_idle <= idle_timeout + slack
    assert all(read_timeout - 0.05 <= t <= read_timeout + slack for t in slow_times), slow_times
    assert all(idle_timeout - 0.05 <= t <= idle_timeout + slack for t in idle_times), idle_times
    assert answered == 6
    assert idle_timeout - 0.35 <= busy_idle <= idle_timeout + slack
    assert counters["tcp_idle_closed"] == 12
    assert counters["tcp_read_timeouts"] == 10
    await until(lambda: not responder.server._tcp, 2, "the connection table to empty")


async def test_read_timeout_restarts_with_each_message(responder_factory) -> None:
    """tcp_read_timeout bounds how long one incomplete message may sit, not how long a
    connection may go without an empty buffer: a pipelining client whose every write
    ends halfway through the next request (messages complete every 0.15 s) is kept."""
    read_timeout, rounds = 0.5, 10
    responder = await responder_factory(
        f"[settings]\ntcp_read_timeout = {read_timeout}\n{OPTIONS_ONLY}")
    client = await TCPClient.connect(responder.tcp_port)
    try:
        carry = b""
        for _ in range(rounds):
            req = make_request("OPTIONS", "sip:pipe@127.0.0.1", transport="TCP")
            await client.send(carry + req[: len(req) // 2])
            carry = req[len(req) // 2:]
            await asyncio.sleep(0.15)
        await client.send(carry)
        codes = [(await client.recv(2)).code for _ in range(rounds)]
    finally:
        await client.close()
    assert codes == [200] * rounds


# -- rate limiter ------------------------------------------------------------------------------
class Peer(asyncio.DatagramProtocol):
    """A UDP socket bound to ``local_ip`` that timestamps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.received.append((time.monotonic(), data))

    @classmethod
    async def open(cls, port: int, local_ip: str) -> Peer:
        loop = asyncio.get_running_loop()
        _, peer = await loop.create_datagram_endpoint(
            cls, local_addr=(local_ip, 0), remote_addr=("127.0.0.1", port))
        return peer

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)  # type: ignore[union-attr]

    def close(self) -> None:
        self.transport.close()  # type: ignore[union-attr]


async def paced(peer: Peer, count: int, interval: float, tag: str) -> float:
    """Send ``count`` OPTIONS, one every ``interval`` s on a fixed schedule; return the
    seconds between the first and the last send."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        await asyncio.sleep(max(0.0, start + i * interval - loop.time()))
        peer.send(make_request("OPTIONS", f"sip:{tag}@127.0.0.1", call_id=f"{tag}-{i}@test"))
    return loop.time() - start


async def second_source(port: int) -> Peer:
    try:
        peer = await Peer.open(port, "127.0.0.2")
    except OSError as exc:
        pytest.skip(f"127.0.0.2 is not usable on this loopback: {exc}")
    peer.send(make_request("OPTIONS", "sip:probe@127.0.0.1"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2
    while not peer.received and loop.time() < deadline:
        await asyncio.sleep(0.01)
    if not peer.received:
        peer.close()
        pytest.skip("no answer to 127.0.0.2: not routable on this loopback")
    peer.received.clear()
    return peer


async def test_rate_limit_caps_one_source_not_another(responder_factory) -> None:
    rate, burst = 20, 20
    responder = await responder_factory(f"""
[settings]
rate_limit = {rate}
rate_burst = {burst}
{OPTIONS_ONLY}""")
    counters = responder.engine.counters
    other = await second_source(responder.udp_port)  # uses 1 of its own bucket's tokens
    flooder = await Peer.open(responder.udp_port, "127.0.0.1")
    try:
        sent, other_sent = 200, 10
        elapsed, _ = await asyncio.gather(paced(flooder, sent, 0.005, "flood"),
                                          paced(other, other_sent, 0.1, "other"))
        await until(lambda: counters["request:OPTIONS"] + counters["rate_limited"]
                    == 1 + sent + other_sent, 5, "every request to be handled")
        await until(lambda: len(flooder.received) + len(other.received)
                    == counters["response:200"] - 1, 5, "every response to arrive")
    finally:
        flooder.close()
        other.close()
    got = [parse_response(d) for _, d in flooder.received]
    assert all(r.code == 200 and r.get("Call-ID").startswith("flood-") for r in got)
    cap = burst + rate * elapsed
    assert len(got) <= cap + 2, (len(got), elapsed)
    # and the bucket does refill (loosely: the loop may bunch up datagrams under load)
    assert len(got) >= burst + rate * elapsed / 2, (len(got), elapsed)
    assert counters["rate_limited"] == sent - len(got)
    # the other source, inside its own budget, lost nothing
    assert len(other.received) == other_sent
    # and each 1-second window of the flooder's answers holds at most burst + rate
    times = [t for t, _ in flooder.received]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 1.0) <= burst + rate + 1


async def test_rate_limit_503_at_most_once_a_second(responder_factory) -> None:
    rate, burst = 10, 10
    responder = await responder_factory(f"""
[settings]
rate_limit = {rate}
rate_burst = {burst}
rate_limit_action = "503"
{OPTIONS_ONLY}""")
    counters = responder.engine.counters
    peer = await Peer.open(responder.udp_port, "127.0.0.1")
    try:
        sent = 150
        elapsed = await paced(peer, sent, 0.01, "r503")
        # a 503 counts as a request and as rate_limited; a drop only as rate_limited
        await until(lambda: counters["request:OPTIONS"] + counters["rate_limited"]
                    - counters["response:503"] == sent, 5, "every request to be handled")
        await until(lambda: len(peer.received)
                    == counters["response:200"] + counters["response:503"], 5,
                    "every response to arrive")
    finally:
        peer.close()
    responses = [(t, parse_response(d)) for t, d in peer.received]
    ok = [r for _, r in responses if r.code == 200]
    rejected = [(t, r) for t, r in responses if r.code == 503]
    assert len(ok) + len(rejected) == len(responses)
    assert burst + rate * elapsed / 2 <= len(ok) <= burst + rate * elapsed + 2
    assert 1 <= len(rejected) <= 1 + int(elapsed), [t for t, _ in rejected]
    for _, r in rejected:
        assert r.reason == "Service Unavailable"
        assert r.all("Retry-After") == ["1"]
        assert r.get("Call-ID").startswith("r503-")
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(rejected)]
    assert all(g >= 0.95 for g in gaps), gaps
    assert counters["rate_limited"] == sent - len(ok)


# -- amplification -----------------------------------------------------------------------------
BIG = "x" * 3000
AMPLIFY = f"""
[[rule]]
name = "big"
match = {{ user = "big" }}
code = 200
body = "{BIG}"
content_type = "text/plain"

[[rule]]
name = "small"
match = {{ user = "small" }}
code = 200
"""


async def test_udp_amplification_cap(responder_factory) -> None:
    responder = await responder_factory(AMPLIFY)
    counters = responder.engine.counters
    client = await UDPClient.connect(responder.udp_port)
    try:
        tiny = make_request("MESSAGE", "sip:big@127.0.0.1")
        assert len(tiny) * 4 < len(BIG)
        await client.send(tiny)
        await until(lambda: counters["amplification_dropped"] == 1, 3, "the drop")
        # nothing came back for it: the next answer on this socket is the next request's
        small = make_request("MESSAGE", "sip:small@127.0.0.1")
        [resp] = await client.exchange(small)
        assert resp.code == 200 and resp.body == b""
        assert resp.get("Call-ID") in small.decode()
        # a request big enough to pay for the response (4x its size) gets it
        padded = make_request("MESSAGE", "sip:big@127.0.0.1", headers=[("X-Pad", "p" * 800)])
        [resp] = await client.exchange(padded)
        assert resp.code == 200 and resp.body == BIG.encode()
        assert counters["amplification_dropped"] == 1
    finally:
        client.close()
    # the same tiny request over TCP gets the response: no spoofing there
    tcp = await TCPClient.connect(responder.tcp_port)
    try:
        await tcp.send(make_request("MESSAGE", "sip:big@127.0.0.1", transport="TCP"))
        resp = await tcp.recv()
        assert resp.code == 200 and resp.body == BIG.encode()
    finally:
        await tcp.close()
    assert counters["amplification_dropped"] == 1


async def test_max_amplification_0_lifts_the_cap(responder_factory) -> None:
    responder = await responder_factory("[settings]\nmax_amplification = 0\n" + AMPLIFY)
    client = await UDPClient.connect(responder.udp_port)
    try:
        [resp] = await client.exchange(make_request("MESSAGE", "sip:big@127.0.0.1"))
    finally:
        client.close()
    assert resp.code == 200 and resp.body == BIG.encode()
    assert responder.engine.counters["amplification_dropped"] == 0


# -- garbage on TCP ----------------------------------------------------------------------------
async def test_tcp_garbage_and_abrupt_disconnects_cost_nothing(responder_factory) -> None:
    """Random octets on a stream, RSTs mid-message and half-closed connections: each
    connection dies alone, the table empties, and the responder still answers."""
    responder = await responder_factory(
        f"[settings]\ntcp_read_timeout = 0.5\nmax_connections_per_source = 0\n{OPTIONS_ONLY}")
    server, counters = responder.server, responder.engine.counters
    rng = random.Random(7)
    valid = make_request("OPTIONS", "sip:mix@127.0.0.1", transport="TCP")

    async def one(kind: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", responder.tcp_port)
        cut = rng.randint(1, len(valid) - 1)
        try:
            if kind == 0:  # garbage with an end of header section: a framing error, closed
                writer.write(valid + os.urandom(rng.randint(1, 2000)) + b"\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
                assert parse_response(head).code == 200
                with contextlib.suppress(ConnectionError):  # closed (maybe after a 400)
                    await asyncio.wait_for(reader.read(), 3)
            elif kind == 1:  # RST in the middle of a message
                writer.write(valid + valid[:cut])
                await writer.drain()
                writer.transport.abort()
            elif kind == 2:  # half-close after a partial message
                writer.write(valid[:cut])
                writer.write_eof()
                assert await asyncio.wait_for(reader.read(), 3) == b""
            else:  # a partial message, then silence: the read timeout closes it
                writer.write(valid[:cut])
                assert await asyncio.wait_for(reader.read(), 3) == b""
        finally:
            writer.close()

    await asyncio.gather(*(one(i % 4) for i in range(80)))
    await until(lambda: not server._tcp, 3, "every connection to be gone")
    client = await UDPClient.connect(responder.udp_port)
    try:
        [resp] = await client.exchange(make_request("OPTIONS", "sip:after@127.0.0.1"))
    finally:
        client.close()
    assert resp.code == 200
    assert counters["internal_errors"] == 0
