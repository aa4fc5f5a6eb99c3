"""The web console's routes on the admin app: the page, its assets, the live event stream,
the ladder, the pcap export, the scenario check, rules with hits and metrics as JSON.

``add_console(app, host, ...)`` adds them to the admin ``web.Application`` (admin.py
calls it); the page and its assets are package data in ``ops/console/`` (nothing from
a CDN: it works offline). The event stream is server-sent events fed by the
journal's listeners: every new entry, a later response to an entry (``update``),
a cleared journal, a scenario swap. The ladder and the pcap file are built by the
sans-I/O modules ``ops.ladder`` and ``ops.pcap``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

from aiohttp import web

from ..journal.record import JournalEntry, Query
from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from ..scenario.positions import error_position, rule_tables, rule_text, section_start
from ..scenario.shadow import shadow_warnings
from ..uas.outcome import KINDS
from .host import AdminHost, Readings
from .ladder import ladder
from .pcap import write_pcap
from .pushed import load_pushed

log = logging.getLogger("sipresponder")

STATIC = Path(__file__).with_name("console")  # index.html, JS, CSS, icons (package data)
KEEPALIVE = 15.0  # seconds between ": keepalive" comments on an idle event stream
# The event streams served at once (--admin-max-event-clients); one more gets a 503.
MAX_EVENT_CLIENTS = 32
# What one stream may lag behind, in events and in octets, before it is cut with a final
# 'overflow' event (it reconnects and gets the journal afresh): what a stuck browser
# tab or a client that never reads can hold. The octets are shared by every stream
# queued the same event, so the sum over clients is bounded by this too.
QUEUE_EVENTS = 1000
QUEUE_OCTETS = 4 << 20
# Seconds a cut stream has to take its last event before its connection is aborted:
# a client that never reads would otherwise keep its slot and its socket buffers.
CUT_GRACE = 10.0
SNAPSHOT_CHUNK = 64 << 10  # octets of the journal written at once to a new stream
CHECK_PATH = "<POST /api/scenario/check>"  # names the text in ScenarioError messages
LADDER_KEYS = ("call_id", "seq")  # GET /api/ladder and /api/requests.pcap, besides filters
# Where ?token= stands in for the Bearer header: what a browser loads without script
# control over its headers (the page, its assets, EventSource).
QUERY_TOKEN_PATHS = ("/", "/console", "/api/events")
QUERY_TOKEN_PREFIX = "/console/"


class ConsoleHost(Protocol):
    """What the console reads of the admin API (ops.admin.Admin): the host it runs on
    (ops/host.py), and how many event streams it serves at once."""

    host: AdminHost
    max_event_clients: int


# No other site may frame the console (a framed page can be clicked through).
NO_FRAMES = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
TOKEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sipresponder console: token</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{font:16px system-ui,sans-serif;max-width:30rem;margin:4rem auto;padding:0 1rem}}
input,button{{font:inherit;padding:.4rem}}input{{width:100%;box-sizing:border-box;margin:.5rem 0}}
@media (prefers-color-scheme:dark){{body{{background:#16181c;color:#e8e8e8}}}}
</style></head><body>
<h1>sipresponder console</h1>
<p>This admin API asks for its token{wrong}.</p>
<form method="get" action="./">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Open the console</button>
</form>
<p>Whoever started it set the token with <code>--admin-token-file</code>,
<code>SIPRESPONDER_ADMIN_TOKEN</code> or <code>--admin-token</code>.</p>
</body></html>
"""


def wants_token_page(request: web.Request) -> bool:
    """A browser opening the console (not an API client, which gets the JSON 401)."""
    return (request.method == "GET" and request.path in ("/", "/console")
            and "text/html" in request.headers.get("Accept", ""))


