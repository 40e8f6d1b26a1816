"""Unit tests of rhlh.expression: gene filter, size factors, logCPM, QC statistics, batches."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import statsmodels.formula.api as smf
from scipy.spatial.distance import pdist, squareform

from rhlh import expression as ex
from rhlh.errors import InputError

VISITS = ["D0", "D7", "D14", "D21"]


def make_adata(counts, obs=None, sparse=False):
    """AnnData shaped as ingestion writes it (obs = samples, var = genes, layers['counts'])."""
    counts = np.asarray(counts, dtype=np.int64)
    n, g = counts.shape
    if obs is None:
        obs = pd.DataFrame({"sample_id": [f"S{i:03d}" for i in range(n)]})
    obs = obs.copy()
    obs.index = obs["sample_id"].astype(str).to_numpy()
    genes = [f"G{j:04d}" for j in range(g)]
    var = pd.DataFrame({"gene_id": genes, "gene_name": [f"N{j}" for j in range(g)]}, index=genes)
    mat = sp.csr_matrix(counts) if sparse else counts
    adata = ad.AnnData(X=mat.copy(), obs=obs, var=var)
    adata.layers["counts"] = mat.copy()
    return adata


def simulate(seed=1, n_patients=8, visits=VISITS, n_genes=400, batch_of=None, batch_lfc=0.0):
    """NB cohort with patient and visit effects; batch_of(patient_idx, visit_idx) -> batch."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for v, visit in enumerate(visits):
            batch = batch_of(p, v) if batch_of else "B1"
            rows.append(
                dict(
                    sample_id=f"P{p:02d}_{visit}",
                    patient_id=f"P{p:02d}",
                    visit=visit,
                    day=int(visit[1:]),
                    batch=batch,
                )
            )
    obs = pd.DataFrame(rows)
    base = np.exp(rng.normal(4.0, 1.5, n_genes))
    disp = 0.05 + 1.0 / base
    pat = rng.normal(0, 0.3, (n_patients, n_genes))
    vis = np.zeros((len(visits), n_genes))
    vis[1:, : n_genes // 10] = rng.normal(0, 1.0, (len(visits) - 1, n_genes // 10))
    bat = {b: rng.normal(0, batch_lfc, n_genes) for b in sorted(obs["batch"].unique())}
    p_idx = obs["patient_id"].str[1:].astype(int).to_numpy()
    v_idx = obs["visit"].map({v: i for i, v in enumerate(visits)}).to_numpy()
    b_eff = np.vstack([bat[b] for b in obs["batch"]])
    sf = np.exp(rng.normal(0, 0.2, len(obs)))
    mu = sf[:, None] * base * np.exp(pat[p_idx] + vis[v_idx] + b_eff)
    size = 1 / disp
    counts = rng.negative_binomial(size, size / (size + mu))
    return counts, obs


# --- size factors -----------------------------------------------------------------------


def test_poscounts_matches_hand_computation():
    # genes: g1 positive everywhere, g2/g4 with a zero, g3 whose positive counts are all 1
    # (DESeq2 keeps g3 with geometric mean 1; pydeseq2 0.5.4 would drop it).
    counts = np.array([[4, 0, 1, 10], [16, 2, 1, 0], [1, 8, 0, 10]])
    # geometric means with zeros as log 1, n-th root over all 3 samples:
    #   g1 = (4*16*1)^(1/3) = 4, g2 = (2*8)^(1/3), g3 = 1, g4 = 100^(1/3)
    # per-sample medians of count/geomean over the sample's positive genes:
    #   s1: {1, 1, 10/100^(1/3)} -> 1;  s2: {4, 2/16^(1/3), 1} -> 1;
    #   s3: {1/4, 8/16^(1/3), 10/100^(1/3) = 10^(1/3)} -> 10^(1/3)
    # scaled to geometric mean 1: divide by 10^(1/9)
    expected = np.array([10 ** (-1 / 9), 10 ** (-1 / 9), 10 ** (2 / 9)])
    np.testing.assert_allclose(ex.poscounts_size_factors(counts), expected, rtol=1e-12)


def test_ratio_size_factors_recover_exact_scaling():
    sf_true = np.array([1.0, 2.0, 4.0, 0.5])
    base = np.array([30, 50, 70, 110, 130, 170, 190, 230])
    counts = np.rint(np.outer(sf_true, base)).astype(int)
    # geometric mean of sf_true is 2^(1/2): median of ratios gives sf_true / sqrt(2)
    np.testing.assert_allclose(ex.size_factors(counts, "ratio"), sf_true / np.sqrt(2), rtol=1e-12)


def test_ratio_refuses_when_every_gene_has_a_zero():
    counts = np.array([[0, 5, 3], [4, 0, 3], [4, 5, 0]])
    with pytest.raises(ValueError, match="poscounts"):
        ex.size_factors(counts, method="ratio")


def test_normalize_poscounts_uses_deseq2_definition_on_kept_genes():
    counts, obs = simulate(seed=7, n_genes=300)
    counts[:, ::3] = np.where(
        np.random.default_rng(0).random(counts[:, ::3].shape) < 0.5, 0, counts[:, ::3]
    )
    adata = make_adata(counts, obs, sparse=True)
    out = ex.normalize(adata, min_count=1, min_samples=2, size_factor_method="poscounts")
    kept = out.var_names
    sub = counts[:, adata.var_names.get_indexer(kept)]
    np.testing.assert_allclose(out.obs["size_factor"], ex.poscounts_size_factors(sub), rtol=1e-12)
    np.testing.assert_allclose(
        out.layers["normalized"], sub / out.obs["size_factor"].to_numpy()[:, None], rtol=1e-12
    )


# --- gene filter and layers ---------------------------------------------------------------


def test_gene_filter_counts_samples_and_records_reasons():
    counts = np.array(
        [
            [10, 10, 9, 0, 50],
            [10, 10, 10, 0, 60],
            [10, 10, 100, 0, 70],
            [0, 9, 0, 0, 80],
        ]
    )
    var = ex.filter_genes(make_adata(counts), min_count=10, min_samples=3)
    assert var["n_samples_expressed"].tolist() == [3, 3, 2, 0, 4]
    assert var["kept"].tolist() == [True, True, False, False, True]
    assert var["filter_reason"].tolist() == [
        "",
        "",
        "fewer than 3 samples with >= 10 counts",
        "zero counts in every sample",
        "",
    ]


def test_normalize_layers_obs_and_removed_genes():
    counts, obs = simulate(seed=3, n_genes=300)
    counts[:, 0] = 0
    counts[:, 1] = np.where(np.arange(len(counts)) < 2, 20, 0)
    adata = make_adata(counts, obs)
    out = ex.normalize(adata, min_count=10, min_samples=3)
    assert "G0000" not in out.var_names and "G0001" not in out.var_names
    assert out.var["kept"].all()
    removed = dict(
        zip(
            out.uns["gene_filter"]["removed"]["gene_id"],
            out.uns["gene_filter"]["removed"]["filter_reason"],
            strict=True,
        )
    )
    assert removed["G0000"] == "zero counts in every sample"
    assert removed["G0001"] == "fewer than 3 samples with >= 10 counts"
    assert set(out.layers) == {"counts", "normalized", "vst", "logcpm"}
    # library size and detected genes are over all genes, before the filter
    np.testing.assert_array_equal(out.obs["library_size"], counts.sum(axis=1))
    np.testing.assert_array_equal(out.obs["n_detected"], (counts > 0).sum(axis=1))
    kept_idx = adata.var_names.get_indexer(out.var_names)
    np.testing.assert_array_equal(out.layers["counts"].toarray(), counts[:, kept_idx])
    # logCPM by hand for one entry
    i, j = 5, 17
    hand = np.log2(counts[i, kept_idx[j]] / counts[i].sum() * 1e6 + 1)
    assert out.layers["logcpm"][i, j] == pytest.approx(hand, rel=1e-12)
    np.testing.assert_array_equal(out.X, out.layers["vst"])
    # the VST is one increasing function of the normalized count, shared by all genes
    norm, vst = out.layers["normalized"].ravel(), out.layers["vst"].ravel()
    order = np.argsort(norm, kind="stable")
    assert np.all(np.diff(vst[order]) >= -1e-12)


def test_logcpm_of_old_samples_unchanged_when_a_batch_is_added():
    counts, obs = simulate(seed=11, n_patients=6, n_genes=250)
    first = make_adata(counts, obs)
    new_counts, new_obs = simulate(seed=12, n_patients=6, n_genes=250)
    new_obs["sample_id"] = new_obs["sample_id"] + "_b2"
    new_obs["batch"] = "B2"
    both = make_adata(np.vstack([counts, new_counts]), pd.concat([obs, new_obs]))
    a = ex.normalize(first, min_count=10, min_samples=3)
    b = ex.normalize(both, min_count=10, min_samples=3)
    genes = a.var_names.intersection(b.var_names)
    old = list(first.obs_names)
    np.testing.assert_array_equal(a[old, genes].layers["logcpm"], b[old, genes].layers["logcpm"])
    # whereas the size factors of the old samples do change (they depend on the cohort)
    assert not np.allclose(a.obs["size_factor"], b.obs.loc[old, "size_factor"], rtol=1e-6)


def test_exclude_removes_samples_and_unknown_id_is_an_error():
    counts, obs = simulate(seed=5, n_genes=200)
    adata = make_adata(counts, obs)
    out = ex.normalize(adata, exclude=["P01_D7"])
    assert "P01_D7" not in out.obs_names and out.n_obs == adata.n_obs - 1
    assert out.uns["excluded_samples"] == ["P01_D7"]
    table = ex.qc_table(out, excluded_obs=ex.excluded_library(adata, ["P01_D7"]))
    row = table.set_index("sample_id").loc["P01_D7"]
    assert bool(row["excluded"]) and row["reason"] == "excluded by config"
    assert row["library_size"] == counts[adata.obs_names.get_loc("P01_D7")].sum()
    with pytest.raises(InputError, match="NOPE"):
        ex.normalize(adata, exclude=["NOPE"])


def test_normalize_by_group_matches_each_group_alone():
    counts, obs = simulate(seed=9, n_patients=5, n_genes=200)
    obs2 = obs.copy()
    obs["cell_type"], obs2["cell_type"] = "T", "NK"
    obs2["sample_id"] = obs2["sample_id"] + "_NK"
    rng = np.random.default_rng(2)
    counts2 = rng.binomial(counts, 0.3)
    adata = make_adata(np.vstack([counts, counts2]), pd.concat([obs, obs2]))
    groups = ex.normalize_by_group(adata, min_count=5, min_samples=2)
    assert sorted(groups) == ["NK", "T"]
    alone = ex.normalize(
        make_adata(counts2, obs2), min_count=5, min_samples=2, size_factor_method="poscounts"
    )
    np.testing.assert_allclose(groups["NK"].obs["size_factor"], alone.obs["size_factor"])
    assert groups["T"].n_obs == len(obs)


# --- QC statistics ------------------------------------------------------------------------


def test_pca_and_distances_agree_with_direct_computation():
    rng = np.random.default_rng(4)
    mat = rng.normal(size=(12, 40)) + np.linspace(0, 3, 40)
    adata = ad.AnnData(X=mat.copy())
    adata.layers["vst"] = mat
    scores, frac = ex.pca(adata, n_components=3, n_top_genes=25)
    top = np.argsort(-mat.var(axis=0, ddof=1), kind="stable")[:25]
    centred = mat[:, top] - mat[:, top].mean(axis=0)
    eig = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1]
    np.testing.assert_allclose(frac.to_numpy(), eig[:3] / eig.sum(), rtol=1e-10)
    np.testing.assert_allclose(scores.var(axis=0, ddof=1).to_numpy(), eig[:3], rtol=1e-10)
    dist = ex.sample_distances(adata)
    np.testing.assert_allclose(dist.to_numpy(), squareform(pdist(mat)), atol=1e-10)


