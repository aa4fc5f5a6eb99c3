"""The compiled path and reliable provisionals (RFC 3262): a scenario with a
``reliable`` rule keeps every PRACK, and every INVITE the rule rings for, in the
engine (their answers depend on live transactions), while the rest of it is still
answered compiled, byte for byte as the engine would."""

from __future__ import annotations

import pytest

from sipresponder.scenario.loader import parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from tests.differential.test_compiled import (
    SOURCES,
    Checked,
    clean_request,
    compare,
    engine_for,
    no_disagreement,  # noqa: F401 - the autouse fixture: a disagreement fails here too
    pytestmark,  # noqa: F401 - skipped the same way without the extension
)
from tests.sipclient import parse_response

SCENARIO = """
[[rule]]
name = "prack"
match = { method = "INVITE", user = "prack" }
reliable = true
provisional = [180]
code = 200

[[rule]]
name = "plain PRACK"
match = { method = "PRACK" }
code = 200

[default]
code = 200
"""


def prack(source: Source, n: int, to_tag: str = "x", rack: str = "1 1 INVITE",
          call_id: str | None = None, dialog: int | None = None) -> bytes:
    """A PRACK on branch ``n``; in the dialog of the INVITE ``clean_request`` built
    with ``dialog`` (its From tag), with ``call_id`` and our ``to_tag``."""
    data = clean_request("PRACK", "bench", source, n).replace(b"CSeq: 1 PRACK",
                                                              b"CSeq: 2 PRACK")
    if dialog is not None:
        data = data.replace(f"tag={n}SIPpTag00{n}".encode(),
                            f"tag={dialog}SIPpTag00{dialog}".encode())
    head, rest = data.split(b"\r\nCall-ID: ", 1)
    line, rest = rest.split(b"\r\n", 1)
    data = (head + f";tag={to_tag}\r\nCall-ID: ".encode() + (call_id or line.decode()).encode()
            + b"\r\n" + rest)
    return data.replace(b"Content-Length: 0", f"RAck: {rack}\r\nContent-Length: 0".encode())


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.transport + s.remote[0])
def test_prack_is_never_answered_compiled_in_a_reliable_scenario(source: Source) -> None:
    engine = engine_for(parse_scenario(SCENARIO, "<reliable>"))
    checked = Checked()
    for n in (1, 2):  # the second OPTIONS is answered compiled: the table is in use
        compare(engine, clean_request("OPTIONS", "bench", source, n), source, checked)
    assert checked.answered == 1
    for n in (3, 4, 5):  # a stray PRACK: 481 each time, never learned
        compare(engine, prack(source, n), source, checked)
    assert checked.answered == 1
    invite = clean_request("INVITE", "prack", source, 6).replace(
        b"Content-Length: 0", b"Supported: 100rel\r\nContent-Length: 0")
    outcome = engine.handle(invite, source, 1000.0)
    ringing = parse_response(outcome.sends[0].data)
    assert ringing.get("RSeq")
    tag = ringing.get("To").split(";tag=")[1]
    call_id = ringing.get("Call-ID")
    acked = prack(source, 7, tag, f"{ringing.get('RSeq')} 1 INVITE", call_id, dialog=6)
    for _ in range(2):  # the PRACK, then its retransmission: 200 both times
        compare(engine, acked, source, checked)
    assert checked.answered == 1
    counters = engine.counters
    # 200s: the two OPTIONS (compare asks the engine too) and the PRACK, not its repeat.
    assert (counters["response:481"], counters["response:200"]) == (3, 3)
    assert counters["retransmitted_requests"] == 1


def test_the_same_prack_rule_is_answered_compiled_without_a_reliable_rule() -> None:
    """The contrast that makes the test above mean something: without the reliable
    rule, the plain PRACK rule is one the table learns."""
    text = SCENARIO.replace("reliable = true\n", "")
    engine: Engine = engine_for(parse_scenario(text, "<plain>"))
    source = SOURCES[0]
    checked = Checked()
    for n in (3, 4, 5):
        compare(engine, prack(source, n), source, checked)
    assert checked.answered == 2
