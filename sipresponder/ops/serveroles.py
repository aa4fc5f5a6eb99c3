"""What one process of ``serve`` runs, by role: ``Plain`` (no admin API), ``Served``
(this process's responder and its admin API: ``serve --admin``, or a worker of
``--workers --admin`` on its private channel) and ``Gatherer`` (the admin API over
every worker). ``run_role`` runs any of them the same way: the signals, the reload
(ops/reload.py, through the role's one ``swap``), and the stop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..scenario.loader import ScenarioError
from ..scenario.model import Scenario
from ..transport.address import ListenAddress
from ..uas import compiled
from .reload import Reloader
from .serveconfig import keep_tag_secret

if TYPE_CHECKING:
    from .admin import Admin
    from .cluster import ClusterRole
    from .gatherer import Cluster
    from .inprocess import InProcess

log = logging.getLogger("sipresponder")


class Role(Protocol):
    """One process's part in ``serve``."""

    reloads: bool  # SIGHUP and --watch (a worker of the gatherer leaves them to it)

    async def start(self) -> None: ...

    def swap(self, new: Scenario, text: str) -> None:
        """Serve ``new``, read from the operator's file as ``text``."""

    async def close(self) -> None: ...


class Plain:
    """Only the listeners: no admin API, no journal (nothing is kept per request)."""

    reloads = True

    def __init__(self, scenario: Scenario, listen: list[ListenAddress], args: argparse.Namespace,
                 reuse_port: bool, prebound: dict[ListenAddress, socket.socket]) -> None:
        from ..transport.server import Server

        self.server = Server(scenario, args.tls)
        self.server.prebound = prebound
        self.listen, self.args, self.reuse_port = listen, args, reuse_port

    async def start(self) -> None:
        await self.server.start(self.listen, reuse_port=self.reuse_port)
        keep_tag_secret(self.server, self.args.tag_secret, self.args.seed)

    def swap(self, new: Scenario, text: str) -> None:
        self.server.set_scenario(new)

    async def close(self) -> None:
        await self.server.close()


class Served:
    """This process's Responder and the admin API over it: on ``admin_address``, or
    for a worker of ``--workers --admin``, on its private channel (ops/worker.py)."""

    def __init__(self, scenario: Scenario, text: str, path: str, listen: list[ListenAddress],
                 admin_address: tuple[str, int] | None, args: argparse.Namespace,
                 reuse_port: bool, prebound: dict[ListenAddress, socket.socket],
                 role: ClusterRole | None) -> None:
        from ..testing.api import Responder

        self.responder = Responder(scenario, [str(a) for a in listen], args.journal_size,
                                   tls=args.tls)
        self.text, self.path, self.args = text, path, args
        self.admin_address, self.reuse_port, self.prebound = admin_address, reuse_port, prebound
        self.role = role
        self.reloads = role is None
        self.admin: Admin | None = None
        self.host: InProcess | None = None
        self.channel: Any = None

    async def start(self) -> None:
        from .admin import Admin
        from .inprocess import InProcess

        args, role = self.args, self.role
        await self.responder.start(reuse_port=self.reuse_port, shared_udp=self.prebound)
        keep_tag_secret(self.responder, args.tag_secret, args.seed)
        host = self.host = InProcess(self.responder, self.text, Path(self.path).parent)
        admin = self.admin = Admin(host, token=None if role else args.admin_token)
        configure_admin(admin, args)
        try:
            if role is not None and role.index is not None:
                from .cluster import socket_path
                from .worker import WorkerChannel

                self.channel = WorkerChannel(admin, role.index,
                                             socket_path(role.directory, role.index))
                await self.channel.start()
            else:
                assert self.admin_address is not None
                await admin.start(*self.admin_address)
        except BaseException:
            await self.responder.stop()
            raise

    def swap(self, new: Scenario, text: str) -> None:
        assert self.host is not None
        self.host.swap_in(new, text)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        elif self.admin is not None:
            await self.admin.close()
        await self.responder.stop()


