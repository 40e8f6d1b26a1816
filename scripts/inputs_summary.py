"""Rule input_summary: counts of patients, samples per visit, genes, analytes, censoring."""

from pathlib import Path

import anndata as ad
import pandas as pd

from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.validate import summarize

sm = snakemake  # noqa: F821
log = setup_logging(sm)
tables = {Path(p).stem: p for p in sm.input.tables}
samples = pd.read_csv(tables["samples"], sep="\t", dtype=str)
cyto = pd.read_csv(tables["cytokines"], sep="\t", dtype=str) if "cytokines" in tables else None
counts = ad.read_h5ad(sm.input.counts, backed="r")
summary = summarize(samples, counts.obs, counts.n_vars, cyto, sm.params.visits, sm.params.baseline)
write_tsv(summary, sm.output[0])
log.info("summary:\n%s", summary.to_string(index=False))
