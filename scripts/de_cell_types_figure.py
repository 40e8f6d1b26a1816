"""Rule de_cell_types_figure: genes with padj < alpha per cell type and contrast (table and
heatmap)."""

from rhlh.de_data import significant_counts
from rhlh.figures import de as fd
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_de_table
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
# sm.input.tables: cell types (outer) x contrasts (inner), as p.cell_types and p.contrasts
keys = [(ct, c) for ct in p.cell_types for c in p.contrasts]
tables = {k: read_de_table(f) for k, f in zip(keys, sm.input.tables, strict=True)}
counts = significant_counts(tables, p.alpha)
for r in counts.itertuples():
    if r.tested:
        log.info(
            "%s, %s: %d genes with padj < %g", r.cell_type, r.contrast, r.n_significant, p.alpha
        )
    else:
        log.info("%s, %s: not tested (see de/cell_types_skipped.tsv)", r.cell_type, r.contrast)
write_tsv(counts, sm.output.table)
save_figure(fd.plot_cell_type_counts(counts, p.alpha), sm.output.figure)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
