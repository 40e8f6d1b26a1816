"""rhlh.logs: throttled progress lines (fake clock, no sleeping); the error that stops a rule
script written to its log."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from rhlh.errors import InputError
from rhlh.logs import Progress, log_uncaught, progress_line, setup_logging


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


# --- the error that stops a rule script is in the rule's log ---------------------------------

REPO = Path(__file__).resolve().parents[1]


def test_uncaught_error_goes_to_the_log_file_with_its_traceback(tmp_path, capsys):
    logfile = tmp_path / "rule.log"
    log = setup_logging(logfile=logfile, name="rhlh.test_uncaught")
    assert sys.excepthook is not sys.__excepthook__
    try:
        raise InputError("cohort/samples.tsv", "visit not in the protocol", row=3, column="visit")
    except InputError:
        log_uncaught(log, *sys.exc_info())
    text = logfile.read_text()
    assert "ERROR the step stopped: Invalid input: file cohort/samples.tsv, row 3" in text
    assert "Traceback (most recent call last)" in text
    err = capsys.readouterr().err
    # bad input: the console gets the message, not a stack
    assert "Invalid input: file cohort/samples.tsv, row 3, column 'visit'" in err
    assert "Traceback" not in err
    try:
        {}["missing"]
    except KeyError:
        log_uncaught(log, *sys.exc_info())
    assert "the step stopped: KeyError: 'missing'" in logfile.read_text()
    assert "Traceback" in capsys.readouterr().err  # a bug shows its stack on the console too
    sys.excepthook = sys.__excepthook__


def test_a_script_that_raises_leaves_its_error_in_the_log(tmp_path):
    """The real path: a process whose script raised after setup_logging."""
    logfile = tmp_path / "job.log"
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "from rhlh.logs import setup_logging\n"
        "from rhlh.errors import InputError\n"
        f"log = setup_logging(logfile={str(logfile)!r})\n"
        "log.info('started')\n"
        "raise InputError('x.tsv', 'bad value', row=2, column='day')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    text = logfile.read_text()
    assert "INFO started" in text and "Invalid input: file x.tsv, row 2, column 'day'" in text
    assert "Traceback" in text and "Traceback" not in r.stderr


def _first_call_is_setup_logging(path: Path) -> bool:
    """Whether the module's first statement that is not an import, docstring or plain name
    binding (``sm = snakemake``) calls setup_logging."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name):
            continue
        call = node.value if isinstance(node, (ast.Assign, ast.Expr)) else None
        return (
            isinstance(call, ast.Call)
            and getattr(call.func, "id", getattr(call.func, "attr", "")) == "setup_logging"
        )
    return False


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")), ids=str)
def test_every_rule_script_logs_before_it_does_anything(script):
    """Every rule script sets up its log first, so whatever it raises is in the rule's log."""
    assert _first_call_is_setup_logging(REPO / "scripts" / script)
