"""Rule clinical_responders: check the clinical timeline, then define responders."""

from rhlh.clinical import (
    PATIENT_DAY_COLUMNS,
    check_clinical_consistency,
    define_responders,
    read_validated,
)
from rhlh.io import write_tsv
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
patients = read_validated(sm.input.patients, PATIENT_DAY_COLUMNS)
responses = read_validated(sm.input.responses, ["day"])
check_clinical_consistency(patients, responses, p.files)
resp = define_responders(patients, responses, p.definition, horizon=p.horizon)
write_tsv(resp, sm.output[0])
log.info(
    "responder definition %s: %d of %d patients are responders",
    p.definition,
    int(resp["responder"].sum()),
    len(resp),
)
