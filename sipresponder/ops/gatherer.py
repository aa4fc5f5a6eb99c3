"""The gatherer of ``serve --workers N --admin``: the admin host over every worker.

``Cluster`` implements ops/host.py's ``AdminHost`` by calling each worker's private
channel (ops/worker.py) through a ``WorkerLink``: the journal is merged from theirs
(``MergedJournal``), a scenario swap goes to all of them or to none, and the metrics,
states and health are theirs summed or listed (ops/mergedmetrics.py). ops/cluster.py
tells the whole design.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from ..journal import expect
from ..journal.expect import Done
from ..journal.record import Journal, JournalEntry, NearMiss, Query
from ..scenario.model import Scenario
from ..transport.outbound import CannotSend, NoRegistration, UnknownDialog
from ..uas.outcome import RECEIVED
from .cluster import (
    CALL_TIMEOUT,
    CLUSTER_HEADERS,
    FOLLOW_INTERVAL,
    FOLLOW_POLL,
    HEALTH_TIMEOUT,
    JOIN_TIMEOUT,
    LAST_NUMBER,
    REJOIN_POLL,
    SWAP_MARGIN,
    last_number,
    scenario_digest,
    socket_path,
    write_atomically,
    write_current,
)
from .host import HostFailed
from .mergedmetrics import Fixed, summed, summed_metrics, summed_paths
from .metrics import path_summary
from .pushed import load_pushed

log = logging.getLogger("sipresponder")


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
        direction=data.get("direction") or RECEIVED,  # an older worker's: received
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
        # Without its flags a repeated answer would count twice in ``codes``.
        entry.retransmitted = fresh.retransmitted
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


class ClusterFailed(HostFailed):
    """An operation some workers did not carry out: ``failed`` says which, and why."""


class Cluster:
    """``AdminHost`` (ops/host.py) over every worker: the journal is the merged one,
    waited on by the same code as a Responder's (journal/expect.py); a change goes to
    every worker or, if any fails, to none (ClusterFailed)."""

    def __init__(self, scenario: Scenario, scenario_text: str, workers: int,
                 directory: Path, journal_size: int = 1000,
                 base_dir: Path | None = None) -> None:
        self.merged = MergedJournal(journal_size)
        self.journal: Journal = self.merged
        self.directory = directory
        self.base_dir = base_dir
        self.scenario_text = scenario_text
        self.scenario_listeners: list[Callable[[], None]] = []
        self.operator_text = True  # scenario_text is the operator's file, not the API's
        self.current = scenario  # what the workers serve: the console lists its rules
        self.links = [WorkerLink(i, socket_path(directory, i)) for i in range(workers)]
        self._readings = ClusterReadings(self)
        self.streams = 0  # the console's event streams open now
        self._follower: asyncio.Task[None] | None = None
        self._seq = itertools.count(last_number(directory) + 1)
        self._merging = asyncio.Lock()  # one fetch at a time, or entries merge twice
        self._swapping = asyncio.Lock()  # one scenario change at a time
        self._background: set[asyncio.Task[None]] = set()  # held until done

    @property
    def readings(self) -> ClusterReadings:
        return self._readings

    async def stop(self) -> None:
        await self._stop_following()
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

    async def joined_within(self, timeout: float) -> dict[int, str]:
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
                write_atomically(self.directory / LAST_NUMBER, str(entries[-1].seq))
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

    async def refresh(self) -> None:
        await self.merge()

    async def watch(self, query: Query, deadline: float, done: Done) -> list[JournalEntry]:
        return await expect.watch(self.journal, query, deadline, done, self._next_change,
                                  self.merge)

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
            write_current(self.directory, text)
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
                for listener in self.scenario_listeners:
                    listener()
                return scenario
            write_current(self.directory, previous)
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
        registry.register(Fixed([*summed(texts), up]))
        return generate_latest(registry)

    # -- the rest of the admin host --------------------------------------------------------
    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[None]:
        """While a console's event stream is open: its snapshot is the journal merged
        just now, and the gatherer follows the workers, so that each entry they journal
        is merged, and streamed, as it arrives."""
        await self.merge()
        self.streams += 1
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow())
        try:
            yield
        finally:
            self.streams -= 1
            if not self.streams:
                await self._stop_following()

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                started = loop.time()
                await self.merge()
                await self._next_change(FOLLOW_POLL)
                rest = started + FOLLOW_INTERVAL - loop.time()
                if rest > 0:
                    await asyncio.sleep(rest)  # a rate limit, not a wait for something
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug must cost the live view a moment, never the gatherer.
                log.exception("console: following the workers failed; trying again")
                await asyncio.sleep(REJOIN_POLL)

    async def _stop_following(self) -> None:
        task, self._follower = self._follower, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def clear(self) -> None:
        try:
            await self.all("journal not cleared everywhere", "DELETE", "/api/requests")
        finally:
            self.journal.clear()

    async def reset(self) -> None:
        try:
            await self.all("not reset everywhere", "POST", "/api/reset")
        finally:
            self.journal.clear()

    async def reset_states(self) -> None:
        await self.all("states not reset everywhere", "DELETE", "/api/state")

    async def states(self) -> dict[str, Any]:
        """Every worker's states and counters, each saying whose (they are per worker)."""
        outcomes = await self.all("states not read", "GET", "/api/state")
        merged: dict[str, list[Any]] = {"states": [], "counters": []}
        for index, result in outcomes.items():
            assert not isinstance(result, WorkerDown)
            for key in merged:
                merged[key] += [{**item, "worker": index} for item in result[1][key]]
        return merged

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Every worker's health: up or not, and where their requests went, summed."""
        outcomes = await self.each("GET", "/cluster/health", timeout=HEALTH_TIMEOUT)
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
        return not failed, {"requests_by_path": paths,
                            "requests_by_path_text": path_summary(paths), "workers": workers}

    # -- the far end: each dialog lives in one worker ------------------------------------
    async def dialogs(self) -> list[dict[str, Any]]:
        """Every worker's live far-end dialogs, each saying whose."""
        outcomes = await self.all("dialogs not listed", "GET", "/api/dialogs")
        found: list[dict[str, Any]] = []
        for index, result in outcomes.items():
            assert not isinstance(result, WorkerDown)
            found += [{**dialog, "worker": index} for dialog in result[1]["dialogs"]]
        return found

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """A target is called from the first worker; an address of record from the
        first worker whose journal holds its REGISTER (the one its client's packets
        reach, so the client's answers reach it too)."""
        links = self.links if "aor" in request else self.links[:1]
        for link in links:
            answer = await self._far(link, "POST", "/api/calls", request, NoRegistration,
                                     last=link is links[-1])
            if answer is not None:
                return {**answer, "worker": link.index}
        raise AssertionError("unreachable: the last worker's 404 raises")

    async def send(self, call_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Relayed to the worker that holds the dialog; when none lists it, to each in
        turn until one finds the call in its journal (a rule without steps answered
        it there: the far end takes it over)."""
        holder = next((d["worker"] for d in await self.dialogs() if d["call_id"] == call_id),
                      None)
        links = self.links if holder is None else [self.links[holder]]
        path = f"/api/dialogs/{quote(call_id, safe='')}/requests"
        for link in links:
            answer = await self._far(link, "POST", path, request, UnknownDialog,
                                     last=link is links[-1])
            if answer is not None:
                return {**answer, "worker": link.index}
        raise AssertionError("unreachable: the last worker's 404 raises")

    async def _far(self, link: WorkerLink, method: str, path: str, request: dict[str, Any],
                   missing: type[LookupError], last: bool) -> dict[str, Any] | None:
        """One far-end call on ``link``'s worker, its refusal raised as the worker's
        admin app raised it; None for a 404 when another worker may be asked."""
        try:
            status, body = await link.call(method, path, json=request)
        except WorkerDown as exc:
            raise ClusterFailed("the far end was not reached", {link.index: str(exc)}) from None
        if status < 300 and isinstance(body, dict):
            return body
        error = str(body.get("error", body) if isinstance(body, dict) else body)
        if status == 400:
            raise ValueError(error)
        if status == 404:
            if not last:
                return None
            raise missing(error)
        if status == 409:
            raise CannotSend(error)
        raise ClusterFailed("the far end failed",
                            {link.index: f"worker {link.index}: HTTP {status}: {error}"})

    async def joined(self) -> str:
        missing = await self.joined_within(JOIN_TIMEOUT)
        if missing:
            log.warning("admin API: %s", "; ".join(missing.values()))
        return f" (gathering from {len(self.links)} workers)"


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
