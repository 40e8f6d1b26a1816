"""Expression normalization and QC statistics: gene filter, DESeq2 size factors, VST, logCPM.

Input is the samples x genes AnnData written by ingestion (obs = samples with sample_id,
patient_id, visit, day, batch; var = genes; raw integer counts in ``layers["counts"]``).
Size factors and the variance-stabilizing transform follow R DESeq2 (checked against it in
tests/test_normalization_vs_r.py); the dispersion fits come from pydeseq2.
"""

from __future__ import annotations

import logging
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from threadpoolctl import threadpool_limits

from rhlh.errors import InputError

log = logging.getLogger("rhlh")

SIZE_FACTOR_METHODS = ("ratio", "poscounts")
MAD_SCALE = 1.4826  # makes the MAD a consistent estimate of the SD under normality


def raw_counts(adata: ad.AnnData) -> np.ndarray:
    """Raw counts (layers['counts'], else X) as a dense samples x genes int64 array."""
    mat = adata.layers["counts"] if "counts" in adata.layers else adata.X
    if mat is None:
        raise ValueError("AnnData has neither layers['counts'] nor X")
    mat = mat.toarray() if sp.issparse(mat) else np.asarray(mat)
    if mat.size and (np.any(mat < 0) or np.any(mat != np.round(mat))):
        raise ValueError("raw counts must be non-negative integers")
    return mat.astype(np.int64)


def library_stats(counts: np.ndarray) -> pd.DataFrame:
    """Per-sample library_size (total counts) and n_detected (genes with a count > 0)."""
    counts = np.asarray(counts)
    return pd.DataFrame(
        {
            "library_size": counts.sum(axis=1).astype(np.int64),
            "n_detected": (counts > 0).sum(axis=1).astype(np.int64),
        }
    )


def filter_genes(adata: ad.AnnData, min_count: int = 10, min_samples: int = 3) -> pd.DataFrame:
    """Gene filter: keep genes with >= min_count counts in >= min_samples samples.

    Returns a copy of ``adata.var`` with columns n_samples_expressed, kept and filter_reason
    (empty for kept genes).
    """
    if min_count < 0 or min_samples < 0:
        raise ValueError("min_count and min_samples must be non-negative")
    counts = raw_counts(adata)
    n_expr = (counts >= min_count).sum(axis=0)
    total = counts.sum(axis=0)
    kept = (n_expr >= min_samples) & (total > 0)
    reason = np.where(
        kept,
        "",
        np.where(
            total == 0,
            "zero counts in every sample",
            f"fewer than {min_samples} samples with >= {min_count} counts",
        ),
    )
    var = adata.var.copy()
    var["n_samples_expressed"] = n_expr.astype(np.int64)
    var["kept"] = kept
    var["filter_reason"] = reason
    return var


def poscounts_size_factors(counts: np.ndarray) -> np.ndarray:
    """DESeq2 'poscounts' size factors of a samples x genes count matrix.

    As in DESeq2's estimateSizeFactors(type="poscounts"): per gene, the geometric mean
    over positive counts with zeros contributing log 1 = 0 but counted in the n-th root;
    per sample, the median of log(count) - log(geomean) over genes with a positive geomean
    and a positive count in that sample; finally scaled to a geometric mean of 1.
    """
    counts = np.asarray(counts, dtype=float)
    with np.errstate(divide="ignore"):
        logc = np.where(counts > 0, np.log(np.where(counts > 0, counts, 1.0)), 0.0)
    loggeo = logc.mean(axis=0)
    # pydeseq2 0.5.4 also drops genes whose positive counts are all 1 (log geomean 0);
    # DESeq2 keeps them, so this is computed here rather than by pydeseq2.
    usable = counts.sum(axis=0) > 0
    if not usable.any():
        raise ValueError("every gene has zero counts: cannot compute size factors")
    sf = np.empty(counts.shape[0])
    for i in range(counts.shape[0]):
        mask = usable & (counts[i] > 0)
        if not mask.any():
            raise ValueError(f"sample {i} has no positive counts: cannot compute its size factor")
        sf[i] = np.exp(np.median(logc[i, mask] - loggeo[mask]))
    return sf / np.exp(np.mean(np.log(sf)))


