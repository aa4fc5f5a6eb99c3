"""What the admin API runs on: one small interface, two implementations.

``ops/admin.py`` writes every route once over an ``AdminHost`` (WireMock's ``Admin``
pattern): ``ops/inprocess.py`` ``InProcess`` is this process's responder (``serve
--admin``, and each worker of ``--workers`` on its private channel), and
``ops/gatherer.py`` ``Cluster`` is every worker at once (the gatherer of ``--workers
--admin``). The routes never ask which one they have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

from ..journal.expect import Done
from ..journal.record import Journal, JournalEntry, Query
from ..scenario.model import Scenario


class HostFailed(Exception):
    """A change that some of the host's processes did not carry out: ``failed`` says
    which, by worker index, and why (the admin API answers 502)."""

    def __init__(self, what: str, failed: dict[int, str]) -> None:
        super().__init__(f"{what}: " + "; ".join(failed[i] for i in sorted(failed)))
        self.failed = failed


class Readings(Protocol):
    """Where the console's rules' hits and metrics come from: this process's engine,
    or under ``serve --workers`` the sums over every worker."""

    def scenario(self) -> Scenario | None: ...

    async def hits(self) -> Mapping[int, int]: ...

    async def metrics(self) -> dict[str, Any]: ...


class AdminHost(Protocol):
    """What the admin routes and the console read and change."""

    journal: Journal  # the one the routes read (under --workers: the merged copy)
    scenario_text: str  # the TOML being served, for GET /api/scenario and rule edits
    base_dir: Path | None  # a pushed scenario's body_files stay in it (ops/pushed.py)
    # Called after each scenario swap, however it came (the API, SIGHUP, --watch).
    scenario_listeners: list[Callable[[], None]]

    @property
    def readings(self) -> Readings: ...

    async def refresh(self) -> None:
        """Bring ``journal`` up to date before it is read."""

    def following(self) -> AbstractAsyncContextManager[None]:
        """Held while a console event stream is open: the journal's listeners then hear
        of each entry as it is journaled."""
        ...

    async def watch(self, query: Query, deadline: float, done: Done) -> list[JournalEntry]:
        """The entries matching ``query`` once ``done(count)`` holds or at ``deadline``
        (the loop's clock): ``journal/expect.py`` ``watch``."""
        ...

    async def swap(self, text: str, path: str, operator: bool = False) -> Scenario:
        """Validate ``text`` and serve it (``operator``: the operator's own file, whose
        body files are not confined); ScenarioError or HostFailed leave the old one."""
        ...

    async def clear(self) -> None: ...  # the journal

    async def reset(self) -> None: ...  # the journal and the states

    async def reset_states(self) -> None: ...

    async def states(self) -> dict[str, Any]: ...

    async def metrics(self) -> bytes:
        """The Prometheus exposition of /metrics."""
        ...

    async def dialogs(self) -> list[dict[str, Any]]:
        """The far end's live dialogs (under --workers each says its ``worker``)."""
        ...

    async def call(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/calls (its keys checked): call a target or a registered address
        of record; {"call_id": ...}. ValueError, LookupError (an unknown address of
        record), transport/outbound.py CannotSend say why not."""
        ...

    async def send(self, call_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/dialogs/{call_id}/requests: one step sent in that live dialog;
        LookupError (no such dialog), ValueError, CannotSend say why not."""
        ...

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether everything answers, and /healthz's fields on where requests went."""
        ...

    async def joined(self) -> str:
        """Once whatever the host gathers from answers: what the start-up line adds."""
        ...
