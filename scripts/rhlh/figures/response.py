"""Figures of the response stage: AUC forest plot, early-change dot plots, effect heatmap."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rhlh import response as rs
from rhlh.figures import OKABE_ITO, RESPONSE_COLORS
from rhlh.tables import as_responders


def _label(r):
    return f"{r.feature} ({r.family}) {r.measure}"


def plot_auc_forest(table: pd.DataFrame, k: int = 20):
    """Forest plot: AUC and bootstrap CI of the top feature x measure rows."""
    top = rs.top_features(table, k)
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * max(len(top), 3) + 1.4))
    colors = dict(zip(rs.FAMILIES, OKABE_ITO[2:5], strict=True))
    y = np.arange(len(top))[::-1]
    for yi, r in zip(y, top.itertuples(index=False), strict=True):
        c = colors.get(r.family, "black")
        ax.plot([r.ci_low, r.ci_high], [yi, yi], color=c, lw=1.5)
        ax.plot(r.auc, yi, "o", color=c, ms=5)
        mark = "*" if pd.notna(r.padj) and r.padj < 0.05 else ""
        ax.text(
            1.02,
            yi,
            f"p={r.pvalue:.2g}{mark}",
            va="center",
            fontsize=7,
            transform=ax.get_yaxis_transform(),
        )
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(y, [_label(r) for r in top.itertuples(index=False)], fontsize=7)
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("AUC: P(responder value < non-responder value), 95% bootstrap CI")
    for fam, c in colors.items():
        ax.plot([], [], "o", color=c, label=fam)
    ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.set_title(
        f"Top {len(top)} associations with response (Mann-Whitney; * FDR < 0.05)", fontsize=9
    )
    if top.empty:
        ax.text(0.5, 0.5, "no testable feature", ha="center", transform=ax.transAxes)
    return fig


def plot_early_change(
    long_by_family: dict,
    responders: pd.DataFrame,
    table: pd.DataFrame,
    baseline: str = "D0",
    early_visits=("D7", "D14"),
    k: int = 6,
):
    """Paired dot plots (baseline to early visits, one line per patient) of the top features
    for early change, responders and non-responders side by side."""
    top = rs.top_features(table, 10 * k, measures=[f"change_{v}" for v in early_visits])
    top = top.drop_duplicates(["family", "feature"]).head(k)
    resp = as_responders(responders)
    ncol = min(3, max(len(top), 1))
    nrow = max(1, math.ceil(len(top) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    vis = [baseline, *early_visits]
    for ax, r in zip(axes.ravel(), top.itertuples(index=False), strict=False):
        d = long_by_family[r.family]
        d = d[(d["feature"] == r.feature) & d["visit"].isin(vis)]
        d = d.merge(resp, on="patient_id")
        for gi, (flag, label) in enumerate(((True, "responder"), (False, "non-responder"))):
            g = d[d["responder"] == flag]  # noqa: E712
            for _, p in g.groupby("patient_id"):
                xs = [gi * (len(vis) + 1) + vis.index(v) for v in p["visit"]]
                order = np.argsort(xs)
                ax.plot(
                    np.array(xs)[order],
                    p["value"].to_numpy()[order],
                    "-o",
                    ms=3,
                    lw=0.8,
                    alpha=0.7,
                    color=RESPONSE_COLORS[label],
                )
        ticks = [gi * (len(vis) + 1) + j for gi in range(2) for j in range(len(vis))]
        ax.set_xticks(ticks, vis * 2, fontsize=7)
        ax.set_title(
            f"{r.feature} ({r.family})\n{r.measure}: AUC {r.auc:.2f}, p={r.pvalue:.2g}", fontsize=8
        )
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(top) :]:
        ax.axis("off")
    for label in ("responder", "non-responder"):
        axes[0, 0].plot([], [], "-o", color=RESPONSE_COLORS[label], label=label)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.suptitle("Early change by response group (one line per patient)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_effect_heatmap(table: pd.DataFrame, measures, k: int = 40, fdr: float = 0.05):
    """Heatmap features x measures coloured by Mann-Whitney AUC; * FDR < fdr, . p < 0.05."""
    t = table[(table["test"] == "mann_whitney") & table["measure"].isin(list(measures))]
    best = t.groupby(["family", "feature"])["pvalue"].min().sort_values(kind="mergesort")
    keep = best.head(k).index
    t = t.set_index(["family", "feature"]).loc[lambda x: x.index.isin(keep)].reset_index()
    rows = [f"{f} ({fam})" for fam, f in keep]
    auc = t.pivot_table(index=["family", "feature"], columns="measure", values="auc")
    auc = auc.reindex(index=keep, columns=list(measures))
    padj = t.pivot_table(index=["family", "feature"], columns="measure", values="padj")
    padj = padj.reindex(index=keep, columns=list(measures))
    pv = t.pivot_table(index=["family", "feature"], columns="measure", values="pvalue")
    pv = pv.reindex(index=keep, columns=list(measures))
    fig, ax = plt.subplots(figsize=(1.1 * len(measures) + 3.2, 0.26 * max(len(rows), 3) + 1.6))
    im = ax.imshow(auc.to_numpy(float), cmap="RdBu_r", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rows)):
        for j in range(len(measures)):
            q, p = padj.iat[i, j], pv.iat[i, j]
            mark = "*" if pd.notna(q) and q < fdr else ("." if pd.notna(p) and p < 0.05 else "")
            if mark:
                dark = abs(auc.iat[i, j] - 0.5) > 0.3
                ax.text(
                    j,
                    i,
                    mark,
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(measures)), list(measures), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    cb = fig.colorbar(im, ax=ax, shrink=0.6)
    cb.set_label("AUC (>0.5: lower in responders)", fontsize=8)
    ax.set_title(f"Association with response (* FDR < {fdr:g}, . p < 0.05)", fontsize=9)
    return fig
