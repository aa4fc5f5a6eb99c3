"""The stateful rule keys: sequence, after, scope, when_state, new_state; their
errors name the file, the rule and the key."""

from __future__ import annotations

import pytest

from sipresponder.scenario.loader import ScenarioError, parse_scenario


def error(rule: str, more: str = "") -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f"[[rule]]\nname = \"r\"\n{rule}\n{more}", "s.toml")
    return str(info.value)


def test_sequence_shorthand_and_tables() -> None:
    scenario = parse_scenario(
        '[[rule]]\nscope = "call-id"\nafter = "cycle"\n'
        '[[rule.sequence]]\ncode = 503\nretry_after = 5\n'
        '[[rule.sequence]]\ncode = 180\nprovisional = [183]\n'
        '[[rule.sequence]]\ncode = 200\n', "s.toml")
    (rule,) = scenario.rules
    assert rule.state is not None
    assert [s.final.code for s in rule.state.sequence] == [503, 180, 200]
    assert (rule.state.scope, rule.state.after) == ("call-id", "cycle")
    assert rule.final is rule.state.sequence[0].final
    assert rule.stateful and scenario.stateful_rules == [rule]
    short = parse_scenario("[[rule]]\nsequence = [503, 200]\n", "s.toml")
    assert short.rules[0].state is not None


def test_a_plain_rule_has_no_state() -> None:
    assert parse_scenario("[[rule]]\ncode = 200\n", "s.toml").rules[0].state is None


@pytest.mark.parametrize(("rule", "field", "expected"), [
    ('sequence = [503, 200]\nscope = "dialog"', "scope", "must be one of global, call-id"),
    ('sequence = [503, 200]\nafter = "loop"', "after", "must be one of repeat-last, cycle"),
    ("sequence = []", "sequence", "must be a non-empty list"),
    ('sequence = "503"', "sequence", "must be a non-empty list"),
    ("sequence = [503, 200]\ncode = 200", "code", "a rule with a sequence answers with its"),
    ("sequence = [200, 99]", "sequence[1].code", "99 is not a SIP status code"),
    ("sequence = [200, { code = 200, colour = 1 }]", "sequence[1].colour", "unknown key"),
    ("sequence = [200, { code = 180, provisional = [100] }]", "sequence[1].provisional[0].code",
     "100 is not a provisional code"),
    ("sequence = [302, 200]", "sequence[0].contacts", "302 Moved Temporarily requires a Contact"),
    ('after = "cycle"\ncode = 200', "after", "applies to a sequence"),
    ('when_state = ""\ncode = 200', "when_state", "must be a state name"),
    ("new_state = 3\ncode = 200", "new_state", "must be a state name"),
    ('when_state = "registred"\ncode = 200', "when_state",
     "no rule sets state 'registred', so this rule never applies"),
])
def test_errors_name_file_rule_and_key(rule: str, field: str, expected: str) -> None:
    message = error(rule)
    assert message.startswith(f"s.toml: rule 'r' (#1): field '{field}': {expected}"), message


def test_a_when_state_set_only_in_another_scope_is_refused() -> None:
    message = error('when_state = "up"\nscope = "source"\ncode = 200',
                    '[[rule]]\nnew_state = "up"\nscope = "call-id"\ncode = 200\n')
    assert "set it in scope 'call-id', this rule reads scope 'source'" in message


def test_start_needs_no_setter() -> None:
    parse_scenario('[[rule]]\nwhen_state = "start"\ncode = 401\n'
                   'www_authenticate = "Digest realm=\\"x\\", nonce=\\"1\\""\n', "s.toml")


def test_a_rule_cannot_be_both_stateful_and_chancy() -> None:
    # Faults and chance are defined on a rule's one response, sequences on several:
    # the combination is refused with a clear error rather than given a meaning.
    from sipresponder.scenario.loader import ScenarioError, parse_scenario

    text = '[[rule]]\nname = "x"\nsequence = [503, 200]\nprobability = 0.5\n'
    with pytest.raises(ScenarioError, match="field 'probability': cannot be combined with "
                       "sequence in one rule"):
        parse_scenario(text, "t.toml")
