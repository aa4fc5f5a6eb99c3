"""The rule keys action, fault, repeat_final and probability, and the settings
ring_timeout and seed: read into model.Behaviour, or refused naming file, rule, field."""

from __future__ import annotations

import pytest

from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.scenario.model import FAULTS, Behaviour


def load(rule: str, default: str = "[default]\ncode = 404\n"):
    return parse_scenario(f'[[rule]]\nname = "r"\n{rule}\n{default}', "test.toml")


def error(rule: str, default: str = "[default]\ncode = 404\n") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load(rule, default)
    return info.value


def test_each_key_is_read() -> None:
    assert load('action = "none"').rules[0].behaviour == Behaviour("none")
    ring = load('action = "provisional-only"\nprovisional = [180, 183]').rules[0]
    assert ring.behaviour == Behaviour("provisional-only")
    assert [p.code for p in ring.provisional] == [180, 183] and ring.stateful
    for fault in FAULTS:
        assert load(f'code = 200\nfault = "{fault}"').rules[0].behaviour == Behaviour(
            fault=fault)
    assert load("code = 200\nrepeat_final = true").rules[0].behaviour == Behaviour(
        repeat_final=True)
    assert load("code = 200\nprobability = 0.25").rules[0].behaviour == Behaviour(
        probability=0.25)
    assert load("code = 200\nprobability = 1").rules[0].behaviour == Behaviour()


def test_default_takes_them_too() -> None:
    scenario = load('code = 200', '[default]\naction = "none"\n')
    assert scenario.default.behaviour == Behaviour("none")


@pytest.mark.parametrize(("rule", "field", "words"), [
    ('action = "drop"', "action", "must be one of"),
    ("action = 3", "action", "must be one of"),
    ('code = 200\nfault = "explode"', "fault", "must be one of"),
    ('code = 200\nrepeat_final = "yes"', "repeat_final", "true or false"),
    ("code = 200\nprobability = 1.5", "probability", "from 0 to 1"),
    ("code = 200\nprobability = -0.1", "probability", "from 0 to 1"),
    ('code = 200\nprobability = "half"', "probability", "from 0 to 1"),
    ("code = 200\nprobability = true", "probability", "from 0 to 1"),
    ('action = "none"\ncode = 200', "code", "sends no final response"),
    ('action = "none"\nprovisional = [180]', "provisional", "sends nothing"),
    ('action = "provisional-only"', "provisional", "needs provisional responses"),
    ('action = "provisional-only"\nprovisional = [180]\nreason = "x"', "reason",
     "sends no final"),
    ('action = "none"\nfault = "truncated"', "fault", "no final response"),
    ('action = "provisional-only"\nprovisional = [180]\nrepeat_final = true',
     "repeat_final", "no final response"),
    ('code = 200\nfault = "close-after"\nrepeat_final = true', "repeat_final",
     "closes the connection"),
])
def test_errors_name_file_rule_and_field(rule: str, field: str, words: str) -> None:
    exc = error(rule)
    assert exc.path == "test.toml" and "rule 'r' (#1)" in exc.where
    assert exc.field == field and words in exc.message


def test_default_errors_name_the_default() -> None:
    exc = error("code = 200", '[default]\naction = "never"\n')
    assert exc.where == "[default]" and exc.field == "action"


@pytest.mark.parametrize(("text", "field"), [
    ("ring_timeout = 0", "ring_timeout"),
    ("seed = -2", "seed"),
    ('seed = "x"', "seed"),
])
def test_settings_errors(text: str, field: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(f"[settings]\n{text}\n[default]\ncode = 404\n", "test.toml")
    assert info.value.field == field


def test_settings_values() -> None:
    scenario = parse_scenario("[settings]\nring_timeout = 30\nseed = 0\n[default]\ncode = 404\n",
                              "t.toml")
    assert (scenario.settings.ring_timeout, scenario.settings.seed) == (30.0, 0)
