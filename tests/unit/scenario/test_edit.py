"""scenario.edit: one rule replaced, added or deleted in a scenario's TOML text."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from sipresponder.scenario.edit import (
    RuleNotFound,
    delete_rule,
    dump_scenario,
    parse_position,
    put_rule,
    rule_names,
    toml_value,
)

ROOT = Path(__file__).resolve().parents[3]
TEXT = """# top comment
[settings]
server = "x"  # trailing comment

# the busy rule
[[rule]]
name = "busy"
code = 486
[rule.match]
user = "bob"

# the next one
[[rule]]
name = "other"
code = 480

[default]
code = 404
"""


def test_replace_keeps_the_rest_of_the_text() -> None:
    text, added = put_rule(TEXT, "busy", "code = 603\n")
    assert not added
    assert text == TEXT.replace('name = "busy"\ncode = 486\n[rule.match]\nuser = "bob"\n',
                                'name = "busy"\ncode = 603\n')
    assert rule_names(text) == ["busy", "other"]


def test_add_goes_after_the_last_rule() -> None:
    text, added = put_rule(TEXT, "new", 'match = { user = "n" }\ncode = 200\n')
    assert added
    assert text == TEXT.replace(
        'code = 480\n', 'code = 480\n\n[[rule]]\nname = "new"\nmatch = {user = "n"}\n'
        "code = 200\n")
    assert rule_names(text) == ["busy", "other", "new"]
    text, added = put_rule("[default]\ncode = 404", "first", "code = 486")
    assert added and tomllib.loads(text) == {"default": {"code": 404},
                                             "rule": [{"name": "first", "code": 486}]}


def test_delete_keeps_comments_of_the_next_table() -> None:
    text = delete_rule(TEXT, "busy")
    # The comment right above a rule is the rule's: it goes with it.
    assert '"x"  # trailing comment\n\n# the next one\n[[rule]]\nname = "other"' in text
    assert "# the busy rule" not in text
    assert tomllib.loads(text)["rule"] == [{"name": "other", "code": 480}]
    assert "[[rule]]" not in delete_rule(delete_rule(TEXT, "busy"), "other")
    with pytest.raises(RuleNotFound):
        delete_rule(TEXT, "nobody")


def test_text_that_resists_surgery_is_written_out_anew() -> None:
    inline = 'rule = [{ name = "a", code = 486 }, { name = "b", code = 480 }]\n'
    text, _ = put_rule(inline, "a", "code = 603")
    assert tomllib.loads(text) == {"rule": [{"name": "a", "code": 603},
                                            {"name": "b", "code": 480}]}
    tricky = '[[rule]]\nname = "a"\nbody = """\n[[rule]]\n"""\ncode = 200\n'
    text, _ = put_rule(tricky, "a", "code = 486")
    assert tomllib.loads(text) == {"rule": [{"name": "a", "code": 486}]}


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.toml")),
                         ids=lambda p: p.name)
def test_every_bundled_scenario_survives_each_edit(path: Path) -> None:
    text = path.read_text()
    doc = tomllib.loads(text)
    for name in rule_names(text):
        replaced, added = put_rule(text, name, "code = 599")
        assert not added
        assert [r.get("code") if r["name"] == name else r for r in
                tomllib.loads(replaced)["rule"]] == [
            599 if r.get("name") == name else r for r in doc["rule"]]
        assert [r.get("name") for r in tomllib.loads(delete_rule(text, name)).get("rule", [])] \
            == [n for n in (r.get("name") for r in doc["rule"]) if n != name]
    assert tomllib.loads(dump_scenario(doc)) == doc


@pytest.mark.parametrize(("body", "message"), [
    ('name = "b"\ncode = 1', "must agree"),
    ("= 1", "not TOML"),
    ("", "empty"),
])
def test_bad_bodies(body: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        put_rule(TEXT, "a", body)


def test_values_round_trip() -> None:
    value = {"s": 'quote " back \\ del \x7f tab \t nl \n 😀', "i": -3, "f": 0.5, "e": 1e-5,
             "b": True, "l": [1, "x", {"k": []}], "key with space": {"a.b": 1}}
    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value
    assert toml_value(float("inf")) == "inf"


def _order(text: str) -> list[str]:
    return [rule["name"] for rule in tomllib.loads(text)["rule"]]


@pytest.mark.parametrize(("position", "order"), [
    ("first", ["new", "busy", "other"]),
    ("last", ["busy", "other", "new"]),
    ("before:busy", ["new", "busy", "other"]),
    ("before:other", ["busy", "new", "other"]),
    ("after:busy", ["busy", "new", "other"]),
    ("after:other", ["busy", "other", "new"]),
])
def test_a_new_rule_goes_where_the_position_says(position: str, order: list[str]) -> None:
    text, added = put_rule(TEXT, "new", "code = 200", position)
    assert added and _order(text) == order
    # Every comment stays, above the rule it was above.
    assert "# top comment\n" in text
    assert '# the busy rule\n[[rule]]\nname = "busy"' in text
    assert '# the next one\n[[rule]]\nname = "other"' in text


def test_first_goes_before_the_first_rules_comments() -> None:
    text, _ = put_rule(TEXT, "new", "code = 200", "first")
    assert text == TEXT.replace("# the busy rule\n",
                                '[[rule]]\nname = "new"\ncode = 200\n\n# the busy rule\n')


def test_an_existing_rule_moves_with_its_comments_only_when_a_position_is_given() -> None:
    text, added = put_rule(TEXT, "other", "code = 201")
    assert not added and _order(text) == ["busy", "other"]
    text, added = put_rule(TEXT, "other", "code = 201", "first")
    assert not added and _order(text) == ["other", "busy"]
    assert text.index("# the next one") < text.index('name = "other"') < text.index("# the busy")
    assert tomllib.loads(text)["rule"][0] == {"name": "other", "code": 201}
    text, _ = put_rule(TEXT, "busy", "code = 486", "after:other")
    assert _order(text) == ["other", "busy"]
    assert '# the busy rule\n[[rule]]\nname = "busy"' in text
    # next to itself: it stays where it is
    assert _order(put_rule(TEXT, "busy", "code = 1", "after:busy")[0]) == ["busy", "other"]


def test_positions_resist_surgery_too() -> None:
    inline = 'rule = [{ name = "a", code = 486 }, { name = "b", code = 480 }]\n'
    text, _ = put_rule(inline, "c", "code = 200", "before:b")
    assert _order(text) == ["a", "c", "b"]
    text, _ = put_rule("[default]\ncode = 404\n", "only", "code = 200", "first")
    assert _order(text) == ["only"]


@pytest.mark.parametrize(("position", "message"), [
    ("top", "position 'top': expected first, last, before:NAME or after:NAME"),
    ("before:", "position 'before:': expected"),
    ("first:busy", "position 'first:busy': expected"),
    ("after:nobody", "position 'after:nobody': no rule named 'nobody' (rules: busy, other)"),
    ("before:new", "no rule named 'new'"),
])
def test_bad_positions_are_named(position: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        put_rule(TEXT, "new", "code = 200", position)


def test_parse_position() -> None:
    assert parse_position("first") == ("first", None)
    assert parse_position("after:a:b") == ("after", "a:b")