def _deseq_dataset(counts: np.ndarray, obs_names, var_names, n_cpus: int = 1):
    from pydeseq2.dds import DeseqDataSet

    from rhlh.nbglm import VectorInference

    frame = pd.DataFrame(counts, index=list(obs_names), columns=list(var_names))
    # design ~1: the VST is blind to the experimental design, as DESeq2's blind=TRUE
    return DeseqDataSet(
        counts=frame,
        metadata=pd.DataFrame(index=frame.index),
        design="~1",
        quiet=True,
        inference=VectorInference(n_cpus=n_cpus),
    )


def size_factors(counts: np.ndarray, method: str = "ratio") -> np.ndarray:
    """DESeq2 size factors of a samples x genes matrix: 'ratio' (pydeseq2) or 'poscounts'."""
    if method not in SIZE_FACTOR_METHODS:
        raise ValueError(f"size factor method must be one of {SIZE_FACTOR_METHODS}, not {method!r}")
    counts = np.asarray(counts, dtype=np.int64)
    if method == "poscounts":
        return poscounts_size_factors(counts)
    if (counts == 0).any(axis=0).all():
        # pydeseq2 would silently switch to its iterative method, which DESeq2 does not do
        raise ValueError(
            "every gene has a zero in some sample: median-of-ratios size factors are "
            "undefined; use size_factor_method 'poscounts' (sparse or pseudobulk data)"
        )
    n, g = counts.shape
    dds = _deseq_dataset(counts, [f"s{i}" for i in range(n)], [f"g{j}" for j in range(g)])
    dds.fit_size_factors(fit_type="ratio")
    return np.asarray(dds.obs["size_factors"], dtype=float)


def deseq2_normalize(
    counts: np.ndarray,
    method: str = "ratio",
    fit_type: str = "parametric",
    n_cpus: int = 1,
    obs_names=None,
    var_names=None,
) -> dict:
    """DESeq2 size factors, normalized counts and blind VST of a samples x genes matrix.

    Returns a dict with size_factors, normalized, vst (arrays), vst_fit_type (the trend used:
    pydeseq2 falls back to 'mean' when the parametric fit fails) and trend_coeffs (a0 =
    asymptotic dispersion, a1 = extra-Poisson term; None for the mean fit).
    """
    counts = np.asarray(counts, dtype=np.int64)
    sf = size_factors(counts, method)
    n, g = counts.shape
    obs_names = [f"s{i}" for i in range(n)] if obs_names is None else obs_names
    var_names = [f"g{j}" for j in range(g)] if var_names is None else var_names
    dds = _deseq_dataset(counts, obs_names, var_names, n_cpus=n_cpus)
    dds.obs["size_factors"] = sf
    dds.layers["normed_counts"] = counts / sf[:, None]
    dds.var["_normed_means"] = dds.layers["normed_counts"].mean(axis=0)
    with np.errstate(divide="ignore"):
        dds.logmeans = np.log(counts).mean(axis=0)
    dds.filtered_genes = np.isfinite(dds.logmeans)
    # DeseqDataSet.vst() would refit the size factors (it looks for them in obsm, not obs)
    # with pydeseq2's own poscounts; its steps are run here on the factors set above.
    dds.vst_fit_type = fit_type
    # dispersions fitted vectorised over genes (rhlh.nbglm), n_cpus blocks at a time
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=n_cpus):
        warnings.simplefilter("always")
        dds.fit_genewise_dispersions(vst=True)
        dds.fit_dispersion_trend(vst=True)
    used = fit_type
    coeffs = None
    if fit_type == "parametric":
        if any("Switching to a mean-based" in str(w.message) for w in caught):
            used = "mean"
            dds.vst_fit_type = "mean"
            log.warning("parametric dispersion trend did not converge; VST uses the mean fit")
        else:
            coeffs = dds.uns["vst_trend_coeffs"].to_numpy(dtype=float)
    vst = np.asarray(dds.vst_transform(), dtype=float)
    if not np.isfinite(vst).all():
        raise ValueError("the VST is undefined: no gene has a positive dispersion estimate")
    return {
        "size_factors": np.asarray(dds.obs["size_factors"], dtype=float),
        "normalized": np.asarray(dds.layers["normed_counts"], dtype=float),
        "vst": vst,
        "vst_fit_type": used,
        "trend_coeffs": coeffs,
    }


