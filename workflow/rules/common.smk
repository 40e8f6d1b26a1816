# Shared by every stage file: config and input validation at parse time, paths, targets.
import sys
from pathlib import Path

from snakemake.utils import validate

# the repository root, from this file's own location (so that the workflow also works when
# imported as a module by another Snakefile, whose basedir is elsewhere)
BASE = Path(workflow.current_basedir).resolve().parents[1]
sys.path.insert(0, str(BASE / "scripts"))

from rhlh.workflow_support import (
    cell_types,
    check_inputs_once,
    has_cell_types,
)  # noqa: E402

validate(config, BASE / "workflow/schemas/config.schema.yaml")

RESULTS = config["results"].rstrip("/")
# shipped gene sets are found relative to the workflow, a user's relative to the working dir
config["genesets"] = [
    g if Path(g).is_absolute() or Path(g).exists() else str(BASE / g)
    for g in config.get("genesets", [])
]
# Validation runs once per change of inputs/config/code, before any job, in the main process;
# a defect stops the run with one message and writes nothing but the validation log.
INPUTS = check_inputs_once(config, RESULTS, main_process=workflow.is_main_process)
HAS_CELL_TYPES = has_cell_types(INPUTS["counts"])
# pseudobulk cell types {path-safe name: name in obs["cell_type"]}, empty for bulk counts
CELL_TYPES = cell_types(INPUTS["counts"])
TABLES = [
    t
    for t in ("samples", "patients", "responses", "cytokines", "pk", "events")
    if INPUTS[t]
]

# Each stage file adds its final outputs here, as TARGETS["stage"] = [...]
TARGETS = {}


def res(path):
    """A path under the results root."""
    return f"{RESULTS}/{path}"


def logp(rule_name, name="log.txt"):
    """The log file of a job, <results>/logs/<rule name>/<name>."""
    return f"{RESULTS}/logs/{rule_name}/{name}"


def all_targets(wildcards):
    return [f for files in TARGETS.values() for f in files]


wildcard_constraints:
    table="|".join(TABLES),
    cell_type="[A-Za-z0-9_.-]+",
