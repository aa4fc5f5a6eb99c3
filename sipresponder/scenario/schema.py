"""A JSON Schema (draft 2020-12) of scenario files, built from the loader's own key sets.

Editors use it to complete and check a scenario as it is typed (Taplo / Even Better
TOML: a ``#:schema`` comment at the top of the file); ``sipresponder schema`` prints it.

The loader stays the definition of the language; the schema is built from the same
constants (RULE_KEYS, DEFAULT_KEYS, MATCH_KEYS, RESPONSE_KEYS, the Settings fields,
the CHECKS switches, AUTH_KEYS, the enumerations of model), and a key without a
description here makes ``scenario_schema()`` raise, so that a key added to the loader
cannot be left out of the schema (tests/unit/scenario/test_schema.py calls it).

What the schema refuses, the loader refuses (a property test checks it on generated
scenarios). The converse holds for the shape (unknown keys, types, enumerations,
ranges) but not for what a schema cannot say, which stays the loader's alone: the
header fields a status code requires, template syntax, regular expression and CIDR
validity, reserved header names, body_file being readable, duplicate rule names,
``when_state`` naming a state some rule sets, timer_t1 <= timer_t2, qop with the
-sess algorithms, and registry membership of codes without a reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from typing import Any

from ..auth.config import AUTH_KEYS
from ..auth.digest import ALGORITHMS, FAMILIES
from ..auth.guard import CHALLENGE_CODES
from ..call.media import MODES
from ..sip.abnf import TOKEN_CHARS
from ..sip.sdp import DIRECTIONS, OFFER_CODECS
from ..sip.transports import TRANSPORTS
from ..uas.validation import CHECKS
from .loader import TOP_KEYS
from .media import MEDIA_KEYS
from .model import (
    ACTIONS,
    AFTER,
    CONNECTION_FAULTS,
    FAULTS,
    SCOPES,
    STEP_METHODS,
    STEP_SDP,
    Settings,
)
from .responses import RESPONSE_KEYS, TYPED_FIELDS
from .rules import BEHAVIOUR_KEYS, DEFAULT_KEYS, MATCH_KEYS, RULE_KEYS, STATE_KEYS
from .settings import _NOT_NEGATIVE, _POSITIVE
from .steps import MAX_STEPS, SESSION_TIMER_KEYS, STEP_KEYS

Schema = dict[str, Any]

SCHEMA_ID = "https://sipresponder.invalid/scenario.schema.json"
_ONE_LINE: Schema = {"type": "string", "not": {"pattern": "[\r\n]"}}
_STRINGS: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
# A value no rule may hold: a key the loader refuses in that place.
_NEVER = False
_NOT_ANSWERING = [a for a in ACTIONS if a != "answer"]


def _nocase(names: Iterable[str]) -> Schema:
    """A string equal to one of ``names`` ignoring case (the loader lowercases them);
    written as [Aa] classes because editors' regex engines lack an ignore-case flag."""
    alternatives = "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else _escape(c) for c in str(name))
        for name in sorted(names)
    )
    return {"type": "string", "pattern": f"^(?:{alternatives})$"}


def _escape(char: str) -> str:
    # Only the characters special outside a class: "\\-" is an error in ECMA's u mode.
    return "\\" + char if char in r".^$*+?()[]{}|\\" else char


def _one_or_list(item: Schema, *, min_items: int = 0) -> Schema:
    listed: Schema = {"type": "array", "items": item}
    if min_items:
        listed["minItems"] = min_items
    return {"anyOf": [item, listed]}


def _header_value() -> Schema:
    scalar: Schema = {"anyOf": [_ONE_LINE, {"type": "number"}]}
    return {"anyOf": [*scalar["anyOf"], {"type": "array", "items": scalar, "minItems": 1}]}


def _seconds(**bounds: float) -> Schema:
    return {"type": "number", "minimum": 0, "maximum": 3600, **bounds}


def _delay() -> Schema:
    uniform: Schema = {
        "type": "object",
        "properties": {
            "uniform": {"type": "array", "items": _seconds(), "minItems": 2, "maxItems": 2}
        },
        "required": ["uniform"],
        "additionalProperties": False,
    }
    lognormal: Schema = {
        "type": "object",
        "properties": {
            "lognormal": {
                "type": "object",
                "properties": {
                    "median": _seconds(exclusiveMinimum=0),
                    "sigma": {"type": "number", "minimum": 0, "maximum": 10},
                },
                "required": ["median", "sigma"],
                "additionalProperties": False,
            }
        },
        "required": ["lognormal"],
        "additionalProperties": False,
    }
    return {
        "description": "seconds before sending (0-3600), or drawn: "
        "{uniform = [low, high]} or {lognormal = {median = m, sigma = s}}",
        "anyOf": [_seconds(), uniform, lognormal],
    }