def token_page(request: web.Request) -> web.Response:
    """The 401 a browser gets without the token: a form that asks for it (no script)."""
    wrong = "; the one given is not it" if "token" in request.query else ""
    return web.Response(
        status=401, text=TOKEN_PAGE.format(wrong=wrong), content_type="text/html",
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store",
                 "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                            "form-action 'self'; frame-ancestors 'none'",
                 "X-Frame-Options": "DENY"})


EntryJSON = Callable[[JournalEntry], dict[str, Any]]
QueryParams = Callable[[web.Request, tuple[str, ...]], Query]


def query_token_allowed(request: web.Request) -> bool:
    """Whether ``?token=`` may authenticate this request (GET of the page, an asset or
    the event stream; never an API call that changes or reads more)."""
    return request.method == "GET" and (
        request.path in QUERY_TOKEN_PATHS or request.path.startswith(QUERY_TOKEN_PREFIX))


class EventStream:
    """One client's queue of encoded events, bounded by the hub; ``ended``: nothing more
    will be queued (cut, or the app shuts down), send what is left and stop."""

    __slots__ = ("chunks", "deadline", "ended", "octets", "ready", "transport")

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self.chunks: list[bytes] = []  # taken whole (take), so a list does
        self.octets = 0
        self.ended = False
        self.ready = asyncio.Event()
        self.transport = transport
        self.deadline: asyncio.TimerHandle | None = None

    def take(self) -> bytes | None:
        """Everything queued, joined; None once ended and empty."""
        if not self.chunks:
            return None if self.ended else b""
        data = b"".join(self.chunks)
        self.chunks.clear()
        self.octets = 0
        self.ready.clear()
        return data

    async def next(self, timeout: float) -> bytes | None:
        """What to write next: queued events, a keepalive after ``timeout`` idle seconds,
        or None at the end."""
        if not self.chunks and not self.ended:
            self.ready.clear()
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return b": keepalive\n\n"
        return self.take()

    def abort(self) -> None:
        """Drop the connection and what its socket still holds (it stopped reading)."""
        # uvloop's transports do not derive from asyncio's classes: no isinstance.
        transport = cast("asyncio.Transport | None", self.transport)
        if transport is not None and not transport.is_closing():
            transport.abort()


