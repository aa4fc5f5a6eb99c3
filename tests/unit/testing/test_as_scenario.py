"""testing/api.py as_scenario: every way a test names its scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipresponder.scenario.bundled import scenario_path
from sipresponder.scenario.loader import ScenarioError, load_scenario
from sipresponder.testing.api import as_scenario


def test_a_bundled_name_is_the_bundled_scenario() -> None:
    assert [r.name for r in as_scenario("far-end").rules] == [
        r.name for r in load_scenario(scenario_path("far-end")).rules]


def test_a_path_and_toml_text_still_load(tmp_path: Path) -> None:
    path = tmp_path / "far-end.toml"  # a file of a bundled name's is still a file
    path.write_text("[default]\ncode = 486\n")
    assert as_scenario(str(path)).default.final.code == 486
    assert as_scenario("[default]\ncode = 503\nretry_after = 5\n").default.final.code == 503


def test_a_name_that_is_neither_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError):
        as_scenario("no-such-scenario")
