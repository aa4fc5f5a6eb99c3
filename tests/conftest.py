from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.scenario.model import Scenario
from sipresponder.transport.address import ListenAddress
from sipresponder.transport.server import Server

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def require_binary(name: str, install: str | None = None) -> str:
    """Path of a peer binary; skip without it, but fail in CI (CI=true). ``install``:
    how to get it, when not ``apt-get install NAME``."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({install or f'apt-get install {name}'}); " \
            "the test needs it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


class RunningResponder:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.udp_port = next(a.port for a in server.addresses if a.transport == "udp")
        self.tcp_port = next(a.port for a in server.addresses if a.transport == "tcp")

    @property
    def engine(self):
        return self.server.engine


def scenario_from(source: str | Path) -> Scenario:
    if isinstance(source, Path) or source.endswith(".toml"):
        return load_scenario(source)
    return parse_scenario(source, "<test>")


@pytest.fixture
async def responder_factory() -> AsyncIterator[Callable]:
    servers: list[Server] = []

    async def start(source: str | Path = SCENARIOS / "default.toml") -> RunningResponder:
        server = Server(scenario_from(source))
        await server.start([ListenAddress("udp", "127.0.0.1", 0),
                            ListenAddress("tcp", "127.0.0.1", 0)])
        servers.append(server)
        return RunningResponder(server)

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def responder(responder_factory: Callable) -> RunningResponder:
    return await responder_factory()


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the self-signed lab certificate, made once per test session
    (an RSA key takes a noticeable fraction of a second)."""
    from sipresponder.transport.tls import self_signed

    directory = tmp_path_factory.mktemp("tls")
    self_signed(directory)
    return directory
