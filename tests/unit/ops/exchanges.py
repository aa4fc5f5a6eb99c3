"""Two exchanges as the wire carries them, through the engine into a journal (sans I/O, a
clock the test moves), for the ladder and pcap tests: each is compared with the frames
a live capture of the same exchange has (tests/interop/test_pcap_live.py captures them).
"""

from __future__ import annotations

from sipresponder.journal.record import Journal, JournalEntry
from sipresponder.scenario.loader import parse_scenario
from sipresponder.uac.exchange import Exchange
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.sipclient import make_request

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
SCENARIO = """\
[[rule]]
match = { method = "INVITE", user = "ring" }
provisional = [180]
action = "provisional-only"

[[rule]]
match = { method = "INVITE", user = "answer" }
provisional = [180]
code = 200

[default]
code = 200
"""
# (from the peer?, the start line's first word: a method or a status code, CSeq)
Frame = tuple[bool, str, str]
CANCEL_FRAMES: list[Frame] = [
    (True, "INVITE", "1 INVITE"), (False, "180", "1 INVITE"),
    (True, "CANCEL", "1 CANCEL"), (False, "200", "1 CANCEL"), (False, "487", "1 INVITE"),
    (True, "ACK", "1 ACK"),
]
TIMER_G_FRAMES: list[Frame] = [
    (True, "INVITE", "1 INVITE"), (False, "180", "1 INVITE"), (False, "200", "1 INVITE"),
    (False, "200", "1 INVITE"), (False, "200", "1 INVITE"), (True, "ACK", "1 ACK"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cancelled_call() -> list[JournalEntry]:
    """INVITE, 180, CANCEL, 200, 487, ACK (the ACK of the 487 shares its branch)."""
    engine = Engine(parse_scenario(SCENARIO, "<wire>"))
    clock = Clock()
    journal = Journal(clock=clock)
    uri = "sip:ring@127.0.0.1"
    journal.record(engine.handle(make_request("INVITE", uri, call_id="c", branch="z9hG4bK-c"),
                                 UDP, 0.0))
    clock.now += 0.25
    journal.record(engine.handle(make_request("CANCEL", uri, call_id="c", branch="z9hG4bK-c"),
                                 UDP, 0.25))
    clock.now += 0.01
    journal.record(engine.handle(make_request("ACK", uri, call_id="c", branch="z9hG4bK-c"),
                                 UDP, 0.26))
    return list(journal)


def timer_g_call() -> list[JournalEntry]:
    """INVITE, 180, 200, then Timer G's two copies of the 200 (T1 = 0.5 s), then ACK."""
    engine = Engine(parse_scenario(SCENARIO, "<wire>"))
    clock = Clock()
    journal = Journal(clock=clock)
    uri = "sip:answer@127.0.0.1"
    journal.record(engine.handle(make_request("INVITE", uri, call_id="g", branch="z9hG4bK-g"),
                                 UDP, 0.0))
    for now in (0.5, 1.5):  # the 200 went with the 180; Timer G at T1, then 2*T1 later
        clock.now = 1000.0 + now
        engine.fire(now)
    clock.now += 0.1
    journal.record(engine.handle(make_request("ACK", uri, call_id="g", branch="z9hG4bK-g2"),
                                 UDP, 1.6))
    return list(journal)


# The far end hangs up: INVITE, 200, ACK from the client, then our BYE and its 200.
HANGUP_FRAMES: list[Frame] = [
    (True, "INVITE", "1 INVITE"), (False, "200", "1 INVITE"), (True, "ACK", "1 ACK"),
    (False, "BYE", "1 BYE"), (True, "200", "1 BYE"),
]


def hangup_call(transport: str = "udp") -> list[JournalEntry]:
    """The client calls and ACKs; 1 s later the responder sends BYE (a fabricated
    Exchange, recorded as the far end records it), answered 200 after 0.05 s."""
    source = Source(transport, UDP.remote, UDP.local, 1)  # type: ignore[arg-type]
    engine = Engine(parse_scenario(SCENARIO, "<wire>"))
    clock = Clock()
    journal = Journal(clock=clock)
    uri = "sip:other@127.0.0.1"
    wire = transport.upper()
    journal.record(engine.handle(make_request("INVITE", uri, call_id="h", branch="z9hG4bK-h",
                                              transport=wire), source, 0.0))
    clock.now += 0.01
    journal.record(engine.handle(make_request("ACK", uri, call_id="h", branch="z9hG4bK-h2",
                                              transport=wire), source, 0.01))
    clock.now += 1.0
    bye = (f"BYE sip:tester@{UDP.remote[0]}:{UDP.remote[1]} SIP/2.0\r\n"
           f"Via: SIP/2.0/{wire} {UDP.local[0]}:{UDP.local[1]};branch=z9hG4bK-bye\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:other@127.0.0.1>;tag=ours\r\n"
           "To: <sip:tester@example.com>;tag=fromtag1\r\nCall-ID: h\r\nCSeq: 1 BYE\r\n"
           "Content-Length: 0\r\n\r\n").encode()
    exchange = Exchange(bye, "BYE", source.transport, UDP.remote, UDP.local, "h",
                        "rule #1, step 1")
    journal.record_sent(exchange)
    clock.now += 0.05
    exchange.received(f"SIP/2.0 200 OK\r\nVia: SIP/2.0/{wire} {UDP.local[0]}:{UDP.local[1]};"
                      "branch=z9hG4bK-bye\r\nFrom: <sip:other@127.0.0.1>;tag=ours\r\n"
                      "To: <sip:tester@example.com>;tag=fromtag1\r\nCall-ID: h\r\n"
                      "CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n".encode())
    return list(journal)
