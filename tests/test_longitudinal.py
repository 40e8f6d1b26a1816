"""Tests of rhlh.longitudinal against hand computations, OLS identities and simulations."""

import itertools
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from rhlh import lmm
from rhlh import longitudinal as lg
from rhlh import stats as rst

VISITS = ["D0", "D7", "D14", "D28"]


def simulate(
    n_resp=10,
    n_non=10,
    visits=VISITS,
    features=("F",),
    effect=None,
    seed=1,
    sd_patient=0.5,
    sd_noise=0.3,
    drop=0.0,
    sd_slope=0.0,
):
    """Random-intercept data; effect[feature] = per-visit shift for responders only;
    ``sd_slope``: each patient also drifts by their own amount per visit (a random slope)."""
    rng = np.random.default_rng(seed)
    effect = effect or {}
    rows = []
    for f in features:
        for p in range(n_resp + n_non):
            resp = p < n_resp
            u = rng.normal(0, sd_patient)
            slope = rng.normal(0, sd_slope) if sd_slope else 0.0
            for i, v in enumerate(visits):
                shift = effect.get(f, [0] * len(visits))[i] if resp else 0.0
                rows.append(
                    {
                        "patient_id": f"P{p:02d}",
                        "visit": v,
                        "responder": resp,
                        "feature": f,
                        "value": 2 + u + slope * i + shift + rng.normal(0, sd_noise),
                    }
                )
    df = pd.DataFrame(rows)
    if drop:
        df = df[rng.random(len(df)) >= drop]
    return df.reset_index(drop=True)


# ---------------------------------------------------------------- change_from_baseline


def test_change_from_baseline_hand_values():
    df = pd.DataFrame(
        {
            "patient_id": ["A", "A", "A", "B", "B", "C"],
            "visit": ["D0", "D7", "D14", "D7", "D0", "D7"],
            "feature": ["x"] * 6,
            "value": [1.0, 0.5, 2.0, 7.0, 4.0, 3.0],
        }
    )
    out = lg.change_from_baseline(df, "value", "feature")
    assert list(out.index) == list(df.index)
    assert out["baseline_value"].tolist()[:5] == [1.0, 1.0, 1.0, 4.0, 4.0]
    np.testing.assert_allclose(out["change"].to_numpy()[:5], [0.0, -0.5, 1.0, 3.0, 0.0])
    assert np.isnan(out.loc[5, "change"])  # patient C has no D0


def test_change_from_baseline_separates_features_and_rejects_two_baselines():
    df = pd.DataFrame(
        {
            "patient_id": ["A"] * 4,
            "visit": ["D0", "D7", "D0", "D7"],
            "feature": ["x", "x", "y", "y"],
            "value": [1.0, 3.0, 10.0, 5.0],
        }
    )
    out = lg.change_from_baseline(df, "value", "feature")
    assert out["change"].tolist() == [0.0, 2.0, 0.0, -5.0]
    bad = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="several D0"):
        lg.change_from_baseline(bad, "value", "feature")


# ---------------------------------------------------------------- rmcorr


def _rm_data(seed=3, n_subj=8, per=6, slope=-0.6):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subj):
        off_x, off_y = rng.normal(0, 3), rng.normal(0, 3)
        for _ in range(rng.integers(3, per + 1)):
            x = rng.normal()
            rows.append(
                {"patient_id": f"S{s}", "x": off_x + x, "y": off_y + slope * x + rng.normal(0, 0.7)}
            )
    return pd.DataFrame(rows)


