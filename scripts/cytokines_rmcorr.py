"""Rule cytokines_rmcorr: repeated-measures correlation of cytokines with signature scores."""

from rhlh import cytokines as cy
from rhlh import tables
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
values = tables.read_cytokine_values(sm.input.values)
scores = tables.read_scores(sm.input.scores)
if p.methods:
    scores = scores[scores["method"].isin(p.methods)]
# the analysis scale (log10, substituted, plate-adjusted), not the raw pg/mL column
model = values[["sample_id", "patient_id", "analyte", "log10_value"]].rename(
    columns={"analyte": "feature", "log10_value": "value"}
)
out = cy.cytokine_signature_rmcorr(model, scores, min_patients=p.min_patients)
write_tsv(out, sm.output[0])
log.info("rmcorr for %d cytokine x signature x method pairs", len(out))
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
