"""Figures of the single-cell stage: cell QC per sample, cell-type composition over time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.figures import OKABE_ITO, RESPONSE_COLORS

QC_LABELS = {
    "n_genes": "genes detected",
    "total_counts": "counts",
    "pct_counts_mt": "% mitochondrial",
    "pct_counts_ribo": "% ribosomal",
}
KEPT_COLORS = {"kept": "#0072B2", "removed": "#D55E00"}


def subsample_cells(cells: pd.DataFrame, per_sample: int = 2000, seed: int = 0) -> pd.DataFrame:
    """At most ``per_sample`` kept and ``per_sample`` removed cells of each sample (seeded)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, sub in cells.groupby(["sample_id", "kept"], sort=True):
        if len(sub) > per_sample:
            sub = sub.iloc[np.sort(rng.choice(len(sub), per_sample, replace=False))]
        parts.append(sub)
    return pd.concat(parts, ignore_index=True) if parts else cells.iloc[:0]


def _sample_order(sample_qc: pd.DataFrame, samples: pd.DataFrame | None, visits) -> list[str]:
    ids = list(sample_qc["sample_id"])
    if samples is None:
        return sorted(ids)
    sheet = samples.set_index("sample_id")
    vorder = {v: i for i, v in enumerate(visits)}
    return sorted(
        ids,
        key=lambda s: (
            str(sheet["patient_id"].get(s, "")),
            vorder.get(sheet["visit"].get(s), 99),
            s,
        ),
    )


def plot_qc_violins(cells, sample_qc, samples=None, visits=(), thresholds=None):
    """Per-sample violins of the four QC metrics, kept and removed cells side by side."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = _sample_order(sample_qc, samples, visits)
    d = cells.assign(status=np.where(cells["kept"], "kept", "removed"))
    width = max(8.0, 0.28 * len(order) + 2)
    fig, axes = plt.subplots(4, 1, figsize=(width, 12), sharex=True)
    lines = {
        "n_genes": (thresholds or {}).get("min_genes"),
        "total_counts": (thresholds or {}).get("min_counts"),
        "pct_counts_mt": (thresholds or {}).get("max_pct_mt"),
    }
    for ax, metric in zip(axes, QC_LABELS, strict=True):
        y = d[metric].astype(float)
        if metric in ("n_genes", "total_counts"):
            y = np.log10(y + 1)
        sns.violinplot(
            x=d["sample_id"],
            y=y,
            hue=d["status"],
            order=order,
            hue_order=["kept", "removed"],
            palette=KEPT_COLORS,
            split=True,
            inner=None,
            cut=0,
            density_norm="width",
            linewidth=0.4,
            ax=ax,
        )
        label = QC_LABELS[metric]
        if metric in ("n_genes", "total_counts"):
            label = f"log10({label} + 1)"
        ax.set_ylabel(label)
        ax.set_xlabel("")
        thr = lines.get(metric)
        if thr is not None:
            t = np.log10(thr + 1) if metric in ("n_genes", "total_counts") else thr
            ax.axhline(t, color="black", lw=0.8, ls="--")
        if ax is not axes[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[-1].tick_params(axis="x", rotation=90, labelsize=6)
    axes[0].set_title("Cell QC metrics per sample (dashed: thresholds)")
    fig.tight_layout()
    return fig


def plot_qc_histograms(cells, thresholds=None):
    """Histograms of the QC metrics over all cells, kept vs removed."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    thr = thresholds or {}
    marks = {
        "n_genes": thr.get("min_genes"),
        "total_counts": thr.get("min_counts"),
        "pct_counts_mt": thr.get("max_pct_mt"),
    }
    for ax, metric in zip(axes, QC_LABELS, strict=True):
        x = cells[metric].astype(float).to_numpy()
        log_scale = metric in ("n_genes", "total_counts")
        vals = np.log10(x + 1) if log_scale else x
        ax.set_xlabel(f"log10({QC_LABELS[metric]} + 1)" if log_scale else QC_LABELS[metric])
        if not len(vals) or np.nanmax(vals) == np.nanmin(vals):
            ax.text(
                0.5,
                0.5,
                f"all cells {np.nanmax(x) if len(x) else 0:g}",
                ha="center",
                transform=ax.transAxes,
            )
            continue
        bins = np.linspace(np.nanmin(vals), np.nanmax(vals), 60)
        for status, mask in (("kept", cells["kept"]), ("removed", ~cells["kept"])):
            ax.hist(
                vals[mask.to_numpy()],
                bins=bins,
                color=KEPT_COLORS[status],
                alpha=0.6,
                label=f"{status} ({int(mask.sum())})",
            )
        if marks.get(metric) is not None:
            t = marks[metric]
            ax.axvline(np.log10(t + 1) if log_scale else t, color="black", lw=0.8, ls="--")
        ax.set_yscale("log")
    axes[0].set_ylabel("cells")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Cell QC: kept vs removed cells")
    fig.tight_layout()
    return fig


