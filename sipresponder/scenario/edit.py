"""Edit one ``[[rule]]`` of a scenario's TOML text by name (the admin API's rule
endpoints): replace it, add it (first, last, before or after another), move it,
delete it.

The result is TOML text that the caller loads through the loader like any scenario, so
an edited scenario is validated exactly as a whole one is. The rest of the file is kept
as written (comments, order, layout): only the edited rule's block changes. Where the
text does not lend itself to that (a rule written as an inline array, a multi-line string
holding a line that looks like a table header), the whole scenario is written out anew
from its parsed form instead, which is correct but drops comments; every edit is checked
by parsing the result back and comparing it with the intended structure.
"""

from __future__ import annotations

import copy
import datetime
import json
import re
import tomllib
from typing import Any

from .nesting import TooDeep, check_toml_depth

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A table header line: [name] or [[name]], name a dotted key of bare or quoted parts.
# The name keeps its spaces (stripped per part after): spaces both inside an optional
# run and a lazy name backtracked in quadratic time on long lines (issue 18).
_HEADER = re.compile(r"[ \t]*\[(\[)?([^\[\]#\n]*)\](\])?[ \t]*(?:#.*)?\r?\n?")


class RuleNotFound(KeyError):
    """No ``[[rule]]`` has this name."""


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped; astral
    # characters stay literal (TOML refuses the surrogate pairs of JSON's \u escapes).
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: object) -> str:
    """One value as TOML, tables inline (a scenario holds nothing else tomllib gives)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _rule_block(rule: dict[str, Any]) -> str:
    return "[[rule]]\n" + "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in rule.items())


def dump_scenario(doc: dict[str, Any]) -> str:
    """A whole scenario as TOML: top-level keys, then one section per table, then the
    rules in order (the loader reads tables in any order; rules keep theirs)."""
    out = [f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items()
           if not isinstance(v, dict) and k != "rule"]
    for key, value in doc.items():
        if isinstance(value, dict):
            out.append(f"\n[{toml_key(key)}]\n")
            out += [f"{toml_key(k)} = {toml_value(v)}\n" for k, v in value.items()]
    rules = doc.get("rule")
    if isinstance(rules, list):
        for rule in rules:
            out.append("\n" + _rule_block(rule))
    elif rules is not None:
        out.append(f"rule = {toml_value(rules)}\n")
    return "".join(out).lstrip("\n")


def parse_rule_body(body: str, name: str) -> dict[str, Any]:
    """The rule a request body describes: the keys of one ``[[rule]]`` table as TOML
    (``code = 486``, ``match = { user = "bob" }``, subtables such as ``[match]`` too).
    Its ``name`` is the one in the URL. ValueError says what is wrong."""
    try:
        check_toml_depth(body)  # before tomllib, which recurses on nesting
        doc = tomllib.loads(body)
    except TooDeep as exc:
        raise ValueError(f"rule {name!r}: the body is {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"rule {name!r}: the body is not TOML: {exc}") from None
    rules = doc.get("rule")
    if set(doc) == {"rule"} and isinstance(rules, list) and len(rules) == 1:
        doc = rules[0]  # a body written as a one-rule scenario, [[rule]] header and all
    if not doc:
        raise ValueError(f"rule {name!r}: the body is empty; send the rule's keys as TOML, "
                         "e.g. code = 486")
    given = doc.setdefault("name", name)
    if given != name:
        raise ValueError(f"rule {name!r}: the body names it {given!r}; the URL's name and "
                         "the body's must agree")
    # name first, as people write it
    return {"name": name, **{k: v for k, v in doc.items() if k != "name"}}


def _lines_and_blocks(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The text's lines and the (start, end) line ranges of its ``[[rule]]`` blocks: from
    the header to the next header that is not one of the rule's own subtables."""
    lines = text.splitlines(keepends=True)
    blocks: list[tuple[int, int]] = []
    start: int | None = None
    for number, line in enumerate(lines):
        header = _HEADER.fullmatch(line)
        if header is None:
            continue
        name = ".".join(part.strip(" \t") for part in header.group(2).split("."))
        is_array = header.group(1) is not None
        if name.startswith("rule.") and start is not None:
            continue  # [rule.match] and the like belong to the rule above
        if start is not None:
            blocks.append((start, number))
            start = None
        if is_array and name == "rule":
            start = number
    if start is not None:
        blocks.append((start, len(lines)))
    return lines, blocks


def _lead(lines: list[str], start: int) -> int:
    """Where the comment lines right above line ``start`` (a table header) begin: they
    belong to that table (a blank line ends them), so they move and go with it."""
    while start > 0 and lines[start - 1].strip().startswith("#"):
        start -= 1
    return start


def _expected(doc: dict[str, Any], index: int | None, rule: dict[str, Any] | None,
              at: int | None = None) -> dict[str, Any]:
    expected = copy.deepcopy(doc)
    rules: list[dict[str, Any]] = expected.setdefault("rule", [])
    if at is not None:
        assert rule is not None
        rules.insert(at, rule)
    elif index is None:
        assert rule is not None
        rules.append(rule)
    elif rule is None:
        del rules[index]
    else:
        rules[index] = rule
    if not rules:
        del expected["rule"]
    return expected


def _checked(candidate: list[str] | None, expected: dict[str, Any]) -> str:
    """The edited text when it parses to ``expected``, else the scenario written anew."""
    if candidate is not None:
        text = "".join(candidate)
        try:
            if tomllib.loads(text) == expected:
                return text
        except tomllib.TOMLDecodeError:
            pass
    return dump_scenario(expected)


