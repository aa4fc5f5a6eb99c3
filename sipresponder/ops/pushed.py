"""Scenarios that arrive over the admin API (PUT /api/scenario, PUT and DELETE
/api/rules/NAME, POST /api/scenario/check, a --workers swap): loaded in a worker
thread, their files confined.

Loading a large scenario takes seconds of CPU (issue 18: 1.7 s for 1 MB), and the
event loop that would run it also answers SIP and the API, so the text is parsed with
``asyncio.to_thread`` and only the swap happens on the loop. Its ``body_file``s may
name only regular files under the folder of the scenario file the server was started
with, and none when that was a bundled scenario (no ``--scenario``, or a bundled
name): the package's folder is not the operator's (scenario/files.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..scenario.bundled import bundled_scenario
from ..scenario.files import FileAccess
from ..scenario.loader import parse_scenario
from ..scenario.model import Scenario


def pushed_files(base_dir: Path | None, operator: bool = False) -> FileAccess:
    """What a scenario from the API may read, given the started scenario's folder.
    ``operator``: the text is the operator's file after all (the gatherer of --workers
    hands a SIGHUP or --watch reload to the workers through this path), so any file."""
    if operator:
        return FileAccess.anywhere(base_dir)
    if base_dir is not None and _same(base_dir, bundled_scenario().parent):
        base_dir = None
    return FileAccess.within(base_dir)


def parse_pushed(text: str, path: str, base_dir: Path | None, operator: bool = False
                 ) -> Scenario:
    """``text`` loaded as a scenario from the API, on this thread (ScenarioError)."""
    return parse_scenario(text, path, files=pushed_files(base_dir, operator))


async def load_pushed(text: str, path: str, base_dir: Path | None, operator: bool = False
                      ) -> Scenario:
    """``text`` loaded as a scenario from the API in a worker thread (ScenarioError)."""
    return await asyncio.to_thread(parse_pushed, text, path, base_dir, operator)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
