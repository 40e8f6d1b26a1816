"""One run per results root: an operating-system lock held by the Snakemake process using it.

Snakemake keeps its working state (``.snakemake/``: locks, incomplete markers, metadata) in the
working directory, shared by every results root run from that directory, and a run that ends
removes the whole ``.snakemake/locks`` folder, the other live runs' locks included. The
workflow therefore locks each results root itself: ``<results>/logs/run.lock`` is locked with
``flock`` by the main Snakemake process when it reads the Snakefile, before validation and
before Snakemake looks at incomplete files, and stays locked until that process ends. The
kernel releases it when the process ends in any way (finished, failed, crashed, killed), so it
never goes stale and needs no ``--unlock``. Incomplete markers and metadata are kept per file
by Snakemake, so runs on different results roots do not see each other's.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

LOCK_FILE = ("logs", "run.lock")

# open lock files of this process, {resolved path: file descriptor}; kept open (and so locked)
# until the process ends
_HELD: dict[str, int] = {}


class ResultsBusy(Exception):
    """Another live process holds the results root's lock."""


def lock_path(results) -> Path:
    return Path(results).joinpath(*LOCK_FILE)


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "a process that has not written its details yet"


def lock_results(results, command: str | None = None) -> Path:
    """Lock ``<results>/logs/run.lock`` for the life of this process; raise ResultsBusy if
    another process holds it. Locking again from the same process is a no-op."""
    path = lock_path(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _HELD:
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        raise ResultsBusy(
            f"Results root '{results}' is locked: another run is using it ({_holder(path)}). "
            "Two runs on one results root would overwrite each other's files. Wait until that "
            "run ends (or stop it), or give this run its own results root "
            "(--config results=...). The lock is released by itself when that run ends, also "
            "after a crash or kill, so no --unlock is needed for it."
        ) from None
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    info = f"pid {os.getpid()} on host {socket.gethostname()}, since {since}"
    if command:
        info += f", command: {command}"
    os.ftruncate(fd, 0)
    os.write(fd, (info + "\n").encode())
    _HELD[key] = fd
    return path


def release_results(results) -> None:
    """Release this process's lock of a results root (tests; a run keeps it until it ends)."""
    fd = _HELD.pop(str(lock_path(results).resolve()), None)
    if fd is not None:
        os.close(fd)
