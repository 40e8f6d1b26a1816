"""Rule report_summary: the landing figure and the headline table of the report."""

from rhlh import tables
from rhlh.figures.report import summary_figure
from rhlh.io import atomic_path, save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.longitudinal import change_from_baseline
from rhlh.report import headline, html_table

sm = snakemake  # noqa: F821
log = setup_logging(sm)
responders = tables.read_responders(sm.input.responders)
resp = responders.assign(responder=responders["responder"].eq(True))
scores = sig_change = None  # no signature stage in this run (no gene set matched the counts)
if "scores" in sm.input.keys():
    scores = tables.read_scores(sm.input.scores)
    scores = scores[scores["method"] == sm.params.method].merge(
        resp[["patient_id", "responder"]], on="patient_id", how="left"
    )
    sig_change = change_from_baseline(scores, "score", "signature", baseline=sm.params.baseline)
cyto = tables.read_cytokine_change(sm.input.cytokines).rename(columns={"log10_change": "change"})
cyto = cyto.drop(columns=["responder"]).merge(resp[["patient_id", "responder"]], on="patient_id")
assoc = tables.read_associations(sm.input.associations)
table = headline(
    tables.read_result(sm.input.summary),
    tables.read_result(sm.input.endpoints),
    tables.read_result(sm.input.simon),
    responders,
    sig_change,
    cyto,
    assoc,
    sm.params.visits,
    sm.params.baseline,
)
write_tsv(table, sm.output.headline)
tmp = atomic_path(sm.output.headline_html)
tmp.write_text(html_table(table, "Headline findings", "Definitions: see the methods page."))
tmp.replace(sm.output.headline_html)
save_figure(summary_figure(scores, cyto, assoc, sm.params.visits), sm.output.figure)
log.info("headline:\n%s", table.to_string(index=False))