def test_rmcorr_matches_explicit_ancova():
    df = _rm_data()
    res = rst.rmcorr(df, "x", "y")
    # ANCOVA y ~ subject + x by OLS with explicit dummies
    dummies = pd.get_dummies(df["patient_id"], dtype=float)
    full = sm.OLS(df["y"], pd.concat([dummies, df["x"]], axis=1)).fit()
    reduced = sm.OLS(df["y"], dummies).fit()
    ss_value = reduced.ssr - full.ssr
    r = np.sign(full.params["x"]) * np.sqrt(ss_value / (ss_value + full.ssr))
    k = df["patient_id"].nunique()
    assert res["dof"] == len(df) - k - 1 == int(full.df_resid)
    assert res["r"] == pytest.approx(r, abs=1e-12)
    # the rmcorr p-value is the p-value of the slope in that ANCOVA
    assert res["pvalue"] == pytest.approx(full.pvalues["x"], rel=1e-8)
    z, half = np.arctanh(r), 1.959963984540054 / np.sqrt(res["dof"] - 1)
    assert res["ci_low"] == pytest.approx(np.tanh(z - half), abs=1e-12)
    assert res["ci_high"] == pytest.approx(np.tanh(z + half), abs=1e-12)
    assert res["r"] < -0.5 and res["n"] == len(df) and res["n_subjects"] == k


def test_rmcorr_ignores_between_subject_association():
    # strong positive association of subject means, negative within subjects
    rows = []
    for s in range(6):
        for j, dx in enumerate([-1.0, 0.0, 1.0]):
            rows.append({"patient_id": s, "x": 10 * s + dx, "y": 10 * s - dx + 0.1 * (j == 1)})
    df = pd.DataFrame(rows)
    assert np.corrcoef(df["x"], df["y"])[0, 1] > 0.9
    res = rst.rmcorr(df, "x", "y")
    # by hand, per subject: x deviations (-1, 0, 1), y deviations (1, .1, -1) - .1/3
    # -> Sxy = -2, Sxx = 2, Syy = 2 + .02/3 (times 6 subjects, which cancels)
    assert res["r"] == pytest.approx(-2 / np.sqrt(2 * (2 + 0.02 / 3)), abs=1e-12)
    assert res["dof"] == 18 - 6 - 1


def test_rmcorr_drops_single_observation_subjects_and_nan():
    df = _rm_data()
    extra = pd.DataFrame({"patient_id": ["lonely", "S0"], "x": [100.0, np.nan], "y": [-5.0, 1.0]})
    a = rst.rmcorr(df, "x", "y")
    b = rst.rmcorr(pd.concat([df, extra], ignore_index=True), "x", "y")
    assert a == b


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R not installed")
def test_rmcorr_matches_r_lm(tmp_path):
    df = _rm_data(seed=11)
    path = tmp_path / "d.tsv"
    df.to_csv(path, sep="\t", index=False)
    code = (
        f"d <- read.delim('{path}'); d$patient_id <- factor(d$patient_id);"
        "m <- lm(y ~ patient_id + x, data = d); a <- anova(m);"
        "ss <- a['x', 'Sum Sq'];"
        "r <- sign(coef(m)['x']) * sqrt(ss / (ss + a['Residuals', 'Sum Sq']));"
        "cat(sprintf('%.12f %d %.12g', r, m$df.residual, summary(m)$coefficients['x', 4]))"
    )
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r, dof, p = out.stdout.split()
    res = rst.rmcorr(df, "x", "y")
    assert res["r"] == pytest.approx(float(r), abs=1e-9)
    assert res["dof"] == int(dof)
    assert res["pvalue"] == pytest.approx(float(p), rel=1e-6)


# ---------------------------------------------------------------- BH


def test_bh_adjust_matches_statsmodels_and_keeps_nan():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5, 0.001])
    out = rst.bh_adjust(p)
    ok = ~np.isnan(p)
    np.testing.assert_allclose(out[ok], multipletests(p[ok], method="fdr_bh")[1])
    assert np.isnan(out[2])


# ---------------------------------------------------------------- mixed model


