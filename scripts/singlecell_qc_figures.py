"""Rule singlecell_qc_figures: per-sample QC metric violins, kept vs removed histograms, cells
per sample (from the tables ingest_counts wrote while summing the cells)."""

from rhlh import tables
from rhlh.figures import singlecell as fig_sc
from rhlh.io import save_figure
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
sample_qc = tables.read_sample_qc(sm.input.samples_qc)
cells = tables.read_cell_qc(sm.input.cells)
samples = tables.read_samples(sm.input.samples)
log.info("%d cells of %d samples", len(cells), len(sample_qc))
shown = fig_sc.subsample_cells(cells, per_sample=2000, seed=p.seed)
out = dict(
    zip(["qc_violins", "qc_histograms", "qc_cells_per_sample"], sm.output.figures, strict=True)
)
save_figure(
    fig_sc.plot_qc_violins(shown, sample_qc, samples, p.visits, thresholds=p.singlecell),
    out["qc_violins"],
)
save_figure(fig_sc.plot_qc_histograms(cells, thresholds=p.singlecell), out["qc_histograms"])
save_figure(
    fig_sc.plot_cells_per_sample(
        sample_qc, samples, p.visits, min_cells=p.singlecell["min_cells_per_sample"]
    ),
    out["qc_cells_per_sample"],
)
