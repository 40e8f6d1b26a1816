# Stage: JAK-STAT / IFN-gamma gene-set signatures. Per-sample scores, longitudinal mixed
# models by response, competitive gene-set tests on the DE results, figures.

SIG = config["signatures"]
SIG_GMT = [str(BASE / p) for p in config["genesets"]]
SIG_BASELINE = config["baseline_visit"]
SIG_DE_VISITS = [v for v in config["visits"] if v != SIG_BASELINE]


# DE tables (Wald visit contrasts, LRTs) that enrichment reads when some rule writes them
# (produced(), in the input function)
SIG_DE = {
    "visit": [res(f"de/visit/{v}_vs_{SIG_BASELINE}.tsv") for v in SIG_DE_VISITS],
    "lrt": [res("de/lrt_time.tsv"), res("de/lrt_time_by_response.tsv")],
}
# the same tables of each cell type's DE (single-cell input with cell types)
SIG_DE_CELL_TYPE = {
    k: [f.replace(res("de/"), res("de/{cell_type}/"), 1) for f in v]
    for k, v in SIG_DE.items()
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
        versions=vers("signatures_score"),
    log:
        logp("signatures_score"),
    benchmark:
        bench("signatures_score")
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("signatures"),
        runtime=runtime_for("signatures"),
    params:
        methods=SIG["methods"],
        min_genes=SIG["min_genes"],
        short_max=SIG["short_max"],
        aucell_top=SIG["aucell_top"],
        gmt_labels=GENESET_LABELS,
        exclude_samples=config["expression"]["exclude_samples"],
    script:
        "../../scripts/signatures_score.py"


# single-cell input with cell types: the same scores on each cell type's pseudobulk
rule signatures_score_cell_types:
    input:
        counts=res("inputs/validated/counts_by_cell_type.h5ad"),
        gmt=SIG_GMT,
    output:
        scores=report(
            res("signatures/cell_types/scores.tsv"),
            caption="../report/signatures_cell_type_scores.rst",
            category="Signatures",
        ),
    log:
        logp("signatures_score_cell_types"),
    benchmark:
        bench("signatures_score_cell_types")
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("signatures"),
        runtime=runtime_for("signatures"),
    params:
        methods=SIG["methods"],
        min_genes=SIG["min_genes"],
        short_max=SIG["short_max"],
        aucell_top=SIG["aucell_top"],
        exclude_samples=config["expression"]["exclude_samples"],
    script:
        "../../scripts/signatures_score_cell_types.py"


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
        versions=vers("signatures_models"),
    log:
        logp("signatures_models"),
    benchmark:
        bench("signatures_models")
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=120,
    params:
        methods=SIG["model_methods"],
        visits=config["visits"],
        baseline=SIG_BASELINE,
        seed=config["seed"],
        n_boot=SIG["n_boot"],
        min_patients=SIG["min_patients"],
        interaction_test=SIG["interaction_test"],
        interaction_n_perm=SIG["interaction_n_perm"],
    script:
        "../../scripts/signatures_models.py"


rule signatures_enrichment:
    input:
        unpack(lambda wc: {k: produced(*v) for k, v in SIG_DE.items()}),
        gmt=SIG_GMT,
    output:
        report(
            res("signatures/enrichment.tsv"),
            caption="../report/signatures_enrichment.rst",
            category="Signatures",
        ),
    log:
        logp("signatures_enrichment"),
    benchmark:
        bench("signatures_enrichment")
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=60,
    params:
        methods=SIG["enrichment_methods"],
        n_perm=SIG["n_perm"],
        min_genes=SIG["min_genes"],
        seed=config["seed"],
    script:
        "../../scripts/signatures_enrichment.py"


# single-cell input with cell types: the same competitive tests on each cell type's DE tables
# (tables of a design the cell type could not estimate have no statistics and are not tested)
use rule signatures_enrichment as signatures_enrichment_cell_type with:
    input:
        unpack(
            lambda wc: {
                k: produced(*[f.format(cell_type=wc.cell_type) for f in v])
                for k, v in SIG_DE_CELL_TYPE.items()
            }
        ),
        gmt=SIG_GMT,
    output:
        res("signatures/cell_types/{cell_type}/enrichment.tsv"),
    log:
        logp("signatures_enrichment_cell_type", "{cell_type}.log"),
    benchmark:
        bench("signatures_enrichment_cell_type", "{cell_type}.tsv")
    # with the cell type's DE fit and figures, one cluster job per cell type (de.smk)
    group:
        "cell_type"


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
    benchmark:
        bench("signatures_figures")
    conda:
        "../../envs/signatures.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        method=SIG["plot_method"],
        visits=config["visits"],
        baseline=SIG_BASELINE,
    script:
        "../../scripts/signatures_figures.py"


# left out when no GMT matches the counts' genes (STAGES_OFF, common.smk)
TARGETS["signatures"] = (
    []
    if "signatures" in STAGES_OFF
    else [
        res("signatures/scores.tsv"),
        res("signatures/scores.h5ad"),
        res("signatures/missing_genes.tsv"),
        res("signatures/mixed_models.tsv"),
        res("signatures/enrichment.tsv"),
        res("signatures/figures/spaghetti"),
        res("signatures/figures/change_heatmap.png"),
    ]
)
if HAS_CELL_TYPES and "signatures" not in STAGES_OFF:
    TARGETS["signatures_cell_types"] = [res("signatures/cell_types/scores.tsv")] + [
        res(f"signatures/cell_types/{stem}/enrichment.tsv")
        for stem in sorted(CELL_TYPES)
    ]