class EventHub:
    """The open event streams, each with its own bounded queue."""

    def __init__(self, max_events: int = QUEUE_EVENTS, max_octets: int = QUEUE_OCTETS,
                 grace: float = CUT_GRACE) -> None:
        self.open: set[EventStream] = set()  # every stream being served
        self.live: set[EventStream] = set()  # those still queued new events
        self.max_events = max_events
        self.max_octets = max_octets
        self.grace = grace
        self.cut = 0  # streams cut for falling behind, since start

    def subscribe(self, transport: asyncio.BaseTransport | None) -> EventStream:
        stream = EventStream(transport)
        self.open.add(stream)
        self.live.add(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        # A cut stream's deadline stays: ending the response may still wait on a
        # client that does not read.
        self.open.discard(stream)
        self.live.discard(stream)
        stream.chunks.clear()
        stream.octets = 0

    def publish(self, event: str, data: Callable[[], object]) -> None:
        """Send ``event`` to every stream; ``data`` is built (and encoded) only when one
        is open, so a journal without watchers pays nothing."""
        if not self.live:
            return
        try:
            chunk = sse(event, data())
        except Exception:
            # Called from the journal, inside the transport's receive and the engine's
            # timers: a bug here must cost one event, never a message or a timer.
            log.exception("console: cannot encode the %s event", event)
            return
        for stream in list(self.live):
            if (len(stream.chunks) >= self.max_events
                    or stream.octets + len(chunk) > self.max_octets):
                self._cut(stream)
                continue
            stream.chunks.append(chunk)
            stream.octets += len(chunk)
            stream.ready.set()

    def _cut(self, stream: EventStream) -> None:
        """End a stream that fell behind: its queue is dropped for one last event that
        says why, and its connection is aborted if it does not take it in time."""
        waiting = len(stream.chunks)
        self.live.discard(stream)
        self.cut += 1
        stream.chunks.clear()
        why = (f"this event stream fell {waiting} events ({stream.octets} octets) behind "
               f"(at most {self.max_events} events, {self.max_octets} octets) and was "
               f"ended; reconnect to get the journal afresh")
        stream.chunks.append(sse("overflow", {"error": why}))
        stream.octets = len(stream.chunks[0])
        stream.ended = True
        stream.ready.set()
        stream.deadline = asyncio.get_running_loop().call_later(self.grace, stream.abort)

    def close_all(self) -> None:
        """End every stream (the app shuts down); one stuck writing is aborted, so that
        shutting down does not wait for a client that does not read."""
        for stream in list(self.open):
            self.live.discard(stream)
            stream.ended = True
            stream.ready.set()
            transport = cast("asyncio.Transport | None", stream.transport)
            if transport is not None and transport.get_write_buffer_size():
                stream.abort()

    def stats(self) -> dict[str, int]:
        """What the streams hold now (GET /api/events/stats): queued here, and written
        but still in the connections' send buffers (a client that does not read)."""
        buffered = 0
        for stream in self.open:
            transport = cast("asyncio.Transport | None", stream.transport)
            if transport is not None and not transport.is_closing():
                buffered += transport.get_write_buffer_size()
        return {"clients": len(self.open), "receiving": len(self.live),
                "queued_events": sum(len(s.chunks) for s in self.open),
                "queued_octets": sum(s.octets for s in self.open),
                "buffered_octets": buffered, "cut": self.cut,
                "max_events": self.max_events, "max_octets": self.max_octets}


def sse(event: str, data: object) -> bytes:
    """One server-sent event (json.dumps never writes a line break)."""
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class Console:
    """The console's handlers around the admin host."""

    def __init__(self, admin: ConsoleHost, entry_json: EntryJSON, query: QueryParams) -> None:
        self.admin = admin
        self.entry_json = entry_json
        self.query = query
        self.hub = EventHub()
        self.started = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def host(self) -> AdminHost:
        return self.admin.host

    @property
    def readings(self) -> Readings:
        return self.admin.host.readings

    # -- wiring ----------------------------------------------------------------------------
    def attach(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/", self._index)
        router.add_get("/console", self._to_index)
        router.add_get("/console/{path:.+}", self._static)
        router.add_get("/api/events", self._events, allow_head=False)  # a stream never ends
        router.add_get("/api/events/stats", self._event_stats)
        router.add_get("/api/ladder", self._ladder)
        router.add_get("/api/requests.pcap", self._pcap)
        router.add_get(r"/api/requests/{seq:\d+}", self._entry)
        router.add_post("/api/scenario/check", self._check)
        router.add_get("/api/rules", self._rules)
        router.add_get("/api/metrics.json", self._metrics)
        app.on_startup.append(self._listen)
        app.on_shutdown.append(self._shutdown)
        app.on_cleanup.append(self._unlisten)

    async def _listen(self, app: web.Application) -> None:
        journal = self.host.journal
        journal.listeners.append(self._entry_added)
        journal.update_listeners.append(self._entry_updated)
        journal.clear_listeners.append(self._cleared)
        self._loop = asyncio.get_running_loop()
        self.host.scenario_listeners.append(self._swapped)

    async def _shutdown(self, app: web.Application) -> None:
        self.hub.close_all()  # open streams end, so the runner's cleanup does not wait

    async def _unlisten(self, app: web.Application) -> None:
        journal = self.host.journal
        for listeners, listener in ((journal.listeners, self._entry_added),
                                    (journal.update_listeners, self._entry_updated)):
            if listener in listeners:
                listeners.remove(listener)
        for callbacks, callback in ((journal.clear_listeners, self._cleared),
                                    (self.host.scenario_listeners, self._swapped)):
            if callback in callbacks:
                callbacks.remove(callback)

    def _swapped(self) -> None:
        if self._loop is not None:
            # Later: whoever swapped may update scenario_text right after, and the
            # rules' lines are read from it.
            self._loop.call_soon(self._scenario_swapped)

    def _entry_added(self, entry: JournalEntry) -> None:
        self.hub.publish("entry", lambda: self.entry_json(entry))

    def _entry_updated(self, entry: JournalEntry) -> None:
        self.hub.publish("update", lambda: self.entry_json(entry))

    def _cleared(self) -> None:
        self.hub.publish("cleared", dict)

    def _scenario_swapped(self) -> None:
        # A new scenario's rules have no hits yet.
        self.hub.publish("scenario", lambda: {"rules": self.rules_json({})})

    # -- the page --------------------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        response = self._file(STATIC / "index.html")
        # Never inside another site's frame: a page there could trick a click on Apply.
        response.headers.update(NO_FRAMES)
        return response

    async def _to_index(self, request: web.Request) -> web.StreamResponse:
        query = f"?{request.query_string}" if request.query_string else ""
        raise web.HTTPFound(f"/{query}")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        base = STATIC.resolve()
        path = (base / request.match_info["path"]).resolve()
        if not path.is_relative_to(base):
            return web.json_response({"error": "no such console asset"}, status=404)
        return self._file(path)

    @staticmethod
    def _file(path: Path) -> web.StreamResponse:
        if not path.is_file():
            # The install path is not the client's business (and tells an attacker
            # where the package lives).
            what = ("the console page is not installed" if path.name == "index.html"
                    else "no such console asset")
            return web.json_response({"error": what}, status=404)
        # no-cache: revalidated each load, so an upgraded package never runs old scripts.
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    # -- the live journal ------------------------------------------------------------------
    async def _events(self, request: web.Request) -> web.StreamResponse:
        limit = self.admin.max_event_clients
        if len(self.hub.open) >= limit:
            return web.json_response(
                {"error": f"{limit} event streams are open already, the most this admin API "
                          f"serves (--admin-max-event-clients); close one or retry later"},
                status=503, headers={"Retry-After": "5"})
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})  # a proxy (nginx) must not hold events back
        # The connection ends with the stream: a cut client sees the end at once.
        response.force_close()
        await response.prepare(request)
        # Subscribe and take the snapshot with no await between: nothing is missed or
        # sent twice. The snapshot holds the entries, not their text: each is encoded
        # as it is written, so a client that does not read holds one chunk, not the
        # journal.
        stream = self.hub.subscribe(request.transport)
        past = list(self.host.journal)
        try:
            await response.write(b"retry: 2000\n\n")
            pending: list[bytes] = []
            size = 0
            for entry in past:
                if stream.ended:
                    break  # cut while the journal was still being written
                encoded = sse("entry", self.entry_json(entry))
                pending.append(encoded)
                size += len(encoded)
                if size >= SNAPSHOT_CHUNK:
                    await response.write(b"".join(pending))
                    pending, size = [], 0
            if pending and not stream.ended:
                await response.write(b"".join(pending))
            del past, pending
            while (chunk := await stream.next(KEEPALIVE)) is not None:
                if chunk:
                    await response.write(chunk)
        except (ConnectionResetError, ConnectionError):
            pass  # the browser went away, or the stream was cut and aborted
        finally:
            self.hub.unsubscribe(stream)
        return response

    async def _event_stats(self, request: web.Request) -> web.Response:
        return web.json_response({**self.hub.stats(), "max_clients": self.admin.max_event_clients})

    def selection(self, request: web.Request) -> list[JournalEntry]:
        """The entries the journal filters, ``call_id`` and ``seq=1,2,3`` select."""
        entries = self.query(request, LADDER_KEYS).select(self.host.journal)
        q = request.query
        for key in LADDER_KEYS:
            if len(q.getall(key, [])) > 1:
                raise ValueError(f"query parameter {key!r} given more than once")
        call_id = q.get("call_id")
        if call_id is not None:
            entries = [e for e in entries if e.call_id == call_id]
        seq = q.get("seq")
        if seq is not None:
            parts = [p.strip() for p in seq.split(",") if p.strip()]
            if not parts or not all(p.isdigit() for p in parts):
                raise ValueError(f"seq={seq!r}: expected sequence numbers, e.g. seq=1,2,3")
            wanted = {int(p) for p in parts}
            entries = [e for e in entries if e.seq in wanted]
        return entries

    async def _ladder(self, request: web.Request) -> web.Response:
        return web.json_response(ladder(self.selection(request)))

    async def _pcap(self, request: web.Request) -> web.Response:
        body = write_pcap(self.selection(request))
        name = datetime.now(UTC).strftime("sipresponder-%Y%m%dT%H%M%SZ.pcap")
        return web.Response(body=body, headers={
            "Content-Type": "application/vnd.tcpdump.pcap",
            "Content-Disposition": f'attachment; filename="{name}"'})

    async def _entry(self, request: web.Request) -> web.Response:
        seq = int(request.match_info["seq"])
        for entry in self.host.journal:
            if entry.seq == seq:
                break
        else:
            return web.json_response(
                {"error": f"no journal entry {seq} (cleared, or pushed out of the ring)"},
                status=404)
        found = self.entry_json(entry)
        table = (rule_text(self.host.scenario_text, entry.rule_number)
                 if entry.rule_number is not None else None)
        found["rule_line"], found["rule_toml"] = table if table else (None, None)
        return web.json_response(found)

    # -- the scenario ----------------------------------------------------------------------
    async def _check(self, request: web.Request) -> web.Response:
        data = await request.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return web.json_response({"ok": False, "error": f"{CHECK_PATH}: not UTF-8 "
                                      f"({exc.reason})", "line": None, "column": None},
                                     status=422)
        try:
            scenario = await load_pushed(text, CHECK_PATH, self.host.base_dir)
        except ScenarioError as exc:
            line, column = error_position(exc, text)
            errors = [dict(zip(("error", "line", "column"), (str(e), *error_position(e, text)),
                               strict=True)) for e in exc.errors]
            return web.json_response({"ok": False, "error": str(exc), "line": line,
                                      "column": column, "errors": errors}, status=422)
        # count: the rules alone, as PUT /api/scenario counts them (the list ends with
        # [default], rule 0).
        return web.json_response({"ok": True, "rules": rules_json(scenario, text, None),
                                  "count": len(scenario.rules),
                                  "warnings": shadow_warnings(scenario.rules)})

    def running_scenario(self) -> Scenario | None:
        return self.readings.scenario()

    def rules_json(self, hits: Mapping[int, int]) -> list[dict[str, Any]]:
        scenario = self.running_scenario()
        if scenario is None:
            return []
        return rules_json(scenario, self.host.scenario_text, hits)

    async def _rules(self, request: web.Request) -> web.Response:
        return web.json_response(self.rules_json(await self.readings.hits()))

    # -- metrics ---------------------------------------------------------------------------
    async def _metrics(self, request: web.Request) -> web.Response:
        found = await self.readings.metrics()
        return web.json_response({**found, "uptime": time.monotonic() - self.started})


