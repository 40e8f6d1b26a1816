"""Statistics primitives shared by the analysis stages: multiple testing, two-group tests with
their bootstrap intervals, correlation (repeated-measures, Spearman with an ordinal variable),
logistic regression per SD, time-averaged area under a curve.

Pure functions on arrays and DataFrames; the callers (response, cytokines, signatures,
longitudinal) decide what is tested and how it is seeded.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats


def bh_adjust(p):
    """Benjamini-Hochberg adjusted p-values; NaN stays NaN and is not counted."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.empty(m)
    adj[order] = np.minimum(ranked, 1.0)
    out[ok] = adj
    return out


def trapezoid_auc(days, values, per_day: bool = True) -> float:
    """Trapezoid area under values(days) (sorted by day); divided by the time span if per_day."""
    t = np.asarray(days, dtype=float)
    y = np.asarray(values, dtype=float)
    order = np.argsort(t, kind="mergesort")
    t, y = t[order], y[order]
    if len(t) < 2 or not np.all(np.isfinite(t)) or not np.all(np.isfinite(y)):
        return math.nan
    area = float(np.sum((t[1:] - t[:-1]) * (y[1:] + y[:-1]) / 2.0))
    span = t[-1] - t[0]
    if per_day:
        return area / span if span > 0 else math.nan
    return area


def auc_lower(x_resp, x_non) -> float:
    """P(responder value < non-responder value) + P(tie)/2 = U_non / (n_resp n_non)."""
    a = np.asarray(x_resp, dtype=float)[:, None]
    b = np.asarray(x_non, dtype=float)[None, :]
    return float(np.mean((a < b) + 0.5 * (a == b)))


# Above this many group arrangements C(n, n_responders) a Mann-Whitney p-value with ties comes
# from seeded random permutations instead of the exact permutation distribution (20 patients
# split 5/15: 15,504 arrangements; 20 split 10/10: 184,756; 24 split 12/12: 2,704,156).
EXACT_MAX_ARRANGEMENTS = 1_000_000


