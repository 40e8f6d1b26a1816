"""Rule singlecell_composition: cells per sample x cell type after QC, proportions by visit and
response group, propeller-style transformed proportions in the shared mixed model."""

from rhlh import singlecell as sc
from rhlh import tables
from rhlh.figures import singlecell as fig_sc
from rhlh.io import save_figure, write_tsv
from rhlh.logs import setup_logging
from rhlh.versions import write_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
profiles = tables.read_profile_qc(sm.input.profiles)
samples = tables.read_samples(sm.input.samples)
responders = tables.read_responders(sm.input.responders[0]) if sm.input.responders else None
if responders is None:
    log.warning("no clinical stage: composition is modelled without response groups")
long = sc.composition_table(profiles, samples, responders, transform=p.transform)
write_tsv(long, sm.output.counts)
by_visit = sc.composition_by_visit(long, p.visits)
write_tsv(by_visit, sm.output.by_visit)
log.info(
    "composition: %d samples x %d cell types; mixed models (%s proportions, n_boot=%d)",
    long["sample_id"].nunique(),
    long["cell_type"].nunique(),
    p.transform,
    p.n_boot,
)
tests = sc.composition_tests(
    long,
    p.visits,
    p.baseline,
    seed=p.seed,
    n_boot=p.n_boot,
    min_patients=p.min_patients,
    n_perm=p.n_perm,
    transform=p.transform,
)
write_tsv(tests, sm.output.tests)
inter = tests[tests["term"] == "interaction"]
for row in inter.itertuples(index=False):
    log.info(
        "%s: responder minus non-responder change %.3f (%s), p %.3g, padj %.3g",
        row.cell_type,
        row.estimate,
        p.transform,
        row.pvalue,
        row.padj,
    )
figs = dict(
    zip(["composition_stacked", "composition_trajectories"], sm.output.figures, strict=True)
)
save_figure(fig_sc.plot_composition_stacked(by_visit, p.visits), figs["composition_stacked"])
save_figure(fig_sc.plot_composition_trajectories(long, tests), figs["composition_trajectories"])
write_versions(sm.output.versions, sm.rule)  # this environment's package versions
