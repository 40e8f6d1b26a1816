"""Rule response_figures: AUC forest plot, early-change dot plots, effect heatmap."""

from rhlh import tables
from rhlh.figures import response as fr
from rhlh.io import save_figure
from rhlh.logs import setup_logging
from rhlh.response import measure_names

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
table = tables.read_associations(sm.input.table)
values = tables.read_feature_values(sm.input.values)
responders = tables.read_responders(sm.input.responders)
long_by_family = {f: g.drop(columns="family") for f, g in values.groupby("family")}
measures = measure_names(p.early_visits, p.auc_end)

save_figure(fr.plot_auc_forest(table, p.forest_top), sm.output.forest)
save_figure(
    fr.plot_early_change(
        long_by_family, responders, table, p.baseline, p.early_visits, k=p.early_top
    ),
    sm.output.early,
)
save_figure(fr.plot_effect_heatmap(table, measures, k=p.heatmap_top, fdr=p.fdr), sm.output.heatmap)
log.info("figures written")
