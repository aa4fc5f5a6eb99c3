"""Command line: serve, check, codes, verify, ping, pcap."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from .. import __version__
from ..scenario.bundled import scenario_path
from ..scenario.loader import ScenarioError, read_scenario
from ..scenario.model import Scenario
from ..scenario.positions import error_position, rule_tables
from ..scenario.schema import schema_text
from ..scenario.shadow import shadow_warnings, shadowed
from ..sip.codes import CODES, HEADER_FIELDS
from ..transport.address import ListenAddress, listen_backlog, parse_listen
from ..uas import compiled
from . import ping
from .logformat import configure_logging
from .serveconfig import ENV_HELP, UDP_BALANCE, apply_env, keep_tag_secret, with_tag_secret

if TYPE_CHECKING:
    from .cluster import ClusterRole

log = logging.getLogger("sipresponder")
TOKEN_ENV = "SIPRESPONDER_ADMIN_TOKEN"  # the variable `serve` reads its --admin-token from
# ops/consoleapi.py's, repeated so that `--help` does not import aiohttp.
MAX_EVENT_CLIENTS = 32
WATCH_INTERVAL = 0.5  # seconds between --watch checks
DEFAULT_LISTEN = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipresponder",
        description="A stateless SIP UAS that answers every request as its scenario says.",
    )
    parser.add_argument("--version", action="version",
                        version=f"sipresponder {__version__}; request path: {compiled.STATUS}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer SIP requests")
    serve.add_argument(
        "--scenario", "-s", metavar="FILE", help="TOML scenario (default: the bundled default.toml)"
    )
    serve.add_argument(
        "--listen",
        "-l",
        action="append",
        metavar="PROTO:HOST:PORT",
        help="udp, tcp, tls, ws or wss listener, repeatable; IPv6 as udp:[::1]:5060 "
        f"(default: {' and '.join(DEFAULT_LISTEN)})",
    )
    serve.add_argument(
        "--workers",
        metavar="N",
        help="processes sharing the listening ports, under a supervisor that restarts a "
        "worker that dies; 'auto': one per CPU (default 1)",
    )
    serve.add_argument(
        "--udp-balance",
        choices=UDP_BALANCE,
        help="with --workers: 'source' (default) keeps each UDP client on one worker, "
        "which stateful rules (provisional responses, delays, CANCEL) need; 'datagram' "
        "lets every worker read one shared socket, so a single busy client's load is "
        "spread too (stateless scenarios)",
    )
    serve.add_argument(
        "--tls-cert", metavar="FILE",
        help="PEM certificate (chain) for tls: and wss: listeners; with --tls-key",
    )
    serve.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    serve.add_argument(
        "--tls-dir", metavar="DIR",
        help="where the self-signed lab certificate is made and reused when --tls-cert "
        "is not given (default: $XDG_CACHE_HOME/sipresponder or ~/.cache/sipresponder)",
    )
    # Defaults None: serveconfig.apply_env tells an absent flag from a given one.
    serve.add_argument("--log-format", choices=("human", "json"), help="default human")
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="info logs one line per request and per response; warning (the default) "
        "logs start-up, reloads, shutdown, limits and errors, and /metrics counts the "
        "traffic; error logs errors only",
    )
    serve.add_argument(
        "--admin",
        metavar="HOST:PORT",
        help="serve the admin HTTP API (journal, scenario swap, /metrics) there; "
        "HOST defaults to 127.0.0.1, port 0 picks a free one; enables the journal "
        "(with --workers: one API over all of them, journals merged, metrics summed)",
    )
    serve.add_argument(
        "--admin-token",
        metavar="TOKEN",
        help="require 'Authorization: Bearer TOKEN' on every admin endpoint but /healthz; "
        "every local user can read it in ps: prefer --admin-token-file or "
        f"${TOKEN_ENV}",
    )
    serve.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="the same, with the token read from FILE (white space around it ignored), "
        "e.g. a mounted secret",
    )
    serve.add_argument(
        "--admin-insecure",
        action="store_true",
        default=None,  # None: serveconfig.apply_env reads SIPRESPONDER_ADMIN_INSECURE
        help="serve the admin API on a non-loopback address without a token (refused "
        "otherwise): anyone who reaches it can read the journal and replace the scenario",
    )
    serve.add_argument(
        "--admin-host",
        action="append",
        metavar="NAME",
        help="a host name browsers may reach the admin API by, besides IP addresses and "
        "localhost, when it has no token (repeatable; other names are refused against "
        "DNS rebinding)",
    )
    serve.add_argument(
        "--admin-max-event-clients",
        type=_positive_int,
        metavar="N",
        help=f"live event streams (/api/events, the console) served at once; more get 503 "
        f"(default {MAX_EVENT_CLIENTS})",
    )
    serve.add_argument(
        "--watch",
        action="store_true",
        help="reload the scenario when its file changes (SIGHUP always reloads); "
        "an invalid file is logged and the running scenario stays",
    )
    serve.add_argument(
        "--journal-size",
        type=_positive_int,
        default=1000,
        metavar="N",
        help="requests the journal keeps, newest last (with --admin; default 1000)",
    )
    # Deployment (issue 7): the tag secret, and SIPRESPONDER_* variables for every flag.
    serve.add_argument(
        "--tag-secret",
        metavar="SECRET",
        help="key of the To-tag hash, overriding the scenario's settings.tag_key; "
        "replicas behind one address must share it",
    )
    serve.add_argument(
        "--seed",
        metavar="N",
        help="seed of the scenario's random choices, overriding settings.seed "
        "(-1: a new one every run)",
    )
    serve.epilog = ENV_HELP
    ping.add_parser(sub)

    verify = sub.add_parser(
        "verify",
        help="ask a running responder's admin API whether requests arrived "
        "(at least, exactly, at most or no N)",
        description="Wait for matching requests in a running responder's journal "
        "(POST /api/requests/wait), or, with --exactly, --at-most or --none, assert how "
        "many arrive (POST /api/requests/verify). Exit 0 satisfied, 1 not, 2 cannot ask.",
    )
    verify.add_argument("--admin", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080")
    verify.add_argument("--method", help="exact request method, e.g. INVITE")
    verify.add_argument("--uri", help="request-URI glob (only * is special), e.g. 'sip:486@*'")
    verify.add_argument(
        "--header", action="append", default=[], metavar="NAME:GLOB", help="repeatable"
    )
    verify.add_argument("--rule", help="the rule that answered: its label or name")
    verify.add_argument("--since", type=_sequence, metavar="SEQ",
                        help="only journal entries after this sequence number")
    how_many = verify.add_mutually_exclusive_group()
    how_many.add_argument("--count", type=_at_least, metavar="N",
                          help="at least N (the default, 1)")
    how_many.add_argument("--exactly", type=_sequence, metavar="N",
                          help="N within --timeout, then no more within --within")
    how_many.add_argument("--at-most", type=_sequence, metavar="N",
                          help="no more than N by the end of --within")
    how_many.add_argument("--none", action="store_true",
                          help="no matching request by the end of --within")
    verify.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for --count/--exactly (server caps at 60)")
    verify.add_argument("--within", type=float, default=1.0, metavar="S",
                        help="the window of --exactly, --at-most and --none in seconds "
                        "(default 1; server caps at 60)")
    verify.add_argument("--token", help=f"the admin API's bearer token (default: ${TOKEN_ENV}; "
                        "on the command line every local user can read it)")
    verify.add_argument("--token-file", metavar="FILE", help="the token, read from FILE")
    verify.add_argument("--junit", metavar="FILE", help="write a JUnit XML report there")

    pcap = sub.add_parser(
        "pcap",
        help="download a running responder's journal as a pcap file",
        description="Download the journal (GET /api/requests.pcap) of a responder served "
        "with --admin: each request and response its own packet, with the real addresses, "
        "ports and times, for Wireshark, tshark or sngrep. Exit 0 written, 2 cannot.",
    )
    pcap.add_argument("--admin", required=True, metavar="URL", help="e.g. http://127.0.0.1:8080")
    pcap.add_argument("--token", help=f"the admin API's bearer token (default: ${TOKEN_ENV}; "
                      "on the command line every local user can read it)")
    pcap.add_argument("--token-file", metavar="FILE", help="the token, read from FILE")
    pcap.add_argument("--method", help="exact request method, e.g. INVITE")
    pcap.add_argument("--uri", help="request-URI glob (only * is special), e.g. 'sip:486@*'")
    pcap.add_argument(
        "--header", action="append", default=[], metavar="NAME:GLOB", help="repeatable"
    )
    pcap.add_argument("--rule", help="the rule that answered: its label or name")
    pcap.add_argument("--since", type=_sequence, metavar="SEQ",
                      help="only journal entries after this sequence number")
    pcap.add_argument("--call-id", help="only the entries of this Call-ID")
    pcap.add_argument("--output", "-o", required=True, metavar="FILE",
                      help="where to write the pcap file ('-': standard output)")

    check = sub.add_parser("check", help="validate scenario files")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--strict", action="store_true",
                       help="fail on warnings too (a rule that can never match)")

    sub.add_parser("codes", help="print the response-code table with required headers")

    schema = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    schema.add_argument("--output", metavar="FILE", help="write it to FILE instead")
    return parser




def _sequence(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def _at_least(text: str) -> int:
    if text.isdigit() and int(text) == 0:
        raise argparse.ArgumentTypeError("--count means at least; for none use --none "
                                         "(or --at-most / --exactly)")
    return _positive_int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
    except BrokenPipeError:
        # `sipresponder codes | head`: the reader left. As Python's docs advise (signal
        # module, "Note on SIGPIPE"), point stdout at devnull so that the interpreter's
        # own flush at exit does not raise again, and exit without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = _build_parser()
    # argparse hands a subcommand's unknown flags up to the top-level parser, whose
    # usage then says nothing about the subcommand: let the subcommand's parser refuse.
    args, extra = parser.parse_known_args(argv)
    if extra:
        subparsers = next(
            a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        )
        subparsers.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _main(argv: list[str] | None) -> int:
    if not (sys.argv[1:] if argv is None else argv):
        # No subcommand: what there is to do, rather than argparse's one-line complaint.
        _build_parser().print_help()
        return 2
    args = _parse(argv)
    if args.command == "check":
        return _check(args.files, args.strict)
    if args.command == "verify":
        return _verify(args)
    if args.command == "pcap":
        return _download_pcap(args)
    if args.command == "codes":
        _print_codes()
        return 0
    if args.command == "ping":
        try:
            return ping.run(args)
        except KeyboardInterrupt:
            print("ping: interrupted", file=sys.stderr)
            return 130  # 128 + SIGINT, as a shell reports it
    if args.command == "schema":
        return _schema(args.output)
    return _serve(args)


def _check(paths: list[str], strict: bool = False) -> int:
    """Each file's result, named: every error and warning of it, one line each with
    its place in the file; 1 if any file fails (with --strict, or has a warning)."""
    failed = 0
    for name in paths:
        path = scenario_path(name)
        try:
            scenario, text = read_scenario(path)
        except ScenarioError as exc:
            text = _readable(path)
            for error in exc.errors:
                print(f"error: {_located(error, text)}", file=sys.stderr)
            failed += 1
            continue
        warnings = shadowed(scenario.rules)
        heads = rule_tables(text)
        for shadow in warnings:
            number = shadow.rule.number
            where = f":{heads[number - 1].line}:1" if len(heads) == len(scenario.rules) else ""
            print(f"warning: {path}{where}: {shadow}", file=sys.stderr)
        failed += bool(strict and warnings)
        # What the responder derives rather than reads: a 405 leaves out the method
        # it refuses from this list.
        noted = f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else ""
        print(f"{name}: OK ({len(scenario.rules)} rules{noted}); derived Allow: "
              f"{', '.join(scenario.allow)}")
    if failed and len(paths) > 1:
        print(f"{failed} of {len(paths)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _warn_shadowed(scenario: Scenario) -> None:
    """Served all the same, a rule that can never match is worth a line at each load
    (the one place a `serve` user sees what `check` would have said)."""
    for warning in shadow_warnings(scenario.rules):
        log.warning("%s: %s", scenario.path, warning,
                    extra={"event": "rule_shadowed", "path": scenario.path})


def _readable(path: Path) -> str:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return ""


def _located(error: ScenarioError, text: str) -> str:
    """The error's one line with the file's name as FILE:LINE:COLUMN where the place
    is known (the form editors and CI annotations jump to)."""
    line, column = error_position(error, text) if text else (None, None)
    if line is None:
        return str(error)
    return f"{error.path}:{line}:{column or 1}{str(error)[len(error.path):]}"


def _schema(output: str | None) -> int:
    text = schema_text()
    if output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0


def _print_codes() -> None:
    for entry in CODES.values():
        needs = []
        for req in entry.requires:
            names = " or ".join(req.headers)
            field = " / ".join(HEADER_FIELDS[h].field for h in req.headers)
            needs.append(f"{names} ({req.level.upper()}, {req.rfc}; field {field})")
        print(f"{entry.code} {entry.reason:<40} {entry.rfc:<24} {'; '.join(needs)}".rstrip())


def _serve(args: argparse.Namespace) -> int:
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
        _warn_shadowed(scenario)
        listen = [parse_listen(item) for item in (args.listen or DEFAULT_LISTEN)]
        args.tls = TLSOptions(*(Path(p) if p else None
                                for p in (args.tls_cert, args.tls_key, args.tls_dir)))
        admin = _admin_perimeter(args, token_in_argv)
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
            return runner(_run(served, served_text, path, listen, admin, args, reuse_port,
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
    _preload(admin is not None)
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


def _admin_perimeter(args: argparse.Namespace, token_in_argv: bool) -> tuple[str, int] | None:
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


def _configure_admin(api: Any, args: argparse.Namespace) -> None:
    """The perimeter settings of ``serve`` on an Admin (or ClusterAdmin)."""
    api.hosts = args.admin_hosts
    if args.admin_max_event_clients is not None:
        api.max_event_clients = args.admin_max_event_clients


def _preload(admin: bool) -> None:
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
        from . import cluster, gatherer, worker  # noqa: F401
    gc.freeze()


def log_request_path() -> None:
    """Whether requests take the compiled path, and how to get it when they cannot."""
    if compiled.AVAILABLE or os.environ.get(compiled.NO_EXTENSIONS):
        log.info("request path: %s", compiled.STATUS,
                 extra={"event": "request_path", "detail": compiled.STATUS})
    else:
        log.warning("request path: %s", compiled.STATUS,
                    extra={"event": "request_path", "detail": compiled.STATUS})


async def _run(
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
    # Taken before the listeners announce themselves, so that a change made as soon
    # as the responder is up is seen as a change.
    watched = [scenario]  # the last good scenario: its body files are watched too
    initial_stamp = _stamps(path, scenario)
    from ..transport.server import Server

    # Before the listeners announce themselves too: whoever waits for "listening on"
    # may stop the responder at once, and SIGTERM's default would kill it uncleanly.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # The same for SIGHUP, whose default ends the process: one that comes before the
    # reload below exists is kept and acted on then.
    early_hup: list[int] = []
    loop.add_signal_handler(signal.SIGHUP, early_hup.append, 1)
    closers: list[Callable[[], Awaitable[None]]] = []  # the admin API's, before the server's
    reloads = True  # SIGHUP and --watch (a worker of the gatherer leaves them to it)
    if role is not None and role.index is None:
        stop_server, swap = await _gather(scenario, text, path, args, role, closers)
    elif admin_address is None:
        server = Server(scenario, args.tls)
        server.prebound = prebound or {}
        await server.start(listen, reuse_port=reuse_port)
        keep_tag_secret(server, args.tag_secret, args.seed)
        stop_server = server.close

        def swap(new: Scenario, new_text: str) -> None:
            server.set_scenario(new)
    else:
        from ..testing.api import Responder
        from .admin import Admin
        from .inprocess import InProcess

        responder = Responder(scenario, [str(a) for a in listen], args.journal_size,
                              tls=args.tls)
        await responder.start(reuse_port=reuse_port, shared_udp=prebound)
        keep_tag_secret(responder, args.tag_secret, args.seed)
        stop_server = responder.stop
        admin_api = Admin(responder, text, None if role else args.admin_token,
                          base_dir=Path(path).parent)
        _configure_admin(admin_api, args)
        try:
            if role is not None and role.index is not None:
                from .cluster import socket_path
                from .worker import WorkerChannel

                channel = WorkerChannel(admin_api, role.index,
                                        socket_path(role.directory, role.index))
                await channel.start()
                closers.append(channel.close)
                reloads = False
            else:
                await admin_api.start(*admin_address)
                closers.append(admin_api.close)
        except BaseException:
            await responder.stop()
            raise

        host = admin_api.host
        assert isinstance(host, InProcess)

        def swap(new: Scenario, new_text: str) -> None:
            host.swap_in(new, new_text)

    def reload(why: str = "SIGHUP") -> None:
        try:
            new, new_text = read_scenario(path)
        except ScenarioError as exc:
            log.error(
                "%s: %s; the running scenario stays",
                why,
                exc,
                extra={"event": "reload_failed", "path": path, "error": str(exc)},
            )
            return
        swap(new, new_text)
        _warn_shadowed(new)
        watched[0] = new
        log.info(
            "%s: reloaded scenario %s", why, path, extra={"event": "scenario", "path": path}
        )

    async def watch(last: Stamps) -> None:
        """--watch: poll the mtime and size of the file and of its body files
        (portable, no inotify dependency)."""
        gone = False
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if _stamp(path) is None:
                if not gone:  # once per disappearance, not every poll
                    gone = True
                    log.warning(
                        "scenario file %s is gone; still serving the last good scenario",
                        path,
                        extra={"event": "scenario_missing", "path": path},
                    )
                continue
            current = _stamps(path, watched[0])
            if gone or current != last:
                gone = False
                reload("file changed")
                last = _stamps(path, watched[0])  # a reload may name other body files

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

    on_hup = reload if reloads else ignore_hup
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    if early_hup:
        on_hup()
    watcher = asyncio.create_task(watch(initial_stamp)) if args.watch and reloads else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    log.info("shutting down", extra={"event": "stopping"})
    for close in closers:
        await close()
    await stop_server()
    return 0


async def _gather(
    scenario: Scenario, text: str, path: str, args: argparse.Namespace, role: ClusterRole,
    closers: list[Callable[[], Awaitable[None]]],
) -> tuple[Callable[[], Awaitable[None]], Callable[[Scenario, str], None]]:
    """The gatherer of ``--workers N --admin``: the admin API over every worker
    (ops/cluster.py); it reloads (SIGHUP, --watch) for all of them. Returns how to stop
    it and how to swap a reloaded scenario in."""
    from .admin import Admin
    from .gatherer import Cluster
    from .host import HostFailed

    assert role.admin_socket is not None
    cluster = Cluster(scenario, text, role.workers, role.directory, args.journal_size,
                      base_dir=Path(path).parent)
    cluster_admin = Admin(cluster, token=args.admin_token)
    _configure_admin(cluster_admin, args)
    await cluster_admin.start_on(role.admin_socket)
    closers.append(cluster_admin.close)
    swaps: set[asyncio.Task[None]] = set()  # held until done (the loop keeps weak refs)

    async def everywhere(new_text: str) -> None:
        # Its body files may be anywhere: it is the operator's own file.
        with contextlib.suppress(ScenarioError, HostFailed):  # Admin.swap logged why
            await cluster_admin.swap(new_text, path, "reloaded", operator=True)

    def swap(new: Scenario, new_text: str) -> None:
        task = asyncio.create_task(everywhere(new_text))
        swaps.add(task)
        task.add_done_callback(swaps.discard)

    return cluster.stop, swap


Stamps = tuple[tuple[int, int] | None, ...]


def _stamp(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # mid-save by an editor that replaces the file: try again
    return st.st_mtime_ns, st.st_size


def _stamps(path: str, scenario: Scenario) -> Stamps:
    """The scenario file's stamp and its body files' (a missing one: None)."""
    return (_stamp(path), *(_stamp(f) for f in scenario.body_files))


def _download_pcap(args: argparse.Namespace) -> int:
    """GET /api/requests.pcap with the filters into --output; 0 written, 2 not."""
    params: list[tuple[str, str]] = [
        (key, str(getattr(args, attr))) for key, attr in (
            ("method", "method"), ("uri", "uri"), ("rule", "rule"), ("since", "since"),
            ("call_id", "call_id")) if getattr(args, attr) is not None]
    params += [("header", h) for h in args.header]
    base = args.admin.rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"error: --admin {args.admin!r}: expected http://HOST:PORT", file=sys.stderr)
        return 2
    url = f"{base}/api/requests.pcap" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    request = urllib.request.Request(url)
    try:
        token = _client_token(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            data = resp.read()
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        print(f"error: {url}: {exc.code} {detail}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.buffer.write(data)
        return 0
    try:
        Path(args.output).write_bytes(data)
    except OSError as exc:
        print(f"error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(data)} octets)", file=sys.stderr)
    return 0


def _client_token(args: argparse.Namespace) -> str:
    """The token `verify` and `pcap` send: --token, --token-file, or the variable
    `serve` takes its own from, so that one environment serves both ("": none)."""
    if args.token is not None and args.token_file is not None:
        raise ValueError("give --token or --token-file, not both")
    if args.token_file is not None:
        from .perimeter import read_token_file

        return read_token_file(args.token_file, "--token-file")
    if args.token is not None:
        return str(args.token)
    return os.environ.get(TOKEN_ENV, "").strip()


def _verify(args: argparse.Namespace) -> int:
    """POST /api/requests/wait (or /verify); 0 satisfied, 1 not, 2 cannot ask, 130 on
    Ctrl-C (the shell's convention for SIGINT), with one line rather than a traceback."""
    try:
        return _ask(args)
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return 130


def _ask(args: argparse.Namespace) -> int:
    want: dict[str, Any] = {}
    endpoint = "wait"
    if args.exactly is not None:
        want, endpoint = {"exactly": args.exactly}, "verify"
    elif args.at_most is not None:
        want, endpoint = {"at_most": args.at_most}, "verify"
    elif args.none:
        want, endpoint = {"none": True}, "verify"
    else:
        want = {"count": 1 if args.count is None else args.count}
    for key in ("method", "uri", "rule", "since"):
        if getattr(args, key) is not None:
            want[key] = getattr(args, key)
    if any(":" not in h for h in args.header):
        print("error: --header expects NAME:GLOB", file=sys.stderr)
        return 2
    if args.header:
        want["headers"] = args.header
    name = " ".join(f"{k}={v}" for k, v in want.items())
    want["timeout"] = args.timeout
    if endpoint == "verify":
        want["within"] = args.within
    url = args.admin.rstrip("/") + f"/api/requests/{endpoint}"
    if not url.startswith(("http://", "https://")):
        print(f"error: --admin {args.admin!r}: expected http://HOST:PORT", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        url,
        data=json.dumps(want).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        token = _client_token(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    started = time.monotonic()
    status, body, message = 0, None, ""
    wait = args.timeout + (args.within if endpoint == "verify" else 0) + 10
    try:
        with urllib.request.urlopen(request, timeout=max(wait, 10)) as resp:
            status, body = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        message = f"cannot reach {url}: {getattr(exc, 'reason', exc)}"
    elapsed = time.monotonic() - started
    if status == 200 and isinstance(body, dict):
        code, outcome = 0, f"OK: {body.get('count')} request(s) matching {name}"
        print(outcome)
    elif status in (408, 409) and isinstance(body, dict):
        code = 1
        outcome = str(body.get("error", "verification failed"))
        print(f"FAILED: {outcome}\nthe journal holds:\n{body.get('listing', '')}")
    else:
        code = 2
        if not message:
            detail = body.get("error") if isinstance(body, dict) else body
            message = f"{url}: HTTP {status}: {detail}"
            if status == 401 and not token:
                message += f" (give --token or set {TOKEN_ENV})"
        outcome = message
        print(f"error: {message}", file=sys.stderr)
    if args.junit:
        _write_junit(args.junit, name, code, outcome, body, elapsed)
    return code


def _write_junit(
    path: str, name: str, code: int, outcome: str, body: Any, elapsed: float
) -> None:
    failures, errors, inner = 0, 0, ""
    if code == 1:
        failures = 1
        listing = body.get("listing", "") if isinstance(body, dict) else ""
        inner = (
            f"<failure message={quoteattr(outcome)} type=\"AssertionError\">"
            f"{escape(outcome + chr(10) + listing)}</failure>"
        )
    elif code == 2:
        errors = 1
        inner = f"<error message={quoteattr(outcome)} type=\"ConnectionError\"/>"
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<testsuite name="sipresponder.verify" tests="1" failures="{failures}" '
        f'errors="{errors}" time="{elapsed:.3f}">\n'
        f'  <testcase classname="sipresponder.verify" name={quoteattr(name)} '
        f'time="{elapsed:.3f}">{inner}</testcase>\n'
        "</testsuite>\n"
    )
    Path(path).write_text(xml, encoding="utf-8")
