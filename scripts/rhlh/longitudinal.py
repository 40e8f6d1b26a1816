"""Longitudinal models shared by the cytokine and signature stages.

Input is a long table with one row per patient x visit x feature: columns ``patient_id``,
``visit``, ``responder`` (bool, or missing when unknown), ``feature`` and a value column that
is already on the analysis scale (log10 concentration, signature score, ...).

Model, per feature (statsmodels MixedLM, random intercept per patient)::

    value ~ group + group:visit + (1 | patient_id)

i.e. ``value ~ visit * responder`` re-parameterised so that each coefficient of ``group:visit``
is directly the change from baseline at that visit within that response group (REML fit).

Inference. All contrasts are within-patient, so tests use t / F reference distributions with
the "between-within" denominator df (observations minus the rank of [fixed effects, patient
dummies], as SAS DDFM=BW); with 10-20 patients the plain Wald z and the ML likelihood-ratio
chi-square are anti-conservative (about 7% rejections at 5% in our null simulations).

* ``visit_vs_baseline`` rows: coefficient, Wald SE, t-based 95% CI and p-value.
* ``interaction`` row: does the change from baseline differ between responders and
  non-responders, jointly over the post-baseline visits estimable in both groups?
  ``interaction_test="permutation"`` (default): the joint Wald F statistic of the REML fit is
  referred to its distribution over labellings of the patients as responder / non-responder
  (group sizes kept; every labelling when there are at most ``n_perm`` of them, the p-value is
  then exact, else ``n_perm`` random ones and p = (hits + 1) / (n_perm + 1)). Only the model's
  exchangeability of whole patients is assumed, so the test keeps its level when patients
  differ in their own trajectories (random slopes), where the random-intercept F reference
  rejects too often (11% at 5% on the null signature cohort). ``"wald_f"``: the same F
  statistic against F(q, between-within df). ``"lrt"`` compares ML fits of the full model and
  of ``value ~ group + visit + (1 | patient_id)`` (REML likelihoods are not comparable when the
  fixed effects differ). Its ``estimate`` is the mean over those visits of (responder change -
  non-responder change), negative when responders fall more.
* Group ``all`` rows come from ``value ~ visit + (1 | patient_id)`` on every patient
  (responders, non-responders and unknown response alike).
* ``boot_ci_low/high``: percentile interval over patient-level bootstrap refits (patients
  resampled with replacement within response group, seeded per feature); NaN when fewer than
  half of the refits converged (``n_boot_ok`` says how many did). A resample only reweights
  patients, so every refit reuses the per-patient cross-products of the one design and all
  resamples of a feature are refitted together (:meth:`rhlh.lmm.PatientStats.fit_many`: batched
  Cholesky factorisations, golden-section search of the variance ratio plus a parabolic
  step, BLAS on one thread); the refits reach the one-at-a-time REML optimum to ~1e-7.
  Progress (resamples done, time left) is logged through ``rhlh.logs.Progress``.
* ``converged`` is False when the optimiser did not converge or the covariance of the fixed
  effects is not usable; such rows keep their numbers but get no ``padj`` and are not counted
  in the Benjamini-Hochberg correction (across features, within term x group x visit).
* Cells (group x visit) with fewer than ``min_patients`` patients are left out of the model.
"""

from __future__ import annotations

import itertools
import logging
import math
import zlib

import numpy as np
import pandas as pd
from scipy import stats

from rhlh.lmm import PatientStats as _PatientStats
from rhlh.lmm import fit as _fit
from rhlh.logs import Progress
from rhlh.stats import bh_adjust

log = logging.getLogger("rhlh")

RESULT_COLUMNS = [
    "feature",
    "term",
    "group",
    "visit",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "boot_ci_low",
    "boot_ci_high",
    "pvalue",
    "padj",
    "n_patients",
    "n_obs",
    "converged",
    "method",
    "n_boot_ok",
]
GROUPS = ("responder", "non-responder")
INTERACTION_TESTS = ("permutation", "wald_f", "lrt")
# bootstrap resamples refitted together (memory: block x p x p floats)
_BOOT_BLOCK = 1000


