"""The admin API's OpenAPI 3 document (GET /api/openapi.json): its routes (ops/admin.py)
and the console's (ops/consoleapi.py), with the limits the routes enforce."""

from __future__ import annotations

from typing import Any

from ..scenario.edit import POSITIONS
from ..scenario.model import STEP_METHODS, STEP_SDP
from ..scenario.steps import MAX_STEPS
from ..sip.transports import TRANSPORTS
from .consoleapi import add_console_openapi

MAX_WAIT = 60.0  # seconds: the longest wait (and verify window) a request may ask for
DEFAULT_WAIT = 5.0
DEFAULT_WITHIN = 1.0  # seconds: POST /api/requests/verify's window


def _query(name: str, description: str, schema: dict[str, Any] | None = None,
           repeat: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False,
                             "description": description, "schema": schema or {"type": "string"}}
    if repeat:
        param["schema"] = {"type": "array", "items": {"type": "string"}}
        param["explode"] = True
    return param


_FILTERS = [
    _query("method", "exact request method, e.g. INVITE"),
    _query("uri", "request-URI glob (only * is special, as in scenarios), e.g. sip:486@*"),
    _query("header", "Name:glob on a header field value (the same glob); repeatable",
           repeat=True),
    _query("rule", "matched rule: its label or its name"),
    _query("since", "only entries with a sequence number greater than this",
           {"type": "integer", "minimum": 0}),
    _query("direction", "received (requests that reached the responder) or sent (requests "
           "the responder sent itself)", {"type": "string", "enum": ["received", "sent"]}),
    _query("code", "a status among the entry's codes (for a sent request, what the client "
           "answered)", {"type": "integer", "minimum": 100, "maximum": 699}),
]
_ERROR = {"description": "bad filter or body (an unknown filter key is named, with the valid "
                         "ones)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ENTRIES = {"description": "matching journal entries, oldest first",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Entries"}}}}
_OK = {"description": "done", "content": {"application/json": {"schema": {"type": "object"}}}}

_FILTER_PROPERTIES: dict[str, Any] = {
    "method": {"type": "string"},
    "uri": {"type": "string", "description": "glob: only * is special"},
    "headers": {"oneOf": [
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "array", "items": {"type": "string"}, "description": "Name:glob"}]},
    "rule": {"type": "string"},
    "since": {"type": "integer", "description": "only entries with a greater seq"},
    "direction": {"type": "string", "enum": ["received", "sent"],
                  "description": "sent: the requests the responder sent itself"},
    "code": {"type": "integer", "minimum": 100, "maximum": 699,
             "description": "a status among the entry's codes (for a sent request, what "
                            "the client answered)"},
}
_FAILED = {"application/json": {"schema": {
    "type": "object", "properties": {
        "error": {"type": "string", "description": "what was expected and what arrived"},
        "listing": {"type": "string", "description": "the journal, one line an entry"},
        "entries": {"type": "array", "description": "the matching entries",
                    "items": {"$ref": "#/components/schemas/Entry"}},
        "journal": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}}}}}
_RULE_NAME = [{"name": "name", "in": "path", "required": True, "description": "the rule's name",
               "schema": {"type": "string"}}]