def rank_sum_distribution(pooled, n_first: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact permutation distribution of the doubled mid-rank sum of ``n_first`` values drawn
    without replacement from ``pooled`` (every one of the C(n, n_first) arrangements once).

    Returns (values, counts): the possible doubled rank sums and how many arrangements give
    each (counts sum to C(n, n_first)). Doubled mid-ranks are integers, so every comparison is
    exact. The arrangements are counted, not listed: values tied on the same mid-rank are
    interchangeable, so choosing j of a tie block of size m contributes C(m, j) arrangements
    and j times its doubled rank (a convolution over tie blocks), which gives the same counts
    as enumerating every arrangement.
    """
    pooled = np.asarray(pooled, dtype=float)
    n = len(pooled)
    if not 0 <= n_first <= n:
        raise ValueError("n_first must be between 0 and the number of values")
    r2, _, _ = _doubled_rank_sums(pooled, n_first)
    blocks, sizes = np.unique(r2, return_counts=True)
    max_sum = int(np.sort(r2)[::-1][:n_first].sum())
    # counts[k, s]: arrangements of k values so far with doubled rank sum s
    counts = np.zeros((n_first + 1, max_sum + 1))
    counts[0, 0] = 1.0
    for rank2, m in zip(blocks.tolist(), sizes.tolist(), strict=True):
        new = counts.copy()
        for j in range(1, min(m, n_first) + 1):
            shift = j * rank2
            if shift > max_sum:
                break
            new[j:, shift:] += math.comb(m, j) * counts[: n_first + 1 - j, : max_sum + 1 - shift]
        counts = new
    dist = counts[n_first]
    values = np.flatnonzero(dist)
    return values, dist[values]


def _doubled_rank_sums(pooled, n_first):
    """Integer doubled mid-ranks of the pooled values, the observed doubled rank sum of the first
    ``n_first`` and its null expectation n_first (n + 1)."""
    r2 = np.rint(2.0 * stats.rankdata(pooled)).astype(np.int64)
    return r2, int(r2[:n_first].sum()), n_first * (len(pooled) + 1)


def mann_whitney_exact(x_resp, x_non) -> float:
    """Two-sided p of the Mann-Whitney test from the exact permutation distribution of the
    mid-rank sum W (ties allowed): P(|W - E W| >= |w - E W|) over all C(n, n_resp)
    arrangements, as R's coin::wilcox_test(distribution = "exact") defines it. Without ties the
    distribution is symmetric and this is scipy's exact p (twice the smaller tail)."""
    x_resp = np.asarray(x_resp, dtype=float)
    pooled = np.concatenate([x_resp, np.asarray(x_non, dtype=float)])
    values, counts = rank_sum_distribution(pooled, len(x_resp))
    _, obs, mean2 = _doubled_rank_sums(pooled, len(x_resp))
    extreme = np.abs(values - mean2) >= abs(obs - mean2)
    return float(min(1.0, counts[extreme].sum() / counts.sum()))


def mann_whitney_permutation(x_resp, x_non, rng, n_perm: int = 9999) -> float:
    """Two-sided Monte Carlo permutation p of the mid-rank sum (same statistic as
    :func:`mann_whitney_exact`): (1 + #{|W* - E W| >= |w - E W|}) / (n_perm + 1) over
    ``n_perm`` random arrangements drawn from ``rng``."""
    x_resp = np.asarray(x_resp, dtype=float)
    pooled = np.concatenate([x_resp, np.asarray(x_non, dtype=float)])
    n1 = len(x_resp)
    r2, obs, mean2 = _doubled_rank_sums(pooled, n1)
    hits = 0
    for start in range(0, n_perm, 1000):
        size = min(1000, n_perm - start)
        perm = rng.permuted(np.broadcast_to(r2, (size, len(r2))), axis=1)
        hits += int(np.sum(np.abs(perm[:, :n1].sum(axis=1) - mean2) >= abs(obs - mean2)))
    return (1.0 + hits) / (n_perm + 1.0)


def mann_whitney(
    x_resp, x_non, rng=None, n_perm: int = 9999, exact_max: int = EXACT_MAX_ARRANGEMENTS
) -> tuple[float, str]:
    """Two-sided Mann-Whitney p-value and how it was obtained.

    Without ties: scipy's exact null distribution ("exact"). With ties: the exact permutation
    distribution over all C(n, n_resp) arrangements (:func:`mann_whitney_exact`) when there are
    at most ``exact_max`` of them ("exact permutation, N arrangements (ties)"); above that,
    ``n_perm`` random arrangements drawn from ``rng`` (:func:`mann_whitney_permutation`,
    "permutation, N resamples (ties)").
    """
    x_resp = np.asarray(x_resp, dtype=float)
    x_non = np.asarray(x_non, dtype=float)
    pooled = np.concatenate([x_resp, x_non])
    if len(np.unique(pooled)) == len(pooled):
        res = stats.mannwhitneyu(x_non, x_resp, alternative="two-sided", method="exact")
        return float(res.pvalue), "exact"
    n_assign = math.comb(len(pooled), len(x_resp))
    if n_assign <= exact_max:
        return mann_whitney_exact(x_resp, x_non), (
            f"exact permutation, {n_assign} arrangements (ties)"
        )
    rng = np.random.default_rng() if rng is None else rng
    p = mann_whitney_permutation(x_resp, x_non, rng, n_perm)
    return p, f"permutation, {n_perm} resamples (ties)"


def _counts(idx, n):
    w = np.zeros((idx.shape[0], n))
    np.add.at(w, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.ravel()), 1.0)
    return w


def bootstrap_auc_ci(x_resp, x_non, rng, n_boot: int = 2000, level: float = 0.95):
    """Percentile CI of :func:`auc_lower`, resampling patients within each group."""
    a = np.asarray(x_resp, dtype=float)
    b = np.asarray(x_non, dtype=float)
    if n_boot <= 0:
        return math.nan, math.nan
    s = (a[:, None] < b[None, :]) + 0.5 * (a[:, None] == b[None, :])
    wa = _counts(rng.integers(0, len(a), (n_boot, len(a))), len(a))
    wb = _counts(rng.integers(0, len(b), (n_boot, len(b))), len(b))
    boot = np.einsum("bi,ij,bj->b", wa, s, wb) / (len(a) * len(b))
    q = (1 - level) / 2
    lo, hi = np.quantile(boot, [q, 1 - q])
    return float(lo), float(hi)


