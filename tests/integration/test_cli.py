"""The response-code registry and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sipresponder.ops.cli import main
from sipresponder.sip.codes import CODES, HEADER_FIELDS, reason_for

# Every code on the reference page the project grew from (shared/seed/sip-responses.txt),
# with its slip corrected: the page's "308 Alternative Service" is 380 (RFC 3261 21.3.5).
SEED_CODES = [100, 180, 181, 182, 183, 199, 200, 202, 204, 300, 301, 302, 305, 380, 400, 401,
              402, 403, 404, 405, 406, 407, 408, 410, 413, 414, 415, 416, 420, 421, 423, 480,
              481, 482, 483, 484, 485, 486, 487, 488, 491, 493, 500, 501, 502, 503, 504, 505,
              513, 600, 603, 604, 606]


def test_seed_codes_are_all_in_the_registry() -> None:
    assert set(SEED_CODES) <= set(CODES)
    assert 308 not in CODES
    assert CODES[380].reason == "Alternative Service"
    assert CODES[183].reason == "Session Progress"


@pytest.mark.parametrize(("code", "reason"), [
    (401, "Unauthorized"), (422, "Session Interval Too Small"), (494, "Security Agreement Required"),
    (481, "Call/Transaction Does Not Exist"), (604, "Does Not Exist Anywhere"), (608, "Rejected"),
])
def test_reason_phrases(code: int, reason: str) -> None:
    assert reason_for(code) == reason


def test_codes_outside_the_registry_get_a_class_reason() -> None:
    assert reason_for(299) == "Success"
    assert reason_for(699) == "Global Failure"


def test_every_requirement_names_a_known_header_field() -> None:
    for entry in CODES.values():
        for req in entry.requires:
            assert all(h in HEADER_FIELDS for h in req.headers), entry.code


def test_check_reports_one_line_naming_file_rule_and_field(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[rule]]\nname = "moved"\nmatch = { user = "x" }\ncode = 302\n')
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"error: {bad}:1:1: rule 'moved' (#1): field 'contacts': ")


def test_check_reports_every_error_of_a_file_with_its_place(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "typos.toml"
    bad.write_text('[settings]\nsever = "x"\n\n[[rule]]\nname = "a"\ncdoe = 486\n'
                   'match = { method = "INVITE", usr = "bob" }\n')
    assert main(["check", str(bad)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"error: {bad}:2:1: [settings]: field 'sever': unknown setting (did you mean 'server'?)",
        f"error: {bad}:6:1: rule 'a' (#1): field 'cdoe': unknown key (did you mean 'code'?)",
        f"error: {bad}:7:30: rule 'a' (#1): field 'match.usr': unknown condition "
        "(did you mean 'user'?)",
    ]


def test_check_warns_of_a_rule_that_can_never_match(tmp_path: Path, capsys) -> None:
    path = tmp_path / "dead.toml"
    path.write_text('[[rule]]\nname = "catch-all"\ncode = 200\n\n'
                    '[[rule]]\nname = "carol"\nmatch = { user = "carol" }\ncode = 480\n')
    assert main(["check", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: OK (2 rules, 1 warning); ")
    assert err == (f"warning: {path}:5:1: rule 'carol' (#2) can never match: rule 'catch-all' "
                   "(#1) matches everything it would\n")
    assert main(["check", "--strict", str(path)]) == 1


def test_check_names_the_bundled_scenarios_for_an_unknown_name(tmp_path: Path, monkeypatch,
                                                               capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["check", "client-tortur"]) == 1
    assert capsys.readouterr().err == (
        "error: client-tortur: cannot read: No such file or directory; nor is it a bundled "
        "scenario (did you mean 'client-torture'? bundled: ci-test-double, client-torture, "
        "default, far-end, media-lab, pbx-lab, redirects, registrar)\n")


def test_serve_names_the_bundled_scenarios_for_an_unknown_name(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sipresponder", "serve", "--scenario",
                           "client-tortur", "--listen", "udp:127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'client-torture'? bundled: ci-test-double, " in proc.stderr


def test_bare_sipresponder_prints_the_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "sipresponder"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stdout.startswith("usage: sipresponder ")
    assert "{serve,ping,verify,pcap,check,codes,schema}" in proc.stdout
    assert "answer SIP requests" in proc.stdout  # the subcommands' help, not one line
    assert proc.stderr == ""


def test_check_accepts_a_good_file(capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    assert main(["check", str(root / "scenarios" / "default.toml")]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_takes_a_bundled_scenario_by_name(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.chdir(tmp_path)  # no file of that name here: the bundled one is meant
    assert main(["check", "client-torture"]) == 0
    assert capsys.readouterr().out.startswith("client-torture: OK (")


def test_check_takes_several_files_and_names_each_result(tmp_path: Path, capsys) -> None:
    root = Path(__file__).resolve().parents[2]
    good = [str(root / "scenarios" / name) for name in ("default.toml", "redirects.toml")]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[rule]]\ncode = 9999\n")
    assert main(["check", *good]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()] == good
    assert main(["check", good[0], str(bad), good[1]]) == 1
    captured = capsys.readouterr()
    assert [line.split(":")[0] for line in captured.out.splitlines()] == good
    assert f"error: {bad}:2:1: rule #1: field 'code': " in captured.err
    assert "1 of 3 files failed" in captured.err


def test_check_says_what_allow_it_derived(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[[rule]]\nmatch = { method = "SUBSCRIBE" }\ncode = 405\n'
                    '[[rule]]\nmatch = { method = "INVITE" }\ncode = 200\n')
    assert main(["check", str(path)]) == 0
    assert "derived Allow: INVITE, ACK, CANCEL, SUBSCRIBE" in capsys.readouterr().out


def test_codes_command_lists_every_code(capsys) -> None:
    assert main(["codes"]) == 0
    out = capsys.readouterr().out
    for code in CODES:
        assert f"\n{code} " in "\n" + out
    assert "Contact (MUST, RFC 3261 21.3; field contacts)" in out


def test_serve_refuses_a_bad_listen_address() -> None:
    proc = subprocess.run([sys.executable, "-m", "sipresponder", "serve", "--listen", "sctp:1.2.3.4:5"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "expected PROTO:HOST:PORT with PROTO udp, tcp, tls, ws, wss" in proc.stderr


def test_json_log_lines_carry_the_event_fields() -> None:
    import json
    import logging

    from sipresponder.ops.logformat import JSONFormatter
    from sipresponder.scenario.loader import load_scenario
    from sipresponder.uas.engine import Engine
    from sipresponder.uas.events import Source
    from tests.sipclient import make_request

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("sipresponder")
    requests = logging.getLogger("sipresponder.requests")  # per-request lines go there
    handler = Keep()
    logger.addHandler(handler)
    old, old_requests = logger.level, requests.level
    logger.setLevel(logging.INFO)
    requests.setLevel(logging.INFO)
    try:
        root = Path(__file__).resolve().parents[2]
        engine = Engine(load_scenario(root / "scenarios" / "default.toml"))
        source = Source("udp", ("127.0.0.1", 4000), ("127.0.0.1", 5060), 1)
        engine.handle(make_request("INVITE", "sip:486@x", call_id="json-1"), source, 0.0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
        requests.setLevel(old_requests)
    lines = [json.loads(JSONFormatter().format(r)) for r in records]
    assert [line["event"] for line in lines] == ["request", "response"]
    assert lines[0]["method"] == "INVITE" and lines[0]["call_id"] == "json-1"
    assert lines[1]["code"] == 486 and lines[1]["remote"] == "127.0.0.1:4000"
    assert lines[1]["message"] == "send 486 Busy Here to udp:127.0.0.1:4000"


def test_codes_into_a_closed_pipe_exits_quietly() -> None:
    """`sipresponder codes | head`: the reader is gone before the table is written
    (closed before the interpreter has even started), so every write hits EPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "sipresponder", "codes"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_ctrl_c_in_ping_is_one_line_and_exit_130(monkeypatch, capsys) -> None:
    from sipresponder.ops import ping

    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(ping, "run", interrupted)
    assert main(["ping", "sip:127.0.0.1:9"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "ping: interrupted"


def test_an_unknown_serve_flag_shows_serves_usage(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sipresponder serve ")
    assert "unrecognized arguments: --no-such-flag" in err


def test_default_log_level_shows_start_up_at_info_and_keeps_requests_off() -> None:
    import logging

    from sipresponder.ops.logformat import configure_logging

    root, requests = logging.getLogger("sipresponder"), logging.getLogger("sipresponder.requests")
    saved = (root.level, requests.level, root.handlers[:], root.propagate)
    try:
        configure_logging("human", "warning")  # the default
        assert root.isEnabledFor(logging.INFO)  # start-up, reloads, shutdown
        assert not requests.isEnabledFor(logging.INFO)  # one line per request: off
        configure_logging("human", "info")
        assert requests.isEnabledFor(logging.INFO) and not requests.isEnabledFor(logging.DEBUG)
        configure_logging("human", "error")
        assert not root.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(saved[0])  # setLevel, not .level: it clears isEnabledFor's cache
        requests.setLevel(saved[1])
        root.handlers[:], root.propagate = saved[2], saved[3]


@pytest.mark.parametrize("level", [None, "info"])
def test_serve_logs_start_up_and_shutdown_at_info(level: str | None) -> None:
    """Start-up and shutdown lines are INFO and show by default; a request's line
    shows only with --log-level info."""
    import signal
    import socket

    from tests.sipclient import make_request

    flags = ["--log-level", level] if level else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--listen", "udp:127.0.0.1:0", *flags],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        lines = []
        while not any("listening on udp:" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"serve exited before listening: {lines}"
            lines.append(line)
        port = int(lines[-1].rsplit(":", 1)[1])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(10)
            sock.sendto(make_request("OPTIONS", "sip:a@127.0.0.1"), ("127.0.0.1", port))
            assert sock.recv(65535).startswith(b"SIP/2.0 200 ")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        # Read through the same text wrapper that readline() used: communicate() reads
        # the raw pipe and would lose lines readline() had already buffered.
        rest = proc.stderr.read()
        proc.stderr.close()
    text = "".join(lines) + rest
    assert " INFO listening on udp:127.0.0.1:" in text
    assert " INFO serving scenario " in text
    assert " INFO shutting down" in text
    assert ("recv OPTIONS" in text) == (level == "info"), text


def test_serve_warns_of_a_rule_that_can_never_match(tmp_path: Path) -> None:
    import signal

    path = tmp_path / "dead.toml"
    path.write_text('[[rule]]\nname = "all"\ncode = 200\n\n'
                    '[[rule]]\nname = "carol"\nmatch = { user = "carol" }\ncode = 480\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "sipresponder", "serve", "--scenario", str(path),
         "--listen", "udp:127.0.0.1:0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    try:
        lines: list[str] = []
        while not any("listening on udp:" in line for line in lines):
            line = proc.stderr.readline()
            assert line, f"serve exited before listening: {lines}"
            lines.append(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stderr.read()
        proc.stderr.close()
    assert any(line.rstrip().endswith(
        f" WARNING {path}: rule 'carol' (#2) can never match: rule 'all' (#1) matches "
        "everything it would") for line in lines), lines
