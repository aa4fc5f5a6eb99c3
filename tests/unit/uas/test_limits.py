"""Rate limit, merged requests and limit logging (uas/limits.py), with a fake clock."""

from __future__ import annotations

import logging

import pytest

from sipresponder.sip.message import Request, parse_request
from sipresponder.uas.limits import DROP, REJECT, LimitLog, MergedRequests, RateLimiter
from tests.sipclient import make_request


def parse(data: bytes) -> Request:
    return parse_request(data, datagram=True)


def test_token_bucket_burst_then_refill() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b", 0.0)  # per source
    assert not limiter.allow("a", 0.25)  # half a token refilled
    assert limiter.allow("a", 0.5)  # now a whole one
    assert not limiter.allow("a", 0.5)
    assert [limiter.allow("a", 10.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_default_burst_is_the_rate() -> None:
    assert RateLimiter(rate=5.0).burst == 5.0
    assert RateLimiter(rate=0.5).burst == 1.0


def test_verdict_drop_action() -> None:
    limiter = RateLimiter(rate=1.0, action=DROP)
    assert limiter.verdict("a", 0.0) is None
    assert limiter.verdict("a", 0.1) == DROP
    assert limiter.verdict("a", 5.0) is None


def test_verdict_503_at_most_once_a_second() -> None:
    limiter = RateLimiter(rate=1.0, action=REJECT)
    assert limiter.verdict("a", 0.0) is None
    assert limiter.verdict("a", 0.1) == REJECT
    assert limiter.verdict("a", 0.2) == DROP  # the 503s must not become a flood
    assert limiter.verdict("a", 0.5) == DROP
    assert limiter.verdict("a", 1.0) is None  # refilled
    assert limiter.verdict("a", 1.05) == DROP  # < 1 s since the last 503
    assert limiter.verdict("a", 1.15) == REJECT


def test_sources_are_bounded_idle_first() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_sources=4)
    for i in range(4):
        limiter.allow(f"s{i}", 0.0)
    limiter.allow("s0", 10.0)  # s0 busy; the others refilled long ago
    limiter.allow("new", 10.0)
    assert len(limiter) <= 4
    assert not limiter.allow("s0", 10.0)  # kept: its bucket is still empty


def merged_pair(branch: str, **kw: object) -> Request:
    return parse(make_request("MESSAGE", "sip:a@x", call_id="m@x", branch=branch, **kw))  # type: ignore[arg-type]


def test_482_for_same_request_on_another_branch() -> None:
    m = MergedRequests(ttl=32.0)
    first = merged_pair("z9hG4bK-1")
    assert not m.is_merged(first, "z9hG4bK-1", 0.0)
    assert not m.is_merged(first, "z9hG4bK-1", 1.0)  # a retransmission
    assert m.is_merged(merged_pair("z9hG4bK-2"), "z9hG4bK-2", 2.0)
    assert not m.is_merged(merged_pair("z9hG4bK-3", cseq=2), "z9hG4bK-3", 2.0)  # new CSeq


def test_in_dialog_and_cancel_are_never_merged() -> None:
    m = MergedRequests(ttl=32.0)
    m.is_merged(merged_pair("z9hG4bK-1"), "z9hG4bK-1", 0.0)
    assert not m.is_merged(merged_pair("z9hG4bK-2", to_tag="t"), "z9hG4bK-2", 1.0)
    cancel = parse(make_request("CANCEL", "sip:a@x", call_id="m@x", branch="z9hG4bK-4"))
    assert not m.is_merged(cancel, "z9hG4bK-4", 1.0)


def test_merged_memory_expires_and_is_bounded() -> None:
    m = MergedRequests(ttl=10.0, max_entries=3)
    m.is_merged(merged_pair("z9hG4bK-1"), "z9hG4bK-1", 0.0)
    assert not m.is_merged(merged_pair("z9hG4bK-2"), "z9hG4bK-2", 10.0)  # forgotten
    for i in range(5):
        m.is_merged(parse(make_request("MESSAGE", "sip:a@x")), f"b{i}", 11.0)
        assert len(m) <= 3


def test_limit_log_one_warning_a_second_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([0.0, 0.2, 0.5, 1.1, 1.2])
    limit_log = LimitLog(clock=lambda: next(clock))
    with caplog.at_level(logging.WARNING, logger="sipresponder"):
        for kind in ("rate", "rate", "other", "rate", "rate"):
            limit_log.hit(kind, "hit %s", kind)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "hit rate"), (logging.WARNING, "hit other"),
        (logging.WARNING, "hit rate")]
    assert all(getattr(r, "limit", None) in ("rate", "other") for r in caplog.records)


def test_limit_log_throttled_hits_still_at_info(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([0.0, 0.1])
    limit_log = LimitLog(clock=lambda: next(clock))
    # the repeats are per-request lines: on "sipresponder.requests", off by default
    with caplog.at_level(logging.INFO, logger="sipresponder.requests"):
        limit_log.hit("k", "one")
        limit_log.hit("k", "two")
    assert [(r.name, r.levelno) for r in caplog.records] == [
        ("sipresponder", logging.WARNING), ("sipresponder.requests", logging.INFO)]
