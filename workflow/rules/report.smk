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


TARGETS["report"] = [
    res("report/summary.png"),
    res("report/headline.tsv"),
    res("report/methods.html"),
]
