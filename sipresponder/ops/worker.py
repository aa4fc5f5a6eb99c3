"""A worker of ``serve --workers N --admin``: its admin app on a private channel.

The ordinary admin routes (ops/admin.py over ops/inprocess.py) on a Unix socket only
this user reaches, plus the ``/cluster/...`` routes the gatherer (ops/gatherer.py)
calls: hello, health, the journal since a number, a long poll on the next change,
and a scenario swap that a late call cannot apply (ops/cluster.py says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..journal.record import JournalEntry
from ..scenario.loader import ScenarioError
from .admin import PUT_SCENARIO_PATH, Admin, entry_json
from .cluster import scenario_digest
from .inprocess import InProcess
from .openapi import MAX_WAIT


class WorkerChannel:
    """A worker's admin app on its Unix socket, plus the routes the gatherer needs."""

    def __init__(self, admin: Admin, index: int, path: Path) -> None:
        if not isinstance(admin.host, InProcess):
            raise TypeError("a worker's channel serves the responder of its own process")
        self.admin = admin
        self.host: InProcess = admin.host
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
        journal = self.host.journal
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
        if len(updated) > self.host.journal.size:
            del updated[next(iter(updated))]  # its entry has left the ring by now
        if self.waiting:
            self.changed.set()

    def hello(self) -> dict[str, Any]:
        return {"worker": self.index, "pid": os.getpid(),
                "scenario": scenario_digest(self.host.scenario_text)}

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
        return web.json_response({**self.hello(), "requests_by_path": self.host.paths()})

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
        for e in self.host.journal:
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
            scenario = await self.host.load(text, PUT_SCENARIO_PATH,
                                             request.query.get("operator") == "1")
        except ScenarioError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if time.monotonic() > float(request.query["not_after"]):  # checked as it swaps
            return web.json_response({"error": "the swap came too late; not applied"},
                                     status=409)
        self.host.swap_in(scenario, text)
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

