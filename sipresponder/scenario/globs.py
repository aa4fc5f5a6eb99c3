"""The one glob dialect of sipresponder: only ``*`` is special (any run of characters).

Scenario conditions (``match.uri``, ``match.user``) and every journal filter (the
Python API's ``requests`` / ``wait_for`` / ``verify``, the admin API's ``uri=`` and
``header=``, ``sipresponder verify --uri``) use it, so a pattern means the same thing
wherever it is written. fnmatch is not used on purpose: its ``[...]`` classes would
swallow IPv6 references (``sip:alice@[::1]:5060`` must match itself) and ``?`` is a
character SIP URIs carry (headers in a URI).
"""

from __future__ import annotations

import re
from functools import lru_cache


def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled pattern; use ``fullmatch`` (a glob matches the whole text)."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


@lru_cache(maxsize=256)
def _cached(pattern: str) -> re.Pattern[str]:
    # Journal filters arrive as text on each query; a test repeats the same few.
    return glob_regex(pattern)


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` as a whole matches ``pattern`` (case-sensitive)."""
    return _cached(pattern).fullmatch(text) is not None
