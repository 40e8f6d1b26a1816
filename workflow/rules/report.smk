# Stage: the report's landing summary and methods page (snakemake --report collects every
# report() output of every stage into one HTML file).


rule report_summary:
    input:
        unpack(
            lambda wc: {
                "summary": res("inputs/summary.tsv"),
                "endpoints": res("clinical/endpoints.tsv"),
                "simon": res("clinical/simon_decision.tsv"),
                "responders": res("clinical/responders.tsv"),
                "cytokines": res("cytokines/change_from_baseline.tsv"),
                "associations": res("response/associations.tsv"),
                **{"scores": p for p in produced(res("signatures/scores.tsv"))},
            }
        ),
    output:
        figure=report(
            res("report/summary.png"),
            caption="../report/report_summary.rst",
            category="0. Summary",
        ),
        headline=report(
            res("report/headline.tsv"),
            caption="../report/report_headline.rst",
            category="0. Summary",
        ),
        headline_html=report(
            res("report/headline.html"),
            caption="../report/report_headline.rst",
            category="0. Summary",
        ),
    log:
        logp("report_summary"),
    benchmark:
        bench("report_summary")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        visits=config["visits"],
        baseline=config["baseline_visit"],
        method=config["signatures"]["plot_method"],
    script:
        "../../scripts/report_summary.py"


rule report_methods:
    input:
        # the package versions each rule's script recorded in its own environment
        versions=lambda wc: version_files(),
    output:
        report(
            res("report/methods.html"),
            caption="../report/report_methods.rst",
            category="0. Summary",
        ),
    log:
        logp("report_methods"),
    benchmark:
        bench("report_methods")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        config=config,
    script:
        "../../scripts/report_methods.py"


# the clinical captions of the two figures, repeated under them on the landing page
REPORT_PATIENT_CAPTIONS = {
    k: (BASE / "workflow" / "report" / f).read_text()
    for k, f in (
        ("flow", "clinical_patient_flow.rst"),
        ("swimmer", "clinical_swimmer.rst"),
    )
}


rule report_patients:
    input:
        flow=res("clinical/patient_flow.tsv"),
        flow_fig=res("clinical/figures/patient_flow.png"),
        swimmer=res("clinical/figures/swimmer.png"),
    output:
        page=report(
            res("report/patients.html"),
            caption="../report/report_patients.rst",
            category="0. Summary",
        ),
    log:
        logp("report_patients"),
    benchmark:
        bench("report_patients")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        captions=REPORT_PATIENT_CAPTIONS,
    script:
        "../../scripts/report_patients.py"


# key tables as HTML pages: the report shows a TSV only as a download link, an HTML page in
# the page itself; name: (source, title, rows shown, caption, category)
REPORT_TABLES = {
    "input_summary": (
        "inputs/summary.tsv",
        "Input summary",
        None,
        "inputs_summary",
        "Inputs",
    ),
    "responders": (
        "clinical/responders.tsv",
        "Responders",
        None,
        "clinical_responders",
        "Clinical",
    ),
    "endpoints": (
        "clinical/endpoints.tsv",
        "Clinical endpoints",
        None,
        "clinical_endpoints",
        "Clinical",
    ),
    "cytokine_models": (
        "cytokines/mixed_models.tsv",
        "Cytokine mixed models",
        None,
        "cytokines_models",
        "Cytokines",
    ),
    "de_skipped": (
        "de/skipped.tsv",
        "DE designs skipped on this cohort",
        None,
        "de_skipped",
        "Differential expression",
    ),
    "associations": (
        "response/associations.tsv",
        "Associations with response (smallest p-values first)",
        100,
        "response_associations",
        "Response",
    ),
}


rule report_tables:
    input:
        **{k: res(v[0]) for k, v in REPORT_TABLES.items()},
    output:
        **{
            k: report(
                res(f"report/tables/{k}.html"),
                caption=f"../report/{v[3]}.rst",
                category=v[4],
            )
            for k, v in REPORT_TABLES.items()
        },
    log:
        logp("report_tables"),
    benchmark:
        bench("report_tables")
    conda:
        "../../envs/rhlh.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        pages={k: (v[1], v[2], v[0]) for k, v in REPORT_TABLES.items()},
    script:
        "../../scripts/report_tables.py"


TARGETS["report"] = [
    res("report/summary.png"),
    res("report/headline.tsv"),
    res("report/headline.html"),
    res("report/methods.html"),
    res("report/patients.html"),
    *[res(f"report/tables/{k}.html") for k in REPORT_TABLES],
]
