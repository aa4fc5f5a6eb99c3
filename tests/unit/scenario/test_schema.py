"""The JSON Schema of scenario files (scenario.schema) against the loader.

The loader defines the language; the schema must never refuse what the loader
accepts (else an editor flags a good file), and must refuse the shapes the loader
refuses: unknown keys, wrong types, values out of an enumeration or a range. What a
schema cannot say (required header fields, templates, states) is the loader's alone.
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sipresponder.auth.config import AUTH_KEYS
from sipresponder.scenario.files import FileAccess
from sipresponder.scenario.loader import TOP_KEYS, ScenarioError, _Loader
from sipresponder.scenario.model import Settings
from sipresponder.scenario.rules import MATCH_KEYS, RULE_KEYS
from sipresponder.scenario.schema import SCHEMA_ID, scenario_schema, schema_text

ROOT = Path(__file__).resolve().parents[3]
FILES = sorted([*ROOT.glob("scenarios/*.toml"), *ROOT.glob("examples/*.toml")])
VALIDATOR = Draft202012Validator(scenario_schema())

# Every family of keys in one valid scenario, so that mutations reach each of them.
RICH = """
[settings]
seed = 7
ring_timeout = 30
timer_t1 = 0.5
supported = ["replaces"]
accept = "application/sdp"
response_routing = "via"
rate_limit = 10
[settings.checks]
max_forwards = true

