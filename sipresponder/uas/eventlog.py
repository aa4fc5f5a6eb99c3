"""The INFO lines of the request path: one per request received, one per drop.

At the default level (WARNING) each costs one ``isEnabledFor`` test: the per-request
path never formats a log line nobody reads. The ``extra`` fields are what
``ops.logformat``'s JSON lines carry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..scenario.model import Rule
    from ..sip.message import Request
    from .events import Source

# Not "sipresponder": start-up lines are INFO there and show by default, while this
# logger stays at WARNING unless --log-level info or debug asks (ops/logformat.py).
log = logging.getLogger("sipresponder.requests")


def log_request(
    request: Request, source: Source, note: str | None, rule: Rule | None = None
) -> None:
    """``note`` None: answered by ``rule`` (its label is only made when logged)."""
    if log.isEnabledFor(logging.INFO):
        if note is None:
            note = rule.label if rule is not None else ""
        log.info(
            "recv %s %s from %s:%s:%d (%s)",
            request.method,
            request.uri_raw,
            source.transport,
            source.remote[0],
            source.remote[1],
            note,
            extra={
                "event": "request",
                "method": request.method,
                "uri": request.uri_raw,
                "call_id": request.get("call-id"),
                "transport": source.transport,
                "remote": f"{source.remote[0]}:{source.remote[1]}",
                "outcome": note,
            },
        )


def log_drop(source: Source, why: str) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "drop message from %s:%s:%d: %s",
            source.transport,
            source.remote[0],
            source.remote[1],
            why,
            extra={
                "event": "drop",
                "reason": why,
                "transport": source.transport,
                "remote": f"{source.remote[0]}:{source.remote[1]}",
            },
        )
