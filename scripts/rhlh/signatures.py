"""Gene-set (JAK-STAT / IFN-γ) signatures: GMT files, per-sample scores, longitudinal models
and competitive gene-set tests on differential-expression results.

Scoring methods (``METHODS``):

- ``ulm`` (primary): per sample, the t-value of the slope of a univariate linear model of the
  sample's log2-CPM (centred within the sample across genes) on the set-membership vector,
  i.e. a two-sample t of set genes against all other genes of that sample.
- ``singscore``: per sample, mean within-sample rank of the set genes, rescaled so that the
  lowest possible mean rank is -0.5 and the highest +0.5 (unidirectional singscore-like).
- ``aucell`` (sensitivity): per sample, area under the recovery curve of the set genes in the
  top ``aucell_top`` fraction of the sample's genes ranked by expression, divided by its
  maximum (AUCell-like).
- ``mean_logcpm`` (short sets only): mean log2-CPM of the set genes.
- ``mean_z_cohort`` (short sets only): mean over set genes of the gene's z-score across the
  samples scored together; it changes when samples are added (cohort-dependent).

Every method except ``mean_z_cohort`` uses one sample's counts alone, so a score computed
today does not change when next month's batch is added (given the same gene universe).
ulm, singscore and aucell compare the set with the sample's other genes: when a large share of
the transcriptome moves (e.g. a big IFN set falls), unrelated sets move a little the other way.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy import stats

from rhlh.errors import InputError
from rhlh.expression import log_cpm
from rhlh.longitudinal import change_from_baseline, fit_visit_by_response
from rhlh.stats import bh_adjust
from rhlh.tables import as_responders, response_label

log = logging.getLogger("rhlh")

METHODS = {
    "ulm": {
        "cohort_dependent": False,
        "sets": "all",
        "role": "primary",
        "description": "t of a univariate linear model of the sample's log2-CPM on set "
        "membership (within-sample)",
    },
    "singscore": {
        "cohort_dependent": False,
        "sets": "all",
        "role": "secondary",
        "description": "rescaled mean within-sample rank of the set genes (-0.5..0.5)",
    },
    "aucell": {
        "cohort_dependent": False,
        "sets": "all",
        "role": "sensitivity",
        "description": "normalised area under the recovery curve in the sample's top genes",
    },
    "mean_logcpm": {
        "cohort_dependent": False,
        "sets": "short",
        "role": "secondary",
        "description": "mean log2(CPM + 1) of the set genes",
    },
    "mean_z_cohort": {
        "cohort_dependent": True,
        "sets": "short",
        "role": "secondary",
        "description": "mean z-score of the set genes across the samples scored together "
        "(changes when samples are added)",
    },
}
PRIMARY_METHOD = "ulm"
SCORE_COLUMNS = ["sample_id", "patient_id", "visit", "day", "signature", "method", "score"]
MISSING_COLUMNS = [
    "signature",
    "source",
    "n_genes",
    "n_present",
    "n_missing",
    "used",
    "reason",
    "missing_genes",
]
ENRICHMENT_COLUMNS = [
    "signature",
    "contrast",
    "method",
    "alternative",
    "n_genes",
    "score",
    "es",
    "pvalue",
    "padj",
]

# --------------------------------------------------------------------------------------------
# Expression matrix and gene matching
# --------------------------------------------------------------------------------------------


def _symbol(gene_id, gene_name):
    name = "" if gene_name is None or pd.isna(gene_name) else str(gene_name).strip()
    return (name or str(gene_id).strip()).upper()


def counts_by_symbol(counts, source="counts") -> pd.DataFrame:
    """Raw counts as samples x gene symbols, summing genes that share a symbol.

    ``counts`` is a bulk AnnData (obs = samples; ``layers["counts"]`` or X; var columns
    ``gene_id`` / ``gene_name`` or var_names) or a genes x samples DataFrame with a
    ``gene_id`` column, an optional ``gene_name`` column and one column per sample. Genes are
    named by ``gene_name`` when present and non-empty, else ``gene_id`` (upper-cased).
    """
    if isinstance(counts, pd.DataFrame):
        if "gene_id" not in counts.columns:
            raise InputError(source, "counts table needs a gene_id column", column="gene_id")
        names = counts["gene_name"] if "gene_name" in counts.columns else [None] * len(counts)
        symbols = [_symbol(i, n) for i, n in zip(counts["gene_id"], names, strict=True)]
        sample_cols = [c for c in counts.columns if c not in ("gene_id", "gene_name")]
        mat = counts[sample_cols].apply(pd.to_numeric, errors="raise").to_numpy(float).T
        samples = [str(s) for s in sample_cols]
    else:
        ad = counts
        x = ad.layers["counts"] if "counts" in ad.layers else ad.X
        mat = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
        mat = np.asarray(mat, dtype=float)
        var = ad.var
        ids = var["gene_id"] if "gene_id" in var.columns else pd.Series(ad.var_names)
        names = var["gene_name"] if "gene_name" in var.columns else [None] * ad.n_vars
        symbols = [_symbol(i, n) for i, n in zip(ids, names, strict=True)]
        samples = [str(s) for s in ad.obs_names]
    if np.any(~np.isfinite(mat)) or np.any(mat < 0):
        raise InputError(source, "counts must be finite and non-negative")
    df = pd.DataFrame(mat, index=pd.Index(samples, name="sample_id"), columns=symbols)
    if df.columns.has_duplicates:
        # summing is per sample, so it keeps scores independent of the other samples
        df = df.T.groupby(level=0, sort=True).sum().T
    else:
        df = df.reindex(columns=sorted(df.columns))
    df.index.name = "sample_id"
    return df


def sample_log_cpm(counts: pd.DataFrame, source="counts") -> pd.DataFrame:
    """log2(CPM + 1) of a samples x genes frame, each sample scaled by its own total."""
    lib = counts.sum(axis=1)
    empty = lib[lib <= 0]
    if len(empty):
        raise InputError(source, "sample has no counts at all", row=str(empty.index[0]))
    return pd.DataFrame(log_cpm(counts.to_numpy(float)), index=counts.index, columns=counts.columns)


def match_gene_sets(
    gene_sets: dict[str, list[str]],
    genes,
    min_genes: int = 5,
    sources: dict[str, str] | None = None,
) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """Keep the genes of each set present in ``genes``; report missing genes and refused sets.

    A set with fewer than ``min_genes`` genes present is refused with a warning; a GMT file
    with no gene in the data, or no usable set at all, raises InputError.
    """
    sources = sources or {}
    universe = {str(g).upper() for g in genes}
    kept: dict[str, list[str]] = {}
    rows = []
    any_hit_by_file: dict[str, bool] = {}
    for name, set_genes in gene_sets.items():
        src = sources.get(name, "gene sets")
        present = list(dict.fromkeys(g.upper() for g in set_genes if g.upper() in universe))
        missing = [g for g in set_genes if g.upper() not in universe]
        any_hit_by_file[src] = any_hit_by_file.get(src, False) or bool(present)
        used = len(present) >= min_genes
        reason = "" if used else f"only {len(present)} gene(s) in the data, min_genes={min_genes}"
        if used:
            kept[name] = present
        rows.append(
            {
                "signature": name,
                "source": src,
                "n_genes": len(set_genes),
                "n_present": len(present),
                "n_missing": len(missing),
                "used": used,
                "reason": reason,
                "missing_genes": ",".join(missing),
            }
        )
    for src, hit in any_hit_by_file.items():
        if not hit:
            example = next(iter(universe), "")
            raise InputError(
                src,
                "no gene of any set in this GMT file is in the expression data; the sets must "
                "use the identifiers of the counts' gene_name (or gene_id) column, e.g. "
                f"{example!r}",
            )
    report = pd.DataFrame(rows, columns=MISSING_COLUMNS)
    for r in report[~report["used"]].itertuples():
        log.warning("gene set %s (%s) refused: %s", r.signature, r.source, r.reason)
    if not kept:
        files = sorted(set(report["source"]))
        raise InputError(
            files[0] if len(files) == 1 else ", ".join(files),
            f"no gene set has at least min_genes={min_genes} genes in the expression data",
        )
    return kept, report


# --------------------------------------------------------------------------------------------
# Per-sample scores
# --------------------------------------------------------------------------------------------


def _membership(columns, gene_sets) -> np.ndarray:
    pos = {g: i for i, g in enumerate(columns)}
    m = np.zeros((len(columns), len(gene_sets)))
    for j, genes in enumerate(gene_sets.values()):
        m[[pos[g] for g in genes], j] = 1.0
    return m


def score_ulm(logexpr: pd.DataFrame, gene_sets: dict[str, list[str]]) -> pd.DataFrame:
    """Per-sample ulm t-values (samples x sets): slope t of expression on set membership."""
    y = logexpr.to_numpy(float)
    # centring within the sample (not across samples) keeps the score per-sample
    y = y - y.mean(axis=1, keepdims=True)
    m = _membership(logexpr.columns, gene_sets)
    g = y.shape[1]
    n = m.sum(axis=0)
    sum_in = y @ m
    total = y.sum(axis=1, keepdims=True)
    slope = sum_in / n - (total - sum_in) / (g - n)
    sxx = n * (g - n) / g
    syy = (y**2).sum(axis=1, keepdims=True) - total**2 / g
    rss = np.clip(syy - slope**2 * sxx, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = slope / np.sqrt(rss / (g - 2) / sxx)
    return pd.DataFrame(t, index=logexpr.index, columns=list(gene_sets))


def score_singscore(expr: pd.DataFrame, gene_sets: dict[str, list[str]]) -> pd.DataFrame:
    """Per-sample singscore-like score: rescaled mean within-sample rank (ties averaged)."""
    ranks = stats.rankdata(expr.to_numpy(float), axis=1)
    m = _membership(expr.columns, gene_sets)
    g = ranks.shape[1]
    n = m.sum(axis=0)
    mean_rank = ranks @ m / n
    low = (n + 1) / 2
    high = (2 * g - n + 1) / 2
    return pd.DataFrame(
        (mean_rank - low) / (high - low) - 0.5, index=expr.index, columns=list(gene_sets)
    )


def score_aucell(expr: pd.DataFrame, gene_sets: dict[str, list[str]], top=0.05) -> pd.DataFrame:
    """Per-sample AUCell-like score: normalised recovery-curve area in the top genes."""
    x = expr.to_numpy(float)
    g = x.shape[1]
    k = max(1, int(math.ceil(top * g)))
    rank_desc = g + 1 - stats.rankdata(x, axis=1)  # 1 = highest expressed, ties averaged
    # a hit at rank r adds (k + 1 - r) to the area for every threshold it is under
    contrib = np.clip(k + 1 - rank_desc, 0.0, None)
    m = _membership(expr.columns, gene_sets)
    n = m.sum(axis=0).astype(int)
    best = np.array([sum(k + 1 - i for i in range(1, min(ni, k) + 1)) for ni in n], float)
    return pd.DataFrame(contrib @ m / best, index=expr.index, columns=list(gene_sets))


def score_mean(logexpr: pd.DataFrame, gene_sets: dict[str, list[str]]) -> pd.DataFrame:
    """Mean log-expression of the set genes per sample."""
    m = _membership(logexpr.columns, gene_sets)
    return pd.DataFrame(
        logexpr.to_numpy(float) @ m / m.sum(axis=0), index=logexpr.index, columns=list(gene_sets)
    )


def score_mean_z(logexpr: pd.DataFrame, gene_sets: dict[str, list[str]]) -> pd.DataFrame:
    """Mean across set genes of each gene's z-score across these samples (cohort-dependent)."""
    out = {}
    for name, genes in gene_sets.items():
        sub = logexpr[genes]
        sd = sub.std(axis=0, ddof=1)
        # a gene constant across the cohort carries no information: leave it out
        z = (sub - sub.mean(axis=0)) / sd.where(sd > 0)
        out[name] = z.mean(axis=1, skipna=True)
    return pd.DataFrame(out, index=logexpr.index)