[auth]
realm = "lab"
algorithms = ["SHA-256", "md5"]
qop = true
nonce_lifetime = 60
wrong_password = 403
credentials = { alice = "secret", bob = { ha1 = { MD5 = "0123456789abcdef0123456789abcdef", sha-256 = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a" } } }

[[rule]]
name = "chance"
match = { method = ["INVITE"], user = "chance*", transport = ["UDP", "tcp"] }
provisional = [180, { code = 181, delay = 0.1 }]
probability = 0.5
[[rule.choice]]
code = 200
weight = 3
[[rule.choice]]
code = 503
retry_after = 5
delay = { uniform = [0, 1] }

[[rule]]
name = "faulty"
match = { uri_regex = "^sip:f", headers = { Subject = "x", Priority = false } }
code = 200
fault = "truncated"
repeat_final = true
delay = { lognormal = { median = 0.2, sigma = 0.5 } }
headers = { X-Test = ["a", 1] }
body = "hello"
content_type = "text/plain"

[[rule]]
name = "quiet"
match = { source = ["127.0.0.0/8"], body = "v=0" }
action = "provisional-only"
provisional = [180]

[[rule]]
name = "codec"
match = { method = "INVITE", sdp = { codecs = "PCMA/8000", media = ["audio"], direction = "sendrecv" } }
code = 488

[[rule]]
name = "flaky"
match = { user_regex = "^flaky$", sdp = { no_codecs = ["G729/8000"] } }
sequence = [503, { code = 200, provisional = [180], reason = "Fine" }]
after = "cycle"
scope = "call-id"

[[rule]]
name = "register"
match = { method = "REGISTER" }
code = 200
auth = "www"
new_state = "registered"
scope = "from"
contacts = ["<sip:a@b>"]
expires = 60

[[rule]]
name = "registered"
match = { method = "MESSAGE" }
code = 200
when_state = "registered"
scope = "from"

[default]
code = 480
fill_required = false
sdp = false
"""
BASES = [tomllib.loads(RICH), *(tomllib.loads(f.read_text()) for f in FILES)]


def loader_accepts(doc: dict[str, Any]) -> bool:
    """Whether the loader builds ``doc``; anything but a ScenarioError is a crash."""
    try:
        _Loader("<generated>", FileAccess.anywhere(ROOT / "scenarios")).build(copy.deepcopy(doc))
    except ScenarioError:
        return False
    return True


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = scenario_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_bundled_and_example_scenario_validates(path: Path) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in VALIDATOR.iter_errors(
        tomllib.loads(path.read_text()))]
    assert errors == []


def test_the_files_exist() -> None:
    # The parametrized test above would pass vacuously on an empty glob.
    assert {p.name for p in FILES} >= {"default.toml", "pbx-lab.toml", "media.toml"}


def test_the_rich_scenario_is_valid_for_both() -> None:
    assert loader_accepts(BASES[0])
    assert VALIDATOR.is_valid(BASES[0])


def test_the_shipped_schema_file_is_up_to_date() -> None:
    shipped = ROOT / "scenarios" / "scenario.schema.json"
    assert shipped.read_text() == schema_text(), (
        "regenerate it: sipresponder schema --output scenarios/scenario.schema.json"
    )


def test_the_schema_command_prints_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from sipresponder.ops.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == scenario_schema()
    out = tmp_path / "s.json"
    assert main(["schema", "--output", str(out)]) == 0
    assert out.read_text() == schema_text()
    assert main(["schema", "--output", str(tmp_path / "missing" / "s.json")]) == 1
    assert "cannot write" in capsys.readouterr().err


def _tables(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tables whose keys the loader closes (not headers, credentials), by kind."""
    out: list[tuple[str, dict[str, Any]]] = [("top", doc)]
    for key in ("settings", "auth", "default"):
        if isinstance(doc.get(key), dict):
            out.append((key, doc[key]))
    if isinstance(doc.get("settings", {}).get("checks"), dict):
        out.append(("checks", doc["settings"]["checks"]))
    for rule in doc.get("rule", []):
        out.append(("rule", rule))
        if isinstance(rule.get("match"), dict):
            out.append(("match", rule["match"]))
            if isinstance(rule["match"].get("sdp"), dict):
                out.append(("sdp", rule["match"]["sdp"]))
        for key in ("choice", "sequence", "provisional"):
            out.extend(("response", item) for item in rule.get(key, []) if isinstance(item, dict))
    return out


@pytest.mark.parametrize("base", range(len(BASES)))
def test_an_unknown_key_is_refused_by_both_in_every_table(base: int) -> None:
    for index, (kind, _) in enumerate(_tables(BASES[base])):
        doc = copy.deepcopy(BASES[base])
        _tables(doc)[index][1]["zz_unknown"] = 1
        assert not loader_accepts(doc), kind
        assert not VALIDATOR.is_valid(doc), kind


# Values of every TOML type, in and out of the ranges the loader checks.
VALUES = st.sampled_from([
    True, False, 0, 1, -1, -2, 2, 100, 180, 200, 404, 699, 700, 3600, 3601, 0.5, 1.5, -0.5,
    "", " ", "x", "*", "INVITE", "audio", "PCMA/8000", "sendrecv", "udp", "www", "none",
    "provisional-only", "answer", "truncated", "close-after", "cycle", "call-id", "md5",
    "a\nb", "{ruri.user}", "text/plain", "127.0.0.1", [], [1], [180], ["x"], [0, 1], [True],
    {}, {"code": 200}, {"code": 180}, {"uniform": [1, 0]}, {"lognormal": {"median": 1,
                                                                          "sigma": 1}},
])
# Keys the loader knows anywhere (a known key in the wrong table is refused too),
# and one it knows nowhere.
KEYS = st.sampled_from(sorted(
    RULE_KEYS | MATCH_KEYS | AUTH_KEYS | TOP_KEYS | {f.name for f in fields(Settings)}
    | {"media", "codecs", "no_codecs", "direction", "weight", "uniform", "lognormal",
       "median", "sigma", "password", "ha1", "max_forwards", "zz_unknown"}
))


def _containers(value: Any) -> list[Any]:
    """Every table and array inside ``value``, itself included."""
    if isinstance(value, dict):
        return [value, *(c for v in value.values() for c in _containers(v))]
    if isinstance(value, list):
        return [value, *(c for v in value for c in _containers(v))]
    return []


def _value(draw: st.DrawFn) -> Any:
    # A copy: the pool's lists and tables must not become part of (and grow with) a doc.
    return copy.deepcopy(draw(VALUES))


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(_containers(doc)))
        if isinstance(where, dict):
            key = draw(st.sampled_from(sorted(where)) | KEYS) if where else draw(KEYS)
            if draw(st.booleans()) and key in where:
                del where[key]
            else:
                where[key] = _value(draw)
        elif where:
            where[draw(st.integers(0, len(where) - 1))] = _value(draw)
        else:
            where.append(_value(draw))
    return doc


@settings(max_examples=300, deadline=None, derandomize=True)
@given(mutated())
def test_what_the_schema_refuses_the_loader_refuses(doc: dict[str, Any]) -> None:
    # Equivalently: whatever the loader accepts, an editor using the schema accepts.
    if not VALIDATOR.is_valid(doc):
        assert not loader_accepts(doc), [e.message for e in VALIDATOR.iter_errors(doc)][:3]


def test_a_key_the_loader_knows_cannot_be_left_out_of_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sipresponder.scenario import schema

    monkeypatch.setattr(schema, "MATCH_KEYS", schema.MATCH_KEYS | {"new_condition"})
    with pytest.raises(KeyError, match="no schema for match condition new_condition"):
        schema.scenario_schema()
