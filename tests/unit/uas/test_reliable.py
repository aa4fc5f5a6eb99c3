"""Reliable provisionals (RFC 3262), sans-I/O: the engine with a fake clock."""

from __future__ import annotations

import pytest

from sipresponder.journal.record import Journal
from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.outcome import Outcome
from sipresponder.uas.reliable import RAck, parse_rack
from tests.sipclient import Response, make_request, parse_response

UDP = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)
TCP = Source("tcp", ("127.0.0.1", 40001), ("127.0.0.1", 5060), 7)
T1 = 0.5
SCENARIO = f"""
[settings]
timer_t1 = {T1}
seed = 7

[[rule]]
name = "prack"
match = {{ user = "prack" }}
reliable = true
provisional = [180]
code = 200

[[rule]]
name = "twice"
match = {{ user = "twice" }}
reliable = true
provisional = [180, {{ code = 183, delay = 0 }}]
code = 200

[[rule]]
name = "three"
match = {{ user = "three" }}
reliable = true
provisional = [180, {{ code = 181, delay = 0.1 }}, {{ code = 182, delay = 0.1 }}]
code = 200

[[rule]]
name = "ring"
match = {{ user = "ring" }}
reliable = true
action = "provisional-only"
provisional = [180]

[[rule]]
name = "insists"
match = {{ user = "insists" }}
reliable = "require"
provisional = [180]
code = 200

[[rule]]
name = "plain"
match = {{ user = "plain" }}
provisional = [180]
code = 200

[default]
code = 200
"""
SUPPORTED = [("Supported", "100rel")]


def engine(text: str = SCENARIO) -> Engine:
    return Engine(parse_scenario(text, "<test>"))


def invite(user: str, headers: list[tuple[str, str]] = SUPPORTED, **kw: object) -> bytes:
    return make_request("INVITE", f"sip:{user}@127.0.0.1", headers=headers,
                        call_id=f"{user}-call", **kw)  # type: ignore[arg-type]


def prack(resp: Response, rseq: int | None = None, rack: str | None = None,
          branch: str | None = None) -> bytes:
    """The PRACK of ``resp`` (a reliable provisional): its To tag, RAck from RSeq."""
    to_tag = resp.get("To").split(";tag=")[1]
    if rack is None:
        rack = f"{rseq if rseq is not None else resp.get('RSeq')} 1 INVITE"
    return make_request("PRACK", "sip:sipresponder@127.0.0.1", call_id=resp.get("Call-ID"),
                        cseq=2, to_tag=to_tag, headers=[("RAck", rack)], branch=branch)


def codes(outcome: Outcome) -> list[int]:
    return [parse_response(s.data).code for s in outcome.sends]


def fire_until(e: Engine, until: float) -> list[tuple[float, Response]]:
    out = []
    while (deadline := e.next_deadline()) is not None and deadline <= until:
        out += [(deadline, parse_response(s.data)) for s in e.fire(deadline)]
    return out


def test_a_reliable_180_carries_require_and_rseq_and_the_200_waits_for_the_prack() -> None:
    e = engine()
    outcome = e.handle(invite("prack"), UDP, 0.0)
    [ringing] = [parse_response(s.data) for s in outcome.sends]
    assert ringing.code == 180
    assert ringing.get("Require") == "100rel"
    rseq = int(ringing.get("RSeq"))
    assert 1 <= rseq <= 2**31 - 1
    assert ringing.get("Contact")  # the PRACK's target
    # No PRACK yet: the final response is held (RFC 3262 3).
    fired = fire_until(e, 0.4)
    assert fired == []
    acked = e.handle(prack(ringing), UDP, 0.45)
    assert codes(acked) == [200] and acked.kind == "answered"
    assert acked.note == f"PRACK of the reliable provisional RSeq {rseq}"
    # The held 200 goes at the next fire, which is due now.
    assert e.next_deadline() == 0.45
    [(_, ok)] = [(t, r) for t, r in fire_until(e, 0.45)]
    assert ok.code == 200 and ok.get("CSeq") == "1 INVITE"
    assert ok.get("RSeq") is None and ok.get("Require") is None
    txn = outcome.transaction
    assert txn is not None
    assert [parse_response(r).code for r in txn.responses] == [180, 200]