def test_balanced_estimates_equal_split_plot_anova():
    """Balanced complete data: REML contrasts = mean within-patient changes, F = split-plot F."""
    df = simulate(n_resp=8, n_non=7, effect={"F": [0, -0.3, -0.6, -0.9]}, seed=5)
    res = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, interaction_test="wald_f")
    wide = df.pivot_table(index=["patient_id", "responder"], columns="visit", values="value")
    for flag, grp in ((True, "responder"), (False, "non-responder")):
        w = wide.xs(flag, level="responder")
        for v in VISITS[1:]:
            row = res[(res.term == "visit_vs_baseline") & (res.group == grp) & (res.visit == v)]
            assert row["estimate"].item() == pytest.approx((w[v] - w["D0"]).mean(), abs=1e-6)
            assert row["n_patients"].item() == len(w)
    # classical split-plot: patient as fixed block, test group:visit after visit
    d = df.assign(g=df.responder.map({True: "R", False: "N"}))
    with warnings.catch_warnings():
        # patient blocks absorb the group main effect: the rank deficiency is expected
        warnings.simplefilter("ignore")
        full = sm.OLS.from_formula("value ~ C(patient_id) + C(visit):g", d).fit()
    red = sm.OLS.from_formula("value ~ C(patient_id) + C(visit)", d).fit()
    f_test = full.compare_f_test(red)
    inter = res[res.term == "interaction"].iloc[0]
    assert inter["converged"]
    assert inter["pvalue"] == pytest.approx(f_test[1], rel=1e-4)
    assert f"df=3,{int(full.df_resid)}" in inter["method"]
    # within-patient SE of a contrast: sqrt(2 * residual MS / n) in the balanced design
    row = res[(res.term == "visit_vs_baseline") & (res.group == "responder") & (res.visit == "D7")]
    assert row["se"].item() == pytest.approx(np.sqrt(2 * full.scale / 8), rel=1e-3)
    truth = np.mean([-0.3, -0.6, -0.9])
    assert inter["estimate"] < 0 and abs(inter["estimate"] - truth) < 3 * inter["se"]


def test_planted_decline_in_responders_only():
    effect = {"IFNG": [0, -0.4, -0.8, -1.0], "IL6": [0, 0, 0, 0]}
    df = simulate(n_resp=11, n_non=9, features=("IFNG", "IL6"), effect=effect, seed=2, drop=0.1)
    res = lg.fit_visit_by_response(df, visits=VISITS, n_boot=30, seed=4)
    assert set(res.columns) >= set(lg.RESULT_COLUMNS)
    inter = res[res.term == "interaction"].set_index("feature")
    # the permutation test's smallest p: no relabelling of the patients beats the observed one
    assert inter.loc["IFNG", "pvalue"] == pytest.approx(1 / 2000)
    assert inter.loc["IFNG", "estimate"] < -0.4
    assert inter.loc["IL6", "pvalue"] > 0.01
    r = res[(res.feature == "IFNG") & (res.term == "visit_vs_baseline")]
    for i, v in enumerate(VISITS[1:], start=1):
        resp = r[(r.group == "responder") & (r.visit == v)].iloc[0]
        non = r[(r.group == "non-responder") & (r.visit == v)].iloc[0]
        assert abs(resp.estimate - effect["IFNG"][i]) < 3 * resp.se
        assert resp.ci_low < effect["IFNG"][i] < resp.ci_high
        assert abs(non.estimate) < 3 * non.se
        assert resp.boot_ci_low <= resp.estimate <= resp.boot_ci_high
    assert r[r.group == "responder"]["pvalue"].max() < 0.01
    # padj: BH over the 2 features within each term x group x visit
    for _, g in res.groupby(["term", "group", "visit"]):
        np.testing.assert_allclose(g.padj, multipletests(g.pvalue, method="fdr_bh")[1])
    assert (res.converged).all()
    assert set(res.group) == {"responder", "non-responder", "all"}


def test_null_cohort_nominal_rejection_rate():
    """200 null features: share of p < 0.05 within 99.9% binomial bounds for every test."""
    n_feat = 200
    df = simulate(
        n_resp=6,
        n_non=6,
        visits=VISITS[:3],
        seed=9,
        features=tuple(f"F{i:03d}" for i in range(n_feat)),
        drop=0.05,
    )
    res = lg.fit_visit_by_response(df, visits=VISITS[:3], n_boot=0)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n_feat, 0.05)
    for key, g in res.groupby(["term", "group", "visit"]):
        assert len(g) == n_feat
        k = int((g.pvalue < 0.05).sum())
        assert lo <= k <= hi, (key, k)
    # under the null, p-values are uniform
    inter = res[res.term == "interaction"].pvalue
    assert stats.kstest(inter, "uniform").pvalue > 0.001


