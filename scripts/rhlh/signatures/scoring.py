"""Per-sample gene-set (JAK-STAT / IFN-γ) signature scores: gene matching, scoring methods, the
wide AnnData of the scores. (GMT reading: rhlh.contract.genesets; models: .models;
competitive tests on DE tables: .enrichment.)

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
from rhlh.tables import CELL_TYPE_SCORE_COLUMNS, SCORE_COLUMNS

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

# --------------------------------------------------------------------------------------------
# Expression matrix and gene matching
# --------------------------------------------------------------------------------------------


def gene_symbol(gene_id, gene_name):
    """A gene's symbol, upper-cased: its gene_name when present and non-empty, else gene_id."""
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
        symbols = [gene_symbol(i, n) for i, n in zip(counts["gene_id"], names, strict=True)]
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
        symbols = [gene_symbol(i, n) for i, n in zip(ids, names, strict=True)]
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


def score_cell_types(by_cell_type, gene_sets, exclude_samples=(), **kwargs) -> pd.DataFrame:
    """:func:`score_signatures` on each cell type's pseudobulk profiles (an AnnData of sample x
    cell type profiles, obs sample_id, patient_id, visit, day, cell_type): the long score table
    with a leading ``cell_type`` column (CELL_TYPE_SCORE_COLUMNS). Each cell type is scored on
    its own, so ``mean_z_cohort`` is relative to that cell type's profiles; ``exclude_samples``
    are left out of every cell type. Keyword arguments go to :func:`score_signatures`."""
    obs = by_cell_type.obs
    excluded = obs["sample_id"].astype(str).isin({str(s) for s in exclude_samples})
    parts = []
    for cell_type in sorted(set(obs["cell_type"].astype(str))):
        mask = (obs["cell_type"].astype(str) == cell_type).to_numpy() & ~excluded.to_numpy()
        if not mask.any():
            log.warning("cell type %s: no profile left to score", cell_type)
            continue
        sub = by_cell_type[mask].copy()
        sub.obs_names = sub.obs["sample_id"].astype(str).to_numpy()
        samples = sub.obs.reset_index(drop=True)
        scores, _ = score_signatures(sub, gene_sets, samples, **kwargs)
        parts.append(scores.assign(cell_type=cell_type))
        log.info("cell type %s: %d profiles scored", cell_type, sub.n_obs)
    if not parts:
        return pd.DataFrame(columns=CELL_TYPE_SCORE_COLUMNS)
    out = pd.concat(parts, ignore_index=True)[CELL_TYPE_SCORE_COLUMNS]
    return out.sort_values(["cell_type", "signature", "method", "sample_id"], ignore_index=True)
