"""Run sipresponder inside a test: ``async with Responder(...) as r`` or ``SyncResponder``.

The responder listens on loopback ports the OS picks, records every request in its
journal, and lets the test wait for requests, swap the scenario and reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from ..scenario.bundled import bundled_scenario
from ..scenario.loader import load_scenario, parse_scenario
from ..scenario.model import Scenario
from ..sip.transports import Transport
from ..transport.address import ListenAddress, parse_listen
from ..transport.server import Server
from ..transport.tls import TLSOptions
from .journal import Journal, JournalEntry

DEFAULT_LISTEN = ("udp:127.0.0.1:0", "tcp:127.0.0.1:0")

P = ParamSpec("P")
T = TypeVar("T")


def as_scenario(source: Scenario | str | Path | None) -> Scenario:
    """A Scenario from a loaded one, a file path, or TOML text (None: the default)."""
    if source is None:
        return load_scenario(bundled_scenario())
    if isinstance(source, Scenario):
        return source
    if isinstance(source, Path) or (isinstance(source, str) and source.endswith(".toml")
                                     and "\n" not in source):
        return load_scenario(source)
    return parse_scenario(source, "<inline scenario>")


def matches(entry: JournalEntry, method: str | None, uri: str | None,
            headers: dict[str, str] | None, rule: str | None) -> bool:
    """Journal filter: method exact, uri glob (``*``), header globs, rule label/name."""
    if method is not None and entry.method != method:
        return False
    if uri is not None and (entry.uri is None or not fnmatch.fnmatchcase(entry.uri, uri)):
        return False
    if rule is not None and (entry.rule is None or (entry.rule != rule
                                                    and f"'{rule}'" not in entry.rule)):
        return False
    for name, pattern in (headers or {}).items():
        value = entry.header(name)
        if value is None or not fnmatch.fnmatchcase(value, pattern):
            return False
    return True


class WaitTimeout(AssertionError):
    """``wait_for`` ran out of time: ``entries`` are the matching requests that did
    arrive (fewer than asked for). An AssertionError, so that a test fails with it."""

    def __init__(self, message: str, entries: list[JournalEntry], timeout: float,
                 summary: str) -> None:
        super().__init__(message)
        self.entries = entries
        self.timeout = timeout
        self.summary = summary  # the first line, without the journal listing


def describe(entries: list[JournalEntry]) -> str:
    if not entries:
        return "  (the journal is empty: nothing arrived)"
    lines = []
    for e in entries:
        miss = ""
        if e.near_miss is not None:
            miss = f"; closest {e.near_miss.rule} failed on {', '.join(e.near_miss.failed)}"
        lines.append(f"  #{e.seq} {e.transport}:{e.remote[0]}:{e.remote[1]} {e.method} {e.uri}"
                     f" -> {e.outcome}, answered {e.codes}{miss}")
    return "\n".join(lines)


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
        self._changed: asyncio.Event | None = None

    async def start(self) -> Responder:
        self.server = Server(self._scenario, self._tls)
        self.server.recorder = self.journal.record
        changed = self._changed = asyncio.Event()
        self.journal.listeners.append(lambda entry: changed.set())
        self.addresses = await self.server.start(self._listen)
        return self

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
                 headers: dict[str, str] | None = None, rule: str | None = None,
                 since: int | None = None) -> list[JournalEntry]:
        """Journal entries matching the filters (``since``: sequence numbers above it)."""
        return [e for e in self.journal if (since is None or e.seq > since)
                and matches(e, method, uri, headers, rule)]

    async def wait_for(self, method: str | None = None, uri: str | None = None, *,
                       headers: dict[str, str] | None = None, rule: str | None = None,
                       since: int | None = None, count: int = 1, timeout: float = 5.0
                       ) -> list[JournalEntry]:
        """Wait until ``count`` matching requests arrived; ``WaitTimeout`` (an
        AssertionError) listing the journal if ``timeout`` passes first."""
        assert self._changed is not None, "the responder is not running"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.requests(method, uri, headers, rule, since)
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                want = ", ".join(f"{k}={v!r}" for k, v in
                                 (("method", method), ("uri", uri), ("headers", headers),
                                  ("rule", rule)) if v is not None)
                summary = (f"expected {count} request(s) matching {want or 'anything'} "
                           f"within {timeout} s, got {len(found)}")
                raise WaitTimeout(
                    f"{summary}; the journal holds:\n" + describe(list(self.journal)),
                    found, timeout, summary)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def set_scenario(self, scenario: Scenario | str | Path) -> None:
        """Swap the scenario atomically (a bad one raises ScenarioError, the old stays)."""
        loaded = as_scenario(scenario)
        self._scenario = loaded
        if self.server is not None:
            self.server.set_scenario(loaded)

    def reset(self) -> None:
        """Forget the journal (the scenario stays)."""
        self.journal.clear()


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
        future = asyncio.run_coroutine_threadsafe(
            self._async.wait_for(*args, timeout=timeout, **kwargs), self._loop)
        return future.result(timeout + 5)

    def set_scenario(self, scenario: Scenario | str | Path) -> None:
        self._call(_immediate(self._async.set_scenario, scenario))

    def reset(self) -> None:
        self._call(_immediate(self._async.reset))


async def _immediate(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a plain function on the responder's loop thread (the engine is not thread-safe)."""
    return fn(*args, **kwargs)
