"""Unit tests of codes.py: the response-code registry (RFC 3261 21 and the IANA registry)."""

from __future__ import annotations

import pytest

from sipresponder.sip.codes import CODES, HEADER_FIELDS, reason_for, requirements

# RFC 3261 21: every code the base specification defines, with its reason phrase.
RFC3261 = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
    604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


@pytest.mark.parametrize(("code", "reason"), sorted(RFC3261.items()))
def test_reason_phrases_of_rfc_3261(code: int, reason: str) -> None:
    assert reason_for(code) == reason
    assert CODES[code].rfc.startswith("RFC 3261 21.")


def test_later_rfcs_are_registered() -> None:
    assert reason_for(199) == "Early Dialog Terminated"  # RFC 6228
    assert reason_for(422) == "Session Interval Too Small"  # RFC 4028
    assert reason_for(607) == "Unwanted"  # RFC 8197


@pytest.mark.parametrize(("code", "reason"), [
    (198, "Provisional"), (299, "Success"), (399, "Redirection"), (499, "Client Error"),
    (599, "Server Error"), (699, "Global Failure"),
])
def test_an_unregistered_code_takes_its_class_reason(code: int, reason: str) -> None:
    # RFC 3261 8.1.3.2: an unrecognized code is treated as the x00 of its class.
    assert code not in CODES
    assert reason_for(code) == reason


def test_the_table_is_keyed_by_its_codes() -> None:
    assert all(key == entry.code and 100 <= key <= 699 for key, entry in CODES.items())
    assert [c for c, e in CODES.items() if e.is_provisional] == sorted(
        c for c in CODES if c < 200)


@pytest.mark.parametrize(("code", "headers"), [
    (302, ("Contact",)),  # RFC 3261 21.3
    (401, ("WWW-Authenticate",)),  # RFC 3261 21.4.2
    (405, ("Allow",)),  # RFC 3261 21.4.6
    (407, ("Proxy-Authenticate",)),  # RFC 3261 21.4.8
    (415, ("Accept", "Accept-Encoding", "Accept-Language")),  # RFC 3261 21.4.13: any one
    (420, ("Unsupported",)),  # RFC 3261 21.4.15
    (421, ("Require",)),  # RFC 3261 21.4.16
    (423, ("Min-Expires",)),  # RFC 3261 21.4.17
    (422, ("Min-SE",)),  # RFC 4028 6
])
def test_required_header_fields(code: int, headers: tuple[str, ...]) -> None:
    [requirement] = requirements(code)
    assert requirement.headers == headers and requirement.level == "must"


def test_requirements_by_level() -> None:
    assert requirements(200) == [] and requirements(999) == []
    assert requirements(503) == []  # Retry-After is only a SHOULD (RFC 3261 21.5.4)
    [retry] = requirements(503, levels=("must", "should"))
    assert retry.headers == ("Retry-After",)
    assert requirements(486, levels=("may",))[0].headers == ("Retry-After",)


def test_every_required_header_has_a_way_to_be_supplied() -> None:
    for entry in CODES.values():
        for requirement in entry.requires:
            for name in requirement.headers:
                assert HEADER_FIELDS[name].name == name
