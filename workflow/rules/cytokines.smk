# Stage: cytokines. Censoring and plate handling, change from baseline, mixed models by
# response, repeated-measures correlation with the signature scores, figures.

CYTO = config.get("cytokines", {})


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
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        visits=config["visits"],
        substitution=CYTO.get("substitution", "lloq/sqrt2"),
        uninformative=CYTO.get("uninformative_fraction", 0.5),
        plate_adjustment=CYTO.get("plate_adjustment", "none"),
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
    log:
        logp("cytokines_models"),
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
        seed=config["seed"],
        n_boot=CYTO.get("n_boot", 200),
        min_patients=CYTO.get("min_patients", 3),
        interaction_test=CYTO.get("interaction_test", "wald_f"),
        skip_uninformative=CYTO.get("skip_uninformative", True),
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
    log:
        logp("cytokines_rmcorr"),
    conda:
        "../../envs/cytokines.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        methods=CYTO.get("rmcorr_methods", ["ulm"]),
        min_patients=CYTO.get("min_patients", 3),
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


# the rmcorr table needs the signature scores: only a target when the Snakefile includes the
# signatures stage (read from the Snakefile, so the order of include lines does not matter)
CYTO_WITH_SIGNATURES = "rules/signatures.smk" in (BASE / "Snakefile").read_text()

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
] + ([res("cytokines/cytokine_signature_rmcorr.tsv")] if CYTO_WITH_SIGNATURES else [])
