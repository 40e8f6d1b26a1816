"""Figures of the cytokines stage: spaghetti plot per analyte, group means by visit, heatmap of
the median change from baseline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from rhlh.figures import RESPONSE_COLORS
from rhlh.tables import response_label


def with_groups(values: pd.DataFrame, responders: pd.DataFrame, visits):
    """(values at the configured visits present, with ``group`` and ``x`` columns; those
    visits in order)."""
    group = dict(
        zip(responders["patient_id"], responders["responder"].map(response_label), strict=True)
    )
    values = values.assign(group=values["patient_id"].map(group).fillna("unknown"))
    visits = [v for v in visits if v in set(values["visit"])]
    xpos = {v: i for i, v in enumerate(visits)}
    values = values[values["visit"].isin(xpos)].copy()
    values["x"] = values["visit"].map(xpos)
    return values, visits


def plot_spaghetti(d: pd.DataFrame, analyte: str, visits):
    """One analyte's log10 values by visit (from :func:`with_groups`): one line per patient
    coloured by response, censored readings marked, the median LLOQ dashed."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, g in d.sort_values("x").groupby("patient_id"):
        ax.plot(
            g["x"],
            g["log10_value"],
            "-",
            color=RESPONSE_COLORS[g["group"].iloc[0]],
            lw=0.9,
            alpha=0.7,
        )
        obs = g[g["censor"] == "none"]
        ax.plot(obs["x"], obs["log10_value"], "o", ms=3, color=RESPONSE_COLORS[g["group"].iloc[0]])
    cens = d[d["censor"] != "none"]
    ax.scatter(
        cens["x"],
        cens["log10_value"],
        marker="x",
        s=28,
        c="black",
        lw=1,
        label="censored (substituted)",
        zorder=3,
    )
    lloq = d["lloq"].dropna()
    if len(lloq):
        ax.axhline(np.log10(lloq.median()), ls="--", color="grey", lw=1, label="LLOQ")
    for lab, col in RESPONSE_COLORS.items():
        if (d["group"] == lab).any():
            ax.plot([], [], color=col, label=lab)
    ax.set_xticks(range(len(visits)), visits)
    ax.set_xlabel("visit")
    ax.set_ylabel(f"log10 {analyte} (pg/mL)")
    uninformative = str(d["uninformative"].iloc[0]) == "True"
    ax.set_title(analyte + (" (censored in most samples)" if uninformative else ""))
    ax.legend(fontsize=7, frameon=False, loc="best")
    return fig


def plot_group_means(values: pd.DataFrame, visits):
    """Group means with t-based 95% CI by visit, one panel per analyte (values from
    :func:`with_groups`)."""
    analytes = sorted(values["analyte"].unique())
    ncol = min(4, len(analytes))
    nrow = int(np.ceil(len(analytes) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
    for ax, a in zip(axes.flat, analytes, strict=False):
        d = values[(values["analyte"] == a) & (values["group"] != "unknown")]
        for k, (lab, g) in enumerate(d.groupby("group")):
            s = g.groupby("x")["log10_value"].agg(["mean", "std", "count"]).reset_index()
            half = (
                stats.t.ppf(0.975, np.maximum(s["count"] - 1, 1)) * s["std"] / np.sqrt(s["count"])
            )
            half[s["count"] < 2] = np.nan
            ax.errorbar(
                s["x"] + (k - 0.5) * 0.15,
                s["mean"],
                yerr=half,
                fmt="o-",
                ms=3,
                capsize=2,
                color=RESPONSE_COLORS[lab],
                label=lab,
            )
        ax.set_title(a, fontsize=9)
        ax.set_xticks(range(len(visits)), visits, fontsize=6, rotation=90)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(analytes) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("mean log10 pg/mL (95% CI)", fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_change_heatmap(change: pd.DataFrame, visits, baseline: str):
    """Median log10 change from baseline, analyte x later visit, values printed."""
    post = [v for v in visits if v != baseline]
    med = change[change["visit"].isin(post)].pivot_table(
        index="analyte", columns="visit", values="log10_change", aggfunc="median"
    )
    med = med.reindex(columns=post).reindex(sorted(med.index))
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(post), 1 + 0.4 * len(med)))
    lim = np.nanmax(np.abs(med.to_numpy())) if med.size else 1.0
    im = ax.imshow(med.to_numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(post)), post, rotation=90)
    ax.set_yticks(range(len(med)), med.index)
    for (i, j), v in np.ndenumerate(med.to_numpy()):
        if np.isfinite(v):
            # white on the dark ends of the scale, so the numbers stay legible
            colour = "white" if abs(v) > 0.6 * lim else "black"
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6, color=colour)
    fig.colorbar(im, ax=ax, label=f"median log10 change vs {baseline}")
    ax.set_title("Cytokines: median change from baseline (all patients)", fontsize=9)
    return fig
