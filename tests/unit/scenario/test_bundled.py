"""scenario.bundled: the scenario files shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from sipresponder.scenario.bundled import DEFAULT, bundled_names, bundled_scenario
from sipresponder.scenario.loader import load_scenario

REPO_SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"


def test_names_are_the_toml_files_of_the_scenarios_folder_sorted() -> None:
    names = bundled_names()
    assert names == sorted(p.name for p in REPO_SCENARIOS.glob("*.toml"))
    assert DEFAULT in names


def test_default_path_is_the_shipped_default_file() -> None:
    path = bundled_scenario()
    assert path.name == DEFAULT
    assert path.read_bytes() == (REPO_SCENARIOS / DEFAULT).read_bytes()


def test_every_bundled_scenario_loads_by_name() -> None:
    for name in bundled_names():
        scenario = load_scenario(bundled_scenario(name))
        assert scenario.path == str(bundled_scenario(name))
        assert scenario.rules


def test_an_unknown_name_is_a_path_that_does_not_exist() -> None:
    assert not bundled_scenario("no-such.toml").exists()
