# Stage: cytokines. Censoring and plate handling, change from baseline, mixed models by
# response, repeated-measures correlation with the signature scores, figures.

CYTO = config["cytokines"]


rule cytokines_values:
    input:
        cytokines=res("inputs/validated/cytokines.tsv"),
        samples=res("inputs/validated/samples.tsv"),
    output:
        values=report(
            res("cytokines/values.tsv"),
            caption="../report/cytokines_values.rst",
            category="Cytokines",
        ),
        censoring=report(
            res("cytokines/censoring.tsv"),
            caption="../report/cytokines_censoring.rst",
            category="Cytokines",
        ),
        plates=res("cytokines/plates.tsv"),
    log:
        logp("cytokines_values"),
    benchmark:
        bench("cytokines_values")
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        visits=config["visits"],
        substitution=CYTO["substitution"],
        uninformative=CYTO["uninformative_fraction"],
        plate_adjustment=CYTO["plate_adjustment"],
    script:
        "../../scripts/cytokines_values.py"


rule cytokines_models:
    input:
        values=res("cytokines/values.tsv"),
        responders=res("clinical/responders.tsv"),
    output:
        models=report(
            res("cytokines/mixed_models.tsv"),
            caption="../report/cytokines_models.rst",
            category="Cytokines",
        ),
        change=res("cytokines/change_from_baseline.tsv"),
        tobit=res("cytokines/tobit_means.tsv"),
        versions=vers("cytokines_models"),
    log:
        logp("cytokines_models"),
    benchmark:
        bench("cytokines_models")
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=120,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
        seed=config["seed"],
        n_boot=CYTO["n_boot"],
        min_patients=CYTO["min_patients"],
        interaction_test=CYTO["interaction_test"],
        interaction_n_perm=CYTO["interaction_n_perm"],
        skip_uninformative=CYTO["skip_uninformative"],
    script:
        "../../scripts/cytokines_models.py"


rule cytokines_rmcorr:
    input:
        values=res("cytokines/values.tsv"),
        scores=res("signatures/scores.tsv"),
    output:
        report(
            res("cytokines/cytokine_signature_rmcorr.tsv"),
            caption="../report/cytokines_rmcorr.rst",
            category="Cytokines",
        ),
        versions=vers("cytokines_rmcorr"),
    log:
        logp("cytokines_rmcorr"),
    benchmark:
        bench("cytokines_rmcorr")
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=CYTO["rmcorr_methods"],
        min_patients=CYTO["min_patients"],
    script:
        "../../scripts/cytokines_rmcorr.py"


rule cytokines_figures:
    input:
        values=res("cytokines/values.tsv"),
        change=res("cytokines/change_from_baseline.tsv"),
        responders=res("clinical/responders.tsv"),
    output:
        spaghetti=report(
            directory(res("cytokines/figures/spaghetti")),
            patterns=["{name}.png"],
            caption="../report/cytokines_spaghetti.rst",
            category="Cytokines",
        ),
        means=report(
            res("cytokines/figures/group_means.png"),
            caption="../report/cytokines_group_means.rst",
            category="Cytokines",
        ),
        heatmap=report(
            res("cytokines/figures/change_heatmap.png"),
            caption="../report/cytokines_heatmap.rst",
            category="Cytokines",
        ),
    log:
        logp("cytokines_figures"),
    benchmark:
        bench("cytokines_figures")
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
    script:
        "../../scripts/cytokines_figures.py"


TARGETS["cytokines"] = [
    res("cytokines/values.tsv"),
    res("cytokines/censoring.tsv"),
    res("cytokines/plates.tsv"),
    res("cytokines/change_from_baseline.tsv"),
    res("cytokines/mixed_models.tsv"),
    res("cytokines/tobit_means.tsv"),
    res("cytokines/figures/spaghetti"),
    res("cytokines/figures/group_means.png"),
    res("cytokines/figures/change_heatmap.png"),
    # the rmcorr table needs the signature scores: a target only when some rule writes them
    lambda: (
        [res("cytokines/cytokine_signature_rmcorr.tsv")]
        if produced(res("signatures/scores.tsv"))
        else []
    ),
]
