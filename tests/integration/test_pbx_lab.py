"""scenarios/pbx-lab.toml keeps what its header comment promises (sans-I/O engine).

The credentials are read from that comment, so the documentation cannot drift from
the [auth.credentials] table without failing here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.digest_client import authorization, parse_challenge
from tests.sipclient import make_request, parse_response

ROOT = Path(__file__).resolve().parents[2]
PBX_LAB = ROOT / "scenarios" / "pbx-lab.toml"
WORDLIST = ROOT / "tests" / "interop" / "wordlist.txt"
UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
SERVER = "sipresponder-pbx-lab/1.0"
# "#   101        letmein        deliberately weak..." in the scenario's header comment
PASSWORDS = dict(re.findall(r"^#   (10[0-9])\s+(\S+)", PBX_LAB.read_text(), re.M))
OFFER = (b"v=0\r\no=a 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


@pytest.fixture
def pbx() -> Engine:
    return Engine(load_scenario(PBX_LAB))


def register(user: str, *, headers: list[tuple[str, str]] | None = None) -> bytes:
    """REGISTER sip:pbx.lab for the address of record sip:USER@pbx.lab (in To)."""
    req = make_request("REGISTER", "sip:pbx.lab", call_id=f"reg-{user}", headers=[
        ("Contact", f"<sip:{user}@127.0.0.1:5999>"), *(headers or [])])
    return req.replace(b"To: <sip:pbx.lab>", f'To: "{user}" <sip:{user}@pbx.lab>'.encode())


def answers(e: Engine, data: bytes, now: float = 10.0):
    return [parse_response(s.data) for s in e.handle(data, UDP, now).sends]


def authenticated(e: Engine, build, user: str, *, method: str, uri: str, header: str):
    """Send the request, answer the challenge as ``user``, return the final answers."""
    [challenge] = answers(e, build([]))
    assert challenge.code in (401, 407) and challenge.get("Server") == SERVER
    [value] = challenge.all("WWW-Authenticate" if challenge.code == 401 else "Proxy-Authenticate")
    auth = authorization(parse_challenge(value), username=user, password=PASSWORDS[user],
                         method=method, uri=uri)
    return answers(e, build([(header, auth)]))


def test_the_comment_documents_every_extension() -> None:
    assert sorted(PASSWORDS) == [str(n) for n in range(100, 110)]
    words = WORDLIST.read_text().split()
    assert PASSWORDS["101"] in words
    assert words.index(PASSWORDS["101"]) > 5  # svcrack has to work for it
    assert not {p for u, p in PASSWORDS.items() if u != "101"} & set(words)


def test_options_answers_anyone_and_fingerprints(pbx: Engine) -> None:
    [resp] = answers(pbx, make_request("OPTIONS", "sip:100@pbx.lab"))
    assert resp.code == 200 and resp.get("Server") == SERVER
    [resp] = answers(pbx, make_request("OPTIONS", "sip:nobody@pbx.lab"))
    assert resp.code == 200


@pytest.mark.parametrize("user", [str(n) for n in range(100, 110)])
def test_every_extension_registers_with_its_documented_password(pbx: Engine, user: str) -> None:
    [challenge] = answers(pbx, register(user))
    assert (challenge.code, challenge.reason) == (401, "Unauthorized")
    # One header line, algorithm unquoted and followed by a comma (svcrack reads it so).
    [value] = challenge.all("WWW-Authenticate")
    assert re.fullmatch(r'Digest realm="pbx\.lab", nonce="[0-9a-f]{42}", algorithm=MD5, '
                        r'qop="auth"', value), value
    [ok] = authenticated(pbx, lambda h: register(user, headers=h), user, method="REGISTER",
                         uri="sip:pbx.lab", header="Authorization")
    assert ok.code == 200
    assert ok.all("Contact") == [f"<sip:{user}@127.0.0.1:5999>;expires=3600"]


def test_wrong_password_is_forbidden(pbx: Engine) -> None:
    [challenge] = answers(pbx, register("101"))
    auth = authorization(parse_challenge(challenge.get("WWW-Authenticate")), username="101",
                         password="123456", method="REGISTER", uri="sip:pbx.lab")
    [resp] = answers(pbx, register("101", headers=[("Authorization", auth)]))
    assert (resp.code, resp.reason) == (403, "Forbidden")


def test_unknown_users_are_not_found_without_a_challenge(pbx: Engine) -> None:
    [resp] = answers(pbx, register("110"))
    assert (resp.code, resp.reason) == (404, "Not Found")
    assert resp.get("WWW-Authenticate") is None


@pytest.mark.parametrize("expiry", [("Expires", "30"), ("Contact", "<sip:100@127.0.0.1:5999>;expires=10")])
def test_too_brief_registrations_get_423_after_authentication(pbx: Engine, expiry) -> None:
    def build(h):
        req = register("100", headers=h)
        if expiry[0] == "Expires":
            return req.replace(b"Content-Length", f"Expires: {expiry[1]}\r\nContent-Length".encode())
        return req.replace(b"<sip:100@127.0.0.1:5999>", expiry[1].encode())
    [resp] = authenticated(pbx, build, "100", method="REGISTER", uri="sip:pbx.lab",
                           header="Authorization")
    assert (resp.code, resp.get("Min-Expires")) == (423, "60")


def test_unregister_is_not_too_brief(pbx: Engine) -> None:
    def build(h):
        return register("100", headers=h).replace(b"Content-Length", b"Expires: 0\r\nContent-Length")
    [resp] = authenticated(pbx, build, "100", method="REGISTER", uri="sip:pbx.lab",
                           header="Authorization")
    assert resp.code == 200 and resp.get("Contact") is None


def invite(callee: str, headers: list[tuple[str, str]]) -> bytes:
    return make_request("INVITE", f"sip:{callee}@pbx.lab", call_id=f"call-{callee}",
                        branch=f"z9hG4bK-{len(headers)}-{callee}",
                        headers=[("Content-Type", "application/sdp"), ("Contact", "<sip:100@127.0.0.1:5999>"),
                                 *headers], body=OFFER)


def test_a_call_is_challenged_then_rings_and_is_answered_with_sdp(pbx: Engine) -> None:
    [ringing] = authenticated(pbx, lambda h: invite("105", h), "100", method="INVITE",
                              uri="sip:105@pbx.lab", header="Proxy-Authorization")
    assert ringing.code == 180
    assert pbx.next_deadline() == pytest.approx(11.0)  # a 1 s ring
    [answer] = [parse_response(s.data) for s in pbx.fire(11.0)]
    assert answer.code == 200 and answer.get("Content-Type") == "application/sdp"
    assert b"m=audio " in answer.body and answer.get("Contact")


def test_109_is_busy_and_unknown_extensions_are_not_found(pbx: Engine) -> None:
    [busy] = authenticated(pbx, lambda h: invite("109", h), "101", method="INVITE",
                           uri="sip:109@pbx.lab", header="Proxy-Authorization")
    assert (busy.code, busy.reason) == (486, "Busy Here")
    reasons = set()
    for callee in ("110", "99", "1000", "alice"):
        [resp] = answers(pbx, invite(callee, []))
        assert resp.code == 404 and resp.get("Proxy-Authenticate") is None
        reasons.add(resp.reason)
    assert reasons == {"Not Found"}  # constant: svwar compares it


def test_the_scenario_check_passes() -> None:
    from sipresponder.ops.cli import main
    assert main(["check", str(PBX_LAB)]) in (0, None)
