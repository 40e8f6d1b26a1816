# Cluster execution (docs/cluster.md). `localrules` only records names and Snakemake checks them
# once every rule file is read, so it may name rules that later includes declare. The rules
# listed run on the submit host instead of as SLURM jobs: they take seconds, and a cluster job
# would spend longer starting Python and waiting for status polls than working. The heavy rules
# (ingest_counts, expression_*, de_fit, signatures_score/models/enrichment, cytokines_models,
# response_associations) stay cluster jobs; their resources are in the profiles.
import os
import re
import subprocess
import sys

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger


localrules:
    all,
    validated_table,
    input_summary,
    validation_warnings,
    clinical_responders,
    clinical_patients,
    clinical_endpoints,
    clinical_pk,
    cytokines_values,
    cytokines_rmcorr,
    cytokines_figures,
    signatures_figures,
    de_figures,
    de_cell_types_skipped,
    de_cell_types_figure,
    response_figures,
    report_summary,
    report_methods,
    report_tables,
    report_patients,


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


def _node_cpus():
    """(CPUs of the largest node of the partition, where the number comes from), or None:
    RHLH_SLURM_MAX_CPUS when set, else `sinfo` on the partition (RHLH_SLURM_PARTITION).
    """
    limit = os.getenv("RHLH_SLURM_MAX_CPUS", "").strip()
    if limit:
        if not limit.isdigit() or int(limit) < 1:
            raise WorkflowError(
                f"RHLH_SLURM_MAX_CPUS={limit!r}: give the CPUs of one node of the partition, "
                "a whole number (see docs/cluster.md)."
            )
        return int(limit), "RHLH_SLURM_MAX_CPUS"
    partition = os.getenv("RHLH_SLURM_PARTITION", "").strip()
    cmd = ["sinfo", "-h", "-N", "-o", "%c"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None  # no sinfo on this host: nothing known, nothing capped
    cpus = [int(m) for m in re.findall(r"^\s*(\d+)", out.stdout, flags=re.M)]
    if out.returncode != 0 or not cpus:
        return None
    return max(cpus), f"sinfo -p {partition or '(default partition)'}"


def _fit_threads_to_node():
    """Cap every job's threads at the CPUs of a node of the partition (as --max-threads does),
    so that a profile asking 4 threads runs on a 2-CPU node instead of leaving the job
    PENDING (PartitionConfig) forever; logs the rules whose threads were lowered."""
    if not workflow.is_main_process or not _slurm_in_use():
        return  # a cluster job gets --max-threads from the main process
    found = _node_cpus()
    if found is None:
        return
    cpus, source = found
    cap = workflow.resource_settings.max_threads
    if cap is not None and cap <= cpus:
        return  # --max-threads already fits the node
    lowered = {}
    for job_spec in workflow.rules:
        cores = job_spec.resources["_cores"] if "_cores" in job_spec.resources else None
        threads = getattr(cores, "value", None)
        if isinstance(threads, int) and threads > cpus:
            lowered[job_spec.name] = threads
    # the jobs' threads are min(threads, max_threads); remote jobs get --max-threads too
    workflow.resource_settings.max_threads = cpus
    if lowered and workflow.is_main_process:
        logger.info(
            f"Threads capped at {cpus}, the CPUs of one node ({source}): "
            + ", ".join(f"{name} {t} -> {cpus}" for name, t in sorted(lowered.items()))
        )


_fit_threads_to_node()
