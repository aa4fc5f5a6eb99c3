"""The Prometheus view of a running responder, built at scrape time.

The hot path only bumps ``Engine.counters`` (a Counter) and the server's
LatencyHistogram (a bisect and an increment); prometheus-client's own metric
objects would take a lock per request. This collector turns both into metric
families when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..testing.api import Responder
from ..transport.latency import LatencyHistogram


def counter_metrics(counters: dict[str, int]) -> list[Metric]:
    """Engine counters as three families: ``request:METHOD`` keys, ``response:CODE``
    keys, and every other key an event (drops, limits, errors, retransmissions)."""
    requests = CounterMetricFamily("sipresponder_requests", "SIP requests received",
                                   labels=["method"])
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
        else:
            events.add_metric([key], value)
    return [requests, responses, events]


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
