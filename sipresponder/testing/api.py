"""Run sipresponder inside a test: ``async with Responder(...) as r`` or ``SyncResponder``.

The responder listens on loopback ports the OS picks, records every request in its
journal, and lets the test wait for requests, swap the scenario and reset.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ..journal import expect
from ..journal.expect import Changes, Expectation

# Defined with the journal's waiting (the admin API raises them too); tests catch them
# from here and from sipresponder.
from ..journal.expect import JournalAssertion as JournalAssertion
from ..journal.expect import VerifyFailed as VerifyFailed
from ..journal.expect import WaitTimeout as WaitTimeout
from ..journal.failure import describe as describe  # re-exported: sipresponder.api
from ..journal.record import FilterError, HeaderFilters, Journal, JournalEntry, Query
from ..scenario.bundled import bundled_names, bundled_scenario
from ..scenario.loader import load_scenario, parse_scenario
from ..scenario.model import Scenario
from ..sip.transports import Transport
from ..transport.address import ListenAddress, bind_socket, parse_listen

# The far end's refusals (the admin API answers 404 and 409); tests catch them here.
from ..transport.outbound import CannotSend as CannotSend
from ..transport.outbound import NoRegistration as NoRegistration
from ..transport.outbound import UnknownDialog as UnknownDialog
from ..transport.server import Server
from ..transport.tls import TLSOptions
from . import calls

DEFAULT_LISTEN = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")
# A UDP port the OS picked may be taken for TCP by someone else: try again with a
# fresh one (each try is one bind; collisions are rare, so a few suffice).
SAME_PORT_TRIES = 8

P = ParamSpec("P")
T = TypeVar("T")


def as_scenario(source: Scenario | str | Path | None) -> Scenario:
    """A Scenario from a loaded one, a file path, a bundled scenario's name
    ("far-end", as ``serve --scenario`` takes it) or TOML text (None: the default)."""
    if source is None:
        return load_scenario(bundled_scenario())
    if isinstance(source, Scenario):
        return source
    if isinstance(source, str) and f"{source}.toml" in bundled_names():
        return load_scenario(bundled_scenario(f"{source}.toml"))
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".toml")
                                     and "\n" not in source):
        return load_scenario(source)
    return parse_scenario(source, "<inline scenario>")


def matches(entry: JournalEntry, method: str | None, uri: str | None,
            headers: dict[str, str] | None, rule: str | None) -> bool:
    """Journal filter (kept for callers of the first API): see ``Query``."""
    return Query.build(method, uri, headers, rule).matches(entry)


def _same_port_pairs(listen: list[ListenAddress]) -> list[tuple[ListenAddress, ListenAddress]]:
    """Each udp:HOST:0 listener with the first tcp:HOST:0 of the same host left."""
    tcp = [a for a in listen if a.transport == "tcp" and a.port == 0]
    pairs = []
    for udp in listen:
        if udp.transport == "udp" and udp.port == 0:
            mate = next((t for t in tcp if t.host == udp.host), None)
            if mate is not None:
                tcp.remove(mate)
                pairs.append((udp, mate))
    return pairs


def _on_port(addr: ListenAddress, pairs: list[tuple[ListenAddress, ListenAddress]],
             held: dict[ListenAddress, socket.socket]) -> ListenAddress:
    """``addr`` with the port of the UDP socket bound for its pair, if it has one."""
    for udp, tcp in pairs:
        if addr in (udp, tcp):
            return ListenAddress(addr.transport, addr.host, held[udp].getsockname()[1])
    return addr


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name}: expected a number of seconds >= 0, got {value!r}")
    return float(value)


class BlockingCall(RuntimeError):
    """A SyncResponder call that would block the event loop of the calling thread."""


class Responder:
    """An in-process responder for tests (asyncio).

    ``listen`` may name tls:, ws: and wss: listeners too; ``tls`` says where their
    certificate comes from (default: the self-signed lab certificate).
    """

    def __init__(self, scenario: Scenario | str | Path | None = None,
                 listen: list[str] | tuple[str, ...] = DEFAULT_LISTEN,
                 journal_size: int = 1000, *, tls: TLSOptions | None = None) -> None:
        self._scenario = as_scenario(scenario)
        self._listen = [parse_listen(x) for x in listen]
        self._tls = tls
        self.journal = Journal(journal_size)
        self.server: Server | None = None
        self.addresses: list[ListenAddress] = []
        self.changes: Changes | None = None  # what wakes wait_for and verify
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, *, reuse_port: bool = False,
                    shared_udp: dict[ListenAddress, socket.socket] | None = None) -> Responder:
        """Listen; ``reuse_port`` and ``shared_udp`` are for a worker of ``--workers``
        (see ops/supervisor.py). A UDP and a TCP listener on the same host, both on
        port 0, share the one port the OS picks, as a real SIP server's do (RFC 3261
        18.2.1), so that a client's fallback from UDP to TCP finds the same port."""
        self._loop = asyncio.get_running_loop()
        if self.changes is None:
            self.changes = Changes(self.journal)
        pairs = [] if reuse_port or shared_udp else _same_port_pairs(self._listen)
        for attempt in range(SAME_PORT_TRIES):
            held = {udp: bind_socket(udp) for udp, _ in pairs}
            listen = [_on_port(addr, pairs, held) for addr in self._listen]
            server = self._new_server({**(shared_udp or {}), **{
                _on_port(udp, pairs, held): sock for udp, sock in held.items()}})
            try:
                self.addresses = await server.start(listen, reuse_port=reuse_port)
            except BaseException as exc:
                for sock in held.values():  # the server closed those it had started
                    sock.close()
                if (isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and pairs
                        and attempt < SAME_PORT_TRIES - 1):
                    continue
                raise
            self.server = server
            return self
        raise AssertionError("unreachable: the last try returns or raises")

    def _new_server(self, shared_udp: dict[ListenAddress, socket.socket]) -> Server:
        server = Server(self._scenario, self._tls)
        server.shared_udp = shared_udp
        server.recorder = self.journal.record
        server.answered_recorder = self.journal.record_answered
        # What the far end sends (uac/farend.py), with the client's answers.
        server.engine.sent_recorders.append(self.journal.record_sent)
        return server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    async def __aenter__(self) -> Responder:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    def address(self, transport: Transport = "udp") -> tuple[str, int]:
        for addr in self.addresses:
            if addr.transport == transport:
                return addr.host, addr.port
        raise LookupError(f"not listening on {transport}")

    def uri(self, user: str, transport: Transport = "udp") -> str:
        host, port = self.address(transport)
        host = f"[{host}]" if ":" in host else host
        suffix = "" if transport == "udp" else f";transport={transport}"
        if transport == "wss":
            suffix = ";transport=ws"  # RFC 7118 5.2 names only "ws", for ws and wss alike
        return f"sip:{user}@{host}:{port}{suffix}"

    def ws_url(self, transport: Transport = "ws") -> str:
        """The URL a WebSocket client connects to: ws://127.0.0.1:PORT/ (or wss://)."""
        host, port = self.address(transport)
        host = f"[{host}]" if ":" in host else host
        return f"{transport}://{host}:{port}/"

    @property
    def tls_certificate(self) -> Path | None:
        """The certificate tls:/wss: clients should trust (None before any is loaded)."""
        return self.server.tls_certificate if self.server is not None else None

    def requests(self, method: str | None = None, uri: str | None = None,
                 headers: HeaderFilters | None = None, rule: str | None = None,
                 since: int | None = None, *, direction: str | None = None,
                 code: int | None = None, dtmf: str | None = None) -> list[JournalEntry]:
        """Journal entries matching the filters (``since``: sequence numbers above it;
        ``direction``: "received" or "sent", the requests the responder sent itself;
        ``code``: a status among the entry's codes, for a sent request the client's
        answer); uri and header values are globs where only ``*`` is special."""
        return Query.build(method, uri, headers, rule, since, direction, code, dtmf).select(
            self.journal)

    def _own_loop(self, call: str) -> asyncio.AbstractEventLoop:
        """The running loop, when it is the one the responder started on: its journal
        events wake only waiters on that loop, so a wait on another would see nothing."""
        loop = asyncio.get_running_loop()
        if self.changes is None or self.server is None:
            raise RuntimeError(f"Responder.{call}(): the responder is not running "
                               "(use `async with Responder(...)` or await start())")
        if loop is not self._loop:
            raise RuntimeError(
                f"Responder.{call}() awaited on another event loop than the one the "
                "responder started on: give the test and the fixture the same loop "
                "scope (pytest-asyncio's loop_scope)")
        return loop

    async def watch(self, query: Query, deadline: float,
                    done: Callable[[int], bool]) -> list[JournalEntry]:
        """The entries matching ``query`` once ``done(count)`` holds or at ``deadline``
        (the loop's clock), whichever comes first; woken by each new journal entry."""
        assert self.changes is not None, "the responder is not running"
        return await expect.watch(self.journal, query, deadline, done, self.changes.next)

    async def wait_for(self, method: str | None = None, uri: str | None = None, *,
                       headers: HeaderFilters | None = None,
                       rule: str | None = None, since: int | None = None, count: int = 1,
                       timeout: float = 5.0, direction: str | None = None,
                       code: int | None = None, dtmf: str | None = None
                       ) -> list[JournalEntry]:
        """Wait until at least ``count`` matching requests arrived (or were sent, with
        ``direction="sent"``); ``WaitTimeout`` (an AssertionError) listing the journal
        if ``timeout`` passes first."""
        __tracebackhide__ = True  # a failed expectation is the test's line, not ours
        query = Query.build(method, uri, headers, rule, since, direction, code, dtmf)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise FilterError(f"count: expected an integer >= 1 (at least), got {count!r}; "
                              "verify(..., none=True) asserts that nothing arrived")
        timeout = _seconds("timeout", timeout)
        self._own_loop("wait_for")
        return await expect.wait_for(self.journal, self.watch, query, count, timeout)

    async def verify(self, method: str | None = None, uri: str | None = None, *,
                     headers: HeaderFilters | None = None,
                     rule: str | None = None, since: int | None = None,
                     exactly: int | None = None, at_most: int | None = None,
                     none: bool = False, within: float = 1.0, timeout: float = 5.0,
                     direction: str | None = None, code: int | None = None,
                     dtmf: str | None = None) -> list[JournalEntry]:
        """Assert how many matching requests arrive (with ``direction="sent"``: how many
        the responder sent; ``code=200``: answered 200, so that
        ``verify("BYE", direction="sent", code=200, exactly=1)`` says the client
        answered our BYE with 200 once); give one of:

        - ``none=True``: none by the end of ``within`` seconds;
        - ``at_most=N``: no more than N by the end of ``within`` seconds;
        - ``exactly=N``: N within ``timeout`` seconds, then no more for ``within``
          seconds (the settle window).

        Requests already in the journal count (narrow with ``since``). A count over the
        limit fails at once, without waiting out the window. Returns the matching
        entries; ``VerifyFailed`` (an AssertionError) lists the journal otherwise.
        """
        __tracebackhide__ = True  # a failed expectation is the test's line, not ours
        query = Query.build(method, uri, headers, rule, since, direction, code, dtmf)
        expectation = Expectation.build(exactly, at_most, none)
        within, timeout = _seconds("within", within), _seconds("timeout", timeout)
        self._own_loop("verify")
        return await expect.verify(self.journal, self.watch, query, expectation, within,
                                   timeout)

    async def verify_sequence(self, steps: Sequence[Query | Mapping[str, Any]], *,
                              call_id: str | None = None, timeout: float = 5.0
                              ) -> list[JournalEntry]:
        """Assert that these requests came, in this order, within one call (the call
        ``call_id`` names; else any one call): each step a ``Query`` or a dict of its
        filters, e.g. ``[{"method": "INVITE"}, {"method": "ACK"}, {"method": "BYE",
        "direction": "sent", "code": 200}]``; other entries may come between them.
        Waits up to ``timeout`` for the sequence to be complete; returns the entry each
        step found, or raises ``VerifyFailed`` naming the step not found after which
        entry, with the call's entries in order."""
        __tracebackhide__ = True  # a failed expectation is the test's line, not ours
        queries = expect.steps_of(steps)
        if call_id is not None and not isinstance(call_id, str):
            raise FilterError(f"call_id: expected a string, got {call_id!r}")
        timeout = _seconds("timeout", timeout)
        self._own_loop("verify_sequence")
        return await expect.verify_sequence(self.journal, self.watch, queries, call_id,
                                            timeout)

    def set_scenario(self, scenario: Scenario | str | Path) -> None:
        """Swap the scenario atomically (a bad one raises ScenarioError, the old stays)."""
        loaded = as_scenario(scenario)
        self._scenario = loaded
        if self.server is not None:
            self.server.set_scenario(loaded)

    def reset(self) -> None:
        """Forget the journal, the sequence counters and the named states (the
        scenario stays)."""
        self.journal.clear()
        self.reset_states()

    def states(self) -> dict[str, object]:
        """The named states and sequence counters of the stateful rules, by scope and
        key: {"states": [{scope, key, state}], "counters": [{rule, scope, key, count}]}
        (a key absent from "states" is in "start")."""
        return self.server.engine.states.snapshot() if self.server is not None else {
            "states": [], "counters": []}

    def reset_states(self) -> None:
        """Every scope key back to "start" and every sequence to its first step."""
        if self.server is not None:
            self.server.engine.states.reset()

    # -- the far end, driven from the test ------------------------------------------
    def _running(self, call: str) -> Server:
        if self.server is None:
            raise RuntimeError(f"Responder.{call}(): the responder is not running "
                               "(use `async with Responder(...)` or await start())")
        return self.server

    def dialogs(self) -> list[dict[str, object]]:
        """The far end's live dialogs: call_id, local_tag, remote_tag, local, remote,
        remote_target, transport, kind ("call" or "subscription"), steps_left."""
        return self.server.far_dialogs() if self.server is not None else []

    def call(self, target: str, *, sdp: str | None = None,
             headers: dict[str, Any] | None = None, body: str | None = None,
             content_type: str | None = None, then: list[dict[str, Any]] | None = None,
             transport: Transport | None = None, method: str = "INVITE") -> str:
        """Call ``target`` (a SIP URI with a literal IP address; ``transport=`` in it,
        or ``transport``, picks the transport) in: an INVITE with an SDP offer
        (``sdp``: its direction, "none" for no offer), then the ``then`` steps
        (``[[rule.then]]`` tables as dicts) in the dialog its 2xx makes. Returns the
        Call-ID at once; the answer is the journal's. ValueError for bad input,
        CannotSend when it cannot go (over TCP, TLS and WebSocket only on a
        connection the client opened). ``method``: another request out of any dialog
        instead of the INVITE (an unsolicited NOTIFY of message-summary, a MESSAGE),
        the ``then`` steps after it to the same target on the same Call-ID."""
        steps = (calls.step(method, sdp=sdp, headers=headers, body=body,
                            content_type=content_type), *calls.then(then))
        return self._running("call").far_call(target, steps, transport)

    def call_registered(self, aor: str, *, sdp: str | None = None,
                        headers: dict[str, Any] | None = None, body: str | None = None,
                        content_type: str | None = None,
                        then: list[dict[str, Any]] | None = None,
                        method: str = "INVITE") -> str:
        """``call`` the Contact that the latest REGISTER for ``aor`` (its To, answered
        2xx, not Expires 0) bound, from the listener or on the connection it came in
        on (behind NAT: to the address it came from). NoRegistration when none."""
        steps = (calls.step(method, sdp=sdp, headers=headers, body=body,
                            content_type=content_type), *calls.then(then))
        server = self._running("call_registered")
        binding = calls.registered(self.journal, aor, now=self.journal.clock())
        return server.far_call(binding.contact, steps, binding.transport,
                               peer=binding.remote, local=binding.local)

    def send(self, call_id: str, method: str, *, sdp: str | None = None,
             headers: dict[str, Any] | None = None, body: str | None = None,
             content_type: str | None = None) -> None:
        """Send ``method`` (BYE, INVITE for a re-INVITE, UPDATE, INFO, MESSAGE, NOTIFY,
        REFER, OPTIONS) now in the far end's live dialog of ``call_id`` (or a call the
        client made that a rule without steps answered 2xx, found in the journal, if
        no BYE ended it); ``sdp``: a re-INVITE's or UPDATE's offer direction. Returns
        once it is sent (the answer is the journal's). UnknownDialog, ValueError,
        CannotSend name why not."""
        step = calls.step(method, sdp=sdp, headers=headers, body=body,
                          content_type=content_type)
        server = self._running("send")
        try:
            server.far_send(call_id, step)
        except UnknownDialog:
            # A call the client made to a rule without steps: the far end kept no
            # dialog (the stateless path pays nothing), the journal has what makes one.
            call = calls.answered_call(self.journal, call_id)
            if call is None:
                raise
            server.far_adopt(call.raw, call.transport, call.remote, call.local,
                             call.local_tag)
            server.far_send(call_id, step)


