"""Every protocol check and message limit over real loopback sockets.

Each case sends one request to an in-process responder over UDP (and over TCP where
the transport changes nothing, or changes what happens) and asserts the exact status
code, reason phrase and the header fields the answer needs, or a silent drop. Then
every switchable check of ``sipresponder.uas.validation.CHECKS``, switched off, lets the
same request through to the scenario.

The scenario's own answer carries a reason phrase no check uses ("Scenario OK"), so
a 200 from a check that was skipped cannot be mistaken for anything else.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from sipresponder.uas.validation import CHECKS
from tests.sipclient import Response, TCPClient, UDPClient, parse_response

_n = itertools.count(1)

SCENARIO_OK = "Scenario OK"
ALL_METHODS = ("INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, "
               "PUBLISH, INFO, REFER, MESSAGE, UPDATE")
DEFAULT_ACCEPT = ("application/sdp, text/plain, message/sipfrag, multipart/mixed, "
                  "application/dtmf-relay, application/pidf+xml, message/cpim, "
                  "application/im-iscomposing+xml, application/simple-message-summary")


def scenario(settings: str = "", checks: dict[str, bool] | None = None) -> str:
    """No rule names a method, so every standard method is allowed and reaches
    [default]; ``checks`` become [settings.checks] switches."""
    switches = "".join(f"{k} = {'true' if v else 'false'}\n" for k, v in (checks or {}).items())
    return (f"[settings]\n{settings}\n[settings.checks]\n{switches}\n"
            f'[default]\ncode = 200\nreason = "{SCENARIO_OK}"\n')


def build(method: str = "OPTIONS", uri: str = "sip:limits@127.0.0.1", *,
          transport: str = "UDP", version: str = "SIP/2.0",
          replace: dict[str, str | None] | None = None,
          add: list[tuple[str, str]] | None = None, body: bytes = b"",
          content_length: str | None = None, call_id: str | None = None,
          branch: str | None = None, cseq: str | None = None) -> bytes:
    """A request with the usual header fields; ``replace`` maps a header name to a
    new value (None: leave it out); ``add`` rows go before Content-Length."""
    n = next(_n)
    rows = [
        ("Via", f"SIP/2.0/{transport} 127.0.0.1:5999;branch={branch or f'z9hG4bK-lim-{n}'};rport"),
        ("Max-Forwards", "70"),
        ("From", "<sip:tester@example.com>;tag=limits"),
        ("To", "<sip:limits@127.0.0.1>"),
        ("Call-ID", call_id or f"limits-{n}@test"),
        ("CSeq", cseq or f"1 {method}"),
    ]
    for name, value in (replace or {}).items():
        rows = [(k, value if k == name else v) for k, v in rows if not (k == name and value is None)]
    rows += add or []
    rows.append(("Content-Length", str(len(body)) if content_length is None else content_length))
    head = f"{method} {uri} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in rows)
    return (head + "\r\n").encode("latin-1") + body


def call_id_of(message: bytes) -> str | None:
    for line in message.split(b"\r\n"):
        if line.lower().startswith(b"call-id:"):
            return line.split(b":", 1)[1].strip().decode("latin-1")
    return None


async def ask(responder, transport: str, message: bytes, timeout: float = 3.0) -> Response:
    """One request on a fresh socket or connection, its one response."""
    if transport == "udp":
        client = await UDPClient.connect(responder.udp_port)
        try:
            [resp] = await client.exchange(message, timeout=timeout)
        finally:
            client.close()
    else:
        client = await TCPClient.connect(responder.tcp_port)
        try:
            await client.send(message)
            resp = await client.recv(timeout)
        finally:
            await client.close()
    return resp


def assert_answer(resp: Response, request: bytes, code: int, reason: str,
                  headers: dict[str, str]) -> None:
    assert (resp.code, resp.reason) == (code, reason), resp.raw
    for name, value in headers.items():
        assert resp.all(name) == [value], f"{name} in {resp.raw!r}"
    call_id = call_id_of(request)
    if call_id is not None:
        assert resp.get("Call-ID") == call_id
    to = resp.get("To")
    if to is not None and not to.startswith('"Bob'):  # an unparseable To is echoed as is
        assert ";tag=" in to  # a final response tags To


@dataclass
class Case:
    id: str
    message: dict  # keyword arguments of build()
    code: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    settings: str = ""
    checks: dict[str, bool] = field(default_factory=dict)
    transports: tuple[str, ...] = ("udp", "tcp")


BODY = b"hello\r\n"
CASES = [
    # -- structure (always on) ------------------------------------------------------
    *(Case(f"missing-{h}", {"replace": {h: None}}, 400, f"Missing {h} header field")
      for h in ("To", "From", "Call-ID", "CSeq")),
    Case("invalid-cseq-number", {"cseq": "one OPTIONS"}, 400,
         "Invalid CSeq header field (malformed CSeq header field)"),
    Case("invalid-cseq-too-big", {"cseq": "4294967296 OPTIONS"}, 400,
         "Invalid CSeq header field (CSeq sequence number out of range)"),
    Case("malformed-request-uri", {"uri": "sip:@127.0.0.1"}, 400,
         "Malformed Request-URI (malformed user part)"),
    Case("malformed-from", {"replace": {"From": "<sip:tester@example.com;tag=x"}}, 400,
         "Malformed From header field (missing '>')"),
    Case("malformed-to", {"replace": {"To": '"Bob <sip:limits@127.0.0.1>'}}, 400,
         "Malformed To header field (unterminated quoted string)"),
    Case("malformed-via", {"add": [("Via", "SIP/2.0/UDP 10.0.0.1:5060;;branch=z9hG4bKx")]},
         400, "Malformed Via header field"),
    Case("malformed-top-via-params",
         {"replace": {"Via": "SIP/2.0/UDP 127.0.0.1:5999;;branch=z9hG4bK-limits-semi;rport"}},
         400, "Malformed Via header field"),
    Case("malformed-contact", {"add": [("Contact", "<sip:tester@127.0.0.1:5999")]}, 400,
         "Malformed Contact header field (unterminated '<')"),
    Case("malformed-request-line", {"uri": "sip:limits@127.0.0.1 extra"}, 400,
         "Malformed Request-Line"),
    Case("malformed-header-line", {"add": [("Bad Header", "x")]}, 400, "Malformed header line"),
    # -- switchable checks, on by default -------------------------------------------
    Case("505-version", {"version": "SIP/3.0"}, 505, "Version Not Supported"),
    *(Case(f"duplicate-{h}", {"add": rows}, 400, f"Duplicate {h} header field")
      for h, rows in (("To", [("To", "<sip:other@127.0.0.1>")]),
                      ("From", [("From", "<sip:x@example.com>;tag=2")]),
                      ("Call-ID", [("Call-ID", "second@test")]),
                      ("CSeq", [("CSeq", "2 OPTIONS")]),
                      ("Max-Forwards", [("Max-Forwards", "69")]),
                      ("Content-Type", [("Content-Type", "text/plain")] * 2))),
    Case("501-unknown-method", {"method": "FROBNICATE"}, 501, "Not Implemented",
         {"Allow": ALL_METHODS}),
    Case("416-uri-scheme", {"uri": "http://127.0.0.1/limits"}, 416, "Unsupported URI Scheme"),
    Case("400-cseq-method", {"cseq": "1 INVITE"}, 400,
         "CSeq method does not match the request method"),
    Case("400-expires", {"method": "REGISTER", "add": [("Expires", "soon")]}, 400,
         "Invalid Expires header field"),
    Case("420-require", {"add": [("Require", "replaces, 100rel, foo")]}, 420, "Bad Extension",
         {"Unsupported": "100rel, foo"}),
    Case("415-content-type",
         {"method": "MESSAGE", "body": BODY, "add": [("Content-Type", "application/x-frob")]},
         415, "Unsupported Media Type", {"Accept": DEFAULT_ACCEPT}),
    Case("415-content-encoding",
         {"method": "MESSAGE", "body": BODY,
          "add": [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")]},
         415, "Unsupported Media Type", {"Accept-Encoding": "identity"}),
    Case("415-content-language",
         {"method": "MESSAGE", "body": BODY,
          "add": [("Content-Type", "text/plain"), ("Content-Language", "fr")]},
         415, "Unsupported Media Type", {"Accept-Language": "en"},
         checks={"content_language": True}),
    Case("406-accept-refuses-sdp", {"method": "INVITE", "add": [("Accept", "text/plain")]},
         406, "Not Acceptable",
         {"Warning": '399 sipresponder "No acceptable body format: application/sdp"'}),
    Case("400-content-length-larger-than-datagram", {"body": BODY, "content_length": "100",
                                                     "add": [("Content-Type", "text/plain")]},
         400, "Content-Length larger than the message body", transports=("udp",)),
    Case("400-content-length-not-a-number", {"content_length": "ten"}, 400,
         "Invalid Content-Length header field", transports=("udp",)),
    # -- limits --------------------------------------------------------------------
    # A refusal for size is 513 Message Too Large (RFC 3261 21.5.7) whichever limit it is.
    Case("513-udp-over-max-message-size", {"add": [("X-Pad", "p" * 1100)]}, 513,
         "Message Too Large (over 1000 octets)", settings="max_message_size = 1000",
         transports=("udp",)),
    Case("513-too-many-headers", {"add": [(f"X-H{i}", "v") for i in range(11)]}, 513,
         "Message Too Large (over 16 header fields)", settings="max_headers = 16"),
    Case("513-header-line-too-long", {"add": [("X-Long", "l" * 93)]}, 513,
         "Message Too Large (header line over 100 octets)", settings="max_line_length = 100"),
    Case("513-header-line-too-long-default", {"add": [("X-Long", "l" * 8200)]}, 513,
         "Message Too Large (header line over 8192 octets)"),
    # Issue 12: one 60 kB line (a loopback datagram holds it) got 400 with the defaults.
    Case("513-60-kB-header-line", {"add": [("X-Long", "l" * 60_000)]}, 513,
         "Message Too Large (header line over 8192 octets)"),
    Case("483-max-forwards", {"replace": {"Max-Forwards": "0"}}, 483, "Too Many Hops",
         checks={"max_forwards": True}),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_rejection(responder_factory, case: Case, transport: str) -> None:
    if transport not in case.transports:
        pytest.skip(f"{case.id} is about {'/'.join(case.transports)} framing")
    responder = await responder_factory(scenario(case.settings, case.checks))
    message = build(transport=transport.upper(), **case.message)
    resp = await ask(responder, transport, message)
    assert_answer(resp, message, case.code, case.reason, case.headers)
    assert resp.body == b""
    assert resp.get("Server") == "sipresponder"


# -- what is NOT a rejection --------------------------------------------------------------
ACCEPTED = [
    # Max-Forwards: 0 is a proxy's business: a UAS answers it (RFC 4475 3.3.11).
    ("max-forwards-0-by-default", {"replace": {"Max-Forwards": "0"}}, ""),
    ("exactly-max-headers", {"add": [(f"X-H{i}", "v") for i in range(9)]}, "max_headers = 16"),
    ("exactly-max-line-length", {"add": [("X-Long", "l" * 92)]}, "max_line_length = 100"),
    ("exactly-max-message-size", {}, "max_message_size = {size}"),
    ("proxy-require-ignored", {"add": [("Proxy-Require", "foo")]}, ""),
    ("require-supported-tag", {"add": [("Require", "replaces")]}, ""),
    ("content-language-off-by-default",
     {"method": "MESSAGE", "body": BODY,
      "add": [("Content-Type", "text/plain"), ("Content-Language", "fr")]}, ""),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("message", "settings"), [a[1:] for a in ACCEPTED],
                         ids=[a[0] for a in ACCEPTED])
async def test_accepted(responder_factory, message: dict, settings: str, transport: str) -> None:
    request = build(transport=transport.upper(), **message)
    settings = settings.format(size=len(request))
    responder = await responder_factory(scenario(settings))
    resp = await ask(responder, transport, request)
    assert_answer(resp, request, 200, SCENARIO_OK, {})


async def test_406_off_gives_200_without_body(responder_factory) -> None:
    responder = await responder_factory(scenario(checks={"accept": False}))
    request = build("INVITE", add=[("Accept", "text/plain")])
    resp = await ask(responder, "udp", request)
    assert_answer(resp, request, 200, SCENARIO_OK, {"Content-Length": "0"})
    assert resp.body == b"" and resp.get("Content-Type") is None
    # and an INVITE that accepts SDP gets its offer
    request = build("INVITE", add=[("Accept", "application/sdp")])
    resp = await ask(responder, "udp", request)
    assert resp.get("Content-Type") == "application/sdp" and resp.body.startswith(b"v=0\r\n")


async def test_content_length_off_takes_the_datagram_as_the_body(responder_factory) -> None:
    responder = await responder_factory(scenario(checks={"content_length": False}))
    request = build("MESSAGE", body=BODY, content_length="100",
                    add=[("Content-Type", "text/plain")])
    resp = await ask(responder, "udp", request)
    assert_answer(resp, request, 200, SCENARIO_OK, {})


async def test_482_merged_request(responder_factory) -> None:
    """Same From tag, Call-ID and CSeq, no To tag, another branch: 482 (RFC 3261 8.2.2.2);
    the first copy and a retransmission of it (same branch) are answered normally."""
    responder = await responder_factory(scenario(checks={"loop": True}))
    first = build("MESSAGE", call_id="merged@test", branch="z9hG4bK-merge-1", cseq="7 MESSAGE")
    resp = await ask(responder, "udp", first)
    assert_answer(resp, first, 200, SCENARIO_OK, {})
    resp = await ask(responder, "udp", first)  # a retransmission is not merged
    assert_answer(resp, first, 200, SCENARIO_OK, {})
    second = build("MESSAGE", call_id="merged@test", branch="z9hG4bK-merge-2", cseq="7 MESSAGE")
    resp = await ask(responder, "udp", second)
    assert_answer(resp, second, 482, "Loop Detected", {})
    assert "z9hG4bK-merge-2" in resp.get("Via")
    # a request inside a dialog (To tag) and a new CSeq are not merged
    in_dialog = build("MESSAGE", call_id="merged@test", branch="z9hG4bK-merge-3",
                      cseq="7 MESSAGE", replace={"To": "<sip:limits@127.0.0.1>;tag=abc"})
    assert (await ask(responder, "tcp", in_dialog.replace(b"/UDP", b"/TCP"))).code == 200
    next_cseq = build("MESSAGE", call_id="merged@test", branch="z9hG4bK-merge-4",
                      cseq="8 MESSAGE")
    assert (await ask(responder, "udp", next_cseq)).code == 200


# -- 513 and framing errors on TCP close the connection -------------------------------------
TCP_CLOSING = [
    ("declared-body-over-max-message-size",
     build(transport="TCP", content_length="5000"), 513,
     "Message Too Large (over 1000 octets)", "max_message_size = 1000"),
    ("header-section-over-max-message-size",
     build(transport="TCP", add=[("X-Pad", "p" * 1100)]), 513,
     "Message Too Large (over 1000 octets)", "max_message_size = 1000"),
    ("missing-content-length",
     build(transport="TCP").replace(b"Content-Length: 0\r\n", b""), 400,
     "Missing Content-Length header field", ""),
    ("two-content-lengths",
     build(transport="TCP", add=[("Content-Length", "0")]), 400,
     "Multiple Content-Length header fields", ""),
    ("content-length-not-a-number",
     build(transport="TCP", content_length="ten"), 400,
     "Invalid Content-Length header field", ""),
]


@pytest.mark.parametrize(("message", "code", "reason", "settings"),
                         [c[1:] for c in TCP_CLOSING], ids=[c[0] for c in TCP_CLOSING])
async def test_tcp_framing_error_answers_then_closes(responder_factory, message: bytes,
                                                     code: int, reason: str,
                                                     settings: str) -> None:
    responder = await responder_factory(scenario(settings))
    client = await TCPClient.connect(responder.tcp_port)
    try:
        # what follows the broken message on the stream is never read as a request
        await client.send(message + build(transport="TCP"))
        resp = await client.recv()
        assert_answer(resp, message, code, reason, {})
        assert await asyncio.wait_for(client.reader.read(), 3) == b""  # closed
    finally:
        await client.close()


async def test_tcp_513_before_the_body_arrives(responder_factory) -> None:
    """A declared body over the limit is refused as soon as the header section is in:
    the responder never waits for (or buffers) the 5000 octets."""
    responder = await responder_factory(scenario("max_message_size = 1000"))
    client = await TCPClient.connect(responder.tcp_port)
    try:
        message = build(transport="TCP", content_length="5000",
                        add=[("Content-Type", "text/plain")])
        await client.send(message + b"x" * 10)
        resp = await client.recv()
        assert (resp.code, resp.reason) == (513, "Message Too Large (over 1000 octets)")
        assert await asyncio.wait_for(client.reader.read(), 3) == b""
    finally:
        await client.close()


# -- silent drops -----------------------------------------------------------------------
NO_VIA = build(replace={"Via": None})
A_RESPONSE = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-resp\r\n"
              b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: resp@test\r\n"
              b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
BROKEN_VIA = build(replace={"Via": "SIP/2.0/UDP"})
DROPPED = [("no-via", NO_VIA), ("a-response", A_RESPONSE), ("unroutable-via", BROKEN_VIA),
           ("random-bytes", bytes(range(256)) * 2)]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("message", [d[1] for d in DROPPED], ids=[d[0] for d in DROPPED])
async def test_silent_drop(responder_factory, message: bytes, transport: str) -> None:
    """Nothing comes back, and the next request on the same socket or connection is
    answered: its response is the first thing that arrives."""
    responder = await responder_factory(scenario())
    counters = responder.engine.counters
    follow_up = build(transport=transport.upper())
    if transport == "udp":
        client = await UDPClient.connect(responder.udp_port)
        try:
            await client.send(message)
            [resp] = await client.exchange(follow_up)
        finally:
            client.close()
    else:
        if message.startswith(bytes(range(3))):
            pytest.skip("random bytes on a stream are a framing error (test_abuse.py)")
        client = await TCPClient.connect(responder.tcp_port)
        try:
            await client.send(message + follow_up)
            resp = await client.recv()
        finally:
            await client.close()
    assert_answer(resp, follow_up, 200, SCENARIO_OK, {})
    assert counters["dropped"] == 1
    assert sum(v for k, v in counters.items() if k.startswith("response:")) == 1


# -- every switchable check, on and off ---------------------------------------------------
def _merged_pair() -> list[bytes]:
    cid = f"switch-merged-{next(_n)}@test"
    return [build("MESSAGE", call_id=cid, branch=f"z9hG4bK-{cid}-{i}", cseq="3 MESSAGE")
            for i in (1, 2)]


# check name -> (messages to send, the rejection the last one gets when the check is on)
TRIGGERS = {
    "version": (lambda: [build(version="SIP/3.0")], 505, "Version Not Supported"),
    "content_length": (lambda: [build("MESSAGE", body=BODY, content_length="100",
                                      add=[("Content-Type", "text/plain")])],
                       400, "Content-Length larger than the message body"),
    "duplicate_headers": (lambda: [build(add=[("Max-Forwards", "69")])], 400,
                          "Duplicate Max-Forwards header field"),
    "method": (lambda: [build("FROBNICATE")], 501, "Not Implemented"),
    "uri_scheme": (lambda: [build(uri="http://127.0.0.1/x")], 416, "Unsupported URI Scheme"),
    "cseq_method": (lambda: [build(cseq="1 INVITE")], 400,
                    "CSeq method does not match the request method"),
    "expires": (lambda: [build("REGISTER", add=[("Expires", "soon")])], 400,
                "Invalid Expires header field"),
    "max_forwards": (lambda: [build(replace={"Max-Forwards": "0"})], 483, "Too Many Hops"),
    "loop": (_merged_pair, 482, "Loop Detected"),
    "require": (lambda: [build(add=[("Require", "foo")])], 420, "Bad Extension"),
    "content_type": (lambda: [build("MESSAGE", body=BODY,
                                    add=[("Content-Type", "application/x-frob")])],
                     415, "Unsupported Media Type"),
    "content_encoding": (lambda: [build("MESSAGE", body=BODY,
                                        add=[("Content-Type", "text/plain"),
                                             ("Content-Encoding", "gzip")])],
                         415, "Unsupported Media Type"),
    "content_language": (lambda: [build("MESSAGE", body=BODY,
                                        add=[("Content-Type", "text/plain"),
                                             ("Content-Language", "fr")])],
                         415, "Unsupported Media Type"),
    "accept": (lambda: [build("INVITE", add=[("Accept", "text/plain")])], 406,
               "Not Acceptable"),
}


def test_every_check_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(CHECKS)


@pytest.mark.parametrize("on", [True, False, None], ids=["on", "off", "default"])
@pytest.mark.parametrize("name", list(CHECKS))
async def test_switch(responder_factory, name: str, on: bool | None) -> None:
    """Each check switched on, off, or left at the default CHECKS gives it."""
    make, code, reason = TRIGGERS[name]
    responder = await responder_factory(scenario() if on is None else scenario(checks={name: on}))
    client = await UDPClient.connect(responder.udp_port)
    try:
        for message in make():
            [resp] = await client.exchange(message)
    finally:
        client.close()
    enabled = CHECKS[name].default if on is None else on
    expected = (code, reason) if enabled else (200, SCENARIO_OK)
    assert (resp.code, resp.reason) == expected, resp.raw


def test_response_parser_sanity() -> None:
    """The test client's parser rejects what it should (so the tests above mean something)."""
    with pytest.raises(AssertionError):
        parse_response(b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nabc")
