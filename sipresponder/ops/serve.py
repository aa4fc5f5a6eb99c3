"""``sipresponder serve``: the settings, the admin perimeter, and the processes
(one, or a supervisor forking workers and the gatherer of --workers --admin);
ops/serveroles.py runs each one."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..scenario.bundled import scenario_path
from ..scenario.loader import ScenarioError, read_scenario
from ..transport.address import ListenAddress, listen_backlog, parse_listen
from .cliargs import DEFAULT_LISTEN, TOKEN_ENV
from .commands import warn_shadowed
from .logformat import configure_logging
from .serveconfig import apply_env, with_tag_secret
from .serveroles import log_request_path, run_role

if TYPE_CHECKING:
    from .cluster import ClusterRole

log = logging.getLogger("sipresponder")


def serve(args: argparse.Namespace) -> int:
    from ..transport.tls import TLSOptions
    from .fdlimit import log_budget, raise_limit
    from .supervisor import (
        DIRECTORY_PREFIX,
        bind_admin,
        bind_listeners,
        claim_directory,
        close_sockets,
        remove_stale_directories,
        supervise,
        worker_count,
    )

    token_in_argv = args.admin_token is not None
    try:  # SIPRESPONDER_* variables fill in what the command line left out
        apply_env(args, os.environ)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format, args.log_level)
    path = str(scenario_path(args.scenario))
    admin = None
    bound: list[dict[ListenAddress, socket.socket]] = [{}]  # by worker, with --workers
    try:
        scenario, text = read_scenario(path)
        scenario = with_tag_secret(scenario, args.tag_secret, args.seed)
        warn_shadowed(scenario)
        listen = [parse_listen(item) for item in (args.listen or DEFAULT_LISTEN)]
        args.tls = TLSOptions(*(Path(p) if p else None
                                for p in (args.tls_cert, args.tls_key, args.tls_dir)))
        admin = admin_perimeter(args, token_in_argv)
        workers = worker_count(args.workers)
        # Before any socket: every connection needs a descriptor (ops/fdlimit.py).
        args.fd_budget = raise_limit()
        admin_socket = None
        if workers > 1:
            for gone, pid in remove_stale_directories():
                log.info("removed %s, left by supervisor %d, which is gone", gone, pid,
                         extra={"event": "stale_directory", "path": str(gone)})
            listen, bound = bind_listeners(listen, workers, args.udp_balance,
                                           listen_backlog(scenario.settings.max_connections))
            if admin is not None:
                admin_socket = bind_admin(*admin)
            if args.udp_balance == "datagram":
                stateful = [r.label for r in scenario.rules if r.stateful]
                if stateful:
                    log.warning(
                        "--udp-balance datagram: %s answer over time; a retransmission "
                        "or CANCEL may reach a worker that did not see the request",
                        ", ".join(stateful[:3]) + (" ..." if len(stateful) > 3 else ""),
                    )
            counted = [r.label for r in scenario.stateful_rules]
            if counted:
                # Sequence counters and named states live in each worker process.
                log.warning(
                    "--workers %d: the sequence counters and states of %s are per worker; "
                    "only requests that reach the same worker share them (with "
                    "--udp-balance source, and over TCP, a client stays on one worker, so "
                    "scope \"source\" and \"call-id\" work as in one process)",
                    workers,
                    ", ".join(counted[:3]) + (" ..." if len(counted) > 3 else ""),
                )
    except (ScenarioError, ValueError) as exc:
        close_sockets(bound)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        close_sockets(bound)
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run

    def run(reuse_port: bool, role: ClusterRole | None = None, index: int = 0) -> int:
        own = bound[index] if role is None or role.index is not None else {}
        if workers > 1:  # a forked child: the others' sockets are not its to read
            close_sockets(bound, keep=own)
        served, served_text = scenario, text
        if role is not None:
            from .cluster import current_scenario

            current = current_scenario(role.directory, path)
            if current is not None:  # swapped in over the admin API before a restart
                served = with_tag_secret(current[0], args.tag_secret, args.seed)
                served_text = current[1]
        try:
            return runner(run_role(served, served_text, path, listen, admin, args, reuse_port,
                               own, role))
        except OSError as exc:
            print(f"error: {exc.strerror or exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 0

    if workers == 1:
        return run(reuse_port=False)
    log_request_path()  # once, from the process that starts the workers
    log_budget(args.fd_budget, scenario.settings.max_connections)
    preload(admin is not None)
    if admin_socket is None:
        return supervise(workers, lambda index: run(True, None, index))
    from .cluster import ClusterRole

    with admin_socket, tempfile.TemporaryDirectory(prefix=DIRECTORY_PREFIX) as tmp:
        directory = Path(tmp)  # mode 0700: only this user reaches the workers' channels
        claim_directory(directory)  # a later start removes it if kill -9 leaves it
        return supervise(
            workers,
            lambda index: run(True, ClusterRole(directory, workers, index), index),
            lambda: run(True, ClusterRole(directory, workers, None, admin_socket)),
        )


def admin_perimeter(args: argparse.Namespace, token_in_argv: bool) -> tuple[str, int] | None:
    """The admin address, once its token, Host names and bind are settled (ValueError,
    one line, when they cannot be); ``args.admin_token`` is then the token or None."""
    from .perimeter import check_bind, check_token, is_loopback, read_token_file, split_host

    given = [flag for flag, value in (
        ("--admin-token", args.admin_token), ("--admin-token-file", args.admin_token_file),
        ("--admin-insecure", args.admin_insecure), ("--admin-host", args.admin_host),
        ("--admin-max-event-clients", args.admin_max_event_clients)) if value]
    if args.admin is None:
        if given:
            raise ValueError(f"{given[0]} needs --admin")
        return None
    if args.admin_token is not None and args.admin_token_file is not None:
        raise ValueError(f"give --admin-token-file or --admin-token (${TOKEN_ENV}), not both")
    if args.admin_token_file is not None:
        args.admin_token = read_token_file(args.admin_token_file)
    elif args.admin_token is not None:
        where = "--admin-token" if token_in_argv else TOKEN_ENV
        args.admin_token = check_token(args.admin_token.strip(), where)
        if token_in_argv:
            log.warning("--admin-token puts the token on the command line, where every "
                        "local user can read it (ps, /proc/PID/cmdline): prefer "
                        "--admin-token-file FILE or %s", TOKEN_ENV,
                        extra={"event": "admin_token_in_argv"})
    clients = args.admin_max_event_clients
    if isinstance(clients, str):  # from SIPRESPONDER_ADMIN_MAX_EVENT_CLIENTS
        if not (clients.isascii() and clients.isdigit() and int(clients) > 0):
            raise ValueError(f"SIPRESPONDER_ADMIN_MAX_EVENT_CLIENTS={clients!r}: expected a "
                             "positive integer")
        args.admin_max_event_clients = int(clients)
    hosts = []
    for name in args.admin_host or ():
        parts = split_host(name)
        if parts is None:
            raise ValueError(f"--admin-host {name!r}: expected a host name")
        hosts.append(parts[0])
    args.admin_hosts = frozenset(hosts)
    from .admin import parse_admin_address

    host, port = parse_admin_address(args.admin)
    check_bind(host, port, args.admin_token, bool(args.admin_insecure))
    if args.admin_token is None and not is_loopback(host):
        log.warning("the admin API on %s:%d has no token (--admin-insecure): anyone who "
                    "reaches it can read the journal and replace the scenario", host, port,
                    extra={"event": "admin_insecure"})
    return host, port


def preload(admin: bool) -> None:
    """Import what the workers run before forking them, then freeze the heap.

    Every worker then shares those modules' pages with the supervisor (copy-on-write)
    instead of importing its own copy (checking the arguments imports most of them
    already; this keeps it so). ``gc.freeze`` moves the objects out of the collector's
    generations, so that a worker's full collections do not write to their headers,
    which copies the pages: `python bench/workers_cost.py --gc-probe` measured 13.9 MB
    copied by one full collection without it, 2.0 MB with it."""
    from ..transport import server  # noqa: F401

    if admin:
        from ..testing import api  # noqa: F401
        from . import admin as admin_api  # noqa: F401
        from . import cluster, gatherer, serveroles, worker  # noqa: F401
    gc.freeze()
