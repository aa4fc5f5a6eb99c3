"""One ``[[rule]]`` table: its name, its ``match`` conditions, its responses and its
``auth``; errors raise ``FieldError`` naming the key inside the rule."""

from __future__ import annotations

from ..auth.config import rule_guard
from ..auth.guard import AuthConfig
from ..sip.abnf import TOKEN
from .fields import FieldError, boolean, key_list, unknown
from .files import FileAccess
from .matcher import compile_conditions
from .media import build_media
from .model import (
    ACTIONS,
    AFTER,
    CONNECTION_FAULTS,
    FAULTS,
    SCOPES,
    START,
    Behaviour,
    ResponseSpec,
    Rule,
    RuleState,
    Step,
)
from .responses import RESPONSE_KEYS, build_provisionals, build_response, check_required
from .steps import build_session_timer, build_steps

# Keys that change what a rule does with its responses (model.Behaviour).
BEHAVIOUR_KEYS = frozenset({"action", "fault", "repeat_final", "probability", "choice"})
# Keys that make a rule's answer depend on earlier requests (model.RuleState).
STATE_KEYS = frozenset({"sequence", "after", "scope", "when_state", "new_state"})
RULE_KEYS = RESPONSE_KEYS | BEHAVIOUR_KEYS | STATE_KEYS | {
    "name", "match", "provisional", "auth", "then", "session_timer", "reliable", "media"}
DEFAULT_KEYS = RESPONSE_KEYS | BEHAVIOUR_KEYS | {"provisional"}
# The final response of a rule that sends none (action "none" or "provisional-only"):
# never sent; there so that every rule has one for the checks that read it.
NOT_SENT = ResponseSpec(408, sdp=False)
MATCH_KEYS = frozenset(
    {"method", "uri", "uri_regex", "user", "user_regex", "headers", "source", "transport",
     "body", "sdp"}
)


def unknown_rule_key(key: str) -> FieldError:
    """The error for a key a rule does not take (a condition written outside ``match``
    is the usual one)."""
    if key in MATCH_KEYS:
        return FieldError(key, f"unknown key (match conditions go in the rule's `match` "
                               f"table: match = {{ {key} = ... }})")
    return unknown(key, key, RULE_KEYS)


def build_rule(
    raw: dict[str, object], number: int, auth: AuthConfig | None, files: FileAccess
) -> Rule:
    """Rule ``number`` (1-based) of the file; ``auth`` is the scenario's [auth] table."""
    for key in raw:
        if key not in RULE_KEYS:
            raise unknown_rule_key(key)
    name = raw.get("name", "")
    if not isinstance(name, str) or ("name" in raw and not name):
        raise FieldError("name", "must be a non-empty string")
    match = _match_table(raw.get("match", {}))
    methods = _methods(match.get("method", "*"))
    try:
        conditions = compile_conditions(match)
    except FieldError as exc:
        raise exc.within("match") from None
    user = match.get("user")
    behaviour = build_behaviour(raw, files)
    state = _rule_state(raw, files)
    if behaviour is not None and state is not None:
        # Each family is defined on a rule's one response; a sequence of faulty or
        # chancy answers is not defined yet, so say so rather than guess.
        key = sorted(BEHAVIOUR_KEYS & raw.keys())[0]
        raise FieldError(
            key,
            f"cannot be combined with {key_list(sorted(STATE_KEYS & raw.keys()))} in one rule "
            "(yet): split it into two rules",
        )
    then = build_steps(raw["then"]) if "then" in raw else ()
    timer = build_session_timer(raw["session_timer"]) if "session_timer" in raw else None
    media = build_media(raw["media"], files) if "media" in raw else None
    for key, used in (("then", bool(then)), ("session_timer", timer is not None),
                      ("media", media is not None)):
        if used and behaviour is not None:
            # A fault or a chance may leave nothing answered: what would follow it?
            other = sorted(BEHAVIOUR_KEYS & raw.keys())[0]
            raise FieldError(key, f"cannot be combined with {other} in one rule (yet)")
    if state is not None and state.sequence:
        # The first step stands for the rule where one response is needed (the
        # Allow list, logs); the engine answers with the step the counter picks.
        provisional, final = state.sequence[0].provisional, state.sequence[0].final
    else:
        provisional, final = _responses(raw, behaviour, files)
    return Rule(
        name,
        number,
        conditions,
        methods,
        provisional,
        final,
        rule_guard(raw["auth"], auth) if "auth" in raw else None,
        # An exact user (a glob without '*') lets the scenario skip this rule for
        # every request to another user without testing it.
        user if isinstance(user, str) and "*" not in user else None,
        behaviour=behaviour,
        state=state,
        then=then,
        session_timer=timer,
        media=media,
        acts=bool(then) or timer is not None or media is not None,
        reliable=_reliable(raw, provisional, final, state),
        require_100rel=raw.get("reliable") == REQUIRE_100REL,
    )


