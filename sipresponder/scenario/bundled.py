"""The scenarios shipped with the package (the repository's ``scenarios/`` folder)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT = "default.toml"


def bundled_scenario(name: str = DEFAULT) -> Path:
    """The path of a bundled scenario file (``default.toml`` runs without ``--scenario``)."""
    return Path(str(resources.files("sipresponder") / "scenarios" / name))


def bundled_names() -> list[str]:
    """The bundled scenario files, by name."""
    folder = resources.files("sipresponder") / "scenarios"
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".toml"))
