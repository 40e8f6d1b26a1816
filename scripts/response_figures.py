"""Rule response_figures: AUC forest plot, early-change dot plots, effect heatmap."""

import pandas as pd

from rhlh import response as rs
from rhlh.io import save_figure
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
table = pd.read_csv(sm.input.table, sep="\t", dtype={"feature": str})
values = pd.read_csv(sm.input.values, sep="\t", dtype={"feature": str, "patient_id": str})
responders = pd.read_csv(sm.input.responders, sep="\t", dtype=str, keep_default_na=False)
long_by_family = {f: g.drop(columns="family") for f, g in values.groupby("family")}
measures = rs.measure_names(p.early_visits, p.auc_end)

save_figure(rs.plot_auc_forest(table, p.forest_top), sm.output.forest)
save_figure(
    rs.plot_early_change(
        long_by_family, responders, table, p.baseline, p.early_visits, k=p.early_top
    ),
    sm.output.early,
)
save_figure(rs.plot_effect_heatmap(table, measures, k=p.heatmap_top, fdr=p.fdr), sm.output.heatmap)
log.info("figures written")
