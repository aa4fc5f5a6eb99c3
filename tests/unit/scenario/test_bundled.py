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


def test_scenario_path_finds_a_bundled_name_with_or_without_toml(tmp_path: Path,
                                                                  monkeypatch) -> None:
    from sipresponder.scenario.bundled import scenario_path

    monkeypatch.chdir(tmp_path)
    assert scenario_path(None) == bundled_scenario()
    assert scenario_path("client-torture") == bundled_scenario("client-torture.toml")
    assert scenario_path("client-torture.toml") == bundled_scenario("client-torture.toml")


def test_scenario_path_prefers_a_file_and_leaves_unknown_names_alone(tmp_path: Path,
                                                                     monkeypatch) -> None:
    from sipresponder.scenario.bundled import scenario_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "default.toml").write_text("")  # a user's own file of a bundled name
    assert scenario_path("default.toml") == Path("default.toml")
    assert scenario_path("nope") == Path("nope")  # the loader says it cannot read it
    assert scenario_path("sub/client-torture") == Path("sub/client-torture")


def test_a_missing_bare_name_is_told_the_bundled_scenarios(tmp_path: Path, monkeypatch) -> None:
    from sipresponder.scenario.bundled import missing_hint

    monkeypatch.chdir(tmp_path)
    stems = ", ".join(name.removesuffix(".toml") for name in bundled_names())
    assert missing_hint(Path("client-tortur")) == (
        f"; nor is it a bundled scenario (did you mean 'client-torture'? bundled: {stems})")
    assert missing_hint(Path("zzz.toml")) == f"; nor is it a bundled scenario (bundled: {stems})"
    assert missing_hint(Path("some/dir/x.toml")) == ""  # a path: the OS error says it all
