"""The commands that ask a running admin API: verify and pcap."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    pass
from .cliargs import TOKEN_ENV

log = logging.getLogger("sipresponder")


def download_pcap(args: argparse.Namespace) -> int:
    """GET /api/requests.pcap with the filters into --output; 0 written, 2 not."""
    params: list[tuple[str, str]] = [
        (key, str(getattr(args, attr))) for key, attr in (
            ("method", "method"), ("uri", "uri"), ("rule", "rule"), ("since", "since"),
            ("direction", "direction"), ("code", "code"), ("call_id", "call_id"))
        if getattr(args, attr) is not None]
    params += [("header", h) for h in args.header]
    base = args.admin.rstrip("/")
    if not base.startswith(("http://", "https://")):
        print(f"error: --admin {args.admin!r}: expected http://HOST:PORT", file=sys.stderr)
        return 2
    url = f"{base}/api/requests.pcap" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    request = urllib.request.Request(url)
    if not _authorize(request, args):
        return 2
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


def _authorize(request: urllib.request.Request, args: argparse.Namespace) -> bool:
    """Add the bearer token, if any, to ``request``; False (the error printed) when
    the token cannot be read."""
    try:
        token = _client_token(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return True


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


def verify(args: argparse.Namespace) -> int:
    """POST /api/requests/wait (or /verify); 0 satisfied, 1 not, 2 cannot ask, 130 on
    Ctrl-C (the shell's convention for SIGINT), with one line rather than a traceback."""
    try:
        return _ask(args)
    except KeyboardInterrupt:
        print("verify: interrupted", file=sys.stderr)
        return 130


def parse_step(text: str) -> dict[str, Any]:
    """``method=BYE,direction=sent,code=200`` as the filters of one step (the server
    checks the keys and values); ValueError naming what is not KEY=VALUE."""
    step: dict[str, Any] = {}
    for part in text.split(","):
        key, equals, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not key:
            raise ValueError(f"--step {text!r}: expected KEY=VALUE[,KEY=VALUE...], "
                             f"got {part!r}")
        if key == "header":
            step.setdefault("headers", []).append(value)
        elif key in ("code", "since") and value.isascii() and value.isdigit():
            step[key] = int(value)
        else:
            step[key] = value
    return step


def _sequence_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of POST /api/requests/verify with steps; ValueError for options that do
    not go with --step."""
    mixed = [f"--{key.replace('_', '-')}" for key in (
        "count", "exactly", "at_most", "method", "uri", "rule", "since", "direction", "code")
        if getattr(args, key) is not None] + (["--none"] if args.none else []) + (
        ["--header"] if args.header else [])
    if mixed:
        raise ValueError(f"--step takes the filters in each step, not {', '.join(mixed)}")
    body: dict[str, Any] = {"steps": [parse_step(text) for text in args.step]}
    if args.call_id is not None:
        body["call_id"] = args.call_id
    return body


def _ask(args: argparse.Namespace) -> int:
    want: dict[str, Any] = {}
    endpoint = "wait"
    if args.step:
        try:
            want, endpoint = _sequence_body(args), "verify"
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.call_id is not None:
        print("error: --call-id goes with --step", file=sys.stderr)
        return 2
    elif args.exactly is not None:
        want, endpoint = {"exactly": args.exactly}, "verify"
    elif args.at_most is not None:
        want, endpoint = {"at_most": args.at_most}, "verify"
    elif args.none:
        want, endpoint = {"none": True}, "verify"
    else:
        want = {"count": 1 if args.count is None else args.count}
    for key in ("method", "uri", "rule", "since", "direction", "code"):
        if getattr(args, key) is not None:
            want[key] = getattr(args, key)
    if any(":" not in h for h in args.header):
        print("error: --header expects NAME:GLOB", file=sys.stderr)
        return 2
    if args.header:
        want["headers"] = args.header
    name = (" then ".join(args.step) if args.step
            else " ".join(f"{k}={v}" for k, v in want.items()))
    want["timeout"] = args.timeout
    if endpoint == "verify" and not args.step:  # a sequence has no window
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
    if not _authorize(request, args):
        return 2
    started = time.monotonic()
    status, body, message = 0, None, ""
    wait = args.timeout + (args.within if endpoint == "verify" and not args.step else 0) + 10
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
        code, outcome = 0, (f"OK: {name}" if args.step
                            else f"OK: {body.get('count')} request(s) matching {name}")
        print(outcome)
    elif status in (408, 409) and isinstance(body, dict):
        code = 1
        outcome = str(body.get("error", "verification failed"))
        # A sequence's listing says what it is (the call that got furthest).
        what = "" if args.step else "the journal holds:\n"
        print(f"FAILED: {outcome}\n{what}{body.get('listing', '')}")
    else:
        code = 2
        if not message:
            detail = body.get("error") if isinstance(body, dict) else body
            message = f"{url}: HTTP {status}: {detail}"
            if status == 401 and not request.has_header("Authorization"):
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
