"""Single-cell cohort through the workflow: cell QC tables and figures, composition, scanpy PCA;
a bulk cohort gets none of the singlecell outputs."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from rhlh import tables
from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import REPO, run_workflow

pytestmark = pytest.mark.slow

# thresholds for the simulator's 400-gene cells (the defaults are for real 10x data)
SC_CONFIG = """singlecell:
  min_genes: 50
  min_counts: 100
  min_cells_per_sample: 20
  min_cells_per_profile: 5
  composition_n_boot: 0
"""


def test_singlecell_stage(tmp_path):
    cohort = simulate_cohort(n_patients=10, n_genes=400, seed=7)
    write_cohort(
        cohort,
        tmp_path / "cohort",
        "h5ad-sc",
        cells_per_sample=80,
        low_quality_fraction=0.05,
        high_mt_fraction=0.05,
    )
    targets = [
        "results/singlecell/qc_samples.tsv",
        "results/singlecell/composition/tests.tsv",
        "results/singlecell/figures/qc_violins.png",
        "results/singlecell/figures/composition_trajectories.png",
        "results/expression/normalized.h5ad",
        "results/expression/normalized_by_cell_type.h5ad",
    ]
    extra = tmp_path / "singlecell.yaml"
    extra.write_text(SC_CONFIG)
    # the last --configfile option wins: name the shipped config again, then the override
    r = run_workflow(
        tmp_path,
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        str(extra),
        config={"cohort": "cohort", "results": "results"},
        targets=targets,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = tmp_path / "results"
    # cell QC: the planted cells are the removed ones
    cells = tables.read_cell_qc(res / "singlecell/qc_cells.tsv.gz")
    truth = ad.read_h5ad(tmp_path / "cohort/counts.h5ad", backed="r").obs["sim_quality"]
    bad = truth.astype(str).to_numpy() != "ok"
    removed = ~cells["kept"].to_numpy()
    tp = int((bad & removed).sum())
    precision, recall = tp / removed.sum(), tp / bad.sum()
    print(f"workflow cell QC: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.95
    sample_qc = tables.read_sample_qc(res / "singlecell/qc_samples.tsv")
    assert len(sample_qc) == len(cohort["samples"])
    assert (sample_qc["n_cells_in"] - sample_qc["n_cells_kept"]).sum() == removed.sum()
    # pseudobulk objects carry their cell numbers
    counts = ad.read_h5ad(res / "inputs/validated/counts.h5ad")
    kept = sample_qc.set_index("sample_id")["n_cells_kept"]
    assert (counts.obs["n_cells"] == kept.loc[counts.obs_names]).all()
    by_ct = ad.read_h5ad(res / "inputs/validated/counts_by_cell_type.h5ad")
    assert (by_ct.obs["n_cells"] >= 5).all()
    # composition: CD8 T cells fall in responders
    tests = pd.read_csv(res / "singlecell/composition/tests.tsv", sep="\t")
    cd8 = tests[(tests["cell_type"] == "CD8T") & (tests["term"] == "interaction")].iloc[0]
    assert cd8["estimate"] < 0 and cd8["padj"] < 0.05
    # scanpy reads the PCA of normalized.h5ad
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    norm = ad.read_h5ad(res / "expression/normalized.h5ad")
    sc.pl.pca(norm, color="visit", show=False)
    assert norm.varm["PCs"].shape == (norm.n_vars, norm.obsm["X_pca"].shape[1])
    ratio = np.asarray(norm.uns["pca"]["variance_ratio"])
    assert (np.diff(ratio) <= 1e-12).all() and 0 < ratio.sum() <= 1 + 1e-9
    # per cell type: each profile's coordinates in its own cell type's PCA
    by_ct = ad.read_h5ad(res / "expression/normalized_by_cell_type.h5ad")
    assert by_ct.obsm["X_pca"].shape[0] == by_ct.n_obs
    cd8 = by_ct[by_ct.obs["cell_type"] == "CD8T"].copy()
    sc.pl.pca(cd8, color="visit", show=False)
    assert list(by_ct.uns["pca_by_cell_type"]["cell_type"]) == sorted(set(by_ct.obs["cell_type"]))


def test_bulk_cohort_has_no_singlecell_jobs(tmp_path, cohort_copy):
    r = run_workflow(
        tmp_path, "-n", "--quiet", "rules", config={"cohort": "cohort", "results": "results"}
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "singlecell_" not in r.stdout + r.stderr
