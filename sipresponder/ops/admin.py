"""The admin HTTP API: query the journal, wait for and verify requests, swap the scenario
or one rule, metrics.

Opt-in with ``sipresponder serve --admin HOST:PORT`` (loopback unless told otherwise;
elsewhere only with a token: ops/perimeter.py, which also checks Host, Origin and CSRF).
Every route is written once over an ``AdminHost`` (ops/host.py): this process's
Responder (ops/inprocess.py) or the workers of ``--workers`` (ops/gatherer.py). The
journal filters and the wait logic are the ones the in-process test API uses
(journal/expect.py); /metrics serves ops.metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..journal import expect
from ..journal.expect import Expectation, JournalAssertion, VerifyFailed, WaitTimeout
from ..journal.failure import describe
from ..journal.record import FILTERS, JournalEntry, Query, check_keys, materialize
from ..scenario.edit import RuleNotFound, delete_rule, put_rule
from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from ..scenario.nesting import TooDeep, check_json_depth
from ..scenario.positions import error_position
from ..scenario.shadow import shadow_warnings
from ..sip.transports import TRANSPORTS
from ..testing.api import Responder
from ..transport.address import ListenAddress, split_hostport
from ..transport.connections import Acceptor
from ..transport.outbound import CannotSend
from ..uas import compiled
from . import perimeter
from .consoleapi import (
    MAX_EVENT_CLIENTS,
    Console,
    add_console,
    query_token_allowed,
    token_page,
    wants_token_page,
)
from .host import AdminHost, HostFailed
from .inprocess import InProcess
from .openapi import DEFAULT_WAIT, DEFAULT_WITHIN, MAX_WAIT, OPENAPI
from .pushed import parse_pushed

log = logging.getLogger("sipresponder")

ADMIN_BACKLOG = 128  # as aiohttp's sites; connections past it wait in the kernel
PUT_SCENARIO_PATH = "<PUT /api/scenario>"  # names the scenario in ScenarioError messages
RULE_PATH = "<{method} /api/rules/{name}>"  # the same for the rule endpoints


def parse_admin_address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, or PORT / :PORT (loopback)."""
    return split_hostport(text if ":" in text else f":{text}", "127.0.0.1")


def refused_json(exc: ScenarioError, text: str) -> dict[str, Any]:
    """The body of a 400 for a scenario refused: the first error as ``error``, every
    one in ``errors``, and where the first is in ``text`` (the scenario as it would
    have been) as ``line`` and ``column`` (null when not known)."""
    line, column = error_position(exc, text)
    return {"error": str(exc), "errors": [str(e) for e in exc.errors],
            "line": line, "column": column}


def accepted_json(scenario: Scenario, **fields: Any) -> dict[str, Any]:
    """The body of a 200 for a scenario swapped in: ``fields``, the rule count and the
    ``warnings`` (rules that can never match; they do not refuse it)."""
    return {**fields, "rules": len(scenario.rules),
            "warnings": shadow_warnings(scenario.rules)}


def rule_json(scenario: Scenario, what: str, name: str) -> dict[str, Any]:
    """The body of a 200 for PUT or DELETE /api/rules/{name}; ``number`` is the rule's
    place (1 = first; null once deleted)."""
    number = next((r.number for r in scenario.rules if r.name == name), None)
    return accepted_json(scenario, status=what, rule=name, number=number)


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    materialize(entry)  # a compiled answer is journaled unparsed (the console's events)
    near = entry.near_miss
    fields = {
        "seq": entry.seq,
        "time": entry.time,
        "received_at": entry.received_at_text,
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
        "local": [entry.local[0], entry.local[1]],
        "call_id": entry.call_id,
        "cseq": entry.cseq,
        "kind": entry.kind,
        "response_times": entry.response_times,
        "retransmitted": [entry.retransmission(i) for i in range(len(entry.responses))],
        "rule_number": entry.rule_number,
        "direction": entry.direction,
        "media": entry.media.summary() if entry.media is not None else None,
    }
    # The merged journal of --workers (ops/cluster.py) says which worker answered.
    fields.update(getattr(entry, "origin", {}))
    return fields


# POST /api/calls and POST /api/dialogs/{call_id}/requests (testing/calls.py checks
# the values, as a [[rule.then]] table's).
CALL_KEYS = ("target", "aor", "transport", "send", "sdp", "headers", "body", "content_type",
             "then")
