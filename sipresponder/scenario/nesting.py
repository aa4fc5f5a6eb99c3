"""How deep untrusted TOML and JSON nest, found by one linear scan before a parser sees
them.

``tomllib`` and ``json`` parse nested arrays and tables by recursion, so text nested
thousands deep raises RecursionError (a 500 from the admin API), and ``tomllib`` builds
dotted keys (``a.a.a...= 1``) in quadratic time and memory. Both scans here skip
strings and comments the way the parsers do and stop at the first level past the
limit, so refusing costs one pass over the text and no recursion.
"""

from __future__ import annotations

MAX_TOML_DEPTH = 100  # a real scenario nests about 6 deep ([[rule]] match.sdp.codecs)
MAX_JSON_DEPTH = 64  # the admin API's bodies are flat objects of filters


class TooDeep(ValueError):
    """Text nested past the limit; str() is one line saying where."""

    def __init__(self, limit: int, line: int) -> None:
        super().__init__(f"nested deeper than {limit} levels (line {line})")
        self.line = line


def check_json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise TooDeep when arrays and objects in ``text`` nest past ``limit``."""
    depth = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i = _skip_basic(text, i + 1)
            continue
        if c in "[{":
            depth += 1
            if depth > limit:
                raise TooDeep(limit, text.count("\n", 0, i) + 1)
        elif c in "]}":
            depth -= 1
        i += 1


def check_toml_depth(text: str, limit: int = MAX_TOML_DEPTH) -> None:
    """Raise TooDeep when tables, arrays and dotted keys in ``text`` nest past ``limit``.

    Levels count as the loaded document nests: ``[a.b]`` and ``a.b = 1`` are two,
    ``[[rule]]`` two (the array and its table), and each inline array or table one
    more than the value that holds it. Only text that TOML could accept is counted
    exactly; anything else tomllib refuses once it reaches it.
    """
    # Open inline containers: (True for an inline table, its depth).
    stack: list[tuple[bool, int]] = []
    table = 0  # the depth of the table the last [header] opened
    key = True  # reading a key (a line's start, after "{" or "," in an inline table)
    dots = 0  # dots in the key being read
    line = 1
    i, n = 0, len(text)

    def deeper(depth: int) -> int:
        if depth > limit:
            raise TooDeep(limit, line)
        return depth

    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            if not stack:
                key, dots = True, 0
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "\"'":
            start = i
            i = _skip_string(text, i)
            line += text.count("\n", start, i)
            continue
        elif key and not stack and c == "[" and not text[_line_start(text, i):i].strip():
            # A [table] or [[array-of-tables]] header: one level per key, one more
            # for the array.
            i, depth = _header(text, i)
            table = deeper(depth)
            continue
        elif key and c == ".":
            dots += 1
        elif key and c == "=":
            key = False
            deeper(_base(stack, table) + dots + 1)
        elif c in "[{":
            if stack and not stack[-1][0]:
                depth = stack[-1][1] + 1  # an item of an inline array
            else:
                depth = _base(stack, table) + dots + 1  # the value of the key just read
            stack.append((c == "{", deeper(depth)))
            key, dots = c == "{", 0
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == "," and stack and stack[-1][0]:
            key, dots = True, 0
        i += 1


def _base(stack: list[tuple[bool, int]], table: int) -> int:
    return stack[-1][1] if stack else table


def _line_start(text: str, i: int) -> int:
    return text.rfind("\n", 0, i) + 1


def _header(text: str, i: int) -> tuple[int, int]:
    """The end of the header at ``i`` and the depth of the table it opens."""
    double = text.startswith("[[", i)
    i += 2 if double else 1
    depth = 2 if double else 1
    n = len(text)
    while i < n and text[i] not in "]\n":
        if text[i] in "\"'":
            i = _skip_string(text, i)
            continue
        if text[i] == ".":
            depth += 1
        i += 1
    while i < n and text[i] == "]":
        i += 1
    return i, depth


def _skip_string(text: str, i: int) -> int:
    """The index after the TOML string that starts at ``i`` (or the text's end)."""
    quote = text[i]
    if text.startswith(quote * 3, i):
        if quote == "'":
            end = text.find("'''", i + 3)
        else:
            end = i + 3
            while True:
                end = text.find('"""', end)
                if end < 0 or _unescaped(text, end):
                    break
                end += 1
        if end < 0:
            return len(text)
        end += 3
        while end < len(text) and text[end] == quote:  # up to two quotes close the text
            end += 1
        return end
    if quote == "'":
        end = text.find("'", i + 1)
        return len(text) if end < 0 else end + 1
    return _skip_basic(text, i + 1)


def _skip_basic(text: str, i: int) -> int:
    """The index after the closing quote of a one-line basic (or JSON) string whose
    text starts at ``i``; a line break ends it too (both parsers refuse one)."""
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        if c == "\n":
            return i
        i += 1
    return n


def _unescaped(text: str, i: int) -> bool:
    """Whether the quote at ``i`` is not escaped (an even run of backslashes before)."""
    run = 0
    while i - run - 1 >= 0 and text[i - run - 1] == "\\":
        run += 1
    return run % 2 == 0