def _response_keys(low: int = 100, high: int = 699) -> dict[str, Schema]:
    """The schema of each of RESPONSE_KEYS (codes from ``low`` to ``high``)."""
    described: dict[str, Schema] = {
        "code": {
            "description": "the status code, or a template (with fill_required = true)",
            "anyOf": [{"type": "integer", "minimum": low, "maximum": high}, {"type": "string"}],
        },
        "reason": {**_ONE_LINE, "description": "the reason phrase (a template)"},
        "headers": {
            "description": "extra header fields: name = value, a number or a list of rows",
            "type": "object",
            "propertyNames": {"pattern": f"^[{TOKEN_CHARS}]+$"},
            "additionalProperties": _ref("headerValue"),
        },
        "body": {"type": "string", "description": "the body (a template)"},
        "body_file": {"type": "string", "description": "a file sent as the body, byte for byte"},
        "content_type": {"type": "string", "pattern": "/", "description": "the body's type"},
        "sdp": {"type": "boolean", "description": "answer an SDP offer in a 2xx to INVITE"},
        "delay": _ref("delay"),
        "fill_required": {
            "type": "boolean",
            "description": "supply the header fields the code requires with example values",
        },
    }
    for key, header in TYPED_FIELDS.items():
        described[key] = {**_ref("headerValue"), "description": f"the {header} header field"}
    return _exactly(RESPONSE_KEYS, described, "response key")


def _exactly(keys: frozenset[str], described: dict[str, Schema], what: str) -> dict[str, Schema]:
    """``described`` for exactly ``keys``: a key the loader knows and this module does not
    describe is an error here, not a silent hole in the schema."""
    missing = sorted(keys - described.keys())
    if missing:
        raise KeyError(f"scenario schema: no schema for {what} {', '.join(missing)}")
    return {key: described[key] for key in sorted(keys)}


def _response(low: int = 100, high: int = 699, **extra: Schema) -> Schema:
    return {
        "type": "object",
        "properties": {**_response_keys(low, high), **extra},
        "additionalProperties": False,
        "required": ["code"],
        **_body_rules(),
    }


def _body_rules() -> Schema:
    """A body comes from body or body_file, not both, and needs its content_type."""
    return {
        "not": {"required": ["body", "body_file"]},
        "dependentRequired": {"body": ["content_type"], "body_file": ["content_type"]},
    }


def _ref(name: str) -> Schema:
    """A reference to one of the schema's ``$defs``: what many tables share."""
    return {"$ref": f"#/$defs/{name}"}


def _defs() -> dict[str, Schema]:
    return {"headerValue": _header_value(), "delay": _delay(), "provisional": _provisional()}


def _provisional() -> Schema:
    return {
        "description": "provisional responses sent first: codes ([180]) or response tables",
        "type": "array",
        "items": {"anyOf": [{"type": "integer", "minimum": 101, "maximum": 199},
                            _response(101, 199)]},
    }


def _behaviour_keys() -> dict[str, Schema]:
    described: dict[str, Schema] = {
        "action": {"enum": list(ACTIONS), "description": "answer, send nothing, or ring only"},
        "fault": {"enum": list(FAULTS), "description": "break the connection or the response"},
        "repeat_final": {"type": "boolean", "description": "send the final response twice"},
        "probability": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "the chance of answering at all",
        },
        "choice": {
            "description": "final responses drawn by weight ([[rule.choice]])",
            "type": "array",
            "minItems": 1,
            "items": _response(weight={"type": "number", "exclusiveMinimum": 0}),
        },
    }
    return _exactly(BEHAVIOUR_KEYS, described, "behaviour key")


def _state_keys() -> dict[str, Schema]:
    state_name: Schema = {"type": "string", "pattern": "\\S", "description": "a state name"}
    step = _response(provisional=_ref("provisional"))
    described: dict[str, Schema] = {
        "sequence": {
            "description": "the answers in turn: codes or response tables",
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 699}, step]},
        },
        "after": {"enum": list(AFTER), "description": "once the sequence is exhausted"},
        "scope": {"enum": list(SCOPES), "description": "what sequences and states count per"},
        "when_state": {**state_name, "description": "the rule applies only in this state"},
        "new_state": {**state_name, "description": "answering moves to this state"},
    }
    return _exactly(STATE_KEYS, described, "state key")


