"""pytest plugin (entry point ``pytest11``): a SIP responder per test.

    def test_busy(sip_responder):                 # the bundled default scenario
        call(sip_responder.uri("486"))            # your SIP client under test
        [invite] = sip_responder.wait_for("INVITE", "sip:486@*")
        assert invite.codes == [486]
        sip_responder.verify("BYE", none=True, within=0.5)  # and nothing else came

    @pytest.mark.sip_scenario("scenarios/ci-test-double.toml")
    def test_with_file(sip_responder): ...

    def test_custom(sip_responder_factory):
        r = sip_responder_factory('[[rule]]\\ncode = 603\\n')

The fixture is synchronous (the responder runs on its own thread), so it works in
plain and in async tests alike; each test gets a fresh responder and journal, so
``verify(..., exactly=N | at_most=N | none=True)`` counts only that test's requests,
and every sequence starts at its first step and every state in "start"
(``states()`` shows them, ``reset_states()`` starts them over within a test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..scenario.model import Scenario
from .api import SyncResponder

# pytest-asyncio (which sipresponder's `test` extra installs) warns in every folder that
# does not set this option; the fixtures here are synchronous and need no event loop.
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
        "markers", "sip_scenario(path_or_toml): the scenario the sip_responder fixture serves")


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
    marker = request.node.get_closest_marker("sip_scenario")
    scenario = None
    if marker is not None:
        scenario = marker.args[0]
        if isinstance(scenario, str) and scenario.endswith(".toml") and "\n" not in scenario:
            path = Path(scenario)
            if not path.is_absolute() and not path.exists():
                path = Path(str(request.config.rootpath)) / path
            scenario = path
    return sip_responder_factory(scenario)
