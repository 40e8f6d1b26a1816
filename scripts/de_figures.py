"""Rule de_figures: volcano and MA plot per visit, heatmap of signature genes' log2FC by visit."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from rhlh.io import save_figure
from rhlh.logs import setup_logging
from rhlh.plotting import OKABE_ITO
from rhlh.tables import read_de_table

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
COLORS = {"other": "#BBBBBB", "significant": OKABE_ITO[0], "signature": OKABE_ITO[1]}


def load(path):
    tab = read_de_table(path)
    tab["label"] = (
        tab["gene_name"].where(tab.get("gene_name", "") != "", tab["gene_id"])
        if "gene_name" in tab
        else tab["gene_id"]
    )
    tab["in_signature"] = tab.get("signature_genes", pd.Series("", index=tab.index)) != ""
    tab["significant"] = tab["padj"] < p.alpha
    return tab


def lfc_column(tab):
    """Shrunken log2FC when computed (less noise at low counts), else the MLE."""
    if "log2FoldChange_shrunk" in tab and tab["log2FoldChange_shrunk"].notna().any():
        return "log2FoldChange_shrunk"
    return "log2FoldChange"


def empty_figure(title, path):
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.text(0.5, 0.5, "not estimable (see de_fit log)", ha="center", va="center")
    ax.set_title(title)
    ax.set_axis_off()
    save_figure(fig, path)


def scatter(tab, x, y, title, xlabel, ylabel, path):
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
            "significant": f"padj < {p.alpha}",
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
        )
    # label the most significant signature genes, so the IFN-gamma/JAK-STAT story is visible
    top = tab[tab.in_signature & tab.padj.notna()].nsmallest(p.label_top, "padj")
    for _, r in top.iterrows():
        ax.annotate(r["label"], (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, markerscale=1.5)
    save_figure(fig, path)


lfcs = {}
for visit, path, vpath, mpath in zip(
    p.visits, sm.input.visit, sm.output.volcano, sm.output.ma, strict=True
):
    tab = load(path)
    title = f"{visit} vs {p.baseline}"
    if tab["pvalue"].notna().sum() == 0:
        log.warning("%s: no statistics, empty figures", title)
        empty_figure(title, vpath)
        empty_figure(title, mpath)
        continue
    col = lfc_column(tab)
    tab["neglog10p"] = -np.log10(tab["pvalue"].clip(lower=1e-300))
    ok = tab.dropna(subset=["pvalue", col])
    scatter(
        ok, "log2FoldChange", "neglog10p", title, "log2 fold change (MLE)", "-log10 p-value", vpath
    )
    ma = tab[(tab.baseMean > 0) & tab[col].notna()].copy()
    ma["log10_baseMean"] = np.log10(ma["baseMean"])
    ylabel = "log2 fold change" + (" (shrunken)" if col.endswith("shrunk") else "")
    scatter(ma, "log10_baseMean", col, title, "log10 mean of normalized counts", ylabel, mpath)
    lfcs[visit] = tab.set_index("gene_id")[[col, "padj", "label", "signature_genes"]]
    log.info(
        "%s: %d genes with padj < %g, %d of them signature genes",
        title,
        int(tab.significant.sum()),
        p.alpha,
        int((tab.significant & tab.in_signature).sum()),
    )

if not lfcs:
    empty_figure("signature genes", sm.output.heatmap)
else:
    first = next(iter(lfcs.values()))
    genes = first.index[first["signature_genes"].fillna("") != ""]
    col = first.columns[0]
    mat = pd.DataFrame({v: t.loc[genes, t.columns[0]] for v, t in lfcs.items()})
    best = pd.DataFrame({v: t.loc[genes, "padj"] for v, t in lfcs.items()}).min(axis=1)
    mat = mat.loc[best.sort_values().index[: p.heatmap_max_genes]].dropna(how="all")
    if mat.empty:
        empty_figure("signature genes", sm.output.heatmap)
    else:

        def row_label(g):
            sets = str(first.loc[g, "signature_genes"]).split(",")
            more = f" +{len(sets) - 1}" if len(sets) > 1 else ""
            return f"{first.loc[g, 'label']} ({sets[0][:30]}{more})"

        labels = [row_label(g) for g in mat.index]
        sig = pd.DataFrame({v: t.loc[mat.index, "padj"] < p.alpha for v, t in lfcs.items()})
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
            cbar_kws={"label": f"log2 fold change vs {p.baseline}"},
        )
        ax.set_xlabel("visit")
        ax.set_ylabel("")
        ax.tick_params(axis="y", labelsize=6)
        ax.set_title(f"Signature genes (* padj < {p.alpha}), {len(mat)} with smallest padj")
        save_figure(fig, sm.output.heatmap)
        log.info("heatmap: %d signature genes x %d visits", len(mat), mat.shape[1])
