"""Every regular expression a scenario carries (``match.body``, ``match.headers``,
``uri_regex``, ``user_regex``), compiled for RE2 through ``google-re2``.

A scenario's patterns run on every request from any SIP peer, so they must cost time
linear in the text: Python's ``re`` backtracks, and ``^(a+)+$`` against 27 octets
stalled the whole process for seconds (issue 18). RE2 guarantees linear time and
refuses what it cannot do in linear time (backreferences, lookaround, ``\\Z``); that
refusal is a load-time error naming the field.

Semantics a pattern author may notice against ``re``: ``$`` matches only at the very
end of the text (``re`` also before a final newline; write ``\\r?\\n?$`` or use
``(?m)``), ``\\d``, ``\\w`` and ``\\s`` are ASCII, and ``(?x)`` is not supported. A
condition asks whether the pattern occurs anywhere (``search``), as it did with ``re``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

from .fields import FieldError

_OPTIONS: Any = re2.Options()
_OPTIONS.log_errors = False  # the error is the FieldError; RE2 would also print it
_OPTIONS.never_capture = True  # a condition asks only whether it matches


def compile_regex(field: str, pattern: object) -> Callable[[str], bool]:
    """Whether the pattern occurs in a text; FieldError naming ``field`` when the pattern
    is not a string or RE2 refuses it (with RE2's reason)."""
    if not isinstance(pattern, str):
        raise FieldError(field, "must be a regular expression string")
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise FieldError(field, f"invalid regular expression: {_reason(exc)} (patterns run "
                         "on RE2: no backreferences, lookaround or \\Z)") from None
    search = compiled.search

    def found(text: str) -> bool:
        # Given str, the binding maps every match offset back to characters, a pass
        # over the text; octets skip that (3x faster). surrogatepass: a lone surrogate
        # cannot raise here, it just matches nothing.
        return search(text.encode("utf-8", "surrogatepass")) is not None

    return found


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else "refused"
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