def test_permutation_interaction_equals_enumeration_by_hand():
    """5 + 3 patients: the p-value is the share of the C(8, 5) = 56 labellings whose Wald F
    (refitted one at a time, :func:`rhlh.lmm.fit`) is at least the observed one."""
    df = simulate(n_resp=5, n_non=3, effect={"F": [0, -0.2, -0.4, -0.3]}, seed=21)
    res = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0)
    inter = res[res.term == "interaction"].iloc[0]
    assert "(56 all labellings)" in inter["method"]
    patients = sorted(df["patient_id"].unique())
    wald = []
    for chosen in itertools.combinations(patients, 5):
        relabelled = df.assign(responder=df["patient_id"].isin(chosen))
        out = lg.fit_visit_by_response(
            relabelled, visits=VISITS, n_boot=0, interaction_test="wald_f"
        )
        wald.append(out.loc[out.term == "interaction", "pvalue"].item())
    observed = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, interaction_test="wald_f")
    p_obs = observed.loc[observed.term == "interaction", "pvalue"].item()
    # same df in every labelling: a larger F is a smaller Wald p
    expected = np.mean(np.asarray(wald) <= p_obs * (1 + 1e-6))
    assert inter["pvalue"] == pytest.approx(expected, abs=1e-12)
    assert 1 / 56 < inter["pvalue"] < 1
    # seeded random labellings when there are more than n_perm of them
    a = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, n_perm=40, seed=3)
    b = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, n_perm=40, seed=3)
    pd.testing.assert_frame_equal(a, b)
    row = a[a.term == "interaction"].iloc[0]
    assert "(40 random labellings)" in row["method"]
    assert row["pvalue"] * 41 == pytest.approx(round(row["pvalue"] * 41))


def test_permutation_interaction_holds_its_level_with_random_slopes():
    """Each patient drifts by their own amount: the random-intercept Wald F against its F
    reference rejects too often, the permutation of responder labels does not."""
    n_feat = 200
    df = simulate(
        n_resp=8,
        n_non=8,
        seed=17,
        features=tuple(f"F{i:03d}" for i in range(n_feat)),
        sd_slope=0.5,
    )
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n_feat, 0.05)
    p = {}
    for test in ("wald_f", "permutation"):
        res = lg.fit_visit_by_response(
            df, visits=VISITS, n_boot=0, interaction_test=test, n_perm=199, seed=2
        )
        p[test] = res.loc[res.term == "interaction", "pvalue"].to_numpy()
        assert len(p[test]) == n_feat
    # measured (seed 17): Wald F KS p 9e-9, 27 of 200 below 0.05; permutation KS p 0.10, 18
    assert stats.kstest(p["wald_f"], "uniform").pvalue < 1e-4
    assert lo <= (p["permutation"] < 0.05).sum() <= hi
    assert stats.kstest(p["permutation"], "uniform").pvalue > 0.001


def test_bootstrap_is_seeded_and_responds_to_seed():
    df = simulate(n_resp=6, n_non=6, visits=VISITS[:3], seed=3)
    a = lg.fit_visit_by_response(df, visits=VISITS[:3], n_boot=20, seed=1)
    b = lg.fit_visit_by_response(df, visits=VISITS[:3], n_boot=20, seed=1)
    c = lg.fit_visit_by_response(df, visits=VISITS[:3], n_boot=20, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a.boot_ci_low, c.boot_ci_low)
    np.testing.assert_allclose(a.estimate, c.estimate)
    assert (a.n_boot_ok >= 10).all()