def test_outlier_detection_finds_a_planted_sample_and_spares_the_rest():
    counts, obs = simulate(seed=21, n_patients=10, n_genes=500)
    adata = make_adata(counts, obs)
    clean = ex.qc_table(ex.normalize(adata, min_count=5))
    assert not clean["outlier"].any(), clean.loc[clean["outlier"], "reason"].tolist()

    rng = np.random.default_rng(0)
    bad = counts.copy()
    target = 13
    # degraded library: each gene randomly distorted, as with RNA degradation
    bad[target] = np.rint(bad[target] * np.exp(rng.normal(0, 1.0, bad.shape[1])))
    low = 27
    bad[low] = rng.binomial(bad[low], 0.02)  # a library 50x smaller than the others
    table = ex.qc_table(ex.normalize(make_adata(bad, obs), min_count=5)).set_index("sample_id")
    name, low_name = obs["sample_id"][target], obs["sample_id"][low]
    assert table.loc[name, "distance_outlier"]
    assert "nearest samples in PCA space" in table.loc[name, "reason"]
    assert table.loc[low_name, "low_library_size"]
    assert "low library size" in table.loc[low_name, "reason"]
    others = table.drop(index=[name, low_name])
    assert not others["outlier"].any(), others.loc[others["outlier"], "reason"].tolist()


