"""Figures of the signatures stage: per-signature spaghetti plots by response, heatmap of the
mean change from baseline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rhlh.figures import RESPONSE_COLORS
from rhlh.signatures.models import group_means
from rhlh.tables import as_responders, response_label


def plot_spaghetti(
    scores: pd.DataFrame,
    responders: pd.DataFrame,
    signature: str,
    method: str,
    visits,
    note: str | None = None,
):
    """Scores by visit: one thin line per patient coloured by response, group means and CIs."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    d = scores[(scores["signature"] == signature) & (scores["method"] == method)]
    d = d[d["visit"].isin(list(visits))].copy()
    if d.empty:
        ax.text(
            0.5,
            0.5,
            note or f"{signature}: not scored",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return fig
    pos = {v: i for i, v in enumerate(visits)}
    resp = as_responders(responders).set_index("patient_id")["responder"].to_dict()
    d["group"] = [response_label(resp.get(str(p))) for p in d["patient_id"]]
    d["x"] = d["visit"].map(pos)
    for _pid, sub in d.sort_values("x").groupby("patient_id", sort=True):
        ax.plot(
            sub["x"],
            sub["score"],
            color=RESPONSE_COLORS[sub["group"].iloc[0]],
            alpha=0.35,
            lw=0.8,
            marker="o",
            ms=2.5,
        )
    means = group_means(d.assign(signature=signature), "score")
    offset = {"responder": -0.08, "non-responder": 0.08, "unknown": 0.0}
    for group, sub in means.groupby("group", sort=False):
        if group == "unknown":
            continue
        sub = sub.assign(x=sub["visit"].map(pos) + offset[group]).sort_values("x")
        n_pat = d.loc[d["group"] == group, "patient_id"].nunique()
        ax.errorbar(
            sub["x"],
            sub["mean"],
            yerr=[sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]],
            color=RESPONSE_COLORS[group],
            lw=2.2,
            capsize=3,
            marker="s",
            ms=5,
            label=f"{group} mean, 95% CI (n={n_pat})",
        )
    # a CI from 2 patients can be huge: keep the axis on the data and let such bars run off it
    lo, hi = float(d["score"].min()), float(d["score"].max())
    pad = 0.15 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(range(len(visits)), list(visits))
    ax.set_xlabel("visit")
    ax.set_ylabel(f"{method} score")
    ax.set_title(signature if note is None else f"{signature}\n{note}", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def plot_change_heatmap(table: pd.DataFrame, visits, baseline="D0", method="ulm"):
    """Heatmap of the mean change from baseline: signatures x visits, one panel per group."""
    groups = [g for g in ("responder", "non-responder", "unknown") if g in set(table["group"])]
    post = [v for v in visits if v != baseline]
    sigs = sorted(table["signature"].unique())
    fig, axes = plt.subplots(
        1,
        max(len(groups), 1),
        figsize=(2.2 + 0.55 * len(post) * max(len(groups), 1), 1.2 + 0.35 * max(len(sigs), 1)),
        sharey=True,
        squeeze=False,
    )
    vmax = float(np.nanmax(np.abs(table["mean"]))) if len(table) else 1.0
    vmax = vmax if np.isfinite(vmax) and vmax > 0 else 1.0
    im = None
    for ax, group in zip(axes[0], groups, strict=False):
        mat = (
            table[table["group"] == group]
            .pivot(index="signature", columns="visit", values="mean")
            .reindex(index=sigs, columns=post)
        )
        im = ax.imshow(mat.to_numpy(float), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
        vals = mat.to_numpy(float)
        # print the values: ulm t-values scale with set size, so small sets look pale
        for (r, c), val in np.ndenumerate(vals):
            if np.isfinite(val):
                ax.text(
                    c,
                    r,
                    f"{val:.1f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if abs(val) > 0.6 * vmax else "black",
                )
        ax.set_xticks(range(len(post)), post, rotation=90)
        ax.set_yticks(range(len(sigs)), sigs, fontsize=7)
        ax.set_title(group, fontsize=10)
    if im is not None:
        fig.colorbar(
            im,
            ax=axes[0].tolist(),
            shrink=0.8,
            label=f"mean change of {method} score from {baseline}",
        )
    return fig