def log_cpm(counts: np.ndarray, library_size=None) -> np.ndarray:
    """log2(CPM + 1), each sample scaled by its own library size (all genes by default)."""
    counts = np.asarray(counts, dtype=float)
    lib = counts.sum(axis=1) if library_size is None else np.asarray(library_size, dtype=float)
    lib = np.where(lib > 0, lib, 1.0)  # an empty library has CPM 0, not NaN
    return np.log2(counts / lib[:, None] * 1e6 + 1.0)


def _check_exclude(adata: ad.AnnData, exclude) -> list[str]:
    exclude = [str(s) for s in (exclude or [])]
    unknown = [s for s in exclude if s not in set(adata.obs_names)]
    if unknown:
        raise InputError(
            "config",
            "sample to exclude is not in the counts",
            column="exclude_samples",
            value=unknown[0],
        )
    return exclude


def normalize(
    adata: ad.AnnData,
    min_count: int = 10,
    min_samples: int = 3,
    size_factor_method: str = "ratio",
    fit_type: str = "parametric",
    exclude=(),
    n_cpus: int = 1,
) -> ad.AnnData:
    """Filter genes, then DESeq2-normalize: layers counts, normalized, vst, logcpm.

    ``exclude`` lists sample ids removed before anything is computed (recorded in
    uns['excluded_samples']). obs gains size_factor, library_size and n_detected (both over
    all genes, before the filter); var gains the filter columns of ``filter_genes`` for every
    gene in uns['gene_filter'], and only kept genes remain in the returned object.
    """
    exclude = _check_exclude(adata, exclude)
    keep_obs = ~adata.obs_names.isin(exclude)
    sub = adata[keep_obs].copy()
    if sub.n_obs < 2:
        raise ValueError("fewer than two samples left after exclusions: cannot normalize")
    counts_all = raw_counts(sub)
    stats_ = library_stats(counts_all)
    var = filter_genes(sub, min_count=min_count, min_samples=min_samples)
    kept = var["kept"].to_numpy()
    if kept.sum() == 0:
        raise ValueError(
            f"no gene has >= {min_count} counts in >= {min_samples} samples: nothing to normalize"
        )
    log.info(
        "gene filter (>= %d counts in >= %d samples): %d of %d genes kept",
        min_count,
        min_samples,
        int(kept.sum()),
        len(kept),
    )
    counts = counts_all[:, kept]
    res = deseq2_normalize(
        counts,
        method=size_factor_method,
        fit_type=fit_type,
        n_cpus=n_cpus,
        obs_names=sub.obs_names,
        var_names=sub.var_names[kept],
    )
    obs = sub.obs.copy()
    obs["size_factor"] = res["size_factors"]
    obs["library_size"] = stats_["library_size"].to_numpy()
    obs["n_detected"] = stats_["n_detected"].to_numpy()
    out = ad.AnnData(
        X=res["vst"].astype(np.float64),
        obs=obs,
        var=var.loc[kept].copy(),
    )
    out.layers["counts"] = sp.csr_matrix(counts)
    out.layers["normalized"] = res["normalized"]
    out.layers["vst"] = res["vst"]
    out.layers["logcpm"] = log_cpm(counts, library_size=obs["library_size"].to_numpy())
    filt = var[["n_samples_expressed", "kept", "filter_reason"]].copy()
    filt.index = filt.index.astype(str)
    out.uns["gene_filter"] = {
        "min_count": int(min_count),
        "min_samples": int(min_samples),
        "n_genes_in": int(len(kept)),
        "n_genes_kept": int(kept.sum()),
        "removed": filt.loc[~kept, ["n_samples_expressed", "filter_reason"]]
        .reset_index(names="gene_id")
        .astype(str)
        .to_dict("list"),
    }
    out.uns["normalization"] = {
        "size_factor_method": size_factor_method,
        "vst_fit_type": res["vst_fit_type"],
        "vst_trend_coeffs": [] if res["trend_coeffs"] is None else list(res["trend_coeffs"]),
        "X": "vst",
    }
    out.uns["excluded_samples"] = list(exclude)
    return out


