"""Rule expression_normalize: gene filter, DESeq2 size factors, blind VST and log-CPM."""

import anndata as ad
import numpy as np
import pandas as pd

from rhlh import expression as ex
from rhlh.io import write_h5ad, write_tsv
from rhlh.logs import setup_logging
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
exclude = [str(s) for s in p.exclude_samples]

adata = ad.read_h5ad(sm.input.counts)
log.info("counts: %d samples x %d genes", adata.n_obs, adata.n_vars)
if exclude:
    log.info("excluded by config (expression.exclude_samples): %s", ", ".join(exclude))
norm = ex.normalize(
    adata,
    min_count=p.min_count,
    min_samples=p.min_samples,
    size_factor_method=p.size_factors,
    fit_type=p.vst_fit_type,
    exclude=exclude,
    n_cpus=sm.threads,
)
info = norm.uns["normalization"]
sf = norm.obs["size_factor"]
log.info(
    "size factors (%s): min %.3f, median %.3f, max %.3f; VST trend %s %s",
    p.size_factors,
    sf.min(),
    sf.median(),
    sf.max(),
    info["vst_fit_type"],
    np.round(info["vst_trend_coeffs"], 4).tolist(),
)
# scanpy's PCA slots (obsm X_pca, varm PCs, uns pca): sc.pl.pca(norm, color="visit") works
ex.store_pca(norm, layer="vst", n_top_genes=p.pca_top_genes)
write_h5ad(norm, sm.output.h5ad)

# the full gene filter table, same samples and thresholds as the normalized object
kept_samples = adata[~adata.obs_names.isin(exclude)]
table = ex.filter_genes(kept_samples, min_count=p.min_count, min_samples=p.min_samples)
cols = [c for c in ("gene_id", "gene_name") if c in table.columns]
table = table[cols + ["n_samples_expressed", "kept", "filter_reason"]]
write_tsv(table, sm.output.gene_filter)

if sm.input.by_cell_type:
    pb = ad.read_h5ad(sm.input.by_cell_type[0])
    pb = pb[~pb.obs["sample_id"].astype(str).isin(exclude)].copy()
    groups = ex.normalize_by_group(
        pb,
        groupby="cell_type",
        min_count=p.min_count,
        min_samples=p.min_samples,
        size_factor_method=p.pseudobulk_size_factors,
        fit_type=p.vst_fit_type,
        n_cpus=sm.threads,
    )
    pca_parts = {}
    for name, part in groups.items():
        log.info("cell type %s: %d samples, %d genes kept", name, part.n_obs, part.n_vars)
        # each cell type's own PCA (its VST, its most variable genes), scanpy's obsm slot
        ex.store_pca(part, layer="vst", n_top_genes=p.pca_top_genes)
        pca_parts[name] = (part.obs_names, part.obsm.pop("X_pca"), part.uns["pca"])
        del part.varm["PCs"]
        part.uns = {}
    # genes kept differ by cell type: outer join, NaN where a gene was filtered out
    merged = ad.concat(groups, join="outer", index_unique=None)
    var = pd.DataFrame(index=merged.var_names)
    for col in ("gene_id", "gene_name"):
        if col in pb.var.columns:
            var[col] = pb.var.loc[merged.var_names, col].to_numpy()
    for name, part in groups.items():
        var[f"kept_{name}"] = var.index.isin(part.var_names)
    merged.var = var
    merged.uns["normalization"] = {
        "size_factor_method": p.pseudobulk_size_factors,
        "by": "cell_type",
        "X": "vst",
    }
    # obsm X_pca: each row's coordinates in its own cell type's PCA (first k components,
    # k shared), so sc.pl.pca(merged[merged.obs.cell_type == t], color="visit") works
    k = min(scores.shape[1] for _, scores, _ in pca_parts.values())
    x_pca = np.zeros((merged.n_obs, k))
    ratio = np.zeros((len(pca_parts), k))
    for i, (names, scores, info) in enumerate(pca_parts.values()):
        x_pca[merged.obs_names.get_indexer(names)] = scores[:, :k]
        ratio[i] = info["variance_ratio"][:k]
    merged.obsm["X_pca"] = x_pca
    merged.uns["pca_by_cell_type"] = {
        "cell_type": list(pca_parts),
        "variance_ratio": ratio,
        "n_top_genes": int(p.pca_top_genes),
    }
    write_h5ad(merged, sm.output.by_cell_type[0])
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
