"""The file-descriptor budget of ``serve``: the soft RLIMIT_NOFILE raised toward the
hard limit at start-up, and said once.

Every TCP, TLS and WebSocket connection holds a descriptor. Many systems start a
process with a soft limit of 1,024, below the default ``max_connections`` of TCP and
WebSocket together; the hard limit is the ceiling an unprivileged process may raise
its own soft limit to. Past a cap the raise stops: a process with a million
descriptors gains nothing here and makes tools that walk every descriptor slow.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger("sipresponder")

# The soft limit is raised to at most this (and never lowered).
CAP = 65536
# Descriptors the process needs besides connections and those open at start-up:
# listeners, the admin API, the event loop's own.
RESERVED = 16


@dataclass(frozen=True, slots=True)
class Budget:
    before: int  # the soft limit found (-1: unlimited)
    soft: int  # the soft limit now
    hard: int  # -1: unlimited
    open: int  # descriptors open at start-up (the interpreter's, log files)

    @property
    def connections(self) -> int:
        return max(0, self.soft - self.open - RESERVED) if self.soft >= 0 else CAP

    def describe(self) -> str:
        def text(n: int) -> str:
            return "unlimited" if n < 0 else str(n)

        raised = f"raised from {text(self.before)}" if self.before != self.soft else "as found"
        return (f"file descriptors: {text(self.soft)} per process (soft RLIMIT_NOFILE, "
                f"{raised}; hard limit {text(self.hard)}): room for about "
                f"{self.connections} connections")


def raise_limit(cap: int = CAP) -> Budget | None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit, at most to ``cap``; None
    where there are no such limits (not POSIX)."""
    try:
        import resource
    except ImportError:
        return None
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == infinity else min(hard, cap)
    new = soft
    if soft != infinity and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            new = target
        except (ValueError, OSError) as exc:  # a sandbox that refuses: keep what we have
            log.warning("cannot raise the file descriptor limit from %d to %d: %s",
                        soft, target, exc, extra={"event": "fd_budget"})

    def plain(n: int) -> int:
        return -1 if n == infinity else n

    return Budget(plain(soft), plain(new), plain(hard), _open_descriptors())


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
    except OSError:
        return RESERVED  # no /proc: a guess


def log_budget(budget: Budget | None, max_connections: int) -> None:
    """One line: the budget, a warning when it cannot hold max_connections of TCP/TLS
    and of WebSocket (each has its own count)."""
    if budget is None:
        return
    extra = {"event": "fd_budget", "soft": budget.soft, "hard": budget.hard,
             "connections": budget.connections}
    if budget.soft >= 0 and budget.connections < 2 * max_connections:
        log.warning("%s, fewer than max_connections (%d) of TCP/TLS and of WebSocket "
                    "together; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                    "max_connections", budget.describe(), max_connections, extra=extra)
    else:
        log.info("%s", budget.describe(), extra=extra)
