"""Rule clinical_patients: the patient-flow table and figure and the swimmer plot."""

from rhlh.clinical.flow import patient_flow
from rhlh.contract import timeline
from rhlh.figures import clinical as clinical_figures
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.tables import read_result, read_samples, read_validated

sm = snakemake  # noqa: F821
log = setup_logging(sm)
patients = read_validated(sm.input.patients, timeline.PATIENT_DAY_COLUMNS)
responses = read_validated(sm.input.responses, ["day"])
samples = read_samples(sm.input.samples)

simon = read_result(sm.input.simon)
flow = patient_flow(patients, responses, sm.params.visits, sm.params.horizon, simon)
write_tsv(flow, sm.output.flow)
save_figure(clinical_figures.plot_patient_flow(flow), sm.output.flow_fig)
save_figure(clinical_figures.plot_swimmer(patients, responses, samples), sm.output.swimmer)
log.info("patient flow (%d steps) and swimmer plot of %d patients", len(flow), len(patients))