def test_robust_z_by_hand():
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD = median(|x-3|) = median(2,1,0,1,97) = 1
    np.testing.assert_allclose(ex.robust_z(x), (x - 3) / 1.4826)


# --- batches ------------------------------------------------------------------------------


def test_variance_by_factor_matches_ols_and_finds_the_batch():
    counts, obs = simulate(
        seed=31,
        n_patients=8,
        n_genes=400,
        batch_of=lambda p, v: f"B{(p + v) % 2 + 1}",
        batch_lfc=0.8,
    )
    out = ex.normalize(make_adata(counts, obs), min_count=5)
    scores, frac = ex.pca(out, n_components=6)
    table = ex.variance_by_factor(scores, frac, out.obs)
    data = scores.join(out.obs[["batch", "visit", "patient_id"]])
    for factor in ("batch", "visit", "patient_id"):
        for pc in ("PC1", "PC3"):
            fit = smf.ols(f"{pc} ~ C({factor})", data=data).fit()
            row = table[(table["factor"] == factor) & (table["component"] == pc)].iloc[0]
            assert row["r_squared"] == pytest.approx(fit.rsquared, rel=1e-9)
            assert row["adj_r_squared"] == pytest.approx(fit.rsquared_adj, rel=1e-9)
            assert row["pvalue"] == pytest.approx(fit.f_pvalue, rel=1e-6)
    weighted = table[table["component"] == "weighted"].set_index("factor")
    per_pc = table[(table["factor"] == "batch") & (table["component"] != "weighted")]
    hand = (per_pc["r_squared"] * per_pc["variance_fraction"]).sum() / frac.sum()
    assert weighted.loc["batch", "r_squared"] == pytest.approx(hand, rel=1e-12)
    assert weighted.loc["batch", "r_squared"] > weighted.loc["visit", "r_squared"]
    assert weighted.loc["batch", "r_squared"] > 0.3


