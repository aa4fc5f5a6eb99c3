"""TLS listeners: the lab certificate, SIP over TLS end to end, sips: dialogs.

The client side is Python's ssl module verifying the server certificate against the
lab certificate file (the way a client told to trust it would), and the test client
of tests/sipclient.py, which shares no code with the responder.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
import stat
import sys
from pathlib import Path

import pytest
from cryptography import x509

from sipresponder.ops.cli import main
from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from sipresponder.transport import tls
from sipresponder.transport.address import parse_listen
from sipresponder.transport.tls import TLSOptions, TLSSetupError, self_signed
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.conftest import SCENARIOS
from tests.sipclient import TCPClient, make_request, parse_response

TIMEOUT = 5.0


def client_context(cert: Path) -> ssl.SSLContext:
    """A client that trusts only the lab certificate and checks the address in it."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = True
    return context


# -- the lab certificate -----------------------------------------------------------------
def test_self_signed_is_made_once_then_reused(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sipresponder"):
        cert, key = self_signed(tmp_path / "lab")
        first = cert.read_bytes()
        again_cert, again_key = self_signed(tmp_path / "lab")
    assert (again_cert, again_key) == (cert, key)
    assert again_cert.read_bytes() == first, "a valid certificate must be reused, not remade"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("made a self-signed certificate" in m and str(cert) in m for m in messages)
    assert any("using the self-signed certificate" in m and str(cert) in m for m in messages)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600, "the private key must be private"
    parsed = x509.load_pem_x509_certificate(first)
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}


def test_self_signed_near_expiry_is_remade(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "VALID_DAYS", tls.RENEW_DAYS - 1)
    cert, _ = self_signed(tmp_path)
    short = cert.read_bytes()
    monkeypatch.setattr(tls, "VALID_DAYS", 365)
    cert, _ = self_signed(tmp_path)
    assert cert.read_bytes() != short
    not_after = x509.load_pem_x509_certificate(cert.read_bytes()).not_valid_after_utc
    assert not_after - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=300)


def test_broken_pair_is_remade(tmp_path: Path) -> None:
    _, key = self_signed(tmp_path)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    cert2, key2 = self_signed(tmp_path)
    ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert2, key2)


def test_without_cryptography_the_error_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)  # import now raises ImportError
    with pytest.raises(TLSSetupError, match=r"pip install 'sipresponder\[tls\]'.*--tls-cert"):
        self_signed(tmp_path)


def test_cert_and_key_go_together() -> None:
    with pytest.raises(ValueError, match="--tls-cert and --tls-key go together"):
        TLSOptions(cert=Path("c.pem"))


def test_cli_reports_an_unloadable_certificate(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    code = main(["serve", "--listen", "tls:127.0.0.1:0", "--tls-cert", str(bad),
                 "--tls-key", str(bad)])
    assert code == 2
    assert f"cannot load TLS certificate {bad}" in capsys.readouterr().err


def test_cli_wants_both_cert_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["serve", "--listen", "tls:127.0.0.1:0", "--tls-cert", str(tmp_path / "c.pem")])
    assert code == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_parse_listen_takes_the_new_transports() -> None:
    assert str(parse_listen("TLS:[::1]:5061")) == "tls:[::1]:5061"
    assert parse_listen("ws:127.0.0.1:80").transport == "ws"
    assert parse_listen("wss::443").host == "0.0.0.0"
    with pytest.raises(ValueError, match="PROTO udp, tcp, tls, ws, wss"):
        parse_listen("sctp:127.0.0.1:5060")


