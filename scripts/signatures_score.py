"""Rule signatures_score: per-sample gene-set scores (long + wide) and the missing-gene report."""

import anndata as ad

from rhlh.contract.genesets import load_gene_sets
from rhlh.io import write_h5ad, write_tsv
from rhlh.logs import setup_logging
from rhlh.signatures.scoring import method_table, score_signatures, scores_to_anndata
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
sets, sources = load_gene_sets(list(sm.input.gmt))
# report the GMT files as the config names them, not as absolute paths
label = dict(zip(map(str, sm.input.gmt), p.gmt_labels, strict=True))
sources = {k: label.get(v, v) for k, v in sources.items()}
log.info("%d gene sets from %d GMT file(s)", len(sets), len(sm.input.gmt))
counts = ad.read_h5ad(sm.input.counts)
excluded = [s for s in map(str, p.exclude_samples) if s in set(counts.obs_names)]
if excluded:
    # the expression stage's exclusions hold for every analysis
    log.info("left out (expression: exclude_samples): %s", ", ".join(excluded))
    counts = counts[~counts.obs_names.isin(excluded)].copy()
samples = counts.obs.reset_index(drop=True)
if "sample_id" not in samples.columns:
    samples["sample_id"] = counts.obs_names
scores, report = score_signatures(
    counts,
    sets,
    samples,
    methods=p.methods,
    min_genes=p.min_genes,
    short_max=p.short_max,
    aucell_top=p.aucell_top,
    sources=sources,
    source=sm.input.counts,
)
log.info(
    "scored %d samples x %d sets (%s)", counts.n_obs, report["used"].sum(), ", ".join(p.methods)
)
for r in report[report["n_missing"] > 0].itertuples():
    log.info("%s: %d of %d genes missing from the data", r.signature, r.n_missing, r.n_genes)
write_tsv(scores, sm.output.scores)
write_h5ad(scores_to_anndata(scores, report), sm.output.h5ad)
write_tsv(report, sm.output.missing)
write_tsv(method_table(), sm.output.methods)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
