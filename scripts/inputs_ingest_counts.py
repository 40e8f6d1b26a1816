"""Rule ingest_counts: raw counts (matrix, featureCounts, quantifications or h5ad) to one
samples x genes AnnData with gene names.

Single-cell h5ad: cells are QC'd while they are streamed (rhlh.singlecell.CellQC); only kept
cells are summed, samples and sample x cell-type profiles with too few cells are dropped, and
the QC tables are written.
"""

from rhlh.contract.counts import build_count_objects, read_counts
from rhlh.io import write_h5ad, write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_patients, read_samples
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
samples = read_samples(sm.input.samples)
patients = read_patients(sm.input.patients)


def progress(done, total):
    log.info("summed %d / %d observations", done, total)


qc = None
if sm.output.singlecell_qc:
    from rhlh import singlecell as sc

    qc = sc.CellQC(sm.params.singlecell)
raw = read_counts(
    sm.params.path,
    progress=progress,
    sample_ids=list(samples["sample_id"]),
    cell_qc=qc,
    **sm.params.counts,
)
if qc is not None:
    raw, sample_qc, profile_qc = sc.apply_cell_qc(raw, qc)
    out_samples, out_profiles, out_cells = sm.output.singlecell_qc
    write_tsv(sample_qc, out_samples)
    write_tsv(profile_qc, out_profiles)
    sc.write_cell_table(qc.cell_table(), out_cells)
    n_in, n_kept = int(sample_qc["n_cells_in"].sum()), int(sample_qc["n_cells_kept"].sum())
    log.info("cell QC: %d of %d cells kept (%.1f%%)", n_kept, n_in, 100 * n_kept / max(n_in, 1))
    for row in sample_qc[sample_qc["reason"] != ""].itertuples(index=False):
        log.warning("sample %s %s: %s", row.sample_id, row.status, row.reason)
    n_drop = int((profile_qc["status"] == "dropped").sum())
    if n_drop:
        log.warning("%d sample x cell-type profiles dropped (see %s)", n_drop, out_profiles)
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
    if qc is not None:
        sc.add_profile_cells(by_ct, raw["ct_n_cells"])
    write_h5ad(by_ct, sm.output.by_cell_type[0])
    log.info("pseudobulk by cell type: %d profiles", by_ct.n_obs)
log.info("wrote %d samples x %d genes", adata.n_obs, adata.n_vars)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
