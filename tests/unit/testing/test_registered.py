"""testing/calls.py registered: whom a call to an address of record goes to, and
when a registration has expired (the expiry our 2xx granted, else the one asked for,
else an hour)."""

from __future__ import annotations

import pytest

from sipresponder.journal.record import Journal
from sipresponder.testing.calls import registered
from sipresponder.transport.outbound import NoRegistration
from sipresponder.uas.events import Source
from sipresponder.uas.outcome import Outcome

CLIENT = Source("udp", ("127.0.0.1", 5070), ("127.0.0.1", 5060), 1)


def journal_with(register: bytes, response: bytes, at: float = 100.0) -> Journal:
    from sipresponder.scenario.loader import parse_scenario
    from sipresponder.sip.message import parse_request
    from sipresponder.uas.events import Send

    journal = Journal(clock=lambda: at)
    scenario = parse_scenario("[default]\ncode = 200\n")
    request = parse_request(register, datagram=True)
    journal.record(Outcome(register, CLIENT, at, scenario, [Send(response, "udp", CLIENT.remote)],
                           request, scenario.default, None))
    return journal


def register(expires_header: str | None = None) -> bytes:
    lines = ["REGISTER sip:127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
             "From: <sip:alice@example.com>;tag=a", "To: <sip:alice@example.com>",
             "Call-ID: r1", "CSeq: 1 REGISTER", "Contact: <sip:alice@127.0.0.1:5070>"]
    if expires_header is not None:
        lines.append(f"Expires: {expires_header}")
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


def ok(contact_expires: int | None) -> bytes:
    contact = "Contact: <sip:alice@127.0.0.1:5070>" + (
        f";expires={contact_expires}" if contact_expires is not None else "")
    return (f"SIP/2.0 200 OK\r\nVia: x\r\nTo: <sip:alice@example.com>;tag=b\r\n{contact}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize(("asked", "granted", "lifetime"), [
    ("300", 60, 60),  # what our 200 granted wins
    ("120", None, 120),  # else what the REGISTER asked for
    (None, None, 3600),  # else an hour (RFC 3261 10.2.1.1)
])
def test_a_registration_lasts_what_was_granted(asked: str | None, granted: int | None,
                                               lifetime: int) -> None:
    journal = journal_with(register(asked), ok(granted))
    [entry] = list(journal)
    binding = registered(journal, "sip:alice@example.com", now=entry.time + lifetime - 1)
    assert binding.contact == "sip:alice@127.0.0.1:5070" and binding.remote == CLIENT.remote
    with pytest.raises(NoRegistration, match=f"expired 1 s ago \\({lifetime} s\\)"):
        registered(journal, "sip:alice@example.com", now=entry.time + lifetime + 1)
    assert registered(journal, "sip:alice@example.com").seq == entry.seq  # no clock: no expiry
