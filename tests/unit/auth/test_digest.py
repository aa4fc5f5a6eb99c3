"""sipresponder/digest.py: known vectors from the RFCs, the credentials grammar, the
challenge line as real clients read it, and stateless nonces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sipvicious.libs import svhelper

from sipresponder.auth.digest import (
    ALGORITHMS,
    NonceSigner,
    algorithm,
    challenge,
    digest_matches,
    ha1,
    parse_credentials,
    request_digest,
)

# RFC 7616 3.9.1: the same request answered with MD5 and with SHA-256. HTTP's method
# and URI are just the strings A2 hashes; the digest does not care that they are not SIP.
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_AUTHORIZATION = (
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
    'algorithm={alg}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
    'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
    'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(("alg", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_section_3_9_1_vectors(alg: str, expected: str) -> None:
    a = algorithm(alg)
    creds = parse_credentials(RFC7616_AUTHORIZATION.format(alg=alg, response=expected))
    assert creds is not None
    assert creds.username == "Mufasa" and creds.realm == RFC7616_REALM
    assert creds.get("opaque") == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    stored = ha1(a, "Mufasa", RFC7616_REALM, "Circle of Life")
    got = request_digest(a, stored, method="GET", uri=creds.get("uri"), nonce=creds.get("nonce"),
                         qop=creds.get("qop"), nc=creds.get("nc"), cnonce=creds.get("cnonce"))
    assert got == expected
    assert digest_matches(got, creds.get("response"))
    # One changed character anywhere makes another digest.
    assert request_digest(a, stored, method="GET", uri="/dir/index.htm", nonce=RFC7616_NONCE,
                          qop="auth", nc="00000001", cnonce=RFC7616_CNONCE) != expected
    assert request_digest(a, stored, method="GET", uri="/dir/index.html", nonce=RFC7616_NONCE,
                          qop="auth", nc="00000002", cnonce=RFC7616_CNONCE) != expected


def test_rfc2617_section_3_5_vector() -> None:
    md5 = algorithm("MD5")
    stored = ha1(md5, "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert request_digest(md5, stored, method="GET", uri="/dir/index.html",
                          nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth",
                          nc="00000001", cnonce="0a4f113b") == "6629fae49393a05397450978507c4ef1"


def test_rfc2069_vector_without_qop() -> None:
    # RFC 2069 2.4 as corrected by its erratum (password "CircleOfLife"): the legacy
    # form, KD(H(A1), nonce ":" H(A2)), with no qop, nc or cnonce.
    md5 = algorithm("MD5")
    stored = ha1(md5, "Mufasa", "testrealm@host.com", "CircleOfLife")
    assert request_digest(md5, stored, method="GET", uri="/dir/index.html",
                          nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093") == \
        "1949323746fe6a43ef61f9606e7febea"


def test_sess_variants_key_on_nonce_and_cnonce() -> None:
    # RFC 7616 3.4.2: A1 = H(user:realm:pass) ":" nonce ":" cnonce for -sess.
    import hashlib
    for name, h in (("MD5-sess", "md5"), ("SHA-256-sess", "sha256")):
        a = algorithm(name)
        base = hashlib.new(h, b"bob:lab:pw").hexdigest()
        session = hashlib.new(h, f"{base}:N:C".encode()).hexdigest()
        ha2 = hashlib.new(h, b"REGISTER:sip:lab").hexdigest()
        want = hashlib.new(h, f"{session}:N:00000001:C:auth:{ha2}".encode()).hexdigest()
        got = request_digest(a, base, method="REGISTER", uri="sip:lab", nonce="N", qop="auth",
                             nc="00000001", cnonce="C")
        assert got == want
        assert got != request_digest(a, base, method="REGISTER", uri="sip:lab", nonce="N",
                                     qop="auth", nc="00000001", cnonce="D")


def test_algorithm_names_are_case_insensitive_and_sized() -> None:
    assert algorithm("md5-SESS").name == "MD5-sess"
    assert [ALGORITHMS[k].digest_length for k in ("md5", "sha-256", "sha-512-256")] == [32, 64, 64]
    with pytest.raises(KeyError):
        algorithm("SHA-1")


# -- the credentials grammar -------------------------------------------------------------
def test_parse_quoted_pairs_whitespace_and_token_values() -> None:
    creds = parse_credentials(
        'Digest\tusername = "a\\"b\\\\c" ,realm="r, with comma",nonce="n", uri="sip:x@y;transport=tcp",'
        'response="ABCDEF0123456789abcdef0123456789", algorithm=MD5-sess, qop="auth", nc=0000000A, '
        'cnonce="c", x-ext=token')
    assert creds is not None
    assert creds.username == 'a"b\\c'
    assert creds.realm == "r, with comma"
    assert creds.get("uri") == "sip:x@y;transport=tcp"
    assert creds.get("qop") == "auth"  # quoted by some clients: read as the token
    assert creds.get("nc") == "0000000A"
    assert creds.get("x-ext") == "token"


def test_other_schemes_are_not_ours() -> None:
    assert parse_credentials("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==") is None
    assert parse_credentials("NTLM abc") is None


@pytest.mark.parametrize(("value", "problem"), [
    ("Digest", "expected a directive name"),
    ('Digest username="a", realm="r", nonce="n", uri="u"', "no response directive"),
    ('Digest username="a" realm="r"', "expected ','"),
    ('Digest realm="r", nonce="n", uri="u", response="x", username="a, b', "unterminated"),
    ('Digest username="a", username="b", realm="r", nonce="n", uri="u", response="x"', "twice"),
    ('Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth', "cnonce and nc"),
    ('Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, cnonce="c", '
     'nc=1', "8 hex digits"),
    ('Digest username=, realm="r"', "empty value"),
    ('Digest username', "has no value"),
])
def test_malformed_credentials_name_the_problem(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_credentials(value)


# -- the challenge line ----------------------------------------------------------------
def test_challenge_is_one_line_with_an_unquoted_algorithm() -> None:
    text = challenge('lab "one"', "abc123", algorithm("SHA-256"), stale=True)
    assert text == ('Digest realm="lab \\"one\\"", nonce="abc123", algorithm=SHA-256, '
                    'qop="auth", stale=true')
    assert "\r" not in text and "\n" not in text
    assert challenge("r", "n", algorithm("MD5"), qop=False) == \
        'Digest realm="r", nonce="n", algorithm=MD5'


def test_sipvicious_reads_the_challenge_it_needs() -> None:
    """svcrack finds each directive with its own regular expressions (svhelper)."""
    line = challenge("pbx.lab", "00000000aaaa", algorithm("MD5-sess"))
    response = f"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: {line}\r\nContent-Length: 0\r\n\r\n"
    header = svhelper.getAuthHeader(response)
    assert header == line
    assert svhelper.getAlgorithm(header) == "md5-sess"
    assert svhelper.getNonce(header) == "00000000aaaa"
    assert svhelper.getRealm(response) == "pbx.lab"
    assert svhelper.getQop(header) == "auth"


# -- stateless nonces -------------------------------------------------------------------
def test_nonce_lifecycle() -> None:
    signer = NonceSigner(b"k" * 32, "pbx.lab", 30)
    nonce = signer.make(1000.7)
    assert len(nonce) == 42 and nonce == signer.make(1000.2)  # one per second
    assert signer.check(nonce, 1000.7) == "valid"
    assert signer.check(nonce, 1030.0) == "valid"
    assert signer.check(nonce, 1030.5) == "stale"
    assert signer.check(nonce, 999.0) == "invalid"  # issued in the future: not our clock
    tampered = nonce[:9] + ("0" if nonce[9] != "0" else "1") + nonce[10:]
    assert signer.check(tampered, 1000.7) == "invalid"  # the time is signed
    assert NonceSigner(b"x" * 32, "pbx.lab", 30).check(nonce, 1000.7) == "invalid"
    assert NonceSigner(b"k" * 32, "other", 30).check(nonce, 1000.7) == "invalid"
    assert signer.check(nonce[:-1], 1000.7) == "invalid"
    assert signer.check("", 1000.7) == "invalid"


# -- any input ---------------------------------------------------------------------------
_DIRECTIVE = st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop", "nc",
                              "cnonce", "algorithm", "opaque", "x"])
_VALUE = st.one_of(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255),
                           max_size=12).map(lambda v: '"' + v + '"'),
                   st.from_regex(r"[A-Za-z0-9\-.:/]{0,10}", fullmatch=True))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_DIRECTIVE, _VALUE), max_size=12),
       st.sampled_from([", ", ",", " , ", " "]))
def test_credentials_parse_or_name_their_problem(pairs, sep) -> None:
    """Near-valid credentials (the grammar's pieces in any order and number) either
    parse or raise ValueError: nothing else escapes to the engine."""
    value = "Digest " + sep.join(f"{k}={v}" for k, v in pairs)
    try:
        creds = parse_credentials(value)
    except ValueError as exc:
        assert str(exc)
        return
    assert creds is not None
    for name in ("username", "realm", "nonce", "uri", "response"):
        assert creds.get(name) is not None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=80))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    try:
        parse_credentials("Digest " + text)
        parse_credentials(text)
    except ValueError:
        pass
