"""The saturation search of bench/run.py: which open-loop rates to try, and when a rate
counts as sustained. Pure functions; bench/run.py runs the SIPp steps.

A closed loop (``-users 50``) measures how fast client and server are together: the
queue stays in SIPp. Saturation asks what one server process sustains when the clients
offer more than it can take: SIPp offers a fixed rate (``-r R -rp 1000``, open loop),
and a step at rate R is *sustained* when every call succeeded (no failure, no
timeout), nothing was retransmitted (no answer came 500 ms late), the answers kept
pace with the offer, and the latency probe (its own socket, a few hundred requests a
second) saw no standing queue in the second half of the step. A server that falls
behind still answers every request of a short step from its socket buffer (4 MiB is
some 8,000 requests) before SIPp's timeouts fire, which is why 0 failures alone do
not count: the pace and the probe do. The probe's median, not its p99, decides: a
pause (a garbage collection) is a spike that a median ignores, a server short of
capacity is a queue that grows for the rest of the step.

The search doubles the rate from ``start`` until a step fails (or halves it until one
passes), then bisects between the highest sustained rate and the lowest failed one
(geometric midpoint) until they are within ``precision`` of each other, at most
``max_steps`` steps in all: bounded in time whatever the server does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Criteria:
    """What a step must show to count as sustained."""

    # answered calls/s over the offered rate; SIPp's start-up (some 50-70 ms before its
    # first call) counts in its elapsed time, 2 % of a 3 s step
    min_pace: float = 0.95
    max_queue_ms: float = 10.0  # the probe's median response time, second half of the step

    def __post_init__(self) -> None:
        if not 0 < self.min_pace <= 1:
            raise ValueError(f"min_pace must be in (0, 1], not {self.min_pace}")
        if self.max_queue_ms <= 0:
            raise ValueError(f"max_queue_ms must be positive, not {self.max_queue_ms}")


@dataclass(frozen=True)
class Step:
    """What one open-loop step measured (the figures the verdict needs)."""

    offered: float  # calls/s, all clients together
    answered: float  # successful calls/s, all clients together
    failed: int
    retransmissions: int
    late_p50_ms: float | None  # the probe's median over the second half of the step
    probe_lost: int


def verdict(step: Step, criteria: Criteria) -> list[str]:
    """Why the step does not count as sustained; empty when it does."""
    reasons = []
    if step.failed:
        reasons.append(f"{step.failed} failed calls")
    if step.retransmissions:
        reasons.append(f"{step.retransmissions} retransmissions (an answer took over 500 ms)")
    if step.answered < criteria.min_pace * step.offered:
        reasons.append(f"answered {step.answered:,.0f}/s of {step.offered:,.0f}/s offered "
                       f"(under {criteria.min_pace:.0%})")
    if step.probe_lost:
        reasons.append(f"{step.probe_lost} probe requests unanswered")
    if step.late_p50_ms is None:
        if not step.probe_lost:
            reasons.append("the probe got no answer to time")
    elif step.late_p50_ms > criteria.max_queue_ms:
        reasons.append(f"probe median {step.late_p50_ms:.1f} ms > {criteria.max_queue_ms:g} ms "
                       "late in the step (a standing queue)")
    return reasons


@dataclass(frozen=True)
class Search:
    """The rates to try: up (or down) by ``factor`` until the outcome changes, then
    bisection to ``precision``."""

    start: float = 2000
    factor: float = 2.0
    precision: float = 0.05  # stop when lowest failed / highest sustained <= 1 + this
    floor: float = 100  # below this, give up: the server sustains nothing worth measuring
    max_steps: int = 12

    def __post_init__(self) -> None:
        if self.start < self.floor or self.floor <= 0:
            raise ValueError(f"start ({self.start}) must be at least floor ({self.floor}) > 0")
        if self.factor <= 1 or self.precision <= 0 or self.max_steps < 1:
            raise ValueError("factor must be > 1, precision > 0 and max_steps >= 1")

    def next_rate(self, sustained: list[float], failed: list[float]) -> float | None:
        """The next rate to offer after these outcomes, or None when the search is done."""
        if len(sustained) + len(failed) >= self.max_steps:
            return None
        best = max(sustained, default=None)
        worst = min((r for r in failed if best is None or r > best), default=None)
        if worst is None:  # nothing failed above the best: go up
            return self.start if best is None else round(best * self.factor)
        if best is None:  # nothing sustained yet: go down
            rate = round(worst / self.factor)
            return rate if rate >= self.floor else None
        if worst / best <= 1 + self.precision:
            return None
        rate = round(math.sqrt(best * worst))
        return rate if best < rate < worst else None


def split_rate(rate: float, clients: int) -> list[int]:
    """Per-client SIPp rates (whole calls/s) that add up to ``rate``."""
    if clients < 1:
        raise ValueError(f"clients must be at least 1, not {clients}")
    total = max(clients, round(rate))
    return [total // clients + (i < total % clients) for i in range(clients)]


def bound(server_cores: float, server_processes: int, client_cores: float, clients: int,
          machine_cores: float, cpus: int) -> str:
    """What most likely limited the highest sustained rate, from the CPU used (CPU
    seconds per second) during the first failed step above it: ``server`` when its
    processes kept their CPUs busy and the SIPp processes did not, ``clients`` the other
    way round, ``machine`` when both did or the whole machine was (nearly) busy (its
    CPUs shared by server, SIPp, the runner and whatever else runs), else ``unclear``."""
    server_busy = server_cores >= 0.85 * max(1, min(server_processes, cpus))
    clients_busy = client_cores >= 0.85 * max(1, min(clients, cpus))
    if server_busy != clients_busy:
        return "server" if server_busy else "clients"
    if server_busy or machine_cores >= 0.85 * cpus:
        return "machine"
    return "unclear"
