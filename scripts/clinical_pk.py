"""Rule clinical_pk: ruxolitinib concentrations by matrix and visit, CSF/plasma ratios."""

from rhlh.clinical.pk import csf_plasma_ratio, pk_summary, pk_values
from rhlh.figures.clinical import plot_pk
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_validated

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
pk = read_validated(sm.input.pk, ["day", "lloq"])
values = pk_values(pk, p.substitution)
write_tsv(values, sm.output.values)
write_tsv(pk_summary(values, p.visits), sm.output.summary)
ratio = csf_plasma_ratio(values)
write_tsv(ratio, sm.output.ratio)
for matrix in ("plasma", "csf"):
    save_figure(plot_pk(values, matrix, p.visits), sm.output[matrix])
log.info(
    "%d PK readings (%d below LLOQ, substituted by %s); %d paired CSF/plasma draws",
    len(values),
    int((values["censor"] == "<").sum()),
    p.substitution,
    len(ratio),
)
