"""Sequence counters and named states of the stateful rules, without I/O.

A rule with a ``sequence`` counts the requests it answered, and rules with
``when_state`` / ``new_state`` read and move a named state, each per scope key: one
key for ``global``, the Call-ID, the source IP address, or the From or To AOR. The
engine asks ``admits`` while matching (is the key in the state the rule needs, is
the sequence not exhausted for a fall-through rule) and ``take`` once a rule
answers (which step, then count and move the state).

All of it is per process and forgotten when the scenario is swapped or ``reset``
is called. Each table holds at most ``limit`` keys; the least recently used key
is forgotten first, so a flood of Call-IDs costs bounded memory (a forgotten key
starts again at the first step, in ``start``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from ..scenario.model import START, ResponseSpec, Rule
from ..sip.headers import parse_name_addr
from ..sip.message import Request
from .events import Source

_K = TypeVar("_K")
_V = TypeVar("_V")

MAX_KEYS = 65536  # per table: sequence counters, states


class States:
    def __init__(self, limit: int = MAX_KEYS) -> None:
        self.limit = limit
        # (rule number, scope, key) -> requests the rule answered (bounded, see take)
        self.counts: OrderedDict[tuple[int, str, str], int] = OrderedDict()
        # (scope, key) -> state name; a key absent is in START
        self.states: OrderedDict[tuple[str, str], str] = OrderedDict()

    def reset(self) -> None:
        self.counts.clear()
        self.states.clear()

    def admits(self, rule: Rule, request: Request, source: Source) -> bool:
        state = rule.state
        if state is None:
            return True
        key = scope_key(state.scope, request, source)
        if state.when_state is not None and self.state(state.scope, key) != state.when_state:
            return False
        if state.after == "fall-through" and state.sequence:
            return self.counts.get((rule.number, state.scope, key), 0) < len(state.sequence)
        return True

    def state(self, scope: str, key: str) -> str:
        return self.states.get((scope, key), START)

    def take(
        self, rule: Rule, request: Request, source: Source
    ) -> tuple[list[ResponseSpec], ResponseSpec]:
        """The responses ``rule`` answers this request with; counts it and moves its state."""
        state = rule.state
        if state is None:
            return rule.provisional, rule.final
        key = scope_key(state.scope, request, source)
        provisional, final = rule.provisional, rule.final
        if state.sequence:
            steps = state.sequence
            counter = (rule.number, state.scope, key)
            n = self.counts.get(counter, 0)
            if state.after == "cycle":
                index = n % len(steps)
                stored = index + 1
            else:  # repeat-last, and fall-through (admits kept n below the length)
                index = min(n, len(steps) - 1)
                stored = min(n + 1, len(steps))  # a counter never grows past the sequence
            provisional, final = steps[index].provisional, steps[index].final
            _put(self.counts, counter, stored, self.limit)
        if state.new_state is not None:
            _put(self.states, (state.scope, key), state.new_state, self.limit)
        return provisional, final

    def snapshot(self) -> dict[str, object]:
        """For the admin and Python APIs: every state and counter, by scope and key."""
        return {
            "states": [
                {"scope": scope, "key": key, "state": name}
                for (scope, key), name in self.states.items()
            ],
            "counters": [
                {"rule": number, "scope": scope, "key": key, "count": count}
                for (number, scope, key), count in self.counts.items()
            ],
        }


def _put(table: OrderedDict[_K, _V], key: _K, value: _V, limit: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)


def scope_key(scope: str, request: Request, source: Source) -> str:
    """The key a request counts under in ``scope`` ("" for global, and when the header
    a scope reads is missing or unparsable: such requests share one key)."""
    if scope == "global":
        return ""
    if scope == "source":
        return source.remote[0]
    if scope == "call-id":
        return request.get("call-id") or ""
    value = request.get(scope)  # "from" / "to"
    if not value:
        return ""
    try:
        uri = parse_name_addr(value).uri
    except ValueError:
        return ""
    # The AOR: scheme, user and host, without port or parameters, case-insensitive host.
    user = f"{uri.user}@" if uri.user else ""
    return f"{uri.scheme}:{user}{uri.host.lower()}" if uri.host else uri.raw
