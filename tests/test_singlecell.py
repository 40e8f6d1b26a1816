"""Single-cell input: cell QC while streaming, minimum cells, composition tests, scanpy PCA."""

from __future__ import annotations

import tracemalloc

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from rhlh import expression as ex
from rhlh import singlecell as sc
from rhlh.contract.counts import build_count_objects, read_h5ad_counts
from rhlh_dev.simulate import simulate_cohort, write_cohort

# thresholds for the simulator's 400-gene cells (the config defaults are for real 10x data)
QC = {
    "min_genes": 50,
    "min_counts": 100,
    "max_pct_mt": 20.0,
    "mad_filter": False,
    "n_mads": 5.0,
    "min_cells_per_sample": 20,
    "max_fraction_removed": 0.5,
    "min_cells_per_profile": 10,
}
VISITS = ["D0", "D7", "D14", "D21", "D28", "D35", "D42", "D49", "D56"]


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(n_patients=12, n_genes=400, seed=31)


@pytest.fixture(scope="module")
def planted(cohort, tmp_path_factory):
    """Single-cell file with 5% low-quality and 5% high-mitochondrial cells planted."""
    out = tmp_path_factory.mktemp("sc_planted")
    paths = write_cohort(
        cohort,
        out,
        "h5ad-sc",
        cells_per_sample=100,
        low_quality_fraction=0.05,
        high_mt_fraction=0.05,
    )
    truth = ad.read_h5ad(paths["counts"], backed="r").obs["sim_quality"].astype(str).to_numpy()
    return paths["counts"], truth


def _precision_recall(removed, planted_bad):
    tp = int((removed & planted_bad).sum())
    precision = tp / max(int(removed.sum()), 1)
    recall = tp / max(int(planted_bad.sum()), 1)
    return precision, recall


@pytest.mark.parametrize("mad", [False, True])
def test_qc_removes_planted_cells(planted, cohort, mad):
    path, truth = planted
    qc = sc.CellQC({**QC, "mad_filter": mad})
    raw = read_h5ad_counts(path, chunk_size=700, cell_qc=qc)
    cells = qc.cell_table()
    removed = ~cells["kept"].to_numpy()
    bad = truth != "ok"
    precision, recall = _precision_recall(removed, bad)
    print(
        f"cell QC (mad_filter={mad}): {int(bad.sum())} planted bad cells of {len(truth)}, "
        f"{int(removed.sum())} removed: precision {precision:.3f}, recall {recall:.3f}"
    )
    assert recall >= 0.95
    assert precision >= (0.95 if not mad else 0.5)
    # the high-mitochondrial cells are removed for their mitochondrial fraction
    hm = truth == "high_mt"
    assert (cells.loc[hm, "reason"].str.contains("high_mt")).mean() >= 0.95
    if not mad:
        # every good cell kept: their pseudobulk is exactly the bulk counts (bulk genes)
        assert not removed[~bad].any()
        order = [raw["samples"].index(s) for s in cohort["samples"]["sample_id"]]
        n = cohort["counts"].shape[1]
        np.testing.assert_array_equal(raw["counts"][order][:, :n], cohort["counts"])
        assert (raw["n_cells"] <= raw["n_cells_in"]).all()


def test_qc_metrics_are_scanpys(planted):
    import scanpy as scanpy

    path, _ = planted
    full = ad.read_h5ad(path)
    full.var["mt"], full.var["ribo"] = sc.gene_masks(full.var["gene_name"])
    scanpy.pp.calculate_qc_metrics(full, qc_vars=["mt", "ribo"], percent_top=None, inplace=True)
    qc = sc.CellQC(QC)
    read_h5ad_counts(path, chunk_size=333, cell_qc=qc)
    cells = qc.cell_table()
    np.testing.assert_array_equal(cells["n_genes"], full.obs["n_genes_by_counts"])
    np.testing.assert_array_equal(cells["total_counts"], full.obs["total_counts"])
    np.testing.assert_allclose(cells["pct_counts_mt"], full.obs["pct_counts_mt"], rtol=1e-5)


