"""The Python API over requests the responder sent: direction and code filters, a wait
woken by the client's later answer, verify_sequence (Responder and SyncResponder). The
sent requests are fabricated Exchanges recorded as the far end records them."""

from __future__ import annotations

import asyncio

import pytest

from sipresponder.journal.record import FilterError
from sipresponder.testing.api import Responder, SyncResponder, VerifyFailed
from sipresponder.uac.exchange import Exchange
from tests.sipclient import UDPClient, make_request

SCENARIO = """
[[rule]]
name = "answer"
match = { method = "INVITE" }
code = 200
[default]
code = 200
"""


def bye(call_id: str, remote: tuple[str, int], local: tuple[str, int]) -> Exchange:
    data = make_request("BYE", f"sip:alice@{remote[0]}:{remote[1]}", call_id=call_id,
                        cseq=1, via_host=f"{local[0]}:{local[1]}", to_tag="t", from_tag="f")
    return Exchange(data, "BYE", "udp", remote, local, call_id, "rule 'answer' (#1), step 1")


def ok(call_id: str) -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-x\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode()


async def test_verify_a_sent_bye_answered_later_and_the_sequence() -> None:
    async with Responder(SCENARIO) as r:
        client = await UDPClient.connect(r.address("udp")[1])
        try:
            await client.exchange(make_request("INVITE", "sip:a@127.0.0.1", call_id="c1"))
            await client.send(make_request("ACK", "sip:a@127.0.0.1", call_id="c1"))
            await r.wait_for("ACK")
            exchange = bye("c1", client.stream.sockname, r.address("udp"))
            r.journal.record_sent(exchange)
            assert [e.method for e in r.requests(direction="sent")] == ["BYE"]
            assert [e.method for e in r.requests(direction="received")] == ["INVITE", "ACK"]
            waiting = asyncio.create_task(
                r.verify("BYE", direction="sent", code=200, exactly=1, within=0, timeout=60))
            # Runs after the task's first look (the loop's ready queue is FIFO): the
            # answer comes while it waits.
            asyncio.get_running_loop().call_soon(exchange.received, ok("c1"))
            # Woken by the update (no new entry comes): long before verify's own timeout.
            [entry] = await asyncio.wait_for(waiting, 10)
            assert entry.codes == [200] and entry.direction == "sent"
            found = await r.verify_sequence(
                [{"method": "INVITE"}, {"method": "ACK"},
                 {"method": "BYE", "direction": "sent", "code": 200}], timeout=1)
            assert [e.method for e in found] == ["INVITE", "ACK", "BYE"]
            with pytest.raises(VerifyFailed, match="was not found after #3"):
                await r.verify_sequence([{"method": "BYE", "direction": "sent"},
                                         {"method": "BYE"}], call_id="c1", timeout=0)
            with pytest.raises(FilterError, match="step 1: unknown filter 'methd'"):
                await r.verify_sequence([{"methd": "BYE"}], timeout=0)
            with pytest.raises(FilterError, match="direction: expected"):
                r.requests(direction="up")
        finally:
            client.close()


def test_sync_responder_verify_sequence() -> None:
    with SyncResponder(SCENARIO) as r:
        r.journal.record_sent(bye("c2", ("127.0.0.1", 40000), r.address("udp")))
        [entry] = r.verify_sequence([{"direction": "sent", "method": "BYE"}], call_id="c2",
                                    timeout=1)
        assert entry.call_id == "c2"
        assert r.requests(direction="sent", method="BYE") == [entry]
        with pytest.raises(VerifyFailed, match="no call has step 1"):
            r.verify_sequence([{"method": "INVITE"}], timeout=0)
