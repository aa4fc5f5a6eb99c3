"""The RFC 4475 / RFC 5118 torture corpus (tests/torture/) against the default scenario.

Every MANIFEST.toml entry is checked three ways: sans-I/O through ``Engine.handle``
(and through the TCP ``StreamFramer``), as one UDP datagram to the in-process
responder, and over a TCP connection when the bytes are one complete framed message.
Requests and responses are read here with helpers independent of the product's
parser, so a parser bug cannot hide by agreeing with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipresponder.scenario.loader import load_scenario
from sipresponder.sip.framing import FramingError, Message, StreamFramer
from sipresponder.sip.headers import parse_name_addr
from sipresponder.sip.message import NotARequest, Request, parse_request
from sipresponder.sip.uri import URIError
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Send, Source
from tests.sipclient import (
    Response,
    TCPClient,
    UDPClient,
    make_request,
    parse_response,
    split_list,
)

TORTURE = Path(__file__).resolve().parent
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "default.toml"
MANIFEST = tomllib.loads((TORTURE / "MANIFEST.toml").read_text(encoding="utf-8"))
ENTRIES: list[dict] = MANIFEST["message"]


def entry_id(entry: dict) -> str:
    return Path(entry["file"]).name


IDS = [entry_id(e) for e in ENTRIES]
BY_ID = dict(zip(IDS, ENTRIES, strict=True))

UDP_SOURCE = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
TCP_SOURCE = Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7)
NOW = 1000.0
DISCARD_WAIT = 0.5  # seconds a discarded message is given to (wrongly) produce a response
TIMEOUT = 5.0

# What the product does where RFC 4475 lets an element either be liberal (answer per
# scenario) or reject: (outcome, why). docs/conformance.md's table is this dict.
DECISIONS: dict[str, tuple[str, str]] = {
    "mpart01.dat": ("scenario", "multipart/mixed is in the default Accept; the binary body "
                                "is framed by Content-Length and never inspected"),
    "ltgtruri.dat": ("reject", "'<sip:...>' has no valid URI scheme: 400 Malformed "
                               "Request-URI"),
    "lwsruri.dat": ("reject", "the embedded SP makes four Request-Line elements: 400 "
                              "Malformed Request-Line"),
    "lwsstart.dat": ("reject", "Request-Line elements are separated by exactly one SP "
                               "(RFC 3261 25.1): 400 Malformed Request-Line"),
    "trws.dat": ("reject", "trailing SPs make an empty fourth Request-Line element: 400 "
                           "Malformed Request-Line, never 505"),
    "escruri.dat": ("scenario", "URI headers in the Request-URI are ignored, never turned "
                                "into header fields"),
    "baddate.dat": ("scenario", "the responder never reads Date"),
    "regbadct.dat": ("scenario", "the unbracketed Contact is read as if bracketed; the 200 "
                                 "lists it inside <>"),
    "badaspec.dat": ("scenario", "LWS inside To's <...> is tolerated; To is echoed as "
                                 "received plus a tag"),
    "baddn.dat": ("scenario", "unquoted display names are accepted; the end of the "
                              "datagram ends the header section"),
    "badbranch.dat": ("scenario", "a bare 'z9hG4bK' branch is answered like an RFC 2543 "
                                  "request (no transaction state is kept)"),
    "unksm2.dat": ("scenario", "not a registrar: any To/From/Contact URI scheme is "
                               "accepted (RFC 3261 8.2.2.1)"),
    "regaut01.dat": ("scenario", "no authentication: an unknown Authorization scheme is "
                                 "ignored, never a 400"),
}

# Default scenario contract (scenarios/default.toml header), method -> code.
SCENARIO_CODES = {
    "OPTIONS": 200, "REGISTER": 200, "INVITE": 200, "BYE": 200, "CANCEL": 200,
    "MESSAGE": 200, "INFO": 200, "UPDATE": 200, "PRACK": 200, "NOTIFY": 200,
    "SUBSCRIBE": 405, "PUBLISH": 405, "REFER": 405,
}

# Every 400 must say what is wrong (RFC 3261 21.4.1): a word its reason phrase holds.
REASON_MENTIONS = {
    "badinv01.dat": "Via",
    "clerr.dat": "Content-Length",
    "ncl.dat": "Content-Length",
    "scalar02.dat": "CSeq",
    "quotbal.dat": "To",
    "ltgtruri.dat": "Request-URI",
    "lwsruri.dat": "Request-Line",
    "lwsstart.dat": "Request-Line",
    "trws.dat": "Request-Line",
    "mismatch01.dat": "CSeq",
    "insuf.dat": "Missing",
    "multi01.dat": "Duplicate",
    "mcl01.dat": "Content-Length",
    "ipv6-bad": "Request-URI",
}

# A To that cannot be parsed is echoed as it came: no tag can be added safely.
TO_UNPARSEABLE = {"quotbal.dat"}


# -- reading messages without the product's parser ----------------------------------------
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type", "k": "supported", "s": "subject",
           "e": "content-encoding"}


def request_fields(data: bytes) -> dict[str, list[str]]:
    """Header rows by lower-case long name, unfolded (RFC 3261 7.3.1), in order.

    The header section ends at the first empty line (CRLF or bare LF) or at the end of
    the data (baddn.dat has none).
    """
    ends = [i for i in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if i >= 0]
    head = data[: min(ends)] if ends else data
    rows: list[list[str]] = []
    for line in head.decode("latin-1").split("\n")[1:]:
        line = line.removesuffix("\r")
        if not line:
            continue
        if line[0] in " \t":
            prev = rows[-1][1].rstrip(" \t")
            more = line.strip(" \t")
            rows[-1][1] = f"{prev} {more}" if prev else more
            continue
        name, _, value = line.partition(":")
        name = name.strip(" \t").lower()
        rows.append([COMPACT.get(name, name), value.strip(" \t")])
    fields: dict[str, list[str]] = {}
    for name, value in rows:
        fields.setdefault(name, []).append(value.rstrip(" \t"))
    return fields




def has_tag(value: str) -> bool:
    """Whether a To value carries a tag header parameter (outside quotes and <...>)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", value)
    bare = re.sub(r"<[^>]*>", "", bare)
    return re.search(r";[ \t]*tag[ \t]*=", bare, re.IGNORECASE) is not None


