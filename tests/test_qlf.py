"""rhlh.qlf (the calibrated mode's quasi-likelihood tests) against edgeR 3.40 / limma 3.54.

The reference (tests/fixtures/qlf_edger/, written by run_edger_ql.R beside it) is edgeR's
glmQLFit / glmQLFTest on two real count matrices of tests/fixtures/deseq2_real, fed the same
NB dispersions (DESeq2's trend) and offsets (log DESeq2 size factors) as rhlh's QL fit.
"""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import polygamma

from rhlh import de, qlf
from rhlh.design import build_design

REAL = Path(__file__).parent / "fixtures" / "deseq2_real"
REF = Path(__file__).parent / "fixtures" / "qlf_edger"


def _read(path):
    with gzip.open(path, "rt") if str(path).endswith(".gz") else open(path) as fh:
        return pd.read_csv(fh, sep="\t")


@pytest.fixture(scope="module", params=["human_gender", "marioni"])
def case(request):
    name = request.param
    d = REAL / name
    counts = _read(d / "counts.tsv.gz").set_index("gene_id")
    coldata = _read(d / "coldata.tsv").set_index("sample_id")
    spec = _read(d / "design.tsv").iloc[0]
    sf = _read(d / "size_factors.tsv").set_index("sample_id")["size_factor"]
    disp = _read(d / "dispersions.tsv.gz").set_index("gene_id")["dispFit"]
    ref = _read(REF / f"{name}.tsv.gz").set_index("gene_id")
    prior = float(_read(REF / f"{name}_prior.tsv")["df_prior"].iloc[0])
    counts = counts.loc[ref.index]
    samples = coldata.astype(str)
    levels = {spec.factor: [spec.reference, spec.level]}
    full = build_design(samples, spec.formula, levels=levels, reference=None)
    reduced = build_design(samples, spec.reduced, levels=levels, reference=None)
    y = counts[samples.index].to_numpy(dtype=float).T
    trend = disp.loc[ref.index].to_numpy()
    s = sf.loc[samples.index].to_numpy()
    X = full.matrix.to_numpy(dtype=float)
    fit = dict(min_mu=qlf.MIN_MU, step="", closed_form=False)
    _, mu = de._nb_fit(y, s, X, trend, **fit)
    _, mu0 = de._nb_fit(y, s, reduced.matrix.to_numpy(dtype=float), trend, **fit)
    return dict(
        name=name,
        y=y,
        mu=mu,
        mu0=mu0,
        X=X,
        trend=trend,
        ref=ref,
        prior=prior,
        df_test=full.rank - reduced.rank,
    )


def test_deviance_and_residual_df_match_edger(case):
    ref = case["ref"]
    dev = qlf.nb_deviance(case["y"], case["mu"], case["trend"])
    rel = np.abs(dev - ref["deviance"].to_numpy()) / np.maximum(ref["deviance"].to_numpy(), 1e-3)
    zeros = (case["y"] == 0).any(axis=0)
    assert rel[~zeros].max() < 1e-6
    if zeros.any():
        # a group of all zeros: edgeR's coefficient runs to -inf, ours stops at -30 (log2) or
        # at the bounded optimiser; 90% of those genes agree to 1e-3 (Marioni: 1e-4)
        assert np.quantile(rel[zeros], 0.9) < 1e-3
    dfr = qlf.residual_df(case["y"], case["mu"], case["X"])
    np.testing.assert_array_equal(dfr, ref["df_residual"].to_numpy())


def test_f_prior_and_squeeze_match_limma(case):
    """limma's fitFDist / squeezeVar on edgeR's own QL dispersions (s2 = deviance / df)."""
    ref = case["ref"]
    s2, dfr = ref["s2"].to_numpy(), ref["df_residual"].to_numpy()
    prior = qlf.fit_f_prior(s2, dfr, covariate=ref["AveLogCPM"].to_numpy())
    assert prior.df_prior == pytest.approx(case["prior"], rel=1e-6)
    ok = dfr > 0
    np.testing.assert_allclose(prior.s2_prior[ok], ref["var_prior"][ok], rtol=1e-6)
    d0 = prior.df_prior
    post = (d0 * prior.s2_prior + dfr * np.nan_to_num(s2)) / (d0 + dfr)
    np.testing.assert_allclose(post[ok], ref["var_post"][ok], rtol=1e-6)


def test_f_test_matches_glmqlftest(case):
    """End to end on humanGender (every gene with counts in both sexes); on Marioni the prior
    df is huge (255) and moves with the deviances of the all-zero groups above, so the
    end-to-end check there is the squeeze above plus the rank agreement of F."""
    ref = case["ref"]
    ql = qlf.ql_fit(case["y"], case["mu"], case["trend"], case["X"], ref["AveLogCPM"])
    dev0 = qlf.nb_deviance(case["y"], case["mu0"], case["trend"])
    stat, p = qlf.f_test(dev0, ql, case["df_test"])
    if case["name"] == "marioni":
        from scipy.stats import spearmanr

        assert spearmanr(stat, ref["F"]).statistic > 0.999
        return
    assert ql.df_prior == pytest.approx(case["prior"], rel=1e-5)
    np.testing.assert_allclose(ql.s2_post, ref["var_post"], rtol=1e-5)
    # F is a difference of two deviances over s2: absolute error of the fits' convergence
    np.testing.assert_allclose(stat, ref["F"], rtol=1e-4, atol=1e-4)
    big = ref["F"].to_numpy() > 1
    np.testing.assert_allclose(np.log(p[big]), np.log(ref["PValue"].to_numpy()[big]), rtol=1e-4)


def test_trigamma_inverse_inverts():
    x = np.array([1e-3, 0.1, 1.0, 7.5, 300.0, 1e5])
    np.testing.assert_allclose(qlf.trigamma_inverse(polygamma(1, x)), x, rtol=1e-7)


def test_f_prior_recovers_simulated_prior():
    """s2 drawn from the scaled-F law the prior assumes: its df and scale come back."""
    rng = np.random.default_rng(5)
    n, d, d0, s0 = 20000, 10.0, 8.0, 0.7
    true = s0 * d0 / rng.chisquare(d0, n)  # scaled inverse chi-square variances
    s2 = true * rng.chisquare(d, n) / d
    prior = qlf.fit_f_prior(s2, np.full(n, d))
    assert prior.df_prior == pytest.approx(d0, rel=0.1)
    assert np.median(prior.s2_prior) == pytest.approx(s0, rel=0.05)
    same = qlf.fit_f_prior(rng.chisquare(d, n) / d * 0.7, np.full(n, d))
    assert np.isinf(same.df_prior) or same.df_prior > 200  # no extra spread: no shrinkage limit
