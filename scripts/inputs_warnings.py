"""Rule validation_warnings: the plausibility findings of the clinical timeline kept as
warnings (config ``plausibility``), one row each; empty but for the header when none."""

from rhlh.contract.validate import plausibility_table
from rhlh.io import write_tsv
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
table = plausibility_table(sm.params.inputs, sm.params.config)
for r in table.itertuples():
    log.warning("%s, row %s, column '%s': %s", r.file, r.row, r.column, r.message)
log.info("%d plausibility warning(s)", len(table))
write_tsv(table, sm.output[0])
