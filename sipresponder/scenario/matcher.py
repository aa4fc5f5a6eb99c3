"""Rule conditions compiled once at load time into small predicates."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from ..sip.abnf import canonical_name
from .model import Check

# What Source.transport can be (transport.server.TRANSPORTS, not imported: no I/O here).
_TRANSPORTS = ("udp", "tcp", "tls", "ws", "wss")

if TYPE_CHECKING:
    from ..sip.message import Request
    from ..uas.events import Source


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob where only '*' is special (any run of characters).

    fnmatch is not used on purpose: its '[...]' classes would swallow IPv6 references.
    """
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


def _regex(field: str, pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ValueError(f"{field}: must be a regular expression string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{field}: invalid regular expression: {exc}") from None


def _ruri_user(request: Request) -> str | None:
    try:
        return request.uri.user
    except ValueError:
        return None


def compile_checks(match: dict[str, Any]) -> list[Check]:
    """Checks for a rule's ``match`` table (the method is tested separately, first)."""
    checks: list[Check] = []
    if "uri" in match:
        if not isinstance(match["uri"], str):
            raise ValueError("uri: must be a string (glob: '*' matches any run)")
        uri_re = glob_regex(match["uri"])
        checks.append(
            Check(
                f"uri {match['uri']!r}", lambda r, s, p=uri_re: p.fullmatch(r.uri_raw) is not None
            )
        )
    if "uri_regex" in match:
        p = _regex("uri_regex", match["uri_regex"])
        checks.append(
            Check(f"uri_regex {p.pattern!r}", lambda r, s, p=p: p.search(r.uri_raw) is not None)
        )
    if "user" in match:
        if not isinstance(match["user"], str):
            raise ValueError("user: must be a string (glob: '*' matches any run)")
        user_re = glob_regex(match["user"])

        def user_glob(r: Request, s: Source, p: re.Pattern[str] = user_re) -> bool:
            user = _ruri_user(r)
            return user is not None and p.fullmatch(user) is not None

        checks.append(Check(f"user {match['user']!r}", user_glob))
    if "user_regex" in match:
        user_rx = _regex("user_regex", match["user_regex"])

        def user_regex(r: Request, s: Source, p: re.Pattern[str] = user_rx) -> bool:
            user = _ruri_user(r)
            return user is not None and p.search(user) is not None

        checks.append(Check(f"user_regex {user_rx.pattern!r}", user_regex))
    if "headers" in match:
        table = match["headers"]
        if not isinstance(table, dict):
            raise ValueError(
                "headers: must be a table of header name = regular expression "
                "(or true / false for present / absent)"
            )

        for name, pattern in table.items():
            key = canonical_name(name).lower()
            if isinstance(pattern, bool):
                # true: the header must be present; false: it must be absent.
                checks.append(
                    Check(
                        f"header {name} {'present' if pattern else 'absent'}",
                        lambda r, s, k=key, want=pattern: (k in r.fields) == want,
                    )
                )
                continue
            rx = _regex(f"headers.{name}", pattern)

            def header_check(r: Request, s: Source, k: str = key, p: re.Pattern[str] = rx) -> bool:
                return any(p.search(v) for v in r.fields.get(k, ()))

            checks.append(Check(f"header {name} ~ {rx.pattern!r}", header_check))
    if "source" in match:
        value = match["source"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ValueError("source: must be an address/CIDR string or a list of them")
        try:
            nets = [ipaddress.ip_network(v, strict=False) for v in items]
        except ValueError as exc:
            raise ValueError(f"source: {exc}") from None

        def source_check(r: Request, s: Source, nets: list[Any] = nets) -> bool:
            addr = ipaddress.ip_address(s.remote[0])
            return any(addr in n for n in nets)

        checks.append(Check(f"source in {', '.join(items)}", source_check))
    if "transport" in match:
        value = match["transport"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(
            isinstance(v, str) and v.lower() in _TRANSPORTS for v in items
        ):
            raise ValueError('transport: must be "udp", "tcp", "tls", "ws", "wss" or a list '
                             'of them')
        wanted = frozenset(v.lower() for v in items)
        checks.append(
            Check(f"transport in {sorted(wanted)}", lambda r, s, w=wanted: s.transport in w)
        )
    return checks
