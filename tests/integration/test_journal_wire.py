"""The journal as the wire, over real sockets: what a client received is what the journal
holds, frame for frame (issue 18). With the compiled path on where it is built, since a
memo's answer is a frame on the wire too.

The live-capture comparison (tshark -i lo against the journal's pcap) is in
tests/interop/test_pcap_live.py; these need no peer and run everywhere.
"""

from __future__ import annotations

from sipresponder.scenario.loader import parse_scenario
from sipresponder.testing.api import Responder
from sipresponder.uas.compiled import STATUS
from tests.sipclient import UDPClient, make_request, udp_exchange

TIMEOUT = 5.0
SCENARIO = """\
[settings]
timer_t1 = 0.05

[[rule]]
name = "ring"
match = { method = "INVITE", user = "ring" }
provisional = [180]
action = "provisional-only"

[[rule]]
name = "answer"
match = { method = "INVITE", user = "answer" }
provisional = [180]
code = 200

[[rule]]
name = "ok"
match = { method = ["OPTIONS", "BYE", "CANCEL"] }
code = 200
"""


async def test_cancel_of_a_ringing_invite_even_after_a_stray_cancel_was_learned() -> None:
    """A stray CANCEL (no transaction) is answered 200 by a stateless rule; the compiled
    path must not keep that answer for its request line, or the CANCEL of a ringing
    INVITE with the same line gets 200 and the INVITE never gets its 487 (it did)."""
    async with Responder(parse_scenario(SCENARIO, "<wire>"), ["udp:127.0.0.1:0"]) as r:
        port = r.address("udp")[1]
        uri = "sip:ring@127.0.0.1"
        for i in range(2):  # the second would be a compiled answer, had the first taught
            [ok] = await udp_exchange(port, make_request("CANCEL", uri, call_id=f"stray{i}"))
            assert ok.code == 200
        client = await UDPClient.connect(port)
        try:
            invite = make_request("INVITE", uri, call_id="ringing", branch="z9hG4bK-ringing")
            assert [x.code for x in await client.exchange(invite, timeout=TIMEOUT)] == [180]
            cancel = make_request("CANCEL", uri, call_id="ringing", branch="z9hG4bK-ringing")
            got = await client.exchange(cancel, expect=2, timeout=TIMEOUT)
        finally:
            client.close()
        assert sorted((x.code, x.get("CSeq")) for x in got) == [
            (200, "1 CANCEL"), (487, "1 INVITE")], f"path: {STATUS}"
        await r.wait_for("CANCEL", count=3, timeout=TIMEOUT)
        entries = [e for e in r.journal if e.call_id == "ringing"]
        assert [(e.method, e.codes, e.kind) for e in entries] == [
            ("INVITE", [180, 487], "cancelled"), ("CANCEL", [200], "answered")]
        assert entries[0].outcome == "cancelled"


async def test_timer_g_retransmissions_are_in_the_journal_as_the_client_got_them() -> None:
    async with Responder(parse_scenario(SCENARIO, "<wire>"), ["udp:127.0.0.1:0"]) as r:
        port = r.address("udp")[1]
        client = await UDPClient.connect(port)
        try:
            invite = make_request("INVITE", "sip:answer@127.0.0.1", call_id="timer-g",
                                  branch="z9hG4bK-timer-g")
            # 180, the 200, then Timer G's copies at T1 and 3*T1 (no ACK yet).
            got = await client.exchange(invite, expect=4, timeout=TIMEOUT)
            assert [x.code for x in got] == [180, 200, 200, 200]
            tag = (got[1].get("To") or "").split("tag=")[1]
            await client.send(make_request("ACK", "sip:answer@127.0.0.1", call_id="timer-g",
                                           branch="z9hG4bK-timer-g-ack", to_tag=tag))
            await r.wait_for("ACK", timeout=TIMEOUT)
        finally:
            client.close()
        [entry] = [e for e in r.journal if e.method == "INVITE"]
        # The ACK stopped Timer G: whatever more the journal holds than the client read
        # was sent between the fourth datagram and the ACK, each one a copy.
        assert len(entry.responses) >= 4
        assert entry.retransmitted == [False, False] + [True] * (len(entry.responses) - 2)
        assert all(r == entry.responses[1] for r in entry.responses[2:])
        assert entry.codes == [180, 200]
        assert entry.response_times == sorted(entry.response_times)
        assert entry.time < entry.response_times[0]


async def test_a_retransmitted_request_is_journaled_each_time_it_is_answered() -> None:
    """Answered by the compiled path's memo (when built) or the engine: the wire has
    OPTIONS, 200, OPTIONS, 200, and so has the journal."""
    async with Responder(parse_scenario(SCENARIO, "<wire>"), ["udp:127.0.0.1:0"]) as r:
        port = r.address("udp")[1]
        client = await UDPClient.connect(port)
        options = make_request("OPTIONS", "sip:a@127.0.0.1", call_id="again",
                               branch="z9hG4bK-again")
        try:
            for _ in range(3):
                [ok] = await client.exchange(options, timeout=TIMEOUT)
                assert ok.code == 200
        finally:
            client.close()
        await r.wait_for("OPTIONS", count=3, timeout=TIMEOUT)
        entries = [e for e in r.journal if e.call_id == "again"]
        assert [(len(e.responses), e.codes) for e in entries] == [(1, [200])] * 3
