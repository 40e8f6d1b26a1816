"""Memory and runtime requests of the heavy rules, from the size of their input.

On a cluster each job asks SLURM for ``mem_mb`` and ``runtime`` (minutes); one fixed figure is
either too little for a large cohort or a node's worth of memory wasted on the example. The
requests here follow the count matrix a job reads (samples x genes, read from the h5ad header
without loading it) or, for the ingest of a delivery, the size of its files; every request is
multiplied by the attempt, so that a job killed for memory is retried with more.

The models are the peaks the benchmark measured (docs/benchmark.md, 2 cores) with a margin:
the DE fit peaked at 0.67 GiB (133 samples x 20,000 genes), 1.8 GiB (186 x 60,000) and
7.87 GiB (1,018 x 60,000), about 480 MB + 130 bytes per count; the expression stage at 6.6 GiB
for 1,018 x 60,000. A request is the model's figure + 25%, never below ``FLOOR_MB``, rounded up
to 100 MB. Snakemake evaluates these functions again when a job is about to start, so the
files exist by then; in a dry run before they exist the figure for an unknown size is used.
"""

from __future__ import annotations

import math
from pathlib import Path

FLOOR_MB = 2000  # the smallest request of a heavy rule (Python + scanpy/pydeseq2 imports)
MARGIN = 1.25
UNKNOWN_CELLS = 20_000_000  # a dry run before the counts exist: a 330 x 60,000 matrix
# (base MB, bytes per count) of the peak resident memory, per kind of job
MEMORY_MODELS = {
    "de_fit": (480.0, 130.0),
    "expression": (400.0, 110.0),
    "signatures": (400.0, 60.0),
}
# (minutes, minutes per million counts on one thread) of the wall time; runtime is a limit,
# so the model is twice the measured time (DE: 19 min for 61 M counts on 2 threads)
RUNTIME_MODELS = {
    "de_fit": (10.0, 1.2),
    "expression": (10.0, 0.3),
    "signatures": (10.0, 0.1),
}


def h5ad_dims(path, obs_column: str | None = None, obs_value: str | None = None):
    """(observations, variables) of an h5ad file from its header, or None when it cannot be
    read (not written yet). With ``obs_column``, only the observations whose value in that
    column is ``obs_value`` are counted (one cell type of a pseudobulk file)."""
    import h5py

    try:
        with h5py.File(Path(path), "r") as f:
            x = f["X"]
            shape = tuple(int(v) for v in (x.attrs["shape"] if "shape" in x.attrs else x.shape))
            if obs_column is None:
                return shape
            import anndata.io as aio

            values = aio.read_elem(f["obs"][obs_column])
            return int((values.astype(str) == str(obs_value)).sum()), shape[1]
    except (OSError, KeyError):
        return None


def _cells(dims) -> float:
    return float(UNKNOWN_CELLS if dims is None else dims[0] * dims[1])


def memory_mb(kind: str, dims, attempt: int = 1) -> int:
    """The ``mem_mb`` request of a job of ``kind`` that reads a matrix of ``dims``."""
    base, per_count = MEMORY_MODELS[kind]
    mb = max(FLOOR_MB, MARGIN * (base + per_count * _cells(dims) / 1e6))
    return int(math.ceil(mb / 100.0) * 100) * int(attempt)


def runtime_min(kind: str, dims, threads: int = 1, attempt: int = 1) -> int:
    """The ``runtime`` request (minutes) of a job of ``kind`` on ``threads`` threads."""
    base, per_million = RUNTIME_MODELS[kind]
    minutes = base + per_million * _cells(dims) / 1e6 / max(1, int(threads))
    return int(math.ceil(minutes)) * int(attempt)


def files_mb(paths) -> float:
    """The size in MB of the files among ``paths`` that exist (a delivery's files; a folder's
    files are counted through the list Snakemake is given)."""
    total = 0
    for path in [paths] if isinstance(paths, (str, Path)) else paths:
        p = Path(path)
        if p.is_file():
            total += p.stat().st_size
    return total / 1e6


def ingest_memory_mb(input_mb: float, attempt: int = 1) -> int:
    """The ``mem_mb`` request of ingest_counts for a delivery of ``input_mb`` MB of files:
    500 MB + 3 x the files (a text table becomes a dense matrix of 8-byte counts, about the
    size of its text, and is checked beside a copy; a single-cell h5ad is summed in chunks,
    1.3 GiB for 1,000,000 cells, and a compressed h5ad of that size is ~0.3 GB)."""
    mb = max(FLOOR_MB, MARGIN * (500.0 + 3.0 * float(input_mb)))
    return int(math.ceil(mb / 100.0) * 100) * int(attempt)


def ingest_runtime_min(input_mb: float, attempt: int = 1) -> int:
    """The ``runtime`` request (minutes) of ingest_counts: 10 min + 1 min per 100 MB."""
    return int(math.ceil(10.0 + float(input_mb) / 100.0)) * int(attempt)
