"""Logging for rule scripts: to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys


def setup_logging(snakemake=None, logfile=None, name="rhlh") -> logging.Logger:
    """Log to the rule's log file (``snakemake.log[0]``) and stderr, with timestamps."""
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
    return logger
