"""TLS and WebSocket listeners of the real command line, met by independent clients:
OpenSSL's s_client (verifying the lab certificate) and the websockets library.

SIPp is not used for TLS here: Debian's sip-tester is built without OpenSSL ("To
use a TLS transport you must compile SIPp with OpenSSL"), and sipsak 0.9.8.1's TLS
mode cuts the last digit off the port in its Request-URI and then fails to read the
answer; docs/tls-websocket.md gives the sipp -t l1 command for builds that have TLS.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from sipresponder.transport.tls import CERT_NAME
from tests.conftest import require_binary
from tests.interop.conftest import run_responder
from tests.sipclient import make_request, parse_response

pytestmark = pytest.mark.interop

TIMEOUT = 10.0


def s_client_exchange(port: int, cert: Path, request: bytes) -> tuple[bytes, str]:
    """Send ``request`` through ``openssl s_client`` and read one SIP response.

    s_client verifies the server certificate against ``cert`` and the address in it
    (-verify_return_error aborts the handshake otherwise). It is stopped once the
    response is complete: the responder keeps a TLS connection open, as SIP does.
    """
    openssl = require_binary("openssl")
    proc = subprocess.Popen(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(cert),
         "-verify_return_error", "-verify_ip", "127.0.0.1", "-quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = b""
    try:
        proc.stdin.write(request)
        proc.stdin.flush()
        deadline = time.monotonic() + TIMEOUT
        while not _complete(out):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _readable(proc, remaining):
                break
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break  # s_client exited (a failed handshake, with -verify_return_error)
            out += chunk
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=TIMEOUT)
    return out, err.decode(errors="replace")


def _readable(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    return bool(select.select([proc.stdout], [], [], timeout)[0])


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"\r\nContent-Length: ([0-9]+)", head)
    return m is not None and len(body) >= int(m[1])


def test_openssl_s_client_options_over_tls(tmp_path: Path) -> None:
    """The lab certificate is made on first use, logged, valid for 127.0.0.1, and
    reused by the next start; s_client gets a 200 with Via filled in."""
    tls_dir = tmp_path / "tls"
    cert = tls_dir / CERT_NAME
    with run_responder(["--tls-dir", str(tls_dir)], ["tls"]) as responder:
        request = make_request("OPTIONS", "sips:200@127.0.0.1", transport="TLS",
                               via_host="client.invalid")
        out, err = s_client_exchange(responder.ports["tls"], cert, request)
        first = cert.read_bytes()
    assert "verify return:1" in err, err
    resp = parse_response(out)
    assert resp.code == 200
    via = resp.get("Via")
    assert via.startswith("SIP/2.0/TLS client.invalid;branch="), via
    assert re.search(r";rport=[0-9]+;received=127\.0\.0\.1$", via), via
    assert ";tag=" in resp.get("To")
    assert f"made a self-signed certificate {cert}" in responder.log_text

    with run_responder(["--tls-dir", str(tls_dir)], ["tls"]) as again:
        out, err = s_client_exchange(again.ports["tls"], cert, request)
    assert parse_response(out).code == 200
    assert f"using the self-signed certificate {cert}" in again.log_text
    assert cert.read_bytes() == first


def test_openssl_s_client_refuses_an_untrusted_server(tmp_path: Path, tls_dir: Path) -> None:
    """The check above can fail: against a certificate it was not told to trust,
    s_client aborts the handshake and no SIP gets through."""
    with run_responder(["--tls-dir", str(tmp_path / "other")], ["tls"]) as responder:
        out, err = s_client_exchange(responder.ports["tls"], tls_dir / CERT_NAME,
                                     make_request("OPTIONS", "sip:200@127.0.0.1",
                                                  transport="TLS"))
    assert out == b""
    assert "verify error" in err, err


def test_websocket_clients_over_ws_and_wss(tmp_path: Path) -> None:
    tls_dir = tmp_path / "tls"
    with run_responder(["--tls-dir", str(tls_dir)], ["ws", "wss"]) as responder:
        context = ssl.create_default_context(cafile=str(tls_dir / CERT_NAME))

        async def call(transport: str, user: str) -> str:
            url = f"{transport}://127.0.0.1:{responder.ports[transport]}/"
            async with connect(url, subprotocols=["sip"], open_timeout=TIMEOUT,
                               ssl=context if transport == "wss" else None) as ws:
                await ws.send(make_request("OPTIONS", f"sip:{user}@127.0.0.1",
                                           transport=transport.upper(),
                                           via_host="abc.invalid").decode())
                return await asyncio.wait_for(ws.recv(), TIMEOUT)

        plain = parse_response(asyncio.run(call("ws", "200")).encode())
        secure = parse_response(asyncio.run(call("wss", "486")).encode())
    assert plain.code == 200
    assert plain.get("Via").startswith("SIP/2.0/WS abc.invalid;")
    assert secure.code == 486
    assert secure.get("Via").startswith("SIP/2.0/WSS abc.invalid;")
    assert "received=127.0.0.1" in secure.get("Via")
