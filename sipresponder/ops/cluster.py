"""``serve --workers N --admin ADDR``: one admin API over N worker processes.

Every worker keeps its own journal, counters and states, and serves the ordinary admin
app (``ops/admin.py``) on a private channel: a Unix socket ``worker-INDEX.sock`` in a
directory the supervisor made for this run (mode 0700). A Unix socket rather than a
loopback port because its address is known before the worker starts (nothing has to
be reported back, and a restarted worker is found where its predecessor was) and only
this user can connect to it (a loopback port is open to every local user and has to
be allocated and passed around).

The gatherer, a process the supervisor forks next to the workers and restarts like
them, serves ADDR with the same routes over a :class:`Cluster`: a ``Responder`` whose
journal is the merge of the workers' journals, so that list, count, ``wait`` and
``verify`` run the in-process code over the merged journal. It does no work per SIP
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
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from ..journal.record import Journal, JournalEntry, NearMiss, Query
from ..scenario.edit import RuleNotFound, delete_rule
from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from ..testing.api import Responder
from ..transport.address import ListenAddress
from ..uas import compiled
from .admin import (
    MAX_WAIT,
    PUT_SCENARIO_PATH,
    RULE_PATH,
    Admin,
    accepted_json,
    entry_json,
    refused_json,
    rule_json,
)
from .consoleapi import CONSOLE
from .metrics import COMPILED, ENGINE, path_counts, path_summary
from .pushed import load_pushed, parse_pushed

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


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text, encoding="utf-8")
    os.replace(staged, path)  # whoever reads it at start reads all of it or the old one


def _write_current(directory: Path, text: str) -> None:
    _write_atomically(directory / CURRENT_SCENARIO, text)


def _last_number(directory: Path) -> int:
    """The last ``seq`` a previous gatherer of this run handed out: a restarted one
    numbers on from there, so that a client's ``since`` misses nothing (the workers'
    journals are merged again from the start, so it may see entries twice)."""
    try:
        return int((directory / LAST_NUMBER).read_text())
    except (FileNotFoundError, ValueError):
        return 0


# -- the worker's side ---------------------------------------------------------------------
class WorkerChannel:
    """A worker's admin app on its Unix socket, plus the routes the gatherer needs."""

    def __init__(self, admin: Admin, index: int, path: Path) -> None:
        self.admin = admin
        self.index = index
        self.path = path
        self.latest = 0  # the seq of the newest entry journaled
        # Later responses to journaled entries: how many so far, and the number of the
        # latest one per entry seq (oldest first, bounded like the journal).
        self.updates = 0
        self.updated: dict[int, int] = {}
        self.changed = asyncio.Event()
        self.waiting = 0  # long polls in progress
        self.runner: web.AppRunner | None = None
        journal = admin.responder.journal
        journal.listeners.append(self._seen)
        journal.update_listeners.append(self._updated)

    def _seen(self, entry: JournalEntry) -> None:
        self.latest = entry.seq  # per request: kept to this and a test when nobody waits
        if self.waiting:
            self.changed.set()

    def _updated(self, entry: JournalEntry) -> None:
        self.updates += 1
        updated = self.updated
        updated.pop(entry.seq, None)  # to the end: the newest update
        updated[entry.seq] = self.updates
        if len(updated) > self.admin.responder.journal.size:
            del updated[next(iter(updated))]  # its entry has left the ring by now
        if self.waiting:
            self.changed.set()

    def hello(self) -> dict[str, Any]:
        return {"worker": self.index, "pid": os.getpid(),
                "scenario": scenario_digest(self.admin.scenario_text)}

    async def start(self) -> None:
        app = self.admin.app()
        app.router.add_get("/cluster/hello", self._hello)
        app.router.add_get("/cluster/health", self._health)
        app.router.add_get("/cluster/journal", self._journal)
        app.router.add_post("/cluster/changed", self._changed)
        app.router.add_put("/cluster/scenario", self._scenario)
        # A cancelled long-poll (the gatherer's wait is over) ends here too.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # the socket of the worker this one replaces
        await web.UnixSite(self.runner, str(self.path)).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _hello(self, request: web.Request) -> web.Response:
        return web.json_response(self.hello())

    async def _health(self, request: web.Request) -> web.Response:
        """Hello, and where this worker's requests went (the gatherer's /healthz)."""
        server = self.admin.responder.server
        paths = path_counts(server.engine.counters if server is not None else {})
        return web.json_response({**self.hello(), "requests_by_path": paths})

    async def _journal(self, request: web.Request) -> web.Response:
        """The entries after ``since`` and, as ``updated``, those up to ``since`` with a
        later response than update number ``updated``; all of them (and no updates)
        when ``pid`` is not this process (the gatherer's numbers counted in a
        predecessor's journal)."""
        since = int(request.query.get("since", "0"))
        after = int(request.query.get("updated", "0"))
        if request.query.get("pid") != str(os.getpid()):
            since = after = 0
        entries, updated = [], []
        changed = self.updated
        for e in self.admin.responder.journal:
            if e.seq > since:
                entries.append(entry_json(e))
            elif changed.get(e.seq, 0) > after:
                updated.append(entry_json(e))
        return web.json_response({**self.hello(), "entries": entries, "updated": updated,
                                  "updates": self.updates})

    async def _scenario(self, request: web.Request) -> web.Response:
        """PUT /api/scenario, refused once ``not_after`` (CLOCK_MONOTONIC, the same in
        every process) has passed: the gatherer has given up on this call by then and
        told the others to go back, so a call that waited in a stopped worker's queue
        must not swap its scenario in afterwards."""
        text = (await request.read()).decode("utf-8")
        try:
            scenario = await self.admin.load(text, PUT_SCENARIO_PATH,
                                             request.query.get("operator") == "1")
        except ScenarioError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if time.monotonic() > float(request.query["not_after"]):  # checked as it swaps
            return web.json_response({"error": "the swap came too late; not applied"},
                                     status=409)
        self.admin.swap_in(scenario, text)
        return web.json_response({"status": "replaced"})

    async def _changed(self, request: web.Request) -> web.Response:
        """Answer once an entry after ``after`` is journaled, or an update after number
        ``updates`` (when given) is made (at once when ``pid`` is not this process), or
        when ``timeout`` runs out."""
        body = await request.json()
        after = int(body["after"]) if body.get("pid") == os.getpid() else -1
        updates = body.get("updates")
        update_after = int(updates) if updates is not None and after >= 0 else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(float(body["timeout"]), MAX_WAIT)
        while self.latest <= after and (update_after is None
                                        or self.updates <= update_after):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self.changed.clear()
            self.waiting += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), remaining)
            finally:
                self.waiting -= 1
        return web.json_response({**self.hello(), "latest": self.latest,
                                  "updates": self.updates})


