"""sipsak as the peer: OPTIONS pings and a REGISTER, over UDP and TCP.

sipsak(1), RETURN VALUES: 0 means a 200 was received; 1 means something other
than 1xx or 2xx was received; 2 local errors; 3 remote errors, including no answer.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import require_binary
from tests.interop.conftest import ResponderProcess

pytestmark = pytest.mark.interop

TIMEOUT = 20  # s; sipsak itself gives up after 64*T1 = 32 s without an answer
TRANSPORTS = pytest.mark.parametrize("transport", ["udp", "tcp"])


def sipsak(responder: ResponderProcess, transport: str, *args: str
           ) -> subprocess.CompletedProcess[str]:
    binary = require_binary("sipsak")
    port = responder.udp_port if transport == "udp" else responder.tcp_port
    cmd = [binary, "-E", transport, *[a.format(port=port) for a in args]]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=TIMEOUT, check=False)


@TRANSPORTS
def test_options_ping_200(responder_process: ResponderProcess, transport: str) -> None:
    result = sipsak(responder_process, transport, "-vv", "-s", "sip:200@127.0.0.1:{port}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "SIP/2.0 200 OK" in out, out
    # the 200 to OPTIONS advertises what the responder takes (default.toml contract)
    allow = re.search(r"^Allow: (.*)$", out, re.MULTILINE)
    assert allow and "OPTIONS" in allow[1].split(", "), out


@TRANSPORTS
def test_options_486_is_reported(responder_process: ResponderProcess, transport: str) -> None:
    result = sipsak(responder_process, transport, "-vv", "-s", "sip:486@127.0.0.1:{port}")
    out = result.stdout + result.stderr
    assert result.returncode == 1, f"expected 1 (a non-1xx/2xx final), got:\n{out}"
    assert "SIP/2.0 486 Busy Here" in out, out


@TRANSPORTS
def test_options_plain_ping(responder_process: ResponderProcess, transport: str) -> None:
    """No user part: the OPTIONS rule, not the status-code rule, answers."""
    result = sipsak(responder_process, transport, "-s", "sip:127.0.0.1:{port}")
    assert result.returncode == 0, result.stdout + result.stderr


@TRANSPORTS
def test_register_binding(responder_process: ResponderProcess, transport: str) -> None:
    """sipsak's usrloc mode registers a Contact and checks the 200 for it."""
    result = sipsak(responder_process, transport, "-vvv", "-i", "-U",
                    "-C", "sip:alice@127.0.0.1:5999", "-x", "60",
                    "-s", "sip:alice@127.0.0.1:{port}")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "All usrloc tests completed successful" in out, out
    assert "Contact: <sip:alice@127.0.0.1:5999>;expires=60" in out, out