SEND_KEYS = ("send", "sdp", "headers", "body", "content_type")
# GET /api/requests[/count]
QUERY_KEYS = ("method", "uri", "header", "rule", "since", "direction", "code", "dtmf")
WAIT_KEYS = (*FILTERS, "count", "timeout")  # POST /api/requests/wait
VERIFY_KEYS = (*FILTERS, "exactly", "at_most", "none", "within", "timeout")
# POST /api/requests/verify with steps: an ordered verification, keys of its own.
SEQUENCE_KEYS = ("steps", "call_id", "timeout")


def query_from_params(request: web.Request, extra: tuple[str, ...] = ()) -> Query:
    """The journal query of a GET's parameters (``extra``: other keys the caller reads);
    a misspelled one is a ValueError (400), never a filter silently left out."""
    q = request.query
    check_keys(q.keys(), (*QUERY_KEYS, *extra), "query parameter")
    for key in ("method", "uri", "rule", "since", "direction", "code", "dtmf"):
        if len(q.getall(key, [])) > 1:
            raise ValueError(f"query parameter {key!r} given more than once")
    since = q.get("since")
    if since is not None and not (since.isascii() and since.isdigit()):
        raise ValueError(f"since={since!r}: expected a sequence number")
    code = q.get("code")
    if code is not None and not (code.isascii() and code.isdigit() and len(code) == 3):
        raise ValueError(f"code={code!r}: expected a status code 100-699")
    return Query.build(q.get("method"), q.get("uri"), q.getall("header", []), q.get("rule"),
                       None if since is None else int(since), q.get("direction"),
                       None if code is None else int(code), q.get("dtmf"))


