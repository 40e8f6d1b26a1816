# Stage: association of signatures, cytokines and LRT top genes with clinical response
# (baseline, early change, AUC to D28, trajectory), figures.

RESP = config["response"]
# upstream tables of the associations by input name: each is an input when some rule of the
# workflow writes it; with an LRT table, so is the expression its genes are read from (the
# normalized matrix, else log2-CPM of the validated raw counts)
RESP_UPSTREAM = {
    "scores": res("signatures/scores.tsv"),
    "signature_models": res("signatures/mixed_models.tsv"),
    "cytokines": res("cytokines/values.tsv"),
    "cytokine_models": res("cytokines/mixed_models.tsv"),
    "lrt_time": res("de/lrt_time.tsv"),
    "lrt_time_by_response": res("de/lrt_time_by_response.tsv"),
}
RESP_LRT = [RESP_UPSTREAM["lrt_time"], RESP_UPSTREAM["lrt_time_by_response"]]
RESP_EXPRESSION = [
    res("expression/normalized.h5ad"),
    res("inputs/validated/counts.h5ad"),
]


rule response_associations:
    input:
        unpack(
            lambda wc: {
                "responders": res("clinical/responders.tsv"),
                **{k: p for k, p in RESP_UPSTREAM.items() if produced(p)},
                **(
                    {"expression": produced(*RESP_EXPRESSION)[0]}
                    if produced(*RESP_LRT)
                    else {}
                ),
            }
        ),
    output:
        table=report(
            res("response/associations.tsv"),
            caption="../report/response_associations.rst",
            category="Response",
        ),
        measures=res("response/patient_measures.tsv"),
        values=res("response/feature_values.tsv"),
        versions=vers("response_associations"),
    log:
        logp("response_associations"),
    benchmark:
        bench("response_associations")
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
        score_method=RESP["score_method"],
        early_visits=RESP["early_visits"],
        auc_end=RESP["auc_end"],
        auc_of=RESP["auc_of"],
        n_top_genes=RESP["n_top_genes"],
        expression_layer=RESP["expression_layer"],
        skip_uninformative=RESP["skip_uninformative_cytokines"],
        n_boot=RESP["n_boot"],
        n_perm=RESP["n_perm"],
        exact_max_arrangements=RESP["exact_max_arrangements"],
        min_per_group=RESP["min_per_group"],
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
    benchmark:
        bench("response_figures")
    conda:
        "../../envs/response.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        baseline=config["baseline_visit"],
        early_visits=RESP["early_visits"],
        auc_end=RESP["auc_end"],
        forest_top=RESP["forest_top"],
        early_top=RESP["early_top"],
        heatmap_top=RESP["heatmap_top"],
        fdr=RESP["fdr"],
    script:
        "../../scripts/response_figures.py"


TARGETS["response"] = [
    res("response/associations.tsv"),
    res("response/patient_measures.tsv"),
    res("response/figures/auc_forest.png"),
    res("response/figures/early_change.png"),
    res("response/figures/effect_heatmap.png"),
]
