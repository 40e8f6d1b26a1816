# R-HLH: omics and cytokine analysis of the ruxolitinib first-line HLH trial (NCT05762640).
# Thin entry point: config validation, input contract check, rule files, targets.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


# stages in pipeline order (a stage asks whether another one runs with produced(), common.smk)
include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/singlecell.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/de.smk"
include: "workflow/rules/signatures.smk"
include: "workflow/rules/cytokines.smk"
include: "workflow/rules/response.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/cluster.smk"


rule all:
    default_target: True
    input:
        all_targets,
