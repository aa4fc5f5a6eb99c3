"""Reloading the operator's scenario file, SIGHUP and --watch, written once for every
role of ``serve``: the role says how a reloaded scenario is served (its ``swap``)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..scenario.loader import ScenarioError, read_scenario
from ..scenario.model import Scenario
from .commands import warn_shadowed

log = logging.getLogger("sipresponder")

WATCH_INTERVAL = 0.5  # seconds between --watch checks

Stamps = tuple[tuple[int, int] | None, ...]
Swap = Callable[[Scenario, str], None]  # a role's way to serve a scenario read from its file


def stamp(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # mid-save by an editor that replaces the file: try again
    return st.st_mtime_ns, st.st_size


def stamps(path: str, scenario: Scenario) -> Stamps:
    """The scenario file's stamp and its body files' (a missing one: None)."""
    return (stamp(path), *(stamp(f) for f in scenario.body_files))


class Reloader:
    """Reads ``path`` again when told (SIGHUP) or when it or a body file changes
    (--watch), and hands a good scenario to ``swap``; a bad one is logged and the
    running scenario stays."""

    def __init__(self, path: str, scenario: Scenario, swap: Swap) -> None:
        self.path = path
        self.swap = swap
        self.watched = scenario  # the last good scenario: its body files are watched too
        # Taken before the listeners announce themselves, so that a change made as
        # soon as the responder is up is seen as a change.
        self.initial = stamps(path, scenario)

    def reload(self, why: str = "SIGHUP") -> None:
        path = self.path
        try:
            new, new_text = read_scenario(path)
        except ScenarioError as exc:
            log.error("%s: %s; the running scenario stays", why, exc,
                      extra={"event": "scenario_refused", "path": path, "error": str(exc)})
            return
        self.swap(new, new_text)
        warn_shadowed(new)
        self.watched = new
        log.info("%s: reloaded scenario %s", why, path,
                 extra={"event": "scenario", "path": path})

    async def watch(self) -> None:
        """--watch: poll the mtime and size of the file and of its body files
        (portable, no inotify dependency)."""
        path, last = self.path, self.initial
        gone = False
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if stamp(path) is None:
                if not gone:  # once per disappearance, not every poll
                    gone = True
                    log.warning("scenario file %s is gone; still serving the last good "
                                "scenario", path,
                                extra={"event": "scenario_missing", "path": path})
                continue
            current = stamps(path, self.watched)
            if gone or current != last:
                gone = False
                self.reload("file changed")
                last = stamps(path, self.watched)  # a reload may name other body files
