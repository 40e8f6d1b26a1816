"""The calibrated mode of the DE stage (``de.mode: calibrated``): QL tests and permutations.

The edgeR / limma agreement of the QL machinery is in tests/test_qlf.py; here: the tests on
the project's hard simulator (``rhlh_dev.calibration``: gene-wise dispersions off the trend,
sample-level noise, per-patient random slopes, responder-dependent dropout), the
permutation calibration of the between-patient test, and the bookkeeping (test column,
reproducibility). The five-seed FDR / recall figures come from
``python -m rhlh_dev.calibration`` (docs/methods-de.md).
"""

import numpy as np
import pytest
from scipy import stats

from rhlh import de
from rhlh.design import build_design, parse_design_specs
from rhlh_dev.calibration import DESIGNS, run_cohort, simulate_de_cohort


@pytest.fixture(scope="module")
def null_cohort():
    return simulate_de_cohort(7, n_patients=16, n_genes=1200, null=True)


@pytest.fixture(scope="module")
def null_tables(null_cohort):
    return {
        "calibrated": run_cohort(null_cohort, "calibrated", permutation_nulls=12000),
        "deseq2": run_cohort(null_cohort, "deseq2"),
    }


def _share(tab, cut):
    p = tab["pvalue"].dropna().to_numpy()
    return float(np.mean(p < cut)), len(p)


@pytest.mark.parametrize("test", ["lrt_time", "lrt_response", "wald_D7"])
def test_null_tail_is_calibrated_and_no_worse_than_deseq2(null_tables, test):
    """On a cohort without any planted change (every gene moves only within patients),
    the calibrated p-values' tail holds its level within binomial limits; DESeq2's tests
    are over it on the same counts (the defect this mode mends)."""
    ours, n = _share(null_tables["calibrated"][test], 0.01)
    theirs, _ = _share(null_tables["deseq2"][test], 0.01)
    limit = 0.01 + 3 * np.sqrt(0.01 * 0.99 / n)
    assert ours <= limit, f"{test}: share p < 0.01 = {ours:.4f} (limit {limit:.4f})"
    assert ours <= theirs + 1e-12


def test_null_response_pvalues_are_uniform(null_tables):
    p = null_tables["calibrated"]["lrt_response"]["pvalue"].dropna().to_numpy()
    ks = stats.kstest(p, "uniform")
    assert ks.pvalue > 0.001, ks
    assert (null_tables["calibrated"]["lrt_response"]["padj"] < 0.05).sum() <= 1


def test_effects_are_found_with_fdr_control():
    cohort = simulate_de_cohort(3, n_patients=20, n_genes=1500)
    tabs = run_cohort(cohort, "calibrated", permutation_nulls=15000)
    truth = cohort["truth"]
    for test, tab in tabs.items():
        called = tab.index[tab["padj"].fillna(1).to_numpy() < 0.05]
        true = truth.loc[called, test]
        assert len(called) >= 10, test
        # the bound of BH at 5%, with room for sampling on ~20-150 calls
        assert (~true).mean() <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / len(called)), test
    assert tabs["lrt_response"]["test"].iloc[0].startswith("QL F-test, permutation-calibrated")
    for test in ("wald_D7", "lrt_time"):
        assert tabs[test]["test"].str.contains("sign-flip-calibrated").all(), test


def test_between_patient_columns(null_cohort):
    samples = null_cohort["samples"].assign(
        responder=null_cohort["samples"]["responder"].eq("responder")
    )
    samples = samples.set_index("sample_id")
    specs = parse_design_specs(DESIGNS)
    levels = {"visit": sorted(set(samples["visit"]), key=lambda v: int(v[1:]))}
    full = build_design(samples, specs[1].formula, levels=levels)
    fit = de.DEFit(None, full, samples, levels, None, None)
    reduced = build_design(samples, specs[1].reduced["time_by_response"], levels=levels)
    assert de._between_patient_columns(fit, reduced) == ["responder"]
    fit_visit = de.DEFit(
        None, build_design(samples, specs[0].formula, levels=levels), samples, levels, None, None
    )
    time_reduced = build_design(samples, specs[0].reduced["time"], levels=levels)
    assert de._between_patient_columns(fit_visit, time_reduced) == []
    # the time test is the one the sign flips calibrate; the response test is not
    flip = de._flip_columns(fit_visit)
    assert list(fit_visit.design.matrix.columns[flip]) == [
        c for c in fit_visit.design.matrix.columns if c.startswith("visit")
    ]
    assert de._flips_test(fit_visit, time_reduced)
    assert not de._flips_test(fit, reduced)


def test_same_seed_same_tables_other_seed_other_pvalues(null_cohort):
    a = run_cohort(null_cohort, "calibrated", permutation_nulls=6000, seed=3)["lrt_response"]
    b = run_cohort(null_cohort, "calibrated", permutation_nulls=6000, seed=3)["lrt_response"]
    c = run_cohort(null_cohort, "calibrated", permutation_nulls=6000, seed=4)["lrt_response"]
    assert a.equals(b)
    assert not np.allclose(a["pvalue"].fillna(-1), c["pvalue"].fillna(-1))


def test_unknown_mode_is_refused(null_cohort):
    with pytest.raises(ValueError, match="de.mode"):
        run_cohort(null_cohort, "fast")


def test_pool_calibration_extrapolates_the_tail_monotonically():
    """The map from QL p to permutation-calibrated p: the empirical share above the tail
    point, a straight extrapolation below it, the two meeting there; order kept."""
    rng = np.random.default_rng(0)
    n = 20000
    uniform_pool = np.sort(rng.uniform(size=n))
    inflated_pool = np.sort(rng.uniform(size=n) ** 1.3)  # an anticonservative null test
    p = np.sort(np.concatenate([10.0 ** -rng.uniform(0, 12, 500), rng.uniform(size=500)]))
    for pool in (uniform_pool, inflated_pool):
        out = de.calibrate_to_pool(p, pool)
        assert np.all(np.diff(out) >= 0) and out.max() <= 1.0 and out.min() > 0
        t = pool[de.PERMUTATION_TAIL - 1]
        emp = (1 + np.searchsorted(pool, p, side="right")) / (1 + n)
        assert np.array_equal(out[p >= t], emp[p >= t])
        # continuous at the tail point, and below it beyond the empirical floor 1 / (1 + N)
        f_t = (1 + np.searchsorted(pool, t, side="right")) / (1 + n)
        at, just_below = de.calibrate_to_pool(np.array([t, t * (1 - 1e-9)]), pool)
        assert at == f_t and just_below == pytest.approx(f_t, rel=1e-6)
        assert out[0] < 1 / (1 + n) / 100
    # a uniform null leaves the nominal p-value as it is (to the tail estimate's noise)
    low = p < uniform_pool[de.PERMUTATION_TAIL - 1]
    ratio = de.calibrate_to_pool(p[low], uniform_pool) / p[low]
    assert np.allclose(ratio, ratio[0]) and 0.7 < ratio[0] < 1.3
    # an inflated null scales the tail up by its inflation at the tail point
    ratio_inf = de.calibrate_to_pool(p[low], inflated_pool) / p[low]
    assert ratio_inf[0] > 1.5 * ratio[0]
