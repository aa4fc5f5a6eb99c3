"""Scenario validation: every error is one line naming file, rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.loader import MAX_ERRORS, ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("s.toml")
    return message


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.toml")), ids=lambda p: p.name)
def test_bundled_scenarios_load(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[rule]]\nname = "moved"\ncode = 302\n',
         "s.toml: rule 'moved' (#1): field 'contacts': 302 Moved Temporarily requires a Contact"),
        ('[[rule]]\nname = "auth"\ncode = 401\n',
         "rule 'auth' (#1): field 'www_authenticate': 401 Unauthorized requires a WWW-Authenticate"),
        ('[[rule]]\ncode = 407\n', "rule #1: field 'proxy_authenticate'"),
        ('[[rule]]\ncode = 421\n', "field 'require': 421 Extension Required requires a Require"),
        ('[[rule]]\ncode = 422\n', "field 'min_se'"),
        ('[[rule]]\ncode = 423\n', "field 'min_expires'"),
        ('[[rule]]\ncode = 494\n', "field 'security_server'"),
        ('[[rule]]\ncode = 470\n', "field 'permission_missing'"),
        ('[[rule]]\ncode = 204\n', "field 'expires'"),
        ('[[rule]]\nname = "x"\ncode = 999\n', "rule 'x' (#1): field 'code': 999 is not a SIP status code"),
        ('[[rule]]\ncode = "486"\n', "field 'code': must be an integer"),
        ('[[rule]]\ncode = "{ruri.user}"\n', "field 'code': a templated code needs fill_required"),
        ('[[rule]]\ncode = 486\nbogus = 1\n', "field 'bogus': unknown key"),
        ('[[rule]]\ncode = 486\nmethod = "INVITE"\n', "match conditions go in the rule's `match` table"),
        ('[[rule]]\ncode = 486\nmatch = { verb = "INVITE" }\n', "field 'match.verb': unknown condition"),
        ('[[rule]]\ncode = 486\nmatch = { uri_regex = "(" }\n', "field 'match.uri_regex': invalid regular expression"),
        ('[[rule]]\nname = "m"\ncode = 200\nmatch = { body = "[a-" }\n',
         "rule 'm' (#1): field 'match.body': invalid regular expression"),
        ('[[rule]]\ncode = 488\nmatch.sdp = { no_codecs = ["G729"] }\n',
         "field 'match.sdp.no_codecs': 'G729' is not a codec"),
        ('[[rule]]\ncode = 488\nmatch.sdp = { codec = "PCMA/8000" }\n',
         "field 'match.sdp.codec': unknown condition"),
        ('[[rule]]\ncode = 486\nmatch = { source = "300.1.1.1" }\n', "field 'match.source'"),
        ('[[rule]]\ncode = 486\nmatch = { transport = "sctp" }\n', "field 'match.transport'"),
        ('[[rule]]\ncode = 486\nmatch = { method = "IN VITE" }\n', "not a valid SIP method token"),
        ('[[rule]]\ncode = 486\nreason = "{nope}"\n', "field 'reason': unknown variable {nope}"),
        ('[[rule]]\ncode = 299\n', "field 'reason': 299 is not in the registry"),
        ('[[rule]]\ncode = 200\nbody = "x"\n', "field 'content_type': a body needs its content_type"),
        ('[[rule]]\ncode = 200\nbody_file = "missing.sdp"\ncontent_type = "application/sdp"\n',
         "field 'body_file': cannot read"),
        ('[[rule]]\ncode = 200\nheaders = { Via = "x" }\n', "field 'headers.Via': is written by the responder"),
        ('[[rule]]\ncode = 200\ndelay = -1\n', "field 'delay'"),
        ('[[rule]]\ncode = 200\nprovisional = [200]\n', "field 'provisional[0].code': 200 is not a provisional"),
        ('[[rule]]\ncode = 200\nprovisional = [{ code = 180, x = 1 }]\n', "field 'provisional[0].x'"),
        ('[[rule]]\nname = "a"\ncode = 200\n[[rule]]\nname = "a"\ncode = 200\n', "duplicate rule name"),
        ('[settings]\nservr = "x"\n', "[settings]: field 'servr': unknown setting"),
        ('[settings]\nmax_message_size = "big"\n', "field 'max_message_size': must be int"),
        ('[settings]\nresponse_routing = "dns"\n', "field 'response_routing'"),
        ('[default]\ncode = 302\n', "[default]: field 'contacts'"),
        ('[rules]\n', "field 'rules': unknown top-level key"),
        ("[[rule]\n", "invalid TOML"),
    ],
)
def test_invalid_scenarios_are_refused_with_a_precise_message(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_derivable_required_headers_need_no_field() -> None:
    # Allow (405), Unsupported (420) and Accept (415) are derived by the responder.
    scenario = parse_scenario(
        "[[rule]]\ncode = 405\n[[rule]]\ncode = 420\n[[rule]]\ncode = 415\n", "s.toml")
    assert len(scenario.rules) == 3


def test_typed_fields_satisfy_requirements() -> None:
    scenario = parse_scenario(
        '[[rule]]\ncode = 302\ncontacts = ["<sip:a@b>", "<sip:c@d>"]\n'
        '[[rule]]\ncode = 423\nmin_expires = 60\n'
        '[[rule]]\ncode = 401\nheaders = { "WWW-Authenticate" = "Digest realm=\\"x\\"" }\n',
        "s.toml")
    assert scenario.rules[0].final.typed["Contact"][0].source == "<sip:a@b>"


def test_allow_lists_the_methods_the_scenario_answers() -> None:
    scenario = parse_scenario(
        '[[rule]]\nmatch = { method = "INVITE" }\ncode = 200\n'
        '[[rule]]\nmatch = { method = ["OPTIONS", "FOO"] }\ncode = 200\n', "s.toml")
    assert scenario.allow == ("INVITE", "ACK", "CANCEL", "OPTIONS", "FOO")
    assert "FOO" in scenario.known_methods


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


def test_body_file_is_read_relative_to_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "answer.txt").write_bytes(b"hello {not-a-template}\n")
    (tmp_path / "s.toml").write_text(
        '[[rule]]\ncode = 200\nbody_file = "answer.txt"\ncontent_type = "text/plain"\n')
    scenario = load_scenario(tmp_path / "s.toml")
    assert scenario.rules[0].final.body.parts == ("hello {not-a-template}\n",)


def test_scenario_names_its_body_files(tmp_path: Path) -> None:
    """serve --watch watches these too (issue 12)."""
    for name in ("a.txt", "b.sdp", "c.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "s.toml").write_text(
        '[[rule]]\ncode = 200\nbody_file = "a.txt"\ncontent_type = "text/plain"\n'
        'provisional = [{ code = 183, body_file = "b.sdp", content_type = "application/sdp" }]\n'
        '[[rule]]\ncode = 200\nbody_file = "a.txt"\ncontent_type = "text/plain"\n'
        f'[default]\ncode = 404\nbody_file = "{tmp_path / "c.txt"}"\n'
        'content_type = "text/plain"\n')
    scenario = load_scenario(tmp_path / "s.toml")
    assert scenario.body_files == (tmp_path / "a.txt", tmp_path / "b.sdp", tmp_path / "c.txt")
    assert load_scenario(SCENARIOS / "default.toml").body_files == ()


def errors_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.toml")
    assert info.value.errors[0] is info.value
    return [str(error) for error in info.value.errors]


def test_every_error_of_a_file_at_once_with_did_you_mean() -> None:
    text = (
        '[settings]\nsever = "x"\n\n'
        '[[rule]]\nname = "a"\ncdoe = 486\nmatch = { usr = "bob" }\n\n'
        '[[rule]]\nname = "b"\ncode = 486\nreasn = "Busy"\n\n'
        '[[rule]]\nname = "c"\ncode = 302\n\n'
        '[default]\ncode = "x"\n'
    )
    assert errors_of(text) == [
        "s.toml: [settings]: field 'sever': unknown setting (did you mean 'server'?)",
        "s.toml: rule 'a' (#1): field 'cdoe': unknown key (did you mean 'code'?)",
        "s.toml: rule 'a' (#1): field 'match.usr': unknown condition (did you mean 'user'?)",
        "s.toml: rule 'b' (#2): field 'reasn': unknown key (did you mean 'reason'?)",
        "s.toml: rule 'c' (#3): field 'contacts': 302 Moved Temporarily requires a Contact "
        'header field (RFC 3261 21.3); set contacts = ["<sip:user@host>"]',
        errors_of('[default]\ncode = "x"\n')[0],
    ]


def test_an_unknown_key_among_many_does_not_list_them_all() -> None:
    message = error_of('[[rule]]\ncolour = "red"\ncode = 200\n')
    assert message == ("s.toml: rule #1: field 'colour': unknown key (no known key is close "
                       "to it; `sipresponder schema` lists all 48)")


def test_a_broken_rule_causes_no_second_error_elsewhere() -> None:
    # rule 'set' is refused, so rule 'read' would read a state no rule sets: not said
    text = ('[[rule]]\nname = "set"\nnew_state = "on"\ncode = 200\ncolour = 1\n\n'
            '[[rule]]\nname = "read"\nwhen_state = "on"\ncode = 200\n')
    assert len(errors_of(text)) == 1
    # a rule's auth against an [auth] that was refused: [auth]'s error only
    text = '[auth]\nrelam = "x"\n\n[[rule]]\nname = "a"\nauth = "www"\ncode = 200\n'
    assert errors_of(text) == ["s.toml: [auth]: field 'relam': unknown key (did you mean "
                               "'realm'?)"]


def test_reading_stops_at_the_limit() -> None:
    """20,000 broken rules: a did-you-mean for each would cost seconds."""
    text = "".join(f'[[rule]]\nname = "r{i}"\ncdoe = 1\n' for i in range(20_000))
    found = errors_of(text)
    assert len(found) == MAX_ERRORS + 1
    assert found[MAX_ERRORS - 1].startswith(f"s.toml: rule 'r{MAX_ERRORS - 1}' ")
    assert found[-1] == (f"s.toml: stopped after {MAX_ERRORS} errors; the rest of the file was "
                         "not checked")
