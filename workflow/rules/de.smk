# Stage de: differential expression over visits with pydeseq2 (Wald test of each visit vs
# baseline, paired by patient), DESeq2-style likelihood-ratio tests (any change over time;
# responder-specific trajectory), single-count outlier handling, volcano/MA/heatmap figures.
from rhlh.design import parse_design_specs as _de_parse_specs
from rhlh.design import workflow_table_keys as _de_table_keys

DE = config["de"]
DE_BASELINE = config["baseline_visit"]
DE_VISITS = [v for v in config["visits"] if v != DE_BASELINE]
DE_DESIGNS = DE["designs"]
DE_SPECS = _de_parse_specs(DE_DESIGNS, source="config (de.designs)")
DE_FIGURE_DESIGN = DE["figure_design"]
# output tables, known from the config alone: <design>/<contrast> and lrt_<test>
DE_KEYS = _de_table_keys(DE_SPECS, config["visits"], DE_BASELINE)
DE_FIG_VISITS = [
    v for v in DE_VISITS if f"{DE_FIGURE_DESIGN}/{v}_vs_{DE_BASELINE}" in DE_KEYS
]
DE_FIT_PARAMS = dict(
    designs=DE_DESIGNS,
    table_keys=DE_KEYS,
    visits=config["visits"],
    baseline=DE_BASELINE,
    alpha=DE["alpha"],
    min_patients_per_visit=DE["min_patients_per_visit"],
    min_total_count=DE["min_total_count"],
    shrink=DE["shrink"],
    mode=DE["mode"],
    permutation_nulls=DE["permutation_nulls"],
    seed=config["seed"],
    # the DESeq2-compatible mode reproduces R: no outlier replacement
    outlier_handling=DE["outlier_handling"] and DE["mode"] != "deseq2",
    outlier_score=DE["outlier_score"],
    exclude_samples=config["expression"]["exclude_samples"],
)


rule de_fit:
    input:
        counts=res("inputs/validated/counts.h5ad"),
        responders=res("clinical/responders.tsv"),
        gmt=config["genesets"],
    output:
        tables=[
            (
                report(
                    res(f"de/{k}.tsv"),
                    caption="../report/de_lrt.rst",
                    category="Differential expression",
                )
                if k.startswith("lrt_")
                else res(f"de/{k}.tsv")
            )
            for k in DE_KEYS
        ],
        outliers=report(
            res("de/outlier_counts.tsv"),
            caption="../report/de_outliers.rst",
            category="Differential expression",
        ),
        dropped=res("de/dropped_samples.tsv"),
        skipped=report(
            res("de/skipped.tsv"),
            caption="../report/de_skipped.rst",
            category="Differential expression",
        ),
        versions=vers("de_fit"),
    log:
        logp("de_fit"),
    benchmark:
        bench("de_fit")
    conda:
        "../../envs/de.yaml"
    threads: 2
    resources:
        mem_mb=mem_for("de_fit"),
        runtime=runtime_for("de_fit"),
    params:
        **DE_FIT_PARAMS,
    script:
        "../../scripts/de_fit.py"


rule de_figures:
    input:
        visit=[
            res(f"de/{DE_FIGURE_DESIGN}/{v}_vs_{DE_BASELINE}.tsv")
            for v in DE_FIG_VISITS
        ],
    output:
        volcano=[
            report(
                res(f"de/figures/volcano_{v}_vs_{DE_BASELINE}.png"),
                caption="../report/de_volcano.rst",
                category="Differential expression",
                subcategory="Volcano plots",
            )
            for v in DE_FIG_VISITS
        ],
        ma=[
            report(
                res(f"de/figures/ma_{v}_vs_{DE_BASELINE}.png"),
                caption="../report/de_ma.rst",
                category="Differential expression",
                subcategory="MA plots",
            )
            for v in DE_FIG_VISITS
        ],
        heatmap=report(
            res("de/figures/signature_heatmap.png"),
            caption="../report/de_signature_heatmap.rst",
            category="Differential expression",
        ),
        versions=vers("de_figures"),
    log:
        logp("de_figures"),
    benchmark:
        bench("de_figures")
    conda:
        "../../envs/de.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        visits=DE_FIG_VISITS,
        baseline=DE_BASELINE,
        alpha=DE["alpha"],
        label_top=DE["label_top"],
        heatmap_max_genes=DE["heatmap_max_genes"],
    script:
        "../../scripts/de_figures.py"


TARGETS["de"] = (
    rules.de_fit.output.tables
    + [
        rules.de_fit.output.outliers,
        rules.de_fit.output.dropped,
        rules.de_fit.output.skipped,
    ]
    + rules.de_figures.output.volcano
    + rules.de_figures.output.ma
    + [rules.de_figures.output.heatmap]
)


