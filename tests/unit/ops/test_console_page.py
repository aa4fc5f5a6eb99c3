"""The console page's static files (sipresponder/ops/console/), read as text: what the
browser tests cannot see fail by accident.

- every module a module imports is there, and index.html's import map (which carries
  ?token= to each module) names every module but the entry point;
- message text never goes in as markup: no innerHTML and friends anywhere;
- nothing is fetched from elsewhere: no http(s) URL but the SVG namespace.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import sipresponder.ops

CONSOLE = Path(sipresponder.ops.__file__).with_name("console")
MODULES = sorted(CONSOLE.glob("*.js"))
ENTRY = "console.js"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"

_IMPORT = re.compile(r'^\s*import\s[^;]*?from\s+"\./([^"]+)";', re.MULTILINE | re.DOTALL)
_MAP_LIST = re.compile(r"\[((?:\s*\"[a-z]+\",?)+)\]\.forEach")


def test_the_page_and_its_assets_are_package_data() -> None:
    names = {path.name for path in CONSOLE.iterdir()}
    assert {"index.html", "console.css", ENTRY, "icon.svg"} <= names, names


def test_every_imported_module_exists() -> None:
    for module in MODULES:
        for name in _IMPORT.findall(module.read_text()):
            assert (CONSOLE / name).is_file(), f"{module.name} imports {name}, which is missing"


def test_the_import_map_names_every_module_but_the_entry_point() -> None:
    html = (CONSOLE / "index.html").read_text()
    match = _MAP_LIST.search(html)
    assert match, "index.html lost its list of modules for the import map"
    listed = set(json.loads(f"[{match[1]}]"))
    assert listed == {m.stem for m in MODULES if m.name != ENTRY}
    assert f'"{ENTRY[:-3]}.js"' in html


def code_of(text: str) -> str:
    """JavaScript without its comments (which may name what the code avoids)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(^|\s)//[^\n]*", r"\1", text)


def test_no_markup_is_built_from_strings() -> None:
    sinks = re.compile(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval)\b"
                       r"|new Function\b")
    for path in [*MODULES, CONSOLE / "index.html"]:
        found = sinks.findall(code_of(path.read_text()))
        assert not found, f"{path.name} uses {found}: build nodes with textContent (dom.js)"


def test_nothing_is_fetched_from_elsewhere() -> None:
    url = re.compile(r"https?://[^\s\"'`)]+")
    for path in CONSOLE.iterdir():
        urls = [u for u in url.findall(path.read_text()) if u != SVG_NAMESPACE]
        assert not urls, f"{path.name} refers to {urls}: the console works offline"
