# Stage 0: the validated, typed copy of every input, and a cohort summary.


rule validated_table:
    input:
        table=lambda wc: INPUTS[wc.table],
        # the readers check patients/samples references, so these are inputs too
        refs=lambda wc: (
            [INPUTS["patients"]] if wc.table in ("responses", "pk", "events") else []
        ),
    output:
        res("inputs/validated/{table}.tsv"),
    log:
        logp("validated_table", "{table}.log"),
    benchmark:
        bench("validated_table", "{table}.tsv")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config={
            "visits": config["visits"],
            "baseline_visit": config["baseline_visit"],
            "cytokines": {"duplicates": config["cytokines"]["duplicates"]},
        },
        inputs=INPUTS,
    script:
        "../../scripts/inputs_validated_table.py"


rule ingest_counts:
    input:
        # every file of the delivery (a folder of quantifications, tx2gene, GTF)
        counts=count_input_files(INPUTS["counts"], **config["counts"]),
        samples=res("inputs/validated/samples.tsv"),
        patients=res("inputs/validated/patients.tsv"),
    output:
        counts=res("inputs/validated/counts.h5ad"),
        by_cell_type=(
            [res("inputs/validated/counts_by_cell_type.h5ad")]
            if HAS_CELL_TYPES
            else []
        ),
        # single-cell: cell QC tables (rhlh.singlecell), written while summing the cells
        singlecell_qc=(
            [
                report(
                    res("singlecell/qc_samples.tsv"),
                    caption="../report/singlecell_qc_samples.rst",
                    category="Single-cell QC and composition",
                ),
                res("singlecell/qc_profiles.tsv"),
                res("singlecell/qc_cells.tsv.gz"),
            ]
            if SINGLE_CELL
            else []
        ),
        versions=vers("ingest_counts", always=True),
    log:
        logp("ingest_counts"),
    benchmark:
        bench("ingest_counts")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=lambda wc, input, attempt: rhlh.resources.ingest_memory_mb(
            rhlh.resources.files_mb(input.counts), attempt
        ),
        runtime=lambda wc, input, attempt: rhlh.resources.ingest_runtime_min(
            rhlh.resources.files_mb(input.counts), attempt
        ),
    params:
        sample_mismatch=config["sample_mismatch"],
        # the delivery as configured (a file, or the folder of per-sample quantifications)
        path=lambda wildcards, input: INPUTS["counts"],
        counts=config["counts"],
        singlecell=config["singlecell"] if SINGLE_CELL else {},
    script:
        "../../scripts/inputs_ingest_counts.py"


rule input_summary:
    input:
        tables=expand(res("inputs/validated/{table}.tsv"), table=TABLES),
        counts=res("inputs/validated/counts.h5ad"),
    output:
        report(
            res("inputs/summary.tsv"),
            caption="../report/inputs_summary.rst",
            category="Inputs",
        ),
    log:
        logp("input_summary"),
    benchmark:
        bench("input_summary")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
    script:
        "../../scripts/inputs_summary.py"


rule validation_warnings:
    input:
        tables=[
            INPUTS[t]
            for t in ("samples", "patients", "responses", "pk", "events", "cytokines")
            if INPUTS[t]
        ],
    output:
        report(
            res("inputs/warnings.tsv"),
            caption="../report/inputs_warnings.rst",
            category="0. Summary",
        ),
    log:
        logp("validation_warnings"),
    benchmark:
        bench("validation_warnings")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config={
            "visits": config["visits"],
            "plausibility": config["plausibility"],
            "cytokines": {"duplicates": config["cytokines"]["duplicates"]},
        },
        inputs=INPUTS,
    script:
        "../../scripts/inputs_warnings.py"


TARGETS["inputs"] = [res("inputs/summary.tsv"), res("inputs/warnings.tsv")] + expand(
    res("inputs/validated/{table}.tsv"), table=TABLES
)
