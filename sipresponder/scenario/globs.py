"""The one glob dialect of sipresponder: only ``*`` is special (any run of characters).

Scenario conditions (``match.uri``, ``match.user``) and every journal filter (the
Python API's ``requests`` / ``wait_for`` / ``verify``, the admin API's ``uri=`` and
``header=``, ``sipresponder verify --uri``) use it, so a pattern means the same thing
wherever it is written. fnmatch is not used on purpose: its ``[...]`` classes would
swallow IPv6 references (``sip:alice@[::1]:5060`` must match itself) and ``?`` is a
character SIP URIs carry (headers in a URI).

Matching never backtracks: the text between the stars must appear in order, and the
leftmost place each piece fits is always as good as any later one, so one left-to-right
pass of ``str.find`` decides. A pattern compiled to ``.*`` for ``re`` would take
exponential time on ``*a*a*a*a*a*a*b`` against a long URI (issue 18: 5.2 s over 75
characters), and journal filters arrive from anyone who can reach the admin API.
"""

from __future__ import annotations

from functools import lru_cache


class Glob:
    """A compiled pattern: the literal pieces around its stars."""

    __slots__ = ("_exact", "_first", "_last", "_middle", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        first, *rest = pattern.split("*")
        self._exact = not rest  # no star: the text must equal the pattern
        self._first = first
        self._middle = tuple(p for p in rest[:-1] if p)
        self._last = rest[-1] if rest else ""

    def matches(self, text: str) -> bool:
        """Whether ``text`` as a whole matches (case-sensitive)."""
        if self._exact:
            return text == self.pattern
        first, last = self._first, self._last
        end = len(text) - len(last)
        if end < len(first) or not text.startswith(first) or not text.endswith(last):
            return False
        pos = len(first)
        for piece in self._middle:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> Glob:
    # Journal filters arrive as text on each query; a test repeats the same few.
    return Glob(pattern)


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` as a whole matches ``pattern`` (case-sensitive)."""
    return compile_glob(pattern).matches(text)
