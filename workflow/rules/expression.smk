# Stage expression: gene filter, DESeq2 size factors, VST and log-CPM (normalize), then
# sample QC: library sizes, PCA, sample distances, outlier flags, batch variance (qc).

EXPR = config["expression"]
EXPR_FIGURES = [
    "library_sizes",
    "pca_visit",
    "pca_batch",
    "pca_responder",
    "pca_patient",
    "sample_distances",
    "batch_variance",
]


rule expression_normalize:
    input:
        counts=res("inputs/validated/counts.h5ad"),
        samples=res("inputs/validated/samples.tsv"),
        by_cell_type=(
            [res("inputs/validated/counts_by_cell_type.h5ad")]
            if HAS_CELL_TYPES
            else []
        ),
    output:
        h5ad=res("expression/normalized.h5ad"),
        gene_filter=res("expression/gene_filter.tsv"),
        by_cell_type=(
            [res("expression/normalized_by_cell_type.h5ad")] if HAS_CELL_TYPES else []
        ),
        versions=vers("expression_normalize"),
    log:
        logp("expression_normalize"),
    benchmark:
        bench("expression_normalize")
    conda:
        "../../envs/expression.yaml"
    threads: 2
    resources:
        mem_mb=mem_for("expression"),
        runtime=runtime_for("expression"),
    params:
        min_count=EXPR["min_count"],
        min_samples=EXPR["min_samples"],
        size_factors=EXPR["size_factors"],
        pseudobulk_size_factors=EXPR["pseudobulk_size_factors"],
        vst_fit_type=EXPR["vst_fit_type"],
        exclude_samples=EXPR["exclude_samples"],
        pca_top_genes=EXPR["pca_top_genes"],
    script:
        "../../scripts/expression_normalize.py"


rule expression_qc:
    input:
        normalized=res("expression/normalized.h5ad"),
        counts=res("inputs/validated/counts.h5ad"),
        # responder colours only when the clinical stage is part of the workflow
        responders=lambda wc: produced(res("clinical/responders.tsv")),
    output:
        qc=report(
            res("expression/qc.tsv"),
            caption="../report/expression_qc.rst",
            category="Expression QC",
        ),
        batch_variance=report(
            res("expression/batch_variance.tsv"),
            caption="../report/expression_batch_variance.rst",
            category="Expression QC",
        ),
        distances=res("expression/sample_distances.tsv"),
        figures=[
            report(
                res(f"expression/figures/{name}.png"),
                caption=f"../report/expression_{name}.rst",
                category="Expression QC",
            )
            for name in EXPR_FIGURES
        ],
    log:
        logp("expression_qc"),
    benchmark:
        bench("expression_qc")
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=mem_for("expression"),
        runtime=runtime_for("expression"),
    params:
        visits=config["visits"],
        exclude_samples=EXPR["exclude_samples"],
        pca_top_genes=EXPR["pca_top_genes"],
        variance_pcs=EXPR["variance_pcs"],
        outlier_top_genes=EXPR["outlier_top_genes"],
        outlier_neighbors=EXPR["outlier_neighbors"],
        outlier_z=EXPR["outlier_z"],
        libsize_mads=EXPR["libsize_mads"],
        min_library_size=EXPR["min_library_size"],
        figures=EXPR_FIGURES,
    script:
        "../../scripts/expression_qc.py"


TARGETS["expression"] = [
    res("expression/normalized.h5ad"),
    res("expression/gene_filter.tsv"),
    res("expression/qc.tsv"),
    res("expression/batch_variance.tsv"),
    res("expression/sample_distances.tsv"),
] + [res(f"expression/figures/{name}.png") for name in EXPR_FIGURES]
if HAS_CELL_TYPES:
    TARGETS["expression"].append(res("expression/normalized_by_cell_type.h5ad"))