# -- the gatherer's side -------------------------------------------------------------------
class WorkerDown(Exception):
    """A worker did not answer on its channel (not started yet, restarting, stuck)."""


@dataclass(slots=True)
class WorkerEntry(JournalEntry):
    """A merged journal entry: ``seq`` is the merged journal's number."""

    worker: int = 0
    worker_seq: int = 0

    @property
    def origin(self) -> dict[str, int]:
        """What ``admin.entry_json`` adds to the entry: where it was answered."""
        return {"worker": self.worker, "worker_seq": self.worker_seq}


def entry_from_json(data: dict[str, Any], seq: int, worker: int) -> WorkerEntry:
    """The inverse of ``admin.entry_json``."""
    near = data["near_miss"]
    return WorkerEntry(
        seq, data["time"], data["transport"], (data["remote"][0], data["remote"][1]),
        data["raw"].encode("latin-1"), data["method"], data["uri"],
        [(name, value) for name, value in data["headers"]], data["rule"], data["outcome"],
        None if near is None else NearMiss(near["rule"], list(near["failed"])),
        [r.encode("latin-1") for r in data["responses"]],
        datetime.strptime(data["received_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
        local=(data["local"][0], data["local"][1]) if data.get("local") else ("", 0),
        response_times=list(data.get("response_times") or ()),
        rule_number=data.get("rule_number"),
        retransmitted=list(data.get("retransmitted") or ()),
        worker=worker, worker_seq=data["seq"])


class MergedJournal(Journal):
    """The gatherer's copy of the workers' journals, numbered in merge order; bounded
    like a worker's, by ``--journal-size``."""

    def __init__(self, size: int = 1000) -> None:
        super().__init__(size)
        # (worker, worker_seq) -> the merged entry, for a later response's update.
        self._by_origin: dict[tuple[int, int], WorkerEntry] = {}

    def add(self, entries: Iterable[WorkerEntry]) -> None:
        ring = self._entries
        by_origin = self._by_origin
        for entry in entries:
            if len(ring) == ring.maxlen:
                gone = ring[0]
                assert isinstance(gone, WorkerEntry)
                key = (gone.worker, gone.worker_seq)
                if by_origin.get(key) is gone:  # not a restarted worker's entry
                    del by_origin[key]
            ring.append(entry)
            by_origin[(entry.worker, entry.worker_seq)] = entry
            for listener in self.listeners:
                listener(entry)

    def update(self, worker: int, data: dict[str, Any]) -> None:
        """A worker's entry as it reads now (a later response): the merged copy takes
        what can change, and the update listeners hear of it."""
        entry = self._by_origin.get((worker, data["seq"]))
        if entry is None:
            return  # merged before a gatherer restart, or out of the ring
        fresh = entry_from_json(data, entry.seq, worker)
        entry.responses = fresh.responses
        entry.response_times = fresh.response_times
        entry.outcome = fresh.outcome
        entry.rule = fresh.rule
        entry.rule_number = fresh.rule_number
        entry.near_miss = fresh.near_miss
        for listener in self.update_listeners:
            listener(entry)

    def clear(self) -> None:
        self._by_origin.clear()
        super().clear()


class WorkerLink:
    """The gatherer's connection to one worker's channel."""

    def __init__(self, index: int, path: Path) -> None:
        self.index = index
        self.path = path
        self.pid: int | None = None  # the process last seen there
        self.seen = 0  # the worker's seq of the newest entry merged from it
        self.updates = 0  # the worker's number of the latest update merged from it
        self.session: aiohttp.ClientSession | None = None

    async def call(self, method: str, path: str, *, timeout: float = CALL_TIMEOUT,
                   **kwargs: Any) -> tuple[int, Any]:
        """(HTTP status, the decoded body) of one call; WorkerDown when unreachable."""
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.path)),
                headers=CLUSTER_HEADERS)
        try:
            async with self.session.request(
                    method, f"http://worker{path}",
                    timeout=aiohttp.ClientTimeout(total=timeout), **kwargs) as resp:
                if resp.content_type == "application/json":
                    return resp.status, await resp.json()
                return resp.status, await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise WorkerDown(f"worker {self.index} is not answering "
                             f"({type(exc).__name__}: {exc or 'no reply'})") from None

    async def serve(self, text: str, operator: bool = False) -> None:
        """Have the worker serve ``text`` (``operator``: the operator's file, whose body
        files are not confined); WorkerDown, or ClusterFailed if it refuses."""
        status, body = await self.call(
            "PUT", "/cluster/scenario", data=text.encode(),
            headers={"Content-Type": "application/toml"},
            params={"not_after": repr(time.monotonic() + CALL_TIMEOUT - SWAP_MARGIN),
                    "operator": "1" if operator else "0"})
        failed = failures({self.index: (status, body)})
        if failed:
            raise ClusterFailed("the scenario was refused", failed)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None