def response_groups_note(responders: pd.DataFrame, skipped: str, min_per_group: int = 1):
    """The line a stage logs when a valid but small cohort lacks a response group (no
    non-responder, no responder, fewer than ``min_per_group`` in one): what is ``skipped``
    and why; None when both groups are there. ``responders``: rhlh.tables.read_responders."""
    flags = responders["responder"]
    n_r, n_nr = int(flags.eq(True).sum()), int(flags.eq(False).sum())
    if min(n_r, n_nr) >= min_per_group:
        return None
    need = "both response groups" if min_per_group <= 1 else f"{min_per_group} in each group"
    return (
        f"skipped: {skipped}: the cohort has {n_r} responder(s) and {n_nr} non-responder(s) "
        f"with a known response, and this needs {need}"
    )


def change_from_baseline(df, value_col, feature_col, baseline="D0", subject="patient_id"):
    """Add ``baseline_value`` and ``change`` (value minus the same patient's baseline value)."""
    for col in (subject, "visit", value_col, feature_col):
        if col not in df.columns:
            raise KeyError(f"change_from_baseline: column '{col}' missing")
    base = df.loc[df["visit"] == baseline, [subject, feature_col, value_col]]
    dup = base.duplicated([subject, feature_col], keep=False)
    if dup.any():
        first = base.loc[dup].iloc[0]
        raise ValueError(
            f"change_from_baseline: several {baseline} values for patient "
            f"{first[subject]!r}, feature {first[feature_col]!r}"
        )
    base = base.rename(columns={value_col: "baseline_value"})
    out = df.merge(base, on=[subject, feature_col], how="left", validate="many_to_one")
    out.index = df.index
    out["change"] = out[value_col] - out["baseline_value"]
    return out


def _group_label(flag):
    if flag is None or (isinstance(flag, float) and np.isnan(flag)) or flag is pd.NA:
        return None
    if flag is True or flag == "True" or flag == 1:
        return "responder"
    if flag is False or flag == "False" or flag == 0:
        return "non-responder"
    return None


def _cells(sub, visits, baseline, min_patients, by_group):
    """Which (group, visit) cells have enough patients to be modelled."""
    keys = ["group", "visit"] if by_group else ["visit"]
    npat = sub.groupby(keys, observed=True)["patient_id"].nunique()
    keep = {}
    groups = GROUPS if by_group else ("all",)
    for g in groups:

        def n_of(v, g=g):
            return int(npat.get((g, v) if by_group else v, 0))

        if n_of(baseline) < min_patients:
            continue
        keep[g] = [v for v in visits if v != baseline and n_of(v) >= min_patients]
    return keep


def _design(sub, keep, by_group, shared_visits=False):
    """Fixed-effect design: one intercept per group, one column per (group, post-baseline visit)."""
    cols, names = [], []
    g = sub["group"].to_numpy() if by_group else np.full(len(sub), "all")
    v = sub["visit"].to_numpy()
    for grp in keep:
        cols.append((g == grp).astype(float))
        names.append(("intercept", grp, None))
    if shared_visits:
        vis = list(dict.fromkeys(vv for lst in keep.values() for vv in lst))
        for vv in vis:
            cols.append((v == vv).astype(float))
            names.append(("visit", "shared", vv))
    else:
        for grp, lst in keep.items():
            for vv in lst:
                cols.append(((g == grp) & (v == vv)).astype(float))
                names.append(("visit", grp, vv))
    return np.column_stack(cols), names


def _subset(sub, keep, by_group):
    g = sub["group"] if by_group else pd.Series("all", index=sub.index)
    mask = np.zeros(len(sub), dtype=bool)
    for grp, lst in keep.items():
        allowed = set(lst) | {"__baseline__"}
        mask |= (g == grp).to_numpy() & (
            sub["visit"].isin(allowed).to_numpy() | sub["is_baseline"].to_numpy()
        )
    return sub.loc[mask]


