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
    fig.set_size_inches(max(7, 1.05 * len(order) + 1), 4.2)
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
    ax.set_xticks(x, [v.replace(" or ", "\nor ") for v in order])
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("proportion of patients")
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
        col = OKABE_ITO[k % len(OKABE_ITO)]
        t, y = _steps(cif, "cuminc", 0.0)
        ax.step(t, y, where="post", lw=2, color=col, label=name)
        # with ci_low / ci_high: the log(-log) 95% band (none where the estimate is 0 or 1)
        if "ci_low" in cif.columns:
            _, lo = _steps(cif, "ci_low", np.nan)
            _, hi = _steps(cif, "ci_high", np.nan)
            ax.fill_between(t, lo, hi, step="post", color=col, alpha=0.15, lw=0)
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
        # the median only when it is not a substituted (below-LLOQ) value, as in pk.tsv
        if len(g) and int(np.floor(0.5 * (len(g) - 1))) >= int(cens.sum()):
            ax.hlines(g["value"].median(), i - 0.3, i + 0.3, color="black", lw=1.5)
    if order:
        ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order)
    unit = v["unit"].dropna().astype(str)
    ax.set_ylabel(f"ruxolitinib ({unit.iloc[0] if len(unit) else ''})")
    label = "CSF" if matrix == "csf" else matrix
    ax.set_title(
        f"Ruxolitinib in {label}\nopen: below LLOQ (drawn at the substituted value); "
        "bar: median (none when below LLOQ)",
        fontsize=10,
    )
    return fig


RESPONSE_MARKERS = {
    "CR": ("o", "#009E73", "CR"),
    "PR": ("o", "#56B4E9", "PR"),
    "NR": ("o", "#D55E00", "NR"),
    "NE": ("o", "#BBBBBB", "NE"),
}


