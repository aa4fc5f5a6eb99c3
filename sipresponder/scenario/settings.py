"""The ``[settings]`` table: values typed like the defaults of ``model.Settings``,
then checked for range; errors raise ``FieldError`` naming the setting."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields

from ..uas.validation import CHECKS
from .fields import FieldError, kind, str_list, table, unknown
from .model import Settings

SETTING_KEYS = frozenset(f.name for f in dataclass_fields(Settings))
_KNOWN = SETTING_KEYS
# Settings where 0 turns a limit off; below it means nothing.
_NOT_NEGATIVE = (
    "max_headers",
    "max_line_length",
    "rate_limit",
    "rate_burst",
    "max_amplification",
    "tcp_read_timeout",
    "tcp_idle_timeout",
    "loop_ttl",
    "max_connections_per_source",
)
_POSITIVE = ("max_message_size", "max_transactions", "max_connections", "max_body_file")


def build_settings(raw: object) -> Settings:
    raw = table(None, raw)
    settings = Settings()
    for key, value in raw.items():
        if key not in _KNOWN:
            raise unknown(key, key, _KNOWN, "setting")
        setattr(settings, key, _value(key, value, getattr(settings, key)))
    _check_ranges(settings)
    return settings


def _value(key: str, value: object, current: object) -> object:
    """``value`` as the type of the setting's default ``current`` (an int may be a float)."""
    if key == "checks":
        return check_switches(value)
    if isinstance(current, tuple):
        return tuple(str_list(key, value))
    if isinstance(value, bool) == isinstance(current, bool) and isinstance(value, type(current)):
        return value
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise FieldError(key, f"must be {type(current).__name__}, not {kind(value)}")


def check_switches(value: object) -> dict[str, bool]:
    """``[settings.checks]``: request check name (uas.validation.CHECKS) = on / off."""
    if not isinstance(value, dict):
        raise FieldError("checks", "must be a table of check name = true / false")
    for name, on in value.items():
        if name not in CHECKS:
            raise unknown(f"checks.{name}", name, CHECKS, "check")
        if not isinstance(on, bool):
            raise FieldError(f"checks.{name}", f"must be true or false, not {kind(on)}")
    return dict(value)


def _check_ranges(settings: Settings) -> None:
    if settings.response_routing not in ("source", "via"):
        raise FieldError("response_routing", 'must be "source" or "via"')
    if settings.rate_limit_action not in ("drop", "503"):
        raise FieldError("rate_limit_action", 'must be "drop" or "503"')
    for key in _POSITIVE:
        if getattr(settings, key) < 1:
            raise FieldError(key, "must be positive")
    for key in _NOT_NEGATIVE:
        if getattr(settings, key) < 0:
            raise FieldError(key, "must not be negative (0 turns the limit off)")
    if settings.tls_handshake_timeout <= 0:
        raise FieldError("tls_handshake_timeout", "must be a positive number of seconds")
    if settings.ring_timeout <= 0:
        raise FieldError("ring_timeout", "must be a positive number of seconds")
    if settings.seed < -1:
        raise FieldError("seed", "must be a non-negative integer (or -1: a new seed every run)")
    if not 0 < settings.timer_t1 <= settings.timer_t2:
        raise FieldError("timer_t1", "must be positive and no larger than timer_t2")
    settings.ws_origins = tuple(web_origin(o) for o in settings.ws_origins)
    if not 1024 <= settings.rtp_port_min <= settings.rtp_port_max <= 65534:
        raise FieldError("rtp_port_min", "the RTP ports must be a range within 1024-65534,"
                                         " rtp_port_min no larger than rtp_port_max")
    if settings.media_max_seconds <= 0:
        raise FieldError("media_max_seconds", "must be a positive number of seconds")


def web_origin(text: str) -> str:
    """A ``ws_origins`` item as a browser's Origin header spells it (lowercase, no
    path, no final slash); FieldError when it is no origin."""
    origin = text.strip().lower().rstrip("/")
    scheme, sep, authority = origin.partition("://")
    if origin == "null" or (sep and scheme in ("http", "https") and authority
                            and not any(c in authority for c in "/?#@ ")):
        return origin
    raise FieldError("ws_origins", f"{text!r} is not an origin: expected "
                     "scheme://host[:port], e.g. \"https://app.example\"")
