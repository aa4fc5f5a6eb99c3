"""sipresponder: a stateless SIP user-agent server driven by TOML scenarios.

The public API is re-exported here and imported on first use, so that
``import sipresponder`` (the CLI, each worker process) stays cheap: the testing API
pulls in asyncio listeners and aiohttp. ARCHITECTURE.md maps the package.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Responder": "sipresponder.testing.api",
    "SyncResponder": "sipresponder.testing.api",
    "WaitTimeout": "sipresponder.testing.api",
    "VerifyFailed": "sipresponder.testing.api",
    "Journal": "sipresponder.journal.record",
    "JournalEntry": "sipresponder.journal.record",
    "load_scenario": "sipresponder.scenario.loader",
    "parse_scenario": "sipresponder.scenario.loader",
    "ScenarioError": "sipresponder.scenario.loader",
    "Scenario": "sipresponder.scenario.model",
    "Engine": "sipresponder.uas.engine",
    "Source": "sipresponder.uas.events",
    "Send": "sipresponder.uas.events",
    "TLSOptions": "sipresponder.transport.tls",
}

__all__ = [
    "Engine",
    "Journal",
    "JournalEntry",
    "Responder",
    "Scenario",
    "ScenarioError",
    "Send",
    "Source",
    "SyncResponder",
    "TLSOptions",
    "VerifyFailed",
    "WaitTimeout",
    "__version__",
    "load_scenario",
    "parse_scenario",
]

if TYPE_CHECKING:
    from .journal.record import Journal, JournalEntry
    from .scenario.loader import ScenarioError, load_scenario, parse_scenario
    from .scenario.model import Scenario
    from .testing.api import Responder, SyncResponder, VerifyFailed, WaitTimeout
    from .transport.tls import TLSOptions
    from .uas.engine import Engine
    from .uas.events import Send, Source


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sipresponder' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
