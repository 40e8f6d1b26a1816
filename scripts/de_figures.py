"""Rules de_figures and de_figures_cell_type: volcano and MA plot per visit, heatmap of
signature genes' log2FC by visit (of one cell type's pseudobulk when params has cell_type)."""

from rhlh.figures import de as fd
from rhlh.io import save_figure
from rhlh.logs import setup_logging
from rhlh.tables import read_de_table
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
prefix = f"{p.cell_type}: " if "cell_type" in p.keys() else ""
tabs = {
    v: fd.label_genes(read_de_table(f), p.alpha)
    for v, f in zip(p.visits, sm.input.visit, strict=True)
}
for (visit, tab), vpath, mpath in zip(tabs.items(), sm.output.volcano, sm.output.ma, strict=True):
    title = f"{prefix}{visit} vs {p.baseline}"
    if not fd.estimable(tab):
        log.warning("%s: no statistics, empty figures", title)
    else:
        n_sig = int(tab.significant.sum())
        n_in = int((tab.significant & tab.in_signature).sum())
        log.info("%s: %d genes with padj < %g, %d signature genes", title, n_sig, p.alpha, n_in)
    save_figure(fd.plot_volcano(tab, title, p.alpha, p.label_top), vpath)
    save_figure(fd.plot_ma(tab, title, p.alpha, p.label_top), mpath)
heatmap = fd.plot_signature_heatmap(tabs, p.baseline, p.alpha, p.heatmap_max_genes)
if prefix:
    heatmap.axes[0].set_title(prefix + heatmap.axes[0].get_title())
save_figure(heatmap, sm.output.heatmap)
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
