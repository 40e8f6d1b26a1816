"""Rule expression_qc: per-sample QC table with outlier flags, batch variance, QC figures."""

from pathlib import Path

import anndata as ad

from rhlh import expression as ex
from rhlh.figures import expression as fe
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_responders, response_label

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
figdir = Path(sm.output.figures[0]).parent

norm = ad.read_h5ad(sm.input.normalized)
raw = ad.read_h5ad(sm.input.counts)
excluded = ex.excluded_library(raw, p.exclude_samples)
qc = ex.qc_table(
    norm,
    excluded_obs=excluded,
    n_top_genes=p.outlier_top_genes,
    n_neighbors=p.outlier_neighbors,
    z_threshold=p.outlier_z,
    libsize_mads=p.libsize_mads,
    min_library_size=p.min_library_size,
)
for _, row in qc[qc["outlier"]].iterrows():
    log.warning("sample %s flagged (kept in the analysis): %s", row["sample_id"], row["reason"])
log.info("%d of %d samples flagged as outliers", int(qc["outlier"].sum()), len(qc))
write_tsv(qc, sm.output.qc)

ok, why = ex.batch_estimable(norm.obs)
log.info("batch as a model covariate: %s (%s)", "estimable" if ok else "not estimable", why)
scores, frac = ex.pca(norm, n_components=p.variance_pcs, n_top_genes=p.pca_top_genes)
variance = ex.variance_by_factor(scores, frac, norm.obs)
variance["batch_estimable"] = ok
write_tsv(variance, sm.output.batch_variance)
weighted = variance[variance["component"] == "weighted"]
for _, row in weighted.iterrows():
    log.info(
        "%s explains %.1f%% of the variance in PC1-PC%d",
        row["factor"],
        100 * row["r_squared"],
        len(scores.columns),
    )

dist = ex.sample_distances(norm)
write_tsv(dist.rename_axis("sample_id").reset_index(), sm.output.distances)

obs = norm.obs.copy()
if sm.input.responders:
    resp = read_responders(sm.input.responders[0])
    flag = dict(zip(resp["patient_id"], resp["responder"], strict=True))
    obs["response"] = obs["patient_id"].astype(str).map(flag).map(response_label)
else:
    obs["response"] = "unknown"
flagged = qc.loc[qc["outlier"], "sample_id"].tolist()
path = {Path(f).stem: f for f in sm.output.figures}
save_figure(fe.plot_library_sizes(qc), path["library_sizes"])
for name, col, kind, order in (
    ("pca_visit", "visit", None, p.visits),
    ("pca_batch", "batch", "batch", None),
    ("pca_responder", "response", "response", ["responder", "non-responder", "unknown"]),
    ("pca_patient", "patient_id", None, None),
):
    fig = fe.plot_pca(
        scores,
        frac,
        obs[col].rename(col.replace("_id", "")),
        title=f"PCA of the VST ({p.pca_top_genes} most variable genes) by {col}",
        order=order,
        kind=kind,
        flagged=flagged,
    )
    save_figure(fig, path[name])
save_figure(fe.plot_sample_distances(dist, obs, p.visits), path["sample_distances"])
save_figure(fe.plot_batch_variance(variance), path["batch_variance"])
log.info("figures written to %s", figdir)
