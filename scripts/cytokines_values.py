"""Rule cytokines_values: censoring, plate effects and one log10 value per sample x analyte."""

from rhlh import cytokines as cy
from rhlh import tables
from rhlh.io import write_tsv
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
readings = tables.read_cytokine_readings(sm.input.cytokines)
samples = tables.read_samples(sm.input.samples)
readings = cy.substitute_censored(readings, rule=p.substitution)
log.info(
    "%d readings of %d analytes; left-censored substituted by %s",
    len(readings),
    readings["analyte"].nunique(),
    p.substitution,
)

censoring = cy.censoring_summary(readings, samples, p.visits, uninformative=p.uninformative)
write_tsv(censoring, sm.output.censoring)
for a in censoring.loc[censoring["uninformative"], "analyte"].unique():
    log.warning("%s is censored in most samples: flagged uninformative", a)

plates = cy.plate_effects(readings)
write_tsv(plates, sm.output.plates)
n_plates = readings["plate"].nunique()
if n_plates > 1:
    log.info(
        "%d plates; offsets (log10) vs reference:\n%s",
        n_plates,
        plates[["analyte", "plate", "n_bridging", "offset_log10"]].to_string(index=False),
    )
    readings = cy.adjust_plates(readings, plates, method=p.plate_adjustment)
else:
    readings["plate_offset"] = 0.0

values = cy.collapse_plates(readings)
values = values.merge(
    samples[["sample_id", "patient_id", "visit", "day"]],
    on="sample_id",
    how="inner",
    validate="many_to_one",
)
values["uninformative"] = (
    values["analyte"].map(censoring.groupby("analyte")["uninformative"].first()).astype(bool)
)
order = {v: i for i, v in enumerate(p.visits)}
values = (
    values.assign(_v=values["visit"].map(order))
    .sort_values(["analyte", "patient_id", "_v", "day"])
    .drop(columns="_v")
)
cols = [
    "sample_id",
    "patient_id",
    "visit",
    "day",
    "analyte",
    "value",
    "censor",
    "lloq",
    "uloq",
    "value_analysed",
    "log10_value",
    "plate",
    "plate_offset",
    "uninformative",
]
write_tsv(
    values[cols + [c for c in values.columns if c not in cols + ["row", "unit"]]], sm.output.values
)
log.info("wrote %d sample x analyte values", len(values))
