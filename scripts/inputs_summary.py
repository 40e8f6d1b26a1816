"""Rule input_summary: counts of patients, samples per visit, genes, analytes, censoring."""

from pathlib import Path

import anndata as ad

from rhlh.contract.validate import summarize
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_cytokine_readings, read_samples

sm = snakemake  # noqa: F821
log = setup_logging(sm)
tables = {Path(p).stem: p for p in sm.input.tables}
samples = read_samples(tables["samples"])
cyto = read_cytokine_readings(tables["cytokines"]) if "cytokines" in tables else None
counts = ad.read_h5ad(sm.input.counts, backed="r")
summary = summarize(samples, counts.obs, counts.n_vars, cyto, sm.params.visits, sm.params.baseline)
write_tsv(summary, sm.output[0])
log.info("summary:\n%s", summary.to_string(index=False))
