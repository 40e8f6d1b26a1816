"""Rule report_methods: versions, designs and tests, response definition, censoring, seed."""

from rhlh.io import atomic_path
from rhlh.logs import setup_logging
from rhlh.report import methods_html, package_versions

sm = snakemake  # noqa: F821
log = setup_logging(sm)
tmp = atomic_path(sm.output[0])
tmp.write_text(methods_html(sm.params.config, package_versions()))
tmp.replace(sm.output[0])
log.info("methods page written")