def test_sample_and_profile_minimums(planted, cohort):
    path, _ = planted
    # a strict mitochondrial threshold removes about half of the good cells: kept numbers
    # vary, and the median of them as the minimum drops some samples but not all
    qc = sc.CellQC({**QC, "max_pct_mt": 3.0, "min_cells_per_profile": 20})
    raw = read_h5ad_counts(path, chunk_size=1000, cell_qc=qc)
    minimum = int(np.median(sc.sample_qc_table(qc)["n_cells_kept"]))
    qc.cfg["min_cells_per_sample"] = minimum
    kept_raw, sample_qc, profiles = sc.apply_cell_qc(raw, qc)
    dropped = sample_qc[sample_qc["status"] == "dropped"]
    assert 0 < len(dropped) < len(sample_qc) and (dropped["n_cells_kept"] < minimum).all()
    assert dropped["reason"].str.contains("min_cells_per_sample").all()
    assert set(kept_raw["samples"]) == set(
        sample_qc.loc[sample_qc["status"] == "kept", "sample_id"]
    )
    # every profile of a dropped sample, and every small profile, is dropped and listed
    small = profiles["n_cells"] < 20
    in_dropped = profiles["sample_id"].isin(dropped["sample_id"])
    assert ((profiles["status"] == "dropped") == (small | in_dropped)).all()
    assert (kept_raw["ct_n_cells"] >= 20).all()
    # cells in = cells kept + removed, per sample
    assert (sample_qc["n_cells_in"] >= sample_qc["n_cells_kept"]).all()
    per_sample = profiles.groupby("sample_id")["n_cells_in"].sum()
    expected = sample_qc.set_index("sample_id")["n_cells_in"]
    assert (per_sample == expected.loc[per_sample.index]).all()
    # the pseudobulk AnnData records its number of cells
    adata, by_ct, _ = build_count_objects(kept_raw, cohort["samples"], cohort["patients"])
    sc.add_profile_cells(by_ct, kept_raw["ct_n_cells"])
    assert (by_ct.obs["n_cells"] >= 20).all()
    assert (adata.obs["n_cells"] >= minimum).all()


def test_flagged_sample(planted):
    path, _ = planted
    qc = sc.CellQC({**QC, "max_fraction_removed": 0.0})
    read_h5ad_counts(path, chunk_size=1000, cell_qc=qc)
    table = sc.sample_qc_table(qc)
    assert (table["flagged"] == (table["fraction_removed"] > 0)).all()
    assert table.loc[table["flagged"], "reason"].str.contains("max_fraction_removed").all()
    assert (table.loc[table["flagged"], "status"] == "kept").all()


def test_bulk_h5ad_with_sample_id_column_is_bulk(tmp_path, cohort):
    """obs carrying sample_id (one row per sample) is a bulk file, not one cell per sample."""
    ids = cohort["samples"]["sample_id"].to_numpy()
    obs = pd.DataFrame({"sample_id": ids, "cell_type": "PBMC"}, index=ids)
    var = cohort["var"].set_index("gene_id", drop=False)
    var.index.name = None
    path = tmp_path / "bulk.h5ad"
    ad.AnnData(X=sp.csr_matrix(cohort["counts"]), obs=obs, var=var).write_h5ad(path)
    qc = sc.CellQC({**QC, "min_cells_per_sample": 5})
    raw = read_h5ad_counts(path, cell_qc=qc)
    assert raw["single_cell"] is False
    assert raw["ct_index"] is None
    np.testing.assert_array_equal(raw["counts"], cohort["counts"])
    assert not sc.is_single_cell_h5ad(path)
    # while a real single-cell file is recognised
    sc_path = write_cohort(cohort, tmp_path / "sc", "h5ad-sc", cells_per_sample=5)["counts"]
    assert sc.is_single_cell_h5ad(sc_path)