def via_parts(value: str) -> tuple[str, list[tuple[str, str | None]]]:
    """(sent-protocol and sent-by, [(param, value)]) with empty ';;' items dropped."""
    head, *items = value.split(";")
    params: list[tuple[str, str | None]] = []
    for item in items:
        name, eq, val = item.partition("=")
        if name.strip(" \t"):
            params.append((name.strip(" \t"), val.strip(" \t") if eq else None))
    return head.rstrip(" \t"), params


def media_lines(sdp: bytes) -> list[str]:
    return [line.split()[0] for line in sdp.decode("latin-1").splitlines()
            if line.startswith("m=")]


def corpus_bytes(entry: dict, key: str = "file") -> bytes:
    return (TORTURE / entry[key]).read_bytes()


def request_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].decode("latin-1").removesuffix("\r")


# -- expectations ----------------------------------------------------------------------------
def expectation(entry: dict, data: bytes) -> tuple[str, int | None]:
    """("scenario" | "reject" | "discard", the status code we must see)."""
    outcome = entry["outcome"]
    if outcome == "scenario-or-reject":
        outcome = DECISIONS[entry_id(entry)][0]
    if outcome == "discard":
        return "discard", None
    if outcome == "reject":
        return "reject", entry["codes"][0]  # always what the RFC prefers
    m = re.match(r"\S+ sips?:([^@ ]*)@", request_line(data))
    if m and re.fullmatch(r"[1-6][0-9][0-9]", m[1]):
        return "scenario", int(m[1])  # default.toml's "status-code" rule
    return "scenario", SCENARIO_CODES[entry["method"]]


def check_echo(entry: dict, data: bytes, resp: Response, remote: tuple[str, int]) -> None:
    """RFC 3261 8.2.6.2: From, Call-ID, CSeq, Via copied; To copied, tagged if untagged."""
    req = request_fields(data)
    for name in ("From", "Call-ID", "CSeq"):
        rows = req.get(name.lower())
        assert resp.all(name) == (rows[:1] if rows else []), name

    to_rows = req.get("to")
    if not to_rows:
        assert resp.all("To") == []
    else:
        [resp_to] = resp.all("To")
        if has_tag(to_rows[0]) or entry_id(entry) in TO_UNPARSEABLE:
            assert resp_to == to_rows[0]
        else:
            assert resp_to.startswith(to_rows[0] + ";tag="), resp_to
            assert re.fullmatch(r"[A-Za-z0-9\-.!%*_+`'~]+", resp_to[len(to_rows[0]) + 5 :])

    req_vias = [v for row in req.get("via", []) for v in split_list(row)]
    resp_vias = [v for row in resp.all("Via") for v in split_list(row)]
    assert len(resp_vias) == len(req_vias)
    assert resp_vias[1:] == req_vias[1:], "lower Via values are copied unchanged, in order"
    head, params = via_parts(req_vias[0])
    resp_head, resp_params = via_parts(resp_vias[0])
    assert resp_head == head
    ip, port = remote
    names = [n.lower() for n, _ in resp_params]
    rport_requested = ("rport", None) in [(n.lower(), v) for n, v in params]
    sent_by = head.split()[-1] if head.split() else ""
    host = sent_by[1 : sent_by.find("]")] if sent_by.startswith("[") else sent_by.split(":")[0]
    if rport_requested or host != ip:
        assert names.count("received") == 1, "received is set once, never duplicated"
        assert dict((n.lower(), v) for n, v in resp_params)["received"] == ip
    if rport_requested:
        assert names.count("rport") == 1
        assert dict((n.lower(), v) for n, v in resp_params)["rport"] == str(port)
    others = [(n, v) for n, v in params if n.lower() not in ("received", "rport")]
    assert [(n, v) for n, v in resp_params if n.lower() not in ("received", "rport")] == others


