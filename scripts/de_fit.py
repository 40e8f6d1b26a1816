"""Rule de_fit: fit every configured design once, write its Wald and LRT tables and outliers."""

import anndata as ad
import pandas as pd
from threadpoolctl import threadpool_limits

from rhlh import de, de_data
from rhlh.contract.genesets import read_gmt
from rhlh.design import parse_design_specs
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_responders

sm = snakemake  # noqa: F821
log = setup_logging(sm)
threadpool_limits(sm.threads)  # BLAS uses the declared cores, no more
p = sm.params
paths = dict(zip(p.table_keys, sm.output.tables, strict=True))

cell_type = getattr(p, "cell_type", None)
counts, names, samples = de_data.counts_from_adata(
    ad.read_h5ad(sm.input.counts), cell_type=cell_type
)
if cell_type is not None:
    log.info("cell type %s: %d pseudobulk samples", cell_type, counts.shape[1])
keep = counts.sum(axis=1) >= p.min_total_count
log.info(
    "counts: %d samples x %d genes; %d genes with < %d reads in total left out",
    counts.shape[1],
    counts.shape[0],
    int((~keep).sum()),
    p.min_total_count,
)
counts = counts[keep]
responders = read_responders(sm.input.responders)
samples = de_data.with_responders(samples, responders)
log.info(
    "responders: %d, non-responders: %d, unknown: %d patients",
    int(responders["responder"].eq(True).sum()),
    int(responders["responder"].eq(False).sum()),
    int(samples.loc[samples.responder.isna(), "patient_id"].nunique()),
)

gene_sets = {}
for path in sm.input.gmt:
    gene_sets.update(read_gmt(path))
log.info("%d gene sets marked in signature_genes", len(gene_sets))

levels = {"visit": [v for v in p.visits if v in set(samples["visit"])]}
reference = {"visit": p.baseline}
unknown = sorted(set(samples["visit"]) - set(p.visits))
if unknown:
    log.warning("visits not in config visits are left out: %s", ", ".join(unknown))
    samples = samples[samples["visit"].isin(p.visits)]

outliers, dropped = [], []
outlier_cache = {}  # designs on the same samples share one outlier scan
for spec in parse_design_specs(p.designs, source="config (de.designs)"):
    spec.exclude_samples = list(spec.exclude_samples) + [str(s) for s in p.exclude_samples]
    log.info("design %s: %s", spec.id, spec.formula)
    result = de.run_design(
        counts,
        samples,
        spec,
        levels=levels,
        reference=reference,
        baseline=p.baseline,
        gene_names=names,
        gene_sets=gene_sets,
        alpha=p.alpha,
        shrink=p.shrink,
        outlier_handling=p.outlier_handling,
        outlier_score=p.outlier_score,
        min_patients_per_visit=p.min_patients_per_visit,
        n_cpus=sm.threads,
        source="config (de.designs)",
        outlier_cache=outlier_cache,
    )
    for key, table in result.wald.items():
        path = paths.get(f"{spec.id}/{key}")
        if path is None:
            continue
        write_tsv(table, path)
        log.info(
            "%s %s: %d genes with padj < %g",
            spec.id,
            key,
            int((table.padj < p.alpha).sum()),
            p.alpha,
        )
    for key, table in result.lrt.items():
        write_tsv(table, paths[f"lrt_{key}"])
        log.info(
            "LRT %s: %d genes with padj < %g (df %d)",
            key,
            int((table.padj < p.alpha).sum()),
            p.alpha,
            int(table["df"].iloc[0]),
        )
    # contrasts the data cannot estimate (a visit dropped by min_patients_per_visit, ...)
    # still get their file, with empty statistics, so that downstream rules can run
    for key in de_data.contrast_ids(spec, p.visits, p.baseline):
        if key not in result.wald:
            log.warning(
                "design %s: contrast %s not estimable; written without statistics", spec.id, key
            )
            empty = de_data.unestimable_table(counts.index, names, p.shrink, gene_sets)
            write_tsv(empty, paths[f"{spec.id}/{key}"])
    outliers.append(result.outliers.assign(design=spec.id))
    dropped.append(result.dropped_samples.assign(design=spec.id))

out = pd.concat(outliers, ignore_index=True)
out = out[["design", "gene_id", "sample_id", "count", "expected", "score", "replaced"]]
write_tsv(out.sort_values(["design", "gene_id", "sample_id"]), sm.output.outliers)
drop = pd.concat(dropped, ignore_index=True)[["design", "sample_id", "reason"]]
write_tsv(drop.sort_values(["design", "sample_id"]), sm.output.dropped)
log.info("done: %d outlier counts, %d dropped design samples", len(out), len(drop))
