"""rhlh.logs.Progress: throttled progress lines (fake clock, no sleeping)."""

from __future__ import annotations

import logging

from rhlh.logs import Progress, progress_line


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_line_text():
    line = progress_line("GLM fit (IRLS)", 5000, 20000, "genes", 30.0)
    assert line == "GLM fit (IRLS): 5000/20000 genes (25%), 30 s elapsed, about 90 s left"
    assert "time left unknown" in progress_line("x", 0, 10, "blocks", 0.0)


def test_progress_is_throttled_by_the_clock(caplog):
    clock, state = FakeClock(), {}
    log = logging.getLogger("rhlh.test_progress")
    p = Progress("outlier scan", 10, "blocks", interval=15.0, logger=log, clock=clock, state=state)
    lines = []
    with caplog.at_level(logging.INFO, logger="rhlh.test_progress"):
        for dt in (5, 5, 4.9, 0.2, 10, 5, 20):  # seconds per block
            clock.t += dt
            lines.append(p.update())
        clock.t += 1
        lines.append(p.update(3))  # complete, begun > 15 s ago: a last line
    assert [ln is not None for ln in lines] == [False, False, False, True, False, True, True, True]
    assert lines[3] == "outlier scan: 4/10 blocks (40%), 15 s elapsed, about 23 s left"
    assert lines[-1].startswith("outlier scan: 10/10 blocks (100%), 51 s elapsed")
    assert [r.getMessage() for r in caplog.records] == [ln for ln in lines if ln]
    # lines never more than the interval apart while blocks keep finishing within it
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_progress_shares_its_cadence_and_skips_short_steps():
    clock, state = FakeClock(), {}
    log = logging.getLogger("rhlh.test_progress")
    quick = Progress("quick", 2, logger=log, clock=clock, state=state)
    clock.t += 1
    assert quick.update(2) is None  # done in 1 s: no line
    clock.t += 13
    nxt = Progress("next", 4, logger=log, clock=clock, state=state)
    clock.t += 2  # 16 s since the last line of any step: due at once
    assert nxt.update(1) == "next: 1/4 genes (25%), 2 s elapsed, about 6 s left"
    clock.t += 1
    assert nxt.update(1) is None