async def json_body(request: web.Request, valid: tuple[str, ...]) -> dict[str, Any]:
    """The request's JSON object (empty without a body), its keys checked."""
    try:
        if request.can_read_body:
            text = await request.text()
            check_json_depth(text)  # before json.loads, which recurses on nesting
            body = json.loads(text)
        else:
            body = {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    except TooDeep as exc:
        raise ValueError(f"body is {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    check_keys(body, valid, "key")
    return body


def query_from_body(body: dict[str, Any]) -> Query:
    return Query.build(*(body.get(key) for key in FILTERS))


def _seconds(body: dict[str, Any], key: str, default: float) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key}: expected a number of seconds >= 0")
    return min(float(value), MAX_WAIT)


def _failed(exc: JournalAssertion, journal: list[JournalEntry], status: int,
            listing: str | None = None) -> web.Response:
    return web.json_response(
        {"error": exc.summary, "listing": describe(journal) if listing is None else listing,
         "entries": [entry_json(e) for e in exc.entries],
         "journal": [entry_json(e) for e in journal]}, status=status)


def _not_everywhere(exc: HostFailed) -> web.Response:
    log.error("%s", exc, extra={"event": "workers_failed", "error": str(exc)})
    return web.json_response({"error": str(exc),
                              "workers": {str(i): why for i, why in exc.failed.items()}},
                             status=502)


def _entries(found: list[JournalEntry]) -> web.Response:
    return web.json_response({"count": len(found), "entries": [entry_json(e) for e in found]})


class Admin:
    """The admin web app over a host (ops/host.py): a started Responder in this process
    (given as such, it is wrapped in ``InProcess``), or the workers of ``--workers``
    (ops/gatherer.py ``Cluster``)."""

    def __init__(self, host: AdminHost | Responder, scenario_text: str = "",
                 token: str | None = None, base_dir: Path | None = None) -> None:
        self.host: AdminHost = (InProcess(host, scenario_text, base_dir)
                                if isinstance(host, Responder) else host)
        self.token = token
        # Host names a browser may use for it besides IP literals and localhost
        # (--admin-host; ops/perimeter.py), and the live event streams it serves at once.
        self.hosts: frozenset[str] = frozenset()
        self.max_event_clients = MAX_EVENT_CLIENTS
        self.console: Console | None = None  # the last app()'s
        # One scenario change at a time: a rule edit reads scenario_text, then awaits
        # the load, and must not lose a change made meanwhile.
        self.changing = asyncio.Lock()
        self.runner: web.AppRunner | None = None
        self.acceptor: Acceptor | None = None
        self.accept_counters: Counter[str] = Counter()  # fd_exhausted on the admin port
        self._connecting: set[asyncio.Task[Any]] = set()
        self.address: tuple[str, int] | None = None

    @property
    def scenario_text(self) -> str:
        return self.host.scenario_text

    # -- scenario ------------------------------------------------------------------------
    def replace_scenario(self, text: str, path: str = PUT_SCENARIO_PATH) -> Scenario:
        """Validate ``text`` and swap it in atomically, on the calling thread (a host in
        this process only); ScenarioError leaves the old one."""
        host = self.host
        if not isinstance(host, InProcess):
            raise TypeError("replace_scenario swaps a scenario in this process only")
        return host.swap_in(parse_pushed(text, path, host.base_dir), text)

    async def swap(self, text: str, path: str, what: str, operator: bool = False) -> Scenario:
        """The one swap of every route and reload (``what`` says what happened, for
        the log line): ``text`` served by the host
        (``operator``: the operator's own file, SIGHUP or --watch), logged as
        ``scenario`` when done and ``scenario_refused`` when not (ScenarioError,
        HostFailed); the running scenario then stays."""
        try:
            scenario = await self.host.swap(text, path, operator)
        except (ScenarioError, HostFailed) as exc:
            log.warning("scenario rejected: %s; the running scenario stays", exc,
                        extra={"event": "scenario_refused", "path": path, "error": str(exc)})
            raise
        log.info("%s: %s (%d rules)", path, what, len(scenario.rules),
                 extra={"event": "scenario", "path": path})
        return scenario

    # -- the web app ---------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._perimeter, self._auth, self._errors,
                                           self._fresh])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/api/requests", self._list)
        app.router.add_delete("/api/requests", self._clear)
        app.router.add_get("/api/requests/count", self._count)
        app.router.add_post("/api/requests/wait", self._wait)
        app.router.add_post("/api/requests/verify", self._verify)
        app.router.add_get("/api/scenario", self._get_scenario)
        app.router.add_put("/api/scenario", self._one_change(self._put_scenario))
        app.router.add_put("/api/rules/{name}", self._one_change(self._put_rule))
        app.router.add_delete("/api/rules/{name}", self._one_change(self._delete_rule))
        app.router.add_post("/api/reset", self._reset)
        app.router.add_get("/api/state", self._states)
        app.router.add_delete("/api/state", self._reset_states)
        app.router.add_get("/api/dialogs", self._dialogs)
        app.router.add_post("/api/calls", self._call)
        app.router.add_post("/api/dialogs/{call_id:.+}/requests", self._far_send)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/openapi.json", self._openapi)
        self.console = add_console(app, self, entry_json, query_from_params)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family, backlog=ADMIN_BACKLOG)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
        return await self.start_on(sock)

    async def start_on(self, sock: socket.socket) -> tuple[str, int]:
        """Serve on a bound socket (the gatherer's: the supervisor bound it, so it stays
        the same address when this process is restarted), and say so once the host
        has what it gathers from."""
        await self.serve(sock)
        joined = await self.host.joined()
        bound = sock.getsockname()
        self.address = (bound[0], bound[1])
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        log.info("admin API on http://%s:%d%s", shown, bound[1], joined,
                 extra={"event": "admin", "address": f"{shown}:{bound[1]}"})
        return self.address

    async def serve(self, sock: socket.socket) -> None:
        """Serve the app on a bound socket through the listeners' own ``Acceptor``
        (transport/connections.py), not aiohttp's site: when file descriptors run out,
        uvloop closes waiting connections without a word and asyncio logs an error per
        attempt, where the Acceptor logs once a minute and leaves them in the backlog."""
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        server = self.runner.server
        assert server is not None  # set by setup()
        loop = asyncio.get_running_loop()
        connecting = self._connecting

        def accepted(conn: socket.socket, peer: tuple[str, int]) -> None:
            task = loop.create_task(loop.connect_accepted_socket(server, conn))
            connecting.add(task)  # the loop keeps only weak references to tasks

            def done(task: asyncio.Task[Any]) -> None:
                connecting.discard(task)
                if not task.cancelled() and task.exception() is not None:
                    conn.close()

            task.add_done_callback(done)

        host, port = sock.getsockname()[:2]
        self.acceptor = Acceptor(loop, sock, ListenAddress("tcp", host, port),
                                 self.accept_counters, accepted)
        self.acceptor.start(ADMIN_BACKLOG)

    async def close(self) -> None:
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @web.middleware
    async def _perimeter(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
        refused = perimeter.refusal(request, self.token, self.hosts)
        if refused is not None:
            return refused
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if self.token is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "")
            if not given and query_token_allowed(request):  # the console: EventSource
                given = f"Bearer {request.query.get('token', '')}"
            expected = f"Bearer {self.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                if wants_token_page(request):  # a browser opening the console
                    return token_page(request)
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

    @web.middleware
    async def _fresh(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        """The journal brought up to date before a route reads it (the gatherer merges
        the workers' journals), and followed while a console event stream is open."""
        if request.method == "GET":
            if request.path == "/api/events":
                async with self.host.following():
                    return await handler(request)
            if request.path.startswith("/api/requests") or request.path == "/api/ladder":
                await self.host.refresh()
        return await handler(request)

    def _one_change(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """``handler`` run under ``changing``: scenario changes apply in arrival order."""
        async def run(request: web.Request) -> web.StreamResponse:
            async with self.changing:
                return await handler(request)

        return run

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, fields = await self.host.health()
        return web.json_response({
            "status": "ok" if ok else "degraded",
            # "compiled" or "pure Python", and why (sipresponder/uas/compiled.py)
            "request_path": "compiled" if compiled.AVAILABLE else "pure Python",
            "request_path_detail": compiled.STATUS,
            **fields}, status=200 if ok else 503)

    async def _list(self, request: web.Request) -> web.Response:
        return _entries(query_from_params(request).select(self.host.journal))

    async def _count(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"count": len(query_from_params(request).select(self.host.journal))})

    async def _everywhere(self, change: Callable[[], Awaitable[None]]) -> web.Response:
        try:
            await change()
        except HostFailed as exc:
            return _not_everywhere(exc)
        return web.json_response({"status": "cleared"})

    async def _clear(self, request: web.Request) -> web.Response:
        return await self._everywhere(self.host.clear)

    async def _reset(self, request: web.Request) -> web.Response:
        return await self._everywhere(self.host.reset)

    async def _reset_states(self, request: web.Request) -> web.Response:
        return await self._everywhere(self.host.reset_states)

    async def _states(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(await self.host.states())
        except HostFailed as exc:
            return _not_everywhere(exc)

    async def _wait(self, request: web.Request) -> web.Response:
        body = await json_body(request, WAIT_KEYS)
        query = query_from_body(body)
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError("count: expected an integer >= 1 (at least; for none, or "
                             "exactly, use POST /api/requests/verify)")
        timeout = _seconds(body, "timeout", DEFAULT_WAIT)
        try:
            found = await expect.wait_for(self.host.journal, self.host.watch, query, count,
                                          timeout)
        except WaitTimeout as exc:
            return _failed(exc, list(self.host.journal), 408)
        return _entries(found)

    async def _verify(self, request: web.Request) -> web.Response:
        body = await json_body(request, (*VERIFY_KEYS, "steps", "call_id"))
        if "steps" in body:
            return await self._verify_sequence(body)
        if "call_id" in body:
            raise ValueError("call_id goes with steps (an ordered verification); to count "
                             'one call\'s requests, filter on headers {"Call-ID": ...}')
        query = query_from_body(body)
        expectation = Expectation.build(body.get("exactly"), body.get("at_most"),
                                        body.get("none", False))
        within = _seconds(body, "within", DEFAULT_WITHIN)
        timeout = _seconds(body, "timeout", DEFAULT_WAIT)
        try:
            found = await expect.verify(self.host.journal, self.host.watch, query,
                                        expectation, within, timeout)
        except VerifyFailed as exc:
            return _failed(exc, list(self.host.journal), 409 if exc.too_many else 408)
        return _entries(found)

    async def _verify_sequence(self, body: dict[str, Any]) -> web.Response:
        """POST /api/requests/verify with ``steps``: these requests in this order
        within one call."""
        other = [key for key in body if key not in SEQUENCE_KEYS]
        if other:
            raise ValueError(f"{', '.join(other)}: not with steps (the filters go in each "
                             f"step; with steps give only {', '.join(SEQUENCE_KEYS)})")
        steps = expect.steps_of(body["steps"])
        call_id = body.get("call_id")
        if call_id is not None and not isinstance(call_id, str):
            raise ValueError(f"call_id: expected a string, got {call_id!r}")
        timeout = _seconds(body, "timeout", DEFAULT_WAIT)
        try:
            found = await expect.verify_sequence(self.host.journal, self.host.watch, steps,
                                                 call_id, timeout)
        except VerifyFailed as exc:
            # The listing is the text's: the call that got furthest, arrows and steps.
            return _failed(exc, list(self.host.journal), 408, str(exc).partition("\n")[2])
        return _entries(found)

    async def _get_scenario(self, request: web.Request) -> web.Response:
        return web.Response(text=self.scenario_text, content_type="application/toml")

    async def _swapped(self, text: str, path: str, what: str,
                       done: Callable[[Scenario], dict[str, Any]]) -> web.Response:
        try:
            scenario = await self.swap(text, path, what)
        except ScenarioError as exc:
            return web.json_response(refused_json(exc, text), status=400)
        except HostFailed as exc:
            return _not_everywhere(exc)
        return web.json_response(done(scenario))

    async def _put_scenario(self, request: web.Request) -> web.Response:
        try:
            text = (await request.read()).decode("utf-8")
        except UnicodeDecodeError as exc:
            error = f"{PUT_SCENARIO_PATH}: not UTF-8 ({exc.reason})"
            log.warning("scenario rejected: %s; the running scenario stays", error, extra={
                "event": "scenario_refused", "path": PUT_SCENARIO_PATH, "error": error})
            return web.json_response({"error": error}, status=400)
        return await self._swapped(text, PUT_SCENARIO_PATH, "scenario replaced",
                                   lambda s: accepted_json(s, status="replaced"))

    # -- one rule by name ----------------------------------------------------------------
    def edited_rule(self, request: web.Request, data: bytes) -> tuple[str, str]:
        """The scenario text with PUT /api/rules/{name}'s rule in it (``?position=``
        places it), and what happened to the rule (added, replaced); ValueError (a
        400) for a bad body or position."""
        name = request.match_info["name"]
        for key in request.query:
            if key != "position":
                raise ValueError(f"unknown query parameter {key!r}; valid: position")
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"rule {name!r}: the body is not UTF-8 ({exc.reason})") from None
        text, added = put_rule(self.scenario_text, name, body, request.query.get("position"))
        return text, "added" if added else "replaced"

    async def _put_rule(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        text, what = self.edited_rule(request, await request.read())
        return await self._swapped(text, RULE_PATH.format(method="PUT", name=name),
                                   f"rule {name!r} {what}", lambda s: rule_json(s, what, name))

    async def _delete_rule(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            text = delete_rule(self.scenario_text, name)
        except RuleNotFound:
            return web.json_response({"error": f"no rule named {name!r}"}, status=404)
        return await self._swapped(text, RULE_PATH.format(method="DELETE", name=name),
                                   f"rule {name!r} deleted",
                                   lambda s: rule_json(s, "deleted", name))

    # -- the far end -----------------------------------------------------------------------
    async def _dialogs(self, request: web.Request) -> web.Response:
        try:
            return web.json_response({"dialogs": await self.host.dialogs()})
        except HostFailed as exc:
            return _not_everywhere(exc)

    async def _call(self, request: web.Request) -> web.Response:
        body = await json_body(request, CALL_KEYS)
        if ("target" in body) == ("aor" in body):
            raise ValueError("give the target (a SIP URI) or the aor (a registered address"
                             " of record) to call, one of them")
        for key in ("target", "aor", "transport"):
            if key in body and not isinstance(body[key], str):
                raise ValueError(f"{key}: expected a string")
        if "transport" in body and "aor" in body:
            raise ValueError("transport: an aor is called the way its REGISTER came in;"
                             " give transport with a target only")
        if "transport" in body and body["transport"] not in TRANSPORTS:
            raise ValueError(f"transport: expected one of {', '.join(TRANSPORTS)}")
        return await self._far(lambda: self.host.call(body), 202)

    async def _far_send(self, request: web.Request) -> web.Response:
        body = await json_body(request, SEND_KEYS)
        call_id = request.match_info["call_id"]
        return await self._far(lambda: self.host.send(call_id, body), 202)

    async def _far(self, act: Callable[[], Awaitable[dict[str, Any]]], status: int
                   ) -> web.Response:
        """``act``'s answer, or its refusal: 404 for a Call-ID or address of record the
        far end does not know, 409 for a request it cannot send (ValueError: 400)."""
        try:
            return web.json_response(await act(), status=status)
        except LookupError as exc:
            return web.json_response({"error": str(exc)}, status=404)
        except CannotSend as exc:
            return web.json_response({"error": str(exc)}, status=409)
        except NotImplementedError as exc:
            return web.json_response({"error": str(exc)}, status=501)
        except HostFailed as exc:
            return _not_everywhere(exc)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=await self.host.metrics(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)