def rules_json(scenario: Scenario, text: str, hits: Mapping[int, int] | None
               ) -> list[dict[str, Any]]:
    """The scenario's rules, then its default (number 0), with their hits (None: not
    counted, 0 each) and the line of their table in ``text`` (None when not found)."""
    tables = rule_tables(text)
    lines: list[int | None] = ([t.line for t in tables] if len(tables) == len(scenario.rules)
                               else [None] * len(scenario.rules))
    default = section_start(text, "[default]")
    out = []
    for rule, line in [*zip(scenario.rules, lines, strict=True),
                       (scenario.default, default.line if default else None)]:
        out.append({"number": rule.number, "name": rule.name, "label": rule.label,
                    "hits": (hits or {}).get(rule.number, 0), "stateful": rule.stateful,
                    "line": line})
    return out


def add_console(app: web.Application, host: ConsoleHost, entry_json: EntryJSON,
                query: QueryParams) -> Console:
    """Add the console's routes to the admin ``app`` (see the module docstring)."""
    console = Console(host, entry_json, query)
    console.attach(app)
    app[CONSOLE] = console
    return console


CONSOLE = web.AppKey("console", Console)


# -- the OpenAPI document's part for the console ----------------------------------------
def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_SELECTION = [
    {"name": "call_id", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "only the entries of this Call-ID"},
    {"name": "seq", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "only these entries: comma-separated sequence numbers, e.g. 1,2,3"},
]
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_RULES = {"type": "array", "items": {"type": "object", "properties": {
    "number": {"type": "integer", "description": "1-based; 0 is [default]"},
    "name": {"type": "string"}, "label": {"type": "string"},
    "hits": {"type": "integer", "description": "requests it matched since it was loaded"},
    "stateful": {"type": "boolean"},
    "line": {"type": "integer", "nullable": True,
             "description": "the line of its table in the scenario text"}}}}
