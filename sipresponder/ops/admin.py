"""The admin HTTP API: query the journal, wait for requests, swap the scenario, metrics.

Opt-in with ``sipresponder serve --admin HOST:PORT`` (loopback unless told otherwise).
It wraps a running :class:`~sipresponder.testing.api.Responder`, so the journal filters and the
wait logic are the ones the in-process test API uses; /metrics serves ops.metrics.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..scenario.loader import ScenarioError, parse_scenario
from ..scenario.model import Scenario
from ..sip.transports import TRANSPORTS
from ..testing.api import Responder, WaitTimeout, describe, matches
from ..testing.journal import JournalEntry
from ..transport.address import split_hostport
from .metrics import responder_registry

log = logging.getLogger("sipresponder")

MAX_WAIT = 60.0  # seconds: the longest POST /api/requests/wait may hold a connection
DEFAULT_WAIT = 5.0
PUT_SCENARIO_PATH = "<PUT /api/scenario>"  # names the scenario in ScenarioError messages


def parse_admin_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or PORT / :PORT (loopback)."""
    return split_hostport(text if ":" in text else f":{text}", "127.0.0.1")


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    near = entry.near_miss
    return {
        "seq": entry.seq,
        "time": entry.time,
        "transport": entry.transport,
        "remote": [entry.remote[0], entry.remote[1]],
        "raw": entry.raw.decode("latin-1"),
        "method": entry.method,
        "uri": entry.uri,
        "headers": [[name, value] for name, value in entry.headers],
        "rule": entry.rule,
        "outcome": entry.outcome,
        "near_miss": None if near is None else {"rule": near.rule, "failed": list(near.failed)},
        "responses": [r.decode("latin-1") for r in entry.responses],
        "codes": entry.codes,
    }


def _header_filters(values: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, colon, pattern = value.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"header filter {value!r}: expected Name:glob")
        out[name.strip()] = pattern.strip()
    return out


class _Filters:
    def __init__(self, method: str | None = None, uri: str | None = None,
                 headers: dict[str, str] | None = None, rule: str | None = None,
                 since: int | None = None) -> None:
        self.method, self.uri, self.headers, self.rule, self.since = (
            method, uri, headers or None, rule, since)

    @classmethod
    def from_query(cls, request: web.Request) -> _Filters:
        q = request.query
        since = q.get("since")
        if since is not None and not since.isdigit():
            raise ValueError(f"since={since!r}: expected a sequence number")
        return cls(q.get("method"), q.get("uri"), _header_filters(q.getall("header", [])),
                   q.get("rule"), None if since is None else int(since))

    def select(self, entries: Iterable[JournalEntry]) -> list[JournalEntry]:
        return [e for e in entries
                if (self.since is None or e.seq > self.since)
                and matches(e, self.method, self.uri, self.headers, self.rule)]


class Admin:
    """The admin web app around a started Responder."""

    def __init__(self, responder: Responder, scenario_text: str, token: str | None = None,
                 base_dir: Path | None = None) -> None:
        self.responder = responder
        self.scenario_text = scenario_text
        self.token = token
        self.base_dir = base_dir
        self.registry = responder_registry(responder)
        self.runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    # -- scenario ------------------------------------------------------------------------
    def replace_scenario(self, text: str, path: str = PUT_SCENARIO_PATH) -> Scenario:
        """Validate ``text`` and swap it in atomically; ScenarioError leaves the old one."""
        scenario = parse_scenario(text, path, base_dir=self.base_dir)
        self.responder.set_scenario(scenario)
        self.scenario_text = text
        return scenario

    # -- the web app ---------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth, self._errors])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/requests", self._list)
        app.router.add_delete("/api/requests", self._reset)
        app.router.add_get("/api/requests/count", self._count)
        app.router.add_post("/api/requests/wait", self._wait)
        app.router.add_get("/api/scenario", self._get_scenario)
        app.router.add_put("/api/scenario", self._put_scenario)
        app.router.add_post("/api/reset", self._reset)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/openapi.json", self._openapi)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        bound = self.runner.addresses[0]
        self.address = (bound[0], bound[1])
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        log.warning("admin API on http://%s:%d", shown, bound[1],
                    extra={"event": "admin", "address": f"{shown}:{bound[1]}"})
        return self.address

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if self.token is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ValueError as exc:  # bad filters or body; ScenarioError is handled in PUT
            return web.json_response({"error": str(exc)}, status=400)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _list(self, request: web.Request) -> web.Response:
        found = _Filters.from_query(request).select(self.responder.journal)
        return web.json_response({"count": len(found),
                                  "entries": [entry_json(e) for e in found]})

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"count": len(_Filters.from_query(request).select(self.responder.journal))})

    async def _reset(self, request: web.Request) -> web.Response:
        self.responder.reset()
        return web.json_response({"status": "cleared"})

    async def _wait(self, request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        headers = body.get("headers") or {}
        if isinstance(headers, list):
            headers = _header_filters(headers)
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ValueError('headers: expected {"Name": "glob"} or ["Name:glob", ...]')
        filters = {k: body.get(k) for k in ("method", "uri", "rule")}
        for key, value in filters.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{key}: expected a string")
        since = body.get("since")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int)):
            raise ValueError("since: expected a sequence number")
        count, timeout = body.get("count", 1), body.get("timeout", DEFAULT_WAIT)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count: expected an integer >= 1")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ValueError("timeout: expected a number of seconds >= 0")
        timeout = min(float(timeout), MAX_WAIT)
        try:
            found = await self.responder.wait_for(headers=headers or None, count=count,
                                                  timeout=timeout, since=since, **filters)
        except WaitTimeout as exc:
            journal = list(self.responder.journal)
            return web.json_response(
                {"error": exc.summary, "listing": describe(journal),
                 "journal": [entry_json(e) for e in journal]}, status=408)
        return web.json_response({"count": len(found),
                                  "entries": [entry_json(e) for e in found]})

    async def _get_scenario(self, request: web.Request) -> web.Response:
        return web.Response(text=self.scenario_text, content_type="application/toml")

    async def _put_scenario(self, request: web.Request) -> web.Response:
        data = await request.read()
        try:
            scenario = self.replace_scenario(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            error = f"{PUT_SCENARIO_PATH}: not UTF-8 ({exc.reason})"
        except ScenarioError as exc:
            error = str(exc)
        else:
            log.info("scenario replaced over the admin API (%d rules)", len(scenario.rules),
                     extra={"event": "scenario", "path": scenario.path})
            return web.json_response({"status": "replaced", "rules": len(scenario.rules)})
        # Whoever runs the responder sees why a swap did not happen, not only the caller.
        log.warning("scenario rejected over the admin API: %s; the running scenario stays",
                    error, extra={"event": "reload_failed", "path": PUT_SCENARIO_PATH,
                                  "error": error})
        return web.json_response({"error": error}, status=400)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)


