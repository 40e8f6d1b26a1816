"""Rule report_tables: key result tables as HTML pages, readable in the report (not only
downloadable as TSV)."""

from rhlh import tables
from rhlh.io import atomic_path
from rhlh.logs import setup_logging
from rhlh.report import html_table

sm = snakemake  # noqa: F821
log = setup_logging(sm)
readers = {"associations": tables.read_associations, "cytokine_models": tables.read_model_table}
for name, path in sm.input.items():
    title, max_rows, source = sm.params.pages[name]
    df = readers.get(name, tables.read_result)(path)
    if name == "associations":  # the strongest first, as in the forest plot
        df = df.sort_values(["pvalue", "feature", "measure", "test"], na_position="last")
    out = sm.output[name]
    tmp = atomic_path(out)
    tmp.write_text(html_table(df, title, f"The full table is {source}.", max_rows=max_rows))
    tmp.replace(out)
    log.info("%s: %d rows -> %s", name, len(df), out)