Outcomes = dict[int, tuple[int, Any] | WorkerDown]


def failures(outcomes: Outcomes) -> dict[int, str]:
    """The workers whose call did not succeed, and why."""
    out = {}
    for index, result in outcomes.items():
        if isinstance(result, WorkerDown):
            out[index] = str(result)
        elif result[0] >= 300:
            body = result[1]
            detail = body.get("error", body) if isinstance(body, dict) else body
            out[index] = f"worker {index}: HTTP {result[0]}: {detail}"
    return out


class ClusterFailed(Exception):
    """An operation some workers did not carry out: ``failed`` says which, and why."""

    def __init__(self, what: str, failed: dict[int, str]) -> None:
        super().__init__(f"{what}: " + "; ".join(failed[i] for i in sorted(failed)))
        self.failed = failed


class Cluster(Responder):
    """The Responder surface over the workers: the journal is the merged one, and
    ``wait_for`` / ``verify`` (inherited) watch it."""

    def __init__(self, scenario: Scenario, scenario_text: str, workers: int,
                 directory: Path, journal_size: int = 1000,
                 base_dir: Path | None = None) -> None:
        super().__init__(scenario, (), journal_size)
        self.merged = MergedJournal(journal_size)
        self.journal = self.merged
        self.directory = directory
        self.base_dir = base_dir
        self.scenario_text = scenario_text
        self.operator_text = True  # scenario_text is the operator's file, not the API's
        self.current = scenario  # what the workers serve: the console lists its rules
        self.links = [WorkerLink(i, socket_path(directory, i)) for i in range(workers)]
        self._seq = itertools.count(_last_number(directory) + 1)
        self._merging = asyncio.Lock()  # one fetch at a time, or entries merge twice
        self._swapping = asyncio.Lock()  # one scenario change at a time
        self._background: set[asyncio.Task[None]] = set()  # held until done

    async def start(self, *, reuse_port: bool = False,
                    shared_udp: dict[ListenAddress, socket.socket] | None = None) -> Cluster:
        """Nothing to start: the workers listen, the links connect on first use."""
        return self

    def _own_loop(self, call: str) -> asyncio.AbstractEventLoop:
        """Any loop: the merged journal's waiters (``_watch`` below) are woken through
        the gatherer's own fetches, not through a listener bound to a start loop."""
        return asyncio.get_running_loop()

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        for link in self.links:
            await link.close()

    async def each(self, method: str, path: str, **kwargs: Any) -> Outcomes:
        """One call to every worker at once, each one's outcome by worker index."""
        async def one(link: WorkerLink) -> tuple[int, Any] | WorkerDown:
            try:
                return await link.call(method, path, **kwargs)
            except WorkerDown as exc:
                return exc

        results = await asyncio.gather(*(one(link) for link in self.links))
        return dict(enumerate(results))

    async def all(self, what: str, method: str, path: str, **kwargs: Any) -> Outcomes:
        """``each``, raising ClusterFailed when any worker failed."""
        outcomes = await self.each(method, path, **kwargs)
        failed = failures(outcomes)
        if failed:
            raise ClusterFailed(what, failed)
        return outcomes

    async def joined(self, timeout: float) -> dict[int, str]:
        """Wait until every worker answers on its channel (the workers start after the
        gatherer); those still silent at ``timeout``, and why."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            failed = failures(await self.each("GET", "/cluster/hello", timeout=1.0))
            if not failed or loop.time() >= deadline:
                return failed
            await asyncio.sleep(REJOIN_POLL)  # no event says a channel is up: ask again

    # -- the merged journal ------------------------------------------------------------
    async def merge(self) -> None:
        """Fetch what every worker journaled since the last merge and append it."""
        async with self._merging:
            updates: list[tuple[int, dict[str, Any]]] = []

            async def fetch(link: WorkerLink) -> list[tuple[str, int, int, dict[str, Any]]]:
                try:
                    status, body = await link.call("GET", "/cluster/journal", params={
                        "since": str(link.seen), "pid": str(link.pid),
                        "updated": str(link.updates)})
                except WorkerDown:
                    return []
                if status != 200:
                    return []
                await self._rejoin(link, body)
                found = [(e["received_at"], link.index, e["seq"], e) for e in body["entries"]]
                if found:
                    link.seen = max(seq for _, _, seq, _ in found)
                link.updates = body.get("updates", 0)
                updates.extend((link.index, e) for e in body.get("updated", ()))
                return found

            batches = await asyncio.gather(*(fetch(link) for link in self.links))
            new = sorted(itertools.chain.from_iterable(batches), key=lambda t: t[:3])
            entries = [entry_from_json(data, next(self._seq), worker)
                       for _, worker, _, data in new]
            if entries:
                _write_atomically(self.directory / LAST_NUMBER, str(entries[-1].seq))
                self.merged.add(entries)
            for worker, data in updates:
                self.merged.update(worker, data)

    async def _rejoin(self, link: WorkerLink, hello: dict[str, Any]) -> None:
        """Note a restarted worker, and give it the current scenario if it serves
        another (it started while the scenario was being swapped)."""
        if hello["pid"] != link.pid:
            if link.pid is not None:
                log.info("worker %d rejoined (pid %d)", link.index, hello["pid"],
                         extra={"event": "worker_rejoined", "worker": link.index})
            link.pid = hello["pid"]
            link.seen = link.updates = 0
        if hello["scenario"] == scenario_digest(self.scenario_text):
            return
        async with self._swapping:  # not while a swap is half done
            if hello["scenario"] != scenario_digest(self.scenario_text):
                with contextlib.suppress(WorkerDown, ClusterFailed):
                    await link.serve(self.scenario_text, self.operator_text)

    async def _watch(self, query: Query, deadline: float,
                     done: Callable[[int], bool]) -> list[JournalEntry]:
        loop = asyncio.get_running_loop()
        while True:
            await self.merge()
            found = query.select(self.journal)
            remaining = deadline - loop.time()
            if done(len(found)) or remaining <= 0:
                return found
            await self._next_change(remaining)

    async def _next_change(self, timeout: float) -> None:
        """Return when any worker journals something new (or is back), or at timeout."""
        async def changed(link: WorkerLink) -> None:
            try:
                await link.call("POST", "/cluster/changed", timeout=timeout + CALL_TIMEOUT,
                                json={"after": link.seen, "updates": link.updates,
                                      "pid": link.pid, "timeout": timeout})
            except WorkerDown:
                await asyncio.sleep(REJOIN_POLL)

        tasks = [asyncio.create_task(changed(link)) for link in self.links]
        try:
            await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the scenario ------------------------------------------------------------------
    async def swap(self, text: str, path: str, operator: bool = False) -> Scenario:
        """Validate ``text`` once, here, then have every worker serve it; if any worker
        fails, the others go back to the scenario they served (ClusterFailed).
        ``operator``: a reload of the operator's file (SIGHUP, --watch), not the API's."""
        async with self._swapping:
            scenario = await load_pushed(text, path, self.base_dir, operator)
            previous, previous_operator = self.scenario_text, self.operator_text
            _write_current(self.directory, text)
            results = await asyncio.gather(*(link.serve(text, operator) for link in self.links),
                                           return_exceptions=True)
            failed = {}
            for index, result in enumerate(results):
                if isinstance(result, ClusterFailed):
                    failed.update(result.failed)
                elif isinstance(result, WorkerDown):
                    failed[index] = str(result)
                elif isinstance(result, BaseException):
                    raise result
            if not failed:
                self.scenario_text, self.operator_text = text, operator
                self.current = scenario
                # Responder.set_scenario: whoever watches swaps (the console's event
                # stream) hears of it; there is no server here to swap.
                self.set_scenario(scenario)
                return scenario
            _write_current(self.directory, previous)
            back = [i for i in range(len(self.links)) if i not in failed]
            await asyncio.gather(*(self.links[i].serve(previous, previous_operator)
                                   for i in back),
                                 return_exceptions=True)
            # A failed worker may still swap (its answer was late): make sure it ends up
            # serving the previous scenario once it answers again.
            task = asyncio.create_task(self._bring_back(set(failed)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            raise ClusterFailed("the scenario was not swapped (workers "
                                f"{', '.join(map(str, back)) or 'none'} went back to "
                                "the previous one)", failed)

    async def _bring_back(self, indexes: set[int]) -> None:
        """Until each of these workers has answered serving the current scenario, ask
        it again every REJOIN_POLL (nothing says when a stuck worker moves again)."""
        while indexes:
            await asyncio.sleep(REJOIN_POLL)
            for index in list(indexes):
                link = self.links[index]
                try:
                    status, hello = await link.call("GET", "/cluster/hello", timeout=1.0)
                except WorkerDown:
                    continue
                if status == 200 and hello["scenario"] == scenario_digest(self.scenario_text):
                    indexes.discard(index)
                elif status == 200:
                    await self._rejoin(link, hello)

    # -- metrics -------------------------------------------------------------------------
    async def metrics(self) -> bytes:
        """The sum of the workers' /metrics as one exposition, and which workers answered."""
        outcomes = await self.each("GET", "/metrics")
        up = GaugeMetricFamily("sipresponder_worker_up",
                               "1 if the worker answered this scrape on its admin channel",
                               labels=["worker"])
        texts = []
        for index, result in outcomes.items():
            ok = not isinstance(result, WorkerDown) and result[0] == 200
            up.add_metric([str(index)], 1 if ok else 0)
            if ok and not isinstance(result, WorkerDown):
                texts.append(str(result[1]))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Fixed([*summed(texts), up]))
        return generate_latest(registry)


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


