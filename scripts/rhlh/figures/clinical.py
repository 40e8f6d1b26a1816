"""Figures of the clinical stage: Kaplan-Meier survival until HSCT, response rates by visit,
cumulative incidence of response, PK concentrations."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rhlh.clinical.endpoints import RESPONSE_VISITS
from rhlh.figures import OKABE_ITO


def _steps(table: pd.DataFrame, column: str, start: float):
    t = np.concatenate([[0.0], table["time"].to_numpy(dtype=float)])
    y = np.concatenate([[start], table[column].to_numpy(dtype=float)])
    return t, y


def plot_km(km: pd.DataFrame, risk: pd.DataFrame, horizon: float = 56):
    """Kaplan-Meier curve of survival until HSCT with CI band, censor ticks and numbers at
    risk under the axis."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    t, s = _steps(km, "survival", 1.0)
    _, lo = _steps(km, "ci_low", 1.0)
    _, hi = _steps(km, "ci_high", 1.0)
    ax.step(t, s, where="post", color=OKABE_ITO[0], lw=2, label="Kaplan-Meier")
    ax.fill_between(
        t, lo, hi, step="post", color=OKABE_ITO[0], alpha=0.2, lw=0, label="95% CI (log-log)"
    )
    cens = km[km["n_censored"] > 0]
    ax.plot(cens["time"], cens["survival"], "|", color="black", ms=10, label="censored")
    ax.set_xlim(0, horizon + 1)
    ax.set_ylim(0, 1.03)
    ax.set_xticks(risk["time"])
    ax.set_xlabel("days since first ruxolitinib dose")
    ax.set_ylabel("probability alive (censored at HSCT)")
    ax.set_title("Survival until HSCT")
    ax.legend(loc="lower left", frameon=False, fontsize=8)
    for tt, n in zip(risk["time"], risk["n_at_risk"], strict=True):
        ax.annotate(
            str(n),
            (tt, 0),
            xytext=(0, -52),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            annotation_clip=False,
        )
    ax.annotate(
        "at risk",
        (0, 0),
        xytext=(-14, -52),
        textcoords="offset points",
        ha="right",
        fontsize=8,
        annotation_clip=False,
    )
    fig.subplots_adjust(bottom=0.25)
    return fig


def plot_response_rates(rates: pd.DataFrame, visits=RESPONSE_VISITS):
    """Response rates by visit (CR and PR-or-better) with exact 95% CI error bars."""
    fig, ax = plt.subplots(figsize=(7, 4))
    order = [v for v in visits if v in set(rates["visit"])]
    x = np.arange(len(order))
    for k, (outcome, label) in enumerate((("PR_or_better", "PR or better"), ("CR", "CR"))):
        r = rates[rates["outcome"] == outcome].set_index("visit").reindex(order)
        off = (k - 0.5) * 0.36
        ax.bar(x + off, r["estimate"], width=0.36, color=OKABE_ITO[2 + k], label=label)
        ax.errorbar(
            x + off,
            r["estimate"],
            yerr=[r["estimate"] - r["ci_low"], r["ci_high"] - r["estimate"]],
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1,
        )
        for xi, (xx, nn, hi) in enumerate(zip(r["x"], r["n"], r["ci_high"], strict=True)):
            ax.annotate(
                f"{int(xx)}/{int(nn)}",
                (xi + off, hi),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(x, order)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("proportion of patients (ITT)")
    ax.set_title("Response rate by visit (exact 95% CI)")
    ax.legend(frameon=False)
    return fig


def plot_cuminc(
    curves: dict,
    xlabel: str = "days since first ruxolitinib dose",
    title: str = "Cumulative incidence (death competing)",
):
    """Aalen-Johansen cumulative incidence step curves, one per named table."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, cif) in enumerate(curves.items()):
        t, y = _steps(cif, "cuminc", 0.0)
        ax.step(t, y, where="post", lw=2, color=OKABE_ITO[k % len(OKABE_ITO)], label=name)
    ax.set_ylim(0, 1.03)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cumulative incidence")
    ax.set_title(title)
    ax.legend(frameon=False, loc="lower right")
    return fig


def plot_pk(values: pd.DataFrame, matrix: str, visits=None):
    """Concentrations in one matrix by visit (log scale), below-LLOQ readings as open marks."""
    v = values[values["matrix"] == matrix]
    order = [x for x in (visits or sorted(v["visit"].unique())) if x in set(v["visit"])]
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(order) + 2), 4))
    if not order:
        ax.text(0.5, 0.5, f"no {matrix} readings", ha="center", va="center", transform=ax.transAxes)
    rng = np.random.default_rng(0)  # fixed jitter so reruns give identical figures
    for i, visit in enumerate(order):
        g = v[(v["visit"] == visit) & v["value"].notna() & (v["value"] > 0)]
        jit = rng.uniform(-0.15, 0.15, len(g))
        cens = (g["censor"] == "<").to_numpy()
        ax.scatter(i + jit[~cens], g["value"][~cens], s=18, color=OKABE_ITO[0], alpha=0.8)
        ax.scatter(
            i + jit[cens], g["value"][cens], s=18, facecolors="none", edgecolors=OKABE_ITO[1]
        )
        if len(g):
            ax.hlines(g["value"].median(), i - 0.3, i + 0.3, color="black", lw=1.5)
    if order:
        ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order)
    unit = v["unit"].dropna().astype(str)
    ax.set_ylabel(f"ruxolitinib ({unit.iloc[0] if len(unit) else ''})")
    label = "CSF" if matrix == "csf" else matrix
    ax.set_title(
        f"Ruxolitinib in {label}\nopen: below LLOQ (substituted); bar: median", fontsize=10
    )
    return fig
