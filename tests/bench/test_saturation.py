"""bench/saturation.py: the rates the saturation search tries, the verdict on a step,
the split of a rate over SIPp clients, and what bounded the result."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "saturation.py"
_SPEC = importlib.util.spec_from_file_location("bench_saturation", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
saturation = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_saturation"] = saturation  # dataclasses look their module up
_SPEC.loader.exec_module(saturation)


def search_against(capacity: float, search: object) -> tuple[float | None, list[float]]:
    """Run the search against a server that sustains exactly ``capacity`` calls/s:
    (the highest sustained rate, every rate tried)."""
    sustained: list[float] = []
    failed: list[float] = []
    tried: list[float] = []
    while (rate := search.next_rate(sustained, failed)) is not None:  # type: ignore[attr-defined]
        tried.append(rate)
        (sustained if rate <= capacity else failed).append(rate)
    return max(sustained, default=None), tried


@pytest.mark.parametrize("capacity", [150, 1999, 2000, 5400, 18_000, 93_000, 250_000])
def test_search_ends_within_precision_below_the_capacity(capacity: float) -> None:
    search = saturation.Search(start=2000, factor=2, precision=0.05, max_steps=16)
    best, tried = search_against(capacity, search)
    assert best is not None
    assert capacity / 1.05 <= best <= capacity
    assert len(tried) <= 16
    assert len(set(tried)) == len(tried)  # never the same rate twice


def test_search_is_bounded_by_max_steps() -> None:
    search = saturation.Search(start=2000, max_steps=5)
    best, tried = search_against(10**9, search)  # a server nothing saturates
    assert tried == [2000, 4000, 8000, 16000, 32000]
    assert best == 32000


def test_search_gives_up_below_the_floor() -> None:
    search = saturation.Search(start=2000, floor=100)
    best, tried = search_against(50, search)
    assert best is None
    assert tried == [2000, 1000, 500, 250, 125]


def test_search_goes_up_then_bisects_geometrically() -> None:
    search = saturation.Search(start=2000, factor=2, precision=0.05)
    assert search.next_rate([], []) == 2000
    assert search.next_rate([2000], []) == 4000
    assert search.next_rate([2000, 4000], [8000]) == 5657  # sqrt(4000 * 8000)
    assert search.next_rate([2000, 4000, 5657], [8000]) == 6727
    assert search.next_rate([4000], [4100]) is None  # within 5 %


def test_search_ignores_failures_below_the_best() -> None:
    # noise: a step failed at a rate lower than one that was sustained later
    search = saturation.Search(start=2000, factor=2)
    assert search.next_rate([2000, 4000], [3000]) == 8000


@pytest.mark.parametrize("kwargs", [
    {"start": 50, "floor": 100}, {"floor": 0}, {"factor": 1}, {"precision": 0},
    {"max_steps": 0},
])
def test_search_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        saturation.Search(**kwargs)


def step(**changes: object) -> object:
    figures: dict[str, object] = {"offered": 10_000.0, "answered": 9_900.0, "failed": 0,
                                  "retransmissions": 0, "late_p50_ms": 0.4, "probe_lost": 0}
    figures.update(changes)
    return saturation.Step(**figures)


def test_verdict_of_a_clean_step_is_sustained() -> None:
    assert saturation.verdict(step(), saturation.Criteria()) == []


@pytest.mark.parametrize(("changes", "words"), [
    ({"failed": 3}, "3 failed calls"),
    ({"retransmissions": 7}, "7 retransmissions"),
    ({"answered": 9_000.0}, "answered 9,000/s of 10,000/s"),
    ({"late_p50_ms": 80.0}, "standing queue"),
    ({"probe_lost": 2}, "2 probe requests unanswered"),
    ({"late_p50_ms": None}, "no answer to time"),
])
def test_verdict_names_each_reason(changes: dict[str, object], words: str) -> None:
    reasons = saturation.verdict(step(**changes), saturation.Criteria())
    assert len(reasons) == 1
    assert words in reasons[0]


def test_verdict_lists_every_reason() -> None:
    reasons = saturation.verdict(step(failed=1, retransmissions=1, answered=1.0),
                                 saturation.Criteria())
    assert len(reasons) == 3


def test_criteria_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="min_pace"):
        saturation.Criteria(min_pace=1.5)
    with pytest.raises(ValueError, match="max_queue_ms"):
        saturation.Criteria(max_queue_ms=0)


def test_split_rate_adds_up() -> None:
    assert saturation.split_rate(10_001, 3) == [3334, 3334, 3333]
    assert saturation.split_rate(5657.4, 1) == [5657]
    assert saturation.split_rate(1, 4) == [1, 1, 1, 1]  # each client offers something
    with pytest.raises(ValueError):
        saturation.split_rate(100, 0)


@pytest.mark.parametrize(("figures", "expected"), [
    ((0.98, 1, 0.3, 1, 1.4, 2), "server"),
    ((0.3, 1, 0.95, 1, 1.4, 2), "clients"),
    ((0.97, 1, 0.95, 1, 1.95, 2), "machine"),
    ((0.4, 1, 0.2, 1, 1.99, 2), "machine"),  # other work took the CPUs
    ((0.4, 1, 0.2, 1, 0.7, 2), "unclear"),
    ((3.0, 4, 1.0, 4, 4.2, 16), "unclear"),  # 4 workers, each 75 % busy
    ((3.6, 4, 1.0, 4, 4.8, 16), "server"),
])
def test_bound(figures: tuple[float, int, float, int, float, int], expected: str) -> None:
    assert saturation.bound(*figures) == expected