class _Fixed:
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


class ClusterReadings:
    """The console's rules' hits and metrics under ``--workers``: every worker's,
    summed (a worker that does not answer adds nothing)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def scenario(self) -> Scenario | None:
        return self.cluster.current

    async def _answers(self, path: str) -> list[Any]:
        outcomes = await self.cluster.each("GET", path)
        return [r[1] for r in outcomes.values()
                if not isinstance(r, WorkerDown) and r[0] == 200]

    async def hits(self) -> Mapping[int, int]:
        """Each rule's hits on every worker that serves the current scenario (one that
        lists other rules is between two scenarios: its hits are the old one's)."""
        names = [r.name for r in self.cluster.current.rules]
        hits: dict[int, int] = {}
        for rules in await self._answers("/api/rules"):
            if [r["name"] for r in rules if r["number"]] != names:
                continue
            for rule in rules:
                hits[rule["number"]] = hits.get(rule["number"], 0) + rule["hits"]
        return hits

    async def metrics(self) -> dict[str, Any]:
        return summed_metrics(await self._answers("/api/metrics.json"))


# -- the admin app over the cluster --------------------------------------------------------
def _refused(exc: ClusterFailed) -> web.Response:
    log.error("%s", exc, extra={"event": "workers_failed", "error": str(exc)})
    return web.json_response({"error": str(exc),
                              "workers": {str(i): why for i, why in exc.failed.items()}},
                             status=502)