def _bootstrap(sub, keep, by_group, names, contrast_L, n_boot, rng, progress=None):
    """Patient-level bootstrap (stratified by group) of the REML estimates; percentile CIs.

    All resamples are drawn first (per group, ``rng.integers`` over its patients), then refitted
    together in blocks of :data:`_BOOT_BLOCK` by :meth:`rhlh.lmm.PatientStats.fit_many` on the
    one set of per-patient cross-products: a resample only reweights patients. A resample that
    leaves a design column without observations, or whose fit fails, is dropped
    (``n_boot_ok``).
    """
    from threadpoolctl import threadpool_limits

    X, _ = _design(sub, keep, by_group)
    stats_ = _PatientStats(sub["value"].to_numpy(float), X, sub["patient_id"].to_numpy())
    order = pd.Index(pd.unique(sub["patient_id"]))
    counts = np.zeros((n_boot, len(order)))
    rows = np.arange(n_boot)[:, None]
    for grp in keep:
        pats = sub.loc[(sub["group"] == grp) if by_group else slice(None), "patient_id"].unique()
        pos = order.get_indexer(pats)
        picked = pos[rng.integers(0, len(pos), (n_boot, len(pos)))]
        np.add.at(counts, (np.broadcast_to(rows, picked.shape), picked), 1.0)
    usable = ~np.any(counts @ stats_.S == 0, axis=1)
    draws = []
    for start in range(0, n_boot, _BOOT_BLOCK):
        block = counts[start : start + _BOOT_BLOCK][usable[start : start + _BOOT_BLOCK]]
        if len(block):
            # many tiny matrices: BLAS threads only add overhead (and stall on a busy node)
            with threadpool_limits(1):
                params, ok = stats_.fit_many(block, reml=True)
            params = params[ok]
            if contrast_L is not None:
                params = np.column_stack([params, params @ contrast_L])
            draws.append(params)
        if progress is not None:
            progress.update(min(_BOOT_BLOCK, n_boot - start))
    width = len(names) + (contrast_L is not None)
    return np.concatenate(draws) if draws else np.empty((0, width))


def _within_df(X, groups):
    """Between-within residual df: observations minus rank of [fixed effects, patient dummies]."""
    _, codes = np.unique(groups, return_inverse=True)
    Z = np.zeros((len(groups), codes.max() + 1))
    Z[np.arange(len(groups)), codes] = 1.0
    return int(len(groups) - np.linalg.matrix_rank(np.column_stack([X, Z])))


def _fit_feature(
    sub,
    visits,
    baseline,
    min_patients,
    n_boot,
    rng,
    by_group,
    interaction_test,
    progress=None,
    n_perm=0,
    perm_rng=None,
):
    """All rows for one feature and one model family (by response group, or everyone)."""
    rows = []
    keep = _cells(sub, visits, baseline, min_patients, by_group)
    if not keep:
        if progress is not None:
            progress.update(n_boot)
        return rows
    sub = _subset(sub, keep, by_group)
    X, names = _design(sub, keep, by_group)
    y = sub["value"].to_numpy(float)
    groups = sub["patient_id"].to_numpy()
    params, cov, _, ok = _fit(y, X, groups, reml=True)
    ddf = _within_df(X, groups)
    method = f"LMM REML (random intercept), Wald t ddf={ddf} (between-within)" + (
        ", group x visit" if by_group else ", visit"
    )
    both = []
    L = None
    if by_group and len(keep) == 2:
        both = [v for v in keep["responder"] if v in keep["non-responder"]]
        if both:
            L = np.zeros(len(names))
            for v in both:
                L[names.index(("visit", "responder", v))] += 1 / len(both)
                L[names.index(("visit", "non-responder", v))] -= 1 / len(both)
    boot = None
    if n_boot > 0 and params is not None:
        boot = _bootstrap(sub, keep, by_group, names, L, n_boot, rng, progress)
    elif progress is not None:
        progress.update(n_boot)
    tq = stats.t.ppf(0.975, ddf) if ddf > 0 else np.nan
    gcol = sub["group"] if by_group else pd.Series("all", index=sub.index)
    for i, (kind, grp, v) in enumerate(names):
        if kind != "visit":
            continue
        cell = sub[(gcol == grp) & (sub["visit"].isin([v]) | sub["is_baseline"])]
        est = se = p = np.nan
        if params is not None:
            est = params[i]
            se = float(np.sqrt(cov[i, i])) if np.isfinite(cov[i, i]) and cov[i, i] > 0 else np.nan
            if np.isfinite(se) and ddf > 0:
                p = float(2 * stats.t.sf(abs(est / se), ddf))
        blo, bhi, n_ok = _percentile(boot, i, n_boot)
        rows.append(
            {
                "term": "visit_vs_baseline",
                "group": grp,
                "visit": v,
                "estimate": est,
                "se": se,
                "ci_low": est - tq * se,
                "ci_high": est + tq * se,
                "boot_ci_low": blo,
                "boot_ci_high": bhi,
                "pvalue": p,
                "n_patients": int(cell["patient_id"].nunique()),
                "n_obs": int(len(cell)),
                "converged": bool(ok),
                "method": method,
                "n_boot_ok": n_ok,
            }
        )
    if L is not None:
        rows.append(
            _interaction(
                sub,
                keep,
                y,
                groups,
                X,
                names,
                params,
                cov,
                ok,
                L,
                both,
                boot,
                n_boot,
                ddf,
                interaction_test,
                n_perm,
                perm_rng,
            )
        )
    return rows


