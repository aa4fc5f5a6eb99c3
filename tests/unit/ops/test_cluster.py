"""The gatherer's pure parts (ops/cluster.py, ops/gatherer.py, ops/mergedmetrics.py): entries and metrics across the wire."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sipresponder.journal.record import JournalEntry, NearMiss, Query
from sipresponder.ops.admin import entry_json
from sipresponder.ops.gatherer import (
    ClusterFailed,
    MergedJournal,
    WorkerDown,
    entry_from_json,
    failures,
)
from sipresponder.ops.mergedmetrics import Fixed, summed, summed_metrics
from sipresponder.ops.metrics import counter_metrics, latency_metric
from sipresponder.transport.latency import LatencyHistogram

ENTRY = JournalEntry(
    7, 12.5, "udp", ("127.0.0.1", 40000), b"OPTIONS sip:a@h SIP/2.0\r\n\xe9\r\n",
    "OPTIONS", "sip:a@h", [("Via", "SIP/2.0/UDP h"), ("Call-ID", "x@y")], "rule 'a' (#1)",
    "rule 'a' (#1)", NearMiss("b", ["method in ['INVITE']"]),
    [b"SIP/2.0 200 OK\r\n\r\n"], datetime(2026, 12, 1, 8, 0, 1, 123456, tzinfo=UTC))


def test_an_entry_crosses_the_channel_unchanged_but_for_its_numbers() -> None:
    merged = entry_from_json(entry_json(ENTRY), seq=41, worker=3)
    shown = entry_json(merged)
    assert shown == {**entry_json(ENTRY), "seq": 41, "worker": 3, "worker_seq": 7}
    assert merged.raw == ENTRY.raw and merged.received_at == ENTRY.received_at
    assert merged.header("call-id") == "x@y" and merged.codes == [200]


def test_retransmissions_stay_marked_across_the_channel() -> None:
    """Under --workers the console reads the merged copy: a Timer G copy of the 200
    must stay a retransmission there (the marks were dropped before)."""
    again = replace(ENTRY, responses=[*ENTRY.responses] * 2, retransmitted=[False, True],
                    response_times=[12.500001, 13.000001])
    shown = entry_json(again)
    assert shown["retransmitted"] == [False, True] and shown["codes"] == [200]
    merged = entry_from_json(shown, seq=1, worker=0)
    assert merged.retransmitted == [False, True] and merged.codes == [200]
    assert merged.response_times == [12.500001, 13.000001]


def test_the_merged_journal_is_bounded_and_queried_by_its_own_numbers() -> None:
    journal = MergedJournal(3)
    seen: list[int] = []
    journal.listeners.append(lambda e: seen.append(e.seq))
    journal.add(entry_from_json(entry_json(ENTRY), seq=n, worker=n % 2) for n in range(1, 6))
    assert [e.seq for e in journal] == [3, 4, 5] and seen == [1, 2, 3, 4, 5]
    assert [e.seq for e in Query.build(since=3).select(journal)] == [4, 5]


def exposition(counters: dict[str, int], latencies: list[float]) -> str:
    """A worker's /metrics text, made the way ops/metrics.py makes it."""
    hist = LatencyHistogram()
    for seconds in latencies:
        hist.observe(seconds)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed([*counter_metrics(counters), latency_metric(hist)]))
    return generate_latest(registry).decode()


def test_metrics_add_up_sample_by_sample() -> None:
    one = exposition({"request:OPTIONS": 3, "response:200": 3}, [0.0001, 0.002])
    two = exposition({"request:INVITE": 1, "response:486": 1, "dropped": 2}, [0.0001])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(summed([one, two, one])))
    total = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for family in text_string_to_metric_families(generate_latest(registry).decode())
             for s in family.samples}
    assert total[("sipresponder_requests_total", (("method", "OPTIONS"),))] == 6
    assert total[("sipresponder_requests_total", (("method", "INVITE"),))] == 1
    assert total[("sipresponder_responses_total", (("code", "486"),))] == 1
    assert total[("sipresponder_events_total", (("reason", "dropped"),))] == 2
    assert total[("sipresponder_processing_seconds_count", ())] == 5
    assert total[("sipresponder_processing_seconds_bucket", (("le", "+Inf"),))] == 5
    assert total[("sipresponder_processing_seconds_sum", ())] == pytest.approx(2 * 0.0021 + 0.0001)