# ``reliable = "require"``: RFC 3262 3's UAS that insists on reliable provisionals.
REQUIRE_100REL = "require"


def _reliable(raw: dict[str, object], provisional: list[ResponseSpec], final: ResponseSpec,
              state: RuleState | None) -> bool:
    """The ``reliable`` key (RFC 3262): true, false or "require"; refused on a rule
    with no provisional response to make reliable, where it could only be a mistake."""
    value = raw.get("reliable", False)
    if value != REQUIRE_100REL and not isinstance(value, bool):
        raise FieldError("reliable", f'must be true, false or "require", not {value!r}')
    if not value:
        return False
    steps = state.sequence if state is not None and state.sequence else ()
    if (
        provisional
        or not isinstance(final.code, int)
        or final.code < 200
        or any(step.provisional or not isinstance(step.final.code, int)
               or step.final.code < 200 for step in steps)
    ):
        return True
    raise FieldError("reliable", "the rule sends no provisional response to make reliable "
                                 "(give it `provisional = [180]` or a 1xx code)")


def _rule_state(raw: dict[str, object], files: FileAccess) -> RuleState | None:
    """The ``sequence``, ``after``, ``scope``, ``when_state`` and ``new_state`` keys,
    or None when the rule has none of them (it stays on the stateless path)."""
    if not STATE_KEYS & raw.keys():
        return None
    state = RuleState()
    scope = raw.get("scope", "global")
    if scope not in SCOPES:
        raise FieldError("scope", f"must be one of {', '.join(SCOPES)}, not {scope!r}")
    state.scope = str(scope)
    after = raw.get("after", "repeat-last")
    if after not in AFTER:
        raise FieldError("after", f"must be one of {', '.join(AFTER)}, not {after!r}")
    state.after = str(after)
    for key in ("when_state", "new_state"):
        if key in raw:
            value = raw[key]
            if not isinstance(value, str) or not value.strip():
                raise FieldError(key, 'must be a state name such as "registered"')
            setattr(state, key, value)
    if "sequence" in raw:
        state.sequence = _sequence(raw, files)
    elif "after" in raw:
        raise FieldError("after", "applies to a sequence: give the rule a sequence too")
    return state


def _sequence(raw: dict[str, object], files: FileAccess) -> tuple[Step, ...]:
    own = sorted(k for k in raw if k in RESPONSE_KEYS or k == "provisional")
    if own:
        raise FieldError(
            own[0], "a rule with a sequence answers with its steps: put the response keys "
            "in each step (sequence = [503, 200] or [[rule.sequence]] tables)",
        )
    value = raw["sequence"]
    if not isinstance(value, list) or not value:
        raise FieldError("sequence", "must be a non-empty list of codes or response tables")
    steps = []
    for i, item in enumerate(value):
        where = f"sequence[{i}]"
        if isinstance(item, int) and not isinstance(item, bool):
            item = {"code": item}
        if not isinstance(item, dict):
            raise FieldError(where, "must be a code or a response table")
        try:
            for key in item:
                if key not in RESPONSE_KEYS and key != "provisional":
                    raise unknown(key, key, RESPONSE_KEYS | {"provisional"})
            step = Step(build_provisionals(item, files), build_response(item, files))
            check_required(Rule("", 0, [], None, step.provisional, step.final))
        except FieldError as exc:
            raise exc.within(where) from None
        steps.append(step)
    return tuple(steps)


def check_states(rule: Rule, rules: list[Rule]) -> None:
    """Refuse a ``when_state`` that no rule of the same scope ever moves to: the rule
    could never apply (a typo in a state name, or scopes that do not agree)."""
    state = rule.state
    if state is None or state.when_state is None or state.when_state == START:
        return
    setters = [r.state for r in rules if r.state is not None and r.state.new_state]
    if any(s.new_state == state.when_state and s.scope == state.scope for s in setters):
        return
    others = [s.scope for s in setters if s.new_state == state.when_state]
    hint = (
        f" (rules set it in scope {others[0]!r}, this rule reads scope {state.scope!r})"
        if others
        else f" (states set: {sorted({str(s.new_state) for s in setters}) or 'none'})"
    )
    raise FieldError(
        "when_state", f"no rule sets state {state.when_state!r}, so this rule never applies{hint}"
    )


def build_default(raw: object, files: FileAccess) -> Rule:
    """The ``[default]`` table: the response when no rule matches (rule number 0)."""
    if not isinstance(raw, dict):
        raise FieldError(None, "must be a table")
    for key in raw:
        if key not in DEFAULT_KEYS:
            raise unknown(key, key, DEFAULT_KEYS)
    behaviour = build_behaviour(raw, files)
    provisional, final = _responses(raw, behaviour, files)
    return Rule("", 0, [], None, provisional, final, behaviour=behaviour)