class SyncResponder:
    """The same for synchronous tests: the responder runs on its own event-loop thread."""

    def __init__(self, scenario: Scenario | str | Path | None = None,
                 listen: list[str] | tuple[str, ...] = DEFAULT_LISTEN,
                 journal_size: int = 1000, *, tls: TLSOptions | None = None) -> None:
        self._async = Responder(scenario, listen, journal_size, tls=tls)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="sipresponder")

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> SyncResponder:
        self._thread.start()
        self._call(self._async.start())
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._async.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SyncResponder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def journal(self) -> Journal:
        return self._async.journal

    @property
    def addresses(self) -> list[ListenAddress]:
        return self._async.addresses

    def address(self, transport: Transport = "udp") -> tuple[str, int]:
        return self._async.address(transport)

    def uri(self, user: str, transport: Transport = "udp") -> str:
        return self._async.uri(user, transport)

    def ws_url(self, transport: Transport = "ws") -> str:
        return self._async.ws_url(transport)

    @property
    def tls_certificate(self) -> Path | None:
        return self._async.tls_certificate

    def requests(self, *args: Any, **kwargs: Any) -> list[JournalEntry]:
        return self._call(_immediate(self._async.requests, *args, **kwargs))

    def wait_for(self, *args: Any, timeout: float = 5.0, **kwargs: Any) -> list[JournalEntry]:
        """``Responder.wait_for`` from this thread (which it blocks meanwhile)."""
        __tracebackhide__ = True
        _refuse_in_event_loop("wait_for")
        future = asyncio.run_coroutine_threadsafe(
            self._async.wait_for(*args, timeout=timeout, **kwargs), self._loop)
        return _result(future, _bound(timeout))

    def verify(self, *args: Any, within: float = 1.0, timeout: float = 5.0,
               **kwargs: Any) -> list[JournalEntry]:
        """``Responder.verify`` (exactly=N, at_most=N or none=True) from this thread
        (which it blocks meanwhile)."""
        __tracebackhide__ = True
        _refuse_in_event_loop("verify")
        future = asyncio.run_coroutine_threadsafe(
            self._async.verify(*args, within=within, timeout=timeout, **kwargs), self._loop)
        return _result(future, _bound(timeout) + _bound(within))

    def verify_sequence(self, steps: Sequence[Query | Mapping[str, Any]], *,
                        call_id: str | None = None, timeout: float = 5.0
                        ) -> list[JournalEntry]:
        """``Responder.verify_sequence`` from this thread (which it blocks meanwhile)."""
        __tracebackhide__ = True
        _refuse_in_event_loop("verify_sequence")
        future = asyncio.run_coroutine_threadsafe(
            self._async.verify_sequence(steps, call_id=call_id, timeout=timeout), self._loop)
        return _result(future, _bound(timeout))

    def set_scenario(self, scenario: Scenario | str | Path) -> None:
        self._call(_immediate(self._async.set_scenario, scenario))

    def reset(self) -> None:
        self._call(_immediate(self._async.reset))

    def states(self) -> dict[str, object]:
        return self._call(_immediate(self._async.states))

    def reset_states(self) -> None:
        self._call(_immediate(self._async.reset_states))

    def dialogs(self) -> list[dict[str, object]]:
        return self._call(_immediate(self._async.dialogs))

    def call(self, target: str, **kwargs: Any) -> str:
        """``Responder.call`` on the responder's thread."""
        return self._call(_immediate(self._async.call, target, **kwargs))

    def call_registered(self, aor: str, **kwargs: Any) -> str:
        return self._call(_immediate(self._async.call_registered, aor, **kwargs))

    def send(self, call_id: str, method: str, **kwargs: Any) -> None:
        """``Responder.send`` on the responder's thread."""
        self._call(_immediate(self._async.send, call_id, method, **kwargs))


