"""Rule validated_table: write the typed, checked copy of one input table."""

from rhlh.contract.validate import clean_table
from rhlh.io import formula_safe, write_tsv
from rhlh.logs import setup_logging

log = setup_logging(snakemake)  # noqa: F821
table = snakemake.wildcards.table  # noqa: F821
df = clean_table(table, snakemake.params.inputs, snakemake.params.config)  # noqa: F821
# a text cell that starts like a spreadsheet formula gets a leading ' (rhlh.io.formula_safe)
write_tsv(formula_safe(df), snakemake.output[0])  # noqa: F821
log.info("%s: %d rows, %d columns", table, len(df), df.shape[1])