def test_streaming_memory_is_flat(cohort, tmp_path):
    """Four times the cells: the peak traced memory barely moves (one chunk at a time)."""
    small = cohort | {
        "samples": cohort["samples"].iloc[:12].reset_index(drop=True),
        "counts": cohort["counts"][:12],
    }
    peaks, sizes = [], []
    for n in (100, 400):
        path = write_cohort(small, tmp_path / f"c{n}", "h5ad-sc", cells_per_sample=n)["counts"]
        qc = sc.CellQC(QC)
        seen = []
        measure = qc.measure

        def spy(block, start, stop, measure=measure, seen=seen):
            seen.append(stop - start)
            measure(block, start, stop)

        qc.measure = spy
        read_h5ad_counts(path, chunk_size=500, cell_qc=sc.CellQC(QC))  # warm imports
        tracemalloc.start()
        read_h5ad_counts(path, chunk_size=500, cell_qc=qc)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        sizes.append(len(qc.metrics))
        assert max(seen) <= 500 and sum(seen) == len(qc.metrics)
    print(
        f"peak traced memory {peaks[0] / 1e6:.1f} MB ({sizes[0]} cells) -> "
        f"{peaks[1] / 1e6:.1f} MB ({sizes[1]} cells)"
    )
    assert sizes[1] == 4 * sizes[0]
    assert peaks[1] < 1.5 * peaks[0]


# --- composition ------------------------------------------------------------------------------


def _composition_from_file(path, cohort, qc_cfg=QC, transform="logit"):
    qc = sc.CellQC(qc_cfg)
    raw = read_h5ad_counts(path, chunk_size=2000, cell_qc=qc)
    _, _, profiles = sc.apply_cell_qc(raw, qc)
    responders = cohort["truth"].rename(columns={"responder_truth": "responder"})
    long = sc.composition_table(profiles, cohort["samples"], responders, transform=transform)
    return long


@pytest.mark.parametrize("transform", ["logit", "asin"])
def test_planted_composition_change_is_found(cohort, tmp_path, transform):
    path = write_cohort(cohort, tmp_path / "sc", "h5ad-sc", cells_per_sample=200)["counts"]
    long = _composition_from_file(path, cohort, transform=transform)
    # proportions sum to one per sample, counts are the kept cells
    assert np.allclose(long.groupby("sample_id")["proportion"].sum(), 1.0)
    tests = sc.composition_tests(long, VISITS, "D0", n_boot=0, transform=transform)
    inter = tests[tests["term"] == "interaction"].set_index("cell_type")
    print(inter[["estimate", "pvalue", "padj"]].to_string())
    assert inter.loc["CD8T", "estimate"] < 0
    assert inter.loc["CD8T", "padj"] < 0.01
    late = tests[
        (tests["cell_type"] == "CD8T")
        & (tests["group"] == "responder")
        & (tests["term"] == "visit_vs_baseline")
        & tests["visit"].isin(["D21", "D28", "D35"])
    ]
    assert len(late) and (late["estimate"] < 0).all() and (late["padj"] < 0.05).all()
    nr = tests[
        (tests["cell_type"] == "CD8T")
        & (tests["group"] == "non-responder")
        & (tests["term"] == "visit_vs_baseline")
    ]
    assert (nr["padj"] > 0.01).all()
    by_visit = sc.composition_by_visit(long, VISITS)
    r = by_visit[(by_visit["group"] == "responder") & (by_visit["cell_type"] == "CD8T")]
    r = r.set_index("visit")["mean_proportion"]
    assert r["D21"] < 0.6 * r["D0"]


def _null_counts(seed, n_patients=12, n_types=8, cells=300):
    """Cells per sample x type from a Dirichlet-multinomial with a patient effect, no change."""
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.full(n_types, 3.0))
    rows = []
    for i in range(n_patients):
        pid = f"P{i:02d}"
        resp = bool(i % 2)
        patient = base * np.exp(rng.normal(0, 0.3, n_types))
        for v in VISITS[: int(rng.integers(5, 10))]:
            p = rng.dirichlet(patient / patient.sum() * 80)
            counts = rng.multinomial(cells, p)
            for t, n in enumerate(counts):
                rows.append((f"{pid}_{v}", pid, v, int(v[1:]), resp, f"T{t}", int(n)))
    df = pd.DataFrame(
        rows, columns=["sample_id", "patient_id", "visit", "day", "responder", "cell_type", "n"]
    )
    wide = df.pivot(index="sample_id", columns="cell_type", values="n")
    trans = sc.transform_proportions(wide, "logit").stack().rename("transformed")
    df = df.join(trans, on=["sample_id", "cell_type"])
    return df