def _match() -> Schema:
    codec = r"^[^/\s]+/[0-9]+(?:/[^/\s]+)?$"
    sdp: dict[str, Schema] = {
        "media": _one_or_list({"type": "string", "pattern": "^[^ ]+$"}, min_items=1),
        "codecs": _one_or_list({"type": "string", "pattern": codec}, min_items=1),
        "no_codecs": _one_or_list({"type": "string", "pattern": codec}, min_items=1),
        "direction": _one_or_list({"enum": sorted(DIRECTIONS)}, min_items=1),
    }
    described: dict[str, Schema] = {
        "method": {
            "description": 'a method, a list of them, or "*"',
            **_one_or_list({"type": "string", "pattern": f"^(?:[{TOKEN_CHARS}]+)$"}, min_items=1),
        },
        "uri": {"type": "string", "description": "a glob on the Request-URI"},
        "uri_regex": {"type": "string", "description": "a regular expression on the Request-URI"},
        "user": {"type": "string", "description": "a glob on the Request-URI user"},
        "user_regex": {"type": "string", "description": "a regular expression on the user"},
        "headers": {
            "description": "header name = regular expression, or true / false: present / absent",
            "type": "object",
            "additionalProperties": {"type": ["string", "boolean"]},
        },
        "source": {**_STRINGS, "description": "an address or CIDR, or a list of them"},
        "transport": _one_or_list(_nocase(TRANSPORTS)),
        "body": {"type": "string", "description": "a regular expression on the body"},
        "sdp": {
            "description": "conditions on an application/sdp body ({} : any SDP body)",
            "type": "object",
            "properties": sdp,
            "additionalProperties": False,
        },
    }
    return {
        "type": "object",
        "properties": _exactly(MATCH_KEYS, described, "match condition"),
        "additionalProperties": False,
    }


def _requires_a_response() -> Schema:
    """A table that answers needs a code, unless its responses come from elsewhere."""
    return {
        "anyOf": [
            {"required": ["code"]},
            {"required": ["sequence"]},
            {"required": ["choice"]},
            {"required": ["action"], "properties": {"action": {"enum": _NOT_ANSWERING}}},
        ]
    }


def _action_rules() -> list[Schema]:
    """What the ``action`` values refuse (rules.build_behaviour, rules._responses)."""
    no_final = {key: _NEVER for key in (*sorted(RESPONSE_KEYS), "fault", "choice")}
    return [
        {
            "if": {"required": ["action"], "properties": {"action": {"enum": _NOT_ANSWERING}}},
            "then": {"properties": {**no_final, "repeat_final": {"const": False}}},
        },
        {
            "if": {"required": ["action"], "properties": {"action": {"const": "none"}}},
            "then": {"properties": {"provisional": {"maxItems": 0}}},
        },
        {
            "if": {"required": ["action"], "properties": {"action": {"const": "provisional-only"}}},
            "then": {"required": ["provisional"], "properties": {"provisional": {"minItems": 1}}},
        },
        # A connection fault closes the connection: nothing to repeat.
        {
            "if": {
                "required": ["fault"],
                "properties": {"fault": {"enum": list(CONNECTION_FAULTS)}},
            },
            "then": {"properties": {"repeat_final": {"const": False}}},
        },
    ]


def _responses_elsewhere() -> dict[str, Schema]:
    """A rule with ``choice`` or ``sequence`` has none of the response keys itself."""
    own = {key: _NEVER for key in sorted(RESPONSE_KEYS)}
    return {
        "choice": {"properties": own},
        "sequence": {"properties": {**own, "provisional": _NEVER}},
    }


def _any_of_keys(keys: frozenset[str]) -> Schema:
    return {"anyOf": [{"required": [key]} for key in sorted(keys)]}


def _rule() -> Schema:
    own: dict[str, Schema] = {
        "name": {"type": "string", "minLength": 1, "description": "the rule's unique name"},
        "match": _match(),
        "provisional": _ref("provisional"),
        "auth": {"enum": sorted(CHALLENGE_CODES), "description": "challenge with 401 or 407"},
        "then": _then(),
        "session_timer": _session_timer(),
        "media": _media(),
        "reliable": {
            "anyOf": [{"type": "boolean"}, {"const": "require"}],
            "description": "provisionals to an INVITE with 100rel in Supported or Require "
            "are sent reliably (RFC 3262: Require: 100rel, RSeq, retransmitted until the "
            'PRACK; the final response waits for it); "require": an INVITE without 100rel '
            "gets 421 Extension Required",
        },
    }
    described = {**_response_keys(), **_behaviour_keys(), **_state_keys(), **own}
    return {
        "type": "object",
        "properties": _exactly(RULE_KEYS, described, "rule key"),
        "additionalProperties": False,
        "allOf": [_requires_a_response(), *_action_rules(), _body_rules()],
        "dependentRequired": {"after": ["sequence"]},
        "dependentSchemas": _responses_elsewhere(),
        # A rule is either chancy or stateful, not both (yet).
        "not": {"allOf": [_any_of_keys(BEHAVIOUR_KEYS), _any_of_keys(STATE_KEYS)]},
    }


