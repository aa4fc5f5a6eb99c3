"""A failed expectation's text under its first name; it lives in
:mod:`sipresponder.journal.failure`."""

from ..journal.failure import Miss, arrived, closest, describe, misses

__all__ = ["Miss", "arrived", "closest", "describe", "misses"]
