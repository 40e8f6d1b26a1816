"""Rule response_associations: per-patient measures and their association with response."""

import anndata as ad
import pandas as pd

from rhlh import response as rs
from rhlh import tables
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.longitudinal import response_groups_note
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
inp = dict(sm.input.items())


responders = tables.read_responders(inp["responders"])
note = response_groups_note(
    responders,
    "the responder vs non-responder tests (Mann-Whitney AUC, logistic), written without "
    "statistics with the reason in 'note'",
    p.min_per_group,
)
if note:
    log.warning(note)
features, models = {}, {}
if "scores" in inp:
    features["signature"] = rs.signature_long(tables.read_scores(inp["scores"]), p.score_method)
if "signature_models" in inp:
    models["signature"] = tables.read_model_table(inp["signature_models"])
if "cytokines" in inp:
    values = tables.read_cytokine_values(inp["cytokines"])
    features["cytokine"] = rs.cytokine_long(values, skip_uninformative=p.skip_uninformative)
if "cytokine_models" in inp:
    models["cytokine"] = tables.read_model_table(inp["cytokine_models"])
lrts = {k: tables.read_de_table(inp[k]) for k in ("lrt_time", "lrt_time_by_response") if k in inp}
if lrts:
    genes = rs.top_lrt_genes(lrts, n_top=p.n_top_genes)
    adata = ad.read_h5ad(inp["expression"])
    layer = p.expression_layer if p.expression_layer in adata.layers else None
    if str(inp["expression"]).endswith("normalized.h5ad") and layer is None:
        log.warning("layer %r not in %s: using log2-CPM", p.expression_layer, inp["expression"])
    log.info(
        "genes: top %d per LRT -> %d genes, expression %s (%s)",
        p.n_top_genes,
        len(genes),
        inp["expression"],
        layer or "log2-CPM of raw counts",
    )
    features["gene"] = rs.gene_long(adata, genes, layer=layer)
for family in ("signature", "cytokine", "gene"):
    if family not in features:
        log.warning("no %s input in this workflow: family left out", family)

table = rs.response_associations(
    features,
    responders,
    p.visits,
    baseline=p.baseline,
    early_visits=p.early_visits,
    auc_end=p.auc_end,
    auc_of=p.auc_of,
    models=models,
    score_method=p.score_method,
    seed=p.seed,
    n_boot=p.n_boot,
    n_perm=p.n_perm,
    exact_max=p.exact_max_arrangements,
    min_per_group=p.min_per_group,
)
write_tsv(table, sm.output.table)

measures = []
for family, long in features.items():
    m = rs.patient_measures(long, p.visits, p.baseline, p.early_visits, p.auc_end, p.auc_of)
    measures.append(m.assign(family=family))
cols = ["family", "feature", "measure", "patient_id", "value"]
measures = pd.concat(measures, ignore_index=True)[cols] if measures else pd.DataFrame(columns=cols)
write_tsv(measures, sm.output.measures)
values = [v.assign(family=f) for f, v in features.items()]
vcols = ["family", "feature", "sample_id", "patient_id", "visit", "day", "value"]
values = pd.concat(values, ignore_index=True) if values else pd.DataFrame(columns=vcols)
write_tsv(
    values.reindex(columns=vcols).sort_values(
        ["family", "feature", "patient_id", "day"], kind="mergesort"
    ),
    sm.output.values,
)

mw = table[table["test"] == "mann_whitney"]
log.info(
    "%d rows; %d feature x measure Mann-Whitney tests, %d with FDR < 0.05",
    len(table),
    len(mw),
    int((mw["padj"] < 0.05).sum()),
)
for r in rs.top_features(table, 10).itertuples(index=False):
    log.info(
        "top: %s (%s) %s: AUC %.2f [%.2f, %.2f], p = %.3g, padj = %.3g",
        r.feature,
        r.family,
        r.measure,
        r.auc,
        r.ci_low,
        r.ci_high,
        r.pvalue,
        r.padj,
    )
not_conv = table[(table["test"] == "logistic") & ~table["converged"].astype(bool)]
if len(not_conv):
    log.info(
        "%d logistic fits not reported as converged (separation / too few patients)", len(not_conv)
    )
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