def normalize_by_group(adata: ad.AnnData, groupby: str = "cell_type", **kwargs) -> dict:
    """Normalize each group (e.g. pseudobulk cell type) on its own; {group: AnnData}."""
    if groupby not in adata.obs.columns:
        raise ValueError(f"obs has no column {groupby!r}")
    kwargs.setdefault("size_factor_method", "poscounts")
    out = {}
    for group in sorted(adata.obs[groupby].astype(str).unique()):
        part = adata[adata.obs[groupby].astype(str) == group].copy()
        exclude = [s for s in kwargs.get("exclude", ()) if s in set(part.obs_names)]
        out[group] = normalize(part, **{**kwargs, "exclude": exclude})
    return out


def _pca_svd(adata: ad.AnnData, layer: str, n_top_genes: int):
    """SVD of the centred n_top_genes most variable genes: (u, s, vt, gene positions), signs
    fixed so that each component's largest loading is positive."""
    mat = adata.layers[layer] if layer else adata.X
    mat = mat.toarray() if sp.issparse(mat) else np.asarray(mat, dtype=float)
    variances = mat.var(axis=0, ddof=1)
    # stable sort on -variance so ties keep gene order and reruns pick the same genes
    top = np.argsort(-variances, kind="stable")[: min(n_top_genes, mat.shape[1])]
    x = mat[:, top] - mat[:, top].mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    for j in range(len(s)):
        if vt[j, np.argmax(np.abs(vt[j]))] < 0:
            u[:, j] *= -1
            vt[j] *= -1
    return u, s, vt, top


def store_pca(adata: ad.AnnData, layer: str = "vst", n_comps: int = 50, n_top_genes: int = 500):
    """Store the PCA of :func:`pca` the way scanpy does, so ``sc.pl.pca`` works on the object.

    obsm['X_pca'] (samples x k scores), varm['PCs'] (genes x k loadings, 0 for genes outside
    the n_top_genes used), uns['pca'] with 'variance' (s^2 / (n - 1)), 'variance_ratio' (of
    the total variance of the genes used, as DESeq2's plotPCA and scanpy report it) and
    'params'. k = min(n_comps, samples - 1, genes used). In place; returns adata.
    """
    u, s, vt, top = _pca_svd(adata, layer, n_top_genes)
    k = max(1, min(n_comps, adata.n_obs - 1, len(top)))
    adata.obsm["X_pca"] = (u[:, :k] * s[:k]).astype(np.float64)
    pcs = np.zeros((adata.n_vars, k))
    pcs[top, :] = vt[:k].T
    adata.varm["PCs"] = pcs
    adata.uns["pca"] = {
        "params": {
            "zero_center": True,
            "use_highly_variable": False,
            "layer": layer or "X",
            "n_top_genes": int(len(top)),
        },
        "variance": (s[:k] ** 2 / max(adata.n_obs - 1, 1)).astype(np.float64),
        "variance_ratio": (s[:k] ** 2 / np.sum(s**2)).astype(np.float64),
    }
    return adata