# -- SIP over TLS ---------------------------------------------------------------------------
async def test_options_over_tls(tls_dir: Path) -> None:
    async with Responder(listen=["tls:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir)) as r:
        assert r.tls_certificate == tls_dir / tls.CERT_NAME
        port = r.address("tls")[1]
        # check_hostname: the certificate must name 127.0.0.1 for this to connect.
        client = await TCPClient.connect(port, "127.0.0.1", client_context(r.tls_certificate))
        try:
            await client.send(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TLS",
                                           via_host="client.example.com:5061"))
            resp = await client.recv(TIMEOUT)
            local_port = client.writer.get_extra_info("sockname")[1]
        finally:
            await client.close()
        assert resp.code == 200
        # RFC 3261 18.2.1 / RFC 3581: the TLS source address and port are filled in.
        via = resp.get("Via")
        assert via.startswith("SIP/2.0/TLS client.example.com:5061;branch=z9hG4bK-test-"), via
        assert via.endswith(f";rport={local_port};received=127.0.0.1"), via
        assert ";tag=" in resp.get("To")
        [entry] = await r.wait_for("OPTIONS", timeout=TIMEOUT)
        assert entry.transport == "tls"
        assert entry.remote == ("127.0.0.1", local_port)


@pytest.mark.parametrize(("ruri", "contact"), [
    ("sips:alice@127.0.0.1", "<sips:sipresponder@127.0.0.1:{port}>"),
    ("sip:alice@127.0.0.1", "<sip:sipresponder@127.0.0.1:{port};transport=tls>"),
])
async def test_invite_over_tls_contact(tls_dir: Path, ruri: str, contact: str) -> None:
    """RFC 3261 12.1.1: a sips: Request-URI makes the dialog secure, so our Contact is
    sips: (no transport parameter: sips means TLS); sip: over TLS keeps transport=tls."""
    async with Responder(listen=["tls:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir)) as r:
        port = r.address("tls")[1]
        client = await TCPClient.connect(port, ssl=client_context(r.tls_certificate))
        try:
            await client.send(make_request("INVITE", ruri, transport="TLS"))
            resp = await client.recv(TIMEOUT)
        finally:
            await client.close()
    assert resp.code == 200
    assert resp.get("Contact") == contact.format(port=port)
    assert resp.get("Content-Type") == "application/sdp"


async def test_sips_status_code_uri_is_not_416(tls_dir: Path) -> None:
    """The status-code rule reads the user part of sips: URIs like sip: ones."""
    async with Responder(listen=["tls:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir)) as r:
        client = await TCPClient.connect(r.address("tls")[1],
                                         ssl=client_context(r.tls_certificate))
        try:
            await client.send(make_request("OPTIONS", "sips:486@127.0.0.1", transport="TLS"))
            assert (await client.recv(TIMEOUT)).code == 486
        finally:
            await client.close()


async def test_tls_stream_framing_and_pipelining(tls_dir: Path) -> None:
    """Two requests in one TLS record and one request split over records: the TCP
    framer runs under TLS unchanged."""
    async with Responder(listen=["tls:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir)) as r:
        client = await TCPClient.connect(r.address("tls")[1],
                                         ssl=client_context(r.tls_certificate))
        try:
            a = make_request("OPTIONS", "sip:200@127.0.0.1", transport="TLS", call_id="a")
            b = make_request("OPTIONS", "sip:486@127.0.0.1", transport="TLS", call_id="b")
            await client.send(a + b[:20])
            first = await client.recv(TIMEOUT)
            await client.send(b[20:])
            second = await client.recv(TIMEOUT)
        finally:
            await client.close()
    assert (first.code, first.get("Call-ID")) == (200, "a")
    assert (second.code, second.get("Call-ID")) == (486, "b")


async def test_refusals_for_size_over_tls_are_513(tls_dir: Path) -> None:
    """Issue 12: a 60 kB header line gets 513 (not 400) and the connection stays up; a
    message over max_message_size gets 513 from the framer, then the connection closes."""
    async with Responder(listen=["tls:127.0.0.1:0"], tls=TLSOptions(directory=tls_dir)) as r:
        client = await TCPClient.connect(r.address("tls")[1],
                                         ssl=client_context(r.tls_certificate))
        try:
            await client.send(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TLS",
                                           headers=[("X-Big", "a" * 60_000)]))
            line = await client.recv(TIMEOUT)
            await client.send(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TLS",
                                           headers=[("X-Big", "a" * 70_000)]))
            message = await client.recv(TIMEOUT)
            closed = await asyncio.wait_for(client.reader.read(), TIMEOUT)
        finally:
            await client.close()
    assert (line.code, line.reason) == (513, "Message Too Large (header line over 8192 octets)")
    assert (message.code, message.reason) == (513, "Message Too Large (over 65535 octets)")
    assert closed == b""


async def test_tls_idle_timeout_and_connection_cap(tls_dir: Path) -> None:
    scenario = "[settings]\nmax_connections = 1\ntcp_idle_timeout = 0.3\n"
    async with Responder(scenario, listen=["tls:127.0.0.1:0"],
                         tls=TLSOptions(directory=tls_dir)) as r:
        context = client_context(r.tls_certificate)
        port = r.address("tls")[1]
        first = await TCPClient.connect(port, ssl=context)
        try:
            # The cap: a second connection is accepted and closed at once, before any
            # TLS handshake (issue 18: handshakes count against max_connections).
            with pytest.raises((ConnectionError, ssl.SSLError)):
                await asyncio.wait_for(TCPClient.connect(port, ssl=context), TIMEOUT)
            # The idle timeout closes the silent first one.
            assert await asyncio.wait_for(first.reader.read(), TIMEOUT) == b""
        finally:
            await first.close()
        assert r.server.engine.counters["tcp_refused"] == 1
        assert r.server.engine.counters["tcp_idle_closed"] == 1


async def test_stalled_tls_handshake_is_closed_after_the_handshake_timeout(
        tls_dir: Path) -> None:
    scenario = "[settings]\ntls_handshake_timeout = 0.3\n"
    async with Responder(scenario, listen=["tls:127.0.0.1:0"],
                         tls=TLSOptions(directory=tls_dir)) as r:
        # Plain TCP that never says ClientHello.
        reader, writer = await asyncio.open_connection("127.0.0.1", r.address("tls")[1])
        try:
            # asyncio's own default would keep it 60 s: wait_for would time out.
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        finally:
            writer.close()


async def test_own_certificate_files(tls_dir: Path, tmp_path: Path) -> None:
    """--tls-cert/--tls-key: that pair is served, the cache folder is not touched."""
    cert, key = tls_dir / tls.CERT_NAME, tls_dir / tls.KEY_NAME
    unused = tmp_path / "unused"
    options = TLSOptions(cert=cert, key=key, directory=unused)
    async with Responder(listen=["tls:127.0.0.1:0"], tls=options) as r:
        client = await TCPClient.connect(r.address("tls")[1], ssl=client_context(cert))
        try:
            await client.send(make_request("OPTIONS", "sip:200@127.0.0.1", transport="TLS"))
            assert (await client.recv(TIMEOUT)).code == 200
        finally:
            await client.close()
    assert not unused.exists()


def test_scenario_can_match_tls() -> None:
    scenario = parse_scenario(
        '[[rule]]\nmatch = { transport = ["tls", "wss"] }\ncode = 488\n[default]\ncode = 200\n',
        "<test>")
    engine = Engine(scenario)
    request = make_request("OPTIONS", "sip:x@127.0.0.1")
    for transport, code in (("tls", 488), ("wss", 488), ("tcp", 200), ("ws", 200)):
        [send] = engine.handle(request, Source(transport, ("127.0.0.1", 1), ("127.0.0.1", 2),
                                               7), 0.0).sends
        assert parse_response(send.data).code == code, transport
        assert send.conn == 7 and send.transport == transport


def test_default_scenario_over_every_transport_routes_to_the_connection() -> None:
    engine = Engine(parse_scenario((SCENARIOS / "default.toml").read_bytes(), "default"))
    for transport in ("tls", "ws", "wss"):
        [send] = engine.handle(make_request("OPTIONS", "sips:200@h", transport=transport.upper()),
                               Source(transport, ("10.0.0.1", 4), ("10.0.0.2", 5), 9), 0.0).sends
        assert (send.transport, send.conn, send.remote) == (transport, 9, ("10.0.0.1", 4))


@pytest.mark.parametrize(("transport", "ruri", "headers", "contact"), [
    # RFC 3261 12.1.1: the top Record-Route decides when there is one...
    ("tls", "sip:a@h", [("Record-Route", "<sips:proxy.example.com;lr>")], "<sips:sipresponder@10.0.0.2:5061>"),
    ("tls", "sip:a@h", [("Record-Route", "<sip:proxy.example.com;lr>, <sips:p2;lr>"),
                        ("Contact", "<sips:a@client>")], "<sip:sipresponder@10.0.0.2:5061;transport=tls>"),
    # ...else the Contact.
    ("tls", "sip:a@h", [("Contact", "<sips:a@client>")], "<sips:sipresponder@10.0.0.2:5061>"),
    ("wss", "sip:a@h", [("Contact", "<sips:a@client;transport=ws>")], "<sips:sipresponder@10.0.0.2:5061;transport=ws>"),
    # sips: over an insecure transport does not make our Contact lie about TLS.
    ("tcp", "sips:a@h", [], "<sip:sipresponder@10.0.0.2:5061;transport=tcp>"),
    ("ws", "sips:a@h", [], "<sip:sipresponder@10.0.0.2:5061;transport=ws>"),
    ("udp", "sip:a@h", [], "<sip:sipresponder@10.0.0.2:5061>"),
])
def test_own_contact_follows_the_dialog(transport: str, ruri: str,
                                        headers: list[tuple[str, str]], contact: str) -> None:
    engine = Engine(parse_scenario((SCENARIOS / "default.toml").read_bytes(), "default"))
    request = make_request("INVITE", ruri, transport=transport.upper(), headers=headers)
    [send] = engine.handle(request, Source(transport, ("10.0.0.1", 4), ("10.0.0.2", 5061), 3),
                           0.0).sends
    response = parse_response(send.data)
    assert response.code == 200
    assert response.get("Contact") == contact
