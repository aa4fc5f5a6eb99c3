""".ci/run, read as text: what a slip in it would let CI pass unseen.

- the console's JavaScript is linted before the tests;
- the pure-Python path has its own pass, and its marker expression names only markers
  pytest knows (an unknown name in ``-m "not NAME"`` deselects nothing, silently);
- no step's failure is hidden by a later step's success (``set -e`` ignores a failure
  before the last ``&&`` of a list);
- every Debian package a test's ``require_binary`` names is installed (with CI=true
  a missing peer fails its test).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
STEPS = [line.strip() for line in CI_RUN.splitlines()
         if line.strip() and not line.lstrip().startswith("#")]
PURE = "SIPRESPONDER_NO_EXTENSIONS=1"


def markers() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared: list[str] = config["tool"]["pytest"]["ini_options"]["markers"]
    return {line.split(":", 1)[0].strip() for line in declared}


def step_index(needle: str) -> int:
    found = [i for i, line in enumerate(STEPS) if needle in line]
    assert found, f".ci/run has no step with {needle!r}"
    return found[0]


def test_eslint_runs_before_the_tests() -> None:
    assert step_index("npm ci") < step_index("npm run lint") < step_index("python -m pytest")


def test_the_pure_path_is_a_pass_of_its_own_after_the_readme_command() -> None:
    pure = [line for line in STEPS if line.startswith(f"{PURE} python -m pytest")]
    assert len(pure) == 1, pure
    assert STEPS.index(pure[0]) > step_index("pip install -e")
    args = shlex.split(pure[0])
    expression = args[args.index("-m", 3) + 1]
    names = set(re.findall(r"[A-Za-z_]\w*", expression)) - {"not", "and", "or"}
    assert names, expression
    assert names <= markers(), f"unknown markers in {expression!r}: {names - markers()}"
    # the pass replaced pytest running pytest
    assert not (ROOT / "tests" / "test_pure_python_path.py").exists()


def test_no_failure_is_hidden_by_a_later_step() -> None:
    lists = [line for line in STEPS if "&&" in line and not line.startswith(("if ", "echo "))]
    hidden = [line for line in lists if not line.endswith(("|| exit", "|| exit 1"))]
    assert hidden == [], "end these with `|| exit`: " + " | ".join(hidden)


# require_binary("linphonec", "apt-get install linphone-cli"): a test that names the
# Debian package of its peer.
_APT_HINT = re.compile(r"""require_binary\(\s*"[^"]+",\s*(?:install=)?"apt-get install ([\w.+-]+)"\)""")


def installed_packages() -> set[str]:
    """The packages .ci/run's `apt-get install` steps name."""
    packages: set[str] = set()
    for line in STEPS:
        args = shlex.split(line.split("||")[0])
        if "apt-get" in args and "install" in args:
            rest = args[args.index("install") + 1:]
            packages.update(arg for arg in rest if not arg.startswith("-"))
    return packages


def test_every_peer_package_a_test_names_is_installed() -> None:
    """With CI=true a missing peer fails its test: .ci/run must install each package
    that a test's require_binary hint names."""
    named = {match[1]: path.relative_to(ROOT).as_posix()
             for path in sorted((ROOT / "tests").rglob("*.py"))
             for match in _APT_HINT.finditer(path.read_text(encoding="utf-8"))}
    assert "linphone-cli" in named and "baresip-core" in named, named
    missing = {package: path for package, path in named.items()
               if package not in installed_packages()}
    assert missing == {}, f".ci/run installs none of these (package: test): {missing}"
