"""Rules with `auth`: challenge, verification and refusals through the sans-I/O engine,
with an independent client (tests/digest_client.py) on the other side."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipresponder.journal.record import Journal
from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.digest_client import authorization, parse_challenge
from tests.sipclient import make_request, parse_response

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
URI = "sip:pbx.lab"
HA1 = {h: hashlib.new(h, b"102:pbx.lab:hashed").hexdigest() for h in ("md5", "sha256", "sha512_256")}
ALL = ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess"]


def scenario(auth: str = "", *, kind: str = "www", algorithms: list[str] | None = None) -> str:
    algs = ", ".join(f'"{a}"' for a in (algorithms or ALL))
    return f'''
[auth]
realm = "pbx.lab"
algorithms = [{algs}]
nonce_lifetime = 60
{auth}

[auth.credentials]
"100" = "s3cret"
"102" = {{ ha1 = {{ MD5 = "{HA1["md5"]}", SHA-256 = "{HA1["sha256"]}", "SHA-512-256" = "{HA1["sha512_256"]}" }} }}

[[rule]]
name = "register"
match = {{ method = ["REGISTER", "CANCEL"] }}
auth = "{kind}"
code = 200

[[rule]]
name = "open"
match = {{ method = "OPTIONS" }}
code = 200
'''


def engine(text: str) -> Engine:
    return Engine(parse_scenario(text, "<test>"))


def send(e: Engine, headers: list[tuple[str, str]] | None = None, now: float = 100.0,
         method: str = "REGISTER", journal: Journal | None = None):
    outcome = e.handle(make_request(method, URI, headers=headers), UDP, now)
    if journal is not None:
        journal.record(outcome)
    [resp] = [parse_response(s.data) for s in outcome.sends]
    return resp


def challenges(resp, name: str = "WWW-Authenticate") -> list[dict[str, str]]:
    return [parse_challenge(v) for k, v in resp.headers if k == name]


def test_challenge_has_one_header_per_algorithm_in_order() -> None:
    # Six challenges make a 401 five times the size of this small request: over the
    # UDP amplification cap, which would drop it (and log why).
    e = engine("[settings]\nmax_amplification = 0\n" + scenario())
    resp = send(e)
    assert (resp.code, resp.reason) == (401, "Unauthorized")
    got = challenges(resp)
    assert [c["algorithm"] for c in got] == ALL
    assert {c["realm"] for c in got} == {"pbx.lab"} and {c["qop"] for c in got} == {"auth"}
    assert len({c["nonce"] for c in got}) == 1
    assert all("stale" not in c for c in got)
    assert not challenges(resp, "Proxy-Authenticate")
    assert send(e, method="OPTIONS").code == 200  # rules without auth are untouched


@pytest.mark.parametrize("alg", ALL)
def test_round_trip_every_algorithm(alg: str) -> None:
    e = engine(scenario(algorithms=[alg]))
    [chal] = challenges(send(e))
    assert chal["algorithm"] == alg
    auth = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    ok = send(e, [("Authorization", auth)], now=130.0)
    assert ok.code == 200
    # The same client with one wrong character in the password.
    bad = authorization(chal, username="100", password="s3creT", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", bad)], now=130.0).code == 403


@pytest.mark.parametrize("alg", ["MD5", "SHA-256", "SHA-512-256"])
def test_rfc2069_form_when_qop_is_off(alg: str) -> None:
    e = engine(scenario("qop = false", algorithms=[alg]))
    [chal] = challenges(send(e))
    assert "qop" not in chal
    auth = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI,
                         qop=None)
    assert send(e, [("Authorization", auth)]).code == 200
    # A qop=auth answer is not what was offered: challenged again, not accepted.
    with_qop = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", with_qop)]).code == 401


def test_qop_is_required_when_offered() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    [chal] = challenges(send(e))
    legacy = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI,
                           qop=None)
    assert send(e, [("Authorization", legacy)]).code == 401


def test_ha1_credentials() -> None:
    e = engine(scenario(algorithms=["MD5", "MD5-sess"]))
    for chal in challenges(send(e)):
        auth = authorization(chal, username="102", password="hashed", method="REGISTER", uri=URI)
        assert send(e, [("Authorization", auth)]).code == 200


def test_proxy_auth_uses_407_and_proxy_authorization() -> None:
    e = engine(scenario(kind="proxy", algorithms=["SHA-256", "MD5"]))
    resp = send(e)
    assert (resp.code, resp.reason) == (407, "Proxy Authentication Required")
    assert not challenges(resp)
    chal = challenges(resp, "Proxy-Authenticate")[0]
    assert chal["algorithm"] == "SHA-256"
    auth = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    # Credentials in the other header are not for a proxy challenge.
    assert send(e, [("Authorization", auth)]).code == 407
    assert send(e, [("Proxy-Authorization", auth)]).code == 200


def test_algorithm_not_offered_is_challenged_again() -> None:
    e = engine(scenario(algorithms=["SHA-256"]))
    [chal] = challenges(send(e))
    auth = authorization({**chal, "algorithm": "MD5"}, username="100", password="s3cret",
                         method="REGISTER", uri=URI)
    assert send(e, [("Authorization", auth)]).code == 401


def test_credentials_for_another_realm_are_ignored() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    [chal] = challenges(send(e))
    other = authorization({**chal, "realm": "elsewhere"}, username="100", password="s3cret",
                          method="REGISTER", uri=URI)
    mine = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", other)]).code == 401
    assert send(e, [("Authorization", other), ("Authorization", mine)]).code == 200


def test_wrong_password_and_unknown_user_defaults_and_settings() -> None:
    for extra, wrong, unknown in (("", 403, 403),
                                  ("wrong_password = 401\nunknown_user = 404", 401, 404),
                                  ("unknown_user = 401", 403, 401)):
        e = engine(scenario(extra, algorithms=["MD5"]))
        [chal] = challenges(send(e))
        bad = authorization(chal, username="100", password="nope", method="REGISTER", uri=URI)
        ghost = authorization(chal, username="999", password="s3cret", method="REGISTER",
                              uri=URI)
        wrong_resp = send(e, [("Authorization", bad)])
        unknown_resp = send(e, [("Authorization", ghost)])
        assert (wrong_resp.code, unknown_resp.code) == (wrong, unknown), extra
        for resp in (wrong_resp, unknown_resp):
            # A 401 answer is a fresh challenge, never a bare 401.
            assert bool(challenges(resp)) == (resp.code == 401)


def test_expired_nonce_with_a_right_digest_is_stale() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    [chal] = challenges(send(e, now=100.0))
    good = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", good)], now=160.0).code == 200  # lifetime 60 s
    stale = send(e, [("Authorization", good)], now=161.0)
    assert stale.code == 401
    [fresh] = challenges(stale)
    assert fresh["stale"] == "true" and fresh["nonce"] != chal["nonce"]
    # stale=true only for a right digest (RFC 7616 3.3): a wrong password stays wrong.
    bad = authorization(chal, username="100", password="nope", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", bad)], now=161.0).code == 403
    # And the client's retry with the new nonce goes through.
    retry = authorization(fresh, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", retry)], now=162.0).code == 200


def test_forged_nonce_gets_a_plain_challenge() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    [chal] = challenges(send(e))
    forged = {**chal, "nonce": "0" * 42}
    auth = authorization(forged, username="100", password="s3cret", method="REGISTER", uri=URI)
    resp = send(e, [("Authorization", auth)])
    assert resp.code == 401
    assert all("stale" not in c for c in challenges(resp))
    # Another responder's nonces (another secret) are forged ones too.
    other = engine(scenario('secret = "other"', algorithms=["MD5"]))
    [theirs] = challenges(send(other))
    auth = authorization(theirs, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(e, [("Authorization", auth)]).code == 401
    assert send(other, [("Authorization", auth)]).code == 200


def test_a_shared_secret_lets_another_instance_verify() -> None:
    a = engine(scenario('secret = "shared"', algorithms=["MD5"]))
    b = engine(scenario('secret = "shared"', algorithms=["MD5"]))
    [chal] = challenges(send(a))
    auth = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    assert send(b, [("Authorization", auth)]).code == 200


def test_malformed_credentials_get_400_naming_them() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    resp = send(e, [("Authorization", 'Digest username="100", realm="pbx.lab"')])
    assert resp.code == 400
    assert resp.reason.startswith("Malformed Authorization header field (no nonce directive")
    # Another scheme is not malformed, just not ours: challenged.
    assert send(e, [("Authorization", "Basic MTAwOnMzY3JldA==")]).code == 401


def test_cancel_is_never_challenged() -> None:
    # RFC 3261 9.2: a CANCEL cannot be resubmitted with credentials.
    e = engine(scenario(algorithms=["MD5"]))
    assert send(e, method="CANCEL").code == 200


def test_journal_names_the_rule_and_the_outcome() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    journal = Journal()
    [chal] = challenges(send(e, journal=journal))
    auth = authorization(chal, username="100", password="s3cret", method="REGISTER", uri=URI)
    send(e, [("Authorization", auth)], journal=journal)
    send(e, [("Authorization", auth.replace('response="', 'response="0'))], journal=journal)
    labels = [entry.rule for entry in journal]
    assert labels == ["rule 'register: auth challenge' (#1)", "rule 'register' (#1)",
                      "rule 'register: auth wrong-password' (#1)"]
    assert [entry.codes for entry in journal] == [[401], [200], [403]]


@pytest.mark.parametrize(("text", "expected"), [
    ('[[rule]]\nname = "r"\nauth = "www"\ncode = 200\n',
     "s.toml: rule 'r' (#1): field 'auth': needs an [auth] table"),
    ('[auth.credentials]\na = "b"\n[[rule]]\nauth = "digest"\ncode = 200\n',
     "rule #1: field 'auth': \"www\" (401, WWW-Authenticate) or \"proxy\""),
    ('[auth]\nrealm = "x"\n', "s.toml: [auth]: field 'credentials': must be a table"),
    ('[auth]\nrelam = "x"\n', "[auth]: field 'relam': unknown key"),
    ('[auth]\nalgorithms = ["SHA-1"]\n[auth.credentials]\na = "b"\n',
     "field 'algorithms': unknown algorithm 'SHA-1'"),
    ('[auth]\nalgorithms = ["MD5", "md5"]\n[auth.credentials]\na = "b"\n', "MD5 is listed twice"),
    ('[auth]\nalgorithms = []\n[auth.credentials]\na = "b"\n', "at least one algorithm"),
    ('[auth]\nqop = false\nalgorithms = ["MD5-sess"]\n[auth.credentials]\na = "b"\n',
     "field 'qop': MD5-sess needs qop = true"),
    ('[auth]\nnonce_lifetime = 0\n[auth.credentials]\na = "b"\n', "field 'nonce_lifetime'"),
    ('[auth]\nwrong_password = 200\n[auth.credentials]\na = "b"\n',
     "field 'wrong_password': must be a status code from 400 to 699"),
    ('[auth]\nunknown_user = 423\n[auth.credentials]\na = "b"\n',
     "field 'unknown_user': 423 Interval Too Brief requires a Min-Expires"),
    ('[auth]\nunknown_user = 499\n[auth.credentials]\na = "b"\n', "499 is not in the response-code"),
    ('[auth.credentials]\na = 5\n', "field 'credentials.a': must be a password string or a table"),
    ('[auth.credentials]\na = { pass = "x" }\n', "field 'credentials.a.pass': unknown key"),
    ('[auth.credentials]\na = { password = "x", ha1 = { MD5 = "x" } }\n',
     "field 'credentials.a': give either password or ha1"),
    ('[auth.credentials]\na = { ha1 = { MD5 = "xyz" } }\n',
     "field 'credentials.a.ha1.MD5': must be 32 hex digits"),
    ('[auth.credentials]\na = { ha1 = { SHA1 = "x" } }\n', "field 'credentials.a.ha1.SHA1': unknown hash"),
    (f'[auth]\nalgorithms = ["MD5", "SHA-256"]\n[auth.credentials]\na = {{ ha1 = {{ MD5 = "{"0" * 32}" }} }}\n',
     "field 'credentials.a.ha1': no HA1 for SHA-256, which auth.algorithms offers"),
    ('[auth.credentials]\na = "b"\n[default]\ncode = 200\nauth = "www"\n', "[default]: field 'auth': unknown key"),
])
def test_invalid_auth_settings_are_refused_with_a_precise_message(text: str, expected: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("s.toml")
    assert expected in message


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([
    'username="100"', 'realm="pbx.lab"', 'realm="other"', 'nonce="0000000000"', 'uri="sip:pbx.lab"',
    'response="00"', "qop=auth", 'qop="auth-int"', "nc=00000001", 'cnonce="c"', "algorithm=MD5",
    "algorithm=SHA-1", 'opaque=""', "x=", '"', ",", "="]), max_size=10))
def test_any_credentials_get_an_answer_never_an_internal_error(parts: list[str]) -> None:
    e = ENGINE
    before = e.counters["internal_errors"]
    [data] = [s.data for s in e.handle(make_request("REGISTER", URI, headers=[
        ("Authorization", "Digest " + ", ".join(parts))]), UDP, 100.0).sends]
    assert parse_response(data).code in (400, 401, 403)
    assert e.counters["internal_errors"] == before


ENGINE = engine(scenario(algorithms=["MD5"]))


def test_challenges_within_a_second_share_their_nonce_and_differ_after() -> None:
    e = engine(scenario(algorithms=["MD5"]))
    [first] = challenges(send(e, now=100.2))
    [same] = challenges(send(e, now=100.9))
    [later] = challenges(send(e, now=101.0))
    assert first["nonce"] == same["nonce"] != later["nonce"]
    [stale_first] = challenges(send(e, [("Authorization", authorization(
        first, username="100", password="s3cret", method="REGISTER", uri=URI))], now=170.0))
    assert stale_first["stale"] == "true"
    [plain] = challenges(send(e, now=170.5))  # same second, not stale: its own response
    assert "stale" not in plain and plain["nonce"] == stale_first["nonce"]
