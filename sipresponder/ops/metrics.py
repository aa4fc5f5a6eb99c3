"""The Prometheus view of a running responder, built at scrape time.

The hot path only bumps ``Engine.counters`` (a Counter) and the server's
LatencyHistogram (a bisect and an increment); prometheus-client's own metric
objects would take a lock per request. This collector turns both into metric
families when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..testing.api import Responder
from ..transport.latency import LatencyHistogram
from ..uas.fast import ENGINE_PREFIX

COMPILED = "compiled"
ENGINE = "engine"
LEARNED = "learned"  # the compiled path's one reason: the table had learned the line


def path_counts(counters: Mapping[str, float]) -> dict[str, Any]:
    """Where the requests went: ``{"compiled": N, "engine": N, "reasons": {REASON: N}}``.
    The engine counts each request it handles under its reason (uas/fast.py); the
    compiled table counts only into ``request:METHOD``: what the engine did not count
    there, the table answered."""
    total = 0.0
    reasons: dict[str, int] = {}
    for key, value in counters.items():
        if key.startswith("request:"):
            total += value
        elif key.startswith(ENGINE_PREFIX):
            reasons[key[len(ENGINE_PREFIX):]] = int(value)
    engine = sum(reasons.values())
    ordered = dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    return {COMPILED: max(0, int(total) - engine), ENGINE: engine, "reasons": ordered}


def path_summary(paths: Mapping[str, Any]) -> str:
    """One line for people, e.g. ``compiled 91 %, engine 9 %: sdp-answer 6 %, digest
    3 %`` (``no requests yet`` before the first)."""
    total = paths[COMPILED] + paths[ENGINE]
    if not total:
        return "no requests yet"

    def share(n: int) -> str:
        percent = 100 * n / total
        # 0 % and 100 % only when exact: a rare reason must not read as none.
        if 1 <= percent <= 99 or percent in (0, 100):
            return f"{round(percent)} %"
        return f"{min(max(percent, 0.1), 99.9):.1f} %"

    text = f"{COMPILED} {share(paths[COMPILED])}, {ENGINE} {share(paths[ENGINE])}"
    reasons = [f"{reason} {share(n)}" for reason, n in paths["reasons"].items() if n]
    return f"{text}: {', '.join(reasons)}" if reasons else text


def counter_metrics(counters: dict[str, int]) -> list[Metric]:
    """Engine counters as four families: ``request:METHOD`` keys, ``response:CODE``
    keys, where each request went (``path:engine:REASON`` keys, and the compiled path
    as the rest), and every other key an event (drops, limits, errors,
    retransmissions)."""
    requests = CounterMetricFamily("sipresponder_requests", "SIP requests received",
                                   labels=["method"])
    paths = CounterMetricFamily(
        "sipresponder_requests_by_path",
        "SIP requests by the path that handled them: compiled (the C table), or engine "
        "(Python) with the reason the table did not answer", labels=["path", "reason"])
    responses = CounterMetricFamily("sipresponder_responses", "SIP responses sent",
                                    labels=["code"])
    events = CounterMetricFamily(
        "sipresponder_events",
        "Drops, limits, parse/internal errors and retransmissions, by reason",
        labels=["reason"])
    for key, value in sorted(counters.items()):
        kind, sep, label = key.partition(":")
        if sep and kind == "request":
            requests.add_metric([label], value)
        elif sep and kind == "response":
            responses.add_metric([label], value)
        elif not key.startswith(ENGINE_PREFIX):
            events.add_metric([key], value)
    split = path_counts(counters)
    paths.add_metric([COMPILED, LEARNED], split[COMPILED])
    for reason, value in split["reasons"].items():
        paths.add_metric([ENGINE, reason], value)
    return [requests, paths, responses, events]


def latency_metric(hist: LatencyHistogram) -> HistogramMetricFamily:
    """The server's processing-time histogram in Prometheus exposition."""
    return HistogramMetricFamily(
        "sipresponder_processing_seconds",
        "Time from a message's arrival to its responses being handed to the socket",
        buckets=hist.cumulative(), sum_value=hist.total)


class ResponderCollector:
    """Everything /metrics shows of one Responder, read when scraped."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def collect(self) -> Iterable[Metric]:
        server = self.responder.server
        if server is None:  # stopped: nothing is counted any more
            return []
        journal = GaugeMetricFamily("sipresponder_journal_entries",
                                    "Requests currently held in the journal")
        journal.add_metric([], len(self.responder.journal))
        return [*counter_metrics(dict(server.engine.counters)), journal,
                latency_metric(server.latency)]


def responder_registry(responder: Responder) -> CollectorRegistry:
    """A registry holding only ``responder``'s metrics (not the process-wide default)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ResponderCollector(responder))
    return registry
