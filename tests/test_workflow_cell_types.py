"""Single-cell input with cell types: pseudobulk per cell type is normalized and tested."""

import anndata as ad
import pandas as pd
import pytest

from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import run_workflow

pytestmark = pytest.mark.slow


# the per-cell-type figures and tables of the well-populated cell types (T, NK)
CELL_TYPE_TARGETS = [
    "results/de/T/lrt_time.tsv",
    "results/de/NK/visit/D14_vs_D0.tsv",
    "results/expression/normalized_by_cell_type.h5ad",
    "results/de/cell_types_significant.tsv",
    "results/de/figures/cell_types_significant.png",
    "results/de/T/figures/volcano_D14_vs_D0.png",
    "results/de/NK/figures/signature_heatmap.png",
]


def test_de_and_normalization_per_cell_type(cell_type_run):
    tmp_path, targets = cell_type_run, CELL_TYPE_TARGETS
    # per-cell-type figures and the count of DE genes per cell type and contrast
    for png in targets[3:]:
        if png.endswith(".png"):
            assert (tmp_path / png).stat().st_size > 1000, png
            assert (tmp_path / png).with_suffix(".pdf").exists(), png
    sig = pd.read_csv(tmp_path / "results/de/cell_types_significant.tsv", sep="\t")
    assert {"T", "NK"} <= set(sig["cell_type"])
    assert {"D14_vs_D0", "lrt_time", "lrt_time_by_response"} <= set(sig["contrast"])
    t_lrt = pd.read_csv(tmp_path / targets[0], sep="\t")
    row = sig[(sig["cell_type"] == "T") & (sig["contrast"] == "lrt_time")].iloc[0]
    assert row["n_significant"] == (t_lrt["padj"] < 0.05).sum()
    # each per-cell-type job recorded the versions of its own environment
    versions = pd.read_csv(tmp_path / "results/logs/versions/de_fit_cell_type/T.tsv", sep="\t")
    assert {"python", "pydeseq2", "numpy"} <= set(versions["package"])
    assert (versions["rule"] == "de_fit_cell_type").all()
    lrt = pd.read_csv(tmp_path / targets[0], sep="\t")
    wald = pd.read_csv(tmp_path / targets[1], sep="\t")
    for table in (lrt, wald):
        assert len(table) > 300
        assert table["pvalue"].dropna().between(0, 1).all()
    assert {"log2FoldChange", "padj"} <= set(wald.columns)
    norm = ad.read_h5ad(tmp_path / targets[2])
    assert {"T", "NK"} <= set(norm.obs["cell_type"])
    assert "vst" in norm.layers


# cell QC thresholds for the simulator's 400-gene cells; profiles of fewer than 5 cells dropped
SPARSE_CONFIG = """singlecell:
  min_genes: 50
  min_counts: 100
  min_cells_per_sample: 20
  min_cells_per_profile: 5
  composition_n_boot: 0
"""


def _plant_sparse_cell_types(path, samples):
    """Relabel a few cells: "Rare" (6 cells in each sample of two patients: profiles for
    fewer than 3 patients at baseline) and "Gone" (2 cells per sample of one patient: every
    profile under min_cells_per_profile)."""
    import numpy as np

    adata = ad.read_h5ad(path)
    labels = adata.obs["cell_type"].astype(str).to_numpy().copy()
    sid = adata.obs["sample_id"].astype(str).to_numpy()
    patients = sorted(samples["patient_id"].unique())
    for name, pats, n in (("Rare", patients[:2], 6), ("Gone", patients[2:3], 2)):
        for s in samples.loc[samples["patient_id"].isin(pats), "sample_id"]:
            idx = np.flatnonzero((sid == s) & np.isin(labels, ["T", "NK"]))[:n]
            labels[idx] = name
    adata.obs["cell_type"] = pd.Categorical(labels)
    adata.write_h5ad(path)


