"""A scenario's authentication settings: the ``[auth]`` table and a rule's ``auth`` key.

``parse_auth`` reads the table into an ``AuthConfig`` (realm, algorithms, qop, nonce
lifetime, refusal codes, credentials stored as HA1 per hash family, RFC 7616 3.4.2);
``rule_guard`` reads a rule's ``auth = "www" | "proxy"``. Errors raise ``FieldError``
naming the key inside the table; the scenario loader adds the file and the section.
"""

from __future__ import annotations

from ..scenario.fields import FieldError, boolean, reject_unknown, str_list, string, table
from ..sip.codes import CODES, HEADER_FIELDS, requirements
from .digest import ALGORITHMS, FAMILIES, Algorithm, ha1
from .guard import CHALLENGE_CODES, AuthConfig, Guard, User

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
_HEX = frozenset("0123456789abcdef")


def parse_auth(raw: object) -> AuthConfig:
    """The ``[auth]`` table: what the rules with ``auth`` check credentials against."""
    raw = table(None, raw)
    reject_unknown(raw, AUTH_KEYS)
    config = AuthConfig()
    if "realm" in raw:
        config.realm = _realm(raw["realm"])
    if "algorithms" in raw:
        config.algorithms = _algorithms(raw["algorithms"])
    if "qop" in raw:
        config.qop = boolean("qop", raw["qop"])
    _check_qop(config)
    if "nonce_lifetime" in raw:
        config.nonce_lifetime = _lifetime(raw["nonce_lifetime"])
    if "wrong_password" in raw:
        config.wrong_password = _refusal_code("wrong_password", raw["wrong_password"])
    if "unknown_user" in raw:
        config.unknown_user = _refusal_code("unknown_user", raw["unknown_user"])
    if "secret" in raw:
        config.secret = string("secret", raw["secret"])
    config.users = _credentials(raw.get("credentials"), config)
    config.finish()
    return config


def rule_guard(value: object, config: AuthConfig | None) -> Guard:
    """A rule's ``auth`` key: the guard the engine asks before the rule answers."""
    if not isinstance(value, str) or value not in CHALLENGE_CODES:
        raise FieldError(
            "auth", '"www" (401, WWW-Authenticate) or "proxy" (407, Proxy-Authenticate)'
        )
    if config is None:
        raise FieldError("auth", "needs an [auth] table with the credentials to check")
    return Guard(value, config)


def _realm(value: object) -> str:
    realm = string("realm", value)
    if not realm or any(c in realm for c in "\r\n"):
        raise FieldError("realm", "must be a non-empty string on one line")
    return realm


def _check_qop(config: AuthConfig) -> None:
    if config.qop:
        return
    for alg in config.algorithms:
        if alg.sess:
            raise FieldError(
                "qop", f"{alg.name} needs qop = true (its session key uses the cnonce)"
            )


def _algorithms(value: object) -> tuple[Algorithm, ...]:
    names = str_list("algorithms", value)
    if not names:
        raise FieldError("algorithms", "must name at least one algorithm")
    algs: list[Algorithm] = []
    for name in names:
        alg = ALGORITHMS.get(name.lower())
        if alg is None:
            known = ", ".join(a.name for a in ALGORITHMS.values())
            raise FieldError("algorithms", f"unknown algorithm {name!r} (known: {known})")
        if alg in algs:
            raise FieldError("algorithms", f"{alg.name} is listed twice")
        algs.append(alg)
    return tuple(algs)


def _lifetime(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise FieldError("nonce_lifetime", "must be a positive number of seconds")
    return float(value)


def _refusal_code(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 699:
        raise FieldError(
            key, "must be a status code from 400 to 699 (401 or 407: challenge again)"
        )
    if value not in CODES:
        raise FieldError(key, f"{value} is not in the response-code registry")
    if value in (401, 407):
        return value  # a fresh challenge carries its own WWW- / Proxy-Authenticate
    for req in requirements(value):
        if not any(HEADER_FIELDS[h].derive for h in req.headers):
            raise FieldError(
                key,
                f"{value} {CODES[value].reason} requires a {req.headers[0]} header field, "
                "which a refusal cannot carry: choose another code",
            )
    return value


def _credentials(raw: object, config: AuthConfig) -> dict[str, User]:
    if not isinstance(raw, dict) or not raw:
        raise FieldError(
            "credentials", 'must be a table of user = "password" (or = { ha1 = {...} })'
        )
    users: dict[str, User] = {}
    for username, entry in raw.items():
        try:
            users[username] = _user(username, entry, config)
        except FieldError as exc:
            raise exc.within(f"credentials.{username}") from None
    return users


def _user(username: str, entry: object, config: AuthConfig) -> User:
    """One credentials entry: a password, or HA1 per hash family (names from the entry)."""
    if isinstance(entry, str):
        entry = {"password": entry}
    if not isinstance(entry, dict):
        raise FieldError(None, "must be a password string or a table")
    for key in entry:
        if key not in ("password", "ha1"):
            raise FieldError(key, "unknown key (expected password or ha1)")
    if ("password" in entry) == ("ha1" in entry):
        raise FieldError(None, "give either password or ha1")
    if "password" in entry:
        password = string("password", entry["password"])
        return User(
            {f: ha1(ALGORITHMS[f.lower()], username, config.realm, password) for f in FAMILIES}
        )
    try:
        return User(_stored_ha1(entry["ha1"], config))
    except FieldError as exc:
        raise exc.within("ha1") from None


def _stored_ha1(raw: object, config: AuthConfig) -> dict[str, str]:
    """An entry's ``ha1`` table: hash family -> H(username:realm:password) in hex."""
    if not isinstance(raw, dict) or not raw:
        raise FieldError(None, 'must be a table like { MD5 = "hex" }')
    stored: dict[str, str] = {}
    for family, value in raw.items():
        canonical = next((f for f in FAMILIES if f.lower() == family.lower()), None)
        if canonical is None:
            raise FieldError(family, f"unknown hash (expected one of {', '.join(FAMILIES)})")
        alg = ALGORITHMS[canonical.lower()]
        digest = string(family, value).lower()
        if len(digest) != alg.digest_length or not _HEX.issuperset(digest):
            raise FieldError(
                family,
                f"must be {alg.digest_length} hex digits: "
                f"H(username:realm:password) with realm {config.realm!r}",
            )
        stored[canonical] = digest
    missing = sorted({a.family for a in config.algorithms} - set(stored))
    if missing:
        raise FieldError(None, f"no HA1 for {', '.join(missing)}, which auth.algorithms offers")
    return stored
