"""Tests of rhlh.response: measures, AUC, tests, BH, planted and null cohorts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rhlh import response as R
from rhlh import stats as rst

VISITS = ["D0", "D7", "D14", "D21", "D28", "D35"]
DAY = {v: int(v[1:]) for v in VISITS}
MEASURES = ["baseline", "change_D7", "change_D14", "auc_D28"]


def _responders(n=20, n_resp=13, seed=1):
    rng = np.random.default_rng(seed)
    flag = np.arange(n) < n_resp
    cls = np.where(flag, np.where(rng.random(n) < 0.5, "CR", "PR"), "NR")
    return pd.DataFrame(
        {
            "patient_id": [f"P{i:02d}" for i in range(n)],
            "responder": ["True" if f else "False" for f in flag],
            "response_class": cls,
            "reason": "sim",
        }
    )


def _cohort(n_features, planted=(), fall=1.5, seed=7, n=20, n_resp=13, missing=0.05):
    """Long table of ``n_features`` features; ``planted`` fall by ``fall`` in responders only."""
    rng = np.random.default_rng(seed)
    resp = _responders(n, n_resp, seed)
    flag = resp["responder"].eq("True").to_numpy()
    rows = []
    names = list(planted) + [f"F{k:03d}" for k in range(n_features - len(planted))]
    for f in names:
        level = rng.normal(0, 0.5, n)
        for i, pid in enumerate(resp["patient_id"]):
            for v in VISITS:
                if v != "D0" and rng.random() < missing:
                    continue
                shape = min(DAY[v] / 14.0, 1.0)
                mu = level[i] - (fall * shape if (f in planted and flag[i]) else 0.0)
                rows.append(
                    {
                        "sample_id": f"{pid}_{v}",
                        "patient_id": pid,
                        "visit": v,
                        "day": DAY[v] + (int(rng.integers(-1, 2)) if DAY[v] else 0),
                        "feature": f,
                        "value": mu + rng.normal(0, 0.3),
                    }
                )
    return pd.DataFrame(rows), resp


# --- hand-computed pieces -------------------------------------------------------------------


def test_auc_is_u_over_n1_n0_by_hand():
    x_resp = [1.0, 2.0, 5.0]
    x_non = [2.0, 3.0, 4.0, 6.0]
    # pairs (r < n) + half ties: 1 -> 4, 2 -> 3 + 0.5 (tie with 2), 5 -> 1  => 8.5 of 12
    assert rst.auc_lower(x_resp, x_non) == pytest.approx(8.5 / 12)
    u_non = stats.mannwhitneyu(x_non, x_resp).statistic
    assert u_non == 8.5
    assert rst.auc_lower(x_resp, x_non) == pytest.approx(u_non / (3 * 4))


def test_mann_whitney_exact_p_by_hand():
    # complete split: 1 of C(6,3) = 20 arrangements per tail, two-sided p = 2/20
    p, how = rst.mann_whitney([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert how == "exact"
    assert p == pytest.approx(0.1)
    # with a tie: exact enumeration over all 20 assignments by hand
    xr, xn = np.array([1.0, 2.0, 2.0]), np.array([2.0, 5.0, 6.0])
    pooled = np.concatenate([xr, xn])
    obs = abs(rst.auc_lower(xr, xn) - 0.5)
    hits = 0
    for idx in itertools.combinations(range(6), 3):
        mask = np.zeros(6, bool)
        mask[list(idx)] = True
        hits += abs(rst.auc_lower(pooled[mask], pooled[~mask]) - 0.5) >= obs - 1e-12
    p, how = rst.mann_whitney(xr, xn, rng=np.random.default_rng(0), n_perm=999)
    assert how.startswith("exact permutation")
    assert p == pytest.approx(hits / 20)


def _brute_force_p(xr, xn):
    """Two-sided p by listing every split of the pooled values into groups of the sizes given
    (itertools), with U counted pair by pair: P(|U - E U| >= |u - E U|)."""
    pooled = np.concatenate([xr, xn])
    n, k = len(pooled), len(xr)

    def u_stat(a, b):
        return sum((ai < bj) + 0.5 * (ai == bj) for ai in a for bj in b)

    mean = k * (n - k) / 2
    obs = abs(u_stat(xr, xn) - mean)
    hits = total = 0
    for idx in itertools.combinations(range(n), k):
        chosen = set(idx)
        a = [pooled[i] for i in idx]
        b = [pooled[i] for i in range(n) if i not in chosen]
        hits += abs(u_stat(a, b) - mean) >= obs - 1e-9
        total += 1
    return hits / total, total


# two-sided exact p-values of R's coin 1.4-2, wilcox_test(y ~ g, distribution = "exact")
# (R script in the test's docstring); responders first, 20 patients split 5/15 or 10/10
COIN_CASES = [
    ([1, 1, 1, 2, 3], [1, 4, 5, 6, 7, 8, 9, 9, 3, 2, 10, 11, 12, 13, 14], 0.00303147574819),
    (
        [0.1, 0.2, 0.2, 0.5, 0.9],
        [0.2, 0.3, 0.5, 0.5, 0.7, 0.8, 0.9, 1.1, 1.1, 1.2, 1.3, 1.3, 1.4, 1.6, 2.0],
        0.015866873065,
    ),
    ([0, 0, 1, 1, 2, 2, 3, 3, 4, 4], [1, 2, 2, 3, 4, 5, 5, 6, 6, 7], 0.026911169326),
    (
        [-0.5, -0.5, -0.2, 0, 0],
        [0, 0, 0, 0.1, 0.1, 0.3, -0.5, 0.4, 0.4, 0.6, 0.8, 0.8, 0.9, 1, -0.2],
        0.0124484004128,
    ),
]


@pytest.mark.parametrize("xr, xn, p_coin", COIN_CASES)
def test_mann_whitney_ties_exact_matches_coin(xr, xn, p_coin):
    """library(coin); d <- data.frame(y = c(xr, xn), g = factor(rep(c("r", "n"),
    c(length(xr), length(xn))), levels = c("r", "n")));
    pvalue(wilcox_test(y ~ g, data = d, distribution = "exact"))"""
    n, k = len(xr) + len(xn), len(xr)
    p, how = rst.mann_whitney(xr, xn, rng=np.random.default_rng(0), n_perm=99)
    assert how == f"exact permutation, {math.comb(n, k)} arrangements (ties)"
    assert p == pytest.approx(p_coin, rel=1e-9)
    # the rng and n_perm play no part in an exact p
    assert rst.mann_whitney(xr, xn, rng=np.random.default_rng(5), n_perm=9999)[0] == p


def test_mann_whitney_ties_exact_matches_brute_force_enumeration():
    # 20 patients split 5/15 with ties: all 15,504 splits listed one by one
    rng = np.random.default_rng(11)
    for _ in range(2):
        xr = rng.integers(0, 6, 5).astype(float)
        xn = rng.integers(2, 9, 15).astype(float)
        p_ref, total = _brute_force_p(xr, xn)
        assert total == 15504
        p, how = rst.mann_whitney(xr, xn)
        assert how == "exact permutation, 15504 arrangements (ties)"
        assert p == pytest.approx(p_ref, abs=1e-12)
    # the counted distribution has every arrangement once
    values, counts = rst.rank_sum_distribution(np.concatenate([xr, xn]), 5)
    assert counts.sum() == 15504 and np.all(counts >= 1)


def test_mann_whitney_without_ties_equals_scipy_exact():
    rng = np.random.default_rng(2)
    for k, m in ((3, 4), (5, 15), (10, 10), (7, 12)):
        x = rng.normal(size=k + m)
        ref = stats.mannwhitneyu(x[:k], x[k:], alternative="two-sided", method="exact").pvalue
        assert rst.mann_whitney(x[:k], x[k:]) == (pytest.approx(ref, rel=1e-12), "exact")
        # the tie-aware exact distribution gives the same p where there are no ties
        assert rst.mann_whitney_exact(x[:k], x[k:]) == pytest.approx(ref, rel=1e-9)


def test_mann_whitney_ties_above_threshold_is_seeded_permutation():
    xr, xn, p_coin = COIN_CASES[2]  # 184,756 arrangements
    p1, how = rst.mann_whitney(xr, xn, rng=np.random.default_rng(3), n_perm=4999, exact_max=1000)
    assert how == "permutation, 4999 resamples (ties)"
    p2, _ = rst.mann_whitney(xr, xn, rng=np.random.default_rng(3), n_perm=4999, exact_max=1000)
    assert p1 == p2
    # Monte Carlo error of p ~ 0.027 with 4999 draws: SD about 0.0023
    assert abs(p1 - p_coin) < 0.01
    assert rst.mann_whitney(xr, xn)[1].startswith("exact permutation, 184756 ")
    assert rst.EXACT_MAX_ARRANGEMENTS == 1_000_000


def test_trapezoid_auc_by_hand():
    # days 0, 7, 14, 28 (D21 missing: bridged linearly), values 0, -1, -2, -2
    # area = 7*(0-1)/2 + 7*(-1-2)/2 + 14*(-2-2)/2 = -3.5 - 10.5 - 28 = -42, per day -42/28 = -1.5
    assert rst.trapezoid_auc([0, 7, 14, 28], [0, -1, -2, -2]) == pytest.approx(-1.5)
    assert rst.trapezoid_auc([0, 7, 14, 28], [0, -1, -2, -2], per_day=False) == pytest.approx(-42)
    assert rst.trapezoid_auc([14, 0, 7], [-2, 0, -1]) == pytest.approx(-1.0)  # order of input


def test_patient_measures_by_hand_and_missing_end():
    long = pd.DataFrame(
        {
            "patient_id": ["A"] * 4 + ["B"] * 3,
            "visit": ["D0", "D7", "D14", "D28", "D0", "D7", "D14"],
            "day": [0, 7, 15, 28, 0, 6, 14],
            "feature": "S",
            "value": [3.0, 2.0, 1.0, 1.0, 5.0, 5.5, 4.0],
        }
    )
    m = R.patient_measures(long, VISITS).set_index(["patient_id", "measure"])["value"]
    assert m[("A", "baseline")] == 3.0
    assert m[("A", "change_D7")] == -1.0
    assert m[("A", "change_D14")] == -2.0
    # change 0, -1, -2, -2 at days 0, 7, 15, 28: (7*-1 + 8*-3 + 13*-4) / 2 / 28
    assert m[("A", "auc_D28")] == pytest.approx((7 * -1 + 8 * -3 + 13 * -4) / 2 / 28)
    assert m[("B", "change_D7")] == 0.5
    assert ("B", "auc_D28") not in m.index  # D28 missing: no truncated window
    raw = R.patient_measures(long, VISITS, auc_of="value").set_index(["patient_id", "measure"])
    assert raw.loc[("A", "auc_D28"), "value"] == pytest.approx((7 * 5 + 8 * 3 + 13 * 2) / 2 / 28)


def test_logistic_binary_feature_matches_2x2_table():
    # for a two-valued x the logistic MLE odds ratio is the cross-product ratio of the table,
    # and the likelihood-ratio test is the G test of independence
    x = np.array([1] * 10 + [0] * 10, float)
    y = np.array([1] * 7 + [0] * 3 + [1] * 3 + [0] * 7, bool)
    res = rst.logistic_per_sd(x, y)
    assert res["converged"]
    or_2x2 = (7 * 7) / (3 * 3)
    assert res["effect"] == pytest.approx(or_2x2 ** x.std(ddof=1), rel=1e-6)
    g = stats.chi2_contingency([[7, 3], [3, 7]], correction=False, lambda_="log-likelihood")
    assert res["pvalue"] == pytest.approx(g.pvalue, rel=1e-6)
    assert res["ci_low"] < res["effect"] < res["ci_high"]


def test_logistic_separation_is_reported_not_fitted():
    x = np.arange(10.0)
    res = rst.logistic_per_sd(x, x >= 5)
    assert not res["converged"]
    assert math.isnan(res["effect"]) and math.isnan(res["pvalue"])
    assert "complete separation" in res["note"]
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1], bool)
    x2 = np.array([0, 1, 2, 3, 4, 4, 6, 7, 8, 9], float)
    assert rst.separation(x2, y) == "quasi-complete"
    assert rst.separation(np.array([0, 5, 1, 6.0]), np.array([0, 0, 1, 1], bool)) is None


def test_spearman_matches_scipy_and_exact_enumeration():
    x = np.array([0.3, -1.2, 2.0, 0.1, 1.5, -0.4])
    r = np.array([0, 0, 2, 1, 2, 1], float)
    res = rst.spearman_ordinal(x, r, np.random.default_rng(3), n_perm=9999, n_boot=500)
    assert res["effect"] == pytest.approx(stats.spearmanr(x, r).statistic)
    # 6! = 720 pairings < n_perm: exact; enumerate by hand
    obs = abs(res["effect"])
    perms = [
        abs(stats.spearmanr(x, r[list(p)]).statistic) for p in itertools.permutations(range(6))
    ]
    assert res["pvalue"] == pytest.approx(np.mean(np.array(perms) >= obs - 1e-12))
    assert res["ci_low"] <= res["effect"] <= res["ci_high"]


def test_bh_within_family_measure_test():
    t = pd.DataFrame(
        {
            "family": ["gene"] * 3 + ["cytokine"],
            "measure": "baseline",
            "endpoint": "responder",
            "test": "mann_whitney",
            "pvalue": [0.01, 0.04, 0.03, 0.01],
            "converged": [True, True, True, True],
        }
    )
    out = R.adjust(t)
    assert out["padj"].tolist() == pytest.approx([0.03, 0.04, 0.04, 0.01])
    t.loc[0, "converged"] = False  # non-converged rows do not count in m
    out = R.adjust(t)
    assert math.isnan(out.loc[0, "padj"])
    assert out.loc[1:2, "padj"].tolist() == pytest.approx([0.04, 0.04])


# --- whole table ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted():
    sig, resp = _cohort(12, planted=["IFNG_SIG"], seed=11)
    cyto, _ = _cohort(8, planted=["CXCL9"], seed=12)
    models = pd.DataFrame(
        {
            "signature": ["IFNG_SIG", "F000", "F001"],
            "score_method": "ulm",
            "feature": ["IFNG_SIG__ulm", "F000__ulm", "F001__ulm"],
            "term": "interaction",
            "group": "all",
            "visit": "all",
            "estimate": [-1.4, 0.1, 0.0],
            "se": 0.2,
            "ci_low": [-1.8, -0.3, -0.4],
            "ci_high": [-1.0, 0.5, 0.4],
            "boot_ci_low": np.nan,
            "boot_ci_high": np.nan,
            "pvalue": [1e-6, 0.5, 0.02],
            "padj": np.nan,
            "n_patients": 20,
            "n_obs": 100,
            "converged": [True, True, False],
            "method": "Wald F",
        }
    )
    table = R.response_associations(
        {"signature": sig, "cytokine": cyto},
        resp,
        VISITS,
        models={"signature": models},
        score_method="ulm",
        seed=5,
        n_boot=300,
        n_perm=2000,
    )
    return table, sig, cyto, resp


def test_planted_features_rank_top(planted):
    table = planted[0]
    assert list(table.columns) == R.ASSOC_COLUMNS
    for family, feat in (("signature", "IFNG_SIG"), ("cytokine", "CXCL9")):
        for measure in ("change_D7", "change_D14", "auc_D28"):
            mw = table[
                (table["family"] == family)
                & (table["measure"] == measure)
                & (table["test"] == "mann_whitney")
            ].sort_values("pvalue")
            assert mw.iloc[0]["feature"] == feat, (family, measure)
            assert mw.iloc[0]["auc"] > 0.8
            assert mw.iloc[0]["padj"] < 0.05
            assert mw.iloc[0]["ci_low"] > 0.5
            sp = table[
                (table["feature"] == feat)
                & (table["measure"] == measure)
                & (table["test"] == "spearman")
            ].iloc[0]
            assert sp["effect"] < -0.4 and sp["pvalue"] < 0.05
        # baseline carries no planted effect
        base = table[
            (table["feature"] == feat)
            & (table["measure"] == "baseline")
            & (table["test"] == "mann_whitney")
        ].iloc[0]
        assert base["padj"] > 0.05
    top = R.top_features(table, 2, measures=["change_D14"])
    assert set(top["feature"]) == {"IFNG_SIG", "CXCL9"}


def test_planted_logistic_direction_and_counts(planted):
    table, sig, _, resp = planted
    row = table[
        (table["feature"] == "IFNG_SIG")
        & (table["measure"] == "change_D14")
        & (table["test"] == "logistic")
    ].iloc[0]
    # a larger fall (lower change) means response: odds ratio per SD below 1, or separation
    assert (row["converged"] and row["effect"] < 1) or "separation" in row["note"]
    meas = R.patient_measures(sig, VISITS)
    have = meas[(meas["feature"] == "IFNG_SIG") & (meas["measure"] == "change_D14")]
    assert row["n"] == len(have)
    assert (
        row["n_responders"]
        == resp.set_index("patient_id").loc[have["patient_id"], "responder"].eq("True").sum()
    )


def test_trajectory_rows_and_their_padj(planted):
    t = planted[0]
    tr = t[t["measure"] == "trajectory"].set_index("feature")
    assert set(tr.index) == {"IFNG_SIG", "F000", "F001"}
    assert (tr["test"] == "mixed_model_interaction").all()
    assert tr.loc["IFNG_SIG", "effect"] == -1.4
    assert tr.loc["IFNG_SIG", "n_responders"] == 13
    # F001 did not converge: no padj, and m = 2 for the others
    assert math.isnan(tr.loc["F001", "padj"])
    assert tr.loc["IFNG_SIG", "padj"] == pytest.approx(2e-6)
    assert tr.loc["F000", "padj"] == pytest.approx(0.5)


def test_bootstrap_reproducible_for_fixed_seed(planted):
    _, sig, _, resp = planted
    sub = sig[sig["feature"].isin(["IFNG_SIG", "F000"])]
    meas = R.patient_measures(sub, VISITS)
    a = R.associate(meas, resp, "signature", seed=9, n_boot=200, n_perm=500)
    b = R.associate(meas, resp, "signature", seed=9, n_boot=200, n_perm=500)
    c = R.associate(meas, resp, "signature", seed=10, n_boot=200, n_perm=500)
    pd.testing.assert_frame_equal(a, b)
    mw = a["test"] == "mann_whitney"
    assert not np.allclose(a.loc[mw, "ci_low"], c.loc[mw, "ci_low"])
    # a feature's interval does not depend on which other features are run with it
    only = R.associate(
        meas[meas["feature"] == "F000"], resp, "signature", seed=9, n_boot=200, n_perm=500
    )
    pd.testing.assert_frame_equal(
        only.reset_index(drop=True), a[a["feature"] == "F000"].reset_index(drop=True)
    )


def test_bootstrap_ci_covers_known_auc():
    # normal shift 1 SD: true AUC = Phi(1/sqrt(2)) = 0.760; coverage over 60 replicates
    rng = np.random.default_rng(4)
    truth = stats.norm.cdf(1 / math.sqrt(2))
    cover = 0
    for _ in range(60):
        xr = rng.normal(0, 1, 30)
        xn = rng.normal(1, 1, 30)
        lo, hi = rst.bootstrap_auc_ci(xr, xn, rng, n_boot=400)
        cover += lo <= truth <= hi
    assert cover >= 50  # nominal 95%: 57 expected; binomial P(<50) < 0.001


def test_null_cohort_type_one_error():
    sig, resp = _cohort(200, seed=21, missing=0.0)
    meas = R.patient_measures(sig, VISITS)
    meas = meas[meas["measure"].isin(["baseline", "change_D7"])]
    t = R.associate(meas, resp, "signature", seed=3, n_boot=0, n_perm=999)
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 200, 0.05)
    for (measure, test), g in t.groupby(["measure", "test"]):
        p = g["pvalue"].dropna()
        assert len(p) >= 190
        k = int((p < 0.05).sum())
        assert lo <= k <= hi, (measure, test, k)


def test_small_groups_are_not_tested():
    long, resp = _cohort(1, seed=3, n=8, n_resp=6)
    meas = R.patient_measures(long, VISITS)
    t = R.associate(meas, resp, "cytokine", seed=1, n_boot=50, n_perm=99)
    mw = t[t["test"] == "mann_whitney"]
    assert mw["pvalue"].isna().all()
    assert mw["note"].str.contains("fewer than 3").all()
    assert not mw["converged"].astype(bool).any()


def test_inputs_to_long_tables():
    scores = pd.DataFrame(
        {
            "sample_id": ["s1", "s1"],
            "patient_id": "P1",
            "visit": "D0",
            "day": 0,
            "signature": "SIG",
            "method": ["ulm", "mean_z_cohort"],
            "score": [1.0, 2.0],
        }
    )
    s = R.signature_long(scores, "ulm")
    assert s["value"].tolist() == [1.0] and s["feature"].tolist() == ["SIG"]
    with pytest.raises(ValueError):
        R.signature_long(scores, "aucell")
    values = pd.DataFrame(
        {"sample_id": ["s1"], "analyte": ["CXCL9"], "value": [1000.0], "log10_value": [3.0]}
    )
    samples = pd.DataFrame({"sample_id": ["s1"], "patient_id": ["P1"], "visit": ["D0"], "day": [0]})
    c = R.cytokine_long(values, samples)
    assert c.iloc[0][["feature", "value", "patient_id"]].tolist() == ["CXCL9", 3.0, "P1"]
    lrt = pd.DataFrame(
        {
            "gene_id": ["g1", "g2", "g3", "g4"],
            "gene_name": ["A", "B", "", "A"],
            "stat": 1.0,
            "pvalue": [0.01, 0.5, 0.001, 0.02],
            "padj": [0.02, 0.6, 0.01, np.nan],
        }
    )
    top = R.top_lrt_genes({"lrt_time": lrt, "lrt_time_by_response": lrt}, n_top=2)
    assert top["gene_id"].tolist() == ["g3", "g1"]
    assert top["feature"].tolist() == ["g3", "A"]
    assert top["source"].iloc[0] == "lrt_time;lrt_time_by_response"


def test_gene_long_from_layer_and_logcpm():
    import anndata as ad

    counts = np.array([[10, 90, 0], [30, 70, 100]], dtype=float)
    a = ad.AnnData(
        X=counts.copy(),
        obs=pd.DataFrame(
            {"patient_id": ["P1", "P1"], "visit": ["D0", "D7"], "day": [0, 7]}, index=["s1", "s2"]
        ),
        var=pd.DataFrame({"gene_id": ["g1", "g2", "g3"]}, index=["g1", "g2", "g3"]),
    )
    a.layers["counts"] = counts.copy()
    a.layers["vst"] = counts / 10
    genes = pd.DataFrame({"gene_id": ["g2", "gX"], "gene_name": ["B", "X"], "feature": ["B", "X"]})
    v = R.gene_long(a, genes, layer="vst")
    assert v.sort_values("sample_id")["value"].tolist() == [9.0, 7.0]
    c = R.gene_long(a, genes, layer=None)
    s2 = c[c["sample_id"] == "s2"]["value"].iloc[0]
    assert s2 == pytest.approx(math.log2(70 / 200 * 1e6 + 1))


def test_figures_render(planted, tmp_path):
    from rhlh.figures import response as fr
    from rhlh.io import save_figure

    table, sig, cyto, resp = planted
    save_figure(fr.plot_auc_forest(table, 10), tmp_path / "forest.png")
    save_figure(
        fr.plot_early_change({"signature": sig, "cytokine": cyto}, resp, table, k=4),
        tmp_path / "early.png",
    )
    save_figure(fr.plot_effect_heatmap(table, MEASURES, k=15), tmp_path / "heat.png")
    for name in ("forest", "early", "heat"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / f"{name}.pdf").exists()


def test_uninformative_cytokines_skipped_on_request():
    values = pd.DataFrame(
        {
            "sample_id": ["s1", "s1"],
            "patient_id": "P1",
            "visit": "D0",
            "day": 0,
            "analyte": ["CXCL9", "IL1B"],
            "log10_value": [3.0, 0.1],
            "uninformative": ["False", "True"],
        }
    )
    assert R.cytokine_long(values)["feature"].tolist() == ["CXCL9", "IL1B"]
    assert R.cytokine_long(values, skip_uninformative=True)["feature"].tolist() == ["CXCL9"]


def test_trajectory_rows_named_by_analyte_and_limited_to_analysed():
    models = pd.DataFrame(
        {
            "analyte": ["CXCL9", "CXCL9", "IL1B"],
            "term": ["visit_vs_baseline", "interaction", "interaction"],
            "estimate": [-0.3, -0.5, 0.0],
            "ci_low": -1.0,
            "ci_high": 0.0,
            "pvalue": [0.01, 0.02, 0.9],
            "n_patients": 20,
            "converged": "True",
            "method": "Wald F",
        }
    )
    long = pd.DataFrame({"feature": ["CXCL9"], "patient_id": ["P00"]})
    t = R.trajectory_rows(models, "cytokine", long=long, responders=_responders())
    assert t["feature"].tolist() == ["CXCL9"]
    assert t["effect"].tolist() == [-0.5] and t["n_responders"].tolist() == [1]
