"""Load a TOML scenario and validate it; every error names the file, the rule and the field."""

from __future__ import annotations

import tomllib
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from ..auth.digest import ALGORITHMS, FAMILIES, ha1
from ..auth.guard import CHALLENGE_CODES, AuthConfig, Guard, User
from ..sip.abnf import STANDARD_METHODS, TOKEN
from ..sip.codes import CODES, HEADER_FIELDS, requirements
from ..uas.validation import CHECKS, enabled_checks
from .matcher import compile_checks
from .model import ResponseSpec, Rule, Scenario, Settings
from .template import Template, TemplateError, compile_template

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
RULE_KEYS = RESPONSE_KEYS | {"name", "match", "provisional", "auth"}
MATCH_KEYS = frozenset(
    {"method", "uri", "uri_regex", "user", "user_regex", "headers", "source", "transport"}
)
TOP_KEYS = frozenset({"settings", "auth", "rule", "default"})
AUTH_KEYS = frozenset(
    {
        "realm",
        "algorithms",
        "qop",
        "nonce_lifetime",
        "wrong_password",
        "unknown_user",
        "secret",
        "credentials",
    }
)


class ScenarioError(ValueError):
    """A scenario that cannot be used; str() is one line naming file, rule and field."""

    def __init__(self, path: str, where: str, field: str | None, message: str) -> None:
        self.path, self.where, self.field, self.message = path, where, field, message
        loc = f"{path}: {where}" if where else path
        if field:
            loc += f": field '{field}'"
        super().__init__(f"{loc}: {message}")


def load_scenario(path: str | Path) -> Scenario:
    """The scenario in a TOML file (relative ``body_file`` paths from its folder)."""
    return read_scenario(path)[0]


