# Shared by every stage file: config and input validation at parse time, paths, targets,
# and produced(), the one way a rule asks whether another stage is part of the workflow.
import sys
from pathlib import Path

from snakemake.io import strip_wildcard_constraints
from snakemake.utils import validate

# the repository root, from this file's own location (so that the workflow also works when
# imported as a module by another Snakefile, whose basedir is elsewhere)
BASE = Path(workflow.current_basedir).resolve().parents[1]
sys.path.insert(0, str(BASE / "scripts"))

from rhlh.contract.counts import count_input_files  # noqa: E402
import rhlh.resources  # noqa: E402
from rhlh.workflow_support import (
    cell_types,
    check_inputs_once,
    has_cell_types,
    signatures_off,
)  # noqa: E402
from rhlh.singlecell import is_single_cell_h5ad  # noqa: E402
from rhlh.run_lock import ResultsBusy, lock_results  # noqa: E402

# the schema holds every default (config/config.yaml shows the same values): keys a config
# leaves out are filled in here, so the rule files read config[...] without fallbacks
validate(config, BASE / "workflow/schemas/config.schema.yaml", set_default=True)

RESULTS = config["results"].rstrip("/")
# the shipped example cohort is found relative to the workflow too (a deployed copy runs it
# with no edit); a user's cohort is relative to the working directory
if not Path(config["cohort"]).exists() and (BASE / config["cohort"]).exists():
    config["cohort"] = str(BASE / config["cohort"])
# shipped gene sets are found relative to the workflow, a user's relative to the working dir
# (the names as configured label the gene sets' source in the tables, wherever the workflow is)
GENESET_LABELS = list(config["genesets"])
config["genesets"] = [
    g if Path(g).is_absolute() or Path(g).exists() else str(BASE / g)
    for g in config["genesets"]
]
# One run per results root: the main process locks <results>/logs/run.lock until it ends
# (Snakemake's own .snakemake/locks is shared by every results root of this working directory
# and removed whole by any run that ends; rhlh.run_lock says more)
if workflow.is_main_process:
    try:
        lock_results(RESULTS, command=" ".join(sys.argv)[:300])
    except ResultsBusy as exc:
        print(f"\n{exc}\n", file=sys.stderr)
        sys.exit(1)
# Validation runs once per change of inputs/config/code, before any job, in the main process;
# a defect stops the run with one message and writes nothing but the validation log.
INPUTS = check_inputs_once(config, RESULTS, main_process=workflow.is_main_process)
# stages the validation left out, {stage: why} (a GMT that matches no gene of the counts stops
# the signature stage only): their rules are never asked for, produced() leaves their paths out
STAGES_OFF = {
    stage: why for stage, why in {"signatures": signatures_off(RESULTS)}.items() if why
}
# one row per cell (obs sample_id, more rows than samples): cell QC and the singlecell stage
SINGLE_CELL = is_single_cell_h5ad(INPUTS["counts"])
HAS_CELL_TYPES = SINGLE_CELL and has_cell_types(INPUTS["counts"])
# pseudobulk cell types {path-safe name: name in obs["cell_type"]}, empty for bulk counts
CELL_TYPES = cell_types(INPUTS["counts"]) if SINGLE_CELL else {}
TABLES = [
    t
    for t in ("samples", "patients", "responses", "cytokines", "pk", "events")
    if INPUTS[t]
]

# Each stage file adds its final outputs here, as TARGETS["stage"] = [...]; an entry may be a
# function without arguments that returns a list of paths, called once every rule file is read
# (for a target that depends on another stage, see produced())
TARGETS = {}


def res(path):
    """A path under the results root."""
    return f"{RESULTS}/{path}"


def logp(rule_name, name="log.txt"):
    """The log file of a job, <results>/logs/<rule name>/<name>."""
    return f"{RESULTS}/logs/{rule_name}/{name}"


def bench(rule_name, name="bench.tsv"):
    """The benchmark file of a job (time, memory), <results>/logs/benchmarks/<rule>/<name>."""
    return f"{RESULTS}/logs/benchmarks/{rule_name}/{name}"


# the versions files of the rules that record theirs, {path pattern: always}; the methods page
# collects them (version_files())
VERSION_FILES = {}


def vers(rule_name, name=None, always=False):
    """The package versions a job's script ran with (rhlh.versions.write_versions), as the
    output `versions=vers("<rule>")`: <results>/logs/versions/<rule>.tsv, or
    <results>/logs/versions/<rule>/<name> for a rule with wildcards ("{cell_type}.tsv").
    The methods page asks for it when the rule writes one of the run's targets, or always
    (always=True: a rule every run needs, whose outputs are no target)."""
    path = f"{RESULTS}/logs/versions/" + (
        f"{rule_name}/{name}" if name else f"{rule_name}.tsv"
    )
    VERSION_FILES[path] = always or VERSION_FILES.setdefault(path, False)
    return path


def version_files():
    """The versions files of the jobs that write this run's targets (wildcards taken from the
    target), with the always ones; call it lazily (an input function)."""
    found = [p for p, always in VERSION_FILES.items() if always]
    for target in all_targets(None):
        for r in workflow.rules:
            if not r.is_producer(target):
                continue
            for f in r.output:
                # output patterns carry the wildcard constraints: {cell_type,[A-Za-z0-9_.-]+}
                pattern = strip_wildcard_constraints(str(f))
                if pattern in VERSION_FILES:
                    found.append(pattern.format(**r.get_wildcards(target)))
    return produced(*dict.fromkeys(found))


def produced(*paths):
    """The paths among these that some rule of this workflow writes; call it lazily (inside an
    input function or target function, after every include)."""
    off = tuple(res(f"{stage}/") for stage in STAGES_OFF)
    return [
        p
        for p in paths
        if not (off and p.startswith(off))
        and any(r.is_producer(p) for r in workflow.rules)
    ]


def stage_targets():
    """TARGETS with its function entries called: {stage: [paths]} (after every include)."""
    return {
        stage: [p for f in files for p in (f() if callable(f) else [f])]
        for stage, files in TARGETS.items()
    }


def all_targets(wildcards):
    """Every stage's final outputs (the input of the default target, all)."""
    return [p for files in stage_targets().values() for p in files]


wildcard_constraints:
    table="|".join(TABLES),
    cell_type="[A-Za-z0-9_.-]+",


# Memory (MB) and runtime (minutes) of the heavy rules follow their input: the samples x genes
# of the count matrix they read (the h5ad header), or the size of the delivery for the ingest
# (rhlh.resources, docs/cluster.md); a retry after running out of memory asks for more.
def _input_dims(input, cell_type=None):
    if cell_type is None:
        return rhlh.resources.h5ad_dims(input.counts)
    return rhlh.resources.h5ad_dims(input.counts, "cell_type", cell_type)


def mem_for(kind, per_cell_type=False):
    """A rule's mem_mb: rhlh.resources.memory_mb of the counts it reads, times the attempt."""

    def mem_mb(wildcards, input, attempt):
        ct = CELL_TYPES[wildcards.cell_type] if per_cell_type else None
        return rhlh.resources.memory_mb(kind, _input_dims(input, ct), attempt)

    return mem_mb


def runtime_for(kind, per_cell_type=False):
    """A rule's runtime: rhlh.resources.runtime_min of the counts it reads, on its threads."""

    def runtime(wildcards, input, threads, attempt):
        ct = CELL_TYPES[wildcards.cell_type] if per_cell_type else None
        return rhlh.resources.runtime_min(
            kind, _input_dims(input, ct), threads, attempt
        )

    return runtime
