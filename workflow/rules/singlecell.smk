# Stage singlecell (single-cell counts only; bulk: no rule runs): figures of the cell QC that
# ingest_counts applies while it sums cells into pseudobulk (tables singlecell/qc_*.tsv), and
# the cell-type composition over time and by response (needs obs["cell_type"]).

SC = config["singlecell"]
SC_QC_FIGURES = ["qc_violins", "qc_histograms", "qc_cells_per_sample"]
SC_COMPOSITION_FIGURES = ["composition_stacked", "composition_trajectories"]


rule singlecell_qc_figures:
    input:
        samples_qc=res("singlecell/qc_samples.tsv"),
        cells=res("singlecell/qc_cells.tsv.gz"),
        samples=res("inputs/validated/samples.tsv"),
    output:
        figures=[
            report(
                res(f"singlecell/figures/{name}.png"),
                caption=f"../report/singlecell_{name}.rst",
                category="Single-cell QC and composition",
            )
            for name in SC_QC_FIGURES
        ],
    log:
        logp("singlecell_qc_figures"),
    benchmark:
        bench("singlecell_qc_figures")
    conda:
        "../../envs/singlecell.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=30,
    params:
        singlecell=SC,
        visits=config["visits"],
        seed=config["seed"],
    script:
        "../../scripts/singlecell_qc_figures.py"


rule singlecell_composition:
    input:
        profiles=res("singlecell/qc_profiles.tsv"),
        samples=res("inputs/validated/samples.tsv"),
        # response groups only when the clinical stage is part of the workflow
        responders=lambda wc: produced(res("clinical/responders.tsv")),
    output:
        counts=res("singlecell/composition/cell_counts.tsv"),
        by_visit=res("singlecell/composition/by_visit.tsv"),
        tests=report(
            res("singlecell/composition/tests.tsv"),
            caption="../report/singlecell_composition_tests.rst",
            category="Single-cell QC and composition",
        ),
        figures=[
            report(
                res(f"singlecell/figures/{name}.png"),
                caption=f"../report/singlecell_{name}.rst",
                category="Single-cell QC and composition",
            )
            for name in SC_COMPOSITION_FIGURES
        ],
        versions=vers("singlecell_composition"),
    log:
        logp("singlecell_composition"),
    benchmark:
        bench("singlecell_composition")
    conda:
        "../../envs/singlecell.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        transform=SC["composition_transform"],
        n_boot=SC["composition_n_boot"],
        min_patients=SC["composition_min_patients"],
        n_perm=SC["composition_n_perm"],
        visits=config["visits"],
        baseline=config["baseline_visit"],
        seed=config["seed"],
    script:
        "../../scripts/singlecell_composition.py"


TARGETS["singlecell"] = (
    [
        res("singlecell/qc_samples.tsv"),
        res("singlecell/qc_profiles.tsv"),
        *[res(f"singlecell/figures/{name}.png") for name in SC_QC_FIGURES],
    ]
    if SINGLE_CELL
    else []
) + (
    [
        res("singlecell/composition/tests.tsv"),
        res("singlecell/composition/by_visit.tsv"),
        *[res(f"singlecell/figures/{name}.png") for name in SC_COMPOSITION_FIGURES],
    ]
    if HAS_CELL_TYPES
    else []
)