# -- the OpenAPI document ----------------------------------------------------------------
def _query(name: str, description: str, schema: dict[str, Any] | None = None,
           repeat: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False,
                             "description": description, "schema": schema or {"type": "string"}}
    if repeat:
        param["schema"] = {"type": "array", "items": {"type": "string"}}
        param["explode"] = True
    return param


_FILTERS = [
    _query("method", "exact request method, e.g. INVITE"),
    _query("uri", "request-URI glob (fnmatch), e.g. sip:486@*"),
    _query("header", "Name:glob on a header field value; repeatable", repeat=True),
    _query("rule", "matched rule: its label or its name"),
    _query("since", "only entries with a sequence number greater than this",
           {"type": "integer", "minimum": 0}),
]
_ERROR = {"description": "bad filter or body",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ENTRIES = {"description": "matching journal entries, oldest first",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Entries"}}}}
_OK = {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "sipresponder admin API", "version": "1",
             "description": "The request journal, the scenario being served, and metrics. "
                            "With --admin-token every endpoint but /healthz needs "
                            "'Authorization: Bearer TOKEN'."},
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {"get": {"summary": "liveness", "security": [],
                             "responses": {"200": _OK}}},
        "/api/requests": {
            "get": {"summary": "journal entries matching the filters", "parameters": _FILTERS,
                    "responses": {"200": _ENTRIES, "400": _ERROR}},
            "delete": {"summary": "clear the journal", "responses": {"200": _OK}},
        },
        "/api/requests/count": {"get": {
            "summary": "how many journal entries match the filters", "parameters": _FILTERS,
            "responses": {"200": {"description": "the count", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"count": {"type": "integer"}}}}}},
                "400": _ERROR}}},
        "/api/requests/wait": {"post": {
            "summary": f"wait until count matching requests arrived (timeout capped at "
                       f"{MAX_WAIT:g} s)",
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Wait"}}}},
            "responses": {
                "200": _ENTRIES, "400": _ERROR,
                "408": {"description": "timed out; the journal as it stands",
                        "content": {"application/json": {"schema": {
                            "type": "object", "properties": {
                                "error": {"type": "string"},
                                "listing": {"type": "string"},
                                "journal": {"type": "array",
                                            "items": {"$ref": "#/components/schemas/Entry"}}}}}}},
            }}},
        "/api/scenario": {
            "get": {"summary": "the TOML text being served", "responses": {"200": {
                "description": "TOML", "content": {"application/toml": {
                    "schema": {"type": "string"}}}}}},
            "put": {"summary": "validate and swap in a scenario atomically",
                    "requestBody": {"required": True, "content": {"application/toml": {
                        "schema": {"type": "string"}}}},
                    "responses": {"200": _OK, "400": {
                        "description": "invalid scenario (the old one stays); error is the "
                                       "one-line ScenarioError message",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}}}}}},
        },
        "/api/reset": {"post": {"summary": "clear the journal", "responses": {"200": _OK}}},
        "/metrics": {"get": {"summary": "Prometheus metrics from the engine's counters",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
        "/api/openapi.json": {"get": {"summary": "this document", "responses": {"200": _OK}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "Entry": {"type": "object", "properties": {
                "seq": {"type": "integer"},
                "time": {"type": "number", "description": "the server's monotonic clock"},
                "transport": {"type": "string", "enum": list(TRANSPORTS)},
                "remote": {"type": "array", "description": "[ip, port]",
                           "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                "raw": {"type": "string", "description": "the octets received, as latin-1"},
                "method": {"type": "string", "nullable": True},
                "uri": {"type": "string", "nullable": True},
                "headers": {"type": "array", "items": {
                    "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
                "rule": {"type": "string", "nullable": True},
                "outcome": {"type": "string"},
                "near_miss": {"type": "object", "nullable": True, "properties": {
                    "rule": {"type": "string"},
                    "failed": {"type": "array", "items": {"type": "string"}}}},
                "responses": {"type": "array", "items": {"type": "string"}},
                "codes": {"type": "array", "items": {"type": "integer"}},
            }},
            "Entries": {"type": "object", "properties": {
                "count": {"type": "integer"},
                "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}}},
            "Wait": {"type": "object", "properties": {
                "method": {"type": "string"},
                "uri": {"type": "string"},
                "headers": {"oneOf": [
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    {"type": "array", "items": {"type": "string"}}]},
                "rule": {"type": "string"},
                "since": {"type": "integer", "description": "only entries with a greater seq"},
                "count": {"type": "integer", "minimum": 1, "default": 1},
                "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                            "default": DEFAULT_WAIT},
            }},
        },
    },
}
