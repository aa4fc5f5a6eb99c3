"""scenario.fields: FieldError and the readers of TOML values every builder shares."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sipresponder.scenario.fields import (
    FieldError,
    boolean,
    key_list,
    kind,
    reject_unknown,
    str_list,
    string,
    table,
    template,
)


def test_field_error_carries_field_and_message() -> None:
    error = FieldError("code", "must be an integer")
    assert (error.field, error.message) == ("code", "must be an integer")
    assert str(error) == "code: must be an integer"
    assert isinstance(error, ValueError)
    assert str(FieldError(None, "must be a table")) == "must be a table"


def test_within_names_the_field_from_the_enclosing_table() -> None:
    inner = FieldError("MD5", "must be 32 hex digits")
    outer = inner.within("ha1").within("credentials.alice")
    assert outer.field == "credentials.alice.ha1.MD5"
    assert outer.message == "must be 32 hex digits"
    assert FieldError(None, "must be a table").within("provisional[0]").field == "provisional[0]"


@pytest.mark.parametrize(("value", "name"), [
    (True, "a boolean"), (1, "an integer"), (1.5, "a number"), ("x", "a string"),
    ([], "a list"), ({}, "a table"), (None, "NoneType"),
])
def test_kind(value: object, name: str) -> None:
    assert kind(value) == name


def test_readers_accept_their_type_and_name_the_field_otherwise() -> None:
    assert string("f", "x") == "x"
    assert boolean("f", False) is False
    assert str_list("f", "a") == ["a"]
    assert str_list("f", ["a", "b"]) == ["a", "b"]
    assert table("t", {"a": 1}) == {"a": 1}
    assert template("f", "{method}").source == "{method}"


@pytest.mark.parametrize(("read", "message"), [
    (lambda: string("f", 1), "must be a string, not an integer"),
    (lambda: boolean("f", "yes"), "must be true or false, not a string"),
    (lambda: str_list("f", ["a", 1]), "must be a string or a list of strings"),
    (lambda: table("f", []), "must be a table"),
    (lambda: template("f", "{nope}"), "unknown variable {nope}"),
])
def test_readers_name_the_field_of_a_value_that_does_not_fit(
        read: Callable[[], object], message: str) -> None:
    with pytest.raises(FieldError) as info:
        read()
    assert info.value.field == "f"
    assert info.value.message.startswith(message)


def test_reject_unknown_names_the_first_unknown_key_and_lists_the_known() -> None:
    reject_unknown({"a": 1}, {"a", "b"})
    with pytest.raises(FieldError) as info:
        reject_unknown({"a": 1, "zz": 2}, {"b", "a"}, "setting")
    assert info.value.field == "zz"
    assert info.value.message == "unknown setting (expected one of a, b)"
    assert key_list({"b", "a"}) == "a, b"
