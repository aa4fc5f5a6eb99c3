"""The journal under its first name: ``sipresponder.testing.journal`` keeps working for
code that imported it from here; it lives in :mod:`sipresponder.journal.record`."""

from ..journal.record import (
    FILTERS,
    FilterError,
    HeaderFilters,
    Journal,
    JournalEntry,
    NearMiss,
    Query,
    check_keys,
    header_filters,
    materialize,
    near_miss,
    rfc3339,
)

__all__ = ["FILTERS", "FilterError", "HeaderFilters", "Journal", "JournalEntry", "NearMiss",
           "Query", "check_keys", "header_filters", "materialize", "near_miss", "rfc3339"]