def _design(rows):
    return pd.DataFrame(rows, columns=["patient_id", "visit", "batch"])


def test_batch_estimable_cases():
    grid = [(p, v) for p in ["P1", "P2", "P3", "P4"] for v in ["D0", "D7", "D14"]]
    one = _design([(p, v, "B1") for p, v in grid])
    ok, why = ex.batch_estimable(one)
    assert not ok and "one sequencing batch" in why

    nested = _design([(p, v, "B1" if p in ("P1", "P2") else "B2") for p, v in grid])
    ok, why = ex.batch_estimable(nested)
    assert not ok and "nested in patient" in why

    same = _design([(p, v, f"B_{v}") for p, v in grid])
    ok, why = ex.batch_estimable(same)
    assert not ok and "identical to visit" in why

    by_visit = _design([(p, v, "B1" if v in ("D0", "D7") else "B2") for p, v in grid])
    ok, why = ex.batch_estimable(by_visit)
    assert not ok and "determined by visit" in why

    crossed = _design([(p, v, "B1" if (int(p[1]) + len(v)) % 2 else "B2") for p, v in grid])
    ok, why = ex.batch_estimable(crossed)
    assert ok, why

    # B1 holds patients P1-P2 entirely (a patient contrast); B2/B3 split P3-P4 by visit:
    # not nested in patient nor fixed by visit, yet only one of two contrasts is estimable
    def partial_batch(p, v):
        if p in ("P1", "P2"):
            return "B1"
        return "B2" if v == "D0" else "B3"

    partial = _design([(p, v, partial_batch(p, v)) for p, v in grid])
    ok, why = ex.batch_estimable(partial)
    assert not ok and "only 1 of 2" in why


def test_qc_figures_are_written(tmp_path):
    from rhlh.figures import expression as fe
    from rhlh.io import save_figure

    counts, obs = simulate(
        seed=41, n_patients=5, n_genes=200, batch_of=lambda p, v: f"B{v % 2 + 1}"
    )
    adata = make_adata(counts, obs)
    # h5ad round trips turn string columns into categoricals: the plots must cope
    adata.obs["visit"] = pd.Categorical(adata.obs["visit"], categories=VISITS)
    norm = ex.normalize(adata, min_count=5, exclude=["P00_D0"])
    qc = ex.qc_table(norm, excluded_obs=ex.excluded_library(adata, ["P00_D0"]))
    scores, frac = ex.pca(norm, n_components=4)
    save_figure(fe.plot_library_sizes(qc), tmp_path / "lib.png")
    save_figure(
        fe.plot_pca(
            scores, frac, norm.obs["visit"], title="visit", order=VISITS, flagged=["P01_D7"]
        ),
        tmp_path / "pca.png",
    )
    save_figure(
        fe.plot_sample_distances(ex.sample_distances(norm), norm.obs, visit_order=VISITS),
        tmp_path / "dist.png",
    )
    save_figure(
        fe.plot_batch_variance(ex.variance_by_factor(scores, frac, norm.obs)), tmp_path / "bv.png"
    )
    for name in ("lib", "pca", "dist", "bv"):
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000
