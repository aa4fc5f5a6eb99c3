"""Rules that can never match because earlier rules take every request they would.

A warning, not an error: the scenario still loads (``sipresponder check``, the admin
API's PUT scenario and PUT rule, and the console's check as you type report it). A
rule appended after a catch-all is the usual cause: it is valid and dead.

Conservative by design: a rule is reported only when it certainly can never match.
An earlier rule counts only when it takes every request its conditions match, i.e.
it has no ``auth`` (a challenge is not an answer the author meant), no state
(``sequence``, ``when_state``: the state may let the request through) and no
``probability`` below 1; and it covers the later rule only when each of its
conditions is also one of the later rule's (compared by what each condition tests,
``Condition.what``, which names the key and its value) or holds for whatever the
later rule matches (``uri = "*"``; ``user = "*"`` where the later rule names a user),
so that whatever the later rule matches it matches too. Methods are compared as
sets: several earlier rules with the same other conditions may cover the later
rule's methods between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Rule


@dataclass(frozen=True, slots=True)
class Shadow:
    """``rule`` can never match: the rules ``by`` (earlier) take all it would."""

    rule: Rule
    by: tuple[Rule, ...]

    def __str__(self) -> str:
        if len(self.by) == 1:
            return (f"{self.rule.label} can never match: {self.by[0].label} matches "
                    "everything it would")
        names = ", ".join(r.label for r in self.by[:-1]) + f" and {self.by[-1].label}"
        return f"{self.rule.label} can never match: {names} match everything it would"


def _takes_all(rule: Rule) -> bool:
    """Whether every request that meets ``rule``'s conditions gets ``rule``."""
    return (
        rule.state is None
        and rule.auth is None
        and (rule.behaviour is None or rule.behaviour.probability >= 1)
    )


def _tests(rule: Rule) -> frozenset[str]:
    return frozenset(condition.what for condition in rule.conditions)


# The glob "*" (re.S: any run) matches every Request-URI; as a user, every URI that has
# a user part, which every other user or user_regex condition demands too.
_EVERY_URI = "uri '*'"
_ANY_USER = "user '*'"


# Past this many conditions a rule's subsets are too many to look up one by one: the
# groups are scanned instead (whichever is fewer).
_SUBSETS = 10


@dataclass(slots=True)
class _Group:
    """The earlier rules that take all they match with one same set of conditions: the
    first that takes any method, and the first that takes each named method."""

    any_method: tuple[int, Rule] | None = None
    by_method: dict[str, tuple[int, Rule]] = field(default_factory=dict)

    def add(self, position: int, rule: Rule) -> None:
        if rule.methods is None:
            if self.any_method is None:
                self.any_method = (position, rule)
            return
        for method in rule.methods:
            self.by_method.setdefault(method, (position, rule))


def _implied(tests: frozenset[str]) -> frozenset[str]:
    """``tests`` with what they imply: any user condition implies user '*'."""
    if any(t.startswith(("user ", "user_regex ")) for t in tests):
        return tests | {_ANY_USER}
    return tests


def _subsets(tests: frozenset[str]) -> list[frozenset[str]]:
    items = sorted(tests)
    return [frozenset(t for i, t in enumerate(items) if mask >> i & 1)
            for mask in range(1 << len(items))]


def shadowed(rules: list[Rule]) -> list[Shadow]:
    """The rules of ``rules`` (file order) that earlier ones always take first.

    Earlier rules are grouped by their conditions (less uri '*', which every request
    meets); a later rule is covered by the groups whose conditions are a subset of its
    own (and what they imply), found by looking its subsets up, so that a scenario of
    thousands of rules costs a few lookups a rule, not a pass over all earlier ones."""
    found = []
    groups: dict[frozenset[str], _Group] = {}
    for position, rule in enumerate(rules):
        tests = _tests(rule)
        have = _implied(tests)
        keys = (_subsets(have) if len(have) <= _SUBSETS and 1 << len(have) < len(groups)
                else list(groups))
        covering = [groups[k] for k in keys if k in groups and k <= have]
        whole = min((g.any_method for g in covering if g.any_method), default=None,
                    key=lambda taken: taken[0])
        if whole is not None:
            found.append(Shadow(rule, (whole[1],)))
        elif rule.methods is not None:
            # Each method goes to the first covering rule that names it.
            takers = [min((g.by_method[m] for g in covering if m in g.by_method), default=None,
                          key=lambda taken: taken[0]) for m in sorted(rule.methods)]
            if all(takers):
                by = {t[0]: t[1] for t in takers if t}  # by position: one rule once
                found.append(Shadow(rule, tuple(by[p] for p in sorted(by))))
        if _takes_all(rule):
            groups.setdefault(tests - {_EVERY_URI}, _Group()).add(position, rule)
    return found


def shadow_warnings(rules: list[Rule]) -> list[str]:
    """One line for each rule that can never match, naming the rules that take it."""
    return [str(shadow) for shadow in shadowed(rules)]