class ClusterAdmin(Admin):
    """The admin routes of ``Admin``, over a Cluster: the journal routes read the merged
    journal (merged afresh first), the rest fan out to every worker."""

    def __init__(self, cluster: Cluster, token: str | None = None,
                 base_dir: Path | None = None) -> None:
        super().__init__(cluster, cluster.scenario_text, token, base_dir)
        self.cluster = cluster
        self.streams = 0  # the console's event streams open now
        self._follower: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = super().app()
        app.middlewares.append(self._merged)
        app[CONSOLE].readings = ClusterReadings(self.cluster)
        app.on_cleanup.append(self._stop_following)
        return app

    async def start_on(self, sock: socket.socket) -> None:
        """Serve on the socket the supervisor bound (it stays the same address when
        this process is restarted)."""
        await self.serve(sock)
        missing = await self.cluster.joined(JOIN_TIMEOUT)
        if missing:
            log.warning("admin API: %s", "; ".join(missing.values()))
        host, port = sock.getsockname()[:2]
        self.address = (host, port)
        shown = f"[{host}]" if ":" in host else host
        log.info("admin API on http://%s:%d (gathering from %d workers)", shown, port,
                 len(self.cluster.links), extra={"event": "admin", "address": f"{shown}:{port}"})

    @web.middleware
    async def _merged(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        if request.method == "GET":
            if request.path == "/api/events":
                return await self._stream(request, handler)
            if request.path.startswith("/api/requests") or request.path == "/api/ladder":
                await self.cluster.merge()
        return await handler(request)

    async def _stream(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        """The console's event stream (ops/consoleapi.py, unchanged): its snapshot is the
        journal merged just now, and while it is open the gatherer follows the workers,
        so that each entry they journal is merged, and streamed, as it arrives."""
        await self.cluster.merge()
        self.streams += 1
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow())
        try:
            return await handler(request)
        finally:
            self.streams -= 1
            if not self.streams:
                await self._stop_following()

    async def _follow(self) -> None:
        cluster = self.cluster
        loop = asyncio.get_running_loop()
        while True:
            try:
                started = loop.time()
                await cluster.merge()
                await cluster._next_change(FOLLOW_POLL)
                rest = started + FOLLOW_INTERVAL - loop.time()
                if rest > 0:
                    await asyncio.sleep(rest)  # a rate limit, not a wait for something
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must cost the live view a moment, never the gatherer.
                log.exception("console: following the workers failed; trying again")
                await asyncio.sleep(REJOIN_POLL)

    async def _stop_following(self, app: web.Application | None = None) -> None:
        task, self._follower = self._follower, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def apply(self, text: str, path: str, operator: bool = False) -> Scenario:
        """Swap ``text`` in on every worker (ScenarioError, ClusterFailed) and serve it
        from GET /api/scenario (``operator``: a reload of the operator's file)."""
        scenario = await self.cluster.swap(text, path, operator)
        self.scenario_text = text
        return scenario

    async def _healthz(self, request: web.Request) -> web.Response:
        """Every worker's /healthz: up or not, and where their requests went, summed."""
        outcomes = await self.cluster.each("GET", "/cluster/health", timeout=HEALTH_TIMEOUT)
        failed = failures(outcomes)
        workers: list[dict[str, Any]] = []
        found: list[dict[str, Any]] = []
        for i, r in outcomes.items():
            if isinstance(r, WorkerDown) or i in failed:
                workers.append({"worker": i, "up": False, "error": failed.get(i, "")})
                continue
            health = r[1]
            found.append(health)
            workers.append({"worker": i, "up": True, "pid": health["pid"],
                            "requests_by_path_text": path_summary(health["requests_by_path"])})
        paths = summed_paths(h["requests_by_path"] for h in found)
        summary = {
            "request_path": "compiled" if compiled.AVAILABLE else "pure Python",
            "request_path_detail": compiled.STATUS,
            "requests_by_path": paths, "requests_by_path_text": path_summary(paths),
            "workers": workers}
        if failed:
            return web.json_response({"status": "degraded", **summary}, status=503)
        return web.json_response({"status": "ok", **summary})

    async def _fan_out(self, what: str, method: str, path: str, clears: bool) -> web.Response:
        try:
            await self.cluster.all(what, method, path)
        except ClusterFailed as exc:
            return _refused(exc)
        finally:
            if clears:
                self.cluster.journal.clear()
        return web.json_response({"status": "cleared"})

    async def _clear(self, request: web.Request) -> web.Response:
        return await self._fan_out("journal not cleared everywhere", "DELETE",
                                   "/api/requests", clears=True)

    async def _reset(self, request: web.Request) -> web.Response:
        return await self._fan_out("not reset everywhere", "POST", "/api/reset", clears=True)

    async def _reset_states(self, request: web.Request) -> web.Response:
        return await self._fan_out("states not reset everywhere", "DELETE", "/api/state",
                                   clears=False)

    async def _states(self, request: web.Request) -> web.Response:
        """Every worker's states and counters, each saying whose (they are per worker)."""
        try:
            outcomes = await self.cluster.all("states not read", "GET", "/api/state")
        except ClusterFailed as exc:
            return _refused(exc)
        merged: dict[str, list[Any]] = {"states": [], "counters": []}
        for index, result in outcomes.items():
            assert not isinstance(result, WorkerDown)
            for key in merged:
                merged[key] += [{**item, "worker": index} for item in result[1][key]]
        return web.json_response(merged)

    async def _swap_text(self, text: str, path: str, done: Callable[[Scenario], dict[str, Any]]
                         ) -> web.Response:
        try:
            scenario = await self.apply(text, path)
        except ScenarioError as exc:
            log.warning("%s refused: %s; the running scenario stays", path, exc,
                        extra={"event": "reload_failed", "path": path, "error": str(exc)})
            return web.json_response(refused_json(exc, text), status=400)
        except ClusterFailed as exc:
            return _refused(exc)
        log.info("scenario swapped over the admin API on %d workers (%d rules)",
                 len(self.cluster.links), len(scenario.rules),
                 extra={"event": "scenario", "path": path})
        return web.json_response(done(scenario))

    async def _put_scenario(self, request: web.Request) -> web.Response:
        data = await request.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return web.json_response(
                {"error": f"{PUT_SCENARIO_PATH}: not UTF-8 ({exc.reason})"}, status=400)
        return await self._swap_text(text, PUT_SCENARIO_PATH,
                                     lambda s: accepted_json(s, status="replaced"))

    async def _put_rule(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        text, what = self.edited_rule(request, await request.read())
        return await self._swap_text(text, RULE_PATH.format(method="PUT", name=name),
                                     lambda s: rule_json(s, what, name))

    async def _delete_rule(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            text = delete_rule(self.scenario_text, name)
        except RuleNotFound:
            return web.json_response({"error": f"no rule named {name!r}"}, status=404)
        return await self._swap_text(
            text, RULE_PATH.format(method="DELETE", name=name),
            lambda s: rule_json(s, "deleted", name))

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.cluster.metrics(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


@dataclass(frozen=True, slots=True)
class ClusterRole:
    """What one process of ``serve --workers N --admin ADDR`` is."""

    directory: Path  # the private directory of the workers' channels
    workers: int
    index: int | None  # the worker's index; None: the gatherer
    admin_socket: socket.socket | None = None  # the gatherer's: ADDR, bound by the supervisor
