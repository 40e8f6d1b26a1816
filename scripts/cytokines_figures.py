"""Rule cytokines_figures: spaghetti per analyte, group means by visit, median change heatmap."""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

from rhlh import tables
from rhlh.io import file_stems, save_figure
from rhlh.logs import setup_logging
from rhlh.plotting import RESPONSE_COLORS, response_label

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
values = tables.read_cytokine_values(sm.input.values)
change = tables.read_cytokine_change(sm.input.change)
resp = tables.read_responders(sm.input.responders)
group = dict(zip(resp["patient_id"], resp["responder"].map(response_label), strict=True))
values["group"] = values["patient_id"].map(group).fillna("unknown")
visits = [v for v in p.visits if v in set(values["visit"])]
xpos = {v: i for i, v in enumerate(visits)}
values = values[values["visit"].isin(xpos)]
values["x"] = values["visit"].map(xpos)
analytes = sorted(values["analyte"].unique())

out_dir = Path(sm.output.spaghetti)
out_dir.mkdir(parents=True, exist_ok=True)
# analyte names come from the lab's file: they name a figure only through file_stems
stems = file_stems(analytes)
for a in analytes:
    d = values[values["analyte"] == a]
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
    ax.set_ylabel(f"log10 {a} (pg/mL)")
    title = a + (" (censored in most samples)" if str(d["uninformative"].iloc[0]) == "True" else "")
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="best")
    if stems[a] != a:
        log.info("analyte %r: figure %s.png", a, stems[a])
    save_figure(fig, out_dir / f"{stems[a]}.png")

# group means with t-based 95% CI by visit, one panel per analyte
ncol = min(4, len(analytes))
nrow = int(np.ceil(len(analytes) / ncol))
fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
for ax, a in zip(axes.flat, analytes, strict=False):
    d = values[(values["analyte"] == a) & (values["group"] != "unknown")]
    for k, (lab, g) in enumerate(d.groupby("group")):
        s = g.groupby("x")["log10_value"].agg(["mean", "std", "count"]).reset_index()
        half = stats.t.ppf(0.975, np.maximum(s["count"] - 1, 1)) * s["std"] / np.sqrt(s["count"])
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
save_figure(fig, sm.output.means)

# median log10 change from baseline, analyte x visit
post = [v for v in visits if v != p.baseline]
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
fig.colorbar(im, ax=ax, label=f"median log10 change vs {p.baseline}")
ax.set_title("Cytokines: median change from baseline (all patients)", fontsize=9)
save_figure(fig, sm.output.heatmap)
log.info("figures for %d analytes", len(analytes))