def separation(x, y) -> str | None:
    """'complete' or 'quasi-complete' when a threshold on x splits y, else None."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=bool)
    x1, x0 = x[y], x[~y]
    if x1.max() < x0.min() or x0.max() < x1.min():
        return "complete"
    if x1.max() <= x0.min() or x0.max() <= x1.min():
        return "quasi-complete"
    return None


def logistic_per_sd(x, y, level: float = 0.95) -> dict:
    """Logit(responder) ~ standardised x: OR per SD, Wald CI, likelihood-ratio p-value."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    out = {
        "effect": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "pvalue": math.nan,
        "converged": False,
        "note": "",
    }
    sd = x.std(ddof=1)
    if not sd > 0:
        out["note"] = "feature constant: no fit"
        return out
    sep = separation(x, y > 0.5)
    if sep:
        out["note"] = (
            f"{sep} separation: maximum-likelihood odds ratio does not exist "
            "(see the Mann-Whitney AUC)"
        )
        return out
    z = (x - x.mean()) / sd
    design = sm.add_constant(z, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(y, design).fit(method="newton", maxiter=100, disp=False)
        except (np.linalg.LinAlgError, ValueError) as exc:
            out["note"] = f"fit failed: {exc}"
            return out
    beta, se = float(fit.params[1]), float(fit.bse[1])
    ok = bool(fit.mle_retvals.get("converged", False)) and np.isfinite(se) and se > 0
    conv_warn = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    ok = ok and not conv_warn
    zq = stats.norm.ppf(0.5 + level / 2)
    lr = max(2.0 * (float(fit.llf) - float(fit.llnull)), 0.0)
    out.update(
        effect=math.exp(beta),
        ci_low=math.exp(beta - zq * se),
        ci_high=math.exp(beta + zq * se),
        pvalue=float(stats.chi2.sf(lr, 1)),
        converged=ok,
        note="likelihood-ratio p; Wald CI",
    )
    if not ok:
        out["note"] = "did not converge: numbers unreliable, not in BH"
    return out


def _spearman_rows(xs, ys):
    rx = stats.rankdata(xs, axis=-1)
    ry = stats.rankdata(ys, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_ordinal(
    x, rank, rng, n_perm: int = 9999, n_boot: int = 2000, level: float = 0.95
) -> dict:
    """Spearman rho of x with an ordinal response: permutation p, bootstrap percentile CI."""
    x = np.asarray(x, dtype=float)
    r = np.asarray(rank, dtype=float)
    out = {
        "effect": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "pvalue": math.nan,
        "note": "",
    }
    if len(np.unique(x)) < 2 or len(np.unique(r)) < 2:
        out["note"] = "no variation in the feature or the response class"
        return out
    rho = float(_spearman_rows(x, r))
    # permuting x alone gives all n! pairings (exact when n! <= n_perm)
    res = stats.permutation_test(
        (x,),
        lambda a, axis=-1: _spearman_rows(a, r),
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_perm,
        alternative="two-sided",
        rng=rng,
    )
    lo = hi = math.nan
    if n_boot > 0:
        idx = rng.integers(0, len(x), (n_boot, len(x)))
        boot = _spearman_rows(x[idx], r[idx])
        boot = boot[np.isfinite(boot)]
        q = (1 - level) / 2
        if len(boot) >= n_boot // 2:
            lo, hi = (float(v) for v in np.quantile(boot, [q, 1 - q]))
    out.update(
        effect=rho,
        ci_low=lo,
        ci_high=hi,
        pvalue=float(res.pvalue),
        note=f"permutation p ({n_perm} resamples); bootstrap CI",
    )
    return out


def rmcorr(df, x, y, subject="patient_id", ci=0.95):
    """Repeated-measures correlation (Bakdash & Marusich 2017): dict(r, dof, pvalue, CI, n)."""
    d = df[[subject, x, y]].dropna()
    d = d[np.isfinite(d[x].astype(float)) & np.isfinite(d[y].astype(float))]
    # a subject seen once adds one observation and one parameter: no information, drop it
    counts = d.groupby(subject)[x].transform("size")
    d = d[counts >= 2]
    n = len(d)
    k = d[subject].nunique()
    dof = n - k - 1
    out = {
        "r": np.nan,
        "dof": int(max(dof, 0)),
        "pvalue": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "n": int(n),
        "n_subjects": int(k),
    }
    if dof < 2:
        return out
    # ANCOVA y ~ subject + x: the slope of x and its sums of squares only use within-subject
    # deviations, so centring each subject on its own means gives the same fit
    xc = d[x].astype(float) - d.groupby(subject)[x].transform("mean").astype(float)
    yc = d[y].astype(float) - d.groupby(subject)[y].transform("mean").astype(float)
    sxx = float((xc * xc).sum())
    syy = float((yc * yc).sum())
    sxy = float((xc * yc).sum())
    if sxx <= 0 or syy <= 0:
        return out
    ss_value = sxy * sxy / sxx
    ss_resid = max(syy - ss_value, 0.0)
    r = np.sign(sxy) * np.sqrt(ss_value / (ss_value + ss_resid))
    r = float(np.clip(r, -1.0, 1.0))
    if abs(r) < 1:
        t = r * np.sqrt(dof / (1 - r * r))
        p = float(2 * stats.t.sf(abs(t), dof))
    else:
        p = 0.0
    out.update(r=r, pvalue=p)
    if dof > 1 and abs(r) < 1:
        # Fisher z with the ANCOVA error df in place of n - 2 (as the rmcorr R package)
        z = np.arctanh(r)
        half = stats.norm.ppf(0.5 + ci / 2) / np.sqrt(dof - 1)
        out.update(ci_low=float(np.tanh(z - half)), ci_high=float(np.tanh(z + half)))
    return out
