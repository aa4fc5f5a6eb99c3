"""The C sources of the compiled path (sipresponder/csrc/): warning-free, split by concern.

The extension builds with ``pip install`` under the flags in pyproject.toml, tolerant
of a compiler's new warnings on a user's machine; here every warning the code is kept
clean of is an error (-Werror), with gcc and with clang where each is installed (CI
installs both). The scanner and the echo build with no Python headers at all, so that
fuzz/fuzz_scan.c can fuzz them alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "sipresponder" / "csrc"
WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wconversion", "-Werror"]
PURE = ("scan.h", "echo.h")


def compiler(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true" and name == "gcc":
            pytest.fail("CI installs gcc (.ci/run): it is missing")
        pytest.skip(f"no {name} here")
    return found


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_the_extension_compiles_with_no_warning(cc: str) -> None:
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        pytest.skip(f"no Python headers in {include} (python3-dev)")
    run = subprocess.run(
        [compiler(cc), "-fsyntax-only", "-O2", *WARNINGS, f"-I{include}",
         str(CSRC / "speedups.c")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_the_scanner_and_the_echo_need_no_python_headers(cc: str, tmp_path: Path) -> None:
    unit = tmp_path / "pure.c"
    unit.write_text("".join(f'#include "{name}"\n' for name in PURE)
                    + "int main(void) { init_classes(); return 0; }\n")
    run = subprocess.run(
        [compiler(cc), "-fsyntax-only", *WARNINGS, "-Wno-unused-function", f"-I{CSRC}",
         str(unit)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-4000:]
    for name in PURE:
        assert "#include <Python.h>" not in (CSRC / name).read_text(), name


def test_no_c_file_is_over_900_lines() -> None:
    long = {p.name: n for p in CSRC.iterdir() if p.suffix in (".c", ".h")
            if (n := len(p.read_text().splitlines())) > 900}
    assert not long, f"split these by concern: {long}"