# single-cell input with cell types: the same designs on each cell type's pseudobulk. On a
# cluster, a cell type's fit, figures and enrichment run as one job (group "cell_type": no
# queue wait between them; cell types in parallel); groups are ignored in local runs.
use rule de_fit as de_fit_cell_type with:
    input:
        counts=res("inputs/validated/counts_by_cell_type.h5ad"),
        responders=res("clinical/responders.tsv"),
        gmt=config["genesets"],
    output:
        tables=[res(f"de/{{cell_type}}/{k}.tsv") for k in DE_KEYS],
        outliers=res("de/{cell_type}/outlier_counts.tsv"),
        dropped=res("de/{cell_type}/dropped_samples.tsv"),
        # designs this cell type's pseudobulk cannot estimate (too sparse after cell QC)
        skipped=res("de/{cell_type}/skipped.tsv"),
        versions=vers("de_fit_cell_type", "{cell_type}.tsv"),
    log:
        logp("de_fit_cell_type", "{cell_type}.log"),
    benchmark:
        bench("de_fit_cell_type", "{cell_type}.tsv")
    group:
        "cell_type"
    resources:
        mem_mb=mem_for("de_fit", per_cell_type=True),
        runtime=runtime_for("de_fit", per_cell_type=True),
    params:
        **DE_FIT_PARAMS,
        cell_type=lambda wc: CELL_TYPES[wc.cell_type],


# one table of the designs left untested per cell type, and why (logged by each job too)
rule de_cell_types_skipped:
    input:
        skipped=expand(res("de/{cell_type}/skipped.tsv"), cell_type=sorted(CELL_TYPES)),
    output:
        report(
            res("de/cell_types_skipped.tsv"),
            caption="../report/de_cell_types_skipped.rst",
            category="Differential expression",
        ),
    log:
        logp("de_cell_types_skipped"),
    benchmark:
        bench("de_cell_types_skipped")
    conda:
        "../../envs/de.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../../scripts/de_skipped.py"


# single-cell input with cell types: volcano, MA and heatmap of each cell type's pseudobulk
use rule de_figures as de_figures_cell_type with:
    input:
        visit=[
            res(f"de/{{cell_type}}/{DE_FIGURE_DESIGN}/{v}_vs_{DE_BASELINE}.tsv")
            for v in DE_FIG_VISITS
        ],
    output:
        volcano=[
            report(
                res(f"de/{{cell_type}}/figures/volcano_{v}_vs_{DE_BASELINE}.png"),
                caption="../report/de_volcano.rst",
                category="Differential expression by cell type",
                subcategory="{cell_type}",
                labels={"cell type": "{cell_type}", "figure": f"volcano {v}"},
            )
            for v in DE_FIG_VISITS
        ],
        ma=[
            report(
                res(f"de/{{cell_type}}/figures/ma_{v}_vs_{DE_BASELINE}.png"),
                caption="../report/de_ma.rst",
                category="Differential expression by cell type",
                subcategory="{cell_type}",
                labels={"cell type": "{cell_type}", "figure": f"MA {v}"},
            )
            for v in DE_FIG_VISITS
        ],
        heatmap=report(
            res("de/{cell_type}/figures/signature_heatmap.png"),
            caption="../report/de_signature_heatmap.rst",
            category="Differential expression by cell type",
            subcategory="{cell_type}",
            labels={"cell type": "{cell_type}", "figure": "signature genes"},
        ),
        versions=vers("de_figures_cell_type", "{cell_type}.tsv"),
    log:
        logp("de_figures_cell_type", "{cell_type}.log"),
    benchmark:
        bench("de_figures_cell_type", "{cell_type}.tsv")
    group:
        "cell_type"
    params:
        visits=DE_FIG_VISITS,
        baseline=DE_BASELINE,
        alpha=DE["alpha"],
        label_top=DE["label_top"],
        heatmap_max_genes=DE["heatmap_max_genes"],
        cell_type=lambda wc: CELL_TYPES[wc.cell_type],


# the Wald contrasts of the figure design and the LRTs, compared across cell types
DE_CT_KEYS = [f"{DE_FIGURE_DESIGN}/{v}_vs_{DE_BASELINE}" for v in DE_FIG_VISITS] + [
    k for k in DE_KEYS if k.startswith("lrt_")
]


rule de_cell_types_figure:
    input:
        tables=[
            res(f"de/{ct}/{k}.tsv") for ct in sorted(CELL_TYPES) for k in DE_CT_KEYS
        ],
    output:
        table=res("de/cell_types_significant.tsv"),
        figure=report(
            res("de/figures/cell_types_significant.png"),
            caption="../report/de_cell_types_significant.rst",
            category="Differential expression by cell type",
        ),
        versions=vers("de_cell_types_figure"),
    log:
        logp("de_cell_types_figure"),
    benchmark:
        bench("de_cell_types_figure")
    conda:
        "../../envs/de.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cell_types=[CELL_TYPES[ct] for ct in sorted(CELL_TYPES)],
        contrasts=[k.split("/")[-1] for k in DE_CT_KEYS],
        alpha=DE["alpha"],
    script:
        "../../scripts/de_cell_types_figure.py"


if CELL_TYPES:
    TARGETS["de_cell_types"] = (
        expand(
            res("de/{cell_type}/{key}.tsv"), cell_type=sorted(CELL_TYPES), key=DE_KEYS
        )
        + [res("de/cell_types_skipped.tsv")]
        + [
            res("de/cell_types_significant.tsv"),
            res("de/figures/cell_types_significant.png"),
        ]
        + expand(
            res("de/{cell_type}/figures/signature_heatmap.png"),
            cell_type=sorted(CELL_TYPES),
        )
        + expand(
            res("de/{cell_type}/figures/{kind}_{visit}_vs_{base}.png"),
            cell_type=sorted(CELL_TYPES),
            kind=["volcano", "ma"],
            visit=DE_FIG_VISITS,
            base=DE_BASELINE,
        )
    )
