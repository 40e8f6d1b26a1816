"""Rule signatures_models: change from baseline and score ~ visit * responder + (1|patient)."""

from rhlh import tables
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.longitudinal import response_groups_note
from rhlh.signatures.models import (
    fit_signature_models,
    mean_change_table,
    signature_change_from_baseline,
)
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
scores = tables.read_scores(sm.input.scores)
responders = tables.read_responders(sm.input.responders)
note = response_groups_note(
    responders, "the per-group rows of the missing group and the responder x visit interaction"
)
if note:
    log.warning(note)
change = signature_change_from_baseline(scores, responders, methods=p.methods, baseline=p.baseline)
write_tsv(change, sm.output.change)
write_tsv(mean_change_table(change, p.visits, p.baseline), sm.output.mean_change)
log.info(
    "fitting mixed models for %d signature x method features (n_boot=%d)",
    change["feature"].nunique(),
    p.n_boot,
)
models = fit_signature_models(
    scores,
    responders,
    p.visits,
    methods=p.methods,
    baseline=p.baseline,
    seed=p.seed,
    n_boot=p.n_boot,
    min_patients=p.min_patients,
    interaction_test=p.interaction_test,
    n_perm=p.interaction_n_perm,
)
write_tsv(models, sm.output.models)
inter = models[models["term"] == "interaction"]
for r in inter.itertuples():
    log.info(
        "%s (%s): interaction estimate %.3g, p = %.3g",
        r.signature,
        r.score_method,
        r.estimate,
        r.pvalue,
    )
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
