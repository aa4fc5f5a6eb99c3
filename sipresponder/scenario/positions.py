"""Where in a scenario's TOML text a rule's table is, and where a ScenarioError points.

For the console's editor and rule list (``POST /api/scenario/check``, ``GET /api/rules``):
tomllib gives a syntax error's line and column in its message; a semantic error names
the section (``rule 'busy' (#2)``, ``[settings]``) and the field, so its line is that
section's table header, or the line of the field's key inside it when there is one.
A plain line scan, not a second TOML parser: lines inside multi-line strings are
skipped, and whatever cannot be found is None, never a guess.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache

from .loader import ScenarioError

_AT = re.compile(r"\(at line (\d+), column (\d+)\)")
# No two parts of it can take the same character (the name's spaces are stripped after):
# the lazy name between optional spaces took cubic time on "[" and spaces (issue 18).
_HEADER = re.compile(r"^\s*(\[\[?)([^\[\]#]+)(\]\]?)\s*(#.*)?$")
_RULE_WHERE = re.compile(r"^rule (?:.* )?\(?#(\d+)\)?$")
_SECTION_WHERE = re.compile(r"^\[(\w+)\]$")


@dataclass(frozen=True, slots=True)
class Table:
    """One table header: its 1-based line, its dotted name, [[array]] or [table]."""

    line: int
    name: tuple[str, ...]
    array: bool


# The console places every error of a check (up to loader.MAX_ERRORS) in one text:
# the scans are kept for the last few texts rather than redone for each error.
@lru_cache(maxsize=4)
def _code_lines(text: str) -> tuple[tuple[int, str], ...]:
    """(1-based number, line) of every line not inside a multi-line string."""
    out: list[tuple[int, str]] = []
    inside: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if inside is None:
            out.append((number, line))
        for quote in ('"""', "'''"):
            if inside in (None, quote) and line.count(quote) % 2 == 1:
                inside = quote if inside is None else None
    return tuple(out)


@lru_cache(maxsize=4)
def tables(text: str) -> tuple[Table, ...]:
    """The table headers of ``text`` in order."""
    found = []
    for number, line in _code_lines(text):
        match = _HEADER.match(line)
        if match and len(match[1]) == len(match[3]):
            name = tuple(part.strip().strip("\"'") for part in match[2].split("."))
            found.append(Table(number, name, len(match[1]) == 2))
    return tuple(found)


def _section(text: str, start: Table) -> tuple[int, int]:
    """The lines (first, last) of ``start``'s table with its sub-tables."""
    heads = tables(text)
    last = _line_count(text)
    # headers are in line order: start's is found by bisection, not compared with each
    for table in heads[bisect_right(heads, start.line, key=lambda t: t.line):]:
        if table.name[0] != start.name[0] or table.name == start.name:
            last = table.line - 1
            break
    return start.line, last


@lru_cache(maxsize=4)
def _line_count(text: str) -> int:
    return len(text.splitlines())


@lru_cache(maxsize=4)
def _rule_tables(text: str) -> tuple[Table, ...]:
    return tuple(t for t in tables(text) if t.name == ("rule",) and t.array)


def rule_tables(text: str) -> list[Table]:
    """The ``[[rule]]`` headers, rule #1 first."""
    return list(_rule_tables(text))


def section_start(text: str, where: str) -> Table | None:
    """The header of the section a ScenarioError's ``where`` names: ``rule 'x' (#2)``,
    ``rule #2``, ``[settings]``, ``[auth]``, ``[default]``."""
    rule = _RULE_WHERE.match(where)
    if rule:
        rules = _rule_tables(text)
        number = int(rule[1])
        return rules[number - 1] if 0 < number <= len(rules) else None
    section = _SECTION_WHERE.match(where)
    if section:
        for table in tables(text):
            if table.name == (section[1],) and not table.array:
                return table
    return None


