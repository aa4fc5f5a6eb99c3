"""scenario/nesting.py: text nested past the limit is refused by a linear scan before
tomllib or json (which recurse, and for dotted keys take quadratic time) sees it."""

from __future__ import annotations

import json
import tomllib
from typing import Any

import pytest

from sipresponder.scenario.edit import parse_rule_body
from sipresponder.scenario.loader import ScenarioError, load_scenario, parse_scenario
from sipresponder.scenario.nesting import (
    MAX_JSON_DEPTH,
    MAX_TOML_DEPTH,
    TooDeep,
    check_json_depth,
    check_toml_depth,
)

from .test_loader import SCENARIOS

DEEP = 100_000  # issue 18's probe: a RecursionError (500) then


def depth(value: Any) -> int:
    """How many containers deep a loaded value goes (below the document itself)."""
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("text", [
    "x = " + "[" * DEEP + "]" * DEEP,
    "x = " + "{a = " * DEEP + "1" + "}" * DEEP,
    "a" + ".a" * DEEP + " = 1",  # tomllib: quadratic time and memory
    "[" + "a." * DEEP + "a]\n",
    "[[" + "a." * DEEP + "a]]\n",
    "x = [" + "{a = [" * DEEP,  # unclosed: refused before tomllib reports it
])
@pytest.mark.timeout(10)
def test_deep_toml_is_refused_by_the_scan(text: str) -> None:
    with pytest.raises(TooDeep, match=f"nested deeper than {MAX_TOML_DEPTH} levels"):
        check_toml_depth(text)


@pytest.mark.timeout(10)
def test_deep_toml_is_a_one_line_scenario_error() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("[[rule]]\ncode = 200\nx = " + "[" * DEEP + "]" * DEEP, "<deep>")
    assert str(info.value) == "<deep>: the scenario is nested deeper than 100 levels (line 3)"


@pytest.mark.timeout(10)
def test_a_deep_rule_body_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="rule 'r': the body is nested deeper than"):
        parse_rule_body("match = " + "{a = " * DEEP + "1" + "}" * DEEP, "r")


@pytest.mark.parametrize("text", [
    "x = '[[[[[[[[[['\ny = \"{{{{{{\\\"[[[[\"",
    'x = """\n[[[[[[[[[\n"""\ny = \'\'\'\n{{{{{{{{\'\'\'',
    "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[\n[[rule]]\ncode = 200\n",
    '"a.b.c.d.e.f.g" = 1\n[rule."x.y.z.w"]\n',
])
def test_brackets_and_dots_in_strings_and_comments_do_not_count(text: str) -> None:
    check_toml_depth(text, limit=3)


@pytest.mark.parametrize("text", [
    "a.b.c = 1",
    "[a.b]\nx = 1",
    "[[a]]\nx = [[1]]",
    "x = {a = {b = [1]}}",
    "[a]\nb.c = {d.e = [[{}]]}",
    "x = [\n  [1, 2],\n  [[3]],\n]",
])
def test_the_scan_never_counts_less_than_the_document_nests(text: str) -> None:
    real = depth(tomllib.loads(text))
    with pytest.raises(TooDeep):
        check_toml_depth(text, limit=real - 2)


def test_every_bundled_scenario_is_well_within_the_limit() -> None:
    for path in sorted(SCENARIOS.glob("*.toml")):
        check_toml_depth(path.read_text(), limit=8)
        load_scenario(path)


@pytest.mark.parametrize("text", [
    "[" * DEEP,
    '{"a":' * DEEP + "1" + "}" * DEEP,
])
@pytest.mark.timeout(10)
def test_deep_json_is_refused(text: str) -> None:
    with pytest.raises(TooDeep, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        check_json_depth(text)


def test_json_strings_do_not_count() -> None:
    text = json.dumps({"uri": "[" * 500, "header": ["{" * 500, "\\\"[[["]})
    check_json_depth(text, limit=2)
    with pytest.raises(TooDeep):
        check_json_depth(json.dumps({"a": [[1]]}), limit=2)
