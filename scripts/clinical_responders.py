"""Rule clinical_responders: define responders (timelines were checked at validation)."""

from rhlh.clinical.responders import define_responders
from rhlh.contract.timeline import PATIENT_DAY_COLUMNS
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_validated
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
patients = read_validated(sm.input.patients, PATIENT_DAY_COLUMNS)
responses = read_validated(sm.input.responses, ["day"])
resp = define_responders(patients, responses, p.definition, horizon=p.horizon)
write_tsv(resp, sm.output[0])
log.info(
    "responder definition %s: %d of %d patients are responders",
    p.definition,
    int(resp["responder"].sum()),
    len(resp),
)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
