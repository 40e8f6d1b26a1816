# Cluster execution (docs/cluster.md). `localrules` only records names and Snakemake checks them
# once every rule file is read, so it may name rules that later includes declare. The rules
# listed run on the submit host instead of as SLURM jobs: they take seconds, and a cluster job
# would spend longer starting Python and waiting for status polls than working. The heavy rules
# (ingest_counts, expression_*, de_fit, signatures_score/models/enrichment, cytokines_models,
# response_associations) stay cluster jobs; their resources are in the profiles.
import os
import sys

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


def _slurm_in_use():
    """The SLURM profile (its default resources name slurm_partition) or --executor slurm."""
    args = getattr(workflow.resource_settings.default_resources, "args", None) or []
    if any("slurm_partition" in str(arg) for arg in args):
        return True
    argv = sys.argv[1:]
    return any(
        a in ("--executor=slurm", "-e=slurm")
        or (a in ("--executor", "-e") and argv[i + 1 : i + 2] == ["slurm"])
        for i, a in enumerate(argv)
    )


def _check_slurm_threads():
    """Stop at parse time when a cluster job asks more threads than a node of the partition
    has (RHLH_SLURM_MAX_CPUS): SLURM would keep it PENDING (PartitionConfig) forever."""
    limit = os.getenv("RHLH_SLURM_MAX_CPUS", "").strip()
    if not workflow.is_main_process or not limit or not _slurm_in_use():
        return
    if not limit.isdigit() or int(limit) < 1:
        raise WorkflowError(
            f"RHLH_SLURM_MAX_CPUS={limit!r}: give the CPUs of one node of the partition, "
            "a whole number (see docs/cluster.md)."
        )
    limit = int(limit)
    cap = workflow.resource_settings.max_threads
    too_many = {}
    for job_spec in workflow.rules:
        if job_spec.name in workflow._localrules:
            continue  # runs on the submit host with local-cores
        cores = job_spec.resources["_cores"] if "_cores" in job_spec.resources else None
        threads = getattr(cores, "value", None)
        if not isinstance(threads, int):
            continue  # a function of the job: not known before the DAG is built
        if cap is not None:
            threads = min(threads, cap)
        if threads > limit:
            too_many[job_spec.name] = threads
    if too_many:
        asked = ", ".join(f"{name} {t}" for name, t in sorted(too_many.items()))
        fix = " ".join(f"{name}={limit}" for name in sorted(too_many))
        raise WorkflowError(
            f"Threads asked exceed RHLH_SLURM_MAX_CPUS={limit} (the CPUs of one node): "
            f"{asked}. SLURM would leave these jobs PENDING (PartitionConfig) forever. Lower "
            f"them with --set-threads {fix} (or --max-threads {limit}), or in "
            "profiles/slurm/config.yaml (set-threads). See docs/cluster.md."
        )


_check_slurm_threads()