def test_min_patients_drops_thin_cells():
    df = simulate(n_resp=6, n_non=6, seed=4)
    # only two non-responders keep their D28 sample
    thin = (df.visit == "D28") & (~df.responder) & (~df.patient_id.isin(["P06", "P07"]))
    res = lg.fit_visit_by_response(df[~thin], visits=VISITS, n_boot=0, min_patients=3)
    nr = res[(res.group == "non-responder")]
    assert "D28" not in set(nr.visit)
    assert "D28" in set(res[res.group == "responder"].visit)
    inter = res[res.term == "interaction"].iloc[0]
    assert "df=2" in inter["method"] and "D7,D14" in inter["method"]


def test_lrt_option_agrees_with_wald_on_strong_signal():
    df = simulate(effect={"F": [0, -1, -1, -1]}, seed=8)
    res = lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, interaction_test="lrt")
    inter = res[res.term == "interaction"].iloc[0]
    assert inter["method"].startswith("LRT of ML fits, chi2 df=3")
    assert inter["pvalue"] < 1e-4
    with pytest.raises(ValueError):
        lg.fit_visit_by_response(df, visits=VISITS, n_boot=0, interaction_test="magic")


def test_non_converged_fit_is_flagged_not_adjusted(monkeypatch):
    df = simulate(features=("A", "B"), seed=6)
    real = lg._fit

    def flaky(y, X, groups, reml):
        params, cov, llf, ok = real(y, X, groups, reml)
        # pretend feature A (mean near 2, first call pattern) never converges
        return params, cov, llf, ok and not flaky.fail

    flaky.fail = False
    monkeypatch.setattr(lg, "_fit", flaky)
    good = lg.fit_visit_by_response(df[df.feature == "B"], visits=VISITS, n_boot=0)
    flaky.fail = True
    bad = lg.fit_visit_by_response(df[df.feature == "A"], visits=VISITS, n_boot=0)
    assert good.converged.all() and good.padj.notna().all()
    assert (~bad.converged).all() and bad.padj.isna().all()
    assert bad.estimate.notna().all()


def test_unknown_response_only_in_all_group():
    df = simulate(n_resp=5, n_non=5, seed=12)
    extra = simulate(n_resp=4, n_non=0, seed=13)
    extra["patient_id"] = "U" + extra["patient_id"]
    extra["responder"] = None
    res = lg.fit_visit_by_response(pd.concat([df, extra]), visits=VISITS, n_boot=0)
    assert (res[res.group == "all"].n_patients[res.term == "visit_vs_baseline"] == 14).all()
    assert (res[res.group == "responder"].n_patients == 5).all()


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("sd_patient", [0.0, 0.4, 1.0])
def test_profiled_fit_matches_statsmodels(reml, sd_patient):
    """The 1-D profiled REML/ML fit reaches statsmodels MixedLM's optimum (unbalanced data)."""
    import warnings

    from statsmodels.regression.mixed_linear_model import MixedLM

    from rhlh.longitudinal import _fit

    rng = np.random.default_rng(int(sd_patient * 10) + reml)
    n_i = rng.integers(3, 9, 14)
    groups = np.repeat(np.arange(14), n_i)
    n = len(groups)
    X = np.column_stack([np.ones(n), rng.normal(size=n), (rng.random(n) < 0.5).astype(float)])
    y = X @ [1.0, 0.5, -0.3] + rng.normal(0, sd_patient, 14)[groups] + rng.normal(0, 1, n)
    params, cov, llf, ok = _fit(y, X, groups, reml)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = MixedLM(y, X, groups=groups).fit(reml=reml)
    assert ok
    np.testing.assert_allclose(params, ref.fe_params, atol=1e-5)
    assert llf == pytest.approx(ref.llf, abs=1e-4)
    # fixed-effect covariance (X'V^-1 X)^-1 as nlme/lme4; statsmodels' observed-information
    # version differs by a percent or two, and is unusable on the boundary (no patient
    # variance), where ours is the OLS covariance
    if float(np.asarray(ref.cov_re)[0, 0]) > 1e-3 * ref.scale:
        np.testing.assert_allclose(np.diag(cov), np.diag(ref.cov_params())[:3], rtol=0.05)
    else:
        ols = sm.OLS(y, X).fit()
        dof = n - 3 if reml else n
        np.testing.assert_allclose(cov, ols.normalized_cov_params * ols.ssr / dof, rtol=1e-3)


