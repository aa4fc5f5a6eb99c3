"""MkDocs hook: the reference tables that must not drift from the code, made at build time.

A page asks for a table with a marker line, ``<!-- generated: NAME -->``; the hook
replaces it with Markdown built from the scenario JSON Schema
(``sipresponder.scenario.schema.scenario_schema``, itself built from the loader's key
sets) or from the admin API's OpenAPI document (``sipresponder.ops.admin.OPENAPI``).
A marker naming no table fails the build, as does a table the schema cannot describe,
so a page cannot silently lose one. tests/docs/test_docs.py builds the site with this
hook and also imports it to check the tables directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

Schema = dict[str, Any]

_NOCASE = re.compile(r"^\^\(\?:((?:\[\w\w\]|[\w.+/-]|\\.|\|)+)\)\$$")
MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.MULTILINE)


def _cell(text: str) -> str:
    """One table cell: a pipe would end it, a newline would end the row."""
    return " ".join(text.split()).replace("|", "\\|")


def _resolve(node: Schema, root: Schema) -> Schema:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        merged = {**root["$defs"][ref.removeprefix("#/$defs/")], **node}
        merged.pop("$ref")
        return merged
    return node


def _type(node: Schema, root: Schema) -> str:
    """A short human reading of a schema node's type, e.g. ``string, or a list of them``."""
    node = _resolve(node, root)
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    for key in ("anyOf", "oneOf"):
        if key in node:
            parts: list[str] = []
            for sub in node[key]:
                reading = _type(sub, root)
                if reading not in parts:
                    parts.append(reading)
            if len(parts) == 2 and parts[1] == f"list of ({parts[0]})":
                return f"{parts[0]}, or a list of them"
            return " or ".join(parts)
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        return f"list of ({_type(items, root)})" if isinstance(items, dict) else "list"
    if kind == "object":
        return "table"
    if kind in ("integer", "number"):
        low, high = node.get("minimum"), node.get("maximum")
        word = "integer" if kind == "integer" else "number"
        if low is not None and high is not None:
            return f"{word} {low}-{high}"
        if low is not None:
            return f"{word} ≥ {low}"
        if node.get("exclusiveMinimum") is not None:
            return f"{word} > {node['exclusiveMinimum']}"
        return word
    names = _NOCASE.match(str(node.get("pattern", ""))) if kind == "string" else None
    if names:
        # scenario/schema.py's _nocase: each letter written as [Aa]
        spelled = re.sub(r"\[(\w)\w\]", r"\1", names.group(1)).split("|")
        return "one of " + ", ".join(f"`{name}`" for name in spelled) + " (any case)"
    if isinstance(kind, str):
        return kind
    return "any"


def _key_table(properties: Schema, root: Schema, defaults: dict[str, object] | None) -> str:
    columns = ["key", "type", *(["default"] if defaults is not None else [])]
    described = any(_resolve(node, root).get("description")
                    for node in properties.values() if node is not False)
    columns += ["description"] if described else []
    header = "| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns) + "\n"
    rows = []
    for name in sorted(properties):
        node = properties[name]
        if node is False:
            continue  # a key the loader refuses in this place
        resolved = _resolve(node, root)
        description = _cell(str(resolved.get("description", "")))
        cells = [f"`{name}`", _cell(_type(node, root))]
        if defaults is not None:
            default = defaults.get(name, resolved.get("default"))
            if isinstance(default, tuple):
                default = list(default)
            shown = "" if default is None or default == {} else json.dumps(default)
            cells.append(f"`{_cell(shown)}`" if shown else "")
        if described:
            cells.append(description)
        rows.append("| " + " | ".join(cells) + " |\n")
    if not rows:
        raise ValueError("the schema lists no keys for this table")
    return header + "".join(rows)


def _scenario_schema() -> Schema:
    from sipresponder.scenario.schema import scenario_schema

    return scenario_schema()


def _settings_defaults() -> dict[str, object]:
    from dataclasses import asdict

    from sipresponder.scenario.model import Settings

    return asdict(Settings())


def _checks_defaults() -> dict[str, object]:
    from sipresponder.uas.validation import CHECKS

    return {name: info.default for name, info in CHECKS.items()}


def _table_of(*path: str,
              defaults: Callable[[], dict[str, object]] | None = None) -> Callable[[], str]:
    def make() -> str:
        root = _scenario_schema()
        node: Schema = root
        for step in path:
            node = _resolve(node, root)
            node = node["items"] if step == "[]" else node["properties"][step]
        return _key_table(_resolve(node, root)["properties"], root,
                          None if defaults is None else defaults())

    return make


def openapi_table() -> str:
    """Every path and method of the admin API with its summary, from the OpenAPI document."""
    from sipresponder.ops.admin import OPENAPI

    rows = []
    for path, operations in OPENAPI["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            codes = ", ".join(sorted(operation["responses"]))
            rows.append(
                f"| `{method.upper()} {path}` | {_cell(operation.get('summary', ''))} "
                f"| {', '.join(f'`{p}`' for p in params)} | {codes} |\n")
    if not rows:
        raise ValueError("the OpenAPI document lists no operations")
    return ("| endpoint | what | query parameters | answers |\n| --- | --- | --- | --- |\n"
            + "".join(rows))


TABLES: dict[str, Callable[[], str]] = {
    "rule-keys": _table_of("rule", "[]"),
    "match-keys": _table_of("rule", "[]", "match"),
    "default-keys": _table_of("default"),
    "settings-keys": _table_of("settings", defaults=_settings_defaults),
    "checks-keys": _table_of("settings", "checks", defaults=_checks_defaults),
    "auth-keys": _table_of("auth"),
    "admin-api": openapi_table,
}


def expand(markdown: str) -> str:
    """The page's markdown with every marker replaced by its table."""
    def table(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TABLES:
            raise ValueError(f"<!-- generated: {name} -->: no such table; "
                             f"known: {', '.join(sorted(TABLES))}")
        return TABLES[name]()

    return MARKER.sub(table, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return expand(markdown)
