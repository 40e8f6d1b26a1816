"""Single-cell input with cell types: pseudobulk per cell type is normalized and tested."""

import anndata as ad
import pandas as pd
import pytest

from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import run_workflow

pytestmark = pytest.mark.slow


def test_de_and_normalization_per_cell_type(tmp_path):
    cohort = simulate_cohort(n_patients=8, n_genes=400, seed=5)
    write_cohort(
        cohort, tmp_path / "cohort", "h5ad-sc", cells_per_sample=30, cell_types=("T", "NK")
    )
    targets = [
        "results/de/T/lrt_time.tsv",
        "results/de/NK/visit/D14_vs_D0.tsv",
        "results/expression/normalized_by_cell_type.h5ad",
    ]
    r = run_workflow(tmp_path, config={"cohort": "cohort", "results": "results"}, targets=targets)
    assert r.returncode == 0, r.stderr[-3000:]
    lrt = pd.read_csv(tmp_path / targets[0], sep="\t")
    wald = pd.read_csv(tmp_path / targets[1], sep="\t")
    for table in (lrt, wald):
        assert len(table) > 300
        assert table["pvalue"].dropna().between(0, 1).all()
    assert {"log2FoldChange", "padj"} <= set(wald.columns)
    norm = ad.read_h5ad(tmp_path / targets[2])
    assert set(norm.obs["cell_type"]) == {"T", "NK"}
    assert "vst" in norm.layers