def test_udp_retransmits_at_t1_doubling_until_the_prack() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("prack"), UDP, 0.0).sends]
    fired = fire_until(e, 7.6)
    # T1, 2*T1, 4*T1, 8*T1 after the last: 0.5, 1.5, 3.5, 7.5 (no T2 cap in RFC 3262).
    assert [t for t, _ in fired] == [0.5, 1.5, 3.5, 7.5]
    assert all(r.raw == ringing.raw for _, r in fired)
    assert e.counters["retransmissions"] == 4
    e.handle(prack(ringing), UDP, 8.0)
    after = fire_until(e, 100.0)
    # The 200 at once, then only Timer G's copies of it (no more 180s).
    assert after[0][1].code == 200
    assert all(r.code == 200 for _, r in after)


def test_the_journal_marks_the_retransmissions() -> None:
    e = engine()
    outcome = e.handle(invite("prack"), UDP, 0.0)
    fire_until(e, 1.5)
    txn = outcome.transaction
    assert txn is not None
    assert txn.retransmitted == [False, True, True]
    assert len(set(txn.responses)) == 1


def test_no_prack_for_64_t1_rejects_the_invite_with_504() -> None:
    e = engine()
    outcome = e.handle(invite("prack"), UDP, 0.0)
    fired = fire_until(e, 64 * T1)
    finals = [(t, r) for t, r in fired if r.code >= 200]
    assert [(t, r.code, r.reason) for t, r in finals] == [(64 * T1, 504, "No PRACK")]
    assert e.counters["prack_timeouts"] == 1
    # The held 200 is never sent, nor another 180.
    later = fire_until(e, 200.0)
    assert {r.code for _, r in later} <= {504}
    assert outcome.transaction is not None and outcome.transaction.final_sent
    assert len(e.transactions) == 0


def test_tcp_sends_the_180_once_and_still_waits_for_the_prack() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("prack"), TCP, 0.0).sends]
    assert ringing.get("RSeq")
    assert fire_until(e, 64 * T1 - 0.01) == []
    [(_, final)] = fire_until(e, 64 * T1)
    assert final.code == 504


def test_tcp_prack_releases_the_200() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("prack"), TCP, 0.0).sends]
    assert codes(e.handle(prack(ringing), TCP, 1.0)) == [200]
    assert [r.code for _, r in fire_until(e, 1.0)] == [200]


def test_a_second_reliable_provisional_waits_for_the_first_prack() -> None:
    e = engine()
    [first] = [parse_response(s.data) for s in e.handle(invite("twice"), UDP, 0.0).sends]
    assert first.code == 180
    rseq = int(first.get("RSeq"))
    # Only 180's retransmissions until its PRACK.
    assert {r.code for _, r in fire_until(e, 1.0)} == {180}
    e.handle(prack(first), UDP, 1.0)
    [(_, second)] = fire_until(e, 1.0)
    assert second.code == 183 and int(second.get("RSeq")) == rseq + 1
    # The 200 still waits, for the 183's PRACK; the 180's RAck now names nothing.
    assert codes(e.handle(prack(first, branch="z9hG4bK-other"), UDP, 1.1)) == [481]
    assert {r.code for _, r in fire_until(e, 1.5)} == {183}
    e.handle(prack(second, branch="z9hG4bK-second"), UDP, 2.0)
    assert [r.code for _, r in fire_until(e, 2.0)] == [200]


def test_a_prack_for_an_unknown_rseq_gets_481() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("prack"), UDP, 0.0).sends]
    wrong = e.handle(prack(ringing, rseq=int(ringing.get("RSeq")) + 1), UDP, 0.1)
    assert codes(wrong) == [481]
    assert wrong.note == "rejected: 481 Call/Transaction Does Not Exist"
    assert wrong.kind == "rejected"
    # Another dialog (a To tag not ours), another CSeq, another method: 481 too.
    for rack in ("{} 2 INVITE", "{} 1 UPDATE"):
        bad = prack(ringing, rack=rack.format(ringing.get("RSeq")), branch=f"z9hG4bK-{rack[3]}")
        assert codes(e.handle(bad, UDP, 0.2)) == [481]
    other = prack(ringing).replace(b";tag=" + ringing.get("To").split(";tag=")[1].encode(),
                                   b";tag=someone-else")
    assert codes(e.handle(other, UDP, 0.3)) == [481]
    # Still outstanding: retransmitted.
    assert {r.code for _, r in fire_until(e, 0.5)} == {180}


