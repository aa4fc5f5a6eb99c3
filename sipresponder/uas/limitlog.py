"""Logging of resource limits being hit, throttled so that a flood cannot flood the log."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("sipresponder")


class LimitLog:
    """Every hit at INFO; at most one WARNING a second for each kind of limit."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def hit(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        extra = {"event": "limit", "limit": kind}
        if now - self._last.get(kind, -1e9) >= 1.0:
            self._last[kind] = now
            log.warning(message, *args, extra=extra)
        elif log.isEnabledFor(logging.INFO):
            log.info(message, *args, extra=extra)