def _then() -> Schema:
    """``[[rule.then]]``: the far end's steps after the answer (scenario/steps.py)."""
    step: dict[str, Schema] = {
        "send": {"enum": list(STEP_METHODS), "description": "the method the far end sends"},
        "after": {"type": "number", "minimum": 0, "maximum": 3600,
                  "description": "seconds after the previous step is over (the first: "
                                 "after the ACK of a 2xx to INVITE, else the answer)"},
        "sdp": {"enum": list(STEP_SDP),
                "description": "a re-INVITE's or UPDATE's offer direction; none: no offer"},
        "headers": {"type": "object", "additionalProperties": {"type": ["string", "number"]},
                    "description": "header fields to add (templates)"},
        "body": {"type": "string", "description": "the body (a template)"},
        "content_type": {"type": "string", "pattern": "/", "description": "the body's type"},
        "credentials": {
            "type": "object", "required": ["username", "password"],
            "additionalProperties": False,
            "properties": {"username": {"type": "string", "minLength": 1},
                           "password": {"type": "string", "minLength": 1}},
            "description": "answer a 401 or 407 to this step's request with Digest",
        },
        "codecs": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"enum": list(OFFER_CODECS)},
                   "description": "the offer's codecs, in order (a codec change)"},
        "cancel_after": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                         "description": "CANCEL the INVITE when it has no final by then"},
    }
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_STEPS,
        "description": "what the far end sends after answering, step by step",
        "items": {
            "type": "object",
            "properties": _exactly(STEP_KEYS, step, "step key"),
            "additionalProperties": False,
            "required": ["send"],
            "dependentRequired": {"body": ["content_type"]},
        },
    }


def _session_timer() -> Schema:
    described: dict[str, Schema] = {
        "min_se": {"type": "integer", "minimum": 1, "maximum": 86400,
                   "description": "our minimum interval: below it, 422 with this Min-SE"},
        "interval": {"type": "integer", "minimum": 1, "maximum": 86400,
                     "description": "the interval when the request names none"},
        "refresher": {"enum": ["uas", "uac"],
                      "description": "who refreshes when the request does not say"},
        "refresh": {"enum": ["UPDATE", "INVITE"], "description": "our refresh's method"},
    }
    return {
        "type": "object",
        "properties": _exactly(SESSION_TIMER_KEYS, described, "session_timer key"),
        "additionalProperties": False,
        "description": "RFC 4028 session timers on INVITE and UPDATE",
    }


def _media() -> Schema:
    described: dict[str, Schema] = {
        "mode": {"enum": list(MODES), "description": "what the call's RTP stream does"},
        "tone": {"anyOf": [{"type": "number", "minimum": 20, "maximum": 3900},
                           {"type": "array", "minItems": 1, "maxItems": 2,
                            "items": {"type": "number", "minimum": 20, "maximum": 3900}}],
                 "description": "mode tone: a frequency, or two (a dual tone)"},
        "file": {"type": "string", "description": "mode file: a PCM WAV file to play, looped"},
        "dtmf": {"type": "string", "pattern": "^[0-9*#A-Da-d]{1,64}$",
                 "description": "digits to send as RFC 4733 events"},
        "dtmf_after": {"type": "number", "minimum": 0, "maximum": 3600,
                       "description": "seconds after the stream starts"},
        "stop_after": {"type": "number", "minimum": 0, "maximum": 3600,
                       "description": "stop sending after this many seconds (RTP timeout)"},
        "start_after": {"type": "number", "minimum": 0, "maximum": 3600,
                        "description": "fault: send nothing for this many seconds"},
        "payload_type": {"type": "integer", "minimum": 0, "maximum": 127,
                         "description": "fault: our audio under this payload type"},
        "loss": {"type": "number", "minimum": 0, "maximum": 1,
                 "description": "fault: the share of our packets dropped (seeded)"},
        "jitter_ms": {"type": "number", "minimum": 0, "maximum": 1000,
                      "description": "fault: each packet of ours delayed up to this much"},
    }
    table: Schema = {"type": "object", "properties": _exactly(MEDIA_KEYS, described,
                                                               "media key"),
                     "additionalProperties": False}
    return {"anyOf": [{"enum": list(MODES)}, table],
            "description": "the call's RTP stream after a 2xx to INVITE"}