def plot_cells_per_sample(sample_qc, samples=None, visits=(), min_cells=None):
    """Cells in and kept per sample; flagged samples marked, dropped ones hatched."""
    import matplotlib.pyplot as plt

    order = _sample_order(sample_qc, samples, visits)
    q = sample_qc.set_index("sample_id").loc[order]
    x = np.arange(len(q))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.28 * len(q) + 2), 4))
    ax.bar(x, q["n_cells_in"], color="#BBBBBB", label="cells in")
    dropped = (q["status"] == "dropped").to_numpy()
    bars = ax.bar(x, q["n_cells_kept"], color=KEPT_COLORS["kept"], label="kept after QC")
    for b, d in zip(bars, dropped, strict=True):
        if d:
            b.set_hatch("//")
            b.set_facecolor("#D55E00")
    flagged = q["flagged"].to_numpy(dtype=bool)
    if flagged.any():
        ax.scatter(
            x[flagged],
            q["n_cells_in"].to_numpy()[flagged] * 1.05,
            marker="v",
            color="black",
            label="flagged (many removed)",
        )
    if min_cells:
        ax.axhline(min_cells, color="black", lw=0.8, ls="--", label="min cells per sample")
    ax.set_xticks(x, order, rotation=90, fontsize=6)
    ax.set_ylabel("cells")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Cells per sample before and after QC (red hatched: dropped)")
    fig.tight_layout()
    return fig


def _cell_type_colors(cell_types):
    pal = OKABE_ITO + ["#882255", "#44AA99", "#117733", "#332288", "#DDCC77", "#AA4499"]
    return {c: pal[i % len(pal)] for i, c in enumerate(cell_types)}


def plot_composition_stacked(by_visit: pd.DataFrame, visits):
    """Stacked bars of mean cell-type proportions per visit, one panel per response group."""
    import matplotlib.pyplot as plt

    groups = [
        g for g in ("responder", "non-responder", "unknown", "all") if g in set(by_visit["group"])
    ]
    if len(groups) > 1 and "all" in groups:
        groups.remove("all")
    types = sorted(by_visit["cell_type"].unique())
    colors = _cell_type_colors(types)
    fig, axes = plt.subplots(
        1, len(groups), figsize=(4.5 * len(groups) + 1.5, 4), sharey=True, squeeze=False
    )
    for ax, g in zip(axes[0], groups, strict=True):
        sub = by_visit[by_visit["group"] == g]
        wide = sub.pivot(index="visit", columns="cell_type", values="mean_proportion")
        wide = wide.reindex([v for v in visits if v in wide.index]).fillna(0.0)
        wide = wide.div(wide.sum(axis=1), axis=0)
        bottom = np.zeros(len(wide))
        for t in types:
            vals = wide[t].to_numpy() if t in wide.columns else np.zeros(len(wide))
            ax.bar(range(len(wide)), vals, bottom=bottom, color=colors[t], label=t, width=0.8)
            bottom += vals
        ax.set_xticks(range(len(wide)), wide.index, rotation=45)
        npat = sub.groupby("visit")["n_patients"].max().reindex(wide.index).fillna(0)
        for i, n in enumerate(npat):
            ax.text(i, 1.01, f"n={int(n)}", ha="center", fontsize=6)
        ax.set_title(g, color=RESPONSE_COLORS.get(g, "black"), pad=12)
        ax.set_ylim(0, 1.06)
    axes[0][0].set_ylabel("mean proportion of cells")
    axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False, fontsize=8)
    fig.suptitle("Cell-type composition by visit")
    fig.tight_layout()
    return fig


def plot_composition_trajectories(long: pd.DataFrame, tests: pd.DataFrame | None = None):
    """Per cell type: each patient's proportion over days (lines), coloured by response group;
    the title gives the responder x visit interaction padj when tested."""
    import matplotlib.pyplot as plt

    types = sorted(long["cell_type"].unique())
    ncol = min(3, len(types))
    nrow = int(np.ceil(len(types) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    inter = {}
    if tests is not None and len(tests):
        t = tests[tests["term"] == "interaction"]
        inter = dict(zip(t["cell_type"], t["padj"], strict=True))
    for ax, ct in zip(axes.flat, types, strict=False):
        sub = long[long["cell_type"] == ct]
        for (_pid, flag), p in sub.groupby(["patient_id", sub["responder"].astype(str)]):
            p = p.sort_values("day")
            g = {"True": "responder", "False": "non-responder"}.get(flag, "unknown")
            ax.plot(
                p["day"],
                p["proportion"],
                color=RESPONSE_COLORS[g],
                alpha=0.45,
                lw=0.9,
                marker="o",
                ms=2.5,
            )
        for g, flag in (("responder", "True"), ("non-responder", "False")):
            pts = sub[sub["responder"].astype(str) == flag]
            if len(pts):
                m = pts.groupby("visit", sort=False).agg(
                    day=("day", "median"), p=("proportion", "mean")
                )
                m = m.sort_values("day")
                ax.plot(m["day"], m["p"], color=RESPONSE_COLORS[g], lw=2.5, label=g)
        title = ct
        if ct in inter and np.isfinite(inter[ct]):
            title += f"  (group x visit padj {inter[ct]:.2g})"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("day")
        ax.set_ylabel("proportion of cells")
    for ax in list(axes.flat)[len(types) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        axes.flat[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Cell-type proportions over time (thin: patients, thick: group means)")
    fig.tight_layout()
    return fig