def check_scenario(entry: dict, data: bytes, resp: Response) -> None:
    method = entry["method"]
    req = request_fields(data)
    assert resp.all("Route") == [], "Route is a request-only header field"
    if resp.code != 200:
        return
    assert resp.reason == "OK"
    if method == "OPTIONS":
        for name in ("Allow", "Accept", "Supported"):
            assert resp.get(name), f"200 to OPTIONS lacks {name}"
    elif method == "REGISTER":
        bindings = [c for row in req.get("contact", []) for c in split_list(row) if c != "*"]
        assert len(resp.all("Contact")) == len(bindings)
        assert all(";expires=" in c for c in resp.all("Contact"))
    elif method == "INVITE":
        assert resp.get("Content-Type") == "application/sdp"
        assert resp.body.startswith(b"v=0\r\n")
        [contact] = resp.all("Contact")
        assert re.fullmatch(r"<sips?:[^>]+>", contact), contact
        assert resp.all("Record-Route") == req.get("record-route", [])
        offer = data[data.find(b"\r\n\r\n") + 4 :]
        if b"m=" in offer:
            # RFC 3264 6: the answer has one m= line per offered one, same media, in order.
            assert media_lines(resp.body) == media_lines(offer)


def check_reject(entry: dict, data: bytes, resp: Response) -> None:
    name = entry_id(entry)
    req = request_fields(data)
    if resp.code == 400:
        assert REASON_MENTIONS[name] in resp.reason, resp.reason
    elif resp.code == 501:
        allow = [m.strip() for m in resp.get("Allow").split(",")]
        assert "INVITE" in allow and entry["method"] not in allow
    elif resp.code == 415:
        assert resp.get("Accept"), "415 must say what is accepted (RFC 3261 8.2.3)"
    elif resp.code == 420:
        wanted = [t for row in req["require"] for t in split_list(row)]
        assert split_list(resp.get("Unsupported")) == wanted
    elif resp.code == 505:
        assert resp.raw.startswith(b"SIP/2.0 505 ")
    elif resp.code == 406:
        assert resp.get("Warning").startswith("399 ")
    assert resp.body == b"" and resp.get("Content-Type") is None


# -- per-entry checks (the manifest's `checks`) ------------------------------------------------
ResponseCheck = Callable[[bytes, Response], None]
RESPONSE_CHECKS: dict[str, ResponseCheck] = {}
ParseCheck = Callable[[bytes, Request], None]
PARSE_CHECKS: dict[str, ParseCheck] = {}


def response_check(name: str) -> Callable[[ResponseCheck], ResponseCheck]:
    def register(fn: ResponseCheck) -> ResponseCheck:
        RESPONSE_CHECKS[name] = fn
        return fn
    return register


def parse_check(name: str) -> Callable[[ParseCheck], ParseCheck]:
    def register(fn: ParseCheck) -> ParseCheck:
        PARSE_CHECKS[name] = fn
        return fn
    return register


def vias(resp: Response) -> list[str]:
    return [v for row in resp.all("Via") for v in split_list(row)]


