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