_LADDER = {"type": "object", "properties": {
    "lanes": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"type": "string", "description": "responder, or transport:host:port"},
        "label": {"type": "string"},
        "kind": {"type": "string", "enum": ["peer", "responder"]}}}},
    "calls": {"type": "array", "items": {"type": "object", "properties": {
        "call_id": {"type": "string", "nullable": True},
        "first": {"type": "number"}, "last": {"type": "number"},
        "entries": {"type": "array", "items": {"type": "integer"}},
        "summary": {"type": "string", "description": "e.g. INVITE -> 486; ACK"}}}},
    "arrows": {"type": "array", "description": "in time order", "items": {
        "type": "object", "properties": {
            "id": {"type": "string", "description": "SEQ.0 the request, SEQ.N response N-1"},
            "seq": {"type": "integer"},
            "response_index": {"type": "integer", "nullable": True},
            "from": {"type": "string"}, "to": {"type": "string"},
            "label": {"type": "string"},
            "class": {"type": "string", "enum": [
                "request", "provisional", "success", "redirect", "client-error",
                "server-error", "global-error", "absorbed", "retransmission", "rejected"]},
            "retransmission": {"type": "boolean",
                               "description": "a message sent again (a frame of its own)"},
            "time": {"type": "number"},
            "delta": {"type": "number", "description": "seconds since the previous arrow"},
            "outcome": {"type": "string", "description": "the entry's kind"},
            "sent": {"type": "boolean", "description": "the entry is a request the "
                     "responder sent: its arrow goes to the peer, the answers come back"},
            "call_id": {"type": "string", "nullable": True}}}}}}
