"""Wire validation by an independent dissector: tshark reads what the responder sent.

One capture on the loopback interface holds a batch of requests over UDP and TCP
(every registry code through sip:<code>@, as OPTIONS and as INVITE + ACK, plus
OPTIONS, REGISTER with a Contact, an INVITE with SDP + ACK + BYE, MESSAGE,
SUBSCRIBE and an unknown method). Wireshark's SIP dissector then has to decode
exactly the responses the client received, with the same status codes and reason
phrases, none of them malformed or carrying an expert warning or error.

Synchronisation: tshark prints "Capturing on ..." before its capture child has
really started (measured with tshark 4.0: ~7 ms before "Capture started"), so the
test also sends probe datagrams to a port of its own until tshark's live packet
list (-P) shows one; at the end a last probe of a distinctive length, once shown,
proves every earlier packet has reached the capture file. No blind sleeps.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sipresponder.sip.codes import CODES, reason_for
from tests.conftest import require_binary
from tests.interop.conftest import ResponderProcess
from tests.sipclient import Response, make_request, parse_response

pytestmark = pytest.mark.interop

START_TIMEOUT = 20.0  # s until tshark captures (dumpcap start, BPF compile)
PROBE_TIMEOUT = 10.0  # s until a probe shows in tshark's live output
STOP_TIMEOUT = 15.0  # s between SIGINT and tshark's exit
READ_TIMEOUT = 60  # s for reading the capture file back
RECV_TIMEOUT = 3.0  # s per response from the responder
START_PROBE = b"probe"
END_PROBE = b"end-of-capture-probe-23"  # its "Len=23" marks the end of the traffic

SDP = (b"v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
# A response cut off before its empty line: the dissector must flag it (the control
# that proves the malformed-packet filter works with the installed tshark).
BROKEN_SIP = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcontrol\r\n"
              b"Call-ID: control\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n")


def capture_unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"tshark cannot capture on lo, and CI=true: {reason}")
    pytest.skip(f"tshark cannot capture on the loopback interface (needs root or the "
                f"wireshark group): {reason}")


class Capture:
    """tshark -i lo writing a pcapng, with its live packet list (-P) on stdout."""

    def __init__(self, tshark: str, path: Path, ports: list[int], decode: list[str],
                 probe: socket.socket, probe_port: int) -> None:
        self.path = path
        bpf = " or ".join(f"port {p}" for p in ports)
        self.cmd = [tshark, "-i", "lo", "-n", "-l", "-P", "-f", bpf, "-w", str(path),
                    *decode]
        self.probe, self.probe_port = probe, probe_port
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.closed_streams = 0
        self.changed = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.readers: list[threading.Thread] = []

    def _drain(self, stream: Iterator[str], sink: list[str]) -> None:
        for line in stream:
            with self.changed:
                sink.append(line)
                self.changed.notify_all()
        with self.changed:
            self.closed_streams += 1
            self.changed.notify_all()

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Until ``predicate`` holds or tshark closes its output; False after ``timeout``."""
        with self.changed:
            self.changed.wait_for(lambda: predicate() or self.closed_streams == 2, timeout)
            return predicate()

    @property
    def stderr(self) -> str:
        return "".join(self.errors).strip()

    def start(self) -> None:
        """Start tshark; skip (fail under CI=true) when it cannot capture on lo."""
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors)):
            thread = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            thread.start()
            self.readers.append(thread)
        # "Capturing on" comes first, but tshark prints it even for an interface it
        # then fails to open: only a probe seen in the live output proves the capture.
        if (self._wait_for(lambda: any("Capturing on" in e for e in self.errors),
                           START_TIMEOUT)
                and self.show(START_PROBE, repeat=True)):
            return
        self.stop()
        capture_unavailable(f"exit code {self.proc.returncode}; stderr: {self.stderr!r}")

    def _shown(self, length: int) -> bool:
        pattern = re.compile(rf"(?<![0-9]){self.probe_port}(?![0-9]).*\bLen={length}\b")
        return any(pattern.search(line) for line in self.lines)

    def show(self, payload: bytes, *, repeat: bool) -> bool:
        """Send ``payload`` to the probe port (again every 0.1 s if ``repeat``) until
        tshark's live output shows it; False when PROBE_TIMEOUT passes or tshark ends."""
        deadline = time.monotonic() + PROBE_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0 and self.closed_streams < 2:
            self.probe.sendto(payload, ("127.0.0.1", self.probe_port))
            if self._wait_for(lambda: self._shown(len(payload)),
                              min(0.1, remaining) if repeat else remaining):
                return True
        return False

    def stop(self) -> int | None:
        """SIGINT (tshark then finishes the file), bounded wait, then SIGKILL."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                raise AssertionError(f"tshark ignored SIGINT for {STOP_TIMEOUT}s") from None
        for thread in self.readers:
            thread.join(STOP_TIMEOUT)
        return self.proc.returncode


# -- a small synchronous SIP client -----------------------------------------------------


@dataclass
class Exchange:
    method: str
    call_id: str
    cseq: str  # "1 INVITE"
    expected: list[int]
    responses: list[Response] = field(default_factory=list)
    to_tag: str | None = None  # of the final response to an INVITE


class Client:
    """One UDP socket or one TCP connection to the responder; sends and records."""

    def __init__(self, transport: str, port: int) -> None:
        self.transport = transport
        kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.settimeout(RECV_TIMEOUT)
        if transport == "UDP":
            self.sock.bind(("127.0.0.1", 0))
        else:  # ACK then the next request: Nagle would hold the second for ~40 ms
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(("127.0.0.1", port))
        self.via_host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.buffer = b""
        self.exchanges: list[Exchange] = []
        self.requests_sent = 0
        self.n = 0

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> Response:
        if self.transport == "UDP":
            return parse_response(self.sock.recv(65535))
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        m = re.search(rb"\r\n(?:Content-Length|l)[ \t]*:[ \t]*([0-9]+)", head, re.IGNORECASE)
        length = int(m[1]) if m else 0
        while len(rest) < length:
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return parse_response(head + b"\r\n\r\n" + rest[:length])

    def _fill(self) -> None:
        chunk = self.sock.recv(65535)
        assert chunk, "responder closed the TCP connection"
        self.buffer += chunk

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.requests_sent += 1

    def request(self, method: str, uri: str, expected: list[int], *,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                call_id: str | None = None, cseq: int = 1, to_tag: str | None = None
                ) -> Exchange:
        """Send one request and read responses up to the final one (ACKing an INVITE's)."""
        self.n += 1
        call_id = call_id or f"wire-{self.transport.lower()}-{self.n}@127.0.0.1"
        branch = f"z9hG4bK-wire-{self.transport.lower()}-{self.n}"
        data = make_request(method, uri, via_host=self.via_host, transport=self.transport,
                            headers=headers, body=body, call_id=call_id, cseq=cseq,
                            branch=branch, to_tag=to_tag)
        self.send(data)
        exchange = Exchange(method, call_id, f"{cseq} {method}", expected)
        self.exchanges.append(exchange)
        while not exchange.responses or exchange.responses[-1].code < 200:
            try:
                exchange.responses.append(self._recv())
            except TimeoutError:
                raise AssertionError(
                    f"{method} {uri} over {self.transport}: no final response within "
                    f"{RECV_TIMEOUT}s, got {[r.code for r in exchange.responses]}") from None
        codes = [r.code for r in exchange.responses]
        assert codes == expected, f"{method} {uri} over {self.transport}: {codes}"
        for response in exchange.responses:
            assert response.reason == reason_for(response.code), response.raw
            assert response.get("Call-ID") == call_id, response.raw
            assert response.get("CSeq") == exchange.cseq, response.raw
        if method == "INVITE":
            final = exchange.responses[-1]
            tag = re.search(r";tag=([^;>\s]+)", final.get("To") or "")
            assert tag, f"final response without a To tag: {final.raw!r}"
            # RFC 3261 17.1.1.3: the ACK of a non-2xx reuses the INVITE's branch;
            # 13.2.2.4: the ACK of a 2xx is a new transaction.
            ack_branch = branch if final.code >= 300 else branch + "-ack"
            self.send(make_request("ACK", uri, via_host=self.via_host,
                                   transport=self.transport, call_id=call_id, cseq=cseq,
                                   branch=ack_branch, to_tag=tag[1]))
            exchange.to_tag = tag[1]
        return exchange


def expected_for(code: int) -> list[int]:
    """default.toml: a 1xx code is sent as a provisional, then 200 completes."""
    return [code, 200] if code < 200 else [code]


def run_batch(client: Client) -> None:
    for code in CODES:
        client.request("OPTIONS", f"sip:{code}@127.0.0.1", expected_for(code))
    for code in CODES:
        client.request("INVITE", f"sip:{code}@127.0.0.1", expected_for(code),
                       headers=[("Contact", f"<sip:tester@{client.via_host}>"),
                                ("Content-Type", "application/sdp")], body=SDP)
    client.request("OPTIONS", "sip:127.0.0.1", [200], headers=[("Accept", "application/sdp")])

    register = client.request(
        "REGISTER", "sip:127.0.0.1", [200],
        headers=[("Contact", "<sip:alice@127.0.0.1:5999>;expires=60")])
    contacts = register.responses[-1].all("Contact")
    assert any("sip:alice@127.0.0.1:5999" in c and "expires=60" in c for c in contacts), (
        register.responses[-1].raw)

    invite = client.request("INVITE", "sip:alice@127.0.0.1", [200],
                            headers=[("Contact", f"<sip:tester@{client.via_host}>"),
                                     ("Content-Type", "application/sdp")], body=SDP)
    answer = invite.responses[-1]
    assert answer.get("Content-Type") == "application/sdp", answer.raw
    assert b"\r\nm=audio " in answer.body, answer.raw
    client.request("BYE", "sip:alice@127.0.0.1", [200], call_id=invite.call_id, cseq=2,
                   to_tag=invite.to_tag)

    client.request("MESSAGE", "sip:alice@127.0.0.1", [200],
                   headers=[("Content-Type", "text/plain")], body=b"hello over the wire")
    client.request("SUBSCRIBE", "sip:alice@127.0.0.1", [405],
                   headers=[("Event", "presence"), ("Expires", "60"),
                            ("Contact", f"<sip:tester@{client.via_host}>")])
    client.request("FROB", "sip:alice@127.0.0.1", [501])


# -- reading the capture back ---------------------------------------------------------

FIELDS = ["frame.number", "udp.srcport", "tcp.srcport", "udp.dstport", "tcp.dstport",
          "sip.Method", "sip.Status-Code", "sip.Status-Line", "sip.Call-ID", "sip.CSeq",
          "sip.resend"]


def tshark_fields(tshark: str, pcap: Path, decode: list[str], display_filter: str,
                  fields: list[str]) -> list[dict[str, list[str]]]:
    cmd = [tshark, "-r", str(pcap), "-n", *decode, "-Y", display_filter, "-T", "fields",
           "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in fields:
        cmd += ["-e", name]
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            errors="replace", timeout=READ_TIMEOUT, check=False)
    assert result.returncode == 0, f"{cmd}\n{result.stderr}"
    rows = []
    for line in result.stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(fields), line
        rows.append({n: (v.split("|") if v else []) for n, v in zip(fields, values, strict=True)})
    return rows


@pytest.fixture
def tshark() -> str:
    return require_binary("tshark")


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A probe socket (never decoded as SIP) and a control socket (decoded as SIP)."""
    pair = []
    for _ in range(2):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        pair.append(sock)
    yield pair[0], pair[1]
    for sock in pair:
        sock.close()


def test_wire_format_validated_by_tshark(responder_process: ResponderProcess, tshark: str,
                                         sockets: tuple[socket.socket, socket.socket],
                                         tmp_path: Path) -> None:
    udp_port, tcp_port = responder_process.udp_port, responder_process.tcp_port
    probe, control = sockets
    probe_port, control_port = probe.getsockname()[1], control.getsockname()[1]
    decode = ["-d", f"udp.port=={udp_port},sip", "-d", f"tcp.port=={tcp_port},sip",
              "-d", f"udp.port=={control_port},sip"]
    pcap = tmp_path / "wire.pcapng"
    capture = Capture(tshark, pcap, [udp_port, tcp_port, probe_port, control_port], decode,
                      probe, probe_port)
    capture.start()
    try:
        clients = [Client("UDP", udp_port), Client("TCP", tcp_port)]
        try:
            for client in clients:
                run_batch(client)
        finally:
            for client in clients:
                client.close()
        probe.sendto(BROKEN_SIP, ("127.0.0.1", control_port))
        assert capture.show(END_PROBE, repeat=False), (
            f"tshark did not show the end-of-traffic probe: {capture.stderr}")
    finally:
        returncode = capture.stop()
    assert returncode == 0, capture.stderr
    dropped = re.search(r"([0-9]+) packets? dropped", capture.stderr)
    assert not dropped or dropped[1] == "0", (
        f"the capture lost packets (tshark/kernel buffers, not the responder): {capture.stderr}")
    assert pcap.exists() and pcap.stat().st_size > 0

    exchanges = [e for client in clients for e in client.exchanges]
    sent_responses = sum(len(e.responses) for e in exchanges)
    sent_requests = sum(client.requests_sent for client in clients)
    from_responder = f"(udp.srcport == {udp_port} || tcp.srcport == {tcp_port})"
    to_responder = f"(udp.dstport == {udp_port} || tcp.dstport == {tcp_port})"

    # 1. The control: both filters find the broken message (and only it), which proves
    #    they work with the installed tshark (its dissector rates it Warning + malformed).
    problem = "(_ws.malformed || _ws.expert.severity >= warning)"
    for display_filter in ("_ws.malformed", "_ws.expert.severity >= warning"):
        flagged = tshark_fields(tshark, pcap, decode, display_filter, FIELDS)
        control_hits = [r for r in flagged if r["udp.dstport"] == [str(control_port)]]
        assert len(control_hits) == 1, f"{display_filter} missed the control: {flagged}"

    # 2. Nothing the responder sent is malformed or carries an expert warning or error
    #    (TCP's connection notes are "chat"/"note" level); nor did the test's requests.
    # A segment the kernel's TCP repeats or SACKs twice on a loaded machine (a
    # retransmission, a D-SACK) is TCP's business, not the responder's octets.
    kernel_tcp = "(tcp.analysis.flags || tcp.options.sack.dsack)"
    bad = tshark_fields(tshark, pcap, decode,
                        f"{from_responder} && {problem} && !(!_ws.malformed && {kernel_tcp})",
                        [*FIELDS, "_ws.expert.message"])
    assert not bad, f"tshark flags the responder's packets: {bad}"
    bad_requests = tshark_fields(tshark, pcap, decode,
                                 f"{to_responder} && {problem} && !(!_ws.malformed && {kernel_tcp})",
                                 [*FIELDS, "_ws.expert.message"])
    assert not bad_requests, f"the test's own requests are malformed: {bad_requests}"

    # 3. Every request was decoded, every response was decoded, with matching codes.
    decoded_requests = tshark_fields(tshark, pcap, decode, f"{to_responder} && sip.Method",
                                     FIELDS)
    assert sum(len(r["sip.Method"]) for r in decoded_requests) == sent_requests

    decoded = tshark_fields(tshark, pcap, decode, f"{from_responder} && sip.Status-Code",
                            FIELDS)
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    lines: dict[tuple[str, str], list[str]] = defaultdict(list)
    count = 0
    for row in decoded:
        codes, status_lines = row["sip.Status-Code"], row["sip.Status-Line"]
        call_ids, cseqs = row["sip.Call-ID"], row["sip.CSeq"]
        assert len(codes) == len(status_lines) == len(call_ids) == len(cseqs), row
        assert row["sip.Method"] == [], f"a request from the responder's port: {row}"
        assert set(row["sip.resend"]) <= {"0"}, f"tshark sees a retransmission: {row}"
        for code, line, call_id, cseq in zip(codes, status_lines, call_ids, cseqs,
                                             strict=True):
            seen[(call_id, cseq)].append(int(code))
            lines[(call_id, cseq)].append(line)
            count += 1
    assert count == sent_responses, f"tshark decoded {count} responses, client got {sent_responses}"
    for e in exchanges:
        key = (e.call_id, e.cseq)
        assert seen[key] == e.expected, f"{key}: on the wire {seen[key]}, expected {e.expected}"
        assert lines[key] == [f"SIP/2.0 {c} {reason_for(c)}" for c in e.expected], lines[key]
    assert len(seen) == len(exchanges)