_REFUSED = {"description": "invalid (the old scenario stays): error is the first one-line "
                           "ScenarioError message, errors all of them, line and column where "
                           "the first is in the edited scenario's text",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Refused"}}}}
_POSITION = {"name": "position", "in": "query", "required": False,
             "description": f"where the rule goes: {POSITIONS} (NAME: another rule); without "
                            "it an existing rule keeps its place and a new one goes after the "
                            "last rule (after any catch-all, where it may never match: see "
                            "warnings)",
             "schema": {"type": "string", "pattern": "^(first|last|(before|after):.+)$"}}
_SWAPPED = {"description": "swapped in; warnings name the rules that can never match",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Swapped"}}}}

_STEP_PROPERTIES: dict[str, Any] = {
    "sdp": {"type": "string", "enum": list(STEP_SDP),
            "description": "INVITE and UPDATE only: the direction of the SDP offer (none: "
                           "no offer, the client offers in its 2xx and the ACK answers)"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                "description": "header name -> template, as a response's headers (Via, "
                               "From, To, Call-ID, CSeq, Contact, Route and the Content "
                               "headers are the far end's own)"},
    "body": {"type": "string", "description": "a template; needs content_type"},
    "content_type": {"type": "string"},
}
_FAR_REFUSED = {"description": "the far end cannot send it now (e.g. no open connection "
                               "from a TCP client: sipresponder opens none)",
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Error"}}}}
_SENT = {"description": "sent (the client's answer is journaled with the request)",
         "content": {"application/json": {"schema": {"type": "object", "properties": {
             "status": {"type": "string"}, "call_id": {"type": "string"},
             "method": {"type": "string"}}}}}}
_WORKERS_501 = {"description": "serve --workers: not available there (the reason in error)",
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Error"}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "sipresponder admin API", "version": "1",
             "description": "The request journal, the scenario being served, and metrics. "
                            "With a token every endpoint but /healthz needs "
                            "'Authorization: Bearer TOKEN'. Every POST, PUT and DELETE "
                            "needs Content-Type application/json (application/toml for "
                            "TOML) or the header X-Sipresponder: 1 (else 415); a foreign "
                            "Origin gets 403; without a token, a Host that is not an IP "
                            "address, localhost or an --admin-host name gets 421."},
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {"get": {
            "summary": "liveness, and whether requests take the compiled path "
                       "(request_path: compiled or pure Python; request_path_detail: why; "
                       "requests_by_path: how many took each path and why the engine "
                       "took its share, with requests_by_path_text the same in words; "
                       "under serve --workers summed over the workers)",
            "security": [], "responses": {"200": _OK}}},
        "/api/requests": {
            "get": {"summary": "journal entries matching the filters", "parameters": _FILTERS,
                    "responses": {"200": _ENTRIES, "400": _ERROR}},
            "delete": {"summary": "clear the journal", "responses": {"200": _OK}},
        },
        "/api/requests/count": {"get": {
            "summary": "how many journal entries match the filters", "parameters": _FILTERS,
            "responses": {"200": {"description": "the count", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"count": {"type": "integer"}}}}}},
                "400": _ERROR}}},
        "/api/requests/wait": {"post": {
            "summary": f"wait until count matching requests arrived (timeout capped at "
                       f"{MAX_WAIT:g} s)",
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Wait"}}}},
            "responses": {
                "200": _ENTRIES, "400": _ERROR,
                "408": {"description": "timed out; the journal as it stands",
                        "content": _FAILED},
            }}},
        "/api/requests/verify": {"post": {
            "summary": "assert how many matching requests arrive: exactly N (N within "
                       "timeout, then no more within the window), at most N or none (by "
                       "the end of the window); requests already journaled count. With "
                       "steps instead: that requests matching them came in this order "
                       "within one call (call_id's, or any one), others allowed between "
                       "them, waiting up to timeout; the entries are then the one each "
                       "step found",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"oneOf": [{"$ref": "#/components/schemas/Verify"},
                                     {"$ref": "#/components/schemas/VerifySequence"}]}}}},
            "responses": {
                "200": _ENTRIES, "400": _ERROR,
                "408": {"description": "exactly: fewer than N arrived within timeout; "
                                       "steps: not complete within timeout (error names "
                                       "the step not found after which entry; listing is "
                                       "the call that got furthest, its entries in order, "
                                       "--> received, <-- sent, or the journal when none "
                                       "did)",
                        "content": _FAILED},
                "409": {"description": "more arrived than allowed", "content": _FAILED},
            }}},
        "/api/rules/{name}": {
            "put": {"parameters": [*_RULE_NAME, _POSITION],
                    "summary": "set the rule of this name: replaced in place, or added after "
                               "the last rule, or put where position says; the edited scenario "
                               "is validated like a whole one and swapped in atomically",
                    "requestBody": {"required": True, "content": {"application/toml": {
                        "schema": {"type": "string", "description": "the rule's keys as "
                                   "TOML, e.g. code = 486 and match = { user = \"bob\" }"}}}},
                    "responses": {"200": _SWAPPED, "400": _REFUSED}},
            "delete": {"parameters": _RULE_NAME, "summary": "delete the rule of this name",
                       "responses": {"200": _SWAPPED, "400": _REFUSED, "404": _ERROR}},
        },
        "/api/scenario": {
            "get": {"summary": "the TOML text being served", "responses": {"200": {
                "description": "TOML", "content": {"application/toml": {
                    "schema": {"type": "string"}}}}}},
            "put": {"summary": "validate and swap in a scenario atomically",
                    "requestBody": {"required": True, "content": {"application/toml": {
                        "schema": {"type": "string"}}}},
                    "responses": {"200": _SWAPPED, "400": _REFUSED}},
        },
        "/api/reset": {"post": {"summary": "clear the journal, the sequence counters and the "
                                           "named states", "responses": {"200": _OK}}},
        "/api/state": {
            "get": {"summary": "the named states and sequence counters of the stateful rules, "
                               "by scope and key (a key not listed is in state 'start')",
                    "responses": {"200": {"description": "states and counters", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/State"}}}}}},
            "delete": {"summary": "every scope key back to 'start', every sequence to its "
                                  "first step", "responses": {"200": _OK}},
        },
        "/api/dialogs": {"get": {
            "summary": "the far end's live dialogs (made by [[rule.then]] steps, a call "
                       "in, or a dialog the client's request made for a rule with steps): "
                       "Call-ID, tags, peer, transport, kind (call or subscription) and "
                       "the steps left; under serve --workers each says its worker",
            "responses": {"200": {"description": "the dialogs", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "dialogs": {"type": "array",
                                "items": {"$ref": "#/components/schemas/Dialog"}}}}}}}}}},
        "/api/calls": {"post": {
            "summary": "call a client in: an INVITE (with an SDP offer unless sdp is "
                       "none) to target, a SIP URI with a literal IP address, or to the "
                       "Contact of the latest REGISTER (answered 2xx, not Expires 0) whose "
                       "To is aor, from the listener or on the connection it came in on; "
                       "then the steps in the dialog its 2xx makes. Over TCP, TLS and "
                       "WebSocket only on a connection the client keeps open",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Call"}}}},
            "responses": {"202": {"description": "the INVITE is sent; its Call-ID",
                                  "content": {"application/json": {"schema": {
                                      "type": "object", "properties": {
                                          "status": {"type": "string"},
                                          "call_id": {"type": "string"}}}}}},
                          "400": _ERROR,
                          "404": {"description": "no live registration for aor",
                                  "content": _ERROR["content"]},
                          "409": _FAR_REFUSED, "501": _WORKERS_501}}},
        "/api/dialogs/{call_id}/requests": {"post": {
            "parameters": [{"name": "call_id", "in": "path", "required": True,
                            "description": "the dialog's Call-ID (GET /api/dialogs)",
                            "schema": {"type": "string"}}],
            "summary": "send one request in the far end's live dialog now: BYE, INVITE "
                       "(a re-INVITE: sdp sendonly or inactive holds, sendrecv resumes), "
                       "UPDATE, INFO, MESSAGE, NOTIFY, REFER (needs headers.Refer-To), "
                       "OPTIONS",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Step"}}}},
            "responses": {"202": _SENT, "400": _ERROR,
                          "404": {"description": "no live far-end dialog has this Call-ID",
                                  "content": _ERROR["content"]},
                          "409": _FAR_REFUSED, "501": _WORKERS_501}}},
        "/metrics": {"get": {"summary": "Prometheus metrics from the engine's counters",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
        "/api/openapi.json": {"get": {"summary": "this document", "responses": {"200": _OK}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "State": {"type": "object", "properties": {
                "states": {"type": "array", "items": {"type": "object", "properties": {
                    "scope": {"type": "string"}, "key": {"type": "string"},
                    "state": {"type": "string"}}}},
                "counters": {"type": "array", "items": {"type": "object", "properties": {
                    "rule": {"type": "integer"}, "scope": {"type": "string"},
                    "key": {"type": "string"}, "count": {"type": "integer"}}}}}},
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            "Step": {"type": "object", "additionalProperties": False, "required": ["send"],
                     "properties": {"send": {"type": "string", "enum": list(STEP_METHODS)},
                                    **_STEP_PROPERTIES}},
            "ThenStep": {"type": "object", "additionalProperties": False,
                         "required": ["send"],
                         "description": "one [[rule.then]] table",
                         "properties": {
                             "send": {"type": "string", "enum": list(STEP_METHODS)},
                             "after": {"type": "number", "minimum": 0, "maximum": 3600,
                                       "description": "seconds after the previous step "
                                                      "(the first: after the ACK)"},
                             **_STEP_PROPERTIES}},
            "Call": {"type": "object", "additionalProperties": False,
                     "description": "target or aor, not both",
                     "properties": {
                         "target": {"type": "string",
                                    "description": "e.g. sip:alice@192.0.2.7:5062;"
                                                   "transport=tcp"},
                         "aor": {"type": "string", "description": "a registered address "
                                 "of record, e.g. sip:alice@example.com"},
                         "transport": {"type": "string", "enum": list(TRANSPORTS),
                                       "description": "target only: over which transport "
                                                      "(default: the URI's transport "
                                                      "parameter, else udp; tls for sips)"},
                         "send": {"type": "string", "enum": list(STEP_METHODS),
                                  "description": "the request (default INVITE): e.g. an "
                                                 "unsolicited NOTIFY out of any dialog"},
                         **_STEP_PROPERTIES,
                         "then": {"type": "array", "maxItems": MAX_STEPS,
                                  "items": {"$ref": "#/components/schemas/ThenStep"}}}},
            "Dialog": {"type": "object", "properties": {
                "call_id": {"type": "string"}, "local_tag": {"type": "string"},
                "remote_tag": {"type": "string"},
                "local": {"type": "string", "description": "our From/To value"},
                "remote": {"type": "string", "description": "the client's From/To value"},
                "remote_target": {"type": "string", "description": "the client's Contact"},
                "transport": {"type": "string", "nullable": True},
                "kind": {"type": "string", "enum": ["call", "subscription"]},
                "steps_left": {"type": "integer"},
                "worker": {"type": "integer", "description": "serve --workers only"}}},
            "Refused": {"type": "object", "properties": {
                "error": {"type": "string", "description": "the first error, one line"},
                "errors": {"type": "array", "items": {"type": "string"},
                           "description": "every error of the scenario, one line each"},
                "line": {"type": "integer", "nullable": True},
                "column": {"type": "integer", "nullable": True}}},
            "Swapped": {"type": "object", "properties": {
                "status": {"type": "string", "enum": ["added", "replaced", "deleted"]},
                "rule": {"type": "string"},
                "number": {"type": "integer", "nullable": True,
                           "description": "the rule's place, 1 = first"},
                "rules": {"type": "integer"},
                "warnings": {"type": "array", "items": {"type": "string"},
                             "description": "rules that can never match, e.g. rule 'carol' "
                                            "(#22) can never match: rule 'catch-all' (#21) "
                                            "matches everything it would"}}},
            "Entry": {"type": "object", "properties": {
                "seq": {"type": "integer"},
                "time": {"type": "number", "description": "arrival on the journal's "
                         "monotonic clock, in seconds with microseconds, as "
                         "response_times (for intervals and order, not dates)"},
                "received_at": {"type": "string", "format": "date-time",
                                "description": "wall-clock arrival, RFC 3339 in UTC, e.g. "
                                               "2026-11-28T01:58:33.123456Z"},
                "transport": {"type": "string", "enum": list(TRANSPORTS)},
                "remote": {"type": "array", "description": "[ip, port]",
                           "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                "raw": {"type": "string", "description": "the octets received, as latin-1"},
                "method": {"type": "string", "nullable": True},
                "uri": {"type": "string", "nullable": True},
                "headers": {"type": "array", "items": {
                    "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
                "rule": {"type": "string", "nullable": True},
                "outcome": {"type": "string"},
                "near_miss": {"type": "object", "nullable": True, "properties": {
                    "rule": {"type": "string"},
                    "failed": {"type": "array", "items": {"type": "string"}}}},
                "responses": {"type": "array", "items": {"type": "string"},
                              "description": "every response sent, in order, "
                              "retransmissions included (see retransmitted)"},
                "retransmitted": {"type": "array", "items": {"type": "boolean"},
                                  "description": "parallel to responses: true where the "
                                  "response repeats one already sent (Timer G until the "
                                  "ACK, the last response for a retransmitted request)"},
                "codes": {"type": "array", "items": {"type": "integer"},
                          "description": "the codes the request was answered with (for "
                          "a sent request, by the client), retransmissions left out"},
                "direction": {"type": "string", "enum": ["received", "sent"],
                              "description": "received: a request that reached the "
                              "responder (remote is where it came from, responses what "
                              "the responder answered); sent: one the responder sent "
                              "(remote is where it went, responses what came back)"},
                "worker": {"type": "integer", "description": "serve --workers only: the "
                           "worker that answered (seq is then the merged journal's)"},
                "worker_seq": {"type": "integer", "description": "serve --workers only: "
                               "the entry's seq in that worker's own journal"},
            }},
            "Entries": {"type": "object", "properties": {
                "count": {"type": "integer"},
                "entries": {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}}},
            "Wait": {"type": "object", "additionalProperties": False, "properties": {
                **_FILTER_PROPERTIES,
                "count": {"type": "integer", "minimum": 1, "default": 1,
                          "description": "at least this many"},
                "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                            "default": DEFAULT_WAIT},
            }},
            "VerifySequence": {"type": "object", "additionalProperties": False,
                               "required": ["steps"], "properties": {
                "steps": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": _FILTER_PROPERTIES},
                    "description": "the filters of each step, in order, e.g. "
                                   '[{"method": "INVITE"}, {"method": "ACK"}, {"method": '
                                   '"BYE", "direction": "sent", "code": 200}]'},
                "call_id": {"type": "string", "description": "the call the sequence must "
                            "be in (else any one call)"},
                "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                            "default": DEFAULT_WAIT},
            }},
            "Verify": {"type": "object", "additionalProperties": False,
                       "description": "filters and exactly one of exactly, at_most, none",
                       "properties": {
                **_FILTER_PROPERTIES,
                "exactly": {"type": "integer", "minimum": 0},
                "at_most": {"type": "integer", "minimum": 0},
                "none": {"type": "boolean", "description": "true: at most 0"},
                "within": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                           "default": DEFAULT_WITHIN,
                           "description": "the window, in seconds, in which no more than "
                                          "allowed may arrive"},
                "timeout": {"type": "number", "minimum": 0, "maximum": MAX_WAIT,
                            "default": DEFAULT_WAIT,
                            "description": "exactly: how long to wait for the N"},
            }},
        },
    },
}
add_console_openapi(OPENAPI)  # the console's endpoints (ops/consoleapi.py)
