"""scenario.settings: the [settings] table read into model.Settings."""

from __future__ import annotations

from typing import Any

import pytest

from sipresponder.scenario.fields import FieldError
from sipresponder.scenario.model import Settings
from sipresponder.scenario.settings import build_settings, check_switches


def test_an_empty_table_gives_the_defaults() -> None:
    assert build_settings({}) == Settings()


def test_values_take_the_type_of_their_default() -> None:
    settings = build_settings({
        "server": "x", "supported": "timer", "accept": ["a/b", "c/d"], "timer_t1": 1,
        "max_headers": 0, "response_routing": "via", "checks": {"max_forwards": True},
    })
    assert settings.server == "x"
    assert settings.supported == ("timer",)
    assert settings.accept == ("a/b", "c/d")
    assert settings.timer_t1 == 1.0 and isinstance(settings.timer_t1, float)
    assert settings.max_headers == 0
    assert settings.response_routing == "via"
    assert settings.checks == {"max_forwards": True}


@pytest.mark.parametrize(("raw", "field", "message"), [
    ([], None, "must be a table"),
    ({"sever": "x"}, "sever", "unknown setting (did you mean 'server'?)"),
    ({"server": 1}, "server", "must be str, not an integer"),
    ({"max_transactions": 1.5}, "max_transactions", "must be int, not a number"),
    ({"max_transactions": True}, "max_transactions", "must be int, not a boolean"),
    ({"timer_t1": True}, "timer_t1", "must be float, not a boolean"),
    ({"supported": [1]}, "supported", "must be a string or a list of strings"),
    ({"response_routing": "rport"}, "response_routing", 'must be "source" or "via"'),
    ({"rate_limit_action": "reject"}, "rate_limit_action", 'must be "drop" or "503"'),
    ({"max_message_size": 0}, "max_message_size", "must be positive"),
    ({"loop_ttl": -1}, "loop_ttl", "must not be negative (0 turns the limit off)"),
    ({"timer_t1": 5}, "timer_t1", "must be positive and no larger than timer_t2"),
    ({"timer_t1": 0}, "timer_t1", "must be positive and no larger than timer_t2"),
    ({"checks": []}, "checks", "must be a table of check name = true / false"),
    ({"checks": {"nope": True}}, "checks.nope", "unknown check (no known check is close to it"),
    ({"checks": {"loop": 1}}, "checks.loop", "must be true or false, not an integer"),
])
def test_errors_name_the_setting(raw: Any, field: str | None, message: str) -> None:
    with pytest.raises(FieldError) as info:
        build_settings(raw)
    assert info.value.field == field
    assert info.value.message.startswith(message)


def test_check_switches_copies_the_table() -> None:
    table = {"loop": True}
    switches = check_switches(table)
    assert switches == table and switches is not table