def method_table() -> pd.DataFrame:
    """The scoring methods with their cohort dependence and role."""
    return pd.DataFrame(
        [{"method": k, **v} for k, v in METHODS.items()],
        columns=["method", "cohort_dependent", "sets", "role", "description"],
    )


def score_signatures(
    counts,
    gene_sets: dict[str, list[str]],
    samples: pd.DataFrame | None = None,
    methods=tuple(METHODS),
    min_genes: int = 5,
    short_max: int = 50,
    aucell_top: float = 0.05,
    sources: dict[str, str] | None = None,
    source="counts",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every gene set in every sample: (long score table, missing-gene report).

    The long table has columns sample_id, patient_id, visit, day, signature, method, score;
    ``short_max`` is the largest set (genes listed) that also gets mean_logcpm and
    mean_z_cohort scores.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown scoring method(s) {unknown}; known: {list(METHODS)}")
    raw = counts_by_symbol(counts, source=source)
    logexpr = sample_log_cpm(raw, source=source)
    kept, report = match_gene_sets(gene_sets, raw.columns, min_genes=min_genes, sources=sources)
    short = {k: v for k, v in kept.items() if len(gene_sets[k]) <= short_max}
    parts = []
    for method in methods:
        sets = kept if METHODS[method]["sets"] == "all" else short
        if not sets:
            continue
        if method == "ulm":
            wide = score_ulm(logexpr, sets)
        elif method == "singscore":
            wide = score_singscore(logexpr, sets)
        elif method == "aucell":
            wide = score_aucell(logexpr, sets, top=aucell_top)
        elif method == "mean_logcpm":
            wide = score_mean(logexpr, sets)
        else:
            wide = score_mean_z(logexpr, sets)
        long = wide.rename_axis(index="sample_id", columns="signature").stack().rename("score")
        long = long.reset_index()
        long["method"] = method
        parts.append(long)
    scores = pd.concat(parts, ignore_index=True)
    scores = _attach_samples(scores, samples)
    return scores, report


def _attach_samples(scores, samples):
    if samples is None:
        for col in ("patient_id", "visit", "day"):
            scores[col] = pd.NA
        return scores[SCORE_COLUMNS].sort_values(
            ["signature", "method", "sample_id"], ignore_index=True
        )
    meta = samples.copy()
    meta["sample_id"] = meta["sample_id"].astype(str)
    missing = sorted(set(scores["sample_id"]) - set(meta["sample_id"]))
    if missing:
        raise InputError(
            "samples",
            "sample in the counts but not in the samples table",
            row=missing[0],
            column="sample_id",
        )
    meta = meta[["sample_id", "patient_id", "visit", "day"]].drop_duplicates("sample_id")
    meta["day"] = pd.to_numeric(meta["day"], errors="coerce")
    out = scores.merge(meta, on="sample_id", how="left", validate="many_to_one")
    return out[SCORE_COLUMNS].sort_values(["signature", "method", "sample_id"], ignore_index=True)


def scores_to_anndata(scores: pd.DataFrame, report: pd.DataFrame | None = None):
    """Wide AnnData of the scores: obs = samples (patient_id, visit, day), var = set__method."""
    import anndata as ad

    sc = scores.copy()
    sc["feature"] = sc["signature"] + "__" + sc["method"]
    wide = sc.pivot(index="sample_id", columns="feature", values="score")
    wide = wide.sort_index().reindex(columns=sorted(wide.columns))
    obs = (
        sc.drop_duplicates("sample_id")
        .set_index("sample_id")[["patient_id", "visit", "day"]]
        .reindex(wide.index)
    )
    obs = obs.astype({"patient_id": str, "visit": str})
    feat = sc.drop_duplicates("feature").set_index("feature")[["signature", "method"]]
    var = feat.reindex(wide.columns)
    var["cohort_dependent"] = [
        METHODS.get(m, {}).get("cohort_dependent", True) for m in var["method"]
    ]
    if report is not None:
        n_present = report.set_index("signature")["n_present"]
        var["n_genes_used"] = var["signature"].map(n_present).astype(int)
    var.index.name = None
    obs.index.name = None
    adata = ad.AnnData(X=wide.to_numpy(float), obs=obs, var=var)
    adata.uns["methods"] = {
        k: {kk: v[kk] for kk in ("cohort_dependent", "role", "description")}
        for k, v in METHODS.items()
    }
    adata.uns["primary_method"] = PRIMARY_METHOD
    return adata


# --------------------------------------------------------------------------------------------
# Longitudinal models (delegated to rhlh.longitudinal)
# --------------------------------------------------------------------------------------------


def _with_responders(scores, responders, methods):
    sc = scores[scores["method"].isin(methods)].copy()
    sc["feature"] = sc["signature"] + "__" + sc["method"]
    resp = as_responders(responders)[["patient_id", "responder"]]
    sc = sc.merge(resp, on="patient_id", how="left")
    unknown = sorted(sc.loc[sc["responder"].isna(), "patient_id"].astype(str).unique())
    if unknown:
        # they still count in the group "all" rows of the longitudinal models
        log.warning(
            "%d patient(s) without a responder status (not in either response group): %s",
            len(unknown),
            ", ".join(unknown),
        )
    sc["responder"] = sc["responder"].astype(object).where(sc["responder"].notna(), None)
    return sc


def _split_feature(df, method_col="method"):
    parts = df["feature"].str.rsplit("__", n=1, expand=True)
    df.insert(0, "signature", parts[0])
    df.insert(1, method_col, parts[1])
    return df


def signature_change_from_baseline(
    scores: pd.DataFrame, responders: pd.DataFrame, methods=(PRIMARY_METHOD,), baseline="D0"
) -> pd.DataFrame:
    """Each sample's score minus its patient's baseline score (via rhlh.longitudinal)."""
    sc = _with_responders(scores, responders, methods)
    out = change_from_baseline(sc, value_col="score", feature_col="feature", baseline=baseline)
    return _split_feature(out.drop(columns=["signature", "method"], errors="ignore"))


def fit_signature_models(
    scores: pd.DataFrame,
    responders: pd.DataFrame,
    visits,
    methods=(PRIMARY_METHOD,),
    baseline="D0",
    seed=0,
    n_boot=200,
    min_patients=3,
    interaction_test="wald_f",
) -> pd.DataFrame:
    """Mixed model score ~ visit * responder + (1|patient_id) per signature and method.

    Fitted by ``rhlh.longitudinal.fit_visit_by_response``; returns its table (whose ``method``
    column describes the model) with ``signature`` and ``score_method`` columns in front.
    """
    sc = _with_responders(scores, responders, methods)
    res = fit_visit_by_response(
        sc,
        value_col="score",
        feature_col="feature",
        visits=list(visits),
        baseline=baseline,
        seed=seed,
        n_boot=n_boot,
        min_patients=min_patients,
        interaction_test=interaction_test,
    )
    return _split_feature(res, method_col="score_method")


# --------------------------------------------------------------------------------------------
# Competitive gene-set tests on DE results
# --------------------------------------------------------------------------------------------


def de_gene_stats(de: pd.DataFrame, directional: bool | None = None, source="DE table"):
    """Per-symbol statistic from a DE table: (Series, directional flag).

    Directional tables (Wald) use ``stat``; non-directional ones (LRT, ``stat`` >= 0) use
    the one-sided normal score ``norm.isf(pvalue)``, so that both are N(0, 1) under the null.
    Genes sharing a symbol keep the row with the smallest gene_id.
    """
    for col in ("gene_id", "stat"):
        if col not in de.columns:
            raise InputError(source, "required column missing", column=col)
    df = de.copy()
    df["stat"] = pd.to_numeric(df["stat"], errors="coerce")
    if "pvalue" in df.columns:
        df["pvalue"] = pd.to_numeric(df["pvalue"], errors="coerce")
    names = df["gene_name"] if "gene_name" in df.columns else [None] * len(df)
    df["symbol"] = [_symbol(i, n) for i, n in zip(df["gene_id"], names, strict=True)]
    df = df.dropna(subset=["stat"])
    if directional is None:
        directional = bool((df["stat"] < 0).any())
    if directional:
        df["value"] = df["stat"]
    else:
        if "pvalue" not in df.columns:
            raise InputError(source, "a non-directional (LRT) table needs pvalue", column="pvalue")
        df = df.dropna(subset=["pvalue"])
        # clip so that p = 0 (underflow) gives a large finite score, not inf
        df["value"] = stats.norm.isf(df["pvalue"].clip(lower=1e-300, upper=1.0))
    df = df.sort_values(["symbol", "gene_id"]).drop_duplicates("symbol", keep="first")
    if len(df) < 3:
        raise InputError(source, "fewer than 3 genes with a statistic")
    return df.set_index("symbol")["value"].astype(float), directional


def ulm_test(values: pd.Series, gene_sets: dict[str, list[str]], directional=True):
    """t-test of set membership on a gene statistic: DataFrame with score (t) and pvalue."""
    y = values.to_numpy(float)[None, :]
    t = score_ulm(pd.DataFrame(y, columns=values.index), gene_sets).iloc[0].to_numpy()
    df_res = len(values) - 2
    p = 2 * stats.t.sf(np.abs(t), df_res) if directional else stats.t.sf(t, df_res)
    return pd.DataFrame({"score": t, "pvalue": p}, index=list(gene_sets))


def _running_sum_extremes(pos_sorted, weights, g):
    """Max and min of the weighted KS running sum given sorted hit positions (0-based)."""
    k = pos_sorted.shape[-1]
    cw = np.cumsum(weights, axis=-1)
    total = cw[..., -1:]
    total = np.where(total > 0, total, 1.0)
    p_hit = cw / total
    p_hit_before = np.concatenate([np.zeros_like(p_hit[..., :1]), p_hit[..., :-1]], axis=-1)
    j = np.arange(k)
    p_miss = (pos_sorted - j) / (g - k)
    return (p_hit - p_miss).max(axis=-1), (p_hit_before - p_miss).min(axis=-1)


def _es(pos_sorted, weights, g):
    hi, lo = _running_sum_extremes(pos_sorted, weights, g)
    return np.where(np.abs(hi) >= np.abs(lo), hi, lo), hi


def gsea_test(
    values: pd.Series, gene_sets: dict[str, list[str]], n_perm=1000, seed=0, directional=True
) -> pd.DataFrame:
    """Pre-ranked GSEA (weight 1) with gene-set permutations: es, NES (score) and pvalue.

    The null of a set of size k is n_perm random gene sets of size k drawn with
    ``default_rng([seed, k])``, so results do not depend on the order of sets or contrasts.
    Directional: the p-value is for the sign of the observed ES; non-directional: only
    enrichment at the top (largest statistics) counts.
    """
    order = np.lexsort((values.index.to_numpy(str), -values.to_numpy(float)))
    ranked = values.iloc[order]
    g = len(ranked)
    absw = np.abs(ranked.to_numpy(float))
    pos_of = {s: i for i, s in enumerate(ranked.index)}
    null_cache = {}
    rows = []
    for name, genes in gene_sets.items():
        pos = np.sort(np.array([pos_of[x] for x in genes]))
        k = len(pos)
        es, es_top = _es(pos[None, :], absw[pos][None, :], g)
        es, es_top = float(es[0]), float(es_top[0])
        if k not in null_cache:
            rng = np.random.default_rng([seed, k])
            rand = np.sort(
                np.stack([rng.choice(g, size=k, replace=False) for _ in range(n_perm)]), axis=1
            )
            null_cache[k] = _es(rand, absw[rand], g)
        null_es, null_top = null_cache[k]
        if not directional:
            nes = es_top / null_top.mean()
            p = (np.sum(null_top >= es_top) + 1) / (n_perm + 1)
            rows.append((name, es_top, nes, p))
            continue
        same = null_es[null_es >= 0] if es >= 0 else null_es[null_es < 0]
        if len(same) == 0:
            nes, p = np.nan, 1.0 / (n_perm + 1)
        else:
            nes = es / np.abs(same.mean())
            more = np.sum(same >= es) if es >= 0 else np.sum(same <= es)
            p = (more + 1) / (len(same) + 1)
        rows.append((name, es, nes, p))
    out = pd.DataFrame(rows, columns=["signature", "es", "score", "pvalue"]).set_index("signature")
    return out


def competitive_tests(
    de_tables: dict[str, pd.DataFrame],
    gene_sets: dict[str, list[str]],
    methods=("ulm", "gsea"),
    n_perm=1000,
    seed=0,
    min_genes=5,
    directional: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """Competitive gene-set tests on each DE table (contrast name -> table).

    Returns columns signature, contrast, method, alternative, n_genes, score (ulm: t; gsea:
    NES), es (gsea only), pvalue, padj (Benjamini-Hochberg within contrast and method).
    Sets with fewer than ``min_genes`` genes in a table are left out with a warning, and so
    are tables without any statistic (contrasts the DE stage could not estimate).
    """
    directional = directional or {}
    parts = []
    for contrast, de in de_tables.items():
        if "stat" in de and pd.to_numeric(de["stat"], errors="coerce").notna().sum() == 0:
            # a contrast the DE stage could not estimate (e.g. a visit dropped by
            # min_patients_per_visit) is written without statistics: nothing to test
            log.warning("%s: no statistics (contrast not estimable): not tested", contrast)
            continue
        values, is_dir = de_gene_stats(de, directional.get(contrast), source=contrast)
        universe = set(values.index)
        sets = {}
        for name, genes in gene_sets.items():
            present = list(dict.fromkeys(x.upper() for x in genes if x.upper() in universe))
            if len(present) >= min_genes and len(present) < len(values) - 1:
                sets[name] = present
            else:
                log.warning(
                    "%s: gene set %s has %d gene(s) in the DE table; not tested",
                    contrast,
                    name,
                    len(present),
                )
        if not sets:
            continue
        alternative = "two-sided" if is_dir else "greater"
        for method in methods:
            if method == "ulm":
                res = ulm_test(values, sets, directional=is_dir)
                res["es"] = np.nan
            elif method == "gsea":
                res = gsea_test(values, sets, n_perm=n_perm, seed=seed, directional=is_dir)
            else:
                raise ValueError(f"unknown competitive method {method!r}")
            res = res.rename_axis("signature").reset_index()
            res["contrast"] = contrast
            res["method"] = method
            res["alternative"] = alternative
            res["n_genes"] = res["signature"].map({k: len(v) for k, v in sets.items()})
            res["padj"] = bh_adjust(res["pvalue"].to_numpy())
            parts.append(res)
    if not parts:
        return pd.DataFrame(columns=ENRICHMENT_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[ENRICHMENT_COLUMNS]
    return out.sort_values(["contrast", "method", "signature"], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def group_means(df: pd.DataFrame, value_col: str, by=("signature", "group", "visit")):
    """Mean, n and t-based 95% CI of a value per group (patients as the unit)."""
    rows = []
    for key, sub in df.groupby(list(by), sort=False, observed=True):
        x = sub[value_col].dropna().to_numpy(float)
        n = len(x)
        mean = float(x.mean()) if n else np.nan
        half = np.nan
        if n > 1:
            half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n))
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": n,
                "mean": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "ci_low", "ci_high"])


def mean_change_table(change: pd.DataFrame, visits, baseline="D0") -> pd.DataFrame:
    """Mean change from baseline per signature, method, response group and later visit."""
    d = change.dropna(subset=["change"]).copy()
    d = d[(d["visit"] != baseline) & d["visit"].isin(list(visits))]
    d["group"] = [response_label(f) for f in d["responder"]]
    by = ("signature", "method", "group", "visit")
    out = group_means(d, "change", by=by)
    order = {v: i for i, v in enumerate(visits)}
    gorder = {"responder": 0, "non-responder": 1, "unknown": 2}
    return out.sort_values(
        list(by),
        key=lambda s: (
            s.map(order) if s.name == "visit" else s.map(gorder) if s.name == "group" else s
        ),
        ignore_index=True,
    )
