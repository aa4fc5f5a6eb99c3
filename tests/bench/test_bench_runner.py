"""The pure helpers of bench/run.py: SIPp statistics, percentiles, /proc parsing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_BENCH = Path(__file__).resolve().parents[2] / "bench"
_PATH = _BENCH / "run.py"
if str(_BENCH) not in sys.path:  # run.py imports bench/saturation.py as its script does
    sys.path.insert(0, str(_BENCH))
_SPEC = importlib.util.spec_from_file_location("bench_run", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
run = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_run"] = run  # dataclasses look their module up
_SPEC.loader.exec_module(run)

HEADER = ("StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);"
          "SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);"
          "Retransmissions(P);Retransmissions(C);")


def row(current: str, successful: int, failed: int, retrans: int) -> str:
    start = "2026-11-25\t11:52:14.698410\t1795607534.698410"
    return (f"{start};{start};{current};00:00:01:000000;00:00:04:000000;"
            f"0;{successful};0;{failed};0;{retrans};")


def test_sipp_stat_takes_the_last_row() -> None:
    text = "\n".join([
        HEADER,
        row("2026-11-25\t11:52:15.698410\t1795607535.698410", 1000, 0, 0),
        row("2026-11-25\t11:52:18.698410\t1795607538.698410", 40000, 3, 7),
    ]) + "\n"
    stats = run.parse_sipp_stat(text)
    assert stats["successful"] == 40000
    assert stats["failed"] == 3
    assert stats["retransmissions"] == 7
    assert stats["seconds"] == pytest.approx(4.0)
    assert stats["calls_per_s"] == pytest.approx(10000)


def test_sipp_failure_kinds_are_the_nonzero_failed_counters() -> None:
    text = ("FailedCall(C);FailedMaxUDPRetrans(C);FailedRegexpDoesntMatch(C);"
            "FailedTimeoutOnRecv(P);FailedTimeoutOnRecv(C);\n"
            "50;48;0;1;2;\n")
    assert run.sipp_failure_kinds(text) == {"MaxUDPRetrans": 48, "TimeoutOnRecv": 2}


def test_sipp_stat_without_rows_is_an_error() -> None:
    with pytest.raises(ValueError):
        run.parse_sipp_stat(HEADER + "\n")


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert run.percentile(values, 50) == 50
    assert run.percentile(values, 99) == 99
    assert run.percentile(values, 100) == 100
    assert run.percentile([3.0, 1.0, 2.0], 50) == 2
    assert run.percentile([7.0], 99) == 7
    assert run.percentile([], 50) is None


def test_proc_stat_with_spaces_and_parentheses_in_the_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    text = "4242 (my (odd) name) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0"
    assert run.parse_proc_stat(text) == (17, 300, 10)


def test_ratio() -> None:
    assert run.ratio(3.0, 2.0) == 1.5
    assert run.ratio(None, 2.0) is None
    assert run.ratio(1.0, 0) is None


def test_workloads_name_existing_files() -> None:
    for workload in run.WORKLOADS.values():
        assert (run.BENCH / "sipp" / workload.sipp_xml).is_file()
        assert (run.BENCH / "kamailio" / workload.kamailio_cfg).is_file()
        assert workload.scenario.is_file()


def test_probe_ack_reuses_the_invite_via_and_the_answer_to_tag() -> None:
    invite = run.probe_request("INVITE", "udp", 5999, "t", 7)
    assert invite.startswith(b"INVITE sip:486@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP ")
    answer = (b"SIP/2.0 486 Busy Here\r\nVia: x\r\nFrom: <sip:probe@127.0.0.1>;tag=probe\r\n"
              b"To: <sip:486@127.0.0.1>;tag=abc\r\nCall-ID: t-7\r\nCSeq: 1 INVITE\r\n"
              b"Content-Length: 0\r\n\r\n")
    lines = run.ack_for(invite, answer).decode().split("\r\n")
    assert lines[0] == "ACK sip:486@127.0.0.1 SIP/2.0"
    assert lines[1] == invite.decode().split("\r\n")[1]  # the same Via branch
    assert "To: <sip:486@127.0.0.1>;tag=abc" in lines
    assert "Call-ID: t-7" in lines and "CSeq: 1 ACK" in lines
    assert lines[-2:] == ["", ""]


def test_env_assignment() -> None:
    assert run.env_assignment("SIPRESPONDER_NO_EXTENSIONS=1") == ("SIPRESPONDER_NO_EXTENSIONS", "1")
    assert run.env_assignment("A=") == ("A", "")
    assert run.env_assignment("OPTS=a=b") == ("OPTS", "a=b")
    for bad in ["NOEQUALS", "=1", "1A=x", "A-B=1", "A B=1"]:
        with pytest.raises(ValueError, match="KEY=VALUE"):
            run.env_assignment(bad)


def test_bad_server_env_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run.main(["--server-env", "NOEQUALS"])
    assert exited.value.code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_variant_labels_are_recognised_as_sipresponder() -> None:
    label = run.variant_label({"SIPRESPONDER_NO_EXTENSIONS": "1", "X": "y"})
    assert label == "sipresponder (SIPRESPONDER_NO_EXTENSIONS=1 X=y)"
    assert run.is_sipresponder(label) and run.is_sipresponder("sipresponder")
    assert not run.is_sipresponder("kamailio") and not run.is_sipresponder("naive")


def test_cpu_busy_from_proc_stat() -> None:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    text = "cpu  300 10 90 5000 40 0 20 80 0 0\ncpu0 150 5 45 2500 20 0 10 40 0 0\n"
    assert run.parse_cpu_busy(text) == pytest.approx(500 / run.CLK_TCK)


def test_sipp_load_options() -> None:
    assert run.closed_loop(3) == [["-users", "17"], ["-users", "17"], ["-users", "16"]]
    (one,) = run.open_loop([5000], 3)
    options = dict(zip(one[::2], one[1::2], strict=True))
    assert options["-r"] == "5000" and options["-rp"] == "1000"
    assert options["-m"] == "15000"  # the step's calls, then SIPp stops
    assert int(options["-l"]) >= 3 * 5000  # the limit does not throttle the offer
    assert options["-timer_resol"] == "1"


def record(offered: float, sustained: bool) -> object:
    return run.StepRecord(offered_per_s=offered, answered_per_s=offered * 0.99,
                          sustained=sustained, reasons=[] if sustained else ["3 failed calls"],
                          server_cpus=0.9, sipp_cpus=0.5, machine_cpus=1.6, other_cpus=0.1,
                          cpu_us_per_call=50.0, late_p50_ms=0.3, p99_ms=2.0,
                          failure_kinds={})


def a_run(server: str, workload: str, calls: float, steps: list[object] | None = None,
          bound: str | None = None) -> object:
    return run.Run(workload=workload, server=server, round=1, calls_per_s=calls,
                   successful=int(calls * 3), failed=0, retransmissions=0, seconds=3.0,
                   sipp_exit=0, cpu_s=1.0, cpu_us_per_call=1e6 / calls, p50_ms=0.2,
                   p99_ms=1.0, probe_samples=600, probe_lost=0, failure_kinds={},
                   peak_pss_kb=20_000, peak_rss_kb=30_000, udp_drops=0,
                   steps=steps or [], bound=bound)


def test_next_failed_step_is_the_lowest_failure_above_the_best() -> None:
    steps = [record(2000, True), record(8000, False), record(4000, True),
             record(5657, False), record(3000, False)]
    found = run.next_failed_step(a_run("kamailio", "saturation", 3960, steps))
    assert found is not None and found.offered_per_s == 5657
    assert run.next_failed_step(a_run("kamailio", "saturation", 3960, steps[:1])) is None


def test_markdown_ratios_for_a_compare_env_variant_and_the_saturation_note() -> None:
    variant = run.variant_label({"SIPRESPONDER_NO_EXTENSIONS": "1"})
    steps = [record(2000, True), record(4000, False)]
    summaries = [run.summarize([r]) for r in [
        a_run("sipresponder", "saturation", 4000, steps, "server"),
        a_run(variant, "saturation", 2000, steps, "server"),
        a_run("kamailio", "saturation", 8000, steps, "clients"),
    ]]
    info = {"nproc": 2, "cpu": "x", "kernel": "k", "python": "3", "event_loop": "uvloop",
            "sipp": "SIPp", "kamailio": "kamailio", "kamailio_options": "-n 1",
            "sipresponder_workers": "1", "sipp_clients": 1, "loadavg_at_start": ["0"],
            "saturation_queue_ms": 10}
    table = run.markdown(summaries, {}, info, "python bench/run.py", True)
    assert f"| saturation | **{variant} / sipresponder** | **0.50x** |" in table
    assert "| saturation | **sipresponder / kamailio** | **0.50x** |" in table
    assert f"| saturation | **{variant} / kamailio** | **0.25x** |" in table
    assert "- sipresponder: 4,000 calls/s" in table and "limited by: **server**" in table
    assert "at 4,000/s: 3 failed calls" in table
