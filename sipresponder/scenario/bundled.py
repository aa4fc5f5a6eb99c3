"""The scenarios shipped with the package (the repository's ``scenarios/`` folder)."""

from __future__ import annotations

import difflib
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


def scenario_path(name: str | None) -> Path:
    """The scenario file ``--scenario NAME`` means: the bundled default for None, the
    file when one of that name exists, else the bundled scenario of that name (with or
    without ``.toml``: ``--scenario client-torture``). A name that is neither comes
    back as it is, for the loader to report that it cannot read it."""
    if name is None:
        return bundled_scenario()
    path = Path(name)
    if path.exists() or path.name != name:  # a file, or a path with folders: as given
        return path
    for candidate in (name, f"{name}.toml"):
        if candidate in bundled_names():
            return bundled_scenario(candidate)
    return path


def missing_hint(path: Path) -> str:
    """What to add to "cannot read" for a scenario file that does not exist: for a bare
    name (no folder), the bundled scenarios, with the one it may have meant."""
    if path.name != str(path) or path.exists():
        return ""
    stems = [name.removesuffix(".toml") for name in bundled_names()]
    close = difflib.get_close_matches(path.name.removesuffix(".toml"), stems, n=1)
    meant = f"did you mean {close[0]!r}? " if close else ""
    return f"; nor is it a bundled scenario ({meant}bundled: {', '.join(stems)})"
