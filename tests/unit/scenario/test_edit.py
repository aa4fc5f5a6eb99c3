"""scenario.edit: one rule replaced, added or deleted in a scenario's TOML text."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sipresponder.scenario.edit import (
    RuleNotFound,
    delete_rule,
    dump_scenario,
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
    assert "# the busy rule\n# the next one\n[[rule]]\nname = \"other\"" in text
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
