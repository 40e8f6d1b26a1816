"""Memory and runtime requests of the heavy rules follow their input (rhlh.resources)."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from rhlh import resources
from tests.conftest import EXAMPLE, run_workflow

# the benchmark's measured peaks (docs/benchmark.md): samples x genes -> MB of the DE fit
MEASURED_DE_PEAK_MB = {(133, 20_000): 717, (186, 60_000): 1_933, (1_018, 60_000): 8_450}


@pytest.mark.parametrize("dims", sorted(MEASURED_DE_PEAK_MB))
def test_de_request_covers_the_measured_peak_without_doubling_it(dims):
    asked = resources.memory_mb("de_fit", dims)
    peak = MEASURED_DE_PEAK_MB[dims]
    assert peak < asked
    assert asked <= max(resources.FLOOR_MB, 1.5 * peak)


@pytest.mark.parametrize("kind", sorted(resources.MEMORY_MODELS))
def test_requests_grow_with_size_attempt_and_shrink_with_threads(kind):
    small, large = (100, 5_000), (1_000, 60_000)
    assert resources.memory_mb(kind, small) == resources.FLOOR_MB
    assert resources.memory_mb(kind, large) > resources.memory_mb(kind, small)
    assert resources.memory_mb(kind, large, attempt=2) == 2 * resources.memory_mb(kind, large)
    assert resources.runtime_min(kind, large, threads=1) > resources.runtime_min(
        kind, large, threads=4
    )
    assert resources.runtime_min(kind, large, attempt=3) == 3 * resources.runtime_min(kind, large)
    # before the counts exist (a dry run from scratch): the figure of a mid-size cohort
    assert resources.memory_mb(kind, None) == resources.memory_mb(
        kind, (1, resources.UNKNOWN_CELLS)
    )


def test_ingest_request_follows_the_delivery_size(tmp_path):
    (tmp_path / "a.tsv").write_bytes(b"x" * 3_000_000)
    (tmp_path / "b.tsv").write_bytes(b"x" * 1_000_000)
    mb = resources.files_mb([tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "absent"])
    assert mb == pytest.approx(4.0)
    assert resources.ingest_memory_mb(mb) == resources.FLOOR_MB
    assert resources.ingest_memory_mb(2_000) > resources.ingest_memory_mb(500)
    assert resources.ingest_memory_mb(2_000, attempt=2) == 2 * resources.ingest_memory_mb(2_000)
    assert resources.ingest_runtime_min(2_000) > resources.ingest_runtime_min(mb)


def _h5ad(path, x, cell_types=None):
    n = x.shape[0]
    obs = pd.DataFrame(
        {"sample_id": [f"S{i}" for i in range(n)]}, index=[f"o{i}" for i in range(n)]
    )
    if cell_types is not None:
        obs["cell_type"] = pd.Categorical(cell_types)
    ad.AnnData(X=x, obs=obs).write_h5ad(path)
    return path


def test_dims_from_the_header_of_dense_sparse_and_pseudobulk_files(tmp_path):
    dense = _h5ad(tmp_path / "dense.h5ad", np.zeros((7, 11), dtype=np.float32))
    sparse = _h5ad(tmp_path / "sparse.h5ad", sp.csr_matrix((1_018, 60_000), dtype=np.float32))
    pb = _h5ad(
        tmp_path / "pb.h5ad",
        np.ones((5, 3), dtype=np.float32),
        cell_types=["T cells", "B", "T cells", "NK", "T cells"],
    )
    assert resources.h5ad_dims(dense) == (7, 11)
    assert resources.h5ad_dims(sparse) == (1_018, 60_000)
    assert resources.h5ad_dims(pb, "cell_type", "T cells") == (3, 3)
    assert resources.h5ad_dims(pb, "cell_type", "B") == (1, 3)
    assert resources.h5ad_dims(tmp_path / "not_written_yet.h5ad") is None


def _job_resources(out: str, rule: str) -> dict[str, str]:
    block = re.search(rf"^rule {rule}:\n(.*?)(?:\n\n|\Z)", out, flags=re.M | re.S)
    assert block, out[-3000:]
    line = re.search(r"resources: (.*)", block.group(1)).group(1)
    return dict(kv.split("=", 1) for kv in line.split(", "))


def test_dry_run_asks_what_the_counts_need(tmp_path):
    """A dry run over a results folder whose validated counts are 1,018 x 60,000 (an empty
    sparse file of that shape): de_fit asks for the model's memory and runtime, not a fixed
    figure; the ingest asks for what the example's delivery needs."""
    validated = tmp_path / "results" / "inputs" / "validated"
    validated.mkdir(parents=True)
    _h5ad(validated / "counts.h5ad", sp.csr_matrix((1_018, 60_000), dtype=np.float32))
    r = run_workflow(
        tmp_path,
        "-n",
        "--forcerun",
        "de_fit",
        config={"cohort": str(EXAMPLE), "results": "results"},
        targets=["results/de/outlier_counts.tsv"],
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    de = _job_resources(out, "de_fit")
    assert int(de["mem_mb"]) == resources.memory_mb("de_fit", (1_018, 60_000)) > 8_450
    assert int(de["runtime"]) == resources.runtime_min("de_fit", (1_018, 60_000), threads=2)
    ingest = _job_resources(out, "ingest_counts")
    delivery = resources.files_mb(sorted(EXAMPLE.glob("counts*")))
    assert delivery > 0
    assert int(ingest["mem_mb"]) == resources.ingest_memory_mb(delivery)
