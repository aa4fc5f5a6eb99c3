"""The SIP response-code registry: reason phrases and the header fields each code needs.

Data, not logic: every code of the IANA "Response Codes" sub-registry of the SIP
Parameters registry, with the reason phrase its RFC gives and the header fields that
RFC requires (MUST) or recommends (SHOULD/MAY) in a response with that code.

The project's reference page had two slips that this table corrects: 380 (not 308) is
Alternative Service, and 183 is "Session Progress".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["must", "should", "may"]


@dataclass(frozen=True, slots=True)
class HeaderField:
    """How a scenario supplies a header a code needs.

    ``field`` is the rule key that sets it; ``derive`` names what the responder can
    compute on its own when the rule leaves it out; ``example`` is the value used by
    ``fill_required = true`` when nothing else supplies one ({...} are templates).
    """

    name: str
    field: str
    example: str
    derive: str | None = None


HEADER_FIELDS: dict[str, HeaderField] = {
    h.name: h
    for h in (
        HeaderField("Contact", "contacts", "<sip:redirected@{local.hostport}>"),
        HeaderField("Retry-After", "retry_after", "30"),
        HeaderField("Allow", "allow", "", derive="the methods the scenario answers"),
        HeaderField("Accept", "accept", "", derive="settings.accept"),
        HeaderField("Accept-Encoding", "accept_encoding", "", derive="settings.accept_encoding"),
        HeaderField("Accept-Language", "accept_language", "", derive="settings.accept_language"),
        HeaderField(
            "Unsupported",
            "unsupported",
            "x-unsupported-extension",
            derive="the request's Require tags not in settings.supported",
        ),
        HeaderField("Require", "require", "100rel"),
        HeaderField("Min-Expires", "min_expires", "60"),
        HeaderField("Min-SE", "min_se", "90"),
        HeaderField("Expires", "expires", "3600"),
        HeaderField(
            "WWW-Authenticate",
            "www_authenticate",
            'Digest realm="sipresponder", nonce="{nonce}", algorithm=MD5, qop="auth"',
        ),
        HeaderField(
            "Proxy-Authenticate",
            "proxy_authenticate",
            'Digest realm="sipresponder", nonce="{nonce}", algorithm=MD5, qop="auth"',
        ),
        HeaderField("Security-Server", "security_server", "tls;q=0.2"),
        HeaderField("Accept-Resource-Priority", "accept_resource_priority", "wps.4"),
        HeaderField("Geolocation-Error", "geolocation_error", '100;text="Cannot Process Location"'),
        HeaderField("Permission-Missing", "permission_missing", "<{ruri}>"),
        HeaderField("Recv-Info", "recv_info", "nil"),
        HeaderField("Allow-Events", "allow_events", "presence"),
        HeaderField("Warning", "warning", '399 sipresponder "Not acceptable"'),
        HeaderField("Alert-Info-Error", "alert_info_error", ""),
    )
}


@dataclass(frozen=True, slots=True)
class Requirement:
    headers: tuple[str, ...]  # any one of them satisfies the requirement
    level: Level
    rfc: str


@dataclass(frozen=True, slots=True)
class StatusCode:
    code: int
    reason: str
    rfc: str
    requires: tuple[Requirement, ...] = ()

    @property
    def is_provisional(self) -> bool:
        return self.code < 200


def _r(headers: str, level: Level, rfc: str) -> Requirement:
    return Requirement(tuple(headers.split("|")), level, rfc)


_CONTACT_3XX = _r("Contact", "must", "RFC 3261 21.3")
_RETRY = _r("Retry-After", "may", "RFC 3261 20.33")

CODES: dict[int, StatusCode] = {
    c.code: c
    for c in (
        # 1xx Provisional
        StatusCode(100, "Trying", "RFC 3261 21.1.1"),
        StatusCode(180, "Ringing", "RFC 3261 21.1.2"),
        StatusCode(181, "Call Is Being Forwarded", "RFC 3261 21.1.3"),
        StatusCode(182, "Queued", "RFC 3261 21.1.4"),
        StatusCode(183, "Session Progress", "RFC 3261 21.1.5"),
        StatusCode(199, "Early Dialog Terminated", "RFC 6228 4"),
        # 2xx Successful
        StatusCode(200, "OK", "RFC 3261 21.2.1"),
        StatusCode(202, "Accepted", "RFC 6665 8.3.1 (deprecated)"),
        StatusCode(
            204, "No Notification", "RFC 5839 7.1", (_r("Expires", "must", "RFC 5839 4.2.1"),)
        ),
        # 3xx Redirection
        StatusCode(300, "Multiple Choices", "RFC 3261 21.3.1", (_CONTACT_3XX,)),
        StatusCode(301, "Moved Permanently", "RFC 3261 21.3.2", (_CONTACT_3XX,)),
        StatusCode(302, "Moved Temporarily", "RFC 3261 21.3.3", (_CONTACT_3XX,)),
        StatusCode(305, "Use Proxy", "RFC 3261 21.3.4", (_CONTACT_3XX,)),
        StatusCode(380, "Alternative Service", "RFC 3261 21.3.5"),
        # 4xx Request Failure
        StatusCode(400, "Bad Request", "RFC 3261 21.4.1"),
        StatusCode(
            401,
            "Unauthorized",
            "RFC 3261 21.4.2",
            (_r("WWW-Authenticate", "must", "RFC 3261 21.4.2"),),
        ),
        StatusCode(402, "Payment Required", "RFC 3261 21.4.3"),
        StatusCode(403, "Forbidden", "RFC 3261 21.4.4"),
        StatusCode(404, "Not Found", "RFC 3261 21.4.5"),
        StatusCode(
            405, "Method Not Allowed", "RFC 3261 21.4.6", (_r("Allow", "must", "RFC 3261 21.4.6"),)
        ),
        StatusCode(406, "Not Acceptable", "RFC 3261 21.4.7"),
        StatusCode(
            407,
            "Proxy Authentication Required",
            "RFC 3261 21.4.8",
            (_r("Proxy-Authenticate", "must", "RFC 3261 21.4.8"),),
        ),
        StatusCode(408, "Request Timeout", "RFC 3261 21.4.9"),
        StatusCode(410, "Gone", "RFC 3261 21.4.10"),
        StatusCode(412, "Conditional Request Failed", "RFC 3903 11.2.1"),
        StatusCode(413, "Request Entity Too Large", "RFC 3261 21.4.11", (_RETRY,)),
        StatusCode(414, "Request-URI Too Long", "RFC 3261 21.4.12"),
        StatusCode(
            415,
            "Unsupported Media Type",
            "RFC 3261 21.4.13",
            (_r("Accept|Accept-Encoding|Accept-Language", "must", "RFC 3261 21.4.13"),),
        ),
        StatusCode(416, "Unsupported URI Scheme", "RFC 3261 21.4.14"),
        StatusCode(
            417,
            "Unknown Resource-Priority",
            "RFC 4412 12.4",
            (_r("Accept-Resource-Priority", "should", "RFC 4412 4.6.2"),),
        ),
        StatusCode(
            420,
            "Bad Extension",
            "RFC 3261 21.4.15",
            (_r("Unsupported", "must", "RFC 3261 21.4.15"),),
        ),
        StatusCode(
            421,
            "Extension Required",
            "RFC 3261 21.4.16",
            (_r("Require", "must", "RFC 3261 21.4.16"),),
        ),
        StatusCode(
            422, "Session Interval Too Small", "RFC 4028 6", (_r("Min-SE", "must", "RFC 4028 6"),)
        ),
        StatusCode(
            423,
            "Interval Too Brief",
            "RFC 3261 21.4.17",
            (_r("Min-Expires", "must", "RFC 3261 10.3"),),
        ),
        StatusCode(
            424,
            "Bad Location Information",
            "RFC 6442 4.3",
            (_r("Geolocation-Error", "should", "RFC 6442 4.3"),),
        ),
        StatusCode(425, "Bad Alert Message", "RFC 8876 5.1"),
        StatusCode(428, "Use Identity Header", "RFC 8224 6.2.2"),
        StatusCode(429, "Provide Referrer Identity", "RFC 3892 5"),
        StatusCode(430, "Flow Failed", "RFC 5626 11.5"),
        StatusCode(433, "Anonymity Disallowed", "RFC 5079 5"),
        StatusCode(436, "Bad Identity Info", "RFC 8224 13.2"),
        StatusCode(437, "Unsupported Credential", "RFC 8224 13.2"),
        StatusCode(438, "Invalid Identity Header", "RFC 8224 13.2"),
        StatusCode(439, "First Hop Lacks Outbound Support", "RFC 5626 11.6"),
        StatusCode(440, "Max-Breadth Exceeded", "RFC 5393 5"),
        StatusCode(
            469, "Bad Info Package", "RFC 6086 11.6", (_r("Recv-Info", "must", "RFC 6086 5.2.3"),)
        ),
        StatusCode(
            470,
            "Consent Needed",
            "RFC 5360 5.9.2",
            (_r("Permission-Missing", "must", "RFC 5360 5.9.2"),),
        ),
        StatusCode(480, "Temporarily Unavailable", "RFC 3261 21.4.18", (_RETRY,)),
        StatusCode(481, "Call/Transaction Does Not Exist", "RFC 3261 21.4.19"),
        StatusCode(482, "Loop Detected", "RFC 3261 21.4.20"),
        StatusCode(483, "Too Many Hops", "RFC 3261 21.4.21"),
        StatusCode(484, "Address Incomplete", "RFC 3261 21.4.22"),
        StatusCode(
            485, "Ambiguous", "RFC 3261 21.4.23", (_r("Contact", "may", "RFC 3261 21.4.23"),)
        ),
        StatusCode(486, "Busy Here", "RFC 3261 21.4.24", (_RETRY,)),
        StatusCode(487, "Request Terminated", "RFC 3261 21.4.25"),
        StatusCode(488, "Not Acceptable Here", "RFC 3261 21.4.26"),
        StatusCode(
            489, "Bad Event", "RFC 6665 8.3.2", (_r("Allow-Events", "should", "RFC 6665 7.2.2"),)
        ),
        StatusCode(491, "Request Pending", "RFC 3261 21.4.27"),
        StatusCode(493, "Undecipherable", "RFC 3261 21.4.28"),
        StatusCode(
            494,
            "Security Agreement Required",
            "RFC 3329 6.4",
            (_r("Security-Server", "must", "RFC 3329 2.3.1"),),
        ),
        # 5xx Server Failure
        StatusCode(500, "Server Internal Error", "RFC 3261 21.5.1", (_RETRY,)),
        StatusCode(501, "Not Implemented", "RFC 3261 21.5.2"),
        StatusCode(502, "Bad Gateway", "RFC 3261 21.5.3"),
        StatusCode(
            503,
            "Service Unavailable",
            "RFC 3261 21.5.4",
            (_r("Retry-After", "should", "RFC 3261 21.5.4"),),
        ),
        StatusCode(504, "Server Time-out", "RFC 3261 21.5.5"),
        StatusCode(505, "Version Not Supported", "RFC 3261 21.5.6"),
        StatusCode(513, "Message Too Large", "RFC 3261 21.5.7"),
        StatusCode(555, "Push Notification Service Not Supported", "RFC 8599 14.2.1"),
        StatusCode(580, "Precondition Failure", "RFC 3312 8"),
        # 6xx Global Failures
        StatusCode(600, "Busy Everywhere", "RFC 3261 21.6.1", (_RETRY,)),
        StatusCode(603, "Decline", "RFC 3261 21.6.2", (_RETRY,)),
        StatusCode(604, "Does Not Exist Anywhere", "RFC 3261 21.6.3"),
        StatusCode(606, "Not Acceptable", "RFC 3261 21.6.4"),
        StatusCode(607, "Unwanted", "RFC 8197 3.1"),
        StatusCode(608, "Rejected", "RFC 8688 3.1"),
    )
}

# Reason phrases for codes outside the registry, by class (RFC 3261 8.1.3.2: an
# unrecognized code is treated as x00 of its class).
CLASS_REASONS = {
    1: "Provisional",
    2: "Success",
    3: "Redirection",
    4: "Client Error",
    5: "Server Error",
    6: "Global Failure",
}


def reason_for(code: int) -> str:
    entry = CODES.get(code)
    return entry.reason if entry else CLASS_REASONS[code // 100]


def requirements(code: int, *, levels: tuple[Level, ...] = ("must",)) -> list[Requirement]:
    entry = CODES.get(code)
    if entry is None:
        return []
    return [r for r in entry.requires if r.level in levels]
