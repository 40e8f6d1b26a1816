"""Rule signatures_score_cell_types: the per-sample gene-set scores on each cell type's
pseudobulk (single-cell input with cell types), one long table with a cell_type column."""

import anndata as ad

from rhlh.contract.genesets import load_gene_sets
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.signatures.scoring import score_cell_types

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
sets, _ = load_gene_sets(list(sm.input.gmt))
by_ct = ad.read_h5ad(sm.input.counts)
log.info("%d gene sets; %d pseudobulk profiles", len(sets), by_ct.n_obs)
scores = score_cell_types(
    by_ct,
    sets,
    exclude_samples=p.exclude_samples,
    methods=p.methods,
    min_genes=p.min_genes,
    short_max=p.short_max,
    aucell_top=p.aucell_top,
    source=sm.input.counts,
)
write_tsv(scores, sm.output.scores)
log.info("%d scores over %d cell types", len(scores), scores["cell_type"].nunique())
