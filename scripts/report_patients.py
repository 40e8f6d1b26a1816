"""Rule report_patients: the patient-flow table and figure and the swimmer plot as one HTML
fragment with the images embedded, shown on the report's landing page and in 0. Summary."""

from pathlib import Path

from rhlh.io import atomic_path
from rhlh.logs import setup_logging
from rhlh.report import patients_html
from rhlh.tables import read_result

sm = snakemake  # noqa: F821
log = setup_logging(sm)
flow = read_result(sm.input.flow)
figures = [
    ("Patient flow", Path(sm.input.flow_fig).read_bytes(), sm.params.captions["flow"]),
    ("Swimmer plot", Path(sm.input.swimmer).read_bytes(), sm.params.captions["swimmer"]),
]
out = sm.output.page
tmp = atomic_path(out)
tmp.write_text(patients_html(flow, figures))
tmp.replace(out)
log.info("patients page: %d flow steps and %d figures -> %s", len(flow), len(figures), out)
