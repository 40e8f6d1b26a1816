"""Rule de_cell_types_skipped: the designs each cell type's pseudobulk could not estimate."""

import pandas as pd

from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import DE_SKIPPED_COLUMNS, read_de_skipped

sm = snakemake  # noqa: F821
log = setup_logging(sm)
parts = [read_de_skipped(path) for path in sm.input.skipped]
table = pd.concat([pd.DataFrame(columns=DE_SKIPPED_COLUMNS), *parts], ignore_index=True)
table = table[DE_SKIPPED_COLUMNS].sort_values(["cell_type", "design"], ignore_index=True)
for r in table.itertuples():
    log.warning("cell type %s, design %s not tested: %s", r.cell_type, r.design, r.reason)
write_tsv(table, sm.output[0])
log.info("%d of %d cell types with an untested design", table.cell_type.nunique(), len(parts))
