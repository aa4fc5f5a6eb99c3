"""The documentation: the site builds, the examples run, the reference cannot drift.

``mkdocs build --strict`` (mkdocs.yml) fails on a broken link or #anchor, a missing
included file or a marker naming no generated table; it runs here so that the
README's test command covers the site. Every TOML block of the pages and the README
must load; every Python block must be run by one of the tests below (a block marked
``<!-- docs-test: pytest -->`` is a test module, run under pytest with stand-in
clients; the WebSocket client runs against a wss: responder); the README's 30-second
example runs as written, on a port the OS picks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from sipresponder.scenario.loader import parse_scenario

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.glob("*.md"))
SETUP_COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install '.[fast]' "
    "&& sipresponder serve",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test,fast]' "
    "&& ruff check . && mypy && python -m pytest -q",
)
# A fenced block, with the marker line that may precede it.
BLOCK = re.compile(r"(?:^<!-- docs-test: (?P<mark>[a-z-]+) -->\n)?^```(?P<lang>\w*)\n"
                   r"(?P<code>.*?)^```$", re.S | re.M)
MARKS = {"pytest"}
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    lang: str
    mark: str | None
    code: str

    def __str__(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def blocks(lang: str) -> list[Block]:
    found = []
    for path in [README, *PAGES]:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            if match.group("lang") == lang:
                line = text.count("\n", 0, match.start("code"))
                found.append(Block(path, line, lang, match.group("mark"), match.group("code")))
    return found


def generated() -> ModuleType:
    """docs/hooks/generated.py, the MkDocs hook, imported as a module."""
    spec = importlib.util.spec_from_file_location("docs_generated",
                                                  DOCS / "hooks" / "generated.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension (and so MkDocs) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = BLOCK.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.*)$", text, re.M)}


# --- the site -----------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_the_site_builds_strict_and_offline(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or \
            importlib.util.find_spec("material") is None:
        message = "mkdocs and mkdocs-material are not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                          str(site)], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    pages = {path: path.read_text() for path in site.rglob("*.html")}
    assert not [p for p, html in pages.items() if "fonts.googleapis" in html], \
        "a page loads Google Fonts: theme.font must stay false"
    assert not [p for p, html in pages.items() if "<!-- generated:" in html]
    reference = (site / "scenarios" / "index.html").read_text()
    assert "ring_timeout" in reference.split("Every key, from the schema", 1)[1]
    architecture = (site / "architecture" / "index.html").read_text()
    assert "tests/unit/test_layers.py" in architecture  # ARCHITECTURE.md, included


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    assert {p.name for p in PAGES} == set(re.findall(r": (\S+\.md)$", nav, re.M))


# --- the README ---------------------------------------------------------------------

def test_the_readme_is_short_and_keeps_both_setup_commands() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    shell = [b.code.strip() for b in blocks("sh") if b.file == README]
    for command in SETUP_COMMANDS:
        assert command in shell, f"the README lost its set-up command: {command}"
        assert any(command in b.code for b in blocks("sh") if b.file.parent == DOCS)


def test_the_readmes_links_resolve() -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).exists(), f"README links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(ROOT / path), f"README: no #{anchor} in {path}"


@pytest.mark.timeout(120)
async def test_the_readmes_30_second_example_runs_as_written(tmp_path: Path) -> None:
    text = README.read_text()
    section = text.split("## In 30 seconds", 1)[1].split("\n## ", 1)[0]
    [toml] = [b for b in blocks("toml") if b.file == README and b.code in section]
    (tmp_path / "my.toml").write_text(toml.code)
    [shell] = [b for b in blocks("sh") if b.file == README and b.code in section]
    commands = [line.split("  #", 1)[0].strip() for line in shell.code.splitlines()]
    python = f"{shlex.quote(sys.executable)} -m sipresponder "
    server: asyncio.subprocess.Process | None = None
    port = ""
    try:
        for command in commands:
            command = command.replace("sipresponder ", python, 1)
            if command.endswith("&"):
                # exec, not a shell: terminate() must reach the server itself
                argv = shlex.split(command.removesuffix("&")
                                   .replace("127.0.0.1:5060", "127.0.0.1:0"))
                server = await asyncio.create_subprocess_exec(
                    *argv, cwd=tmp_path, env=ENV, stderr=asyncio.subprocess.PIPE)
                port = await listening_port(server)
                continue
            run = await asyncio.create_subprocess_shell(
                command.replace("127.0.0.1:5060", f"127.0.0.1:{port}"), cwd=tmp_path,
                env=ENV, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            output, _ = await asyncio.wait_for(run.communicate(), 60)
            assert run.returncode == 0, f"{command}: {output.decode()}"
    finally:
        if server is not None and server.returncode is None:
            server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                server.kill()
                await server.wait()
    assert server is not None and port


async def listening_port(server: asyncio.subprocess.Process) -> str:
    """The UDP port `serve` logs once it listens (it was asked for port 0)."""
    assert server.stderr is not None
    seen: list[str] = []
    while True:
        try:
            line = (await asyncio.wait_for(server.stderr.readline(), 30)).decode()
        except TimeoutError:
            raise AssertionError(f"serve did not say where it listens: {''.join(seen)}") from None
        assert line, f"serve ended before it listened: {''.join(seen)}"
        seen.append(line)
        found = re.search(r"listening on udp:127\.0\.0\.1:(\d+)", line)
        if found:
            return found.group(1)


# --- the examples -------------------------------------------------------------------

@pytest.mark.parametrize("block", blocks("toml"), ids=str)
def test_every_toml_block_loads(block: Block) -> None:
    parse_scenario(block.code, path=str(block), base_dir=block.file.parent)


def test_every_python_block_is_run_by_a_test() -> None:
    unrun = [str(b) for b in blocks("python")
             if b.mark not in MARKS and b != websocket_block()]
    assert not unrun, f"Python blocks no test runs (mark them, or run them here): {unrun}"
    unknown = [str(b) for lang in ("python", "toml", "sh")
               for b in blocks(lang) if b.mark is not None and b.mark not in MARKS]
    assert not unknown, f"unknown docs-test marks: {unknown}"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("block", [b for b in blocks("python") if b.mark == "pytest"], ids=str)
def test_python_test_snippets_pass(block: Block, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(Path(__file__).with_name("snippet_conftest.py"), tmp_path / "conftest.py")
    # the file the snippet's @pytest.mark.sip_scenario("busy.toml") names
    (tmp_path / "busy.toml").write_text("[default]\ncode = 486\n")
    (tmp_path / "test_snippet.py").write_text(block.code)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_snippet.py"], cwd=tmp_path, env=ENV, capture_output=True,
                         text=True, timeout=150)
    assert run.returncode == 0, f"{block}:\n{run.stdout}{run.stderr}"
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout


def websocket_block() -> Block:
    [block] = [b for b in blocks("python") if "websockets" in b.code]
    return block


@pytest.mark.timeout(120)
async def test_the_websocket_client_snippet_runs(tmp_path: Path) -> None:
    pytest.importorskip("websockets")
    pytest.importorskip("cryptography")
    from sipresponder import Responder, TLSOptions

    block = websocket_block()
    async with Responder(listen=["wss:127.0.0.1:0"],
                         tls=TLSOptions(directory=tmp_path)) as responder:
        code = (block.code.replace("wss://127.0.0.1:8443/", responder.ws_url("wss"))
                .replace("/home/me/.cache/sipresponder/selfsigned-cert.pem",
                         str(responder.tls_certificate)))
        assert code != block.code
        run = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, env=ENV, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 0, output.decode()
    assert output.decode().startswith("SIP/2.0 200 OK"), output.decode()


# --- the generated reference --------------------------------------------------------

def test_every_marker_names_a_table_and_every_table_is_used() -> None:
    tables = generated().TABLES
    used = {m for p in PAGES for m in re.findall(r"^<!-- generated: ([a-z0-9-]+) -->$",
                                                 p.read_text(), re.M)}
    assert used == set(tables)


def test_a_marker_naming_no_table_fails_the_build() -> None:
    with pytest.raises(ValueError, match="no such table"):
        generated().expand("<!-- generated: no-such-table -->\n")


def test_the_generated_tables_list_every_key_the_loader_knows() -> None:
    from sipresponder.scenario.model import Settings
    from sipresponder.scenario.rules import MATCH_KEYS, RULE_KEYS
    from sipresponder.uas.validation import CHECKS

    tables = generated().TABLES
    for table, keys in (("rule-keys", RULE_KEYS), ("match-keys", MATCH_KEYS),
                        ("settings-keys", Settings.__dataclass_fields__),
                        ("checks-keys", CHECKS)):
        text = tables[table]()
        assert not [k for k in keys if f"| `{k}` |" not in text], table


def test_the_written_reference_names_every_key() -> None:
    """The prose above the generated tables explains every key the schema has: a key
    added to the loader (and so to the schema) without a word here fails."""
    schema = __import__("sipresponder.scenario.schema", fromlist=["x"]).scenario_schema()
    written = (DOCS / "scenarios.md").read_text().split("## Every key, from the schema")[0]
    rule = schema["properties"]["rule"]["items"]["properties"]
    keys = {*rule, *rule["match"]["properties"], *schema["properties"]["settings"]["properties"],
            *schema["properties"]["settings"]["properties"]["checks"]["properties"],
            *schema["properties"]["auth"]["properties"]}
    assert not sorted(k for k in keys if f"`{k}`" not in written and f"{k} " not in written)


def test_the_written_admin_table_names_every_endpoint() -> None:
    from sipresponder.ops.admin import OPENAPI

    written = (DOCS / "admin-api.md").read_text().split("## Every endpoint")[0]
    missing = [path for path in OPENAPI["paths"]
               if f" {path}`" not in written and not path.startswith("/console")]
    assert not missing, f"docs/admin-api.md does not describe {missing}"


@pytest.mark.parametrize("block", blocks("console"), ids=str)
def test_console_transcripts_print_what_they_show(block: Block) -> None:
    """A ```console block is a transcript: each `$ command` prints the lines after it."""
    if importlib.util.find_spec("sipresponder._speedups") is None:
        pytest.skip("the transcripts show the compiled request path, not built here")
    # each command sets SIPRESPONDER_NO_EXTENSIONS itself where it means to
    env = {k: v for k, v in ENV.items() if k != "SIPRESPONDER_NO_EXTENSIONS"}
    env["COLUMNS"] = "200"  # argparse wraps --version's line to the terminal's width
    steps = re.split(r"^\$ ", block.code, flags=re.M)[1:]
    assert steps, f"{block}: no `$ ` command"
    for step in steps:
        command, _, expected = step.partition("\n")
        run = subprocess.run(["bash", "-c", command.replace(
            "sipresponder ", f"{shlex.quote(sys.executable)} -m sipresponder ", 1)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert run.stdout == expected, f"{block}: {command}"


def test_the_scenarios_the_commands_name_pass_check() -> None:
    """`sipresponder check` lines and the `--scenario` of `serve` lines in the pages'
    shell blocks, run from the repository root as the pages say."""
    named = set()
    for block in blocks("sh"):
        if block.file.parent != DOCS:
            continue  # the README's own example runs in its test above
        named |= set(re.findall(r"^sipresponder check (\S+)", block.code, re.M))
        named |= set(re.findall(r"sipresponder serve --scenario (\S+)", block.code))
    assert {"scenarios/ci-test-double.toml", "client-torture"} <= named
    run = subprocess.run([sys.executable, "-m", "sipresponder", "check", *sorted(named)],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def written_defaults(header: str) -> dict[str, str]:
    """Key -> default cell of the scenario reference's table under ``header`` (a row
    naming several keys, ``a``, ``b`` | 1, 2, gives one value to each)."""
    text = (DOCS / "scenarios.md").read_text().split(f"\n{header}\n", 1)[1]
    table = text.split("\n\n", 1)[0].splitlines()[1:]  # after the --- row
    found = {}
    for row in table:
        keys_cell, default_cell = (cell.strip() for cell in row.strip("|").split(" | ")[:2])
        keys = re.findall(r"`(\w+)`", keys_cell)
        values = default_cell.split(", ") if len(keys) > 1 else [default_cell]
        if len(values) == len(keys):
            found.update(zip(keys, values, strict=True))
    return found


def test_the_written_defaults_are_the_loaders() -> None:
    """The hand-written [settings] and [settings.checks] tables state the defaults the
    code has (the generated tables below them cannot be wrong; these could drift)."""
    import tomllib
    from dataclasses import asdict

    from sipresponder.scenario.model import Settings
    from sipresponder.uas.validation import CHECKS

    settings = asdict(Settings())
    written = written_defaults("| key | default | meaning |")
    compared = 0
    for key, cell in written.items():
        try:
            value = tomllib.loads(f"v = {cell.strip('`')}")["v"]
        except tomllib.TOMLDecodeError:
            continue  # prose ("SDP, text/plain, ..."), not a value
        if key in settings:
            expected = settings[key]
            assert value == (list(expected) if isinstance(expected, tuple) else expected), key
            compared += 1
    assert compared >= 20
    checks = written_defaults("| check | default | answer |")
    assert {k: v == "on" for k, v in checks.items()} == \
        {name: info.default for name, info in CHECKS.items()}
