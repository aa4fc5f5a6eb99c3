"""Where a rule's table and a ScenarioError are in the TOML text."""

from __future__ import annotations

import pytest

from sipresponder.scenario.loader import ScenarioError, parse_scenario
from sipresponder.scenario.positions import error_position, rule_tables, rule_text

TEXT = '''\
[settings]
server = "x"

[[rule]]
name = "busy"
match = { user = "486" }
code = 486

[[rule]]
name = "ring"
code = 200
body = """
[[rule]]
not a table: inside a string
"""
[rule.match]
user = "ring"
[[rule.choice]]
code = 500

[default]
code = 404
'''


def error_of(text: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "<t>")
    return caught.value


def test_rule_tables_skip_multiline_strings() -> None:
    assert [t.line for t in rule_tables(TEXT)] == [4, 9]


def test_rule_text_takes_its_sub_tables_and_stops_at_the_next_table() -> None:
    assert rule_text(TEXT, 1) == (4, '[[rule]]\nname = "busy"\nmatch = { user = "486" }\n'
                                     'code = 486\n')
    line, text = rule_text(TEXT, 2)  # type: ignore[misc]
    assert line == 9 and text.endswith('[rule.match]\nuser = "ring"\n[[rule.choice]]\n'
                                       'code = 500\n')
    assert rule_text(TEXT, 0) == (21, "[default]\ncode = 404\n")
    assert rule_text(TEXT, 3) is None


@pytest.mark.parametrize(("text", "position"), [
    ('[[rule]]\ncode = \nname = "x"\n', (2, 8)),  # tomllib's own position
    ("[[rule]]\ncode = [1,\n", (2, 11)),  # at end of document: its last line
    ('[[rule]]\nname = "a"\ncode = 200\n\n[[rule]]\nname = "b"\n  code = 999\n', (7, 3)),
    ('[[rule]]\nname = "a"\ncode = 200\n[rule.match]\nuser = 1\n', (5, 1)),  # sub-table key
    # a key inside an inline table: its own column, not the line's first
    ('[[rule]]\nname = "a"\nmatch = { method = "INVITE", usr = "bob" }\ncode = 200\n', (3, 30)),
    ('[[rule]]\nname = "a"\nmatch = { headers = { X-A = "(" } }\ncode = 200\n', (3, 23)),
    ('[[rule]]\nname = "a"\ncode = 200\n[rule.match]\nmethod = "INVITE"\nusr = 1\n', (6, 1)),
    ('[settings]\nchecks = { nope = true }\n', (2, 12)),
    # which list item is not told: the list's key
    ('[[rule]]\nname = "a"\nsequence = [200, { code = 302 }]\n', (3, 1)),
    ('[[rule]]\nname = "a"\n', (1, 1)),  # no code key: the table's line
    ("[settings]\nmax_headers = -1\n", (2, 1)),
    ("colour = 1\n[[rule]]\ncode = 200\n", (1, 1)),  # unknown top-level key
    ("[colour]\nx = 1\n", (1, 1)),
    ("[default]\ncode = 1\n", (2, 1)),
])
def test_error_position(text: str, position: tuple[int, int]) -> None:
    assert error_position(error_of(text), text) == position


def test_rule_text_has_its_own_comments_and_not_the_next_ones() -> None:
    text = ('# the busy rule\n[[rule]]\nname = "busy"\ncode = 486\n# above the next\n'
            '\n# the next one\n\n[[rule]]\nname = "next"\ncode = 200\n# trailing\n')
    assert rule_text(text, 1) == (2, '# the busy rule\n[[rule]]\nname = "busy"\ncode = 486\n')
    assert rule_text(text, 2) == (9, '[[rule]]\nname = "next"\ncode = 200\n')


def test_error_position_is_none_when_it_cannot_be_told() -> None:
    error = ScenarioError("<t>", "rule #7", "code", "bad")
    assert error_position(error, TEXT) == (None, None)
    assert error_position(ScenarioError("<t>", "", None, "bad"), TEXT) == (None, None)
