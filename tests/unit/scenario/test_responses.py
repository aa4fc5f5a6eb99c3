"""scenario.responses: a rule's response tables read into ResponseSpec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.files import FileAccess
from sipresponder.scenario.model import ResponseSpec, Rule
from sipresponder.scenario.responses import (
    build_provisionals,
    build_response,
    check_required,
    rows,
)
from sipresponder.scenario.template import Template, compile_template

HERE = FileAccess.anywhere(Path("."))


def response(raw: dict[str, Any], base_dir: Path = Path(".")) -> ResponseSpec:
    return build_response(raw, FileAccess.anywhere(base_dir))


def error_of(raw: dict[str, Any]) -> FieldError:
    with pytest.raises(FieldError) as info:
        response(raw)
    return info.value


def sources(templates: list[Template]) -> list[str]:
    return [t.source for t in templates]


def test_a_code_alone() -> None:
    spec = response({"code": 486})
    assert spec == ResponseSpec(486)
    assert spec.reason is None and spec.sdp is True and spec.delay == 0.0


def test_every_key() -> None:
    spec = response({
        "code": 302, "reason": "Moved {ruri.user}", "headers": {"X-A": ["1", "2"], "X-B": 3},
        "contacts": ["<sip:a@b>", "<sip:c@d>"], "retry_after": 60, "body": "hi",
        "content_type": "text/plain", "sdp": False, "delay": 1, "fill_required": True,
    })
    assert spec.code == 302
    assert spec.reason is not None and spec.reason.source == "Moved {ruri.user}"
    assert [(n, t.source) for n, t in spec.headers] == [("X-A", "1"), ("X-A", "2"), ("X-B", "3")]
    assert sources(spec.typed["Contact"]) == ["<sip:a@b>", "<sip:c@d>"]  # one row each
    assert sources(spec.typed["Retry-After"]) == ["60"]
    assert spec.body is not None and spec.body.source == "hi"
    assert spec.content_type == "text/plain"
    assert (spec.sdp, spec.delay, spec.fill_required) == (False, 1.0, True)


def test_typed_lists_other_than_contact_are_one_comma_joined_row() -> None:
    assert sources(rows("f", ["a", 1], join=True)) == ["a, 1"]
    assert sources(rows("f", ["a", 1])) == ["a", "1"]
    assert sources(rows("f", 2.5)) == ["2.5"]


def test_a_templated_code_needs_fill_required() -> None:
    spec = response({"code": "{ruri.user}", "fill_required": True})
    assert isinstance(spec.code, Template)


def test_body_file_is_read_as_bytes_relative_to_the_base(tmp_path: Path) -> None:
    (tmp_path / "b.bin").write_bytes(b"{raw}\xff")
    spec = response({"code": 200, "body_file": "b.bin", "content_type": "a/b"}, tmp_path)
    assert spec.body is not None
    assert spec.body.parts == ("{raw}\xff",)  # no template expansion, latin-1 octets
    assert spec.body.source == "b.bin"


@pytest.mark.parametrize(("raw", "field", "message"), [
    ({}, "code", "missing: every response needs a status code"),
    ({"code": 99}, "code", "99 is not a SIP status code (100-699)"),
    ({"code": True}, "code", "must be an integer, not a boolean"),
    ({"code": "486"}, "code", 'must be an integer (or a template like "{ruri.user}")'),
    ({"code": "{ruri.user}"}, "code", "a templated code needs fill_required = true"),
    ({"code": "{nope}"}, "code", "unknown variable {nope}"),
    ({"code": 200, "reason": "a\r\nb"}, "reason", "must not contain line breaks"),
    ({"code": 299}, "reason", "299 is not in the registry: give its reason phrase"),
    ({"code": 200, "headers": []}, "headers", "must be a table of header name = value"),
    ({"code": 200, "headers": {"X A": "1"}}, "headers.X A", "is not a valid header name"),
    ({"code": 200, "headers": {"call-id": "1"}}, "headers.call-id", "is written by the responder"),
    ({"code": 200, "headers": {"X-A": True}}, "headers.X-A", "must be a string, a number or a"),
    ({"code": 200, "headers": {"X-A": []}}, "headers.X-A", "must be a string, a number or a"),
    ({"code": 200, "headers": {"X-A": [{}]}}, "headers.X-A", "list items must be strings or"),
    ({"code": 200, "headers": {"X-A": "a\nb"}}, "headers.X-A", "must not contain line breaks"),
    ({"code": 200, "body": "x", "body_file": "y"}, "body_file", "give either body or body_file"),
    ({"code": 200, "body_file": "/no/such/file"}, "body_file", "cannot read '/no/such/file'"),
    ({"code": 200, "content_type": "sdp"}, "content_type", "must be a media type like"),
    ({"code": 200, "body": "x"}, "content_type", "a body needs its content_type"),
    ({"code": 200, "sdp": 1}, "sdp", "must be true or false, not an integer"),
    ({"code": 200, "delay": 3601}, "delay", "must be a number of seconds from 0 to 3600"),
    ({"code": 200, "delay": "1"}, "delay", "must be a number of seconds from 0 to 3600"),
])
def test_errors_name_the_key(raw: dict[str, Any], field: str, message: str) -> None:
    error = error_of(raw)
    assert error.field == field
    assert error.message.startswith(message)


def test_provisionals_are_codes_or_tables() -> None:
    specs = build_provisionals({"provisional": [180, {"code": 183, "delay": 1}]}, HERE)
    assert [(s.code, s.delay) for s in specs] == [(180, 0.0), (183, 1.0)]
    assert build_provisionals({}, HERE) == []


@pytest.mark.parametrize(("value", "field", "message"), [
    (180, "provisional", "must be a list of codes or tables"),
    (["180"], "provisional[0]", "must be a code or a table"),
    ([180, 200], "provisional[1].code", "200 is not a provisional code (101-199)"),
    ([{"code": 180, "name": "x"}], "provisional[0].name", "unknown key (no known key is close to it; `sipresponder schema` lists all 30)"),
    ([{"code": 180, "delay": -1}], "provisional[0].delay", "must be a number of seconds"),
])
def test_provisional_errors_name_the_item(value: object, field: str, message: str) -> None:
    with pytest.raises(FieldError) as info:
        build_provisionals({"provisional": value}, HERE)
    assert info.value.field == field
    assert info.value.message.startswith(message)


def rule_of(final: ResponseSpec, *provisional: ResponseSpec) -> Rule:
    return Rule("r", 1, [], None, list(provisional), final)


def test_required_headers_are_checked_where_they_cannot_be_derived() -> None:
    check_required(rule_of(ResponseSpec(486)))
    check_required(rule_of(ResponseSpec(302, fill_required=True)))
    check_required(rule_of(ResponseSpec(302, typed={"Contact": [compile_template("<sip:x>")]})))
    with pytest.raises(FieldError) as info:
        check_required(rule_of(ResponseSpec(302)))
    assert info.value.field == "contacts"
    assert info.value.message.startswith("302 Moved Temporarily requires a Contact header field")
    assert info.value.message.endswith('; set contacts = ["<sip:user@host>"]')


def test_required_headers_of_a_provisional_name_its_index() -> None:
    with pytest.raises(FieldError) as info:
        check_required(rule_of(ResponseSpec(200), ResponseSpec(180), ResponseSpec(302)))
    assert info.value.field == "provisional[1].contacts"