_ENTRY_ADDITIONS: dict[str, Any] = {
    "local": {"type": "array", "description": "[ip, port] the responder received it on",
              "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
    "call_id": {"type": "string", "nullable": True},
    "cseq": {"type": "string", "nullable": True},
    "kind": {"type": "string", "enum": list(KINDS)},
    "response_times": {"type": "array", "items": {"type": "number"},
                       "description": "when each response was sent (time's clock)"},
    "rule_number": {"type": "integer", "nullable": True,
                    "description": "the matched rule's number (0: [default])"},
}


def add_console_openapi(document: dict[str, Any]) -> None:
    """Describe the console's endpoints and entry fields in the admin's OpenAPI document."""
    filters = document["paths"]["/api/requests"]["get"]["parameters"]
    document["components"]["schemas"]["Entry"]["properties"].update(_ENTRY_ADDITIONS)
    token = {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "the admin token, for clients that cannot send a header"}
    html = {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}}
    document["paths"].update({
        "/": {"get": {"summary": "the web console", "parameters": [token],
                      "responses": {"200": html, "404": _json(_ERROR_REF, "not installed")}}},
        "/console/{path}": {"get": {
            "summary": "the console's static assets (package data)",
            "parameters": [token, {"name": "path", "in": "path", "required": True,
                                   "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"},
                          "404": _json(_ERROR_REF, "no such asset")}}},
        "/console": {"get": {
            "summary": "redirects to the console (/), keeping the query (?token=)",
            "parameters": [token], "responses": {"302": {"description": "to /"}}}},
        "/api/events/stats": {"get": {
            "summary": "the event streams: open (clients), still receiving, events and "
                       "octets queued, streams cut for falling behind, and the limits",
            "responses": {"200": _json({"type": "object", "properties": {
                key: {"type": "integer"} for key in (
                    "clients", "receiving", "queued_events", "queued_octets",
                    "buffered_octets", "cut",
                    "max_events", "max_octets", "max_clients")}}, "the counts")}}},
        "/api/events": {"get": {
            "summary": "server-sent events: the journal as 'entry' events, then each new "
                       "entry, 'update' (a later response), 'cleared', 'scenario'",
            "parameters": [token],
            "responses": {"200": {"description": "the stream; a client that falls behind "
                                                 "gets a last 'overflow' event and the end",
                                  "content": {"text/event-stream": {
                                      "schema": {"type": "string"}}}},
                          "503": _json(_ERROR_REF, "the most event streams are open")}}},
        "/api/ladder": {"get": {
            "summary": "the ladder diagram of the selected entries", "parameters":
                [*filters, *_SELECTION],
            "responses": {"200": _json(_LADDER, "lanes, calls, arrows"),
                          "400": _json(_ERROR_REF, "bad filter")}}},
        "/api/requests.pcap": {"get": {
            "summary": "the selected entries as a pcap file (synthetic IP/UDP or TCP)",
            "parameters": [*filters, *_SELECTION],
            "responses": {"200": {"description": "pcap", "content": {
                "application/vnd.tcpdump.pcap": {"schema": {"type": "string",
                                                            "format": "binary"}}}},
                          "400": _json(_ERROR_REF, "bad filter")}}},
        "/api/requests/{seq}": {"get": {
            "summary": "one entry, with its rule's TOML table (rule_toml, rule_line)",
            "parameters": [{"name": "seq", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {"200": _json({"$ref": "#/components/schemas/Entry"}, "the entry"),
                          "404": _json(_ERROR_REF, "no such entry")}}},
        "/api/scenario/check": {"post": {
            "summary": "validate a scenario without applying it",
            "requestBody": {"required": True, "content": {"application/toml": {
                "schema": {"type": "string"}}}},
            "responses": {
                "200": _json({"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "rules": _RULES,
                    "count": {"type": "integer", "description": "the rules, [default] not "
                              "counted (as PUT /api/scenario counts them)"},
                    "warnings": {"type": "array", "items": {"type": "string"},
                                 "description": "rules that can never match"}}}, "valid"),
                "422": _json({"type": "object", "properties": {
                    "ok": {"type": "boolean"}, "error": {"type": "string"},
                    "line": {"type": "integer", "nullable": True},
                    "column": {"type": "integer", "nullable": True},
                    "errors": {"type": "array", "description": "every error, the first "
                               "first", "items": {"type": "object", "properties": {
                                   "error": {"type": "string"},
                                   "line": {"type": "integer", "nullable": True},
                                   "column": {"type": "integer", "nullable": True}}}}}},
                    "invalid")}}},
        "/api/rules": {"get": {"summary": "the running scenario's rules with their hits",
                               "responses": {"200": _json(_RULES, "rules, then [default]")}}},
        "/api/metrics.json": {"get": {
            "summary": "the counters as JSON: requests by method, responses by code, "
                       "requests by path (paths: compiled, engine and the engine's "
                       "reasons), the processing-time histogram (last bound null: +Inf), "
                       "uptime; under serve --workers summed over the workers",
            "responses": {"200": _json({"type": "object"}, "counters")}}},
    })
