"""Rule conditions compiled once at load time into small predicates.

Each ``match`` key compiles to closures over what they test (a glob's or an RE2
pattern's test, a frozenset), so matching a request is one call per condition.
Errors raise ``FieldError`` naming the key inside the ``match`` table.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..sip.abnf import canonical_name
from ..sip.sdp import DIRECTIONS
from ..sip.transports import TRANSPORTS
from .body import body_text, offer
from .fields import FieldError
from .globs import compile_glob
from .model import Condition
from .regex import compile_regex

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..uas.events import Source

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _glob(field: str, pattern: object) -> Callable[[str], bool]:
    if not isinstance(pattern, str):
        raise FieldError(field, "must be a string (glob: '*' matches any run)")
    return compile_glob(pattern).matches


def _ruri_user(request: Request) -> str | None:
    try:
        return request.uri.user
    except ValueError:
        return None


def _uri_test(find: Callable[[str], bool]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        return find(request.uri_raw)

    return test


def _user_test(find: Callable[[str], bool]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        user = _ruri_user(request)
        return user is not None and find(user)

    return test


def _header_presence(key: str, present: bool) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        return (key in request.fields) == present

    return test


def _header_regex(key: str, search: Callable[[str], bool]
                  ) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        return any(search(v) for v in request.fields.get(key, ()))

    return test


def _source_test(nets: list[_Network]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        addr = ipaddress.ip_address(source.remote[0])
        return any(addr in n for n in nets)

    return test


def _transport_test(wanted: frozenset[str]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        return source.transport in wanted

    return test


def _uri(value: object) -> list[Condition]:
    matches = _glob("uri", value)
    return [Condition(f"uri {value!r}", _uri_test(matches), request_line=True)]


def _uri_regex(value: object) -> list[Condition]:
    found = compile_regex("uri_regex", value)
    return [Condition(f"uri_regex {value!r}", _uri_test(found), request_line=True)]


def _user(value: object) -> list[Condition]:
    matches = _glob("user", value)
    return [Condition(f"user {value!r}", _user_test(matches), request_line=True)]


def _user_regex(value: object) -> list[Condition]:
    found = compile_regex("user_regex", value)
    return [Condition(f"user_regex {value!r}", _user_test(found), request_line=True)]


def _headers(value: object) -> list[Condition]:
    if not isinstance(value, dict):
        raise FieldError(
            "headers",
            "must be a table of header name = regular expression "
            "(or true / false for present / absent)",
        )
    out = []
    for name, pattern in value.items():
        key = canonical_name(name).lower()
        if isinstance(pattern, bool):
            # true: the header must be present; false: it must be absent.
            what = f"header {name} {'present' if pattern else 'absent'}"
            out.append(Condition(what, _header_presence(key, pattern)))
        else:
            found = compile_regex(f"headers.{name}", pattern)
            out.append(Condition(f"header {name} ~ {pattern!r}", _header_regex(key, found)))
    return out


def _names(value: object) -> list[str] | None:
    """A string or a list of strings, as a list; None for anything else."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        return None
    return items


def _source(value: object) -> list[Condition]:
    items = _names(value)
    if items is None:
        raise FieldError("source", "must be an address/CIDR string or a list of them")
    try:
        nets = [ipaddress.ip_network(v, strict=False) for v in items]
    except ValueError as exc:
        raise FieldError("source", str(exc)) from None
    return [Condition(f"source in {', '.join(items)}", _source_test(nets))]


def _transport(value: object) -> list[Condition]:
    items = _names(value)
    if items is None or not all(v.lower() in TRANSPORTS for v in items):
        raise FieldError(
            "transport", 'must be "udp", "tcp", "tls", "ws", "wss" or a list of them'
        )
    wanted = frozenset(v.lower() for v in items)
    return [Condition(f"transport in {sorted(wanted)}", _transport_test(wanted), request_line=True)]


