"""The admin API's host in one process: the Responder that answers SIP here.

``serve --admin`` runs the admin routes over it, and so does each worker of
``--workers`` on its private channel (ops/worker.py), which the gatherer asks.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from ..journal.expect import Done
from ..journal.record import JournalEntry, Query
from ..scenario.model import Scenario
from ..testing.api import Responder
from .metrics import path_counts, path_summary, responder_registry
from .pushed import load_pushed

# A call's or a request's keys that are its step's (the rest say whom to call).
STEP_KEYS = ("sdp", "headers", "body", "content_type", "then")


class InProcess:
    """``AdminHost`` (ops/host.py) over a started Responder."""

    def __init__(self, responder: Responder, scenario_text: str,
                 base_dir: Path | None = None) -> None:
        self.responder = responder
        self.journal = responder.journal
        self.scenario_text = scenario_text
        self.base_dir = base_dir
        self.scenario_listeners: list[Callable[[], None]] = []
        self.registry = responder_registry(responder)
        self._readings = LocalReadings(responder)

    @property
    def readings(self) -> LocalReadings:
        return self._readings

    async def refresh(self) -> None:
        """Nothing to do: the journal is this process's own."""

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[None]:
        yield  # the journal's listeners hear of every entry already

    async def watch(self, query: Query, deadline: float, done: Done) -> list[JournalEntry]:
        return await self.responder.watch(query, deadline, done)

    async def load(self, text: str, path: str, operator: bool = False) -> Scenario:
        """``text`` validated as a scenario from the API (``operator``: the operator's
        file, relayed by the gatherer of --workers), off the event loop."""
        return await load_pushed(text, path, self.base_dir, operator)

    def swap_in(self, scenario: Scenario, text: str) -> Scenario:
        """Serve ``scenario`` (loaded from ``text``) from now on."""
        self.responder.set_scenario(scenario)
        self.scenario_text = text
        for listener in self.scenario_listeners:
            listener()
        return scenario

    async def swap(self, text: str, path: str, operator: bool = False) -> Scenario:
        return self.swap_in(await self.load(text, path, operator), text)

    async def clear(self) -> None:
        self.journal.clear()

    async def reset(self) -> None:
        self.responder.reset()

    async def reset_states(self) -> None:
        self.responder.reset_states()

    async def states(self) -> dict[str, Any]:
        return self.responder.states()

    async def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def paths(self) -> dict[str, Any]:
        """Where this process's requests went (``metrics.path_counts``)."""
        server = self.responder.server
        return path_counts(server.engine.counters if server is not None else {})

    async def health(self) -> tuple[bool, dict[str, Any]]:
        paths = self.paths()
        # Where the requests so far went, and why the engine took its share: a built
        # extension says little if every INVITE takes the engine.
        return True, {"requests_by_path": paths, "requests_by_path_text": path_summary(paths)}

    async def joined(self) -> str:
        return ""

    async def dialogs(self) -> list[dict[str, Any]]:
        return self.responder.dialogs()

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        given = {key: request[key] for key in STEP_KEYS if key in request}
        if "send" in request:  # another request than an INVITE, out of any dialog
            given["method"] = request["send"]
        if "aor" in request:
            call_id = self.responder.call_registered(request["aor"], **given)
        else:
            call_id = self.responder.call(request["target"],
                                          transport=request.get("transport"), **given)
        return {"status": "calling", "call_id": call_id}

    async def send(self, call_id: str, request: dict[str, Any]) -> dict[str, Any]:
        if "send" not in request:
            raise ValueError("send: missing: the method to send")
        given = {key: request[key] for key in STEP_KEYS if key in request and key != "then"}
        self.responder.send(call_id, request["send"], **given)
        return {"status": "sent", "call_id": call_id, "method": str(request["send"]).upper()}


class LocalReadings:
    """The rules' hits and the metrics of the responder in this process."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def scenario(self) -> Scenario | None:
        server = self.responder.server
        return server.engine.scenario if server is not None else None

    async def hits(self) -> Mapping[int, int]:
        journal = self.responder.journal
        return journal.hits if journal.hits_scenario is self.scenario() else {}


    async def metrics(self) -> dict[str, Any]:
        """Requests by method, responses by code, requests by path (uas/fast.py) and
        the processing-time histogram."""
        server = self.responder.server
        requests: dict[str, int] = {}
        responses: dict[str, int] = {}
        buckets: list[list[float | int | None]] = []
        total, count = 0.0, 0
        counters: Mapping[str, int] = {}
        if server is not None:
            counters = server.engine.counters
            for key, value in sorted(counters.items()):
                kind, sep, label = key.partition(":")
                if sep and kind == "request":
                    requests[label] = value
                elif sep and kind == "response":
                    responses[label] = value
            for bound, running in server.latency.cumulative():
                # JSON has no infinity: the last bucket's bound is null.
                buckets.append([None if bound == "+Inf" else float(bound), running])
            total, count = server.latency.total, sum(server.latency.counts)
        return {"requests": requests, "responses": responses, "paths": path_counts(counters),
                "latency": {"buckets": buckets, "sum": total, "count": count}}
