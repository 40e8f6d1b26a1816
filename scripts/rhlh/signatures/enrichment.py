"""Competitive gene-set tests on differential-expression results: ulm (t of set membership
on the gene statistic) and pre-ranked GSEA with gene-set permutations."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from rhlh.errors import InputError
from rhlh.signatures.scoring import gene_symbol, score_ulm
from rhlh.stats import bh_adjust

log = logging.getLogger("rhlh")

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
    df["symbol"] = [gene_symbol(i, n) for i, n in zip(df["gene_id"], names, strict=True)]
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
