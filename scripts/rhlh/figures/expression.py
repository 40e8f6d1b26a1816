"""Figures of the expression stage (QC): library sizes, PCA, sample distances, variance by
batch/visit/patient. Each function returns one figure; the rule script saves it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from rhlh.figures import OKABE_ITO, RESPONSE_COLORS

FACTOR_LABELS = {"batch": "batch", "visit": "visit", "patient_id": "patient"}


def _palette(levels, kind=None) -> dict:
    """Colours for the levels of a factor: response colours, else Okabe-Ito, else husl."""
    levels = list(levels)
    if kind == "response":
        return {lv: RESPONSE_COLORS.get(lv, "#999999") for lv in levels}
    base = list(OKABE_ITO)
    if kind == "batch":
        # start elsewhere in the palette so batch bars never reuse the visit colours
        base = base[4:] + base[:4]
    colors = base if len(levels) <= len(base) else sns.color_palette("husl", len(levels)).as_hex()
    return dict(zip(levels, colors, strict=False))


def _levels(values: pd.Series, order=None) -> list:
    present = list(pd.unique(values.astype(str)))
    if order:
        head = [str(v) for v in order if str(v) in present]
        return head + sorted(v for v in present if v not in head)
    return sorted(present)


def plot_library_sizes(qc: pd.DataFrame, group: str = "batch"):
    """Library size and detected genes per sample, by batch; flagged samples labelled."""
    data = qc[~qc["excluded"].astype(bool)].copy() if "excluded" in qc else qc.copy()
    data[group] = data[group].astype(str)
    order = _levels(data[group])
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 2.0 + 1.2 * len(order)) * 1.6, 4.2))
    pal = _palette(order, kind="batch" if group == "batch" else None)
    # jitter from a fixed-seed generator, so reruns draw identical figures
    xpos = data[group].map({lv: i for i, lv in enumerate(order)}).to_numpy(dtype=float)
    xpos = xpos + np.random.default_rng(0).uniform(-0.2, 0.2, len(data))
    colors = data[group].map(pal).to_list()
    for ax, col, label in (
        (axes[0], "library_size", "library size (reads)"),
        (axes[1], "n_detected", "detected genes (count > 0)"),
    ):
        ax.boxplot(
            [data.loc[data[group] == lv, col].to_numpy(dtype=float) for lv in order],
            positions=range(len(order)),
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#444444"},
            boxprops={"color": "#888888"},
            whiskerprops={"color": "#888888"},
            capprops={"color": "#888888"},
        )
        ax.scatter(xpos, data[col], s=16, c=colors, edgecolor="white", linewidth=0.3, zorder=3)
        if col == "library_size":
            ax.set_yscale("log")
        ax.set_xticks(range(len(order)), order)
        ax.set_xlabel(group)
        ax.set_ylabel(label)
        flagged = data[data["outlier"].astype(bool)] if "outlier" in data else data.iloc[:0]
        for _, row in flagged.iterrows():
            ax.annotate(
                row["sample_id"],
                (xpos[data.index.get_loc(row.name)], row[col]),
                fontsize=7,
                color="#D55E00",
                xytext=(6, 0),
                textcoords="offset points",
            )
    axes[0].set_title("Library size per sample")
    axes[1].set_title("Detected genes per sample")
    fig.tight_layout()
    return fig


def plot_pca(
    scores: pd.DataFrame,
    variance_fraction: pd.Series,
    color: pd.Series,
    title: str,
    order=None,
    kind=None,
    flagged=(),
):
    """PC1 vs PC2 of the VST, coloured by one sample annotation (visit, batch, response...)."""
    # object first: a categorical column (as read from h5ad) refuses the new label
    color = color.reindex(scores.index).astype(object).fillna("unknown").astype(str)
    levels = _levels(color, order)
    pal = _palette(levels, kind)
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    for lv in levels:
        sel = color == lv
        ax.scatter(
            scores.loc[sel, "PC1"],
            scores.loc[sel, "PC2"],
            s=28,
            color=pal[lv],
            label=lv,
            edgecolor="white",
            linewidth=0.4,
        )
    for sample in flagged:
        if sample in scores.index:
            ax.annotate(
                sample,
                (scores.loc[sample, "PC1"], scores.loc[sample, "PC2"]),
                fontsize=7,
                color="#D55E00",
                xytext=(4, 4),
                textcoords="offset points",
            )
    ax.set_xlabel(f"PC1 ({100 * variance_fraction['PC1']:.1f}% of variance)")
    ax.set_ylabel(f"PC2 ({100 * variance_fraction['PC2']:.1f}% of variance)")
    ax.set_title(title)
    ncol = 1 if len(levels) <= 12 else 2
    ax.legend(
        title=color.name,
        bbox_to_anchor=(1.02, 1),
        loc="upper left",
        frameon=False,
        fontsize=8,
        ncol=ncol,
    )
    fig.tight_layout()
    return fig


def plot_sample_distances(dist: pd.DataFrame, annotations: pd.DataFrame, visit_order=None):
    """Heatmap of Euclidean sample-to-sample VST distances, clustered, with visit/batch bars."""
    d = dist.to_numpy()
    order = (
        leaves_list(linkage(squareform(d, checks=False), method="average"))
        if len(d) > 2
        else np.arange(len(d))
    )
    names = dist.index[order]
    mat = dist.loc[names, names]
    bars = [c for c in ("visit", "batch") if c in annotations.columns]
    n = len(names)
    size = min(max(5.0, 0.12 * n + 3.0), 20.0)
    fig = plt.figure(figsize=(size + 1.5, size))
    widths = [0.25] * len(bars) + [size]
    grid = fig.add_gridspec(1, len(bars) + 2, width_ratios=widths + [0.3], wspace=0.05)
    legend_handles = []
    for i, col in enumerate(bars):
        ax = fig.add_subplot(grid[0, i])
        vals = annotations.loc[names, col].astype(str)
        levels = _levels(vals, visit_order if col == "visit" else None)
        pal = _palette(levels, kind=col if col == "batch" else None)
        rgb = np.array([[plt.matplotlib.colors.to_rgb(pal[v])] for v in vals])
        ax.imshow(rgb, aspect="auto", interpolation="nearest")
        ax.set_xticks([0])
        ax.set_xticklabels([col], rotation=90, fontsize=8)
        ax.set_yticks([])
        for lv in levels:
            legend_handles.append(plt.matplotlib.patches.Patch(color=pal[lv], label=f"{col} {lv}"))
    ax = fig.add_subplot(grid[0, len(bars)])
    cax = fig.add_subplot(grid[0, len(bars) + 1])
    # the zero diagonal would otherwise take the bottom of the scale and flatten the contrast
    off = d[~np.eye(len(d), dtype=bool)]
    vmin = float(off.min()) if off.size else 0.0
    im = ax.imshow(
        mat.to_numpy(), cmap="viridis_r", aspect="auto", interpolation="nearest", vmin=vmin
    )
    fontsize = 7 if n <= 60 else 4 if n <= 150 else 0
    if fontsize:
        # rows are in the same order as the labelled columns
        ax.set_yticks([])
        ax.set_xticks(range(n))
        ax.set_xticklabels(names, fontsize=fontsize, rotation=90)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, cax=cax, label="Euclidean distance (VST)")
    ax.set_title("Sample-to-sample distances (average-linkage order)")
    fig.legend(
        handles=legend_handles,
        loc="upper left",
        bbox_to_anchor=(0.0, 0.0),
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    return fig


def plot_batch_variance(table: pd.DataFrame):
    """Per-PC R^2 of batch, visit and patient, with each PC's share of variance."""
    per_pc = table[table["component"] != "weighted"].copy()
    pcs = list(dict.fromkeys(per_pc["component"]))
    factors = list(dict.fromkeys(per_pc["factor"]))
    weighted = table[table["component"] == "weighted"].set_index("factor")["r_squared"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(pcs) + 2.5), 4.5))
    width = 0.8 / max(len(factors), 1)
    pal = _palette(factors)
    x = np.arange(len(pcs))
    for i, f in enumerate(factors):
        sub = per_pc[per_pc["factor"] == f].set_index("component").reindex(pcs)
        label = f"{FACTOR_LABELS.get(f, f)} (weighted R² {weighted.get(f, np.nan):.2f})"
        ax.bar(
            x + (i - (len(factors) - 1) / 2) * width,
            sub["r_squared"],
            width=width,
            color=pal[f],
            label=label,
        )
    frac = per_pc.drop_duplicates("component").set_index("component").reindex(pcs)
    ax.set_xticks(x)
    ax.set_xticklabels(
        [f"{pc}\n{100 * v:.0f}%" for pc, v in zip(pcs, frac["variance_fraction"], strict=True)],
        fontsize=8,
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("R² of the PC on the factor")
    ax.set_xlabel("principal component (share of variance)")
    ax.set_title("Variance of the expression PCs explained by batch, visit and patient")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    return fig
