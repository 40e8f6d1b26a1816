# Cluster execution (docs/cluster.md). `localrules` only records names and Snakemake checks them
# once every rule file is read, so it may name rules that later includes declare. The rules
# listed run on the submit host instead of as SLURM jobs: they take seconds, and a cluster job
# would spend longer starting Python and waiting for status polls than working. The heavy rules
# (ingest_counts, expression_*, de_fit, signatures_score/models/enrichment, cytokines_models,
# response_associations) stay cluster jobs; their resources are in the profiles.
import os

from snakemake.exceptions import WorkflowError


localrules:
    all,
    validated_table,
    input_summary,
    clinical_responders,
    clinical_endpoints,
    clinical_pk,
    cytokines_values,
    cytokines_rmcorr,
    cytokines_figures,
    signatures_figures,
    de_figures,
    response_figures,
    report_summary,
    report_methods,
    report_tables,


def _check_slurm_site_settings():
    """Stop early when the SLURM profile refers to a site variable the user has not set."""
    # The executor is not known while the Snakefile is parsed; a "$RHLH_SLURM_" left in the
    # default resources is the SLURM profile's signature, so it is checked in any mode.
    if not workflow.is_main_process:
        return
    args = workflow.resource_settings.default_resources
    args = getattr(args, "args", None) or []
    # An unset variable would reach sbatch as the literal text "$RHLH_SLURM_...".
    missing = sorted(
        {
            var
            for var in ("RHLH_SLURM_PARTITION", "RHLH_SLURM_ACCOUNT")
            if any(f"${var}" in str(arg) for arg in args) and var not in os.environ
        }
    )
    if missing:
        raise WorkflowError(
            "The SLURM profile takes the partition and account from the environment: "
            + ", ".join(f"export {v}=..." for v in missing)
            + " (once, e.g. in ~/.bashrc; RHLH_SLURM_ACCOUNT may be empty), or write the "
            "values into profiles/slurm/config.yaml. See docs/cluster.md."
        )


_check_slurm_site_settings()
