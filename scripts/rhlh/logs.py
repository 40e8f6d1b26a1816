"""Logging for rule scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback


def setup_logging(snakemake=None, logfile=None, name="rhlh") -> logging.Logger:
    """Log to the rule's log file (``snakemake.log[0]``) and stderr, with timestamps.

    It also installs :func:`log_uncaught` as ``sys.excepthook``, so that an error that stops
    the script ends up in the rule's log (the file Snakemake's error message points to), not
    only on the console.
    """
    if logfile is None and snakemake is not None and len(snakemake.log) > 0:
        logfile = snakemake.log[0]
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if logfile:
        handlers.append(logging.FileHandler(logfile, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        logger.addHandler(h)
    logging.captureWarnings(True)
    sys.excepthook = lambda *exc: log_uncaught(logger, *exc)
    return logger


def log_uncaught(logger: logging.Logger, exc_type, exc, tb) -> None:
    """The error that stops a rule script, written to the rule's log and to stderr.

    The log file gets the message and the full traceback. Bad input (``InputError``, the
    user's data) shows only its message on the console, which names file, row and column;
    any other error shows its traceback there too.
    """
    from rhlh.errors import InputError

    full = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
    bad_input = isinstance(exc, InputError)
    first = str(exc) if bad_input else f"{exc_type.__name__}: {exc}"
    for h in logger.handlers:
        msg = f"the step stopped: {first}"
        if isinstance(h, logging.FileHandler) or not bad_input:
            msg += "\n" + full
        record = logger.makeRecord(logger.name, logging.ERROR, "", 0, msg, None, None)
        try:
            h.handle(record)
            h.flush()
        except Exception:  # noqa: BLE001 - reporting must not hide the original error
            sys.__excepthook__(exc_type, exc, tb)
    if not logger.handlers:
        sys.__excepthook__(exc_type, exc, tb)


# seconds between progress lines: with blocks of ~1-2 s and stretches of up to ~7 s without
# blocks (pydeseq2's own steps), lines of a trial-size de_fit stay under 15 s apart
PROGRESS_INTERVAL_S = 5.0


def progress_line(step: str, done: int, total: int, unit: str, elapsed: float) -> str:
    """``step: done/total unit (pct%), elapsed Xs, about Ys left`` (no estimate before any)."""
    pct = 100.0 * done / total if total else 100.0
    left = f"about {elapsed / done * (total - done):.0f} s left" if done else "time left unknown"
    return f"{step}: {done}/{total} {unit} ({pct:.0f}%), {elapsed:.0f} s elapsed, {left}"


class Progress:
    """Throttled progress of one step over ``total`` items (genes, blocks, resamples).

    ``update(n)`` adds ``n`` done items and logs :func:`progress_line` at INFO when ``interval``
    seconds have passed since the last line (of any ``Progress`` sharing ``state``) or the step
    is complete but began more than ``interval`` seconds ago; it returns the line logged, or
    None. Thread-safe; ``clock`` (seconds, monotonic) is injectable for tests. Logging only: it
    never changes what the caller computes.
    """

    _shared = {"last": None}

    def __init__(
        self,
        step: str,
        total: int,
        unit: str = "genes",
        interval: float = PROGRESS_INTERVAL_S,
        logger: logging.Logger | None = None,
        clock=time.monotonic,
        state: dict | None = None,
    ):
        self.step, self.total, self.unit, self.interval = step, int(total), unit, interval
        self.log = logger or logging.getLogger("rhlh")
        self.clock = clock
        self.state = Progress._shared if state is None else state
        self.done = 0
        self.start = clock()
        if self.state.get("last") is None:
            self.state["last"] = self.start
        self._lock = threading.Lock()

    def update(self, n: int = 1) -> str | None:
        with self._lock:
            self.done += n
            now = self.clock()
            due = now - self.state["last"] >= self.interval
            finished = self.done >= self.total and now - self.start >= self.interval
            if not (due or finished):
                return None
            self.state["last"] = now
            line = progress_line(self.step, self.done, self.total, self.unit, now - self.start)
        self.log.info(line)
        return line
