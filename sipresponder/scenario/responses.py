"""The responses a rule sends, read from its table: the final one (the rule's own keys,
or ``[default]``'s) and the ``provisional`` list; errors raise ``FieldError``.

Also the check that a response carries the header fields its code requires
(sip.codes.requirements), which runs once every rule is read.
"""

from __future__ import annotations

from ..sip.abnf import TOKEN
from ..sip.codes import CODES, HEADER_FIELDS, requirements
from .fields import FieldError, boolean, kind, string, template, unknown
from .files import FileAccess
from .model import ResponseSpec, Rule
from .template import Template

# Header fields the responder writes itself; a rule may not set them through `headers`.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Content-Length",
        "Content-Type",
        "Record-Route",
        "Timestamp",
    )
)
# Rule keys that set a typed header field (retry_after = 60): key -> header name.
TYPED_FIELDS = {h.field: h.name for h in HEADER_FIELDS.values()}
RESPONSE_KEYS = frozenset(
    {
        "code",
        "reason",
        "headers",
        "body",
        "body_file",
        "content_type",
        "sdp",
        "delay",
        "fill_required",
    }
    | set(TYPED_FIELDS)
)

# Values the "requires a ... header field" error suggests (others: "...").
_FIELD_EXAMPLES = {
    "contacts": '["<sip:user@host>"]',
    "retry_after": "60",
    "min_expires": "60",
    "min_se": "90",
    "expires": "3600",
}


def build_provisionals(raw: dict[str, object], files: FileAccess) -> list[ResponseSpec]:
    """A rule's ``provisional`` list: codes (``[180]``) or response tables."""
    value = raw.get("provisional", [])
    if not isinstance(value, list):
        raise FieldError("provisional", "must be a list of codes or tables")
    out = []
    for i, item in enumerate(value):
        where = f"provisional[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            item = {"code": item}
        if not isinstance(item, dict):
            raise FieldError(where, "must be a code or a table")
        try:
            out.append(_provisional(item, files))
        except FieldError as exc:
            raise exc.within(where) from None
    return out


def _provisional(raw: dict[str, object], files: FileAccess) -> ResponseSpec:
    for key in raw:
        if key not in RESPONSE_KEYS:
            raise unknown(key, key, RESPONSE_KEYS)
    spec = build_response(raw, files)
    if isinstance(spec.code, int) and not 101 <= spec.code <= 199:
        raise FieldError("code", f"{spec.code} is not a provisional code (101-199)")
    return spec


def build_response(raw: dict[str, object], files: FileAccess) -> ResponseSpec:
    """One response from the response keys of ``raw`` (other keys are the caller's)."""
    code = _code(raw)
    spec = ResponseSpec(code)
    spec.reason = _reason(raw, code)
    spec.headers = _headers(raw.get("headers", {}))
    for key, header in TYPED_FIELDS.items():
        if key in raw:
            spec.typed[header] = rows(key, raw[key], join=header != "Contact")
    spec.body = _body(raw, files)
    if "content_type" in raw:
        spec.content_type = string("content_type", raw["content_type"])
        if "/" not in spec.content_type:
            raise FieldError("content_type", "must be a media type like application/sdp")
    if spec.body is not None and spec.content_type is None:
        raise FieldError("content_type", "a body needs its content_type")
    spec.sdp = boolean("sdp", raw.get("sdp", True))
    spec.fill_required = boolean("fill_required", raw.get("fill_required", False))
    delay = raw.get("delay", 0)
    if isinstance(delay, dict):
        spec.delay_draw = kind_, first, second = _delay_draw(delay)
        spec.delay = second if kind_ == "uniform" else first
    else:
        spec.delay = _delay(delay)
    return spec


def _code(raw: dict[str, object]) -> int | Template:
    if "code" not in raw:
        raise FieldError("code", "missing: every response needs a status code")
    value = raw["code"]
    if isinstance(value, int) and not isinstance(value, bool):
        if not 100 <= value <= 699:
            raise FieldError("code", f"{value} is not a SIP status code (100-699)")
        return value
    if not isinstance(value, str):
        raise FieldError("code", f"must be an integer, not {kind(value)}")
    code = template("code", value)
    if code.is_constant:
        raise FieldError("code", 'must be an integer (or a template like "{ruri.user}")')
    if not raw.get("fill_required", False):
        raise FieldError(
            "code",
            "a templated code needs fill_required = true, "
            "so that whatever code it yields carries its required headers",
        )
    return code


def _reason(raw: dict[str, object], code: int | Template) -> Template | None:
    if "reason" in raw:
        reason = string("reason", raw["reason"])
        if any(c in reason for c in "\r\n"):
            raise FieldError("reason", "must not contain line breaks")
        return template("reason", reason)
    if isinstance(code, int) and code not in CODES:
        raise FieldError("reason", f"{code} is not in the registry: give its reason phrase")
    return None


