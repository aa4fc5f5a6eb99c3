"""pytest plugin (entry point ``pytest11``): a SIP responder per test.

    def test_busy(sip_responder):                 # the bundled default scenario
        call(sip_responder.uri("486"))            # your SIP client under test
        [invite] = sip_responder.wait_for("INVITE", "sip:486@*")
        assert invite.codes == [486]
        sip_responder.verify("BYE", none=True, within=0.5)  # and nothing else came

    @pytest.mark.sip_scenario("busy.toml")        # next to this test file
    def test_with_file(sip_responder): ...

    async def test_async_client(sip_responder_async):   # pytest-asyncio
        await my_client.call(sip_responder_async.uri("486"))
        [invite] = await sip_responder_async.wait_for("INVITE", "sip:486@*")

    def test_custom(sip_responder_factory):
        r = sip_responder_factory('[[rule]]\\ncode = 603\\n')

``sip_responder`` is synchronous (a ``SyncResponder``: the responder runs on its own
thread); ``sip_responder_async`` is a ``Responder`` on the test's own event loop, for
async tests, whose client needs that loop while the test waits. Each test gets a fresh
responder and journal, so ``verify(..., exactly=N | at_most=N | none=True)`` counts
only that test's requests, and every sequence starts at its first step and every state
in "start" (``states()`` shows them, ``reset_states()`` starts them over within a test).
A UDP and a TCP listener share one port, as a real SIP server's do.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..scenario.bundled import bundled_names, bundled_scenario
from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from .api import JournalAssertion, Responder, SyncResponder, as_scenario

try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - async tests need pytest-asyncio anyway
    _async_fixture = pytest.fixture  # type: ignore[assignment]  # the same decorator shape

# pytest-asyncio (which sipresponder's `test` extra installs) warns in every folder that
# does not set this option; the fixtures here run on the test's own loop scope.
_ASYNCIO_LOOP_SCOPE = "asyncio_default_fixture_loop_scope"


@pytest.hookimpl(tryfirst=True)  # before pytest-asyncio's pytest_configure reads it
def pytest_configure(config: pytest.Config) -> None:
    try:
        unset = not config.getini(_ASYNCIO_LOOP_SCOPE)
    except ValueError:  # pytest-asyncio is not installed: nothing to set
        unset = False
    inicache = getattr(config, "_inicache", None)
    if unset and isinstance(inicache, dict):
        # "function" is the default pytest-asyncio announces; a user's own setting, in
        # the ini file or with -o, is never overridden. pytest has no public setter for
        # another plugin's ini value, so the cache getini reads first is filled in.
        inicache[_ASYNCIO_LOOP_SCOPE] = "function"
    config.addinivalue_line(
        "markers", "sip_scenario(path_or_toml): the scenario the sip_responder fixtures "
        "serve: a file (next to the test file, else in the working folder), a bundled "
        "scenario's name, or TOML text")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """The short summary (``FAILED test_x.py::test - ...``) of a failed journal
    expectation: its verdict and what arrived, instead of the exception's module path
    followed by as much of that as the terminal's width leaves."""
    report = yield
    failure = call.excinfo.value if call.excinfo is not None else None
    crash = getattr(report.longrepr, "reprcrash", None)
    if isinstance(failure, JournalAssertion) and crash is not None:
        crash.message = f"{type(failure).__name__}: {failure.headline}"
    return report


def _looks_like_a_name(text: str) -> bool:
    """A file path or a bundled scenario's name, not TOML text (which, on one line,
    has a key with "=" or a table in brackets)."""
    return "\n" not in text and (text.endswith(".toml") or not ("=" in text or "[" in text))


def resolve_scenario(value: object, test_file: Path, cwd: Path, rootdir: Path
                     ) -> Scenario | str | Path:
    """What ``@pytest.mark.sip_scenario(value)`` names: a relative path is looked for
    next to the test file, then in the working folder and the rootdir, then among the
    bundled scenarios by name (``client-torture`` or ``client-torture.toml``); TOML
    text and loaded scenarios pass through. ``pytest.fail`` names the places tried."""
    if isinstance(value, Scenario) or (isinstance(value, str) and not _looks_like_a_name(value)):
        return value
    if not isinstance(value, str | os.PathLike):
        pytest.fail(f"sip_scenario({value!r}): expected a file path, a bundled scenario's "
                    "name or TOML text", pytrace=False)
    path = Path(value)
    places = [path] if path.is_absolute() else list(dict.fromkeys(
        folder / path for folder in (test_file.parent, cwd, rootdir)))
    for place in places:
        if place.is_file():
            return place
    names = bundled_names()
    if path.name == str(value):  # no folder in it: it may name a bundled scenario
        for candidate in (path.name, f"{path.name}.toml"):
            if candidate in names:
                return bundled_scenario(candidate)
    bundled = ", ".join(n.removesuffix(".toml") for n in names)
    pytest.fail(f"sip_scenario({str(value)!r}): no such scenario file: tried "
                f"{', '.join(str(p) for p in places)}, and the bundled scenarios "
                f"({bundled})", pytrace=False)


def _marked_scenario(request: pytest.FixtureRequest) -> Scenario | None:
    """The scenario of the test's sip_scenario marker, loaded (None: the default); a
    file that does not load fails the test with the loader's one-line error."""
    marker = request.node.get_closest_marker("sip_scenario")
    if marker is None:
        return None
    if len(marker.args) != 1 or marker.kwargs:
        pytest.fail("sip_scenario: expected one argument, a path, a bundled scenario's "
                    f"name or TOML text; got {marker.args!r} {marker.kwargs!r}", pytrace=False)
    source = resolve_scenario(marker.args[0], Path(request.path), Path.cwd(),
                              Path(request.config.rootpath))
    try:
        return as_scenario(source)
    except ScenarioError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def sip_responder_factory() -> Iterator[Callable[..., SyncResponder]]:
    started: list[SyncResponder] = []

    def start(scenario: Scenario | str | Path | None = None, **kwargs: Any) -> SyncResponder:
        responder = SyncResponder(scenario, **kwargs).start()
        started.append(responder)
        return responder

    yield start
    for responder in started:
        responder.stop()


@pytest.fixture
def sip_responder(request: pytest.FixtureRequest,
                  sip_responder_factory: Callable[..., SyncResponder]) -> SyncResponder:
    return sip_responder_factory(_marked_scenario(request))


@_async_fixture
async def sip_responder_async_factory() -> AsyncIterator[Callable[..., Awaitable[Responder]]]:
    """``await sip_responder_async_factory(scenario, **kwargs)``: a started Responder on
    the test's loop, stopped after the test."""
    started: list[Responder] = []

    async def start(scenario: Scenario | str | Path | None = None,
                    **kwargs: Any) -> Responder:
        responder = await Responder(scenario, **kwargs).start()
        started.append(responder)
        return responder

    yield start
    for responder in started:
        await responder.stop()


@_async_fixture
async def sip_responder_async(
        request: pytest.FixtureRequest,
        sip_responder_async_factory: Callable[..., Awaitable[Responder]]) -> Responder:
    """A Responder on the test's own event loop: ``await r.wait_for(...)`` lets the
    client under test run while the test waits."""
    return await sip_responder_async_factory(_marked_scenario(request))