class Gatherer:
    """The admin API of ``--workers N --admin`` over every worker (ops/gatherer.py);
    it reloads (SIGHUP, --watch) for all of them."""

    reloads = True

    def __init__(self, scenario: Scenario, text: str, path: str, args: argparse.Namespace,
                 role: ClusterRole) -> None:
        self.scenario, self.text, self.path, self.args, self.role = (
            scenario, text, path, args, role)
        self.cluster: Cluster | None = None
        self.admin: Admin | None = None
        self.swaps: set[asyncio.Task[None]] = set()  # held until done (the loop: weak refs)

    async def start(self) -> None:
        from .admin import Admin
        from .gatherer import Cluster

        role, args = self.role, self.args
        assert role.admin_socket is not None
        self.cluster = Cluster(self.scenario, self.text, role.workers, role.directory,
                               args.journal_size, base_dir=Path(self.path).parent)
        self.admin = Admin(self.cluster, token=args.admin_token)
        configure_admin(self.admin, args)
        await self.admin.start_on(role.admin_socket)

    def swap(self, new: Scenario, text: str) -> None:
        self._hold(asyncio.create_task(self._everywhere(text)))

    def _hold(self, task: asyncio.Task[None]) -> None:
        self.swaps.add(task)
        task.add_done_callback(self.swaps.discard)

    async def _everywhere(self, text: str) -> None:
        from .host import HostFailed

        assert self.admin is not None
        # Its body files may be anywhere: it is the operator's own file.
        with contextlib.suppress(ScenarioError, HostFailed):  # Admin.swap logged why
            await self.admin.swap(text, self.path, "scenario reloaded everywhere",
                                  operator=True)

    async def close(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        if self.cluster is not None:
            await self.cluster.stop()


def configure_admin(api: Admin, args: argparse.Namespace) -> None:
    """The perimeter settings of ``serve`` on an Admin."""
    api.hosts = args.admin_hosts
    if args.admin_max_event_clients is not None:
        api.max_event_clients = args.admin_max_event_clients


def log_request_path() -> None:
    """Whether requests take the compiled path, and how to get it when they cannot."""
    if compiled.AVAILABLE or os.environ.get(compiled.NO_EXTENSIONS):
        log.info("request path: %s", compiled.STATUS,
                 extra={"event": "request_path", "detail": compiled.STATUS})
    else:
        log.warning("request path: %s", compiled.STATUS,
                    extra={"event": "request_path", "detail": compiled.STATUS})


async def run_role(
    scenario: Scenario,
    text: str,
    path: str,
    listen: list[ListenAddress],
    admin_address: tuple[str, int] | None,
    args: argparse.Namespace,
    reuse_port: bool = False,
    prebound: dict[ListenAddress, socket.socket] | None = None,
    role: ClusterRole | None = None,
) -> int:
    # Before the listeners announce themselves: whoever waits for "listening on" may
    # stop the responder at once, and SIGTERM's default would kill it uncleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same for SIGHUP, whose default ends the process: one that comes before the
    # reload below exists is kept and acted on then.
    early_hup: list[int] = []
    loop.add_signal_handler(signal.SIGHUP, early_hup.append, 1)
    part: Role
    if role is not None and role.index is None:
        part = Gatherer(scenario, text, path, args, role)
    elif admin_address is None:
        part = Plain(scenario, listen, args, reuse_port, prebound or {})
    else:
        part = Served(scenario, text, path, listen, admin_address, args, reuse_port,
                      prebound or {}, role)
    reloader = Reloader(path, scenario, part.swap)
    await part.start()

    log.info(
        "serving scenario %s", scenario.path, extra={"event": "scenario", "path": scenario.path}
    )
    if not reuse_port:  # workers: the supervisor said it
        log_request_path()
        from .fdlimit import log_budget

        log_budget(getattr(args, "fd_budget", None), scenario.settings.max_connections)

    def ignore_hup() -> None:
        log.warning("SIGHUP to a worker is ignored: send it to the supervisor, which "
                    "reloads the scenario of every worker at once")

    on_hup = reloader.reload if part.reloads else ignore_hup
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if early_hup:
        on_hup()
    watcher = (asyncio.create_task(reloader.watch()) if args.watch and part.reloads
               else None)
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log.info("shutting down", extra={"event": "stopping"})
    await part.close()
    return 0
