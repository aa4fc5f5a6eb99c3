"""The command line's arguments: every subcommand's parser, and its value types."""

from __future__ import annotations

import argparse
import logging

from .. import __version__
from ..uas import compiled
from . import ping
from .serveconfig import ENV_HELP, UDP_BALANCE

log = logging.getLogger("sipresponder")


TOKEN_ENV = "SIPRESPONDER_ADMIN_TOKEN"  # the variable `serve` reads its --admin-token from
# ops/consoleapi.py's, repeated so that `--help` does not import aiohttp.
MAX_EVENT_CLIENTS = 32
DEFAULT_LISTEN = ["udp:0.0.0.0:5060", "tcp:0.0.0.0:5060"]


def build_parser() -> argparse.ArgumentParser:
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
    _add_journal_client(verify)
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
    verify.add_argument("--step", action="append", default=[], metavar="KEY=VALUE[,...]",
                        help="repeatable: with it, assert that requests matching these steps "
                        "came in this order within one call (POST "
                        "/api/requests/verify with steps), e.g. --step method=INVITE --step "
                        "method=BYE,direction=sent,code=200; keys: the filters above")
    verify.add_argument("--call-id", help="with --step: the call the sequence must be in "
                        "(else any one call)")
    verify.add_argument("--junit", metavar="FILE", help="write a JUnit XML report there")

    pcap = sub.add_parser(
        "pcap",
        help="download a running responder's journal as a pcap file",
        description="Download the journal (GET /api/requests.pcap) of a responder served "
        "with --admin: each request and response its own packet, with the real addresses, "
        "ports and times, for Wireshark, tshark or sngrep. Exit 0 written, 2 cannot.",
    )
    _add_journal_client(pcap)
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


def _status(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 100 <= int(text) <= 699):
        raise argparse.ArgumentTypeError(f"expected a status code 100-699, got {text!r}")
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


def _add_journal_client(parser: argparse.ArgumentParser) -> None:
    """What `verify` and `pcap` share: the admin API's address, its token, and the
    journal filters (the admin API's own query parameters)."""
    parser.add_argument("--admin", required=True, metavar="URL",
                        help="e.g. http://127.0.0.1:8080")
    parser.add_argument("--token", help=f"the admin API's bearer token (default: ${TOKEN_ENV}; "
                        "on the command line every local user can read it)")
    parser.add_argument("--token-file", metavar="FILE", help="the token, read from FILE")
    parser.add_argument("--method", help="exact request method, e.g. INVITE")
    parser.add_argument("--uri", help="request-URI glob (only * is special), e.g. 'sip:486@*'")
    parser.add_argument(
        "--header", action="append", default=[], metavar="NAME:GLOB", help="repeatable"
    )
    parser.add_argument("--rule", help="the rule that answered: its label or name")
    parser.add_argument("--since", type=_sequence, metavar="SEQ",
                        help="only journal entries after this sequence number")
    parser.add_argument("--direction", choices=("received", "sent"),
                        help="received: requests that reached the responder; sent: "
                        "requests the responder sent itself")
    parser.add_argument("--code", type=_status, metavar="CODE",
                        help="a status the entry was answered with (for a sent request, "
                        "by the client), e.g. 200")