def plot_swimmer(patients: pd.DataFrame, responses: pd.DataFrame, samples=None):
    """Swimmer plot: one bar per patient from D0 to last follow-up (darker while on
    ruxolitinib, lighter from conditioning on), response at each assessment (coloured dots),
    conditioning (|), HSCT (star), reactivation (diamond), death (cross) and samples drawn
    (ticks under the bar); patients ordered by follow-up."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from rhlh.contract.timeline import patient_days, response_rows

    p = patient_days(patients)
    p["end"] = p[["last_followup_day", "death_day"]].max(axis=1)
    p = p.sort_values(["end", "patient_id"], ascending=[True, False]).reset_index(drop=True)
    resp = response_rows(responses)
    n = len(p)
    fig, ax = plt.subplots(figsize=(10, max(3.5, 0.36 * n + 1.8)))
    for i, r in p.iterrows():
        stop = r["conditioning_day"] if pd.notna(r["conditioning_day"]) else r["hsct_day"]
        on_end = stop if pd.notna(stop) else r["end"]
        ax.barh(i, on_end, left=0, height=0.55, color="#8DA0B6", zorder=1)
        if on_end < r["end"]:
            ax.barh(i, r["end"] - on_end, left=on_end, height=0.55, color="#DDE3EA", zorder=1)
        if pd.notna(r["conditioning_day"]):
            ax.plot(r["conditioning_day"], i, "|", color="black", ms=13, mew=2, zorder=3)
        if pd.notna(r["hsct_day"]):
            ax.plot(r["hsct_day"], i, "*", color="#E69F00", ms=13, mec="black", mew=0.6, zorder=4)
        if pd.notna(r["reactivation_day"]):
            ax.plot(
                r["reactivation_day"], i, "D", color="#CC79A7", ms=8, mec="black", mew=0.6, zorder=4
            )
        if pd.notna(r["death_day"]):
            ax.plot(r["death_day"], i, "X", color="black", ms=10, zorder=5)
        mine = resp[resp["patient_id"] == r["patient_id"]]
        for a in mine.itertuples(index=False):
            m, col, _ = RESPONSE_MARKERS.get(a.response, ("o", "#BBBBBB", a.response))
            ax.plot(a.day, i, m, color=col, ms=7, mec="black", mew=0.5, zorder=4)
        if samples is not None and len(samples):
            s = samples[samples["patient_id"].astype(str) == r["patient_id"]]
            d = pd.to_numeric(s["day"], errors="coerce").dropna()
            ax.plot(d, np.full(len(d), i - 0.38), "^", color="#444444", ms=3.5, zorder=2)
    ax.set_yticks(range(n), p["patient_id"], fontsize=8)
    ax.set_ylim(-0.8, n - 0.3)
    ax.set_xlim(left=-1, right=float(p["end"].max()) * 1.02 + 1 if n else 1)
    ax.set_xlabel("days since first ruxolitinib dose (D0)")
    ax.set_title("Course of each patient (dots: response at each assessment)", fontsize=11, pad=16)
    for t, lab in ((28, "D28"), (56, "W8")):
        ax.axvline(t, color="#999999", ls=":", lw=1, zorder=0)
        ax.text(t, n - 0.35, lab, ha="center", va="bottom", fontsize=8, color="#555555")
    handles = [
        Patch(color="#8DA0B6", label="on ruxolitinib (D0 to conditioning)"),
        Patch(color="#DDE3EA", label="after conditioning start"),
        *[
            Line2D([], [], ls="", marker=m, color=c, mec="black", mew=0.5, ms=7, label=lab)
            for m, c, lab in RESPONSE_MARKERS.values()
        ],
        Line2D([], [], ls="", marker="|", color="black", ms=11, mew=2, label="conditioning"),
        Line2D([], [], ls="", marker="*", color="#E69F00", mec="black", ms=12, label="HSCT"),
        Line2D([], [], ls="", marker="D", color="#CC79A7", mec="black", ms=7, label="reactivation"),
        Line2D([], [], ls="", marker="X", color="black", ms=9, label="death"),
        Line2D([], [], ls="", marker="^", color="#444444", ms=5, label="sample drawn"),
    ]
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=8,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_patient_flow(flow: pd.DataFrame):
    """Patient-flow diagram: enrolled, then per response visit the patients assessed with the
    reasons others were not, then conditioning / HSCT / deaths / lost to follow-up."""
    import matplotlib.pyplot as plt

    visits = flow[flow["step"] == "assessed"]
    stage1 = flow[flow["step"] == "Simon stage-1 readout"]
    other = flow[~flow["step"].isin(["enrolled", "assessed", "Simon stage-1 readout"])]
    enrolled = int(flow.loc[flow["step"] == "enrolled", "n"].iloc[0])
    k = len(visits) + 2
    fig, ax = plt.subplots(figsize=(8.5, 0.75 * k + 1.2))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, k - 0.3)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.4", "fc": "#EAF2F8", "ec": "#0072B2"}
    side = {"boxstyle": "round,pad=0.3", "fc": "#FBEEE6", "ec": "#D55E00"}
    y = k - 1
    ax.text(
        3,
        y,
        f"Enrolled, ruxolitinib from D0\nn = {enrolled}",
        ha="center",
        va="center",
        fontsize=10,
        bbox=box,
    )
    for r in stage1.itertuples(index=False):
        ax.text(
            6.1,
            y,
            "Simon stage-1 readout\n" + r.note.replace(": ", ":\n", 1),
            ha="left",
            va="center",
            fontsize=8,
            bbox={**side, "fc": "#F4F4F4", "ec": "#555555"},
        )
    for r in visits.itertuples(index=False):
        y -= 1
        ax.annotate("", (3, y + 0.32), (3, y + 0.68), arrowprops={"arrowstyle": "->"})
        ne = f" (NE {r.n_ne})" if r.n_ne else ""
        ax.text(
            3,
            y,
            f"{r.visit}: assessed n = {r.n}{ne}",
            ha="center",
            va="center",
            fontsize=9.5,
            bbox=box,
        )
        parts = []
        for col, lab in (
            ("n_dead_before", "died"),
            ("n_hsct_before", "left for HSCT"),
            ("n_missing", "not assessed"),
            ("n_not_due", "not due"),
        ):
            if getattr(r, col):
                parts.append(f"{lab} {getattr(r, col)}")
        if parts:
            ax.text(6.1, y, "; ".join(parts), ha="left", va="center", fontsize=8.5, bbox=side)
            ax.annotate("", (6.0, y), (4.9, y), arrowprops={"arrowstyle": "->", "color": "#D55E00"})
    y -= 1
    txt = "   |   ".join(f"{r.step}: {r.n}" for r in other.itertuples(index=False))
    ax.text(
        5,
        y,
        txt,
        ha="center",
        va="center",
        fontsize=9,
        bbox={**box, "fc": "#F4F4F4", "ec": "#555555"},
    )
    ax.set_title("Patient flow", fontsize=11)
    fig.tight_layout()
    return fig
