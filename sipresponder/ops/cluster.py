"""``serve --workers N --admin ADDR``: one admin API over N worker processes.

Every worker keeps its own journal, counters and states, and serves the ordinary admin
app (``ops/admin.py``) on a private channel: a Unix socket ``worker-INDEX.sock`` in a
directory the supervisor made for this run (mode 0700). A Unix socket rather than a
loopback port because its address is known before the worker starts (nothing has to
be reported back, and a restarted worker is found where its predecessor was) and only
this user can connect to it (a loopback port is open to every local user and has to
be allocated and passed around).

The gatherer, a process the supervisor forks next to the workers and restarts like
them, serves ADDR with the same routes (ops/admin.py) over a ``Cluster``
(ops/gatherer.py), the admin host whose journal is the merge of the workers'
journals, so that list, count, ``wait`` and ``verify`` run the one code
(journal/expect.py) over the merged journal. It does no work per SIP
request: it asks the workers only when the API is asked. The supervisor itself stays
a plain fork-and-wait loop because forking is only safe from a process that has no
event loop and no threads.

The merged journal: each query first fetches from every worker what it journaled
since the last fetch; the entries of one fetch are ordered by their wall-clock arrival
and numbered on from the last merged ``seq``, so ``seq`` is unique and increasing in
the order the merged journal learned of the entries, and ``since=S`` returns exactly
the entries merged after the one numbered S. Each entry also says which ``worker``
answered it and its ``worker_seq`` there. ``wait`` and ``verify`` wake on new entries:
the gatherer holds one long-poll (``POST /cluster/changed``) on every worker, which
returns as soon as that worker journals something new (or sends a later response
for an entry: the merged copy is then updated in place).

The console (ops/consoleapi.py) reads the same merged journal: while an event stream is
open, the gatherer follows the workers (the same long poll, merging as soon as any
worker journals something), so that the stream's code sends each merged entry, and
each update, as it arrives; its rules' hits, metrics and states are the workers'
summed (``ClusterReadings``). With no stream open it does nothing between API calls.

This module holds what both sides share: where the channels are, the timings, the
scenario file a restarted worker reads, and ``ClusterRole``. The worker's side is
ops/worker.py, the gatherer's ops/gatherer.py, the sums of the workers' metrics
ops/mergedmetrics.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from .pushed import parse_pushed

log = logging.getLogger("sipresponder")


# In the private directory: what a (re)started worker serves, and the last merged seq.
CURRENT_SCENARIO = "scenario.toml"
LAST_NUMBER = "merged-seq"
# How long one call to a worker may take beyond its own wait: a worker that does not
# answer in this time counts as failed (it is busy or stuck), it is not waited for.
CALL_TIMEOUT = 5.0
# While a worker is down, a wait asks again this often whether it is back: nothing
# tells the gatherer when the supervisor has restarted it.
REJOIN_POLL = 0.2
# A worker refuses a swap this long before the gatherer stops waiting for its answer,
# so that a swap it carries out is one the gatherer hears of (ops: WorkerChannel._scenario).
SWAP_MARGIN = 1.0
# /healthz: a worker that does not say hello this soon is reported down (a probe's own
# timeout is often 1 s, hence not CALL_TIMEOUT).
HEALTH_TIMEOUT = 1.0
JOIN_TIMEOUT = 30.0  # how long the gatherer waits for every worker before it says it is up
# While a console's event stream is open, the longest the gatherer's long poll on the
# workers lasts before it asks again (it returns at once when anything is journaled).
FOLLOW_POLL = 10.0
# ... and the shortest time between two merges while following: under load a change
# is always waiting, and each merge asks every worker for its journal, on the event
# loop that answers SIP. 20 a second is live to a person and bounded for the workers.
FOLLOW_INTERVAL = 0.05
# The gatherer's own calls to a worker's admin routes: non-simple requests, as the
# admin API demands of any client that changes something (no browser sends this).
CLUSTER_HEADERS = {"X-Sipresponder": "1"}


def socket_path(directory: Path, index: int) -> Path:
    return directory / f"worker-{index}.sock"


def scenario_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def current_scenario(directory: Path, path: str) -> tuple[Scenario, str] | None:
    """The scenario the admin API last swapped in (a restarted worker serves it, not
    the file it was started with); None when there is none or it no longer loads."""
    try:
        text = (directory / CURRENT_SCENARIO).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return parse_pushed(text, path, Path(path).parent), text
    except ScenarioError as exc:
        log.error("%s; serving %s instead", exc, path)
        return None


def write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)  # whoever reads it at start reads all of it or the old one


def write_current(directory: Path, text: str) -> None:
    write_atomically(directory / CURRENT_SCENARIO, text)


def last_number(directory: Path) -> int:
    """The last ``seq`` a previous gatherer of this run handed out: a restarted one
    numbers on from there, so that a client's ``since`` misses nothing (the workers'
    journals are merged again from the start, so it may see entries twice)."""
    try:
        return int((directory / LAST_NUMBER).read_text())
    except (FileNotFoundError, ValueError):
        return 0



@dataclass(frozen=True, slots=True)
class ClusterRole:
    """What one process of ``serve --workers N --admin ADDR`` is."""

    directory: Path  # the private directory of the workers' channels
    workers: int
    index: int | None  # the worker's index; None: the gatherer
    admin_socket: socket.socket | None = None  # the gatherer's: ADDR, bound by the supervisor