def pca(adata: ad.AnnData, layer: str = "vst", n_components: int = 10, n_top_genes: int = 500):
    """PCA of the n_top_genes most variable genes of a layer (centred, not scaled).

    Returns (scores DataFrame PC1..PCk indexed by sample, variance_fraction Series): fractions
    of the total variance of those genes, as DESeq2's plotPCA reports them. The sign of each
    component is fixed so that its largest loading is positive, so reruns agree.
    """
    u, s, vt, top = _pca_svd(adata, layer, n_top_genes)
    k = min(n_components, len(s))
    names = [f"PC{j + 1}" for j in range(k)]
    scores = pd.DataFrame(u[:, :k] * s[:k], index=adata.obs_names, columns=names)
    var_frac = pd.Series((s**2 / np.sum(s**2))[:k], index=names, name="variance_fraction")
    return scores, var_frac


def sample_distances(adata: ad.AnnData, layer: str = "vst") -> pd.DataFrame:
    """Euclidean distances between samples on a layer (as DESeq2's dist(t(assay(vsd))))."""
    mat = adata.layers[layer]
    mat = mat.toarray() if sp.issparse(mat) else np.asarray(mat, dtype=float)
    sq = (mat**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * mat @ mat.T, 0.0)
    np.fill_diagonal(d2, 0.0)
    names = list(adata.obs_names)
    return pd.DataFrame(np.sqrt(d2), index=names, columns=names)


def robust_z(x) -> np.ndarray:
    """(x - median) / (1.4826 * MAD); zero where the MAD is zero and x equals the median."""
    x = np.asarray(x, dtype=float)
    med = np.median(x)
    mad = MAD_SCALE * np.median(np.abs(x - med))
    if mad == 0:
        return np.where(x == med, 0.0, np.sign(x - med) * np.inf)
    return (x - med) / mad


