"""SIPp as the client under torture: the bundled client-torture scenario shows SIPp the
failure paths a client must survive, over UDP and TCP, and SIPp's own verdict says what
the client saw.

- sip:timeout@: SIPp's own receive timeout fires on the first response it waits for
  (its -trace_counts CSV: one Timeout per call, nothing received), and no call fails.
- sip:flaky@: INVITE -> 503 + Retry-After -> ACK, the retry -> 200 -> ACK -> BYE -> 200.
- sip:ring-forever@: INVITE -> 180 -> CANCEL -> 200 for the CANCEL, 487 for the INVITE.

Each test starts its own responder, so the flaky counter starts at the first request.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipresponder.scenario.bundled import bundled_scenario
from tests.interop.conftest import ResponderProcess, run_responder
from tests.interop.test_sipp import assert_all_calls_passed, port_for, run_sipp

pytestmark = pytest.mark.interop

CALLS = 3
TRANSPORTS = pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])


@pytest.fixture
def torture() -> Iterator[ResponderProcess]:
    """client-torture.toml served over UDP and TCP on 127.0.0.1, OS-picked ports."""
    with run_responder(["--scenario", str(bundled_scenario("client-torture.toml"))]) as running:
        yield running


def message_counts(tmp_path: Path) -> dict[str, int]:
    """The last row of SIPp's -trace_counts CSV: per scenario message, how many were
    sent, received, timed out, unexpected ("1_100_Timeout", "1_100_Recv", ...)."""
    [counts_file] = tmp_path.glob("*_counts.csv")
    with counts_file.open(newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    assert len(rows) >= 2, f"no count rows in {counts_file.name}"
    return {name: int(value) for name, value in zip(rows[0], rows[-1], strict=False)
            if value.strip().isdigit()}


@TRANSPORTS
def test_timeout_is_a_timeout_in_sipp(torture: ResponderProcess, tmp_path: Path,
                                      transport: str) -> None:
    run = run_sipp(tmp_path, "torture_timeout.xml", "timeout", transport,
                   port_for(torture, transport), "-trace_counts", calls=CALLS)
    assert_all_calls_passed(run, CALLS)  # the timeout branch ends each call as planned
    counts = message_counts(tmp_path)
    context = f"{counts}\n{run.output}"
    # messages are numbered from 0: the INVITE, the 100 awaited, the 200
    assert counts["1_100_Timeout"] == CALLS, context  # SIPp waited and gave up, each call
    assert counts["1_100_Recv"] == 0 and counts["2_200_Recv"] == 0, context
    assert counts["1_100_Unexp"] == 0 and counts["2_200_Unexp"] == 0, context


@TRANSPORTS
def test_flaky_503_then_retry_succeeds(torture: ResponderProcess, tmp_path: Path,
                                       transport: str) -> None:
    # -l 1: one call at a time, so each call's first INVITE is an odd-numbered request
    run = run_sipp(tmp_path, "torture_flaky_retry.xml", "flaky", transport,
                   port_for(torture, transport), "-l", "1", calls=CALLS)
    assert_all_calls_passed(run, CALLS)


@TRANSPORTS
def test_ring_forever_cancel_gets_200_and_487(torture: ResponderProcess, tmp_path: Path,
                                              transport: str) -> None:
    run = run_sipp(tmp_path, "torture_ring_cancel.xml", "ring-forever", transport,
                   port_for(torture, transport), calls=CALLS)
    assert_all_calls_passed(run, CALLS)