@pytest.fixture(scope="module")
def cell_type_run(tmp_path_factory):
    """One run of a single-cell cohort with cell types T and NK (well populated) and two
    sparse ones (Rare, Gone) for the tests of this module; returns its working folder."""
    from .conftest import REPO

    tmp_path = tmp_path_factory.mktemp("cell_types")
    cohort = simulate_cohort(n_patients=8, n_genes=400, seed=5)
    paths = write_cohort(
        cohort, tmp_path / "cohort", "h5ad-sc", cells_per_sample=40, cell_types=("T", "NK")
    )
    _plant_sparse_cell_types(paths["counts"], cohort["samples"])
    extra = tmp_path / "singlecell.yaml"
    extra.write_text(SPARSE_CONFIG)
    targets = [
        "results/de/T/lrt_time.tsv",
        "results/de/Rare/lrt_time.tsv",
        "results/de/Gone/visit/D14_vs_D0.tsv",
        "results/de/cell_types_skipped.tsv",
        "results/signatures/cell_types/scores.tsv",
        "results/signatures/cell_types/T/enrichment.tsv",
        "results/signatures/cell_types/Rare/enrichment.tsv",
    ]
    r = run_workflow(
        tmp_path,
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        str(extra),
        config={"cohort": "cohort", "results": "results"},
        targets=targets + CELL_TYPE_TARGETS,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp_path


def test_sparse_cell_type_does_not_stop_the_run(cell_type_run):
    from rhlh import tables

    res = cell_type_run / "results"
    # the well-populated cell type is tested
    t_lrt = tables.read_de_table(res / "de/T/lrt_time.tsv")
    assert len(t_lrt) > 300 and t_lrt["pvalue"].notna().sum() > 300
    assert "reason" not in t_lrt.columns
    # the sparse ones: every gene, no statistics, the reason in the table
    for path, why in (
        ("de/Rare/lrt_time.tsv", "baseline visit"),
        ("de/Rare/visit/D14_vs_D0.tsv", "baseline visit"),
        ("de/Gone/visit/D14_vs_D0.tsv", "no pseudobulk profile"),
        ("de/Gone/lrt_time_by_response.tsv", "no pseudobulk profile"),
    ):
        table = tables.read_de_table(res / path)
        assert len(table) > 0 and table["pvalue"].isna().all(), path
        assert table["reason"].str.contains(why).all(), (path, table["reason"].iloc[0])
    skipped = tables.read_de_skipped(res / "de/cell_types_skipped.tsv")
    assert list(skipped.columns) == tables.DE_SKIPPED_COLUMNS
    assert set(skipped["cell_type"]) == {"Rare", "Gone"}
    assert len(skipped) == 4 and set(skipped["design"]) == {"visit", "time_by_response"}
    rare = skipped[skipped["cell_type"] == "Rare"]
    assert (rare["n_patients"] == 2).all()
    assert (skipped.loc[skipped["cell_type"] == "Gone", "n_samples"] == 0).all()
    log = (res / "logs/de_fit_cell_type/Rare.log").read_text()
    assert "not tested" in log
    dropped = pd.read_csv(res / "de/Rare/dropped_samples.tsv", sep="\t")
    assert dropped["reason"].str.startswith("cell type not tested").all()
    # signature scores on each cell type's pseudobulk: every kept profile, every cell type
    scores = tables.read_cell_type_scores(res / "signatures/cell_types/scores.tsv")
    assert list(scores.columns) == tables.CELL_TYPE_SCORE_COLUMNS
    by_ct = ad.read_h5ad(res / "inputs/validated/counts_by_cell_type.h5ad")
    obs = by_ct.obs.astype({"cell_type": str, "sample_id": str})
    profiles = set(zip(obs["cell_type"], obs["sample_id"], strict=True))
    assert set(zip(scores["cell_type"], scores["sample_id"], strict=True)) == profiles
    assert set(scores["cell_type"]) == {"T", "NK", "Rare"}
    assert scores.loc[scores["method"] == "ulm", "score"].notna().all()
    # competitive tests on each cell type's DE tables; none on the untested ones
    enr = pd.read_csv(res / "signatures/cell_types/T/enrichment.tsv", sep="\t")
    assert {"lrt_time", "D14_vs_D0"} <= set(enr["contrast"])
    assert enr["pvalue"].between(0, 1).all()
    rare = pd.read_csv(res / "signatures/cell_types/Rare/enrichment.tsv", sep="\t")
    assert rare.empty