def flag_outliers(
    scores: pd.DataFrame,
    library: pd.DataFrame,
    n_neighbors: int = 3,
    z_threshold: float = 5.0,
    libsize_mads: float = 3.0,
    min_library_size: float = 0,
) -> pd.DataFrame:
    """Flag outlier samples: far from their nearest neighbours in PCA space, or small library.

    ``scores`` are PCA scores (all components: Euclidean distances are then those between
    the samples' top-gene VST profiles). A sample's distance is the one to its
    ``n_neighbors``-th nearest other sample; it is flagged when the robust z-score
    (median/MAD) of the log distance exceeds ``z_threshold``. Visits and patients form
    clusters, so marginal robust z-scores of the PCs (a MAD-scaled Mahalanobis distance)
    flag ordinary members of small clusters; a neighbour distance flags only samples that
    resemble no other sample. The library size is flagged more than ``libsize_mads`` MADs
    below the median on log10 scale, or below ``min_library_size``. Returns one row per
    sample: neighbour_distance, distance_z, distance_outlier, low_library_size, outlier,
    reason.
    """
    x = scores.to_numpy(dtype=float)
    k = min(n_neighbors, len(x) - 1)
    if k < 1:
        raise ValueError("outlier detection needs at least two samples")
    sq = (x**2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    np.fill_diagonal(d2, np.inf)
    dist = np.sqrt(np.sort(d2, axis=1)[:, k - 1])
    z = robust_z(np.log(np.maximum(dist, np.finfo(float).tiny)))
    lib = library.loc[scores.index]
    lib_z = robust_z(np.log10(np.maximum(lib["library_size"].to_numpy(dtype=float), 1)))
    out = pd.DataFrame(index=scores.index)
    out["neighbour_distance"] = dist
    out["distance_z"] = z
    out["distance_outlier"] = z > z_threshold
    out["low_library_size"] = (lib_z < -libsize_mads) | (
        lib["library_size"].to_numpy() < min_library_size
    )
    reasons = []
    for i in range(len(out)):
        parts = []
        if out["distance_outlier"].iloc[i]:
            parts.append(
                f"far from its {k} nearest samples in PCA space "
                f"(robust z {z[i]:.1f} > {z_threshold:g})"
            )
        if out["low_library_size"].iloc[i]:
            parts.append(f"low library size ({int(lib['library_size'].iloc[i])})")
        reasons.append("; ".join(parts))
    out["outlier"] = out["distance_outlier"] | out["low_library_size"]
    out["reason"] = reasons
    return out


QC_OBS_COLUMNS = ("patient_id", "visit", "day", "batch")


def qc_table(
    norm: ad.AnnData,
    excluded_obs: pd.DataFrame | None = None,
    n_top_genes: int = 1000,
    n_neighbors: int = 3,
    z_threshold: float = 5.0,
    libsize_mads: float = 3.0,
    min_library_size: float = 0,
) -> pd.DataFrame:
    """qc.tsv: per-sample metrics, PC1/PC2, outlier flags with reasons; excluded samples too.

    Columns: sample_id, patient_id, visit, day, batch, library_size, n_detected, size_factor,
    PC1, PC2, neighbour_distance, distance_z, distance_outlier, low_library_size, outlier,
    excluded, reason. ``excluded_obs`` (obs rows of samples excluded by config, with
    library_size/n_detected as from ``excluded_library``) are listed with excluded=True.
    """
    scores, _ = pca(norm, n_components=norm.n_obs, n_top_genes=n_top_genes)
    flags = flag_outliers(
        scores,
        norm.obs[["library_size", "n_detected"]],
        n_neighbors=n_neighbors,
        z_threshold=z_threshold,
        libsize_mads=libsize_mads,
        min_library_size=min_library_size,
    )
    obs = norm.obs
    cols = [c for c in QC_OBS_COLUMNS if c in obs.columns]
    table = obs[cols + ["library_size", "n_detected", "size_factor"]].copy()
    table[["PC1", "PC2"]] = scores[["PC1", "PC2"]]
    table = table.join(flags)
    table["excluded"] = False
    if excluded_obs is not None and len(excluded_obs):
        ex = excluded_obs.reindex(columns=[c for c in table.columns if c in excluded_obs]).copy()
        ex["excluded"] = True
        ex["reason"] = "excluded by config"
        for c in ("distance_outlier", "low_library_size", "outlier"):
            ex[c] = False
        table = pd.concat([table, ex])
    table.insert(0, "sample_id", table.index.astype(str))
    return table.reset_index(drop=True)


def excluded_library(adata: ad.AnnData, exclude) -> pd.DataFrame:
    """obs rows of the excluded samples with their library_size and n_detected."""
    exclude = _check_exclude(adata, exclude)
    part = adata[adata.obs_names.isin(exclude)]
    obs = part.obs.copy()
    lib = library_stats(raw_counts(part)) if part.n_obs else library_stats(np.zeros((0, 0)))
    obs["library_size"] = lib["library_size"].to_numpy()
    obs["n_detected"] = lib["n_detected"].to_numpy()
    return obs


def _r_squared(y: np.ndarray, groups: pd.Series) -> tuple[float, float, float]:
    """One-way ANOVA R^2, adjusted R^2 and F-test p-value of y on a categorical factor."""
    codes, _ = pd.factorize(groups)
    n, k = len(y), codes.max() + 1
    sst = np.sum((y - y.mean()) ** 2)
    means = np.bincount(codes, weights=y) / np.bincount(codes)
    ssw = np.sum((y - means[codes]) ** 2)
    if sst == 0:
        return np.nan, np.nan, np.nan
    r2 = 1 - ssw / sst
    df_res = n - k
    if df_res <= 0:
        return r2, np.nan, np.nan
    adj = 1 - (1 - r2) * (n - 1) / df_res
    f = ((sst - ssw) / (k - 1)) / (ssw / df_res) if ssw > 0 else np.inf
    return r2, adj, float(stats.f.sf(f, k - 1, df_res))


def variance_by_factor(
    scores: pd.DataFrame,
    variance_fraction: pd.Series,
    samples: pd.DataFrame,
    factors=("batch", "visit", "patient_id"),
) -> pd.DataFrame:
    """Variance of the expression PCs explained by each factor (batch, visit, patient).

    For each factor and PC: one-way ANOVA R^2 (and adjusted R^2, F-test p-value); the row
    component='weighted' is sum_k R2_k * var_k / sum_k var_k, the share of the variance
    in the PCs given that the factor explains. Factors with < 2 levels are skipped.
    Columns: factor, component, n_levels, variance_fraction, r_squared, adj_r_squared, pvalue.
    """
    rows = []
    samples = samples.loc[scores.index]
    for factor in factors:
        if factor not in samples.columns:
            continue
        values = samples[factor]
        ok = values.notna().to_numpy()
        levels = values[ok].astype(str)
        if levels.nunique() < 2:
            continue
        r2s = []
        for pc in scores.columns:
            r2, adj, p = _r_squared(scores.loc[ok, pc].to_numpy(dtype=float), levels)
            r2s.append(r2)
            rows.append(
                dict(
                    factor=factor,
                    component=pc,
                    n_levels=levels.nunique(),
                    variance_fraction=float(variance_fraction[pc]),
                    r_squared=r2,
                    adj_r_squared=adj,
                    pvalue=p,
                )
            )
        w = variance_fraction[scores.columns].to_numpy(dtype=float)
        rows.append(
            dict(
                factor=factor,
                component="weighted",
                n_levels=levels.nunique(),
                variance_fraction=float(w.sum()),
                r_squared=float(np.nansum(np.asarray(r2s) * w) / w.sum()),
                adj_r_squared=np.nan,
                pvalue=np.nan,
            )
        )
    cols = [
        "factor",
        "component",
        "n_levels",
        "variance_fraction",
        "r_squared",
        "adj_r_squared",
        "pvalue",
    ]
    return pd.DataFrame(rows, columns=cols)


def _dummies(values: pd.Series) -> np.ndarray:
    return pd.get_dummies(values.astype(str), drop_first=True).to_numpy(dtype=float)


def batch_estimable(samples: pd.DataFrame, covariates=("patient_id", "visit")) -> tuple[bool, str]:
    """Whether batch can be a model covariate beside patient and visit; (bool, reason)."""
    if "batch" not in samples.columns:
        return False, "no batch column"
    batch = samples["batch"].astype(str)
    n_batch = batch.nunique()
    if n_batch < 2:
        return False, f"only one sequencing batch ({batch.iloc[0] if len(batch) else 'none'})"
    covariates = [c for c in covariates if c in samples.columns]
    if "patient_id" in covariates:
        per_patient = samples.groupby("patient_id", observed=True)["batch"].nunique()
        if per_patient.max() == 1:
            return False, (
                "batch is nested in patient: every patient was sequenced in a single batch, "
                "so batch cannot be separated from patient"
            )
    if "visit" in covariates:
        per_visit = samples.groupby("visit", observed=True)["batch"].nunique()
        if per_visit.max() == 1:
            visits_per_batch = samples.groupby("batch", observed=True)["visit"].nunique()
            if visits_per_batch.max() == 1:
                return False, "batch is identical to visit: each visit is its own batch"
            return False, (
                "batch is determined by visit: every visit was sequenced in a single batch"
            )
    # general case: batch is estimable iff its contrasts add full rank to the other terms
    base = [np.ones((len(samples), 1))] + [_dummies(samples[c]) for c in covariates]
    x0 = np.hstack(base)
    x1 = np.hstack(base + [_dummies(batch)])
    gained = np.linalg.matrix_rank(x1) - np.linalg.matrix_rank(x0)
    if gained < n_batch - 1:
        return False, (
            f"batch is confounded with {' and '.join(covariates)}: only {gained} of "
            f"{n_batch - 1} batch contrasts are estimable"
        )
    return True, (
        f"{n_batch} batches crossed with {' and '.join(covariates) or 'nothing'}: "
        "batch can be a covariate"
    )
