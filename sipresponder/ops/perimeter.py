"""The admin API's perimeter: where it may listen, where its token comes from, and which
HTTP requests reach it at all.

- A non-loopback admin address needs a token, or ``--admin-insecure`` to serve it open
  knowingly (``check_bind``).
- The token comes from a file (``--admin-token-file``), the environment
  (``SIPRESPONDER_ADMIN_TOKEN``) or the command line (``--admin-token``, readable by
  every local user in ``ps``); ``read_token_file`` and ``check_token`` refuse what
  could never match a header.
- DNS rebinding: a browser on a hostile page that re-points its own name at the admin
  address sends that name as ``Host``. Without a token, ``Host`` must be an IP literal
  (no DNS, so nothing to rebind), ``localhost`` or a name given with ``--admin-host``.
  With a token any ``Host`` is accepted: the rebound page does not have the token.
- CSRF: a foreign ``Origin`` is refused on every request, and every request that changes
  state (any method but GET and HEAD) must carry what no cross-site form or simple
  ``fetch`` can send without a CORS preflight, which this API never grants: a JSON or
  TOML content type, or the ``X-Sipresponder`` header.

``refusal`` applies the last two; the admin app runs it before the token check.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat

from aiohttp import web

INSECURE_FLAG = "--admin-insecure"
CUSTOM_HEADER = "X-Sipresponder"
# Media types a cross-site form or simple request cannot send (their essence, lowercase).
NON_SIMPLE_TYPES = frozenset({"application/json", "application/toml"})
READ_METHODS = frozenset({"GET", "HEAD"})
MAX_TOKEN_FILE = 4096  # octets: a token file larger than this is not a token file
LOCAL_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether the admin address ``host`` is reachable from this machine only."""
    if host.lower().rstrip(".") in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to may change


def check_bind(host: str, port: int, token: str | None, insecure: bool) -> None:
    """ValueError (one line, naming the flags) when the admin API would be open to the
    network: a non-loopback address without a token and without ``--admin-insecure``."""
    if token is not None or insecure or is_loopback(host):
        return
    shown = f"[{host}]" if ":" in host else host
    raise ValueError(
        f"--admin {shown}:{port} is not a loopback address and no token is set, so anyone "
        f"who reaches it could read the journal and replace the scenario: give "
        f"--admin-token-file FILE (or SIPRESPONDER_ADMIN_TOKEN), or {INSECURE_FLAG} to "
        f"serve it without one knowingly")


def check_token(token: str, where: str) -> str:
    """``token`` when a client can send it in an Authorization header; ValueError else."""
    if not token:
        raise ValueError(f"{where}: the admin token is empty")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError(f"{where}: the admin token must be printable ASCII without spaces "
                         "(it travels in an HTTP header)")
    return token


def read_token_file(path: str, flag: str = "--admin-token-file") -> str:
    """The token in the file ``path`` (surrounding white space, such as the final line
    break an editor or ``echo`` adds, removed); ValueError with one line else."""
    where = f"{flag} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang start-up
    except OSError as exc:
        raise ValueError(f"{where}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ValueError(f"{where}: not a regular file")
        data = file.read(MAX_TOKEN_FILE + 1)
    if len(data) > MAX_TOKEN_FILE:
        raise ValueError(f"{where}: larger than {MAX_TOKEN_FILE} octets, not a token")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{where}: the admin token must be printable ASCII") from None
    return check_token(text, where)


def split_host(value: str) -> tuple[str, str] | None:
    """(name, port) of a Host header value, the name lowercase without a final dot and
    an IPv6 literal without brackets; None when it is no host[:port]."""
    value = value.strip()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        name, _, port = value.partition(":")
        if ":" in port:
            return None
    if port and not (port.isascii() and port.isdigit()):
        return None
    name = name.lower().rstrip(".")
    return (name, port) if name else None


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_refusal(request: web.Request, token: str | None,
                 hosts: frozenset[str]) -> web.Response | None:
    """421 when ``Host`` names this API by a name a rebinding page could own."""
    if token is not None:
        return None  # the page that rebinds a name has no token
    value = request.headers.get("Host")
    if value is None:
        return None  # HTTP/1.0 without Host: not a browser
    parts = split_host(value)
    if parts is not None:
        name = parts[0]
        if is_ip_literal(name) or name in LOCAL_NAMES or name in hosts:
            return None
    return web.json_response(
        {"error": f"Host {value!r} is not this admin API's address, localhost or a name "
                  f"given with --admin-host (DNS rebinding); use one of those, or set a "
                  f"token"}, status=421)


def origin_refusal(request: web.Request) -> web.Response | None:
    """403 for a request a page of another origin made (a browser names it in
    ``Origin``; same-origin GETs often carry none)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    host = request.headers.get("Host", "")
    scheme, sep, authority = origin.partition("://")
    if sep and scheme.lower() in ("http", "https") and host and (
            authority.lower().rstrip("/") == host.lower()):
        return None
    return web.json_response(
        {"error": f"Origin {origin!r} is not this admin API's own origin: requests from "
                  f"other web pages are refused (CSRF)"}, status=403)


def csrf_refusal(request: web.Request) -> web.Response | None:
    """415 for a request that changes state and that a cross-site form or simple
    ``fetch`` could have sent."""
    if request.method in READ_METHODS or request.headers.get(CUSTOM_HEADER):
        return None
    given = request.headers.get("Content-Type")
    if given is not None and given.partition(";")[0].strip().lower() in NON_SIMPLE_TYPES:
        return None
    what = f"Content-Type {given!r}" if given is not None else "no Content-Type"
    return web.json_response(
        {"error": f"{request.method} {request.path} changes state and came with {what}, "
                  f"which any web page can send (CSRF): send Content-Type: application/json "
                  f"(application/toml for a TOML body) or the header {CUSTOM_HEADER}: 1"},
        status=415)


def is_private_channel(request: web.Request) -> bool:
    """A request over a Unix socket (a --workers worker's channel, in a 0700 folder):
    no browser reaches it."""
    transport = request.transport
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    return sock is not None and getattr(sock, "family", None) == socket.AF_UNIX


def refusal(request: web.Request, token: str | None,
            hosts: frozenset[str]) -> web.Response | None:
    """The first perimeter check ``request`` fails, as its response; None: it passes."""
    if is_private_channel(request):
        return None
    return (host_refusal(request, token, hosts) or origin_refusal(request)
            or csrf_refusal(request))
