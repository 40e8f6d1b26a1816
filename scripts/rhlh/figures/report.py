"""Figures of the report: the landing summary figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rhlh.figures import RESPONSE_COLORS
from rhlh.report import HEADLINE_CYTOKINES, HEADLINE_SIGNATURE, group_means
from rhlh.tables import response_label


def summary_figure(
    sig_scores,
    cyto_change,
    assoc,
    visits,
    signature=HEADLINE_SIGNATURE,
    cytokines=HEADLINE_CYTOKINES,
):
    """Landing figure: signature and cytokine trajectories by response, top associations."""
    fig = plt.figure(figsize=(15, 10.5), layout="constrained")
    upper, lower = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    top = upper.subplots(1, 3)
    panels = [
        (
            top[0],
            sig_scores,
            "signature",
            signature,
            "score",
            f"{signature}\n(per-sample score)",
            "score",
        )
    ]
    for ax, c in zip(top[1:], cytokines, strict=False):
        panels.append(
            (
                ax,
                cyto_change,
                "analyte",
                c,
                "log10_value",
                f"{c} (plasma)",
                "log10 concentration (pg/mL)",
            )
        )
    for ax, df, col, name, value, title, ylabel in panels:
        ax.set_title(title, fontsize=10)
        sub = df[df[col] == name] if df is not None and col in df.columns else pd.DataFrame()
        if sub.empty:
            ax.text(0.5, 0.5, f"{name}: not available", ha="center", transform=ax.transAxes)
            continue
        m = group_means(sub, value, visits)
        xs = {v: i for i, v in enumerate(visits)}
        n_patients = (
            sub.assign(g=sub["responder"].map(response_label)).groupby("g")["patient_id"].nunique()
        )
        for g, gdf in m.groupby("group"):
            x = gdf["visit"].map(xs)
            ax.plot(
                x,
                gdf["mean"],
                marker="o",
                color=RESPONSE_COLORS[g],
                label=f"{g} (n={n_patients.get(g, 0)})",
            )
            ax.fill_between(x, gdf["ci_low"], gdf["ci_high"], color=RESPONSE_COLORS[g], alpha=0.2)
        ax.set_xticks(range(len(visits)), visits, rotation=45)
        ax.set_xlabel("visit (D = days since first ruxolitinib dose)")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, frameon=False)
    ax = lower.subplots(1, 1)
    ax.set_title("Top associations with response (AUC, 95% bootstrap CI)", fontsize=10)
    if assoc is not None and len(assoc) and "auc" in assoc.columns:
        a = assoc[assoc["test"] == "mann_whitney"] if "test" in assoc.columns else assoc
        a = a.dropna(subset=["auc"]).sort_values(["pvalue", "auc"], ascending=[True, False])
        a = a.head(12).iloc[::-1]
        y = np.arange(len(a))
        # the interval drawn as it is: a percentile bootstrap interval may not hold the
        # estimate (e.g. AUC at its bound), which an error bar cannot show
        ax.hlines(y, a["ci_low"], a["ci_high"], color="#999999")
        ax.plot(a["auc"], y, "o", color="#333333")
        ax.axvline(0.5, color="#999999", linestyle="--", linewidth=1)
        ax.set_yticks(
            y, [f"{f} [{m}]" for f, m in zip(a["feature"], a["measure"], strict=True)], fontsize=7
        )
        ax.set_xlim(0, 1)
        ax.set_xlabel("AUC (responder vs non-responder)")
    else:
        ax.text(0.5, 0.5, "no associations available", ha="center", transform=ax.transAxes)
    fig.suptitle("R-HLH: did JAK-STAT / IFN-γ activity fall in responders?", fontsize=12)
    return fig