def _headers(value: object) -> list[tuple[str, Template]]:
    """The ``headers`` table: name = value rows, in the table's order."""
    if not isinstance(value, dict):
        raise FieldError("headers", "must be a table of header name = value")
    out: list[tuple[str, Template]] = []
    for name, rows_value in value.items():
        field = f"headers.{name}"
        if not TOKEN.fullmatch(name):
            raise FieldError(field, "is not a valid header name")
        if name.lower() in RESERVED_HEADERS:
            raise FieldError(field, "is written by the responder itself and cannot be set here")
        out.extend((name, row) for row in rows(field, rows_value))
    return out


def _body(raw: dict[str, object], files: FileAccess) -> Template | None:
    if "body" in raw and "body_file" in raw:
        raise FieldError("body_file", "give either body or body_file, not both")
    if "body" in raw:
        return template("body", string("body", raw["body"]))
    if "body_file" in raw:
        return _body_file(raw["body_file"], files)
    return None


def _body_file(value: object, files: FileAccess) -> Template:
    name = string("body_file", value)
    data = files.read("body_file", name)
    # Bodies are sent as read, byte for byte: no template expansion.
    return Template(name, (data.decode("latin-1"),))


def _delay(value: object, field: str = "delay") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise FieldError(
            field,
            "must be a number of seconds from 0 to 3600"
            + (" (or a drawn delay: {uniform = [low, high]} or {lognormal = {...}})"
               if field == "delay" else ""),
        )
    return float(value)


def _delay_draw(value: dict[str, object]) -> tuple[str, float, float]:
    """``delay = {uniform = [low, high]}`` or ``{lognormal = {median = m, sigma = s}}``."""
    if len(value) != 1 or next(iter(value)) not in ("uniform", "lognormal"):
        raise FieldError(
            "delay",
            "a drawn delay is {uniform = [low, high]} or "
            "{lognormal = {median = seconds, sigma = spread}}",
        )
    kind_, spec = next(iter(value.items()))
    if kind_ == "uniform":
        if not isinstance(spec, list) or len(spec) != 2:
            raise FieldError("delay.uniform", "must be a list [low, high] of seconds")
        low, high = (_delay(v, "delay.uniform") for v in spec)
        if low > high:
            raise FieldError("delay.uniform", f"low ({low:g}) is above high ({high:g})")
        return ("uniform", low, high)
    if not isinstance(spec, dict) or set(spec) != {"median", "sigma"}:
        raise FieldError("delay.lognormal", "must be a table {median = seconds, sigma = spread}")
    median = _delay(spec["median"], "delay.lognormal.median")
    if median <= 0:
        raise FieldError("delay.lognormal.median", "must be positive")
    sigma = spec["sigma"]
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not 0 <= sigma <= 10:
        raise FieldError("delay.lognormal.sigma", "must be a number from 0 to 10")
    return ("lognormal", median, float(sigma))


def rows(field: str, value: object, *, join: bool = False) -> list[Template]:
    """A header value: a string, a number, or a list (rows, or one comma-joined row)."""
    if isinstance(value, bool):
        raise FieldError(field, "must be a string, a number or a list, not a boolean")
    items = [str(value)] if isinstance(value, str | int | float) else value
    if not isinstance(items, list) or not items:
        raise FieldError(field, "must be a string, a number or a non-empty list")
    texts = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise FieldError(field, f"list items must be strings or numbers, not {kind(v)}")
        text = str(v)
        if any(c in text for c in "\r\n"):
            raise FieldError(field, "must not contain line breaks")
        texts.append(text)
    if join:
        texts = [", ".join(texts)]
    return [template(field, t) for t in texts]


def check_required(rule: Rule) -> None:
    """Refuse a response of ``rule`` that lacks a header field its code requires
    and the responder cannot derive (unless it asks for ``fill_required``)."""
    choices = rule.behaviour.choices if rule.behaviour is not None else ()
    finals = [] if choices else [rule.final]  # with choices, the final is choice[0]
    for i, spec in enumerate([*rule.provisional, *finals]):
        try:
            _check_required(spec)
        except FieldError as exc:
            raise (exc if spec is rule.final else exc.within(f"provisional[{i}]")) from None
    for i, spec in enumerate(choices):
        try:
            _check_required(spec)
        except FieldError as exc:
            raise exc.within(f"choice[{i}]") from None


def _check_required(spec: ResponseSpec) -> None:
    if not isinstance(spec.code, int) or spec.fill_required:
        return
    for req in requirements(spec.code):
        if any(spec.sets(h) or HEADER_FIELDS[h].derive for h in req.headers):
            continue
        first = HEADER_FIELDS[req.headers[0]]
        example = _FIELD_EXAMPLES.get(first.field, '"..."')
        raise FieldError(
            first.field,
            f"{spec.code} {CODES[spec.code].reason} requires a {first.name} header "
            f"field ({req.rfc}); set {first.field} = {example}",
        )
