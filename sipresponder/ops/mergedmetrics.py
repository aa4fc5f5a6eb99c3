"""The workers' metrics added up, for the gatherer of ``--workers`` (ops/gatherer.py):
Prometheus expositions sample by sample, and the console's JSON readings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from .metrics import COMPILED, ENGINE


def summed(texts: Iterable[str]) -> list[Metric]:
    """Prometheus expositions added up sample by sample (same name, same labels)."""
    families: dict[str, Metric] = {}
    totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                totals[family.name] = {}
            values = totals[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                values[key] = values.get(key, 0.0) + sample.value
    for name, metric in families.items():
        for (sample_name, labels), value in totals[name].items():
            metric.add_sample(sample_name, dict(labels), value)
    return list(families.values())


class Fixed:
    """A collector of metrics already gathered."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def summed_paths(found: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``metrics.path_counts`` of several workers, added up."""
    reasons: dict[str, int] = {}
    compiled = 0
    for paths in found:
        compiled += paths.get(COMPILED, 0)
        for reason, value in paths.get("reasons", {}).items():
            reasons[reason] = reasons.get(reason, 0) + value
    ordered = dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))
    return {COMPILED: compiled, ENGINE: sum(reasons.values()), "reasons": ordered}


def summed_metrics(found: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several workers' /api/metrics.json added up (the histogram bucket by bucket:
    every worker has the same bounds)."""
    requests: dict[str, int] = {}
    responses: dict[str, int] = {}
    buckets: list[list[Any]] = []
    total, count = 0.0, 0
    paths = []
    for data in found:
        for mine, theirs in ((requests, data.get("requests", {})),
                             (responses, data.get("responses", {}))):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        latency = data.get("latency", {})
        for i, (bound, running) in enumerate(latency.get("buckets", ())):
            if i < len(buckets):
                buckets[i][1] += running
            else:
                buckets.append([bound, running])
        total += latency.get("sum", 0.0)
        count += latency.get("count", 0)
        paths.append(data.get("paths", {}))
    return {"requests": dict(sorted(requests.items())),
            "responses": dict(sorted(responses.items())), "paths": summed_paths(paths),
            "latency": {"buckets": buckets, "sum": total, "count": count}}

