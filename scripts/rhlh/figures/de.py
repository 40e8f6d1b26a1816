"""Figures of the DE stage: volcano and MA plot per visit, heatmap of the signature genes'
log2 fold change by visit."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rhlh.figures import OKABE_ITO

COLORS = {"other": "#BBBBBB", "significant": OKABE_ITO[0], "signature": OKABE_ITO[1]}


def label_genes(tab: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """A DE table with the plot columns: label (gene name, else id), in_signature, significant."""
    tab["label"] = (
        tab["gene_name"].where(tab.get("gene_name", "") != "", tab["gene_id"])
        if "gene_name" in tab
        else tab["gene_id"]
    )
    tab["in_signature"] = tab.get("signature_genes", pd.Series("", index=tab.index)) != ""
    tab["significant"] = tab["padj"] < alpha
    return tab


def estimable(tab: pd.DataFrame) -> bool:
    """Whether the DE stage computed statistics for this contrast."""
    return tab["pvalue"].notna().sum() > 0


def lfc_column(tab):
    """Shrunken log2FC when computed (less noise at low counts), else the MLE."""
    if "log2FoldChange_shrunk" in tab and tab["log2FoldChange_shrunk"].notna().any():
        return "log2FoldChange_shrunk"
    return "log2FoldChange"


def empty_figure(title):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.text(0.5, 0.5, "not estimable (see de_fit log)", ha="center", va="center")
    ax.set_title(title)
    ax.set_axis_off()
    return fig


def _scatter(tab, x, y, title, xlabel, ylabel, alpha, label_top):
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    groups = (
        ("other", ~tab.significant & ~tab.in_signature),
        ("significant", tab.significant & ~tab.in_signature),
        ("signature", tab.in_signature),
    )
    for name, mask in groups:
        sub = tab[mask]
        label = {
            "other": "not significant",
            "significant": f"padj < {alpha}",
            "signature": "signature gene",
        }[name]
        ax.scatter(
            sub[x],
            sub[y],
            s=6 if name == "other" else 10,
            c=COLORS[name],
            alpha=0.6 if name == "other" else 0.9,
            linewidths=0,
            label=label,
            # 20,000 points as vector markers make the PDF slow to write and to open: the
            # points are an image inside it, axes and labels stay vector
            rasterized=True,
        )
    # label the most significant signature genes, so the IFN-gamma/JAK-STAT story is visible
    top = tab[tab.in_signature & tab.padj.notna()].nsmallest(label_top, "padj")
    for _, r in top.iterrows():
        ax.annotate(r["label"], (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, markerscale=1.5)
    return fig


def plot_volcano(tab: pd.DataFrame, title: str, alpha: float, label_top: int):
    """Volcano plot (MLE log2FC vs -log10 p) of a table from :func:`label_genes`."""
    if not estimable(tab):
        return empty_figure(title)
    ok = tab.dropna(subset=["pvalue", lfc_column(tab)]).copy()
    ok["neglog10p"] = -np.log10(ok["pvalue"].clip(lower=1e-300))
    return _scatter(
        ok,
        "log2FoldChange",
        "neglog10p",
        title,
        "log2 fold change (MLE)",
        "-log10 p-value",
        alpha,
        label_top,
    )


def plot_ma(tab: pd.DataFrame, title: str, alpha: float, label_top: int):
    """MA plot (log10 mean of normalized counts vs log2FC, shrunken when computed)."""
    if not estimable(tab):
        return empty_figure(title)
    col = lfc_column(tab)
    ma = tab[(tab.baseMean > 0) & tab[col].notna()].copy()
    ma["log10_baseMean"] = np.log10(ma["baseMean"])
    ylabel = "log2 fold change" + (" (shrunken)" if col.endswith("shrunk") else "")
    return _scatter(
        ma,
        "log10_baseMean",
        col,
        title,
        "log10 mean of normalized counts",
        ylabel,
        alpha,
        label_top,
    )


def plot_signature_heatmap(tabs: dict, baseline: str, alpha: float, max_genes: int):
    """Heatmap of the signature genes' log2FC (visit -> table from :func:`label_genes`), the
    ``max_genes`` with the smallest padj at any visit; * padj < alpha."""
    lfcs = {
        v: t.set_index("gene_id")[[lfc_column(t), "padj", "label", "signature_genes"]]
        for v, t in tabs.items()
        if estimable(t)
    }
    if not lfcs:
        return empty_figure("signature genes")
    first = next(iter(lfcs.values()))
    genes = first.index[first["signature_genes"].fillna("") != ""]
    mat = pd.DataFrame({v: t.loc[genes, t.columns[0]] for v, t in lfcs.items()})
    best = pd.DataFrame({v: t.loc[genes, "padj"] for v, t in lfcs.items()}).min(axis=1)
    mat = mat.loc[best.sort_values().index[:max_genes]].dropna(how="all")
    if mat.empty:
        return empty_figure("signature genes")

    def row_label(g):
        sets = str(first.loc[g, "signature_genes"]).split(",")
        more = f" +{len(sets) - 1}" if len(sets) > 1 else ""
        return f"{first.loc[g, 'label']} ({sets[0][:30]}{more})"

    labels = [row_label(g) for g in mat.index]
    sig = pd.DataFrame({v: t.loc[mat.index, "padj"] < alpha for v, t in lfcs.items()})
    lim = float(np.nanmax(np.abs(mat.to_numpy()))) or 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * mat.shape[1], 1.5 + 0.22 * len(mat)))
    sns.heatmap(
        mat,
        cmap="RdBu_r",
        center=0,
        vmin=-lim,
        vmax=lim,
        ax=ax,
        annot=sig.replace({True: "*", False: ""}).to_numpy(),
        fmt="",
        yticklabels=labels,
        cbar_kws={"label": f"log2 fold change vs {baseline}"},
    )
    ax.set_xlabel("visit")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=6)
    ax.set_title(f"Signature genes (* padj < {alpha}), {len(mat)} with smallest padj")
    return fig


def plot_cell_type_counts(counts: pd.DataFrame, alpha: float):
    """Heatmap of the genes with padj < alpha per contrast (rows, in the order of ``counts``)
    and cell type (columns), from :func:`rhlh.de_data.significant_counts`; a contrast without
    statistics for that cell type is grey and marked "not tested"."""
    if counts.empty:
        return empty_figure("DE genes per cell type")
    order_ct = list(dict.fromkeys(counts["cell_type"]))
    order_c = list(dict.fromkeys(counts["contrast"]))
    mat = counts.pivot(index="contrast", columns="cell_type", values="n_significant")
    mat = mat.loc[order_c, order_ct].astype(float)
    annot = mat.map(lambda v: "" if np.isnan(v) else f"{int(v)}")
    fig, ax = plt.subplots(figsize=(3.5 + 0.9 * mat.shape[1], 1.6 + 0.35 * mat.shape[0]))
    ax.set_facecolor("#DDDDDD")
    sns.heatmap(
        mat,
        mask=mat.isna(),
        cmap="Blues",
        vmin=0,
        annot=annot.to_numpy(),
        fmt="",
        annot_kws={"fontsize": 8},
        linewidths=0.5,
        linecolor="white",
        ax=ax,
        cbar_kws={"label": f"genes with padj < {alpha}"},
    )
    for (i, j), v in np.ndenumerate(mat.to_numpy()):
        if np.isnan(v):
            ax.text(j + 0.5, i + 0.5, "not tested", ha="center", va="center", fontsize=7)
    ax.set_xlabel("cell type")
    ax.set_ylabel("contrast")
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(f"DE genes per cell type (padj < {alpha})")
    fig.tight_layout()
    return fig
