"""ops/reload.py: SIGHUP and --watch read the file once for every role, and hand a
good scenario to the role's one swap; a bad one is logged and never handed over."""

from __future__ import annotations

import logging
from pathlib import Path

from sipresponder.ops.reload import Reloader, stamps
from sipresponder.scenario.loader import read_scenario
from sipresponder.scenario.model import Scenario


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_good_file_goes_to_the_swap_and_a_bad_one_does_not(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[default]\ncode = 480\n")
    first, _ = read_scenario(str(path))
    swapped: list[tuple[Scenario, str]] = []
    reloader = Reloader(str(path), first, lambda new, text: swapped.append((new, text)))
    assert reloader.initial == stamps(str(path), first)

    path.write_text("[default]\ncode = 603\n")
    reloader.reload()
    [(new, text)] = swapped
    assert text == "[default]\ncode = 603\n" and new is not first
    assert reloader.watched is new  # its body files are the ones watched now

    path.write_text("[default]\ncode = 99\n")
    # On the logger itself: `serve` run by another test may have stopped it
    # propagating to the root, where caplog listens.
    kept, logger = Kept(), logging.getLogger("sipresponder")
    logger.addHandler(kept)
    try:
        reloader.reload("file changed")
    finally:
        logger.removeHandler(kept)
    assert len(swapped) == 1 and reloader.watched is new
    [record] = kept.records
    assert record.getMessage().startswith("file changed: ")
    assert "the running scenario stays" in record.getMessage()
    # The same event name as a swap the admin API refuses (ops/admin.py Admin.swap).
    assert getattr(record, "event", None) == "scenario_refused"