def _refuse_in_event_loop(call: str) -> None:
    """BlockingCall when this thread runs an event loop (an async test): blocking it
    for seconds would stall every client on that loop, the one under test included,
    and the wait would then blame the client for what never got sent."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise BlockingCall(
        f"SyncResponder.{call}() would block the running event loop of this thread, and "
        "with it the client under test: in an async test use the sip_responder_async "
        f"fixture (a Responder) and `await sip_responder_async.{call}(...)`")


def _result(future: concurrent.futures.Future[T], timeout: float) -> T:
    """The future's result; a failed expectation or a refused argument is raised with
    the traceback cut here, so that pytest shows the test's line and the message, not
    the frames of concurrent.futures and of the responder's thread."""
    __tracebackhide__ = True
    try:
        return future.result(timeout)
    except (AssertionError, ValueError) as exc:
        if not future.done() or future.exception() is not exc:
            raise
        raise exc.with_traceback(None) from None


def _bound(seconds: object) -> float:
    """How long this thread waits for the loop's answer: the call's own time, plus a
    margin; a bad value is the coroutine's to refuse, so it gets a plain bound here."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        return 30.0
    return float(seconds) + 5


async def _immediate(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a plain function on the responder's loop thread (the engine is not thread-safe)."""
    return fn(*args, **kwargs)