def _percentile(boot, col, n_boot):
    """95% percentile interval of one bootstrap column; NaN when too few refits succeeded."""
    n_ok = 0 if boot is None else len(boot)
    if boot is None or n_ok < max(10, n_boot // 2):
        return np.nan, np.nan, n_ok
    lo, hi = np.percentile(boot[:, col], [2.5, 97.5])
    return float(lo), float(hi), n_ok


def _labellings(observed, n_perm, rng):
    """Responder labellings of the patients (B x patients, bool) with as many responders as
    ``observed``: all C(n, n1) of them when there are at most ``n_perm`` (exact), else
    ``n_perm`` seeded random permutations of ``observed``. Returns (labels, exact)."""
    n, n1 = len(observed), int(np.sum(observed))
    if math.comb(n, n1) <= n_perm:
        labels = np.zeros((math.comb(n, n1), n), dtype=bool)
        for row, chosen in enumerate(itertools.combinations(range(n), n1)):
            labels[row, list(chosen)] = True
        return labels, True
    return rng.permuted(np.tile(np.asarray(observed, bool), (n_perm, 1)), axis=1), False


def _permutation_interaction(sub, both, n_perm, rng):
    """Permutation p-value of the interaction: responder labels permuted between patients.

    The statistic is the joint Wald F (REML, random intercept) that the changes from baseline
    at the visits of ``both`` are equal in the two groups, on the patients' baseline and
    ``both`` visits. Under the null that a patient's trajectory does not depend on their
    response, labels are exchangeable between patients whatever the within-patient
    correlation (own slopes, autocorrelated errors), which the model's F reference ignores.
    Every labelling is refitted in one batch: the data are stacked twice, once with every
    patient a responder and once a non-responder, and a labelling weights each patient's
    copy 1 or 0 (:meth:`rhlh.lmm.PatientStats.fit_many`). A labelling that leaves a design
    column without observations is not counted. Returns (p, labellings counted, exact).
    """
    from threadpoolctl import threadpool_limits

    d = sub[sub["is_baseline"].to_numpy() | sub["visit"].isin(both).to_numpy()]
    order = pd.Index(pd.unique(d["patient_id"]))
    observed = d.groupby("patient_id")["group"].first().reindex(order).eq("responder")
    copies = pd.concat(
        [d.assign(group=g, patient_id=g + "\t" + d["patient_id"]) for g in GROUPS],
        ignore_index=True,
    )
    keep = {g: list(both) for g in GROUPS}
    X, names = _design(copies, keep, True)
    stats_ = _PatientStats(copies["value"].to_numpy(float), X, copies["patient_id"].to_numpy())
    C = np.zeros((len(both), len(names)))
    for j, v in enumerate(both):
        C[j, names.index(("visit", "responder", v))] = 1.0
        C[j, names.index(("visit", "non-responder", v))] = -1.0
    labels, exact = _labellings(observed.to_numpy(), n_perm, rng)
    labels = np.vstack([observed.to_numpy()[None, :], labels]).astype(float)
    F = np.full(len(labels), np.nan)
    for start in range(0, len(labels), _BOOT_BLOCK):
        lab = labels[start : start + _BOOT_BLOCK]
        # many tiny matrices: BLAS threads only add overhead
        with threadpool_limits(1):
            params, ok, cov = stats_.fit_many(np.hstack([lab, 1.0 - lab]), with_cov=True)
        cb = params @ C.T
        K = np.einsum("qp,bpr,sr->bqs", C, cov, C)
        K[~ok] = np.eye(len(both))
        with np.errstate(invalid="ignore", over="ignore"):
            f = np.einsum("bq,bq->b", cb, np.linalg.solve(K, cb[:, :, None])[:, :, 0])
        F[start : start + len(lab)] = np.where(ok, f / len(both), np.nan)
    f_obs, f_perm = F[0], F[1:]
    valid = np.isfinite(f_perm)
    if not np.isfinite(f_obs) or not valid.any():
        return np.nan, int(valid.sum()), exact
    hits = int(np.sum(f_perm[valid] >= f_obs * (1 - 1e-10)))
    n = int(valid.sum())
    # all labellings include the observed one; random ones add it to the count (Phipson-Smyth)
    return (hits / n if exact else (hits + 1) / (n + 1)), n, exact


def _interaction(
    sub,
    keep,
    y,
    groups,
    X,
    names,
    params,
    cov,
    ok,
    L,
    both,
    boot,
    n_boot,
    ddf,
    test,
    n_perm=0,
    perm_rng=None,
):
    """Joint test that the visit effects are the same in both response groups."""
    q = len(both)
    p = np.nan
    if test == "permutation":
        p, n_used, exact = _permutation_interaction(sub, both, n_perm, perm_rng)
        kind = "all" if exact else "random"
        label = (
            f"permutation of responder labels between patients ({n_used} {kind} labellings), "
            f"statistic Wald F (REML) df={q}"
        )
    elif test == "lrt":
        Xr, _ = _design(sub, keep, True, shared_visits=True)
        _, _, ll_full, ok_full = _fit(y, X, groups, reml=False)
        _, _, ll_red, ok_red = _fit(y, Xr, groups, reml=False)
        stat = max(2 * (ll_full - ll_red), 0.0)
        if np.isfinite(stat):
            p = float(stats.chi2.sf(stat, q))
        ok = ok and ok_full and ok_red
        label = f"LRT of ML fits, chi2 df={q}"
    elif test == "wald_f":
        C = np.zeros((q, len(names)))
        for j, v in enumerate(both):
            C[j, names.index(("visit", "responder", v))] = 1.0
            C[j, names.index(("visit", "non-responder", v))] = -1.0
        if params is not None and ddf > 0:
            cb = C @ params
            try:
                F = float(cb @ np.linalg.solve(C @ cov @ C.T, cb)) / q
                p = float(stats.f.sf(F, q, ddf))
            except np.linalg.LinAlgError:
                p = np.nan
        label = f"Wald F (REML) df={q},{ddf} (between-within)"
    else:
        raise ValueError(f"interaction_test must be 'permutation', 'wald_f' or 'lrt', not {test!r}")
    est = se = np.nan
    if params is not None:
        est = float(L @ params)
        var = float(L @ cov @ L)
        se = np.sqrt(var) if np.isfinite(var) and var > 0 else np.nan
    tq = stats.t.ppf(0.975, ddf) if ddf > 0 else np.nan
    blo, bhi, n_ok = _percentile(boot, -1, n_boot)
    return {
        "term": "interaction",
        "group": "all",
        "visit": "all",
        "estimate": est,
        "se": se,
        "ci_low": est - tq * se,
        "ci_high": est + tq * se,
        "boot_ci_low": blo,
        "boot_ci_high": bhi,
        "pvalue": p,
        "n_patients": int(sub["patient_id"].nunique()),
        "n_obs": int(len(sub)),
        "converged": bool(ok),
        "method": f"{label}; estimate = mean responder minus non-responder change over "
        f"{','.join(both)}",
        "n_boot_ok": n_ok,
    }


def fit_visit_by_response(
    df,
    value_col="value",
    feature_col="feature",
    visits=None,
    baseline="D0",
    seed=0,
    n_boot=200,
    min_patients=3,
    interaction_test="permutation",
    n_perm=1999,
):
    """Per feature: mixed-model changes from baseline by response group, and the interaction.

    ``n_perm``: responder labellings of the permutation interaction test (all of them when the
    patients have at most that many distinct ones)."""
    need = ["patient_id", "visit", "responder", feature_col, value_col]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise KeyError(f"fit_visit_by_response: column(s) missing: {', '.join(missing)}")
    d = df[need].rename(columns={feature_col: "feature", value_col: "value"}).copy()
    d["value"] = pd.to_numeric(d["value"], errors="coerce")
    d = d[np.isfinite(d["value"])]
    if visits is None:
        visits = [baseline] + sorted(v for v in d["visit"].unique() if v != baseline)
    visits = [str(v) for v in visits]
    if interaction_test not in INTERACTION_TESTS:
        raise ValueError(
            f"interaction_test must be 'permutation', 'wald_f' or 'lrt', not {interaction_test!r}"
        )
    if baseline not in visits:
        raise ValueError(f"baseline visit {baseline!r} is not among the visits")
    d["visit"] = d["visit"].astype(str)
    d = d[d["visit"].isin(visits)]
    d["group"] = [_group_label(f) for f in d["responder"]]
    d["is_baseline"] = d["visit"] == baseline
    d["patient_id"] = d["patient_id"].astype(str)
    rows = []
    features = sorted(d["feature"].unique(), key=str)
    # two models per feature (by response group, everyone), n_boot refits each
    progress = Progress("mixed-model bootstrap", 2 * n_boot * len(features), "resamples")
    for feature in features:
        sub = d[d["feature"] == feature].reset_index(drop=True)
        # one stream per feature, so a feature's bootstrap does not depend on the others
        rng = np.random.default_rng([int(seed), zlib.crc32(str(feature).encode())])
        # the permutations draw from their own stream: n_boot does not change them
        perm_rng = np.random.default_rng([int(seed), zlib.crc32(str(feature).encode()), 1])
        grp_rows = _fit_feature(
            sub[sub["group"].notna()],
            visits,
            baseline,
            min_patients,
            n_boot,
            rng,
            True,
            interaction_test,
            progress,
            n_perm,
            perm_rng,
        )
        all_rows = _fit_feature(
            sub, visits, baseline, min_patients, n_boot, rng, False, interaction_test, progress
        )
        for r in grp_rows + all_rows:
            r["feature"] = feature
            rows.append(r)
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    if out.empty:
        return out
    # BH across features within each term x group x visit; non-converged fits are not reported
    # as tests, so they get no adjusted p-value and do not count in m
    out["padj"] = np.nan
    usable = out["converged"].astype(bool)
    for _, idx in out[usable].groupby(["term", "group", "visit"]).groups.items():
        out.loc[idx, "padj"] = bh_adjust(out.loc[idx, "pvalue"].to_numpy())
    order = {v: i for i, v in enumerate(visits + ["all"])}
    gorder = {"responder": 0, "non-responder": 1, "all": 2}
    out["_t"] = (out["term"] == "interaction").astype(int)
    out["_g"] = out["group"].map(gorder)
    out["_v"] = out["visit"].map(order)
    out = out.sort_values(["feature", "_t", "_g", "_v"], kind="mergesort")
    return out.drop(columns=["_t", "_g", "_v"]).reset_index(drop=True)
