"""Rule signatures_enrichment: competitive gene-set tests on every DE table."""

from pathlib import Path

from rhlh.contract.genesets import load_gene_sets
from rhlh.io import write_tsv
from rhlh.logs import setup_logging
from rhlh.signatures.enrichment import competitive_tests
from rhlh.tables import read_de_table

sm = snakemake  # noqa: F821
log = setup_logging(sm)
p = sm.params
sets, _ = load_gene_sets(list(sm.input.gmt))
tables, directional = {}, {}
for path in list(sm.input.visit) + list(sm.input.lrt):
    name = Path(path).name.removesuffix(".tsv")
    tables[name] = read_de_table(path)
    # Wald contrasts are signed; LRT statistics are not
    directional[name] = path in set(sm.input.visit)
    log.info(
        "%s: %d genes (%s)",
        name,
        len(tables[name]),
        "directional" if directional[name] else "non-directional",
    )
if not tables:
    log.warning("no DE table in this workflow: enrichment.tsv has a header only")
res = competitive_tests(
    tables,
    sets,
    methods=p.methods,
    n_perm=p.n_perm,
    seed=p.seed,
    min_genes=p.min_genes,
    directional=directional,
)
write_tsv(res, sm.output[0])
log.info("%d tests; %d with padj < 0.05", len(res), int((res["padj"] < 0.05).sum()))