def _edited(text: str, doc: dict[str, Any], index: int | None, rule: dict[str, Any] | None,
            comments: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with rule ``index`` replaced by ``rule`` (index None: ``rule`` added last;
    rule None: rule ``index`` deleted), as text that parses to exactly that; an added
    rule comes after ``comments``."""
    expected = _expected(doc, index, rule)
    lines, blocks = _lines_and_blocks(text)
    if len(blocks) != len(doc.get("rule", [])):
        return _checked(None, expected)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    new = "" if rule is None else _rule_block(rule)
    if index is None:
        new = "".join(comments) + new
    if index is None and not blocks:
        return _checked([*lines, "\n" if lines else "", new], expected)
    start, end = blocks[-1 if index is None else index]
    # A block's last lines are often blank lines and comments that introduce the
    # table after it: they stay where they are.
    body_end = end
    while body_end > start + 1 and _filler(lines[body_end - 1]):
        body_end -= 1
    gap = [] if end < len(lines) and _filler(lines[end - 1]) else ["\n"]
    if index is None:
        edited = [*lines[:body_end], "\n", new,
                  *(gap if end < len(lines) else []), *lines[body_end:]]
    elif rule is None:
        # The rule's own comments (right above its header) go with it.
        edited = [*lines[:_lead(lines, start)],
                  *(line for line in lines[body_end:end] if line.strip()),
                  *lines[end:]]
    else:
        edited = [*lines[:start], new, *lines[body_end:]]
    return _checked(edited, expected)


def _inserted(text: str, doc: dict[str, Any], at: int, rule: dict[str, Any],
              comments: list[str]) -> str:
    """``text`` with ``rule`` (after its ``comments``) added as rule ``at`` (0-based),
    before that rule's own comments; at the end when ``at`` is the number of rules."""
    rules = doc.get("rule", [])
    if at >= len(rules):
        return _edited(text, doc, None, rule, comments)
    expected = _expected(doc, None, rule, at)
    lines, blocks = _lines_and_blocks(text)
    if len(blocks) != len(rules):
        return _checked(None, expected)
    place = _lead(lines, blocks[at][0])
    before = ["\n"] if place > 0 and lines[place - 1].strip() else []
    return _checked([*lines[:place], *before, *comments, _rule_block(rule), "\n",
                     *lines[place:]], expected)


def _filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _find(doc: dict[str, Any], name: str) -> int | None:
    rules = doc.get("rule")
    if not isinstance(rules, list):
        return None
    for index, rule in enumerate(rules):
        if isinstance(rule, dict) and rule.get("name") == name:
            return index
    return None


POSITIONS = "first, last, before:NAME or after:NAME"


def parse_position(position: str) -> tuple[str, str | None]:
    """``first``, ``last``, ``before:NAME``, ``after:NAME`` as (where, NAME or None);
    ValueError naming the position otherwise."""
    where, colon, anchor = position.partition(":")
    if (where in ("first", "last") and not colon) or (
            where in ("before", "after") and colon and anchor):
        return where, anchor or None
    raise ValueError(f"position {position!r}: expected {POSITIONS}")


def put_rule(text: str, name: str, body: str, position: str | None = None
             ) -> tuple[str, bool]:
    """The scenario text with rule ``name`` set to ``body``, and whether it was added.
    Without ``position`` an existing rule keeps its place and a new one goes after the
    last rule; with one (``first``, ``last``, ``before:NAME``, ``after:NAME``) the rule
    is put there, moved if it existed. ValueError for a body that is not a TOML table,
    names another rule, or a position that is malformed or names no rule."""
    rule = parse_rule_body(body, name)
    where, anchor = parse_position(position) if position is not None else (None, None)
    doc = tomllib.loads(text)
    index = _find(doc, name)
    if anchor is not None and _find(doc, anchor) is None:
        raise ValueError(f"position {position!r}: no rule named {anchor!r} "
                         f"(rules: {', '.join(rule_names(text)) or 'none'})")
    # Placed next to itself, a rule stays where it is.
    if where is None or anchor == name:
        return _edited(text, doc, index, rule), index is None
    comments: list[str] = []
    if index is not None:
        lines, blocks = _lines_and_blocks(text)
        if len(blocks) == len(doc["rule"]):
            start = blocks[index][0]
            comments = lines[_lead(lines, start):start]
        text = _edited(text, doc, index, None)
        doc = tomllib.loads(text)
    count = len(doc.get("rule", []))
    at = {"first": 0, "last": count}.get(where)
    if at is None:
        found = _find(doc, str(anchor))
        assert found is not None
        at = found + (where == "after")
    return _inserted(text, doc, at, rule, comments), index is None


def delete_rule(text: str, name: str) -> str:
    """The scenario text without rule ``name``; RuleNotFound when there is none."""
    doc = tomllib.loads(text)
    index = _find(doc, name)
    if index is None:
        raise RuleNotFound(name)
    return _edited(text, doc, index, None)


def rule_names(text: str) -> list[str]:
    """The names of the scenario's rules, in order (unnamed rules are left out)."""
    rules = tomllib.loads(text).get("rule")
    if not isinstance(rules, list):
        return []
    return [r["name"] for r in rules if isinstance(r, dict) and isinstance(r.get("name"), str)]
