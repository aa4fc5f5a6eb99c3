"""The RFC 3261 8.2 checks before any rule (uas/validation.py), on parsed requests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.sip.message import parse_request
from sipresponder.uas.validation import (
    BODY_CHECKS,
    CHECKS,
    Rejection,
    check_request,
    enabled_checks,
)
from tests.sipclient import make_request

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = load_scenario(ROOT / "scenarios" / "default.toml")


def check(data: bytes, scenario: object = DEFAULT) -> Rejection | None:
    return check_request(parse_request(data, datagram=True), scenario)  # type: ignore[arg-type]


def strip(data: bytes, header: bytes) -> bytes:
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(header))


def test_a_plain_request_passes() -> None:
    assert check(make_request("OPTIONS", "sip:a@x")) is None


@pytest.mark.parametrize(("data", "code", "reason"), [
    (strip(make_request("OPTIONS", "sip:a@x"), b"Call-ID"), 400, "Missing Call-ID header field"),
    (make_request("OPTIONS", "sip:a@x").replace(b"CSeq: 1 OPTIONS", b"CSeq: x OPTIONS"), 400,
     "Invalid CSeq header field"),
    (make_request("OPTIONS", "sip:a@x").replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), 400,
     "CSeq method does not match the request method"),
    (make_request("OPTIONS", "sip:a@x", headers=[("Call-ID", "again")]), 400,
     "Duplicate Call-ID header field"),
    (make_request("OPTIONS", "http://a/"), 416, "Unsupported URI Scheme"),
    (make_request("FROB", "sip:a@x"), 501, "Not Implemented"),
    (make_request("REGISTER", "sip:a@x", headers=[("Expires", "soon")]), 400,
     "Invalid Expires header field"),
    (make_request("OPTIONS", "sip:a@x", headers=[("Require", "100rel, foo")]), 420,
     "Bad Extension"),
    (make_request("MESSAGE", "sip:a@x", headers=[("Content-Type", "image/gif")], body=b"GIF"),
     415, "Unsupported Media Type"),
])
def test_rejections(data: bytes, code: int, reason: str) -> None:
    rejection = check(data)
    assert rejection is not None
    assert (rejection.code, rejection.reason.split(" (")[0]) == (code, reason)


def test_rejections_carry_the_headers_their_code_needs() -> None:
    r420 = check(make_request("OPTIONS", "sip:a@x", headers=[("Require", "foo, replaces")]))
    assert r420 is not None and r420.headers == [("Unsupported", "foo")]  # RFC 3261 8.2.2.3
    r501 = check(make_request("FROB", "sip:a@x"))
    assert r501 is not None and r501.headers[0][0] == "Allow"


def test_switches_turn_checks_off_and_on() -> None:
    mf0 = make_request("OPTIONS", "sip:a@x").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    assert check(mf0) is None  # a UAS answers Max-Forwards 0 (RFC 4475 3.3.11)
    proxy = parse_scenario("[settings.checks]\nmax_forwards = true\nrequire = false\n"
                           "[default]\ncode = 200\n", "<t>")
    rejection = check(mf0, proxy)
    assert rejection is not None and rejection.code == 483
    assert check(make_request("OPTIONS", "sip:a@x", headers=[("Require", "foo")]), proxy) is None


def test_enabled_checks_follow_the_table_order_and_body_checks_are_skippable() -> None:
    on = enabled_checks({})
    defaults = [i.check for i in CHECKS.values() if i.check is not None and i.default]
    assert list(on[1:]) == defaults  # the structural check always runs first
    assert {i.check for i in CHECKS.values()} >= BODY_CHECKS
    everything = enabled_checks(dict.fromkeys(CHECKS, True))
    assert len(everything) == 1 + sum(i.check is not None for i in CHECKS.values())


def test_parser_errors_come_first_and_version_can_be_switched_off() -> None:
    bad_version = make_request("OPTIONS", "sip:a@x").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1)
    rejection = check(bad_version)
    assert rejection is not None and rejection.code == 505
    lax = parse_scenario("[settings.checks]\nversion = false\n[default]\ncode = 200\n", "<t>")
    assert check(bad_version, lax) is None
