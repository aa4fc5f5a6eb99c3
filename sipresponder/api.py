"""The testing API under its first name: ``sipresponder.api`` keeps working.

The code lives in :mod:`sipresponder.testing.api`; new code imports from
``sipresponder`` itself (``from sipresponder import Responder``).
"""

from .testing.api import (
    DEFAULT_LISTEN,
    Responder,
    SyncResponder,
    WaitTimeout,
    as_scenario,
    describe,
    matches,
)

__all__ = [
    "DEFAULT_LISTEN",
    "Responder",
    "SyncResponder",
    "WaitTimeout",
    "as_scenario",
    "describe",
    "matches",
]
