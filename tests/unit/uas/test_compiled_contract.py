"""The contract between the Python engine and the compiled path, read from the code.

The extension names the RFC 3261 8.2 checks its scan mirrors (``_speedups.CHECKS``)
and its constants; ``sipresponder/_speedups.pyi`` types it. A check the scenario
enables that the extension does not mirror switches the compiled path off for that
scenario (uas/fast.py ``unmirrored-check``), so that a new check in
uas/validation.py can never be skipped silently by the C scan.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest

from sipresponder.ops.metrics import path_counts
from sipresponder.scenario.loader import parse_scenario
from sipresponder.sip.message import Request
from sipresponder.uas import compiled, fast, validation
from sipresponder.uas.compiled import STATUS, speedups
from sipresponder.uas.engine import Engine
from sipresponder.uas.events import Source
from sipresponder.uas.validation import CheckInfo, Rejection

compiled_only = pytest.mark.skipif(speedups is None, reason=f"compiled path: {STATUS}")
STUB = Path(compiled.__file__).resolve().parents[1] / "_speedups.pyi"
SCENARIO = '[[rule]]\nname = "o"\ncode = 200\n'
SOURCE = Source("udp", ("127.0.0.1", 40000), ("127.0.0.1", 5060), 1)


def options(n: int) -> bytes:
    return (
        "OPTIONS sip:alice@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK-{n}\r\n"
        f"From: <sip:bob@127.0.0.1>;tag=f{n}\r\nTo: <sip:alice@127.0.0.1>\r\n"
        f"Call-ID: call-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _reject_everything(request: Request, scenario: object) -> Rejection | None:
    return Rejection(499, "Fake check")


@compiled_only
def test_a_check_the_extension_does_not_mirror_turns_the_compiled_path_off(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A check added to uas/validation.py that csrc/ knows nothing of: were the table
    # to answer, it would send 200 where the engine sends this check's 499.
    monkeypatch.setitem(validation.CHECKS, "fake_check",
                        CheckInfo(_reject_everything, True, "499 for every request"))
    with caplog.at_level(logging.WARNING, logger="sipresponder"):
        engine = Engine(parse_scenario(SCENARIO, "<test>"))
    assert engine.fast is None  # no table: it answers nothing
    [line] = [r.getMessage() for r in caplog.records if "compiled path off" in r.getMessage()]
    assert "fake_check" in line
    for n in range(1, 4):  # no table to ask: every request takes the engine
        engine.handle(options(n), SOURCE, 0.0)
    assert path_counts(engine.counters) == {"compiled": 0, "engine": 3,
                                            "reasons": {"unmirrored-check": 3}}
    assert engine.counters["response:499"] == 3


@compiled_only
def test_an_extension_that_stopped_mirroring_a_check_is_not_used_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # As with an extension built from older sources than the Python code.
    monkeypatch.setattr(compiled, "MIRRORED_CHECKS", compiled.MIRRORED_CHECKS - {"expires"})
    assert fast.scenario_reason(parse_scenario(SCENARIO, "<test>")) == fast.UNMIRRORED_CHECK
    # A scenario that switches the check off does not need it mirrored.
    off = parse_scenario("[settings.checks]\nexpires = false\n" + SCENARIO, "<test>")
    assert fast.scenario_reason(off) is None


@compiled_only
def test_every_check_the_extension_names_is_a_check_of_the_engine() -> None:
    assert speedups is not None
    assert set(speedups.CHECKS) <= validation.CHECKS.keys()
    # Only the merged-request memory is not mirrored (it is per-source state).
    assert validation.CHECKS.keys() - set(speedups.CHECKS) == {"loop"}
    assert compiled.unmirrored_checks(parse_scenario(SCENARIO, "<test>").switches) == []


@compiled_only
def test_the_constants_come_from_the_extension() -> None:
    assert speedups is not None
    assert fast.MISS == compiled.MISS == speedups.MISS
    assert compiled.MAX_TALLY == speedups.MAX_TALLY


def _stub_names() -> tuple[set[str], set[str]]:
    """The module-level names and the Table methods the stub declares."""
    tree = ast.parse(STUB.read_text())
    names: set[str] = set()
    methods: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            if node.name == "Table":
                methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
    return names, methods


@compiled_only
def test_the_stub_declares_what_the_extension_has() -> None:
    assert speedups is not None
    names, methods = _stub_names()
    public = {n for n in dir(speedups) if not n.startswith("_")}
    if not speedups.HAVE_MMSG:
        names.discard("serve_udp")
    assert names == public
    table = {n for n in dir(speedups.Table) if not n.startswith("_")}
    assert methods - {"__init__"} == table


MIRROR_NOTE = re.compile(r"Mirrored in C by ``(\w+)`` \(csrc/(\w+\.h)")


def test_each_mirror_note_names_a_c_function_that_exists() -> None:
    """The one-line notes in the Python docstrings ("Mirrored in C by ``f``
    (csrc/x.h)") name a function defined in that header: a renamed or removed C
    function cannot leave a stale note behind."""
    package = STUB.parent
    notes: list[tuple[str, str, str]] = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node) or ""
                notes += [(node.name, c, h) for c, h in MIRROR_NOTE.findall(doc)]
    assert len(notes) >= 20, notes
    for python, c_name, header in notes:
        text = (package / "csrc" / header).read_text()
        assert re.search(rf"^static [^;]*\b{c_name}\(", text, re.MULTILINE), (python, c_name)