def rule_text(text: str, number: int) -> tuple[int, str] | None:
    """The line of rule ``number``'s table header (0: ``[default]``) and the TOML text
    of the table with its sub-tables (``[rule.match]``, ``[[rule.choice]]``), None when
    not found. The comments right above the header are the rule's and come with it;
    those at its end are above the next table, so they are that table's."""
    start = section_start(text, "[default]" if number == 0 else f"rule #{number}")
    if start is None:
        return None
    first, last = _section(text, start)
    all_lines = text.splitlines()
    code = {n for n, _ in _code_lines(text)}
    while first > 1 and first - 1 in code and all_lines[first - 2].strip().startswith("#"):
        first -= 1
    lines = all_lines[first - 1:last]
    while len(lines) > 1 and last in code and (
            not lines[-1].strip() or lines[-1].strip().startswith("#")):
        lines.pop()
        last -= 1
    return start.line, "\n".join(lines) + "\n"


def _between(text: str, first: int, last: int) -> tuple[tuple[int, str], ...]:
    """The code lines numbered ``first`` to ``last`` (found by bisection: a big file's
    errors each look at their own section, not at every line)."""
    lines = _code_lines(text)
    start = bisect_left(lines, first, key=lambda item: item[0])
    end = bisect_right(lines, last, key=lambda item: item[0])
    return lines[start:end]


def _key_position(text: str, first: int, last: int, key: str) -> tuple[int, int] | None:
    pattern = re.compile(rf"^(\s*)(\[\[?\s*[\w.]*\b)?[\"']?{re.escape(key)}[\"']?\s*(=|[.\]])")
    for number, line in _between(text, first, last):
        match = pattern.match(line)
        if match:
            return number, len(match[1]) + 1
    return None


def _inner_key(text: str, at: tuple[int, int], last: int, key: str) -> tuple[int, int] | None:
    """The first ``key =`` at or after ``at`` up to line ``last``: a key inside an inline
    table (``match = { usr = "x" }``) or in a sub-table below its header."""
    pattern = re.compile(rf"(?<![\w-])[\"']?{re.escape(key)}[\"']?[ \t]*=")
    for number, line in _between(text, at[0], last):
        found = pattern.search(line, at[1] - 1 if number == at[0] else 0)
        if found:
            return number, found.start() + 1
    return None


def _field_position(text: str, first: int, last: int, field: str) -> tuple[int, int] | None:
    """Where the (dotted) ``field`` is between lines ``first`` and ``last``: its first
    key's line, then each inner key after it, as far as they can be found (up to a
    list index)."""
    parts = [p for p in re.split(r"[.\[\]]", field) if p]
    found = _key_position(text, first, last, parts[0]) if parts else None
    if found is None:
        return None
    for part in parts[1:]:
        if part.isdigit():
            break  # which item of a list: not told by a line scan, so not guessed
        inner = _inner_key(text, (found[0], found[1] + len(parts[0])), last, part)
        if inner is None:
            break
        found = inner
    return found


def error_position(error: ScenarioError, text: str) -> tuple[int | None, int | None]:
    """(line, column) of ``error`` in ``text``, 1-based; None where it cannot be told."""
    at = _AT.search(error.message)
    if at:
        return int(at[1]), int(at[2])
    if "(at end of document)" in error.message:
        lines = text.splitlines() or [""]
        return len(lines), len(lines[-1]) + 1
    field = error.field or None
    if not error.where:
        if field is None:
            return None, None
        last_top = next((t.line - 1 for t in tables(text)), len(text.splitlines()))
        found = _field_position(text, 1, last_top, field)
        if found is None:  # a top-level key given as a table: [name] or [[name]]
            top = re.split(r"[.\[]", field)[0]
            heads = [t for t in tables(text) if t.name[0] == top]
            return (heads[0].line, 1) if heads else (None, None)
        return found
    start = section_start(text, error.where)
    if start is None:
        return None, None
    if field is not None:
        first, last = _section(text, start)
        found = _field_position(text, first + 1, last, field)
        if found is not None:
            return found
    return start.line, 1
