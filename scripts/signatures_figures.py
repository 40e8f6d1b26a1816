"""Rule signatures_figures: per-signature spaghetti plots and the mean-change heatmap."""

from pathlib import Path

from rhlh import tables
from rhlh.figures.signatures import plot_change_heatmap, plot_spaghetti
from rhlh.io import file_stems, save_figure
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
scores = tables.read_scores(sm.input.scores)
responders = tables.read_responders(sm.input.responders)
missing = tables.read_missing_genes(sm.input.missing)
table = tables.read_mean_change(sm.input.mean_change)
outdir = Path(sm.output.spaghetti)
outdir.mkdir(parents=True, exist_ok=True)
# gene-set names come from the GMT files: they name a figure only through file_stems
stems = file_stems(missing["signature"])
for r in missing.itertuples():
    used = str(r.used) == "True"
    note = None if used else f"not scored: {r.reason}"
    fig = plot_spaghetti(scores, responders, r.signature, p.method, p.visits, note=note)
    if stems[r.signature] != r.signature:
        log.info("signature %r: figure %s.png", r.signature, stems[r.signature])
    save_figure(fig, outdir / f"{stems[r.signature]}.png")
log.info("%d spaghetti plots in %s", len(missing), outdir)
heat = plot_change_heatmap(table[table["method"] == p.method], p.visits, p.baseline, p.method)
save_figure(heat, sm.output.heatmap)