def build_behaviour(raw: dict[str, object], files: FileAccess) -> Behaviour | None:
    """The rule keys ``action``, ``fault``, ``repeat_final``, ``probability`` and
    ``choice``; None when the rule has none of them (the engine's stateless path)."""
    if not BEHAVIOUR_KEYS & raw.keys():
        return None
    action = raw.get("action", "answer")
    if action not in ACTIONS:
        raise FieldError("action", f"must be one of {key_list(ACTIONS)}, not {action!r}")
    fault = raw.get("fault")
    if fault is not None and fault not in FAULTS:
        raise FieldError("fault", f"must be one of {key_list(FAULTS)}, not {fault!r}")
    repeat = boolean("repeat_final", raw.get("repeat_final", False))
    probability = raw.get("probability", 1.0)
    if (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0 <= probability <= 1
    ):
        raise FieldError(
            "probability",
            f"must be a number from 0 to 1 (the chance of an answer), not {probability!r}",
        )
    if action != "answer":
        if fault is not None:
            raise FieldError(
                "fault", f'action = "{action}" sends no final response for a fault to change'
            )
        if repeat:
            raise FieldError(
                "repeat_final", f'action = "{action}" sends no final response to repeat'
            )
    if fault in CONNECTION_FAULTS and repeat:
        raise FieldError("repeat_final", f'fault = "{fault}" closes the connection: no repeat')
    choices, weights = _choices(raw, str(action), files)
    return Behaviour(
        str(action), str(fault) if fault else None, repeat, float(probability), choices, weights
    )


def _choices(
    raw: dict[str, object], action: str, files: FileAccess
) -> tuple[tuple[ResponseSpec, ...], tuple[float, ...]]:
    """``[[rule.choice]]``: a final response each, with its ``weight``."""
    if "choice" not in raw:
        return (), ()
    value = raw["choice"]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise FieldError("choice", "must be a list of tables ([[rule.choice]]), one response each")
    if action != "answer":
        raise FieldError("choice", f'action = "{action}" sends no final response to choose')
    for key in sorted(RESPONSE_KEYS & raw.keys()):
        raise FieldError(
            key, "a rule with `choice` gives its final responses there: move it into each choice"
        )
    specs, weights = [], []
    for i, item in enumerate(value):
        where = f"choice[{i}]"
        weight = item.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise FieldError(f"{where}.weight", f"must be a positive number, not {weight!r}")
        for key in item:
            if key not in RESPONSE_KEYS and key != "weight":
                raise unknown(f"{where}.{key}", key, RESPONSE_KEYS | {"weight"})
        try:
            specs.append(build_response(item, files))
        except FieldError as exc:
            raise exc.within(where) from None
        weights.append(float(weight))
    return tuple(specs), tuple(weights)


def _responses(
    raw: dict[str, object], behaviour: Behaviour | None, files: FileAccess
) -> tuple[list[ResponseSpec], ResponseSpec]:
    """The provisional responses and the final one; a rule that sends no final has
    none of the final's keys (and one that sends nothing, no provisionals either)."""
    action = behaviour.action if behaviour is not None else "answer"
    if behaviour is not None and behaviour.choices:
        return build_provisionals(raw, files), behaviour.choices[0]
    if action == "answer":
        return build_provisionals(raw, files), build_response(raw, files)
    for key in sorted(RESPONSE_KEYS & raw.keys()):
        raise FieldError(key, f'action = "{action}" sends no final response: remove {key}')
    provisional = build_provisionals(raw, files)
    if action == "none" and provisional:
        raise FieldError(
            "provisional", 'action = "none" sends nothing (use action = "provisional-only")'
        )
    if action == "provisional-only" and not provisional:
        raise FieldError(
            "provisional", 'action = "provisional-only" needs provisional responses (e.g. [180])'
        )
    return provisional, NOT_SENT


def _match_table(value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise FieldError("match", "must be a table")
    for key in value:
        if key not in MATCH_KEYS:
            raise unknown(f"match.{key}", key, MATCH_KEYS, "condition")
    return value


def _methods(value: object) -> frozenset[str] | None:
    """``match.method``: a name, a list of them, or "*" (None: any method)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(m, str) for m in items):
        raise FieldError("match.method", 'must be a method name, a list of them, or "*"')
    if "*" in items:
        return None
    for m in items:
        if not TOKEN.fullmatch(m):
            raise FieldError("match.method", f"{m!r} is not a valid SIP method token")
    return frozenset(items)
