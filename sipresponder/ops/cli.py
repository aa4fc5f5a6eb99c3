"""Command line: serve, check, codes, verify, ping, pcap, schema.

This module dispatches; each command lives in its own module: cliargs (the
parsers), serve and serveroles (serve, by process role), reload (SIGHUP, --watch),
commands (check, schema, codes), client (verify, pcap), ping."""

from __future__ import annotations

import argparse
import os
import sys

from . import ping
from .cliargs import build_parser
from .client import download_pcap, verify
from .commands import check, print_codes, schema
from .serve import serve


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
    parser = build_parser()
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
        build_parser().print_help()
        return 2
    args = _parse(argv)
    if args.command == "check":
        return check(args.files, args.strict)
    if args.command == "verify":
        return verify(args)
    if args.command == "pcap":
        return download_pcap(args)
    if args.command == "codes":
        print_codes()
        return 0
    if args.command == "ping":
        try:
            return ping.run(args)
        except KeyboardInterrupt:
            print("ping: interrupted", file=sys.stderr)
            return 130  # 128 + SIGINT, as a shell reports it
    if args.command == "schema":
        return schema(args.output)
    return serve(args)
