"""The codec's hot path: every shortcut, each beside the general function it mirrors.

A request from a real client repeats itself: the same Request-URI, To and Via
shape, a From that differs only in its tag, "1 INVITE" as CSeq, header names from
a small set, CRLF line ends. Each function here takes that common case with a
cache or a few scans in C and hands anything else to the general parser it
mirrors, so its result (value or ValueError) is always the general one. The
general parsers in abnf.py, uri.py and headers.py are the plain reference; they
never import this module (this module imports them). The property tests in
tests/unit/sip/test_fastpath.py compare each pair and are the contract.

What this module offers (fast path -> the general function it mirrors: the shortcut):

  split_lines(head)       -> abnf.split_lines: a CRLF-only section is one str.split
  HEADER_NAMES, header_name(raw)
                          -> abnf.header_name: a table of the names seen
  parse_uri(raw)          -> uri.parse_uri: a cache by text
  parse_name_addr(value)  -> headers.parse_name_addr: a cache by text; a From's new tag
                             added to its cached prefix
  parse_via(value)        -> headers.parse_via: the Via without its branch cached, the
                             branch slotted into its parameters
  parse_cseq(value)       -> headers.parse_cseq: "<digits> <standard method>" read directly
  content_lengths(head)   -> abnf.content_lengths: one long-form Content-Length found with
                             a few scans in C

A compiled core replaces the functions of this module one for one (same names,
same results); message.py's Request and parse_request and framing.py's
StreamFramer are their only callers on the per-request path.

Not a shortcut, so not here: abnf.split_top_level's plain str.split of a value without
'"' or '<' (nothing can protect a separator there, so it is the grammar's own answer).

Every cache is a ``BoundedCache``: parsed values are shared between requests, so
nothing may assign to a URI, NameAddr or Via that came from one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Generic, TypeVar

from . import abnf, headers, uri
from .abnf import STANDARD_METHOD_SET, TOKEN, WSP
from .headers import NameAddr, Via
from .uri import URI

V = TypeVar("V")


class BoundedCache(Generic[V]):
    """Parsed values by the text they came from, in bounded memory.

    A hit is one dict lookup: ``get`` is the dict's own method, and ``clear()``
    empties that dict in place, so a caller may bind ``get`` once. ``max_entries``
    bounds the count: when full, the cache is cleared (``clear_when_full``, the
    default: a new working set replaces the old at the price of one miss each), or
    stops growing (for a table whose first entries are the ones that matter and
    whose later ones may be an attacker's random names). Keys longer than
    ``max_key_length`` are never kept, so that a few huge values cannot pin memory.
    """

    __slots__ = ("_clear_when_full", "_data", "get", "max_entries", "max_key_length")

    def __init__(self, max_entries: int, *, max_key_length: int | None = None,
                 clear_when_full: bool = True) -> None:
        self.max_entries = max_entries
        self.max_key_length = sys.maxsize if max_key_length is None else max_key_length
        self._clear_when_full = clear_when_full
        self._data: dict[str, V] = {}
        self.get: Callable[[str], V | None] = self._data.get

    def put(self, key: str, value: V) -> V:
        """Keep ``value`` under ``key`` if the bounds allow; returns ``value``."""
        if len(key) <= self.max_key_length:
            data = self._data
            if len(data) >= self.max_entries:
                if not self._clear_when_full:
                    return value
                data.clear()
            data[key] = value
        return value

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


# -- header section ---------------------------------------------------------------------


def split_lines(head: str) -> tuple[list[str], bool]:
    """abnf.split_lines: (lines, whether a line holds a bare CR).

    The common case, checked with three scans in C: every CR and LF is a CRLF, so
    splitting on CRLF gives the lines and no bare CR exists.
    """
    if head.count("\r\n") == head.count("\n") == head.count("\r"):
        return head.split("\r\n"), False
    return abnf.split_lines(head)


# Header names as they appear on the wire -> (canonical name, dictionary key). Names
# repeat from message to message, so each spelling is validated and canonicalised
# once. The table stops growing when full rather than being cleared: the names every
# request carries came first, and random names must neither fill memory nor evict them.
HEADER_NAMES: BoundedCache[tuple[str, str]] = BoundedCache(4096, clear_when_full=False)


def header_name(raw: str) -> tuple[str, str] | None:
    """abnf.header_name, remembered in HEADER_NAMES (parse_request looks a name up in
    HEADER_NAMES itself and calls this only on a miss)."""
    known = HEADER_NAMES.get(raw)
    if known is None:
        known = abnf.header_name(raw)
        if known is not None:
            HEADER_NAMES.put(raw, known)
    return known


# -- parsed views -------------------------------------------------------------------------

# The same Request-URI, To and From URIs come in request after request from one client,
# and a URI is immutable, so parsing each spelling once pays.
URIS: BoundedCache[URI] = BoundedCache(4096, max_key_length=256)
# Bound once: a hit is then one global load and one C call. (The cache's dict is
# cleared in place, never replaced, so the bound method stays valid.)
_cached_uri = URIS.get


def parse_uri(raw: str) -> URI:
    """uri.parse_uri, cached by text."""
    parsed = _cached_uri(raw)
    if parsed is None:
        parsed = URIS.put(raw, uri.parse_uri(raw))
    return parsed


# A client's To (and, across a call, its From) repeats.
NAME_ADDRS: BoundedCache[NameAddr] = BoundedCache(4096, max_key_length=256)
_cached_name_addr = NAME_ADDRS.get


def parse_name_addr(value: str) -> NameAddr:
    """headers.parse_name_addr, cached by text; a From with a new tag costs no parse.

    A From carries a new tag in every call: the part before ";tag=" is parsed once,
    and the tag added (it must then be a plain token, or the full parse decides).
    The part must not end in whitespace: parsed alone it would lose it, and with
    it the params_raw the full parse keeps (";x \t;tag=1").
    """
    addr = _cached_name_addr(value)
    if addr is not None:
        return addr
    base, sep, tag = value.rpartition(";tag=")
    if sep and TOKEN.fullmatch(tag) and base[-1:] not in WSP:
        head = _cached_name_addr(base)
        if head is None:
            try:
                head = NAME_ADDRS.put(base, headers.parse_name_addr(base, parse_uri))
            except ValueError:
                head = None
        if head is not None:
            return NameAddr(
                value,
                head.display,
                head.uri,
                head.bracketed,
                [*head.params, ("tag", tag)],
                f"{head.params_raw};tag={tag}",
            )
    return NAME_ADDRS.put(value, headers.parse_name_addr(value, parse_uri))


# Parsed Vias without their branch, by text: a client's Via changes only in its branch
# from one transaction to the next.
VIAS: BoundedCache[Via] = BoundedCache(4096)
_cached_via = VIAS.get


def parse_via(value: str, *, lenient: bool = False) -> Via:
    """headers.parse_via; a strict parse of a Via with a token branch (and no quote or
    '<' for the branch to hide in) parses the rest of the Via once and slots the
    branch into its parameters."""
    at = value.find(";branch=")
    if at > 0 and not lenient and '"' not in value and "<" not in value:
        end = value.find(";", at + 8)
        branch = value[at + 8 :] if end < 0 else value[at + 8 : end]
        if TOKEN.fullmatch(branch):
            base = value[:at] if end < 0 else value[:at] + value[end:]
            head = _cached_via(base)
            if head is None:
                try:
                    head = VIAS.put(base, headers.parse_via(base))
                except ValueError:
                    return headers.parse_via(value)
            params = head.params.copy()
            params.insert(value.count(";", 0, at), ("branch", branch))
            return Via(value, head.head, head.transport, head.host, head.port, params)
    return headers.parse_via(value, lenient=lenient)


def parse_cseq(value: str) -> tuple[int, str]:
    """headers.parse_cseq; the usual "1 INVITE" (a standard method, at most nine digits,
    one space) holds nothing for the grammar to find wrong."""
    digits, space, method = value.partition(" ")
    if (space and method in STANDARD_METHOD_SET and len(digits) < 10 and digits.isascii()
            and digits.isdigit()):
        return int(digits), method
    return headers.parse_cseq(value)


# -- stream framing -----------------------------------------------------------------------


def content_lengths(head: bytes) -> list[bytes]:
    """abnf.content_lengths; the usual section (one long-form Content-Length on one
    line, no other line starting with "l") is read with a few scans in C."""
    lower = head.lower()
    at = lower.find(b"\ncontent-length")
    if (
        at >= 0
        and b"\nl" not in lower
        and lower.find(b"\ncontent-length", at + 1) < 0
        and not lower.startswith((b"content-length", b"l"))
    ):
        start = at + 15
        end = lower.find(b"\n", start)
        if end < 0:
            end = len(lower)
        elif lower[end + 1 : end + 2] in (b" ", b"\t"):
            return abnf.content_lengths(head)  # folded onto the next line
        name_end = start
        while name_end < end and lower[name_end] in b" \t":
            name_end += 1
        if name_end < end and lower[name_end] == 58:  # ":"
            value = head[name_end + 1 : end]
            if value.endswith(b"\r"):
                value = value[:-1]
            if b"\r" not in value:
                return [value]
    return abnf.content_lengths(head)
