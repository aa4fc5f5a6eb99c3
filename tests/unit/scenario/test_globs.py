"""scenario/globs.py: the one glob dialect (only '*' is special), everywhere."""

from __future__ import annotations

import pytest

from sipresponder.scenario.globs import compile_glob, glob_match


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("sip:alice@[::1]:42005", "sip:alice@[::1]:42005"),  # fnmatch would read [::1] as a class
        ("sip:*@[::1]:*", "sip:bob@[::1]:5060"),
        ("sip:a?b@x", "sip:a?b@x"),  # '?' is a URI character, not a wildcard
        ("*", ""),
        ("sip:*@example.com", "sip:@example.com"),
        ("a*b*c", "a\nb\nc"),  # header values never hold a newline, but '*' spans anything
    ],
)
def test_matches(pattern: str, text: str) -> None:
    assert glob_match(pattern, text)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("sip:a?b@x", "sip:aXb@x"),
        ("sip:alice@[::1]:42005", "sip:alice@:42005"),
        ("sip:*@example.com", "sip:bob@example.com.evil"),  # a glob matches the whole text
        ("SIP:*", "sip:bob@x"),  # case-sensitive
        ("a.c", "abc"),  # regex metacharacters are literal
    ],
)
def test_does_not_match(pattern: str, text: str) -> None:
    assert not glob_match(pattern, text)


def test_the_compiled_pattern_agrees() -> None:
    glob = compile_glob("sip:*@[::1]")
    assert glob.matches("sip:x@[::1]")
    assert not glob.matches("sip:x@[::2]")
