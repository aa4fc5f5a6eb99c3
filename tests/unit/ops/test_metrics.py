"""ops/metrics.py: the engine's counters as Prometheus families, and where each request
went (the compiled path, or the engine and why)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from sipresponder.ops.mergedmetrics import Fixed, summed
from sipresponder.ops.metrics import counter_metrics


def exposition(counters: dict[str, int]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(counter_metrics(counters)))
    return generate_latest(registry).decode()


def test_requests_by_path_is_one_family_with_the_compiled_rest() -> None:
    text = exposition({"request:OPTIONS": 90, "request:INVITE": 10, "response:200": 100,
                       "path:engine:sdp-answer": 6, "path:engine:not-learned": 4,
                       "dropped": 1})
    lines = text.splitlines()
    assert "# TYPE sipresponder_requests_by_path_total counter" in lines
    assert 'sipresponder_requests_by_path_total{path="compiled",reason="learned"} 90.0' in lines
    assert ('sipresponder_requests_by_path_total{path="engine",reason="sdp-answer"} 6.0'
            in lines)
    assert ('sipresponder_requests_by_path_total{path="engine",reason="not-learned"} 4.0'
            in lines)
    # The reasons are no events; the events stay what they were.
    assert not any("path:engine" in line for line in lines)
    assert 'sipresponder_events_total{reason="dropped"} 1.0' in lines


def test_under_workers_the_split_adds_up_like_every_other_sample() -> None:
    one = exposition({"request:OPTIONS": 10, "path:engine:not-learned": 1})
    two = exposition({"request:INVITE": 3, "path:engine:sdp-answer": 3,
                      "path:engine:not-learned": 1})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed(summed([one, two])))
    lines = generate_latest(registry).decode().splitlines()
    assert 'sipresponder_requests_by_path_total{path="compiled",reason="learned"} 9.0' in lines
    assert ('sipresponder_requests_by_path_total{path="engine",reason="not-learned"} 2.0'
            in lines)
    assert ('sipresponder_requests_by_path_total{path="engine",reason="sdp-answer"} 3.0'
            in lines)
