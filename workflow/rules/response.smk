# Stage: association of signatures, cytokines and LRT top genes with clinical response
# (baseline, early change, AUC to D28, trajectory), figures.

import rhlh.response as _resp_lib

RESP = config.get("response", {})


rule response_associations:
    input:
        # upstream tables of the stages present in this workflow (looked up after every
        # include, so the order of include lines does not matter)
        unpack(
            lambda wc: _resp_lib.workflow_inputs(
                res, {str(o) for r in workflow.rules for o in r.output}
            )
        ),
    output:
        table=report(
            res("response/associations.tsv"),
            caption="../report/response_associations.rst",
            category="Response",
        ),
        measures=res("response/patient_measures.tsv"),
        values=res("response/feature_values.tsv"),
    log:
        logp("response_associations"),
    conda:
        "../../envs/response.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=60,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
        seed=config["seed"],
        score_method=RESP.get("score_method", "ulm"),
        early_visits=RESP.get("early_visits", ["D7", "D14"]),
        auc_end=RESP.get("auc_end", "D28"),
        auc_of=RESP.get("auc_of", "change"),
        n_top_genes=RESP.get("n_top_genes", 25),
        expression_layer=RESP.get("expression_layer", "vst"),
        skip_uninformative=RESP.get("skip_uninformative_cytokines", True),
        n_boot=RESP.get("n_boot", 2000),
        n_perm=RESP.get("n_perm", 9999),
        min_per_group=RESP.get("min_per_group", 3),
    script:
        "../../scripts/response_associations.py"


rule response_figures:
    input:
        table=res("response/associations.tsv"),
        values=res("response/feature_values.tsv"),
        responders=res("clinical/responders.tsv"),
    output:
        forest=report(
            res("response/figures/auc_forest.png"),
            caption="../report/response_forest.rst",
            category="Response",
        ),
        early=report(
            res("response/figures/early_change.png"),
            caption="../report/response_early_change.rst",
            category="Response",
        ),
        heatmap=report(
            res("response/figures/effect_heatmap.png"),
            caption="../report/response_heatmap.rst",
            category="Response",
        ),
    log:
        logp("response_figures"),
    conda:
        "../../envs/response.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        baseline=config["baseline_visit"],
        early_visits=RESP.get("early_visits", ["D7", "D14"]),
        auc_end=RESP.get("auc_end", "D28"),
        forest_top=RESP.get("forest_top", 20),
        early_top=RESP.get("early_top", 6),
        heatmap_top=RESP.get("heatmap_top", 40),
        fdr=RESP.get("fdr", 0.05),
    script:
        "../../scripts/response_figures.py"


TARGETS["response"] = [
    res("response/associations.tsv"),
    res("response/patient_measures.tsv"),
    res("response/figures/auc_forest.png"),
    res("response/figures/early_change.png"),
    res("response/figures/effect_heatmap.png"),
]