# ---------------------------------------------------------------- batched bootstrap refits


@pytest.mark.parametrize("reml", [True, False])
def test_batched_refits_match_one_at_a_time_fits(reml):
    """fit_many (all resamples at once, golden section + parabolic step) reaches the optimum of
    the one-at-a-time bounded Brent fit for each patient weighting, boundary fits included."""
    rng = np.random.default_rng(7)
    for sd_patient in (0.0, 0.6):
        n_i = rng.integers(2, 7, 16)  # unbalanced: several patient sizes
        groups = np.repeat(np.arange(16), n_i)
        n = len(groups)
        X = np.column_stack([np.ones(n), rng.normal(size=n), (rng.random(n) < 0.4).astype(float)])
        y = X @ [1.0, 0.5, -0.3] + rng.normal(0, sd_patient, 16)[groups] + rng.normal(0, 1, n)
        st = lmm.PatientStats(y, X, groups)
        W = rng.multinomial(16, np.full(16, 1 / 16), size=150).astype(float)
        W = W[~np.any(W @ st.S == 0, axis=1)]
        params, ok = st.fit_many(W, reml=reml)
        assert ok.mean() > 0.9
        for w, b, o in zip(W, params, ok, strict=True):
            ref, _, _, ref_ok = st.fit(w, reml=reml)
            assert o == ref_ok
            if o:
                np.testing.assert_allclose(b, ref, atol=1e-6)


def test_weighted_fit_is_the_fit_of_duplicated_patients():
    """A bootstrap weight of 2 is the same patient twice: compare with statsmodels MixedLM on
    the data with that patient's rows copied under a new id."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(10), 5)
    X = np.column_stack([np.ones(50), np.tile(np.arange(5.0), 10)])
    y = X @ [1.0, -0.2] + rng.normal(0, 0.8, 10)[groups] + rng.normal(0, 0.5, 50)
    w = np.ones(10)
    w[[2, 7]] = 2.0
    w[[4, 5]] = 0.0
    params, ok = lmm.PatientStats(y, X, groups).fit_many(w[None, :])
    rows = np.concatenate(
        [np.flatnonzero(groups == g) for g in range(10) for _ in range(int(w[g]))]
    )
    ids = np.concatenate([np.full(5, k) for k in range(int(w.sum()))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = MixedLM(y[rows], X[rows], groups=ids).fit(reml=True)
    assert ok[0]
    np.testing.assert_allclose(params[0], ref.fe_params, atol=1e-5)


def test_bootstrap_2000_seeded_identical_and_logs_progress(caplog):
    import logging

    from rhlh.logs import Progress

    df = simulate(features=("A", "B"), effect={"A": [0, -0.5, -1, -1]}, seed=5)
    state = {"last": None}
    orig = Progress.__init__

    def quick(self, *a, **k):  # every update logs, whatever the wall clock
        orig(self, *a, **{**k, "interval": 0.0, "state": state})

    with caplog.at_level(logging.INFO, logger="rhlh"):
        Progress.__init__ = quick
        try:
            a = lg.fit_visit_by_response(df, visits=VISITS, n_boot=2000, seed=11)
        finally:
            Progress.__init__ = orig
    b = lg.fit_visit_by_response(df, visits=VISITS, n_boot=2000, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert (a["n_boot_ok"] >= 1900).all()
    lines = [r.getMessage() for r in caplog.records if "mixed-model bootstrap" in r.getMessage()]
    assert lines and lines[-1].startswith("mixed-model bootstrap: 8000/8000 resamples (100%)")
    # the percentile interval of 2,000 refits brackets the estimate and is close to the Wald one
    inter = a[a["term"] == "interaction"].set_index("feature")
    for f in ("A", "B"):
        r = inter.loc[f]
        assert r.boot_ci_low < r.estimate < r.boot_ci_high
        width_boot, width_wald = r.boot_ci_high - r.boot_ci_low, r.ci_high - r.ci_low
        assert 0.6 < width_boot / width_wald < 1.4
