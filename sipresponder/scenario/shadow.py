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

from dataclasses import dataclass

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


def _covers(earlier: frozenset[str], later: frozenset[str]) -> bool:
    """Whether every request that meets the conditions ``later`` meets ``earlier``."""
    return all(
        test in later
        or test == _EVERY_URI
        or (test == _ANY_USER and any(t.startswith(("user ", "user_regex ")) for t in later))
        for test in earlier
    )


def shadowed(rules: list[Rule]) -> list[Shadow]:
    """The rules of ``rules`` (file order) that earlier ones always take first."""
    found = []
    for position, rule in enumerate(rules):
        tests = _tests(rule)
        covering = [r for r in rules[:position] if _takes_all(r) and _covers(_tests(r), tests)]
        whole = next((r for r in covering if r.methods is None), None)
        if whole is not None:
            found.append(Shadow(rule, (whole,)))
            continue
        if rule.methods is None:
            continue  # it takes any method; rules naming methods leave some to it
        left, by = set(rule.methods), []
        for earlier in covering:
            assert earlier.methods is not None
            if left & earlier.methods:
                by.append(earlier)
                left -= earlier.methods
            if not left:
                found.append(Shadow(rule, tuple(by)))
                break
    return found


def shadow_warnings(rules: list[Rule]) -> list[str]:
    """One line for each rule that can never match, naming the rules that take it."""
    return [str(shadow) for shadow in shadowed(rules)]