def test_a_prack_with_no_call_at_all_gets_481() -> None:
    e = engine()
    stray = make_request("PRACK", "sip:x@127.0.0.1", to_tag="t", headers=[("RAck", "1 1 INVITE")])
    assert codes(e.handle(stray, UDP, 0.0)) == [481]


@pytest.mark.parametrize("rack", [None, "1 INVITE", "x 1 INVITE", "1 1 IN(VITE",
                                  "99999999999 1 INVITE", "4294967296 1 INVITE"])
def test_a_malformed_rack_gets_400_naming_it(rack: str | None) -> None:
    e = engine()
    headers = [] if rack is None else [("RAck", rack)]
    data = make_request("PRACK", "sip:x@127.0.0.1", to_tag="t", headers=headers)
    outcome = e.handle(data, UDP, 0.0)
    [resp] = [parse_response(s.data) for s in outcome.sends]
    assert resp.code == 400
    assert resp.reason.startswith("Malformed RAck header field (")


def test_parse_rack() -> None:
    assert parse_rack(" 776656 1\t INVITE") == RAck(776656, 1, "INVITE")
    with pytest.raises(ValueError, match="no RAck"):
        parse_rack(None)


def test_a_retransmitted_prack_gets_its_200_again() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("prack"), UDP, 0.0).sends]
    data = prack(ringing)
    first = e.handle(data, UDP, 0.1)
    again = e.handle(data, UDP, 0.6)
    assert codes(again) == [200]
    assert [s.data for s in again.sends] == [s.data for s in first.sends]
    assert again.kind == "retransmission"


def test_without_100rel_in_the_request_the_rule_rings_as_before() -> None:
    e = engine()
    outcome = e.handle(invite("prack", headers=[]), UDP, 0.0)
    ringing, ok = [parse_response(s.data) for s in outcome.sends]
    assert ringing.code == 180 and ringing.get("RSeq") is None
    assert ringing.get("Require") is None
    assert ok.code == 200  # not held: no PRACK to wait for


def test_require_100rel_is_taken_by_a_reliable_rule() -> None:
    e = engine()
    outcome = e.handle(invite("prack", headers=[("Require", "100rel")]), UDP, 0.0)
    [resp] = [parse_response(s.data) for s in outcome.sends]
    assert resp.code == 180 and resp.get("RSeq")


def test_require_100rel_is_refused_with_420_by_a_rule_that_is_not_reliable() -> None:
    e = engine()
    for user in ("plain", "nobody"):
        [resp] = [parse_response(s.data) for s in
                  e.handle(invite(user, headers=[("Require", "100rel")]), UDP, 0.0).sends]
        assert (resp.code, resp.get("Unsupported")) == (420, "100rel")
    # Another unknown tag beside it: the 420 lists both, as in any scenario.
    [resp] = [parse_response(s.data) for s in
              e.handle(invite("prack", headers=[("Require", "100rel, foo")]), UDP, 0.0).sends]
    assert (resp.code, resp.get("Unsupported")) == (420, "100rel, foo")


def test_a_scenario_without_reliable_rules_keeps_prack_and_require_as_they_were() -> None:
    e = engine("[[rule]]\nmatch = { method = \"PRACK\" }\ncode = 200\n[default]\ncode = 200\n")
    stray = make_request("PRACK", "sip:x@127.0.0.1", to_tag="t", headers=[("RAck", "1 1 INVITE")])
    assert codes(e.handle(stray, UDP, 0.0)) == [200]
    [resp] = [parse_response(s.data) for s in
              e.handle(invite("x", headers=[("Require", "100rel")]), UDP, 0.0).sends]
    assert (resp.code, resp.get("Unsupported")) == (420, "100rel")


def test_provisional_only_rings_reliably_and_gives_up_with_504() -> None:
    e = engine()
    [ringing] = [parse_response(s.data) for s in e.handle(invite("ring"), UDP, 0.0).sends]
    assert ringing.get("RSeq")
    assert codes(e.handle(prack(ringing), UDP, 0.2)) == [200]
    assert fire_until(e, 100.0) == []  # rings on: nothing left to acknowledge
    e = engine()
    e.handle(invite("ring"), UDP, 0.0)
    assert [r.code for _, r in fire_until(e, 64 * T1) if r.code != 180] == [504]


