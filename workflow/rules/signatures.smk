# Stage: JAK-STAT / IFN-gamma gene-set signatures. Per-sample scores, longitudinal mixed
# models by response, competitive gene-set tests on the DE results, figures.

SIG = config.get("signatures", {})
SIG_GMT = [str(BASE / p) for p in config.get("genesets", [])]
SIG_BASELINE = config["baseline_visit"]
SIG_DE_VISITS = [v for v in config["visits"] if v != SIG_BASELINE]


# DE tables (Wald visit contrasts, LRTs) that enrichment reads when some rule writes them;
# checked lazily, so the order of the include lines does not matter
SIG_DE = {
    "visit": [res(f"de/visit/{v}_vs_{SIG_BASELINE}.tsv") for v in SIG_DE_VISITS],
    "lrt": [res("de/lrt_time.tsv"), res("de/lrt_time_by_response.tsv")],
}


rule signatures_score:
    input:
        counts=res("inputs/validated/counts.h5ad"),
        gmt=SIG_GMT,
    output:
        scores=report(
            res("signatures/scores.tsv"),
            caption="../report/signatures_scores.rst",
            category="Signatures",
        ),
        h5ad=res("signatures/scores.h5ad"),
        missing=res("signatures/missing_genes.tsv"),
        methods=res("signatures/methods.tsv"),
    log:
        logp("signatures_score"),
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=20,
    params:
        methods=SIG.get(
            "methods", ["ulm", "singscore", "aucell", "mean_logcpm", "mean_z_cohort"]
        ),
        min_genes=SIG.get("min_genes", 5),
        short_max=SIG.get("short_max", 50),
        aucell_top=SIG.get("aucell_top", 0.05),
        gmt_labels=config.get("genesets", []),
        exclude_samples=config.get("expression", {}).get("exclude_samples", []),
    script:
        "../../scripts/signatures_score.py"


rule signatures_models:
    input:
        scores=res("signatures/scores.tsv"),
        responders=res("clinical/responders.tsv"),
    output:
        models=report(
            res("signatures/mixed_models.tsv"),
            caption="../report/signatures_models.rst",
            category="Signatures",
        ),
        change=res("signatures/change_from_baseline.tsv"),
        mean_change=res("signatures/mean_change.tsv"),
    log:
        logp("signatures_models"),
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        methods=SIG.get("model_methods", ["ulm"]),
        visits=config["visits"],
        baseline=SIG_BASELINE,
        seed=config["seed"],
        n_boot=SIG.get("n_boot", 100),
        min_patients=SIG.get("min_patients", 3),
        interaction_test=SIG.get("interaction_test", "wald_f"),
    script:
        "../../scripts/signatures_models.py"


rule signatures_enrichment:
    input:
        unpack(
            lambda wc: {
                k: [p for p in v if any(r.is_producer(p) for r in workflow.rules)]
                for k, v in SIG_DE.items()
            }
        ),
        gmt=SIG_GMT,
    output:
        report(
            res("signatures/enrichment.tsv"),
            caption="../report/signatures_enrichment.rst",
            category="Signatures",
        ),
    log:
        logp("signatures_enrichment"),
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        methods=SIG.get("enrichment_methods", ["ulm", "gsea"]),
        n_perm=SIG.get("n_perm", 1000),
        min_genes=SIG.get("min_genes", 5),
        seed=config["seed"],
    script:
        "../../scripts/signatures_enrichment.py"


rule signatures_figures:
    input:
        scores=res("signatures/scores.tsv"),
        responders=res("clinical/responders.tsv"),
        missing=res("signatures/missing_genes.tsv"),
        mean_change=res("signatures/mean_change.tsv"),
    output:
        spaghetti=report(
            directory(res("signatures/figures/spaghetti")),
            patterns=["{name}.png"],
            caption="../report/signatures_spaghetti.rst",
            category="Signatures",
        ),
        heatmap=report(
            res("signatures/figures/change_heatmap.png"),
            caption="../report/signatures_heatmap.rst",
            category="Signatures",
        ),
    log:
        logp("signatures_figures"),
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        method=SIG.get("plot_method", "ulm"),
        visits=config["visits"],
        baseline=SIG_BASELINE,
    script:
        "../../scripts/signatures_figures.py"


TARGETS["signatures"] = [
    res("signatures/scores.tsv"),
    res("signatures/scores.h5ad"),
    res("signatures/missing_genes.tsv"),
    res("signatures/mixed_models.tsv"),
    res("signatures/enrichment.tsv"),
    res("signatures/figures/spaghetti"),
    res("signatures/figures/change_heatmap.png"),
]
