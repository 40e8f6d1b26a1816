"""Rule ingest_counts: raw counts (matrix, featureCounts, quantifications or h5ad) to one
samples x genes AnnData with gene names."""

from rhlh.contract.counts import build_count_objects, read_counts
from rhlh.io import write_h5ad
from rhlh.logs import setup_logging
from rhlh.tables import read_patients, read_samples

sm = snakemake  # noqa: F821
log = setup_logging(sm)
samples = read_samples(sm.input.samples)
patients = read_patients(sm.input.patients)


def progress(done, total):
    log.info("summed %d / %d observations", done, total)


raw = read_counts(
    sm.params.path, progress=progress, sample_ids=list(samples["sample_id"]), **sm.params.counts
)
log.info(
    "read %s counts: %d profiles x %d genes",
    raw["format"],
    len(raw["samples"]),
    raw["counts"].shape[1],
)
adata, by_ct, dropped = build_count_objects(raw, samples, patients)
if dropped:
    log.warning(
        "dropped samples present in only one of counts / samples.tsv: %s", ", ".join(dropped)
    )
write_h5ad(adata, sm.output.counts)
if by_ct is not None:
    write_h5ad(by_ct, sm.output.by_cell_type[0])
    log.info("pseudobulk by cell type: %d profiles", by_ct.n_obs)
log.info("wrote %d samples x %d genes", adata.n_obs, adata.n_vars)