@response_check("wsinv.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("To") == "sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n"
    assert len(vias(resp)) == 3
    assert vias(resp)[0].startswith("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw")
    number, method = resp.get("CSeq").split()
    assert (int(number), method) == (9, "INVITE")
    assert media_lines(resp.body) == ["m=audio", "m=video"]


@parse_check("wsinv.dat")
def _(data: bytes, req: Request) -> None:
    assert req.get("subject") == ""
    assert req.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert req.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert req.cseq == (9, "INVITE")
    assert req.to.tag == "1918181833n"
    assert req.from_.display == '"J Rosenberg \\\\\\""' and req.from_.tag == "98asjd8"
    assert [v.split()[-1] for v in req.via_values] == [
        "192.0.2.2;branch=390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert req.get("max-forwards") == "0068"


@response_check("intmeth.dat")
def _(data: bytes, resp: Response) -> None:
    to = resp.get("To")
    assert "\x00" in to and "\x07" in to and "\x7f" in to
    assert "работающий".encode().decode("latin-1") in resp.get("From")
    assert resp.get("From").endswith(";tag=_token~1'+`*%!-.")
    assert resp.get("CSeq") == "139122385 !interesting-Method0123456789_*+`.%indeed'~"


@parse_check("intmeth.dat")
def _(data: bytes, req: Request) -> None:
    assert req.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert req.cseq == (139122385, req.method)
    assert req.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert req.get("extensionHeader-!.%*+_`'~") is not None


@response_check("esc01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("To").startswith("sip:%75se%72@example.com;tag=")
    assert resp.get("From") == "<sip:I%20have%20spaces@example.net>;tag=938"


@parse_check("esc01.dat")
def _(data: bytes, req: Request) -> None:
    assert req.uri.user == "sips:user@example.com" and req.uri.host == "example.net"
    assert req.to.uri.user == "user"
    assert req.from_.uri.user == "I have spaces"
    assert req.get("content-type") == "application/sdp"  # compact 'C:'


@response_check("escnull.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == ["<sip:%00@host5.example.com>;expires=3600",
                                   "<sip:%00%00@host5.example.com>;expires=3600"]


@parse_check("escnull.dat")
def _(data: bytes, req: Request) -> None:
    assert req.to.uri.user == "null-\x00-null"
    users = [parse_name_addr(c).uri.user for c in req.values("contact")]
    assert users == ["\x00", "\x00\x00"]


@response_check("esc02.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.code == 501, "never answered as a REGISTER"
    assert resp.get("To").startswith('"%Z%45" <sip:resource@example.com>;tag=')


@parse_check("esc02.dat")
def _(data: bytes, req: Request) -> None:
    assert req.method == "RE%47IST%45R"
    assert req.values("contact") == ["<sip:alias1@host1.example.com>",
                                     "<sip:alias3@host3.example.com>"]
    assert req.rows("C%6Fntact") == ["<sip:alias2@host2.example.com>"]
    assert req.to.display == '"%Z%45"'


@response_check("lwsdisp.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("From") == "caller<sip:caller@example.com>;tag=323"


@response_check("longreq.dat")
def _(data: bytes, resp: Response) -> None:
    assert len(vias(resp)) == 34
    assert [v.split(";")[0].split()[1] for v in vias(resp)[:33]] == [
        f"sip{n}.example.com" for n in range(33, 0, -1)]
    assert "branch=" not in vias(resp)[0]
    assert has_tag(resp.get("To"))
    assert len(resp.raw) > 1300


@parse_check("longreq.dat")
def _(data: bytes, req: Request) -> None:
    assert len(req.via_values) == 34
    assert req.top_via().branch == ""
    assert req.to.uri.port == 6000


@response_check("dblreq.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("CSeq") == "8 REGISTER"
    assert resp.all("Contact") == ["<sip:j.user@host.example.com>;expires=3600"]


@parse_check("dblreq.dat")
def _(data: bytes, req: Request) -> None:
    assert req.method == "REGISTER" and req.body == b""
    assert req.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


@parse_check("semiuri.dat")
def _(data: bytes, req: Request) -> None:
    assert req.uri.user == "user;par=u@example.net"
    assert req.uri.host == "example.com"
    assert req.values("accept") == ["application/sdp", "application/pkcs7-mime",
                                    "multipart/mixed", "multipart/signed", "message/sip",
                                    "message/sipfrag"]


@response_check("transports.dat")
def _(data: bytes, resp: Response) -> None:
    assert [v.split()[0].rsplit("/", 1)[1] for v in vias(resp)] == [
        "UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


@response_check("mpart01.dat")
def _(data: bytes, resp: Response) -> None:
    top = vias(resp)[0]
    assert top.startswith("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-")
    assert re.search(r";rport=[0-9]+", top) and ";received=127.0.0.1" in top


@parse_check("mpart01.dat")
def _(data: bytes, req: Request) -> None:
    assert len(req.body) == 553 and req.body == data[-553:]
    assert b"\x00" in req.body
    assert req.top_via().param("rport") == ""


@response_check("badinv01.dat")
def _(data: bytes, resp: Response) -> None:
    assert vias(resp)[0].startswith("SIP/2.0/UDP 192.0.2.15;")


@parse_check("badinv01.dat")
def _(data: bytes, req: Request) -> None:
    with pytest.raises(ValueError):
        req.top_via()
    assert req.top_via_lenient().host == "192.0.2.15"


@parse_check("clerr.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error is not None and "Content-Length" in req.error[1]


@parse_check("ncl.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error is not None and req.error[0] == 400 and req.body == b""


@response_check("scalar02.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("CSeq") == "36893488147419103232 REGISTER"


@parse_check("scalar02.dat")
def _(data: bytes, req: Request) -> None:
    with pytest.raises(ValueError, match="out of range"):
        req.cseq  # noqa: B018


@parse_check("quotbal.dat")
def _(data: bytes, req: Request) -> None:
    with pytest.raises(ValueError, match="quoted"):
        req.to  # noqa: B018
    assert req.get("from") == "sip:caller@example.net;tag=93334"


@response_check("ltgtruri.dat")
def _(data: bytes, resp: Response) -> None:
    assert vias(resp)[0] == "SIP/2.0/UDP 192.0.2.5;received=127.0.0.1"


@parse_check("ltgtruri.dat")
def _(data: bytes, req: Request) -> None:
    with pytest.raises(URIError):
        req.uri  # noqa: B018


@parse_check("lwsruri.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error == (400, "Malformed Request-Line")


@parse_check("trws.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error == (400, "Malformed Request-Line")


@response_check("escruri.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Route") == []


@parse_check("escruri.dat")
def _(data: bytes, req: Request) -> None:
    assert req.uri.host == "example.com" and req.rows("route") == []


@response_check("regbadct.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == [
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]


@parse_check("badaspec.dat")
def _(data: bytes, req: Request) -> None:
    assert req.to.uri.raw == "sip:t.watson@example.org"


@response_check("baddn.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("From") == ["Bell, Alexander <sip:a.g.bell@example.com>;tag=43"]
    [to] = resp.all("To")
    assert to.startswith("Watson, Thomas <sip:t.watson@example.org>;tag=")


@parse_check("baddn.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error is None and req.body == b""
    assert req.to.display == "Watson, Thomas"
    assert req.from_.display == "Bell, Alexander" and req.from_.tag == "43"


@response_check("badvers.dat")
def _(data: bytes, resp: Response) -> None:
    assert vias(resp)[0] == (
        "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw;received=127.0.0.1")


@parse_check("badvers.dat")
def _(data: bytes, req: Request) -> None:
    assert req.error == (505, "Version Not Supported")


@response_check("insuf.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.reason.startswith("Missing ") and resp.reason.endswith(" header field")
    assert (resp.all("From"), resp.all("To"), resp.all("Call-ID")) == ([], [], [])


@response_check("unksm2.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("To").startswith("isbn:2983792873;tag=")
    assert resp.all("Contact") == ["<name:John_Smith>;expires=3600"]


@parse_check("unksm2.dat")
def _(data: bytes, req: Request) -> None:
    assert (req.to.uri.scheme, req.from_.uri.scheme) == ("isbn", "http")


@response_check("bext01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("Unsupported") == "nothingSupportsThis, nothingSupportsThisEither"


@response_check("invut.dat")
def _(data: bytes, resp: Response) -> None:
    assert "application/sdp" in split_list(resp.get("Accept"))
    assert "application/unknownformat" not in resp.get("Accept")


@response_check("regaut01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.code != 400
    if resp.code == 401:
        assert resp.get("WWW-Authenticate").startswith("Digest ")
    if resp.code == 405:
        assert resp.get("Allow")


@response_check("multi01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("Call-ID") == "multi01.98asdh@192.0.2.1"


@response_check("zeromf.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.code != 483


@response_check("cparam01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == [
        "<sip:+19725552222@gw1.example.net>;unknownparam;expires=3600"]


@parse_check("cparam01.dat")
def _(data: bytes, req: Request) -> None:
    contact = parse_name_addr(req.get("contact"))
    assert contact.uri.params == "" and contact.params == [("unknownparam", None)]


@response_check("cparam02.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == [
        "<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"]


@parse_check("cparam02.dat")
def _(data: bytes, req: Request) -> None:
    contact = parse_name_addr(req.get("contact"))
    assert contact.uri.params == ";unknownparam" and contact.params == []


@response_check("regescrt.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == [
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]


@parse_check("regescrt.dat")
def _(data: bytes, req: Request) -> None:
    assert req.rows("contact") == ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"]
    assert req.rows("content-length") == ["0"]


@response_check("sdp01.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.code != 200 and resp.body == b""


@response_check("inv2543.dat")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Record-Route") == ["<sip:UserB@example.com;maddr=ss1.example.com>"]
    assert resp.get("To").startswith("sip:+16505552222@ss1.example.net;user=phone;tag=")


@parse_check("inv2543.dat")
def _(data: bytes, req: Request) -> None:
    assert "max-forwards" not in req.fields and "content-length" not in req.fields
    assert req.body == data[data.index(b"\r\n\r\n") + 4 :] and req.body.startswith(b"v=0")
    assert req.from_.tag is None and req.top_via().branch == ""


@response_check("ipv6-good")
def _(data: bytes, resp: Response) -> None:
    assert resp.all("Contact") == ['"Caller" <sip:caller@[2001:db8::1]>;expires=3600']


@parse_check("ipv6-good")
def _(data: bytes, req: Request) -> None:
    assert (req.uri.host, req.uri.port) == ("[2001:db8::10]", None)
    assert (req.top_via().host, req.top_via().port) == ("[2001:db8::9:1]", None)


@parse_check("ipv6-bad")
def _(data: bytes, req: Request) -> None:
    with pytest.raises(URIError):
        req.uri  # noqa: B018


@parse_check("port-ambiguous")
def _(data: bytes, req: Request) -> None:
    assert (req.uri.host, req.uri.port) == ("[2001:db8::10:5070]", None)


@parse_check("port-unambiguous")
def _(data: bytes, req: Request) -> None:
    assert (req.uri.host, req.uri.port) == ("[2001:db8::10]", 5070)


@response_check("via-received-param-with-delim")
def _(data: bytes, resp: Response) -> None:
    assert "2001:db8::9:255" not in vias(resp)[0]
    assert vias(resp)[0].count("received=") == 1


@parse_check("via-received-param-with-delim")
def _(data: bytes, req: Request) -> None:
    assert req.top_via().param("received") == "[2001:db8::9:255]"


@response_check("via-received-param-no-delim")
def _(data: bytes, resp: Response) -> None:
    assert "2001:db8::9:255" not in vias(resp)[0]
    assert vias(resp)[0].count("received=") == 1


@parse_check("via-received-param-no-delim")
def _(data: bytes, req: Request) -> None:
    assert req.top_via().param("received") == "2001:db8::9:255"


@response_check("ipv6-in-sdp")
def _(data: bytes, resp: Response) -> None:
    assert resp.get("Content-Type") == "application/sdp" and resp.get("Contact")


@response_check("mult-ip-in-header")
def _(data: bytes, resp: Response) -> None:
    assert vias(resp)[0].startswith("SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111")
    assert vias(resp)[1:] == ["SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144",
                              "SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;"
                              "received=192.0.2.200"]


@parse_check("mult-ip-in-header")
def _(data: bytes, req: Request) -> None:
    assert (req.top_via().host, req.top_via().port) == ("[2001:db8::9:1]", 6050)


@parse_check("mult-ip-in-sdp")
def _(data: bytes, req: Request) -> None:
    assert len(req.body) == 189


@response_check("ipv4-mapped-ipv6")
def _(data: bytes, resp: Response) -> None:
    assert vias(resp)[0].startswith("SIP/2.0/UDP [::ffff:192.0.2.10]:19823;branch=z9hG4bKbh19")


@parse_check("ipv4-mapped-ipv6")
def _(data: bytes, req: Request) -> None:
    via = req.top_via()
    assert ipaddress.IPv6Address(via.host[1:-1]).ipv4_mapped == ipaddress.IPv4Address(
        "192.0.2.10")
    assert via.port == 19823


@parse_check("ipv6-bug-abnf-3-colons")
def _(data: bytes, req: Request) -> None:
    assert req.uri.host == "[2001:db8:::192.0.2.1]" and req.uri.port is None
    assert req.to.uri.host == "[2001:db8:::192.0.2.1]"


@parse_check("ipv6-correct-abnf-2-colons")
def _(data: bytes, req: Request) -> None:
    assert ipaddress.IPv6Address(req.uri.host[1:-1]) == ipaddress.IPv6Address(
        "2001:db8::c000:201")


# -- shared assertions -----------------------------------------------------------------------
def check_response(entry: dict, data: bytes, resp: Response, remote: tuple[str, int]) -> None:
    kind, code = expectation(entry, data)
    assert resp.code == code, f"{resp.code} {resp.reason}"
    check_echo(entry, data, resp, remote)
    if kind == "scenario":
        check_scenario(entry, data, resp)
    else:
        check_reject(entry, data, resp)
    extra = RESPONSE_CHECKS.get(entry_id(entry))
    if extra is not None:
        extra(data, resp)


def stream_through(engine: Engine, data: bytes, source: Source) -> tuple[list[Send],
                                                                           StreamFramer]:
    """What the TCP transport does with ``data`` arriving in one segment."""
    framer = StreamFramer(engine.scenario.settings.max_message_size)
    sends: list[Send] = []
    for frame in framer.feed(data):
        if isinstance(frame, Message):
            sends += engine.handle(frame.data, source, NOW).sends
        elif isinstance(frame, FramingError):
            sends += engine.handle_framing_error(frame.head, frame.code, frame.reason, source)
    return sends, framer


def is_framed(data: bytes) -> bool:
    """One complete message with one valid Content-Length: what a TCP peer could send."""
    end = data.find(b"\r\n\r\n")
    lengths = request_fields(data).get("content-length", [])
    return (end >= 0 and len(lengths) == 1 and lengths[0].isdigit()
            and end + 4 + int(lengths[0]) == len(data))


TCP_ENTRIES = [e for e in ENTRIES if e["transport"] == "any" and is_framed(corpus_bytes(e))]
TCP_CLOSING = ["clerr.dat", "ncl.dat", "mcl01.dat"]


# -- the corpus itself -----------------------------------------------------------------------
def test_manifest_is_complete() -> None:
    assert MANIFEST["schema"] == 1
    assert len(ENTRIES) == 62 and len(set(IDS)) == len(IDS)
    listed = {e["file"] for e in ENTRIES} | {e["archive_file"] for e in ENTRIES
                                           if "archive_file" in e}
    on_disk = {p.relative_to(TORTURE).as_posix() for d in ("rfc4475", "rfc5118", "rfc5118-wire")
               for p in (TORTURE / d).iterdir()}
    assert on_disk == listed
    assert set(DECISIONS) == {entry_id(e) for e in ENTRIES
                              if e["outcome"] == "scenario-or-reject"}
    for name, (outcome, why) in DECISIONS.items():
        assert outcome in ("scenario", "reject") and why
        assert outcome != "reject" or BY_ID[name]["codes"]
    # Only the transports the tests below can exercise.
    assert {e["transport"] for e in ENTRIES} == {"any", "udp"}
    assert len(TCP_ENTRIES) == sum(e["transport"] == "any" for e in ENTRIES)


def test_every_check_list_has_assertions() -> None:
    """An entry whose `checks` say something has code asserting it (beyond the generic)."""
    generic_only = {
        # all covered by check_echo / check_reject / the discard path
        "unreason.dat", "noreason.dat", "scalarlg.dat", "bigcode.dat", "bcast.dat",
        "test.dat", "mismatch01.dat", "mcl01.dat",
    }
    for entry in ENTRIES:
        name = entry_id(entry)
        if entry["checks"] and name not in generic_only:
            assert name in RESPONSE_CHECKS or name in PARSE_CHECKS, name


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_sha256(entry: dict) -> None:
    data = corpus_bytes(entry)
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (entry["sha256"], entry["size"]), (
        "corpus bytes changed: line-end conversion? (see .gitattributes)")
    if "archive_file" in entry:
        archive = corpus_bytes(entry, "archive_file")
        assert hashlib.sha256(archive).hexdigest() == entry["archive_sha256"]
        assert len(archive) == entry["archive_size"]
        assert b"\r" not in archive  # RFC 5118's archive uses bare LF


# -- (a) sans-I/O ----------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_sans_io_udp(entry: dict) -> None:
    data = corpus_bytes(entry)
    engine = Engine(load_scenario(DEFAULT_SCENARIO))
    name = entry_id(entry)
    kind, _ = expectation(entry, data)
    if entry["kind"] == "response":
        with pytest.raises(NotARequest):
            parse_request(data, datagram=True)
    elif kind == "discard":
        # test.dat: a request-line without SIP-Version and no Via: a 400 has nowhere to go.
        request = parse_request(data, datagram=True)
        assert request.error == (400, "Malformed Request-Line")
        assert request.via_values == []
    else:
        request = parse_request(data, datagram=True)
        assert request.method == entry["method"]
        if name in PARSE_CHECKS:
            PARSE_CHECKS[name](data, request)

    sends = engine.handle(data, UDP_SOURCE, NOW).sends
    # Engine.handle turns a bug into "no response": make sure silence is a decision.
    assert engine.counters["internal_errors"] == 0
    if kind == "discard":
        assert sends == []
        assert engine.counters["dropped"] == 1
        return
    [send] = sends  # dblreq.dat: one response, none for the trailing INVITE
    assert (send.transport, send.remote, send.conn) == ("udp", UDP_SOURCE.remote, 1)
    assert not send.close_after
    check_response(entry, data, parse_response(send.data), UDP_SOURCE.remote)
    assert engine.next_deadline() is None, "nothing left to do later: answered statelessly"
    # Stateless and deterministic (incl. the To tag of branch-less RFC 2543 requests).
    assert [s.data for s in engine.handle(data, UDP_SOURCE, NOW + 1).sends] == [send.data]


@pytest.mark.parametrize("entry", TCP_ENTRIES, ids=[entry_id(e) for e in TCP_ENTRIES])
def test_sans_io_tcp(entry: dict) -> None:
    data = corpus_bytes(entry)
    engine = Engine(load_scenario(DEFAULT_SCENARIO))
    sends, framer = stream_through(engine, data, TCP_SOURCE)
    assert engine.counters["internal_errors"] == 0
    assert framer.pending == 0 and not framer.failed
    kind, _ = expectation(entry, data)
    if kind == "discard":
        assert sends == []
        return
    [send] = sends
    assert (send.transport, send.conn, send.close_after) == ("tcp", TCP_SOURCE.conn, False)
    check_response(entry, data, parse_response(send.data), TCP_SOURCE.remote)


@pytest.mark.parametrize("name", TCP_CLOSING)
def test_sans_io_tcp_unframeable(name: str) -> None:
    entry = BY_ID[name]
    data = corpus_bytes(entry)
    engine = Engine(load_scenario(DEFAULT_SCENARIO))
    sends, framer = stream_through(engine, data, TCP_SOURCE)
    if name == "clerr.dat":
        # Content-Length 9999: wait for the rest (the transport's read timeout closes).
        assert sends == [] and framer.pending == len(data) and not framer.failed
        return
    assert framer.failed and framer.pending == 0
    [send] = sends
    assert send.close_after and send.conn == TCP_SOURCE.conn
    resp = parse_response(send.data)
    assert resp.code == 400 and "Content-Length" in resp.reason
    check_echo(entry, data, resp, TCP_SOURCE.remote)


def test_sans_io_ipv6_source_received_has_no_brackets() -> None:
    """RFC 5118 4.1 / RFC 3261 25: via-received carries the IPv6 address bare."""
    entry = BY_ID["ipv6-good"]
    data = corpus_bytes(entry)
    source = Source("udp", ("2001:db8::99", 5062), ("2001:db8::1", 5060), 1)
    [send] = Engine(load_scenario(DEFAULT_SCENARIO)).handle(data, source, NOW).sends
    assert send.remote == ("2001:db8::99", 5062)
    resp = parse_response(send.data)
    assert resp.code == 200
    assert vias(resp)[0] == (
        "SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111;received=2001:db8::99")
    check_echo(entry, data, resp, source.remote)


ARCHIVE_ENTRIES = [e for e in ENTRIES if "archive_file" in e]


@pytest.mark.parametrize("entry", ARCHIVE_ENTRIES, ids=[entry_id(e) for e in ARCHIVE_ENTRIES])
def test_sans_io_bare_lf_archive_copies(entry: dict) -> None:
    """RFC 5118's archive bytes (bare LF, sometimes no empty line, three wrong
    Content-Length values) are tolerated over UDP: the answer is the wire copy's, or a
    400 naming Content-Length where the declared length exceeds the body."""
    data = corpus_bytes(entry, "archive_file")
    [send] = Engine(load_scenario(DEFAULT_SCENARIO)).handle(data, UDP_SOURCE, NOW).sends
    resp = parse_response(send.data)
    lengths = request_fields(data)["content-length"]
    end = data.find(b"\n\n")
    body = data[end + 2 :] if end >= 0 else b""
    if int(lengths[0]) > len(body):
        assert entry_id(entry) in ("ipv6-in-sdp", "mult-ip-in-sdp")
        assert resp.code == 400 and "Content-Length" in resp.reason
        check_echo(entry, data, resp, UDP_SOURCE.remote)
    else:
        check_response(entry, data, resp, UDP_SOURCE.remote)


# -- (b) one UDP datagram to the running responder -----------------------------------------------
async def probe_alive(client: UDPClient | TCPClient) -> None:
    """A valid OPTIONS gets 200, and it is the very next thing received: the server
    answers in order, so nothing else was sent for what came before it."""
    transport = "UDP" if isinstance(client, UDPClient) else "TCP"
    probe = make_request("OPTIONS", "sip:probe@127.0.0.1", transport=transport)
    call_id = re.search(rb"Call-ID: (\S+)", probe)[1].decode()
    await client.send(probe)
    if isinstance(client, UDPClient):
        [resp] = await client.recv_many(1, timeout=TIMEOUT)
    else:
        resp = await client.recv(timeout=TIMEOUT)
    assert (resp.code, resp.get("Call-ID")) == (200, call_id)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
async def test_udp(responder, entry: dict) -> None:
    data = corpus_bytes(entry)
    kind, _ = expectation(entry, data)
    client = await UDPClient.connect(responder.udp_port)
    try:
        await client.send(data)
        if kind == "discard":
            assert await client.recv_many(1, timeout=DISCARD_WAIT) == []
        else:
            [resp] = await client.recv_many(1, timeout=TIMEOUT)
            check_response(entry, data, resp, ("127.0.0.1", client.stream.sockname[1]))
        await probe_alive(client)
    finally:
        client.close()
    assert responder.engine.counters["internal_errors"] == 0


# -- (c) over TCP ------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", TCP_ENTRIES, ids=[entry_id(e) for e in TCP_ENTRIES])
async def test_tcp(responder, entry: dict) -> None:
    data = corpus_bytes(entry)
    kind, _ = expectation(entry, data)
    client = await TCPClient.connect(responder.tcp_port)
    try:
        await client.send(data)
        if kind != "discard":
            resp = await client.recv(timeout=TIMEOUT)
            check_response(entry, data, resp,
                           ("127.0.0.1", client.writer.get_extra_info("sockname")[1]))
        await probe_alive(client)  # same connection: still open, nothing else sent
    finally:
        await client.close()
    assert responder.engine.counters["internal_errors"] == 0


FAST_TCP_TIMEOUT = 0.5


@pytest.mark.parametrize("name", TCP_CLOSING)
async def test_tcp_unframeable_closes(responder_factory, name: str) -> None:
    """clerr: no response, closed by the read timeout; ncl/mcl01: a 400, then closed."""
    text = DEFAULT_SCENARIO.read_text(encoding="utf-8").replace(
        "[settings]\n", f"[settings]\ntcp_read_timeout = {FAST_TCP_TIMEOUT}\n", 1)
    assert "tcp_read_timeout" in text
    responder = await responder_factory(text)
    data = corpus_bytes(BY_ID[name])
    reader, writer = await asyncio.open_connection("127.0.0.1", responder.tcp_port)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        writer.write(data)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), TIMEOUT)  # everything until EOF
        if name == "clerr.dat":
            assert received == b"", "no premature response to an incomplete message"
            assert loop.time() - started >= FAST_TCP_TIMEOUT * 0.6
        else:
            resp = parse_response(received)
            assert resp.code == 400 and "Content-Length" in resp.reason
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    # The listener survives the closed connection.
    client = await TCPClient.connect(responder.tcp_port)
    try:
        await probe_alive(client)
    finally:
        await client.close()


# -- robustness: mutated torture messages ------------------------------------------------------
NOISE = [b'"', b"<", b">", b",", b";", b"\\", b":", b"\r\n", b"\r\n ", b" ", b"[", b"]",
         b"%", b"=", b"\x00", b"@", b"9" * 12, b"-1", b"\r\n\r\n"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(corpus_bytes(draw(st.sampled_from(ENTRIES))))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        what = draw(st.integers(0, 2))
        if what == 0:
            data[at:at] = draw(st.sampled_from(NOISE))
        elif what == 1:
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at : at + 1] = bytes([draw(st.integers(0, 255))])
    return bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_corpus_never_breaks_the_engine(data: bytes) -> None:
    engine = Engine(load_scenario(DEFAULT_SCENARIO))
    with contextlib.suppress(NotARequest):  # and nothing else
        parse_request(data, datagram=True)
    for sends in (engine.handle(data, UDP_SOURCE, NOW).sends,
                  stream_through(engine, data, TCP_SOURCE)[0]):
        for send in sends:
            if send.data:
                assert parse_response(send.data).code >= 100
    assert engine.counters["internal_errors"] == 0