def _body_test(search: Callable[[str], bool]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        return search(body_text(request))

    return test


def _body(value: object) -> list[Condition]:
    found = compile_regex("body", value)
    return [Condition(f"body ~ {value!r}", _body_test(found))]


def _sdp_present(request: Request, source: Source) -> bool:
    return offer(request) is not None


def _sdp_media_test(wanted: frozenset[str]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        summary = offer(request)
        return summary is not None and not wanted.isdisjoint(summary.media)

    return test


def _sdp_codecs_test(wanted: frozenset[str], offered: bool) -> Callable[[Request, Source], bool]:
    # offered: some wanted codec is offered; else: none of them is (the 488 case).
    def test(request: Request, source: Source) -> bool:
        summary = offer(request)
        return summary is not None and wanted.isdisjoint(summary.codec_keys) is not offered

    return test


def _sdp_direction_test(wanted: frozenset[str]) -> Callable[[Request, Source], bool]:
    def test(request: Request, source: Source) -> bool:
        summary = offer(request)
        return summary is not None and not wanted.isdisjoint(summary.directions)

    return test


# encoding name "/" clock rate ["/" encoding parameters] (RFC 4566 6, a=rtpmap).
_CODEC = re.compile(r"[^/\s]+/[0-9]+(?:/[^/\s]+)?")


def _sdp_list(key: str, value: object, check: Callable[[str], bool], shape: str) -> list[str]:
    items = _names(value)
    if not items:
        raise FieldError(key, f"must be {shape} or a non-empty list of them")
    for item in items:
        if not check(item):
            raise FieldError(key, f"{item!r} is not {shape}")
    return items


def _sdp(value: object) -> list[Condition]:
    """``match.sdp``: conditions on an application/sdp body; each one fails when the
    request carries none, and an empty table asks only that it carries one."""
    if not isinstance(value, dict):
        raise FieldError(
            "sdp", f"must be a table with any of {', '.join(_SDP_KEYS)} (or {{}}: any SDP body)"
        )
    for key in value:
        if key not in _SDP_KEYS:
            raise FieldError(
                f"sdp.{key}", f"unknown condition (expected one of {', '.join(_SDP_KEYS)})"
            )
    out: list[Condition] = []
    if "media" in value:
        media = _sdp_list("sdp.media", value["media"], lambda m: bool(m) and " " not in m,
                          'a media type such as "audio"')
        wanted = frozenset(media)
        out.append(Condition(f"sdp media include {media}", _sdp_media_test(wanted)))
    for key, offered in (("codecs", True), ("no_codecs", False)):
        if key in value:
            codecs = _sdp_list(f"sdp.{key}", value[key], lambda c: _CODEC.fullmatch(c) is not None,
                               'a codec as "name/clock rate" such as "PCMA/8000"')
            keys = frozenset(c.lower() for c in codecs)
            what = f"sdp codecs {'include' if offered else 'exclude'} {codecs}"
            out.append(Condition(what, _sdp_codecs_test(keys, offered)))
    if "direction" in value:
        directions = _sdp_list("sdp.direction", value["direction"], DIRECTIONS.__contains__,
                               '"sendrecv", "sendonly", "recvonly" or "inactive"')
        out.append(Condition(f"sdp direction in {directions}",
                             _sdp_direction_test(frozenset(directions))))
    return out or [Condition("sdp body present", _sdp_present)]


_SDP_KEYS = ("media", "codecs", "no_codecs", "direction")


# The conditions a ``match`` table can hold, compiled in this order (the method is
# not here: Rule.matches tests it first, from Rule.methods).
_COMPILERS: dict[str, Callable[[object], list[Condition]]] = {
    "uri": _uri,
    "uri_regex": _uri_regex,
    "user": _user,
    "user_regex": _user_regex,
    "headers": _headers,
    "source": _source,
    "transport": _transport,
    "body": _body,
    "sdp": _sdp,
}


def compile_conditions(match: dict[str, object]) -> list[Condition]:
    """The conditions of a rule's ``match`` table; FieldError names the bad key."""
    conditions: list[Condition] = []
    for key, compile_one in _COMPILERS.items():
        if key in match:
            conditions.extend(compile_one(match[key]))
    return conditions