def _default() -> Schema:
    described = {**_response_keys(), **_behaviour_keys(), "provisional": _ref("provisional")}
    return {
        "description": "the response when no rule matches (default: 404)",
        "type": "object",
        "properties": _exactly(DEFAULT_KEYS, described, "[default] key"),
        "additionalProperties": False,
        "allOf": [_requires_a_response(), *_action_rules(), _body_rules()],
        "dependentSchemas": {"choice": _responses_elsewhere()["choice"]},
    }


def _setting(name: str, default: object) -> Schema:
    """A setting typed like its default in model.Settings, with the loader's range."""
    if name == "checks":
        switches = {
            check: {"type": "boolean", "description": info.answer} for check, info in CHECKS.items()
        }
        return {"type": "object", "properties": switches, "additionalProperties": False}
    if name == "response_routing":
        return {"enum": ["source", "via"]}
    if name == "rate_limit_action":
        return {"enum": ["drop", "503"]}
    schema: Schema
    if isinstance(default, tuple):
        schema = dict(_STRINGS)
    elif isinstance(default, bool):
        schema = {"type": "boolean"}
    elif isinstance(default, int):
        schema = {"type": "integer"}
    elif isinstance(default, float):
        schema = {"type": "number"}
    elif isinstance(default, str):
        schema = {"type": "string"}
    else:
        raise KeyError(f"scenario schema: no schema for setting {name}")
    if name in _POSITIVE:
        schema["minimum"] = 1
    elif name in _NOT_NEGATIVE:
        schema["minimum"] = 0
    elif name in ("ring_timeout", "timer_t1", "timer_t2", "tls_handshake_timeout"):
        schema["exclusiveMinimum"] = 0
    elif name == "seed":
        schema["minimum"] = -1
    return schema


def _settings() -> Schema:
    defaults = Settings()
    return {
        "type": "object",
        "properties": {
            f.name: _setting(f.name, getattr(defaults, f.name)) for f in dataclass_fields(Settings)
        },
        "additionalProperties": False,
    }


def _auth() -> Schema:
    hex_digits: Schema = {"type": "string", "pattern": "^[0-9A-Fa-f]+$"}
    user: Schema = {
        "anyOf": [
            {"type": "string", "description": "the password"},
            {
                "type": "object",
                "properties": {
                    "password": {"type": "string"},
                    "ha1": {
                        "type": "object",
                        "minProperties": 1,
                        "propertyNames": _nocase(FAMILIES),
                        "additionalProperties": hex_digits,
                    },
                },
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
            },
        ]
    }
    refusal: Schema = {"type": "integer", "minimum": 400, "maximum": 699}
    described: dict[str, Schema] = {
        "realm": {**_ONE_LINE, "minLength": 1},
        "algorithms": {
            "anyOf": [
                _nocase(a.name for a in ALGORITHMS.values()),
                {"type": "array", "minItems": 1, "uniqueItems": True,
                 "items": _nocase(a.name for a in ALGORITHMS.values())},
            ]
        },
        "qop": {"type": "boolean"},
        "nonce_lifetime": {"type": "number", "exclusiveMinimum": 0},
        "wrong_password": refusal,
        "unknown_user": refusal,
        "secret": {"type": "string"},
        "credentials": {
            "description": 'user = "password" or { ha1 = { MD5 = "hex", ... } }',
            "type": "object",
            "minProperties": 1,
            "additionalProperties": user,
        },
    }
    return {
        "type": "object",
        "properties": _exactly(AUTH_KEYS, described, "[auth] key"),
        "additionalProperties": False,
        "required": ["credentials"],
    }


def scenario_schema() -> Schema:
    """The JSON Schema of a scenario file (as the dict TOML reads it into)."""
    described: dict[str, Schema] = {
        "settings": _settings(),
        "auth": _auth(),
        "rule": {"type": "array", "items": _rule(), "description": "[[rule]]: tried in order"},
        "default": _default(),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "sipresponder scenario",
        "description": "A scenario file of sipresponder (TOML); `sipresponder check` "
        "validates what a schema cannot (required header fields, templates, states).",
        "type": "object",
        "properties": _exactly(TOP_KEYS, described, "top-level key"),
        "additionalProperties": False,
        # A rule with auth checks credentials from the [auth] table.
        "if": {"required": ["rule"],
               "properties": {"rule": {"contains": {"required": ["auth"]}}}},
        "then": {"required": ["auth"]},
        "$defs": _defs(),
    }


def schema_text() -> str:
    """The schema as ``sipresponder schema`` prints it (and scenarios/ ships it)."""
    return json.dumps(scenario_schema(), indent=2) + "\n"
