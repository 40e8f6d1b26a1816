"""Rule report_methods: versions, designs and tests, response definition, censoring, seed."""

from rhlh.io import atomic_path
from rhlh.logs import setup_logging
from rhlh.report import methods_html
from rhlh.tables import read_versions
from rhlh.versions import collect_versions, imported_versions, versions_table

sm = snakemake  # noqa: F821
log = setup_logging(sm)
# what each rule's script recorded in its own environment, and this rule's own
tables = [read_versions(p) for p in sm.input.versions]
tables.append(versions_table(sm.rule, imported_versions()))
versions = collect_versions(tables)
log.info("versions of %d rule jobs: %d package versions", len(tables), len(versions))
tmp = atomic_path(sm.output[0])
tmp.write_text(methods_html(sm.params.config, versions))
tmp.replace(sm.output[0])
log.info("methods page written")
