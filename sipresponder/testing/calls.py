"""What the far end's API is given, checked: steps from plain values, and whom a call
to a registered address of record goes to.

The Python API (``Responder.call``, ``send``, ``call_registered``) and the admin API
(``POST /api/calls``, ``POST /api/dialogs/{call_id}/requests``) both build their steps
here, through the scenario's own step reader (scenario/steps.py), so that a step
refused in a ``[[rule.then]]`` table is refused the same way, in one line, here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..journal.record import JournalEntry, materialize
from ..scenario.fields import FieldError
from ..scenario.model import FarEndStep
from ..scenario.steps import build_steps
from ..sip.headers import parse_name_addr
from ..sip.transports import Transport, is_transport
from ..sip.uri import URI, parse_uri
from ..transport.outbound import NoRegistration
from ..uac.responses import parse_response

# What a call's own INVITE may be given (the rest of a step's keys are the then's).
CALL_KEYS = ("sdp", "headers", "body", "content_type")
DEFAULT_EXPIRES = 3600  # RFC 3261 10.2.1.1: what a REGISTER without one asks for


def step(method: object, *, sdp: str | None = None, headers: Mapping[str, Any] | None = None,
         body: str | None = None, content_type: str | None = None) -> FarEndStep:
    """One step to send now, checked as a ``[[rule.then]]`` table is; ValueError in
    one line naming the key."""
    raw: dict[str, Any] = {"send": method}
    for key, value in (("sdp", sdp), ("headers", headers), ("body", body),
                       ("content_type", content_type)):
        if value is not None:
            raw[key] = dict(value) if key == "headers" and isinstance(value, Mapping) else value
    try:
        return build_steps([raw])[0]
    except FieldError as exc:
        field = (exc.field or "").removeprefix("then[0]").lstrip(".")
        raise ValueError(f"{field}: {exc.message}" if field else exc.message) from None


def then(steps: object) -> tuple[FarEndStep, ...]:
    """The steps after a call's INVITE: a list of ``[[rule.then]]`` tables as dicts."""
    if steps is None or (isinstance(steps, Sequence) and not isinstance(steps, str)
                         and not steps):
        return ()
    if isinstance(steps, tuple):
        steps = list(steps)
    try:
        return build_steps(steps)
    except FieldError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Binding:
    """A registered Contact and the way its REGISTER came in: where a call to the
    address of record goes, and from which listener or on which connection."""

    contact: str
    transport: Transport
    remote: tuple[str, int]
    local: tuple[str, int]
    seq: int  # the REGISTER's journal entry


def registered(entries: Iterable[JournalEntry], aor: str, now: float | None = None
               ) -> Binding:
    """The binding the latest REGISTER (answered 2xx) for ``aor`` made, by its To
    (RFC 3261 10.2); NoRegistration when there is none, it unregistered, or (with
    ``now``, on the journal's clock) its expiry has passed: the one our 2xx granted
    (RFC 3261 10.3 step 8: the Contact's expires in the response), else the one asked
    for, else an hour (10.2.1.1)."""
    wanted = _aor_key(aor)
    latest: JournalEntry | None = None
    for entry in entries:
        if getattr(entry, "direction", "received") != "received":
            continue
        materialize(entry)
        if entry.method != "REGISTER" or not any(200 <= c < 300 for c in entry.codes):
            continue
        to = entry.header("to") or entry.header("t")
        try:
            key = _aor_key(parse_name_addr(to).uri.raw) if to else None
        except ValueError:
            continue
        if key == wanted:
            latest = entry
    if latest is None:
        raise NoRegistration(f"no REGISTER for {aor} answered 2xx in the journal")
    contacts = [v for name, v in latest.headers if name.lower() in ("contact", "m")]
    first = contacts[0].split(",")[0].strip() if contacts else ""
    if not first or first == "*":
        raise NoRegistration(f"the latest REGISTER for {aor} (journal entry {latest.seq})"
                             " binds no Contact")
    try:
        contact = parse_name_addr(first)
    except ValueError as exc:
        raise NoRegistration(f"the Contact of the latest REGISTER for {aor} (journal entry"
                             f" {latest.seq}) does not parse: {exc}") from None
    expires = next((v for k, v in contact.params if k.lower() == "expires"), None)
    if expires is None:
        expires = latest.header("expires")
    if (expires or "").strip() == "0":
        raise NoRegistration(f"{aor} unregistered (Expires 0) in journal entry {latest.seq}")
    granted = _granted(latest, contact.uri.raw)
    lifetime = granted if granted is not None else (
        int(expires.strip()) if expires and expires.strip().isdigit() else DEFAULT_EXPIRES)
    if now is not None and now > latest.time + lifetime:
        raise NoRegistration(f"the registration of {aor} (journal entry {latest.seq}) expired"
                             f" {now - latest.time - lifetime:.0f} s ago ({lifetime} s)")
    transport = latest.transport
    if not is_transport(transport):
        raise NoRegistration(f"the REGISTER for {aor} came over {transport!r}")
    return Binding(contact.uri.raw, transport, latest.remote, latest.local, latest.seq)


_EXPIRES_PARAM = re.compile(r";\s*expires\s*=\s*([0-9]{1,10})", re.IGNORECASE)


def _granted(entry: JournalEntry, uri: str) -> int | None:
    """The expiry our last 2xx to the REGISTER gave ``uri``'s binding, if it said."""
    for response in reversed(entry.responses):
        if response[8:9] != b"2":
            continue
        for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() not in ("contact", "m") or uri not in value:
                continue
            found = _EXPIRES_PARAM.search(value[value.index(uri) + len(uri):])
            if found:
                return int(found[1])
        return None
    return None


@dataclass(frozen=True, slots=True)
class Answered:
    """A call the client made that a rule answered 2xx: its INVITE as received, how
    it came, and our To tag (the dialog's local tag)."""

    raw: bytes
    transport: Transport
    remote: tuple[str, int]
    local: tuple[str, int]
    local_tag: str


def answered_call(entries: Iterable[JournalEntry], call_id: str) -> Answered | None:
    """The latest INVITE of ``call_id`` that made a dialog (no To tag, answered 2xx),
    unless a BYE of that call came after it (the dialog is over): what the far end
    takes over when asked to send in a call whose rule had no steps."""
    found: Answered | None = None
    for entry in entries:
        if getattr(entry, "direction", "received") != "received":
            continue
        materialize(entry)
        if entry.call_id != call_id:
            continue
        if entry.method == "BYE":
            found = None
        elif entry.method == "INVITE" and is_transport(entry.transport):
            to = entry.header("to") or entry.header("t") or ""
            tag = _our_tag(entry.responses)
            if tag is not None and ";tag=" not in to.replace(" ", "").lower():
                found = Answered(entry.raw, entry.transport, entry.remote, entry.local, tag)
    return found


def _our_tag(responses: Iterable[bytes]) -> str | None:
    """The To tag of the first 2xx among ``responses``."""
    for raw in responses:
        try:
            response = parse_response(raw)
            if 200 <= response.status < 300:
                to = response.get("to")
                return parse_name_addr(to).tag if to else None
        except ValueError:
            continue
    return None


def _aor_key(text: str) -> tuple[str, str, int | None]:
    """What two addresses of record are compared by: user, host, port."""
    if not isinstance(text, str):
        raise ValueError(f"aor: expected a SIP URI as a string, not {type(text).__name__}")
    if not text.lower().startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    try:
        uri: URI = parse_uri(text)
    except ValueError as exc:
        raise ValueError(f"aor {text!r} is not a SIP URI: {exc}") from None
    return uri.user, uri.host.lower(), uri.port
