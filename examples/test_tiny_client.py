"""How a SIP client's own tests use sipresponder's pytest plugin (installed with it)."""

from __future__ import annotations

import pytest
from tiny_client import call


def test_busy_callee(sip_responder) -> None:
    host, port = sip_responder.address("udp")
    assert call(f"sip:486@{host}:{port}", host, port) == 486
    [invite] = sip_responder.wait_for("INVITE", "sip:486@*")
    assert invite.header("User-Agent") == "TinyClient/1.0"
    # The client acknowledged the final response, as RFC 3261 17.1.1.3 requires.
    sip_responder.wait_for("ACK", "sip:486@*")


@pytest.mark.sip_scenario("""
[[rule]]
name = "ring-then-answer"
match = { method = "INVITE", user = "alice" }
provisional = [180]
delay = 0.3
code = 200
""")
def test_ringing_then_answered(sip_responder) -> None:
    host, port = sip_responder.address("udp")
    assert call(f"sip:alice@{host}:{port}", host, port) == 200
    [invite] = sip_responder.wait_for("INVITE", rule="ring-then-answer")
    assert invite.codes == [180, 200]
