"""scenario.shadow: rules that can never match, reported only when certain."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.loader import load_scenario, parse_scenario
from sipresponder.scenario.model import Condition, ResponseSpec, Rule
from sipresponder.scenario.shadow import shadow_warnings, shadowed

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def warnings_of(rules: str) -> list[str]:
    text = '[auth]\nrealm = "r"\ncredentials = { alice = "p" }\n\n' + rules
    return shadow_warnings(parse_scenario(text).rules)


def test_a_rule_after_a_catch_all_can_never_match() -> None:
    assert warnings_of(
        '[[rule]]\nname = "catch-all"\ncode = 200\n\n'
        '[[rule]]\nname = "carol"\nmatch = { user = "carol" }\ncode = 480\n'
    ) == ["rule 'carol' (#2) can never match: rule 'catch-all' (#1) matches everything it would"]


@pytest.mark.parametrize("earlier", [
    'match = { method = ["INVITE", "OPTIONS"] }',
    'match = { method = "INVITE", user = "carol" }',
    'match = { user = "carol" }',
    'match = { user = "*" }',
    'match = { uri = "*", method = "INVITE" }',
    'match = { method = "*", user = "carol" }',
    'match = { method = "INVITE", user = "carol", headers = { X-Test = "^a" } }',
    "probability = 1.0",
    'action = "none"',
])
def test_looser_or_equal_earlier_rules_shadow(earlier: str) -> None:
    found = warnings_of(
        f'[[rule]]\nname = "a"\n{earlier}\n' + ("code = 200\n" if "none" not in earlier else "")
        + '\n[[rule]]\nname = "b"\n'
        'match = { method = "INVITE", user = "carol", headers = { X-Test = "^a" } }\ncode = 486\n'
    )
    assert found == ["rule 'b' (#2) can never match: rule 'a' (#1) matches everything it would"]


@pytest.mark.parametrize("earlier", [
    'match = { method = "INVITE" }\nprobability = 0.5',
    'match = { method = "INVITE" }\nauth = "www"',
    'match = { method = "INVITE" }\nsequence = [503, 200]',
    'match = { method = "INVITE" }\nwhen_state = "start"',
    'match = { method = "OPTIONS" }',
    'match = { method = "INVITE", user = "dave" }',
    'match = { method = "INVITE", user = "car*" }',
    'match = { method = "INVITE", uri = "sip:*" }',
    'match = { method = "INVITE", transport = "tcp" }',
    'match = { method = "INVITE", headers = { X-Test = "^b" } }',
])
def test_what_is_not_certain_is_not_reported(earlier: str) -> None:
    code = "" if "sequence" in earlier else "code = 200\n"
    assert warnings_of(
        f'[[rule]]\nname = "a"\n{earlier}\n{code}\n'
        '[[rule]]\nname = "b"\nmatch = { method = "INVITE", user = "carol" }\ncode = 486\n'
    ) == []


def test_any_user_covers_only_rules_that_name_a_user() -> None:
    assert warnings_of(
        '[[rule]]\nname = "a"\nmatch = { user = "*" }\ncode = 200\n\n'
        '[[rule]]\nname = "b"\nmatch = { user_regex = "^1" }\ncode = 486\n\n'
        '[[rule]]\nname = "c"\nmatch = { method = "INVITE" }\ncode = 486\n'
    ) == ["rule 'b' (#2) can never match: rule 'a' (#1) matches everything it would"]


def test_several_rules_may_cover_the_methods_between_them() -> None:
    assert warnings_of(
        '[[rule]]\nname = "inv"\nmatch = { method = "INVITE" }\ncode = 200\n\n'
        '[[rule]]\nname = "bye"\nmatch = { method = ["BYE", "CANCEL"] }\ncode = 200\n\n'
        '[[rule]]\nname = "both"\nmatch = { method = ["BYE", "INVITE"] }\ncode = 486\n'
    ) == ["rule 'both' (#3) can never match: rule 'inv' (#1) and rule 'bye' (#2) match "
          "everything it would"]
    # any method: rules that name methods always leave some to it
    assert warnings_of(
        '[[rule]]\nname = "inv"\nmatch = { method = "INVITE" }\ncode = 200\n\n'
        '[[rule]]\nname = "any"\ncode = 486\n'
    ) == []


def test_a_shadowed_rule_is_reported_even_when_it_is_stateful() -> None:
    assert warnings_of(
        '[[rule]]\nname = "all"\ncode = 200\n\n'
        '[[rule]]\nname = "seq"\nsequence = [503, 200]\n'
    ) == ["rule 'seq' (#2) can never match: rule 'all' (#1) matches everything it would"]


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_bundled_scenarios_have_no_dead_rules(path: Path) -> None:
    assert shadow_warnings(load_scenario(path).rules) == []


def test_thousands_of_rules_cost_lookups_not_pairs() -> None:
    """20,000 rules: every pair compared (the first version) would take minutes; the
    groups make it a few lookups a rule. The answer is asserted, the test's timeout
    guards the time."""
    def rule(number: int, user: str | None, methods: frozenset[str] | None) -> Rule:
        conditions = [Condition(f"user {user!r}", lambda request, source: True)] if user else []
        return Rule(f"r{number}", number, conditions, methods, [], ResponseSpec(200))

    invite = frozenset({"INVITE"})
    rules = [rule(n, f"u{n}", invite) for n in range(1, 20_001)]
    assert shadowed(rules) == []
    rules += [rule(20_001, None, invite), rule(20_002, "u7", invite),
              rule(20_003, None, None)]
    assert [(s.rule.number, [r.number for r in s.by]) for s in shadowed(rules)] == [
        (20_002, [7])]
    same = [rule(n, None, invite) for n in range(1, 20_001)]
    assert {tuple(r.number for r in s.by) for s in shadowed(same)} == {(1,)}