def read_scenario(path: str | Path) -> tuple[Scenario, str]:
    """The scenario in a TOML file and the file's text (served by GET /api/scenario)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), "", None, f"cannot read: {exc.strerror}") from None
    scenario = parse_scenario(data, str(path), base_dir=path.parent)
    return scenario, data.decode("utf-8", "replace")


def parse_scenario(
    text: bytes | str, path: str = "<scenario>", base_dir: Path | None = None
) -> Scenario:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ScenarioError(path, "", None, f"not UTF-8 ({exc.reason})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(path, "", None, f"invalid TOML: {exc}") from None
    return _Builder(path, base_dir or Path(".")).build(doc)


class _Builder:
    def __init__(self, path: str, base_dir: Path) -> None:
        self.path = path
        self.base_dir = base_dir
        self.where = ""

    def fail(self, field: str | None, message: str) -> ScenarioError:
        return ScenarioError(self.path, self.where, field, message)

    # -- top level ----------------------------------------------------------------
    def build(self, doc: dict[str, Any]) -> Scenario:
        for key in doc:
            if key not in TOP_KEYS:
                raise self.fail(key, f"unknown top-level key (expected one of {_list(TOP_KEYS)})")
        self.where = "[settings]"
        settings = self.settings(doc.get("settings", {}))
        self.where = "[auth]"
        self.auth = self.auth_config(doc["auth"]) if "auth" in doc else None
        raw_rules = doc.get("rule", [])
        if not isinstance(raw_rules, list):
            raise ScenarioError(self.path, "", "rule", "must be an array of tables ([[rule]])")
        rules = []
        names: set[str] = set()
        for number, raw in enumerate(raw_rules, 1):
            name = raw.get("name") if isinstance(raw, dict) else None
            self.where = (
                f"rule {name!r} (#{number})" if isinstance(name, str) else f"rule #{number}"
            )
            if not isinstance(raw, dict):
                raise self.fail(None, "must be a table")
            rule = self.rule(raw, number)
            if rule.name and rule.name in names:
                raise self.fail("name", f"duplicate rule name {rule.name!r}")
            names.add(rule.name)
            rules.append(rule)
        self.where = "[default]"
        raw_default = doc.get("default", {"code": 404})
        if not isinstance(raw_default, dict):
            raise self.fail(None, "must be a table")
        for key in raw_default:
            if key not in RESPONSE_KEYS and key != "provisional":
                raise self.fail(key, f"unknown key (expected one of {_list(RESPONSE_KEYS)})")
        default = Rule(
            "",
            0,
            [],
            None,
            self.provisionals(raw_default),
            self.response(raw_default, "", final=True),
        )

        named = {m for r in rules if r.methods for m in r.methods}
        if "INVITE" in named:
            named |= {"ACK", "CANCEL"}
        ordered = [m for m in STANDARD_METHODS if m in named] + sorted(
            named - set(STANDARD_METHODS)
        )
        allow = tuple(ordered) if ordered else STANDARD_METHODS
        scenario = Scenario(
            self.path,
            settings,
            rules,
            default,
            allow,
            frozenset(STANDARD_METHODS) | named,
            enabled_checks(settings.checks),
        )
        self.check_required(scenario)
        return scenario

    def settings(self, raw: Any) -> Settings:
        if not isinstance(raw, dict):
            raise self.fail(None, "must be a table")
        settings = Settings()
        known = {f.name: f for f in dataclass_fields(Settings)}
        for key, value in raw.items():
            if key not in known:
                raise self.fail(key, f"unknown setting (expected one of {_list(known)})")
            current = getattr(settings, key)
            if key == "checks":
                value = self.check_switches(value)
            elif isinstance(current, tuple):
                value = tuple(self.str_list(key, value))
            elif isinstance(value, bool) != isinstance(current, bool) or not isinstance(
                value, type(current)
            ):
                if (
                    isinstance(current, float)
                    and isinstance(value, int)
                    and not isinstance(value, bool)
                ):
                    value = float(value)
                else:
                    raise self.fail(key, f"must be {type(current).__name__}, not {_kind(value)}")
            setattr(settings, key, value)
        if settings.response_routing not in ("source", "via"):
            raise self.fail("response_routing", 'must be "source" or "via"')
        if settings.rate_limit_action not in ("drop", "503"):
            raise self.fail("rate_limit_action", 'must be "drop" or "503"')
        for key in ("max_message_size", "max_transactions", "max_connections"):
            if getattr(settings, key) < 1:
                raise self.fail(key, "must be positive")
        for key in (
            "max_headers",
            "max_line_length",
            "rate_limit",
            "rate_burst",
            "max_amplification",
            "tcp_read_timeout",
            "tcp_idle_timeout",
            "loop_ttl",
        ):
            if getattr(settings, key) < 0:
                raise self.fail(key, "must not be negative (0 turns the limit off)")
        if not 0 < settings.timer_t1 <= settings.timer_t2:
            raise self.fail("timer_t1", "must be positive and no larger than timer_t2")
        return settings

    def check_switches(self, value: Any) -> dict[str, bool]:
        if not isinstance(value, dict):
            raise self.fail("checks", "must be a table of check name = true / false")
        for name, on in value.items():
            if name not in CHECKS:
                raise self.fail(
                    f"checks.{name}", f"unknown check (expected one of {_list(CHECKS)})"
                )
            if not isinstance(on, bool):
                raise self.fail(f"checks.{name}", f"must be true or false, not {_kind(on)}")
        return dict(value)

    # -- rules --------------------------------------------------------------------
    def rule(self, raw: dict[str, Any], number: int) -> Rule:
        for key in raw:
            if key not in RULE_KEYS:
                hint = (
                    " (match conditions go in the rule's `match` table)"
                    if key in MATCH_KEYS
                    else ""
                )
                raise self.fail(key, f"unknown key{hint} (expected one of {_list(RULE_KEYS)})")
        name = raw.get("name", "")
        if not isinstance(name, str) or ("name" in raw and not name):
            raise self.fail("name", "must be a non-empty string")
        match = raw.get("match", {})
        if not isinstance(match, dict):
            raise self.fail("match", "must be a table")
        for key in match:
            if key not in MATCH_KEYS:
                raise self.fail(
                    f"match.{key}", f"unknown condition (expected one of {_list(MATCH_KEYS)})"
                )
        methods = self.methods(match.get("method", "*"))
        try:
            checks = compile_checks(match)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise self.fail(f"match.{field}", message) from None
        return Rule(
            name,
            number,
            checks,
            methods,
            self.provisionals(raw),
            self.response(raw, "", final=True),
            self.guard(raw["auth"]) if "auth" in raw else None,
            # An exact user (a glob without '*') lets the scenario skip this rule for
            # every request to another user without testing it.
            match["user"] if isinstance(match.get("user"), str) and "*" not in match["user"]
            else None,
        )

    # -- authentication -------------------------------------------------------------
    def guard(self, value: Any) -> Guard:
        if value not in CHALLENGE_CODES:
            raise self.fail(
                "auth", '"www" (401, WWW-Authenticate) or "proxy" (407, Proxy-Authenticate)'
            )
        if self.auth is None:
            raise self.fail("auth", "needs an [auth] table with the credentials to check")
        return Guard(value, self.auth)

    def auth_config(self, raw: Any) -> AuthConfig:
        if not isinstance(raw, dict):
            raise self.fail(None, "must be a table")
        for key in raw:
            if key not in AUTH_KEYS:
                raise self.fail(key, f"unknown key (expected one of {_list(AUTH_KEYS)})")
        config = AuthConfig()
        if "realm" in raw:
            config.realm = self.string("realm", raw["realm"])
            if not config.realm or any(c in config.realm for c in "\r\n"):
                raise self.fail("realm", "must be a non-empty string on one line")
        if "algorithms" in raw:
            names = self.str_list("algorithms", raw["algorithms"])
            if not names:
                raise self.fail("algorithms", "must name at least one algorithm")
            algs = []
            for name in names:
                alg = ALGORITHMS.get(name.lower())
                if alg is None:
                    known = ", ".join(a.name for a in ALGORITHMS.values())
                    raise self.fail("algorithms", f"unknown algorithm {name!r} (known: {known})")
                if alg in algs:
                    raise self.fail("algorithms", f"{alg.name} is listed twice")
                algs.append(alg)
            config.algorithms = tuple(algs)
        if "qop" in raw:
            config.qop = self.boolean("qop", raw["qop"])
        if not config.qop:
            for alg in config.algorithms:
                if alg.sess:
                    raise self.fail(
                        "qop", f"{alg.name} needs qop = true (its session key uses the cnonce)"
                    )
        if "nonce_lifetime" in raw:
            value = raw["nonce_lifetime"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise self.fail("nonce_lifetime", "must be a positive number of seconds")
            config.nonce_lifetime = float(value)
        for key in ("wrong_password", "unknown_user"):
            if key in raw:
                setattr(config, key, self.refusal_code(key, raw[key]))
        if "secret" in raw:
            config.secret = self.string("secret", raw["secret"])
        config.users = self.credentials(raw.get("credentials"), config)
        config.finish()
        return config

    def refusal_code(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 699:
            raise self.fail(
                key, "must be a status code from 400 to 699 (401 or 407: challenge again)"
            )
        if value not in CODES:
            raise self.fail(key, f"{value} is not in the response-code registry")
        if value in (401, 407):
            return value  # a fresh challenge carries its own WWW- / Proxy-Authenticate
        for req in requirements(value):
            if not any(HEADER_FIELDS[h].derive for h in req.headers):
                raise self.fail(
                    key,
                    f"{value} {CODES[value].reason} requires a {req.headers[0]} header field, "
                    "which a refusal cannot carry: choose another code",
                )
        return value

    def credentials(self, raw: Any, config: AuthConfig) -> dict[str, User]:
        if not isinstance(raw, dict) or not raw:
            raise self.fail(
                "credentials", 'must be a table of user = "password" (or = { ha1 = {...} })'
            )
        families = {a.family for a in config.algorithms}
        users = {}
        for username, entry in raw.items():
            where = f"credentials.{username}"
            if isinstance(entry, str):
                entry = {"password": entry}
            if not isinstance(entry, dict):
                raise self.fail(where, "must be a password string or a table")
            for key in entry:
                if key not in ("password", "ha1"):
                    raise self.fail(f"{where}.{key}", "unknown key (expected password or ha1)")
            if ("password" in entry) == ("ha1" in entry):
                raise self.fail(where, "give either password or ha1")
            stored: dict[str, str] = {}
            if "password" in entry:
                password = self.string(f"{where}.password", entry["password"])
                for family in FAMILIES:
                    stored[family] = ha1(
                        ALGORITHMS[family.lower()], username, config.realm, password
                    )
            else:
                table = entry["ha1"]
                if not isinstance(table, dict) or not table:
                    raise self.fail(f"{where}.ha1", 'must be a table like { MD5 = "hex" }')
                for family, value in table.items():
                    fname = f"{where}.ha1.{family}"
                    canonical = next((f for f in FAMILIES if f.lower() == family.lower()), None)
                    if canonical is None:
                        raise self.fail(
                            fname, f"unknown hash (expected one of {', '.join(FAMILIES)})"
                        )
                    alg = ALGORITHMS[canonical.lower()]
                    value = self.string(fname, value).lower()
                    if len(value) != alg.digest_length or any(
                        c not in "0123456789abcdef" for c in value
                    ):
                        raise self.fail(
                            fname,
                            f"must be {alg.digest_length} hex digits: "
                            f"H(username:realm:password) with realm {config.realm!r}",
                        )
                    stored[canonical] = value
                missing = sorted(families - set(stored))
                if missing:
                    raise self.fail(
                        f"{where}.ha1",
                        f"no HA1 for {', '.join(missing)}, which auth.algorithms offers",
                    )
            users[username] = User(stored)
        return users

    def methods(self, value: Any) -> frozenset[str] | None:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(m, str) for m in items):
            raise self.fail("match.method", 'must be a method name, a list of them, or "*"')
        if "*" in items:
            return None
        for m in items:
            if not TOKEN.fullmatch(m):
                raise self.fail("match.method", f"{m!r} is not a valid SIP method token")
        return frozenset(items)

    def provisionals(self, raw: dict[str, Any]) -> list[ResponseSpec]:
        value = raw.get("provisional", [])
        if not isinstance(value, list):
            raise self.fail("provisional", "must be a list of codes or tables")
        out = []
        for i, item in enumerate(value):
            prefix = f"provisional[{i}]."
            if isinstance(item, int) and not isinstance(item, bool):
                item = {"code": item}
            if not isinstance(item, dict):
                raise self.fail(f"provisional[{i}]", "must be a code or a table")
            for key in item:
                if key not in RESPONSE_KEYS:
                    raise self.fail(
                        prefix + key, f"unknown key (expected one of {_list(RESPONSE_KEYS)})"
                    )
            spec = self.response(item, prefix, final=False)
            if isinstance(spec.code, int) and not 101 <= spec.code <= 199:
                raise self.fail(prefix + "code", f"{spec.code} is not a provisional code (101-199)")
            out.append(spec)
        return out

    def response(self, raw: dict[str, Any], prefix: str, *, final: bool) -> ResponseSpec:
        if "code" not in raw:
            raise self.fail(prefix + "code", "missing: every response needs a status code")
        code_value = raw["code"]
        code: int | Template
        if isinstance(code_value, int) and not isinstance(code_value, bool):
            if not 100 <= code_value <= 699:
                raise self.fail(prefix + "code", f"{code_value} is not a SIP status code (100-699)")
            code = code_value
        elif isinstance(code_value, str):
            code = self.template(prefix + "code", code_value)
            if code.is_constant:
                raise self.fail(
                    prefix + "code", 'must be an integer (or a template like "{ruri.user}")'
                )
            if not raw.get("fill_required", False):
                raise self.fail(
                    prefix + "code",
                    "a templated code needs fill_required = true, "
                    "so that whatever code it yields carries its required headers",
                )
        else:
            raise self.fail(prefix + "code", f"must be an integer, not {_kind(code_value)}")
        spec = ResponseSpec(code)
        if "reason" in raw:
            reason = self.string(prefix + "reason", raw["reason"])
            if any(c in reason for c in "\r\n"):
                raise self.fail(prefix + "reason", "must not contain line breaks")
            spec.reason = self.template(prefix + "reason", reason)
        elif isinstance(code, int) and code not in CODES:
            raise self.fail(
                prefix + "reason", f"{code} is not in the registry: give its reason phrase"
            )
        headers = raw.get("headers", {})
        if not isinstance(headers, dict):
            raise self.fail(prefix + "headers", "must be a table of header name = value")
        for name, value in headers.items():
            fname = f"{prefix}headers.{name}"
            if not TOKEN.fullmatch(name):
                raise self.fail(fname, "is not a valid header name")
            if name.lower() in RESERVED_HEADERS:
                raise self.fail(fname, "is written by the responder itself and cannot be set here")
            for row in self.rows(fname, value):
                spec.headers.append((name, row))
        for key, header in TYPED_FIELDS.items():
            if key in raw:
                spec.typed[header] = self.rows(prefix + key, raw[key], join=header != "Contact")
        if "body" in raw and "body_file" in raw:
            raise self.fail(prefix + "body_file", "give either body or body_file, not both")
        if "body" in raw:
            spec.body = self.template(prefix + "body", self.string(prefix + "body", raw["body"]))
        elif "body_file" in raw:
            spec.body = self.body_file(prefix + "body_file", raw["body_file"])
        if "content_type" in raw:
            spec.content_type = self.string(prefix + "content_type", raw["content_type"])
            if "/" not in spec.content_type:
                raise self.fail(
                    prefix + "content_type", "must be a media type like application/sdp"
                )
        if spec.body is not None and spec.content_type is None:
            raise self.fail(prefix + "content_type", "a body needs its content_type")
        spec.sdp = self.boolean(prefix + "sdp", raw.get("sdp", True))
        spec.fill_required = self.boolean(prefix + "fill_required", raw.get("fill_required", False))
        delay = raw.get("delay", 0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 3600:
            raise self.fail(prefix + "delay", "must be a number of seconds from 0 to 3600")
        spec.delay = float(delay)
        return spec

    # -- required headers -------------------------------------------------------------
    def check_required(self, scenario: Scenario) -> None:
        for rule in [*scenario.rules, scenario.default]:
            self.where = rule.label
            for i, spec in enumerate([*rule.provisional, rule.final]):
                prefix = "" if spec is rule.final else f"provisional[{i}]."
                if not isinstance(spec.code, int) or spec.fill_required:
                    continue
                for req in requirements(spec.code):
                    if any(spec.sets(h) or HEADER_FIELDS[h].derive for h in req.headers):
                        continue
                    first = HEADER_FIELDS[req.headers[0]]
                    raise self.fail(
                        prefix + first.field,
                        f"{spec.code} {CODES[spec.code].reason} requires a {first.name} header "
                        f"field ({req.rfc}); set {first.field} = {_example(first.field)}",
                    )

    # -- value helpers ------------------------------------------------------------------
    def template(self, field: str, text: str) -> Template:
        try:
            return compile_template(text)
        except TemplateError as exc:
            raise self.fail(field, str(exc)) from None

    def string(self, field: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"must be a string, not {_kind(value)}")
        return value

    def boolean(self, field: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(field, f"must be true or false, not {_kind(value)}")
        return value

    def str_list(self, field: str, value: Any) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(field, "must be a string or a list of strings")
        return value

    def rows(self, field: str, value: Any, *, join: bool = False) -> list[Template]:
        """A header value: a string, a number, or a list (rows, or one comma-joined row)."""
        if isinstance(value, bool):
            raise self.fail(field, "must be a string, a number or a list, not a boolean")
        if isinstance(value, int | float):
            value = str(value)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(field, "must be a string, a number or a non-empty list")
        items = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, str | int | float):
                raise self.fail(field, f"list items must be strings or numbers, not {_kind(v)}")
            text = str(v)
            if any(c in text for c in "\r\n"):
                raise self.fail(field, "must not contain line breaks")
            items.append(text)
        if join:
            items = [", ".join(items)]
        return [self.template(field, t) for t in items]

    def body_file(self, field: str, value: Any) -> Template:
        name = self.string(field, value)
        file = (self.base_dir / name) if not Path(name).is_absolute() else Path(name)
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise self.fail(field, f"cannot read {str(file)!r}: {exc.strerror}") from None
        # Bodies are sent as read, byte for byte: no template expansion.
        return Template(name, (data.decode("latin-1"),))


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _list(keys: Any) -> str:
    return ", ".join(sorted(keys))


_EXAMPLES = {
    "contacts": '["<sip:user@host>"]',
    "retry_after": "60",
    "min_expires": "60",
    "min_se": "90",
    "expires": "3600",
}


def _example(field: str) -> str:
    return _EXAMPLES.get(field, '"..."')
