"""scenario/regex.py: scenario regexes on RE2, with the semantics the matcher relies on."""

from __future__ import annotations

import pytest

from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.regex import compile_regex


@pytest.mark.parametrize(("pattern", "text", "found"), [
    ("bob@", "sip:bob@example.com", True),  # a search: anywhere in the text
    ("^sips:", "sip:bob@example.com", False),
    ("(?i)^testphone", "TestPhone/1.0", True),  # inline flags
    ("(?P<user>[a-z]+)@(example|test)", "sip:bob@test", True),  # groups are fine
    ("^.$", "€", True),  # characters, not octets
    ("^caf.$", "café", True),
    ("a$", "a\n", False),  # RE2: $ only at the very end (re would say True)
    ("(?m)a$", "a\n", True),
    ("a\\z", "a", True),
    ("^\\d+$", "٣", False),  # ASCII classes
    ("x", "\udcff x", True),  # a lone surrogate matches nothing, raises nothing
])
def test_semantics(pattern: str, text: str, found: bool) -> None:
    assert compile_regex("f", pattern)(text) is found


@pytest.mark.parametrize(("pattern", "reason"), [
    ("(a)\\1", "invalid escape sequence: \\1"),
    ("(?=a)", "invalid perl operator: (?="),
    ("a\\Z", "invalid escape sequence: \\Z"),
    ("(", "missing ): ("),
    ("a{1001}", "invalid repetition size: {1001}"),
])
def test_what_re2_refuses_names_the_field_and_the_reason(pattern: str, reason: str) -> None:
    with pytest.raises(FieldError) as info:
        compile_regex("match.body", pattern)
    assert info.value.field == "match.body"
    assert info.value.message.startswith(f"invalid regular expression: {reason}")
    assert "RE2" in info.value.message and "\n" not in info.value.message


def test_a_pattern_must_be_a_string() -> None:
    with pytest.raises(FieldError, match="must be a regular expression string"):
        compile_regex("f", 5)