def test_a_cancel_ends_the_wait() -> None:
    e = engine()
    data = invite("prack", branch="z9hG4bK-cancelme")
    assert codes(e.handle(data, UDP, 0.0)) == [180]
    cancel = make_request("CANCEL", "sip:prack@127.0.0.1", call_id="prack-call",
                          branch="z9hG4bK-cancelme")
    assert codes(e.handle(cancel, UDP, 0.2)) == [200, 487]
    assert {r.code for _, r in fire_until(e, 100.0)} <= {487}


def test_reliable_require_answers_421_to_an_invite_without_100rel() -> None:
    e = engine()
    outcome = e.handle(invite("insists", headers=[]), UDP, 0.0)
    [resp] = [parse_response(s.data) for s in outcome.sends]
    assert (resp.code, resp.reason, resp.get("Require")) == (421, "Extension Required", "100rel")
    assert outcome.note == "rejected: 421 Extension Required"
    for headers in (SUPPORTED, [("Require", "100rel")]):
        [ringing] = [parse_response(s.data) for s in
                     e.handle(invite("insists", headers=headers), UDP, 0.0).sends]
        assert ringing.code == 180 and ringing.get("RSeq")
    # Not an INVITE: nothing to make reliable, answered as before.
    options = make_request("OPTIONS", "sip:insists@127.0.0.1")
    assert codes(e.handle(options, UDP, 0.0)) == [180, 200]


@pytest.mark.parametrize(("text", "error"), [
    ("reliable = true\ncode = 200", "sends no provisional response to make reliable"),
    ('reliable = "require"\ncode = 486', "sends no provisional response to make reliable"),
    ("reliable = 1\nprovisional = [180]\ncode = 200", 'must be true, false or "require"'),
    ('reliable = "yes"\nprovisional = [180]\ncode = 200', 'must be true, false or "require"'),
])
def test_reliable_is_refused_where_it_means_nothing(text: str, error: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(f"[[rule]]\n{text}\n", "<test>")
    message = str(caught.value)
    assert "field 'reliable'" in message and error in message, message


def test_the_rseq_comes_from_the_seeded_generator() -> None:
    first = engine().handle(invite("prack"), UDP, 0.0).sends[0].data
    again = engine().handle(invite("prack"), UDP, 0.0).sends[0].data
    assert parse_response(first).get("RSeq") == parse_response(again).get("RSeq")


def test_the_journal_shows_the_180s_the_prack_with_its_200_and_then_the_200() -> None:
    journal = Journal()
    e = engine()
    invite_outcome = e.handle(invite("prack"), UDP, 0.0)
    journal.record(invite_outcome)
    ringing = parse_response(invite_outcome.sends[0].data)
    fire_until(e, 0.5)
    journal.record(e.handle(prack(ringing), UDP, 0.6))
    fire_until(e, 0.6)
    invite_entry, prack_entry = list(journal)
    assert [parse_response(r).code for r in invite_entry.responses] == [180, 180, 200]
    assert invite_entry.retransmitted == [False, True, False]
    assert prack_entry.method == "PRACK"
    assert [parse_response(r).code for r in prack_entry.responses] == [200]
    assert prack_entry.outcome.startswith("PRACK of the reliable provisional RSeq")
    # The wire's order: the INVITE's 200 left after the PRACK's.
    assert invite_entry.response_times[-1] > prack_entry.response_times[-1]


def test_held_steps_keep_their_order_when_a_later_timer_is_already_due() -> None:
    e = engine()
    [first] = [parse_response(s.data) for s in e.handle(invite("three"), UDP, 0.0).sends]
    assert [r.code for _, r in fire_until(e, 0.1)] == []  # the 181 waits for the PRACK
    # The PRACK comes at 0.3, before the 182's timer (due at 0.2) has fired.
    assert codes(e.handle(prack(first), UDP, 0.3)) == [200]
    [(_, second)] = fire_until(e, 0.3)
    assert second.code == 181  # and the 182 waits behind it
    e.handle(prack(second, branch="z9hG4bK-181"), UDP, 0.4)
    assert [r.code for _, r in fire_until(e, 0.4)] == [182]


def test_a_supported_that_does_not_split_offers_nothing() -> None:
    e = engine()
    outcome = e.handle(invite("prack", headers=[("Supported", '"100rel, <x')]), UDP, 0.0)
    assert e.counters["internal_errors"] == 0
    assert codes(outcome) == [180, 200]  # rung unreliably, as for no 100rel at all
