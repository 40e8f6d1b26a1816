"""Differential expression over visits: pydeseq2 fits, Wald tests per visit, DESeq2-style LRTs.

What this module adds to pydeseq2 0.5.4 (which has Wald tests only):

- Designs from hand-built model matrices (``rhlh.design``), passed to pydeseq2 as a DataFrame.
- Likelihood-ratio tests exactly as DESeq2's ``nbinomLRT`` defines them: both models are
  fitted with the dispersions of the full model, the statistic is twice the difference of the
  negative-binomial log-likelihoods (full minus reduced), and the p-value is the chi-square
  upper tail with df = rank(full) - rank(reduced). Cook's filtering and independent filtering
  on baseMean follow ``DESeq2::results``.
- Single wild counts: with one sample per patient x visit no design cell has 3 replicates, so
  DESeq2's Cook's filter never fires. ``detect_outlier_counts`` instead compares each count
  with a robust expectation from the rest of the gene's patient x visit table (median polish
  of log normalised counts, a leave-the-outlier-out fit in effect), and flagged counts are
  replaced by that expected count before dispersions and coefficients are fitted (DESeq2's
  remedy for replaceable outliers; size factors are kept from the original counts). Genes with
  a replaced count are marked in ``outlier_replaced``.
- One dispersion fit per design serves all its Wald tests and LRTs.
- DESeq2 1.38's rules where pydeseq2 0.5.4 departs from them, checked against R on real count
  matrices (tests/test_deseq2_real.py): Wald standard errors from fitted means floored at 0.5;
  dispersion fits on floored means; gene-wise dispersions by DESeq2's own line search, start
  rule and grid (``rhlh.nbglm.deseq2_genewise_dispersions``); DESeq2's parametric trend fit
  (``fit_dispersion_trend``); the LRT's reduced model fitted on its own, diverging genes by
  bounded optimisation, likelihoods of unthresholded means; with ``outlier_handling=False``
  a design is fitted as ``DESeq2::DESeq`` fits it.
- Two modes of testing (``mode``; docs/methods-de.md): ``"deseq2"`` (this module's default)
  gives DESeq2's Wald and chi-square p-values; ``"calibrated"`` (the workflow's default)
  keeps the same fits and estimates and tests with quasi-likelihood F / t tests
  (``rhlh.qlf``), tests of a patient-level label calibrated by permutations between
  patients. What still differs: the final (MAP) dispersions are the
  maximum of DESeq2's posterior found by Newton's method, where DESeq2's line search stops
  a little short of it (median 1e-4 relative); where the parametric trend fails DESeq2 uses
  a local fit, pydeseq2's mean trend is used here.

Visit rule (``select_samples``): samples of visits seen in fewer than ``min_patients_per_visit``
patients are dropped (a visit effect estimated from one or two patients is one or two
patients' noise), then, when ``patient_id`` is in the design, patients left with a single
sample are dropped (their patient coefficient fits them exactly: they carry no within-patient
information). Both rules are repeated until stable and every dropped sample is returned with
its reason.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import chi2, false_discovery_control, nbinom

from rhlh import qlf
from rhlh.design import (
    Contrast,
    Design,
    DesignSpec,
    build_design,
    contrast_vector,
    is_nested,
    parse_formula,
)
from rhlh.errors import InputError
from rhlh.logs import Progress
from rhlh.nbglm import (
    TrendFitError,
    VectorInference,
    apeglm_prior_var,
    blockwise,
    fit_dispersions,
    fit_glm,
    nb_glm_optim,
    nb_loglik,
    parametric_dispersion_fit,
    shrink_coefficient,
)
from rhlh.nbglm import wald as nbglm_wald

LOG = logging.getLogger("rhlh")
LN2 = np.log(2.0)
OUTLIER_COLUMNS = ["gene_id", "sample_id", "count", "expected", "score"]
MODES = ("calibrated", "deseq2")
TEST_NAMES = {  # the ``test`` column of the tables: which p-value the user reads
    ("calibrated", "wald"): "QL t-test",
    ("calibrated", "lrt"): "QL F-test",
    ("deseq2", "wald"): "DESeq2 Wald",
    ("deseq2", "lrt"): "DESeq2 LRT",
}


@dataclass
class QLState:
    """The calibrated mode's fit of a design: NB GLM with the trended dispersions (genes of
    ``dds.non_zero_idx``), the counts it was fitted on, and the squeezed QL dispersions."""

    y: np.ndarray  # n x genes (non-zero genes), the counts the tests use
    disp: np.ndarray  # trended NB dispersions
    beta: np.ndarray  # genes x p, natural log
    mu: np.ndarray  # n x genes, unthresholded
    abundance: np.ndarray  # log(baseMean + 0.5): the covariate of the QL prior's trend
    ql: object  # rhlh.qlf.QLFit


@dataclass
class DEFit:
    """A fitted pydeseq2 dataset for one design, with the design and bookkeeping."""

    dds: object  # pydeseq2.dds.DeseqDataSet
    design: Design
    samples: pd.DataFrame  # indexed by sample_id, in the order of dds rows
    levels: dict | None
    reference: dict | None
    outliers: pd.DataFrame
    n_cpus: int = 1
    messages: list[str] = field(default_factory=list)
    mode: str = "deseq2"  # "calibrated": QL F-tests (rhlh.qlf) on the same fit
    ql: object | None = None  # QLState of the calibrated mode
    patient_col: str = "patient_id"
    permutation_nulls: int = 0  # calibrated mode: pooled null p-values per calibrated test
    seed: int = 0
    flips: list | None = None  # calibrated mode: the sign-flipped refits (_sign_flips), cached

    @property
    def gene_ids(self) -> pd.Index:
        """Gene identifiers, in output order."""
        return pd.Index(self.dds.var_names, name="gene_id")


@dataclass
class DEResult:
    """All tables of one design: Wald tests by contrast id, LRTs by test id, and logs."""

    design: Design
    wald: dict[str, pd.DataFrame]
    lrt: dict[str, pd.DataFrame]
    outliers: pd.DataFrame
    dropped_samples: pd.DataFrame
    messages: list[str]


def _as_sample_index(samples: pd.DataFrame) -> pd.DataFrame:
    if "sample_id" in samples.columns:
        samples = samples.set_index("sample_id", drop=False)
    samples.index = samples.index.map(str)
    samples.index.name = "sample_id"
    return samples


def select_samples(
    samples: pd.DataFrame,
    formulas,
    exclude_samples=(),
    visit_col="visit",
    patient_col="patient_id",
    min_patients_per_visit=3,
    baseline=None,
):
    """Apply exclusions and the visit/patient rules; return (kept samples, dropped table)."""
    samples = _as_sample_index(samples.copy())
    used = set()
    for f in formulas:
        for t in parse_formula(f, samples.columns):
            used.update(t.columns)
    dropped = []

    def drop(mask, reason):
        nonlocal samples
        for sid in samples.index[mask]:
            dropped.append({"sample_id": sid, "reason": reason})
        samples = samples[~mask]

    excl = set(map(str, exclude_samples))
    unknown = sorted(excl - set(samples.index))
    if unknown:
        LOG.warning("exclude_samples lists samples not in the table: %s", ", ".join(unknown))
    drop(samples.index.isin(excl), "excluded in the design config")
    for col in sorted(used):
        s = samples[col]
        drop((s.isna() | (s.map(str).str.strip() == "")).to_numpy(), f"missing value of {col}")
    while True:
        before = len(samples)
        if visit_col in used and patient_col in samples.columns:
            n_pat = samples.groupby(visit_col, observed=True)[patient_col].nunique()
            few = n_pat[n_pat < min_patients_per_visit]
            for visit, n in few.items():
                if baseline is not None and str(visit) == str(baseline):
                    raise InputError(
                        "samples",
                        f"baseline visit {baseline} has samples of only {n} "
                        f"patient(s) (min_patients_per_visit={min_patients_per_visit})",
                        column=visit_col,
                        value=str(visit),
                    )
                drop(
                    (samples[visit_col] == visit).to_numpy(),
                    f"visit {visit} observed in {n} patient(s) "
                    f"(< min_patients_per_visit={min_patients_per_visit})",
                )
        if patient_col in used:
            n_s = samples.groupby(patient_col)[patient_col].transform("size")
            drop((n_s < 2).to_numpy(), f"only sample of its {patient_col} left in the design")
        if len(samples) == before:
            break
    return samples, pd.DataFrame(dropped, columns=["sample_id", "reason"])


def _median_polish(values, row_groups, col_groups, n_iter=10):
    resid = values.copy()
    for _ in range(n_iter):
        for groups in (row_groups, col_groups):
            for idx in groups:
                resid[idx] -= np.median(resid[idx], axis=0)
    return resid


def detect_outlier_counts(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    size_factors,
    score_threshold: float = 10.0,
    min_difference: float = 10.0,
    min_dispersion: float = 1e-3,
    visit_col="visit",
    patient_col="patient_id",
    min_per_group: int = 3,
    prescreen: float = 5.0,
    n_cpus: int = 1,
) -> pd.DataFrame:
    """Flag single wild counts along patients' trajectories (columns gene_id..score).

    ``counts`` is genes x samples. Per gene, log(count / size factor + 0.5) is split by
    median polish into patient + visit effects, which a single count cannot move, giving each
    count a robust expected value. A per-gene dispersion is the negative-binomial maximum
    likelihood (at least ``min_dispersion``) given those expectations, refitted
    without the counts beyond ``prescreen``. ``score`` is the signed -log10 NB tail
    probability of the count (positive: too high). A count is flagged when
    |score| > ``score_threshold`` and it differs from the expected count by at least
    ``min_difference`` reads. Only samples of patients with >= ``min_per_group`` samples at
    visits with >= ``min_per_group`` such patients are examined: with fewer, no robust
    expectation exists.
    """
    samples = _as_sample_index(samples.copy())
    sf = pd.Series(np.asarray(size_factors, dtype=float), index=samples.index)
    ok = pd.Series(True, index=samples.index)
    while True:
        sub = samples[ok]
        n_pat = sub.groupby(patient_col)[patient_col].transform("size")
        n_vis = sub.groupby(visit_col, observed=True)[patient_col].transform("nunique")
        bad = (n_pat < min_per_group) | (n_vis < min_per_group)
        if not bad.any():
            break
        ok[bad[bad].index] = False
    sub = samples[ok]
    if sub.empty:
        return pd.DataFrame(columns=OUTLIER_COLUMNS)
    counts_sub = counts[sub.index].to_numpy().T  # samples x genes
    s = sf[sub.index].to_numpy()[:, None]
    rows = [np.flatnonzero((sub[patient_col] == p).to_numpy()) for p in sub[patient_col].unique()]
    cols = [np.flatnonzero((sub[visit_col] == v).to_numpy()) for v in sub[visit_col].unique()]
    n, n_par = len(sub), len(rows) + len(cols) - 1

    def scan(blk):
        # genes are independent: one block of genes at a time keeps memory flat
        y = counts_sub[:, blk].astype(float)
        logn = np.log(y / s + 0.5)
        resid = _median_polish(logn, rows, cols)
        expected = s * np.maximum(np.exp(logn - resid) - 0.5, 0.0)
        mu = np.maximum(expected, 0.5)
        up = resid > 0
        keep = np.ones_like(y)
        alpha_ml = np.full(y.shape[1], 0.1)
        for _ in range(2):
            # per-gene dispersion: NB maximum likelihood (1e-3..10^1.5) given the robust
            # means, scaled up for the degrees of freedom the polish used; the second pass
            # leaves out the counts the first pass found extreme, so that they do not inflate it
            alpha_ml = fit_dispersions(
                y,
                np.ones((n, 1)),
                mu,
                alpha_ml,
                1e-3,
                10**1.5,
                weights=keep,
                cr_reg=False,
                step="",
            )[0]
            alpha = np.maximum(alpha_ml * n / max(n - n_par, 1), min_dispersion)
            size = np.broadcast_to(1.0 / alpha[None, :], y.shape)
            prob = size / (size + mu)
            log_tail = np.empty_like(y)
            log_tail[up] = nbinom.logsf(y[up] - 1, size[up], prob[up])
            log_tail[~up] = nbinom.logcdf(y[~up], size[~up], prob[~up])
            # signed -log10 tail probability of the count given the robust expectation
            score = np.where(up, 1.0, -1.0) * (-log_tail / np.log(10.0))
            keep = (np.abs(score) <= prescreen).astype(float)
        hit = (np.abs(score) > score_threshold) & (np.abs(y - expected) >= min_difference)
        si, gi = np.nonzero(hit)
        return si, gi + blk.start, y[si, gi], expected[si, gi], score[si, gi]

    parts = blockwise(scan, counts_sub.shape[1], 8 * 24 * n, n_cpus, step="outlier scan")
    si, gi, cnt, exp_, score = (np.concatenate(x) for x in zip(*parts, strict=True))
    out = pd.DataFrame(
        {
            "gene_id": counts.index.to_numpy()[gi].astype(str),
            "sample_id": sub.index.to_numpy()[si],
            "count": cnt.astype(np.int64),
            "expected": exp_,
            "score": score,
        }
    )
    return out.sort_values(["gene_id", "sample_id"]).reset_index(drop=True)


def fit_dispersion_trend(dds) -> None:
    """DESeq2's parametric dispersion trend, in place of pydeseq2's (``fit_dispersion_trend``).

    The trend is fitted as ``DESeq2::estimateDispersionsFit`` does: on the genes that are not
    all zero and whose gene-wise estimate is above 100 x the minimum dispersion, by
    ``rhlh.nbglm.parametric_dispersion_fit`` (pydeseq2 0.5.4 fits all genes, drops outlying
    genes cumulatively and stops its optimiser early: 19-30% away from R on real data). Where
    the parametric form fails, pydeseq2's mean trend is used (DESeq2 uses a local fit there).
    """
    nz = dds.var["non_zero"].to_numpy()
    means = dds.var["_normed_means"].to_numpy()[nz]
    genewise = dds.var["genewise_dispersions"].to_numpy()[nz]
    use = (genewise > 100 * dds.min_disp) & np.isfinite(means) & (means > 0)
    if not use.any():
        raise ValueError(
            "all gene-wise dispersion estimates are within 2 orders of magnitude of the "
            "minimum: no dispersion trend can be fitted"
        )
    try:
        coeffs = parametric_dispersion_fit(means[use], genewise[use])
    except TrendFitError as exc:
        LOG.warning("%s; the dispersion trend is the mean of the gene-wise estimates", exc)
        dds._fit_mean_dispersion_trend()
        return
    dds.uns["trend_coeffs"] = pd.Series(coeffs, index=["a0", "a1"])
    dds.uns["disp_function_type"] = "parametric"
    fitted = np.full(dds.n_vars, np.nan)
    fitted[nz] = dds.disp_function(dds.var["_normed_means"].to_numpy()[nz])
    dds.var["fitted_dispersions"] = fitted


def fit_design(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    formula: str,
    *,
    levels=None,
    reference=None,
    n_cpus: int = 1,
    outlier_handling: bool = True,
    outlier_score: float = 10.0,
    visit_col="visit",
    patient_col="patient_id",
    source="config",
    outlier_cache: dict | None = None,
    mode: str = "deseq2",
    permutation_nulls: int = 0,
    seed: int = 0,
) -> DEFit:
    """Fit size factors, dispersions and coefficients of ``formula`` (counts: genes x samples).

    ``mode="deseq2"`` (the library's default: the functions of this module as DESeq2 defines
    them) tests as DESeq2 does; ``"calibrated"`` (the workflow's default, ``de.mode``) adds
    the QL fit its tests use (``rhlh.qlf``).

    ``outlier_cache`` (a dict shared by the designs of one run) keeps the outlier scan of a
    sample set, so that designs fitted on the same samples and counts scan them once.
    """
    from pydeseq2.dds import DeseqDataSet

    samples = _as_sample_index(samples.copy())
    missing = [s for s in samples.index if s not in counts.columns]
    if missing:
        raise InputError("counts", "sample of the design has no counts column", column=missing[0])
    design = build_design(samples, formula, levels=levels, reference=reference, source=source)
    for m in design.messages:
        LOG.info(m)
    if len(samples) <= design.rank:
        raise InputError(
            source,
            f"design {formula} has {design.rank} coefficients for "
            f"{len(samples)} samples: no residual degrees of freedom",
        )
    x = counts[samples.index].T
    x.index = samples.index
    x.columns = x.columns.map(str)
    obs = pd.DataFrame(index=samples.index)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="anndata")
        dds = DeseqDataSet(
            counts=x,
            metadata=obs,
            design=design.matrix,
            inference=VectorInference(n_cpus=n_cpus, deseq2=True),
            quiet=True,
            refit_cooks=True,
        )
    dds.fit_size_factors()
    outliers = pd.DataFrame(columns=[*OUTLIER_COLUMNS, "replaced"])
    messages = list(design.messages)
    if visit_col in samples.columns and patient_col in samples.columns:
        key = (
            id(counts),
            tuple(samples.index),
            tuple(samples[patient_col].astype(str)),
            tuple(samples[visit_col].astype(str)),
            outlier_score,
        )
        cache = outlier_cache if outlier_cache is not None else {}
        if key not in cache:
            cache[key] = detect_outlier_counts(
                counts[samples.index],
                samples,
                dds.obs["size_factors"].to_numpy(),
                score_threshold=outlier_score,
                visit_col=visit_col,
                patient_col=patient_col,
                n_cpus=n_cpus,
            )
        outliers = cache[key].copy()
        outliers["replaced"] = bool(outlier_handling)
        if len(outliers):
            messages.append(
                f"{formula}: {len(outliers)} outlier count(s) in {outliers.gene_id.nunique()} "
                f"gene(s); {'replaced by their expected counts' if outlier_handling else 'kept'}"
            )
            LOG.info(messages[-1])
    if outlier_handling and len(outliers):
        gpos = dds.var_names.get_indexer(outliers["gene_id"])
        spos = dds.obs_names.get_indexer(outliers["sample_id"])
        xx = np.array(dds.X, copy=True)
        xx[spos, gpos] = np.round(outliers["expected"].to_numpy()).astype(xx.dtype)
        dds.X = xx
        dds.layers["normed_counts"] = xx / dds.obs["size_factors"].to_numpy()[:, None]
        dds.var["_normed_means"] = dds.layers["normed_counts"].mean(axis=0)
    dds.var["outlier_replaced"] = (
        dds.var_names.isin(outliers["gene_id"]) if outlier_handling else False
    )
    # the rest of DeseqDataSet.deseq2(), keeping the size factors of the original counts
    dds.fit_genewise_dispersions()
    fit_dispersion_trend(dds)
    dds.fit_dispersion_prior()
    dds.fit_MAP_dispersions()
    dds.fit_LFC()
    dds.calculate_cooks()
    if dds.refit_cooks:
        dds.refit()
    dds.cooks_outlier()
    if mode not in MODES:
        raise InputError(source, f"de.mode must be one of {', '.join(MODES)}", value=mode)
    fit = DEFit(
        dds=dds,
        design=design,
        samples=samples,
        levels=levels,
        reference=reference,
        outliers=outliers,
        n_cpus=n_cpus,
        messages=messages,
        mode=mode,
        patient_col=patient_col,
        permutation_nulls=permutation_nulls,
        seed=seed,
    )
    if mode == "calibrated":
        fit.ql = _ql_state(fit)
    return fit


def independent_filter(base_mean, pvalues, alpha: float = 0.05) -> np.ndarray:
    """BH-adjusted p-values after DESeq2's independent filtering on baseMean."""
    from pydeseq2.utils import lowess

    base_mean = np.asarray(base_mean, dtype=float)
    p = np.asarray(pvalues, dtype=float)
    lower = np.mean(base_mean == 0)
    upper = 0.95 if lower < 0.95 else 1.0
    theta = np.linspace(lower, upper, 50)
    cutoffs = np.quantile(base_mean, theta)
    result = np.full((len(p), len(theta)), np.nan)
    for i, cut in enumerate(cutoffs):
        use = (base_mean >= cut) & ~np.isnan(p)
        if use.any():
            result[use, i] = false_discovery_control(p[use], method="bh")
    num_rej = (result < alpha).sum(axis=0)
    fit = lowess(theta, num_rej, frac=1 / 5)
    j = 0
    if num_rej.max() > 10:
        resid = num_rej[num_rej > 0] - fit[num_rej > 0]
        thresh = fit.max() - np.sqrt(np.mean(resid**2))
        above = np.flatnonzero(num_rej > thresh)
        j = int(above[0]) if len(above) else 0
    return result[:, j]


def _resolve_contrast(fit: DEFit, contrast):
    cols = list(fit.design.matrix.columns)
    if isinstance(contrast, Contrast):
        if contrast.weights is not None:
            unknown = [c for c in contrast.weights if c not in cols]
            if unknown:
                raise ValueError(
                    f"contrast {contrast.id}: '{unknown[0]}' is not an estimable "
                    f"column of {fit.design.formula} ({', '.join(cols)})"
                )
            return np.array([contrast.weights.get(c, 0.0) for c in cols])
        return contrast_vector(fit.design, contrast.factor, contrast.level, contrast.ref)
    if isinstance(contrast, tuple | list) and len(contrast) == 3:
        return contrast_vector(fit.design, *map(str, contrast))
    if isinstance(contrast, str):
        if contrast not in cols:
            raise ValueError(f"'{contrast}' is not an estimable column of {fit.design.formula}")
        return (np.array(cols) == contrast).astype(float)
    vec = np.asarray(contrast, dtype=float)
    if vec.shape != (len(cols),):
        raise ValueError(f"contrast vector needs {len(cols)} weights")
    return vec


def _annotate(table: pd.DataFrame, fit: DEFit, gene_names=None) -> pd.DataFrame:
    table = table.copy()
    table.insert(0, "gene_id", fit.gene_ids.to_numpy())
    names = pd.Series("", index=fit.gene_ids)
    if gene_names is not None:
        names = pd.Series(gene_names).reindex(fit.gene_ids).fillna("").astype(str)
    table.insert(1, "gene_name", names.to_numpy())
    table["outlier_replaced"] = fit.dds.var["outlier_replaced"].to_numpy().astype(bool)
    return table.reset_index(drop=True)


def wald_test(
    fit: DEFit,
    contrast,
    alpha: float = 0.05,
    shrink: bool = False,
    gene_names=None,
    cooks_filter: bool = True,
    independent_filter: bool = True,
) -> pd.DataFrame:
    """DESeq2 Wald test of a contrast (factor/level/ref, column name, Contrast or vector)."""
    from pydeseq2.ds import DeseqStats

    vec = _resolve_contrast(fit, contrast)
    ds = DeseqStats(
        fit.dds,
        contrast=vec,
        alpha=alpha,
        cooks_filter=cooks_filter,
        independent_filter=independent_filter,
        quiet=True,
        inference=VectorInference(n_cpus=fit.n_cpus, deseq2=True),
    )
    ds.summary()
    res = ds.results_df[["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]]
    res = res.copy()
    if fit.mode == "calibrated":
        res["stat"], res["pvalue"], res["padj"], n_flips = _ql_wald(
            fit, vec, res["pvalue"].to_numpy(), alpha, independent_filter
        )
    if shrink:
        res["log2FoldChange_shrunk"] = np.nan
        res["lfcSE_shrunk"] = np.nan
        single = np.flatnonzero(vec)
        if len(single) == 1 and vec[single[0]] == 1.0:
            res.loc[:, ["log2FoldChange_shrunk", "lfcSE_shrunk"]] = _shrink(fit, ds, single[0])
        else:
            # apeglm shrinks one coefficient; a difference of coefficients has no prior here
            LOG.info("no LFC shrinkage for a contrast that is not a single coefficient")
    res["test"] = TEST_NAMES[(fit.mode, "wald")]
    if fit.mode == "calibrated" and n_flips:
        res["test"] += f", sign-flip-calibrated ({n_flips} x patients)"
    return _annotate(res, fit, gene_names)


def _ql_wald(fit: DEFit, vec, deseq2_p, alpha, filtering: bool):
    """QL t statistics, p-values and padj of a contrast (calibrated mode): the Wald z of the
    trended-dispersion fit over sqrt(squeezed QL dispersion), a t reference with the QL df.
    The genes DESeq2 leaves untested (all zero, Cook's outliers) stay untested."""
    dds, st = fit.dds, fit.ql
    nz = dds.non_zero_idx
    X = fit.design.matrix.to_numpy(dtype=float)
    mu = np.maximum(st.mu, dds.min_mu)  # DESeq2's floor for the Wald weights
    _, z, _ = nbglm_wald(X, st.disp, st.beta, mu, np.full(X.shape[1], 1e-6), vec, 0.0, fit.n_cpus)
    stat = np.full(dds.n_vars, np.nan)
    pvalue = np.full(dds.n_vars, np.nan)
    stat[nz], pvalue[nz] = qlf.wald_f(z, st.ql)
    pvalue[np.isnan(deseq2_p)] = np.nan
    flip = _flip_columns(fit)
    n_flips = 0
    if flip is not None and np.all(vec[~flip] == 0) and fit.permutation_nulls > 0:
        ok = np.isfinite(pvalue[nz])
        nulls = []
        for Xb, beta_b, ql_b in _sign_flips(fit):
            mu_b = np.maximum(sf_mu(dds, Xb, beta_b), dds.min_mu)
            _, z_b, _ = nbglm_wald(
                Xb, st.disp, beta_b, mu_b, np.full(X.shape[1], 1e-6), vec, 0.0, fit.n_cpus
            )
            nulls.append(qlf.wald_f(z_b, ql_b)[1][ok])
        sub = pvalue[nz]
        sub[ok], n_flips = _pooled_calibration(fit, sub[ok], nulls, "contrast, sign flips")
        pvalue[nz] = sub
    return stat, pvalue, _padj(dds, pvalue, alpha, filtering), n_flips


def sf_mu(dds, X, beta) -> np.ndarray:
    """Fitted means (samples x genes) of natural-log coefficients ``beta`` (genes x p)."""
    return dds.obs["size_factors"].to_numpy()[:, None] * np.exp(X @ beta.T)


def _padj(dds, pvalue, alpha, filtering: bool) -> np.ndarray:
    """BH-adjusted p-values, after DESeq2's independent filtering on baseMean when asked."""
    if filtering:
        return independent_filter(dds.var["_normed_means"].to_numpy(), pvalue, alpha)
    padj = np.full(len(pvalue), np.nan)
    ok = ~np.isnan(pvalue)
    padj[ok] = false_discovery_control(pvalue[ok], method="bh")
    return padj


def _shrink(fit: DEFit, ds, k: int) -> np.ndarray:
    """apeGLM-shrunken log2FC and SE of coefficient k (genes x 2), as DESeq2's lfcShrink.

    The prior scale comes from the MLEs and SEs of the coefficient (apeGLM's adaptive prior,
    capped at 1 as pydeseq2 does); the MAP fits run vectorised in ``rhlh.nbglm``.
    """
    dds = fit.dds
    nz = dds.non_zero_idx
    prior_var = apeglm_prior_var(ds.LFC.iloc[:, k].to_numpy(), ds.SE.to_numpy())
    lfc, se, _ = shrink_coefficient(
        np.asarray(dds.X, dtype=float)[:, nz],
        dds.obs["size_factors"].to_numpy(),
        fit.design.matrix.to_numpy(dtype=float),
        dds.var["dispersions"].to_numpy()[nz],
        k,
        prior_scale=min(np.sqrt(prior_var), 1.0),
        init=ds.LFC.to_numpy()[nz],  # the MLEs: the MAP is close
        n_cpus=fit.n_cpus,
        step=f"apeGLM shrinkage of {fit.design.matrix.columns[k]}",
    )
    out = np.full((dds.n_vars, 2), np.nan)
    out[nz, 0], out[nz, 1] = lfc / LN2, se / LN2
    return out


def _nb_fit(
    y,
    size_factors,
    X,
    disp,
    min_mu,
    n_cpus=1,
    step="LRT reduced-model fit",
    beta_init=None,
    closed_form=True,
):
    """NB GLM fits with known dispersions as DESeq2 fits them: (beta genes x p, unthresholded
    fitted means n x genes).

    An intercept-only model gets DESeq2's closed form (the mean of the normalized counts)
    unless ``closed_form=False`` (the QL fits: the NB maximum, as edgeR's); any other model
    is fitted by IRLS from the least-squares start (or ``beta_init``), and the genes whose
    IRLS diverges or does not converge (e.g. a group of all zeros) by ``nb_glm_optim``
    (bounded L-BFGS-B), as ``DESeq2::fitNbinomGLMs`` does; a diverged fit never keeps its
    start.
    """
    sf = np.asarray(size_factors, dtype=float)
    if closed_form and X.shape[1] == 1 and np.all(X == 1.0):
        mean = (y / sf[:, None]).mean(axis=0)
        with np.errstate(divide="ignore"):
            return np.log(mean)[:, None], sf[:, None] * mean[None, :]
    beta, mu, _, _, fallback = fit_glm(
        y, sf, X, disp, min_mu, n_cpus=n_cpus, with_hat=False, step=step, beta_init=beta_init
    )
    for j in np.flatnonzero(fallback):
        start = beta[j] if np.all(np.abs(beta[j]) < 30 * LN2) else None
        if start is None:
            logy = np.log(y[:, j] / sf + 0.1)
            start = np.linalg.lstsq(X, logy, rcond=None)[0]
        beta[j], mu[:, j], _ = nb_glm_optim(y[:, j], sf, X, disp[j], start)
    return beta, mu


def _test_counts(dds) -> np.ndarray:
    """The counts the tests use (samples x genes): DESeq2 tests refitted genes on their
    outlier-replaced counts."""
    y = np.array(dds.X, dtype=float)
    if "refitted" in dds.var and dds.var["refitted"].any():
        cols = dds.var_names.get_indexer(dds.counts_to_refit.var_names)
        y[:, cols] = dds.counts_to_refit.X
    return y


def _ql_state(fit: DEFit) -> QLState:
    """The calibrated mode's fit: the design refitted with DESeq2's trended dispersions (warm
    start from the DESeq2 fit), then QL dispersions squeezed towards a trend in abundance."""
    dds = fit.dds
    nz = dds.non_zero_idx
    y = _test_counts(dds)[:, nz]
    sf = dds.obs["size_factors"].to_numpy()
    trend = dds.var["fitted_dispersions"].to_numpy()[nz]
    X = fit.design.matrix.to_numpy(dtype=float)
    beta, mu = _nb_fit(
        y,
        sf,
        X,
        trend,
        qlf.MIN_MU,
        fit.n_cpus,
        step="QL fit (trended dispersions)",
        beta_init=dds.varm["LFC"].to_numpy()[nz],
        closed_form=False,
    )
    abundance = np.log(dds.var["_normed_means"].to_numpy()[nz] + 0.5)
    state = QLState(
        y=y,
        disp=trend,
        beta=beta,
        mu=mu,
        abundance=abundance,
        ql=qlf.ql_fit(y, mu, trend, X, abundance),
    )
    LOG.info("%s: %s", fit.design.formula, state.ql.describe())
    return state


def lrt(
    fit: DEFit,
    reduced_formula: str,
    alpha: float = 0.05,
    gene_names=None,
    cooks_filter: bool = True,
    independent_filtering: bool = True,
    source="config",
) -> pd.DataFrame:
    """DESeq2 likelihood-ratio test of the fitted design against ``reduced_formula``."""
    dds = fit.dds
    reduced = build_design(
        fit.samples, reduced_formula, levels=fit.levels, reference=fit.reference, source=source
    )
    for m in reduced.messages:
        LOG.info(m)
    if not is_nested(fit.design, reduced):
        raise InputError(
            source, f"reduced design {reduced_formula} is not nested in {fit.design.formula}"
        )
    df = fit.design.rank - reduced.rank
    if df <= 0:
        raise InputError(
            source,
            f"reduced design {reduced_formula} has as many estimable "
            f"columns as {fit.design.formula}: nothing to test",
        )
    nz = dds.non_zero_idx
    sf = dds.obs["size_factors"].to_numpy()
    x_red = reduced.matrix.to_numpy(dtype=float)
    stat = np.full(dds.n_vars, np.nan)
    pvalue = np.full(dds.n_vars, np.nan)
    if fit.mode == "calibrated":
        st = fit.ql
        beta_red, mu_red = _nb_fit(
            st.y, sf, x_red, st.disp, qlf.MIN_MU, fit.n_cpus, closed_form=False
        )
        dev_red = qlf.nb_deviance(st.y, mu_red, st.disp)
        stat[nz], pvalue[nz] = qlf.f_test(dev_red, st.ql, df)
        test = TEST_NAMES[("calibrated", "lrt")]
        moved = _between_patient_columns(fit, reduced)
        if moved and fit.permutation_nulls > 0:
            start = pd.DataFrame(beta_red, columns=reduced.matrix.columns)
            pvalue[nz], n_perm = _permutation_pvalues(
                fit, moved, reduced.rank, dev_red, pvalue[nz], start
            )
            test += f", permutation-calibrated ({n_perm} x {'+'.join(moved)})"
        elif _flips_test(fit, reduced) and fit.permutation_nulls > 0:
            ok = np.isfinite(pvalue[nz])
            nulls = [qlf.f_test(dev_red, ql_b, df)[1][ok] for _, _, ql_b in _sign_flips(fit)]
            sub = pvalue[nz]
            sub[ok], n_flips = _pooled_calibration(fit, sub[ok], nulls, "LRT, sign flips")
            pvalue[nz] = sub
            test += f", sign-flip-calibrated ({n_flips} x patients)"
        return _finish_lrt(
            fit, stat, pvalue, df, alpha, gene_names, cooks_filter, independent_filtering, test
        )
    y = _test_counts(dds)
    disp = dds.var["dispersions"].to_numpy()[nz]
    # the full model is the design's own fit (same IRLS, dispersions and counts, refitted
    # genes included); the reduced model is fitted on its own, as DESeq2's nbinomLRT does.
    # Both log-likelihoods use the unthresholded fitted means, as DESeq2's: the 0.5 floor
    # belongs to the IRLS weights only.
    x_full = fit.design.matrix.to_numpy(dtype=float)
    lfc = dds.varm["LFC"].to_numpy()[nz]
    mu_full = sf[:, None] * np.exp(x_full @ lfc.T)
    yy = y[:, nz]
    _, mu_red = _nb_fit(yy, sf, x_red, disp, dds.min_mu, fit.n_cpus)
    stat[nz] = 2.0 * (
        nb_loglik(yy, mu_full, disp[None, :]).sum(axis=0)
        - nb_loglik(yy, mu_red, disp[None, :]).sum(axis=0)
    )
    pvalue = chi2.sf(stat, df)
    return _finish_lrt(
        fit,
        stat,
        pvalue,
        df,
        alpha,
        gene_names,
        cooks_filter,
        independent_filtering,
        TEST_NAMES[("deseq2", "lrt")],
    )


def _between_patient_columns(fit: DEFit, reduced: Design) -> list[str]:
    """The sample columns of the tested terms (full minus reduced) when each is constant
    within every patient (e.g. ``responder`` of ``responder:visit``), else []: a test of a
    patient-level covariate, whose labels can be permuted between patients."""
    kept = {t.label for t in reduced.terms}
    tested = [t for t in fit.design.terms if t.label not in kept]
    cols = sorted({c for t in tested for c in t.columns})
    pc = fit.patient_col
    if not cols or pc not in fit.samples.columns or pc in cols:
        return []
    per_patient = fit.samples.groupby(pc, sort=False)[cols].nunique(dropna=False)
    return [c for c in cols if (per_patient[c] <= 1).all()]


def _flip_columns(fit: DEFit) -> np.ndarray | None:
    """Mask of the design columns that vary within some patient (visit and its interactions)
    when the design has a patient term, else None: the columns whose sign a patient's
    trajectory flip reverses. The other columns are constant within every patient."""
    pc = fit.patient_col
    if pc not in {c for t in fit.design.terms for c in t.columns}:
        return None
    M = fit.design.matrix
    varies = M.groupby(fit.samples[pc].to_numpy(), sort=False).nunique().gt(1).any()
    mask = varies.reindex(M.columns).to_numpy(dtype=bool)
    return mask if mask.any() else None


def _flips_test(fit: DEFit, reduced: Design) -> bool:
    """Whether an LRT tests exactly the within-patient columns (the time test: reduced =
    the patient-level part of the design), which the sign flips calibrate."""
    mask = _flip_columns(fit)
    if mask is None:
        return False
    cols = fit.design.matrix.columns
    kept = set(reduced.matrix.columns)
    if not kept <= set(cols):
        return False
    return bool(np.array_equal(~cols.isin(list(kept)), mask))


def _sign_flips(fit: DEFit) -> list:
    """Refits of the design with the trajectories of half of the patients mirrored.

    Each flip multiplies the within-patient columns (:func:`_flip_columns`) of a random half
    of the patients by -1 — their change from their own baseline enters with the opposite
    sign — and refits the model with the trended dispersions and QL dispersions. When no
    visit effect exists on average, patient trajectories (per-patient slopes included) are as
    likely mirrored as not, so a test on a flipped fit is a draw from the test's null; taking
    exactly half of the patients cancels a common change to first order, so that genes that
    do change add little to the pooled null. ``fit.permutation_nulls / genes`` flips (at least
    2), seeded by ``fit.seed``, computed once per fit and shared by its tests. Returns
    (X, beta, QL fit) per flip.
    """
    if fit.flips is not None:
        return fit.flips
    dds, st = fit.dds, fit.ql
    sf = dds.obs["size_factors"].to_numpy()
    mask = _flip_columns(fit)
    X = fit.design.matrix.to_numpy(dtype=float)
    patients = fit.samples[fit.patient_col].to_numpy()
    ids = pd.unique(patients)
    n_flip = max(2, int(np.ceil(fit.permutation_nulls / max(st.y.shape[1], 1))))
    rng = np.random.default_rng([fit.seed, 1])
    step = Progress(f"{fit.design.formula}: sign flips", n_flip, "flips", logger=LOG)
    flips = []
    for _ in range(n_flip):
        half = rng.choice(ids, size=len(ids) // 2, replace=False)
        Xb = X.copy()
        rows = np.isin(patients, half)
        Xb[np.ix_(rows, mask)] *= -1.0
        # warm start: the fit's own coefficients with the flipped columns at 0
        init = np.where(mask[None, :], 0.0, st.beta)
        beta_b, mu_b = _nb_fit(
            st.y,
            sf,
            Xb,
            st.disp,
            qlf.MIN_MU,
            fit.n_cpus,
            step="",
            beta_init=init,
            closed_form=False,
        )
        flips.append((Xb, beta_b, qlf.ql_fit(st.y, mu_b, st.disp, Xb, st.abundance)))
        step.update(1)
    fit.flips = flips
    return flips


def _pooled_calibration(fit: DEFit, pvalue: np.ndarray, nulls: list, what: str):
    """``pvalue`` read on the pooled null p-values ``nulls`` (:func:`calibrate_to_pool`);
    unchanged, with a warning, when the pool is empty. Returns (p-values, draws)."""
    pool = np.sort(np.concatenate([n[np.isfinite(n)] for n in nulls])) if nulls else np.array([])
    if pool.size == 0:
        LOG.warning("%s: no null p-value (%s); QL p-values kept", fit.design.formula, what)
        return pvalue, 0
    LOG.info(
        "%s (%s): %d draws, %d pooled null p-values (%.4f of them below 0.01)",
        fit.design.formula,
        what,
        len(nulls),
        pool.size,
        float(np.mean(pool < 0.01)),
    )
    return calibrate_to_pool(pvalue, pool), len(nulls)


PERMUTATION_TAIL = 100  # pooled null p-values below the point where the tail is extrapolated


def calibrate_to_pool(p: np.ndarray, pool: np.ndarray, tail: int = PERMUTATION_TAIL) -> np.ndarray:
    """Observed p-values read on the pooled null distribution ``pool`` (sorted).

    Above the tail point ``t`` (the ``tail``-th smallest null value) a p-value is the
    empirical share (1 + k) / (1 + N) of null values at or below it. Below ``t`` the empirical
    share would stop at 1 / (1 + N) — too coarse for BH over thousands of genes — so the
    null distribution's lower tail is taken proportional to the nominal p-value, with the
    inflation measured at ``t``: p · F(t) / t. The two pieces meet at ``t`` and the map is
    monotone, so genes keep the order of their nominal p-values.
    """
    p = np.asarray(p, dtype=float)
    n = pool.size
    emp = (1.0 + np.searchsorted(pool, p, side="right")) / (1.0 + n)
    t = pool[min(tail, n) - 1]
    if t <= 0:
        return emp
    f_t = (1.0 + np.searchsorted(pool, t, side="right")) / (1.0 + n)
    low = p < t
    emp[low] = p[low] * (f_t / t)
    return emp


def _permutation_pvalues(
    fit: DEFit, columns: list[str], reduced_rank: int, dev_red, pvalue, start: pd.DataFrame
):
    """QL F p-values calibrated by permutation of patient-level labels, pooled over genes.

    The labels in ``columns`` are permuted between patients (each patient keeps its samples,
    visits and counts: patient-specific trajectories stay with their patient); each
    permutation refits the full model with the trended dispersions and gives every gene a
    null QL F p-value against the same reduced fit. A gene's p-value is the share of the
    pooled null p-values at or below its own ((1 + k) / (1 + N)), extrapolated in the far
    tail (:func:`calibrate_to_pool`): calibrated under exchangeable patients whatever the
    residual correlation within patients. Permutations:
    enough for ``fit.permutation_nulls`` null values, at least 2, seeded by ``fit.seed``.
    """
    dds, st = fit.dds, fit.ql
    sf = dds.obs["size_factors"].to_numpy()
    ok = np.isfinite(pvalue)
    n_perm = max(2, int(np.ceil(fit.permutation_nulls / max(ok.sum(), 1))))
    pc = fit.patient_col
    table = fit.samples.groupby(pc, sort=False)[columns].first()
    rng = np.random.default_rng(fit.seed)
    nulls = []
    step = Progress(f"permutations of {', '.join(columns)}", n_perm, "permutations", logger=LOG)
    for _ in range(n_perm):
        shuffled = table.iloc[rng.permutation(len(table))].set_axis(table.index)
        samples = fit.samples.copy()
        for c in columns:
            samples[c] = samples[pc].map(shuffled[c])
        design = build_design(
            samples, fit.design.formula, levels=fit.levels, reference=fit.reference
        )
        X = design.matrix.to_numpy(dtype=float)
        # warm start: the reduced model's coefficients, the tested columns at 0
        init = start.reindex(columns=design.matrix.columns, fill_value=0.0).to_numpy()
        _, mu = _nb_fit(
            st.y,
            sf,
            X,
            st.disp,
            qlf.MIN_MU,
            fit.n_cpus,
            step="",
            beta_init=init,
            closed_form=False,
        )
        ql_b = qlf.ql_fit(st.y, mu, st.disp, X, st.abundance)
        _, p_b = qlf.f_test(dev_red, ql_b, max(design.rank - reduced_rank, 1))
        nulls.append(p_b[ok & np.isfinite(p_b)])
        step.update(1)
    out = np.full(pvalue.shape, np.nan)
    out[ok], n_done = _pooled_calibration(
        fit, pvalue[ok], nulls, f"permutations of {', '.join(columns)}"
    )
    return out, n_done


def _finish_lrt(
    fit, stat, pvalue, df, alpha, gene_names, cooks_filter, independent_filtering, test
):
    """DESeq2's filters on LRT p-values (new all-zero genes, Cook's, independent filtering)
    and the table."""
    dds = fit.dds
    if getattr(dds, "new_all_zeroes_genes", None) is not None and len(dds.new_all_zeroes_genes):
        pos = dds.var_names.get_indexer(dds.new_all_zeroes_genes)
        stat[pos], pvalue[pos] = 0.0, 1.0
    if cooks_filter:
        pvalue[dds.cooks_outlier().to_numpy()] = np.nan
    base_mean = dds.var["_normed_means"].to_numpy()
    padj = _padj(dds, pvalue, alpha, independent_filtering)
    table = pd.DataFrame(
        {"baseMean": base_mean, "stat": stat, "df": df, "pvalue": pvalue, "padj": padj}
    )
    table["test"] = test
    return _annotate(table, fit, gene_names)


def mark_signature_genes(table: pd.DataFrame, gene_sets) -> pd.DataFrame:
    """Add ``signature_genes``: comma-joined names of the gene sets holding each gene."""
    table = table.copy()
    member: dict[str, set[str]] = {}
    for name, genes in (gene_sets or {}).items():
        for g in genes:
            member.setdefault(str(g).upper(), set()).add(str(name))
    columns = [table["gene_id"].astype(str).str.upper().to_numpy()]
    if "gene_name" in table:
        columns.append(table["gene_name"].fillna("").astype(str).str.upper().to_numpy())
    empty: set[str] = set()
    table["signature_genes"] = [
        ",".join(sorted(set().union(*(member.get(k, empty) for k in keys))))
        for keys in zip(*columns, strict=True)
    ]
    return table


def run_design(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    spec: DesignSpec,
    *,
    levels=None,
    reference=None,
    baseline=None,
    gene_names=None,
    gene_sets=None,
    alpha: float = 0.05,
    shrink: bool = True,
    outlier_handling: bool = True,
    outlier_score: float = 10.0,
    min_patients_per_visit: int = 3,
    n_cpus: int = 1,
    visit_col="visit",
    patient_col="patient_id",
    source="config",
    outlier_cache: dict | None = None,
    mode: str = "deseq2",
    permutation_nulls: int = 0,
    seed: int = 0,
) -> DEResult:
    """Select samples, fit once, then run every Wald contrast and LRT of one design spec."""
    formulas = [spec.formula, *spec.reduced.values()]
    kept, dropped = select_samples(
        samples,
        formulas,
        spec.exclude_samples,
        visit_col,
        patient_col,
        min_patients_per_visit,
        baseline,
    )
    messages = [f"design {spec.id}: {len(kept)} samples kept, {len(dropped)} dropped"]
    for reason, grp in dropped.groupby("reason", sort=True):
        messages.append(f"design {spec.id}: dropped {', '.join(grp.sample_id)}: {reason}")
    fit = fit_design(
        counts,
        kept,
        spec.formula,
        levels=levels,
        reference=reference,
        n_cpus=n_cpus,
        outlier_handling=outlier_handling,
        outlier_score=outlier_score,
        visit_col=visit_col,
        patient_col=patient_col,
        source=source,
        outlier_cache=outlier_cache,
        mode=mode,
        permutation_nulls=permutation_nulls,
        seed=seed,
    )
    for m in messages:
        LOG.info(m)
    messages += fit.messages  # fit_design has logged its own
    own = len(messages)
    wald = {}
    for c in spec.contrasts:
        todo = []
        if isinstance(c, str):
            if c not in fit.design.levels:
                raise InputError(
                    source,
                    f"design {spec.id}: contrast factor '{c}' is not a "
                    "categorical term of the formula",
                    column="contrasts",
                    value=c,
                )
            ref = fit.design.references[c]
            todo = [
                Contrast(f"{lv}_vs_{ref}", c, lv, ref)
                for lv in fit.design.levels[c][1:]
                if (c, lv) in fit.design.factor_columns
            ]
        else:
            todo = [c]
        for con in todo:
            try:
                tab = wald_test(fit, con, alpha=alpha, shrink=shrink, gene_names=gene_names)
            except ValueError as exc:
                messages.append(f"design {spec.id}: contrast {con.id} skipped: {exc}")
                continue
            wald[con.id] = mark_signature_genes(tab, gene_sets)
    tests = {}
    for tid, rf in spec.reduced.items():
        tests[tid] = mark_signature_genes(
            lrt(fit, rf, alpha=alpha, gene_names=gene_names, source=source), gene_sets
        )
    for m in messages[own:]:
        LOG.info(m)
    return DEResult(
        design=fit.design,
        wald=wald,
        lrt=tests,
        outliers=fit.outliers,
        dropped_samples=dropped,
        messages=messages,
    )
