"""Rule de_fit: fit every configured design once, write its Wald and LRT tables and outliers."""

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from rhlh import de
from rhlh.design import Contrast, parse_design_specs
from rhlh.io import read_table, write_tsv
from rhlh.logs import setup_logging
from rhlh.signatures import read_gmt

sm = snakemake  # noqa: F821
log = setup_logging(sm)
threadpool_limits(sm.threads)  # BLAS uses the declared cores, no more
p = sm.params
paths = dict(zip(p.table_keys, sm.output.tables, strict=True))

adata = ad.read_h5ad(sm.input.counts)
cell_type = getattr(p, "cell_type", None)
if cell_type is not None:
    # one pseudobulk profile per sample of this cell type, named by its sample
    adata = adata[adata.obs["cell_type"].astype(str) == cell_type].copy()
    adata.obs_names = adata.obs["sample_id"].astype(str).to_numpy()
    log.info("cell type %s: %d pseudobulk samples", cell_type, adata.n_obs)
raw = adata.layers["counts"] if "counts" in adata.layers else adata.X
raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
gene_ids = adata.var["gene_id"].astype(str) if "gene_id" in adata.var else adata.var_names
counts = pd.DataFrame(
    raw.T, index=pd.Index(gene_ids, name="gene_id"), columns=adata.obs_names.astype(str)
)
names = (
    pd.Series(adata.var["gene_name"].astype(str).to_numpy(), index=counts.index)
    if "gene_name" in adata.var
    else None
)
keep = counts.sum(axis=1) >= p.min_total_count
log.info(
    "counts: %d samples x %d genes; %d genes with < %d reads in total left out",
    counts.shape[1],
    counts.shape[0],
    int((~keep).sum()),
    p.min_total_count,
)
counts = counts[keep]

samples = adata.obs.copy()
samples["sample_id"] = adata.obs_names.astype(str)
del adata, raw  # the counts frame holds what the fits need (large cohorts: memory)
for col in ("patient_id", "visit", "batch"):
    samples[col] = samples[col].astype(str)
responders = read_table(sm.input.responders, required=("patient_id", "responder"))
flag = responders.set_index("patient_id")["responder"].map({"True": True, "False": False})
samples["responder"] = samples["patient_id"].astype(str).map(flag)
log.info(
    "responders: %d, non-responders: %d, unknown: %d patients",
    int(flag.eq(True).sum()),
    int(flag.eq(False).sum()),
    int(samples.loc[samples.responder.isna(), "patient_id"].nunique()),
)
samples["responder"] = samples["responder"].astype(object)

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
    wanted = []
    for c in spec.contrasts:
        if isinstance(c, Contrast):
            wanted.append(c.id)
        else:
            wanted += [f"{v}_vs_{p.baseline}" for v in p.visits if v != p.baseline]
    for key in wanted:
        if key not in result.wald:
            log.warning(
                "design %s: contrast %s not estimable; written without statistics", spec.id, key
            )
            empty = pd.DataFrame({"gene_id": counts.index.to_numpy()})
            empty["gene_name"] = "" if names is None else names.reindex(counts.index).to_numpy()
            for col in ("baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"):
                empty[col] = np.nan
            if p.shrink:
                empty["log2FoldChange_shrunk"] = np.nan
                empty["lfcSE_shrunk"] = np.nan
            empty["outlier_replaced"] = False
            write_tsv(de.mark_signature_genes(empty, gene_sets), paths[f"{spec.id}/{key}"])
    outliers.append(result.outliers.assign(design=spec.id))
    dropped.append(result.dropped_samples.assign(design=spec.id))

out = pd.concat(outliers, ignore_index=True)
out = out[["design", "gene_id", "sample_id", "count", "expected", "score", "replaced"]]
write_tsv(out.sort_values(["design", "gene_id", "sample_id"]), sm.output.outliers)
drop = pd.concat(dropped, ignore_index=True)[["design", "sample_id", "reason"]]
write_tsv(drop.sort_values(["design", "sample_id"]), sm.output.dropped)
log.info("done: %d outlier counts, %d dropped design samples", len(out), len(drop))
