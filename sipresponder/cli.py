"""Command line: serve, check, codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .codes import CODES, HEADER_FIELDS
from .logformat import configure_logging
from .scenario.loader import ScenarioError, load_scenario
from .scenario.model import Scenario

log = logging.getLogger("sipresponder")
DEFAULT_LISTEN = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]


def bundled_scenario(name: str = "default.toml") -> Path:
    """A scenario shipped with the package (the repository's scenarios/ folder)."""
    return Path(str(resources.files("sipresponder") / "scenarios" / name))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipresponder",
        description="A stateless SIP UAS that answers every request as its scenario says.",
    )
    parser.add_argument("--version", action="version", version=f"sipresponder {__version__}")
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
        help="udp or tcp listener, repeatable; IPv6 as udp:[::1]:5060 "
        f"(default: {' and '.join(DEFAULT_LISTEN)})",
    )
    serve.add_argument("--log-format", choices=("human", "json"), default="human")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="info logs one line per request and per response",
    )

    check = sub.add_parser("check", help="validate a scenario file")
    check.add_argument("file")

    sub.add_parser("codes", help="print the response-code table with required headers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "check":
        return _check(args.file)
    if args.command == "codes":
        _print_codes()
        return 0
    return _serve(args)


def _check(path: str) -> int:
    try:
        scenario = load_scenario(path)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: OK ({len(scenario.rules)} rules)")
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
    from .transport.server import parse_listen

    configure_logging(args.log_format, args.log_level)
    path = args.scenario or str(bundled_scenario())
    try:
        scenario = load_scenario(path)
        listen = [parse_listen(text) for text in (args.listen or DEFAULT_LISTEN)]
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(_run(scenario, listen))
    except OSError as exc:
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


async def _run(scenario: Scenario, listen: list) -> int:
    from .transport.server import Server

    server = Server(scenario)
    await server.start(listen)
    log.warning(
        "serving scenario %s", scenario.path, extra={"event": "scenario", "path": scenario.path}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.warning("shutting down")
    await server.close()
    return 0
