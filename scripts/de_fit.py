"""Rule de_fit: fit every configured design once, write its Wald and LRT tables and outliers."""

import anndata as ad
import pandas as pd
from threadpoolctl import threadpool_limits

from rhlh import de, de_data
from rhlh.contract.genesets import read_gmt
from rhlh.design import parse_design_specs
from rhlh.errors import InputError
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import DE_SKIPPED_COLUMNS, read_responders
from rhlh.versions import write_versions

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
all_genes = counts.index  # the genes of a table without statistics when nothing is tested
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


def skip_design(spec, reason):
    """A design this cohort (or a cell type too sparse) cannot estimate: every table of the
    design written without statistics (with the reason), its samples listed as dropped, the
    design in skipped."""
    where = "" if cell_type is None else f"cell type {cell_type}, "
    log.warning("%sdesign %s: skipped, not tested: %s", where, spec.id, reason)
    genes = counts.index if len(counts) else all_genes
    for key in de_data.contrast_ids(spec, p.visits, p.baseline):
        if f"{spec.id}/{key}" in paths:
            table = de_data.unestimable_table(genes, names, p.shrink, gene_sets, reason)
            write_tsv(table, paths[f"{spec.id}/{key}"])
    for key in spec.reduced:
        table = de_data.untested_lrt_table(genes, names, gene_sets, reason)
        write_tsv(table, paths[f"lrt_{key}"])
    ids = samples["sample_id"].astype(str).to_numpy()
    reason_text = f"{'design' if cell_type is None else 'cell type'} not tested: {reason}"
    dropped.append(pd.DataFrame({"sample_id": ids, "reason": reason_text, "design": spec.id}))
    skipped.append(de_data.skipped_row(cell_type, spec.id, samples, reason))


outliers, dropped, skipped = [], [], []
outlier_cache = {}  # designs on the same samples share one outlier scan
# per cell type, a pseudobulk too sparse after cell QC skips the design, not the run
untestable = None if cell_type is None else de_data.cell_type_untestable(counts, samples)
for spec in parse_design_specs(p.designs, source="config (de.designs)"):
    spec.exclude_samples = list(spec.exclude_samples) + [str(s) for s in p.exclude_samples]
    log.info("design %s: %s", spec.id, spec.formula)
    if untestable is not None:
        skip_design(spec, untestable)
        continue
    # a valid but small cohort without both response groups: the design is skipped, not failed
    no_groups = de_data.response_groups_missing(spec, samples)
    if no_groups is not None:
        skip_design(spec, no_groups)
        continue
    try:
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
            mode=p.mode,
            permutation_nulls=p.permutation_nulls,
            seed=p.seed,
            outlier_score=p.outlier_score,
            min_patients_per_visit=p.min_patients_per_visit,
            n_cpus=sm.threads,
            source="config (de.designs)",
            outlier_cache=outlier_cache,
        )
    except ValueError as exc:
        # InputError (too few patients at baseline, no residual degrees of freedom, ...) or a
        # fit that sparse counts defeat (no dispersion trend): bulk stops, a cell type is
        # listed as not tested with the reason
        if cell_type is None:
            raise
        skip_design(spec, exc.detail if isinstance(exc, InputError) else str(exc))
        continue
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

out_columns = ["design", "gene_id", "sample_id", "count", "expected", "score", "replaced"]
# every design skipped (a cell type too sparse, a cohort of responders only): a header only
out = pd.concat(outliers, ignore_index=True) if outliers else pd.DataFrame(columns=out_columns)
out = out[out_columns]
write_tsv(out.sort_values(["design", "gene_id", "sample_id"]), sm.output.outliers)
drop = pd.concat(dropped, ignore_index=True)[["design", "sample_id", "reason"]]
write_tsv(drop.sort_values(["design", "sample_id"]), sm.output.dropped)
write_tsv(pd.DataFrame(skipped, columns=DE_SKIPPED_COLUMNS), sm.output.skipped)
log.info("done: %d outlier counts, %d dropped design samples", len(out), len(drop))
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