def test_failures_name_the_worker_and_why() -> None:
    failed = failures({0: (200, {}), 1: WorkerDown("worker 1 is not answering (timeout)"),
                       2: (400, {"error": "bad rule"}), 3: (502, "gateway")})
    assert failed == {1: "worker 1 is not answering (timeout)",
                      2: "worker 2: HTTP 400: bad rule", 3: "worker 3: HTTP 502: gateway"}
    assert str(ClusterFailed("not reset", {2: failed[2], 1: failed[1]})) == (
        "not reset: worker 1 is not answering (timeout); worker 2: HTTP 400: bad rule")


def test_a_later_response_updates_the_merged_copy_and_tells_its_listeners() -> None:
    journal = MergedJournal(2)
    updated: list[tuple[int, list[int]]] = []
    journal.update_listeners.append(lambda e: updated.append((e.seq, e.codes)))
    journal.add(entry_from_json(entry_json(ENTRY), seq=n, worker=n % 2) for n in (1, 2))
    later = {**entry_json(ENTRY), "responses": ["SIP/2.0 180 Ringing\r\n\r\n",
                                                "SIP/2.0 200 OK\r\n\r\n"],
             "response_times": [12.5, 13.0]}
    journal.update(0, later)  # worker 0's entry 7: the merged entry 2
    assert updated == [(2, [180, 200])]
    assert [e.codes for e in journal] == [[200], [180, 200]]
    # An entry out of the ring (or merged before a gatherer restart) is not updated.
    journal.add([entry_from_json(entry_json(ENTRY), seq=3, worker=2)])
    journal.update(1, later)
    journal.clear()
    journal.update(2, later)
    assert updated == [(2, [180, 200])]


def test_console_metrics_add_up_every_worker() -> None:
    one = {"requests": {"OPTIONS": 3}, "responses": {"200": 3},
           "paths": {"compiled": 2, "engine": 1, "reasons": {"not-learned": 1}},
           "latency": {"buckets": [[0.001, 2], [None, 3]], "sum": 0.004, "count": 3}}
    two = {"requests": {"OPTIONS": 1, "INVITE": 2}, "responses": {"200": 3},
           "paths": {"compiled": 0, "engine": 3,
                     "reasons": {"sdp-answer": 2, "not-learned": 1}},
           "latency": {"buckets": [[0.001, 0], [None, 3]], "sum": 0.03, "count": 3}}
    assert summed_metrics([one, two]) == {
        "requests": {"INVITE": 2, "OPTIONS": 4}, "responses": {"200": 6},
        "paths": {"compiled": 2, "engine": 4,
                  "reasons": {"not-learned": 2, "sdp-answer": 2}},
        "latency": {"buckets": [[0.001, 2], [None, 6]], "sum": pytest.approx(0.034),
                    "count": 6}}
    assert summed_metrics([])["paths"] == {"compiled": 0, "engine": 0, "reasons": {}}


def test_a_sent_request_stays_sent_across_the_channel() -> None:
    """--workers: the merged journal is a copy through entry_json; a request the
    far end sent must stay one there (direction, kind, the client's codes)."""
    sent = replace(ENTRY, rule=None, outcome="rule 'a' (#1), step 1", near_miss=None,
                   direction="sent")
    shown = entry_json(sent)
    assert (shown["direction"], shown["kind"]) == ("sent", "sent")
    merged = entry_from_json(shown, seq=1, worker=0)
    assert merged.direction == "sent" and merged.kind == "sent"
    assert Query.build(direction="sent", code=200).select([merged]) == [merged]
    older = {k: v for k, v in entry_json(ENTRY).items() if k != "direction"}
    assert entry_from_json(older, seq=2, worker=0).direction == "received"


def test_an_update_keeps_the_retransmission_marks() -> None:
    """A repeated answer that reaches the merged copy later must not count twice."""
    journal = MergedJournal(2)
    journal.add([entry_from_json(entry_json(ENTRY), seq=1, worker=0)])
    later = {**entry_json(ENTRY), "responses": ["SIP/2.0 200 OK\r\n\r\n"] * 2,
             "response_times": [12.5, 13.0], "retransmitted": [False, True]}
    journal.update(0, later)
    assert [e.codes for e in journal] == [[200]]
