"""Rule cytokines_models: change from baseline and log10(value) ~ visit * responder mixed models."""

from rhlh import cytokines as cy
from rhlh import tables
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.longitudinal import change_from_baseline, fit_visit_by_response, response_groups_note
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
values = tables.read_cytokine_values(sm.input.values)
values["uninformative"] = values["uninformative"].astype(str) == "True"
samples = values[["sample_id", "patient_id", "visit", "day"]].drop_duplicates("sample_id")
responders = tables.read_responders(sm.input.responders)
note = response_groups_note(
    responders, "the per-group rows of the missing group and the responder x visit interaction"
)
if note:
    log.warning(note)
long = cy.model_table(values.drop(columns=["patient_id", "visit", "day"]), samples, responders)

change = change_from_baseline(long, "value", "feature", baseline=p.baseline)
change = change.rename(
    columns={
        "feature": "analyte",
        "value": "log10_value",
        "baseline_value": "baseline_log10",
        "change": "log10_change",
    }
)
write_tsv(change, sm.output.change)

flag = values.groupby("analyte")["uninformative"].first()
skip = sorted(flag[flag].index) if p.skip_uninformative else []
if skip:
    log.warning("not modelled (censored in most samples): %s", ", ".join(skip))
log.info(
    "mixed models for %d analytes (n_boot=%d, interaction test %s)",
    long["feature"].nunique() - len(skip),
    p.n_boot,
    p.interaction_test,
)
models = fit_visit_by_response(
    long[~long["feature"].isin(skip)],
    value_col="value",
    feature_col="feature",
    visits=p.visits,
    baseline=p.baseline,
    seed=p.seed,
    n_boot=p.n_boot,
    min_patients=p.min_patients,
    interaction_test=p.interaction_test,
    n_perm=p.interaction_n_perm,
)
models = models.rename(columns={"feature": "analyte"})
models.insert(1, "uninformative", models["analyte"].map(flag).astype(bool))
write_tsv(models, sm.output.models)
for r in models[models["term"] == "interaction"].itertuples():
    log.info(
        "%s: interaction estimate %.3g (log10), p = %.3g, converged %s",
        r.analyte,
        r.estimate,
        r.pvalue,
        r.converged,
    )
if not models.empty and not models["converged"].all():
    log.warning(
        "%d model rows did not converge (converged = False, no padj)",
        int((~models["converged"]).sum()),
    )

write_tsv(cy.tobit_visit_means(long, values, p.visits), sm.output.tobit)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
