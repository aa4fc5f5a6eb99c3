"""The package's rings, checked from the source: no import cycles, and no module
importing from a ring above its own (ARCHITECTURE.md draws the same picture).

Every ``import`` counts, at module level or inside a function, and those under
``if TYPE_CHECKING:`` too: a type-only import still couples the two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sipresponder"

# Lowest ring first. A module may import from its own ring and the rings below.
RINGS: list[tuple[str, tuple[str, ...]]] = [
    ("codec", ("sipresponder.sip", "sipresponder.media")),
    # The sans-I/O core and the configuration it runs: scenario model and loader,
    # authentication, the UAS pipeline. Inside it, the module graph is acyclic.
    ("core", ("sipresponder.scenario", "sipresponder.auth", "sipresponder.uas",
              "sipresponder.uac", "sipresponder.call")),
    ("adapters", ("sipresponder.transport",)),
    # What crossed the wire: production --admin reads it as much as tests do, so it
    # sits below both (nothing in the core or the adapters imports it).
    ("journal", ("sipresponder.journal",)),
    ("testing API", ("sipresponder.testing",)),
    ("operations", ("sipresponder.ops", "sipresponder.api", "sipresponder.pytest_plugin",
                    "sipresponder.__main__")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """The sipresponder modules ``path`` imports (``from .x import y`` names module
    ``x.y`` when that is a module, else ``x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sipresponder"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("sipresponder"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in MODULES else target)
    return {m for m in out if m != name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def ring_of(module: str) -> int:
    best, best_len = -1, -1
    for index, (_, prefixes) in enumerate(RINGS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def test_every_module_has_a_ring() -> None:
    unplaced = sorted(m for m in MODULES if m != "sipresponder" and ring_of(m) < 0)
    assert not unplaced, f"modules in no ring (add them to RINGS): {unplaced}"


def test_no_module_imports_from_a_ring_above() -> None:
    upward = []
    for module, targets in sorted(GRAPH.items()):
        if module == "sipresponder":
            continue  # the package re-exports the public API, lazily
        for target in sorted(targets):
            if target != "sipresponder" and ring_of(target) > ring_of(module):
                upward.append(f"{module} ({RINGS[ring_of(module)][0]}) imports {target} "
                              f"({RINGS[ring_of(target)][0]})")
    assert not upward, "imports against the rings:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    """Depth-first search over the import graph; report each cycle found."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(GRAPH.get(module, ())):
            if target == "sipresponder":
                continue
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target):], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["sipresponder.sip.message", "sipresponder.uas.engine"])
def test_the_graph_sees_imports(module: str) -> None:
    # A guard on the checker itself: these modules do import from the codec.
    assert any(t.startswith("sipresponder.sip.") for t in GRAPH[module])


def test_no_module_shares_its_name_with_a_folder() -> None:
    # ops/console.py beside the ops/console/ asset folder read as one thing and
    # imported as the other: a module and a folder beside it take different names.
    clashes = sorted(str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py")
                     if p.with_suffix("").is_dir())
    assert not clashes, f"modules named like the folder beside them: {clashes}"
