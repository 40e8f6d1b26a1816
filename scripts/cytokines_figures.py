"""Rule cytokines_figures: spaghetti per analyte, group means by visit, median change heatmap."""

from pathlib import Path

from rhlh import tables
from rhlh.figures import cytokines as fc
from rhlh.io import file_stems, save_figure
from rhlh.logs import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
values = tables.read_cytokine_values(sm.input.values)
change = tables.read_cytokine_change(sm.input.change)
responders = tables.read_responders(sm.input.responders)
values, visits = fc.with_groups(values, responders, p.visits)
analytes = sorted(values["analyte"].unique())

out_dir = Path(sm.output.spaghetti)
out_dir.mkdir(parents=True, exist_ok=True)
# analyte names come from the lab's file: they name a figure only through file_stems
stems = file_stems(analytes)
for a in analytes:
    if stems[a] != a:
        log.info("analyte %r: figure %s.png", a, stems[a])
    fig = fc.plot_spaghetti(values[values["analyte"] == a], a, visits)
    save_figure(fig, out_dir / f"{stems[a]}.png")
save_figure(fc.plot_group_means(values, visits), sm.output.means)
save_figure(fc.plot_change_heatmap(change, visits, p.baseline), sm.output.heatmap)
log.info("figures for %d analytes", len(analytes))
