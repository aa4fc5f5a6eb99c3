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


def test_drawn_delays_are_read() -> None:
    spec = load("code = 200\ndelay = {uniform = [0.1, 0.5]}").rules[0].final
    assert (spec.delay_draw, spec.delay) == (("uniform", 0.1, 0.5), 0.5)
    spec = load("code = 200\ndelay = {lognormal = {median = 0.2, sigma = 0.5}}").rules[0].final
    assert (spec.delay_draw, spec.delay) == (("lognormal", 0.2, 0.5), 0.2)
    assert load("code = 200\ndelay = {uniform = [0.1, 0.5]}").rules[0].stateful
    provisional = load("code = 200\nprovisional = [{code = 180, delay = {uniform = [0, 1]}}]")
    assert provisional.rules[0].provisional[0].delay_draw == ("uniform", 0.0, 1.0)


@pytest.mark.parametrize(("delay", "field", "words"), [
    ("{normal = [1, 2]}", "delay", "a drawn delay is"),
    ("{uniform = [1, 2], lognormal = {median = 1, sigma = 1}}", "delay", "a drawn delay is"),
    ("{uniform = [1]}", "delay.uniform", "list [low, high]"),
    ("{uniform = [2, 1]}", "delay.uniform", "above high"),
    ("{uniform = [-1, 1]}", "delay.uniform", "0 to 3600"),
    ("{lognormal = {median = 1}}", "delay.lognormal", "median = seconds, sigma"),
    ("{lognormal = {median = 0, sigma = 1}}", "delay.lognormal.median", "positive"),
    ("{lognormal = {median = 1, sigma = -0.5}}", "delay.lognormal.sigma", "0 to 10"),
    ('"soon"', "delay", "0 to 3600"),
])
def test_drawn_delay_errors(delay: str, field: str, words: str) -> None:
    exc = error(f"code = 200\ndelay = {delay}")
    assert exc.field == field and words in exc.message


def test_choices_are_read() -> None:
    rule = load("[[rule.choice]]\nweight = 2\ncode = 200\n[[rule.choice]]\ncode = 486\n"
                "retry_after = 60").rules[0]
    assert rule.behaviour is not None and rule.behaviour.weights == (2.0, 1.0)
    assert [c.code for c in rule.behaviour.choices] == [200, 486]
    assert rule.final is rule.behaviour.choices[0]


@pytest.mark.parametrize(("rule", "field", "words"), [
    ("[[rule.choice]]\nweight = 0\ncode = 200", "choice[0].weight", "positive"),
    ("[[rule.choice]]\nweight = -1\ncode = 200", "choice[0].weight", "positive"),
    ('[[rule.choice]]\nweight = "x"\ncode = 200', "choice[0].weight", "positive"),
    ("[[rule.choice]]\ncode = 200\n[[rule.choice]]\nreason = \"x\"", "choice[1].code",
     "missing"),
    ("[[rule.choice]]\ncode = 200\nmatch = {}", "choice[0].match", "unknown key"),
    ("[[rule.choice]]\ncode = 302", "choice[0].contacts", "requires a Contact"),
    ("choice = []", "choice", "list of tables"),
    ("code = 200\n[[rule.choice]]\ncode = 200", "code", "move it into each choice"),
    ('action = "none"\n[[rule.choice]]\ncode = 200', "choice", "no final response"),
])
def test_choice_errors(rule: str, field: str, words: str) -> None:
    exc = error(rule)
    assert "rule 'r' (#1)" in exc.where
    assert exc.field == field and words in exc.message


def test_default_takes_choices() -> None:
    scenario = load("code = 200", "[[default.choice]]\ncode = 404\n[[default.choice]]\ncode = 480\n")
    assert scenario.default.behaviour is not None
    assert [c.code for c in scenario.default.behaviour.choices] == [404, 480]