def test_null_composition_gives_uniform_pvalues():
    inter, visit = [], []
    for seed in range(30):
        tests = sc.composition_tests(_null_counts(seed), VISITS, "D0", n_boot=0, n_perm=199)
        ok = tests["converged"].astype(bool)
        inter += list(tests.loc[ok & (tests["term"] == "interaction"), "pvalue"])
        visit += list(
            tests.loc[
                ok & (tests["term"] == "visit_vs_baseline") & (tests["group"] == "all"), "pvalue"
            ]
        )
    inter, visit = np.asarray(inter), np.asarray(visit)
    ks_i = stats.kstest(inter, "uniform")
    ks_v = stats.kstest(visit, "uniform")
    print(
        f"null composition: {len(inter)} interaction p-values, KS p {ks_i.pvalue:.3f}, "
        f"share < 0.05 {np.mean(inter < 0.05):.3f}; {len(visit)} visit p-values, "
        f"KS p {ks_v.pvalue:.3f}, share < 0.05 {np.mean(visit < 0.05):.3f}"
    )
    assert len(inter) >= 200
    assert ks_i.pvalue > 0.01 and ks_v.pvalue > 0.001
    # binned: each tenth of [0, 1] holds roughly a tenth of the p-values
    hist = np.histogram(inter, bins=10, range=(0, 1))[0] / len(inter)
    assert hist.min() > 0.04 and hist.max() < 0.17
    assert 0.02 < np.mean(inter < 0.05) < 0.09


def test_simulated_null_composition_finds_nothing(cohort, tmp_path):
    path = write_cohort(
        cohort, tmp_path / "sc", "h5ad-sc", cells_per_sample=200, composition_change={}
    )["counts"]
    long = _composition_from_file(path, cohort)
    tests = sc.composition_tests(long, VISITS, "D0", n_boot=0)
    inter = tests[tests["term"] == "interaction"]
    assert (inter["padj"] > 0.01).all()


# --- scanpy-ready PCA -------------------------------------------------------------------------


def test_store_pca_works_with_scanpy(cohort, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as scanpy

    obs = cohort["samples"].set_index("sample_id", drop=False)
    obs.index.name = None
    var = cohort["var"].set_index("gene_id", drop=False)
    var.index.name = None
    adata = ad.AnnData(X=cohort["counts"].astype(np.int64), obs=obs, var=var)
    adata.layers["counts"] = adata.X.copy()
    norm = ex.normalize(adata)
    ex.store_pca(norm, n_top_genes=100)
    path = tmp_path / "normalized.h5ad"
    norm.write_h5ad(path)
    back = ad.read_h5ad(path)
    k = back.obsm["X_pca"].shape[1]
    assert back.varm["PCs"].shape == (back.n_vars, k)
    assert ((back.varm["PCs"] != 0).any(axis=1)).sum() == 100
    scores, frac = ex.pca(norm, n_components=k, n_top_genes=100)
    np.testing.assert_allclose(back.obsm["X_pca"], scores.to_numpy())
    np.testing.assert_allclose(back.uns["pca"]["variance_ratio"], frac.to_numpy())
    # scanpy's own plotting and embedding readers accept it
    scanpy.pl.pca(back, color="visit", show=False)
    scanpy.pl.pca_variance_ratio(back, show=False)
    # projecting the VST data on the loadings gives the stored scores
    x = back.layers["vst"] - back.layers["vst"].mean(axis=0)
    np.testing.assert_allclose(x @ back.varm["PCs"], back.obsm["X_pca"], atol=1e-8)
