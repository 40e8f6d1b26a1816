"""The report's landing summary (headline table) and its methods page; its figure is in
rhlh.figures.report."""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from rhlh import __version__
from rhlh.tables import as_responders, response_label

HEADLINE_SIGNATURE = "HALLMARK_INTERFERON_GAMMA_RESPONSE"
HEADLINE_CYTOKINES = ("IFNG", "CXCL9")


def group_means(df: pd.DataFrame, value: str, visits) -> pd.DataFrame:
    """Mean and normal 95% CI of ``value`` per response group and visit (visit order kept)."""
    df = df.assign(group=df["responder"].map(response_label))
    rows = []
    for (g, v), sub in df.groupby(["group", "visit"], observed=True):
        x = sub[value].dropna().to_numpy(float)
        if len(x) == 0:
            continue
        se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
        rows.append(
            {
                "group": g,
                "visit": v,
                "n": len(x),
                "mean": x.mean(),
                "ci_low": x.mean() - 1.96 * se,
                "ci_high": x.mean() + 1.96 * se,
            }
        )
    out = pd.DataFrame(rows, columns=["group", "visit", "n", "mean", "ci_low", "ci_high"])
    order = {v: i for i, v in enumerate(visits)}
    return out.assign(_o=out["visit"].map(order)).sort_values(["group", "_o"]).drop(columns="_o")


def _with_responders(df, responders):
    r = as_responders(responders)[["patient_id", "responder"]]
    return df.drop(columns=["responder"], errors="ignore").merge(r, on="patient_id", how="left")


def headline(
    summary,
    endpoints,
    simon,
    responders,
    sig_change,
    cyto_change,
    assoc,
    visits,
    baseline="D0",
    signature=HEADLINE_SIGNATURE,
    cytokines=HEADLINE_CYTOKINES,
):
    """Key findings as rows (topic, finding, value, detail) for the top of the report."""
    rows = []
    s = summary.set_index("item")["value"] if len(summary) else pd.Series(dtype=object)
    rows.append(
        (
            "cohort",
            "patients / samples / batches",
            f"{s.get('patients', '?')} / {s.get('samples', '?')} / {s.get('batches', '?')}",
            "blood draws per visit: "
            + ", ".join(
                f"{r.item} {r.value}"
                for r in summary.itertuples()
                if r.section == "samples_per_visit"
            ),
        )
    )
    n_resp = int(as_responders(responders)["responder"].eq(True).sum())
    rows.append(
        ("response", "responders (definition in methods)", f"{n_resp}/{len(responders)}", "")
    )
    n_non = int(as_responders(responders)["responder"].eq(False).sum())
    if n_resp == 0 or n_non == 0:
        # a valid but small cohort: what needs both response groups was skipped, not failed
        rows.append(
            (
                "skipped",
                "analyses comparing response groups (no "
                f"{'non-responder' if n_resp else 'responder'} in this cohort)",
                "skipped",
                "the responder x visit DE design (de/skipped.tsv), the missing group's rows "
                "and the interaction of the signature and cytokine mixed models, the "
                "responder vs non-responder association tests (see each rule's log)",
            )
        )
    prim = endpoints[endpoints["endpoint"].str.contains("primary", case=False)]
    for r in prim.itertuples():
        rows.append(
            (
                "primary endpoint",
                r.endpoint,
                f"{r.estimate:.2f} (95% CI {r.ci_low:.2f}-{r.ci_high:.2f})",
                str(r.note),
            )
        )
    for r in simon.itertuples():
        rows.append(
            (
                "Simon two-stage",
                f"{r.design} design, {r.stage}",
                str(r.decision),
                f"{r.successes}/{r.n_observed} (threshold {r.threshold})",
            )
        )
    late = [v for v in visits if v != baseline]
    for name, df, feat_col, label in (
        (signature, sig_change, "signature", "signature"),
        *[(c, cyto_change, "analyte", "cytokine") for c in cytokines],
    ):
        if df is None or feat_col not in df.columns:
            continue
        sub = df[df[feat_col] == name]
        if sub.empty:
            continue
        by = sub[sub["visit"].isin(late[:4])].groupby("responder")["change"].mean()
        detail = "; ".join(f"{response_label(k)} {v:+.2f}" for k, v in by.items())
        rows.append(
            (
                label,
                f"{name}: mean change from {baseline} over {late[0]}-{late[3]}",
                detail,
                "score units" if label == "signature" else "log10 pg/mL",
            )
        )
    if assoc is not None and len(assoc):
        a = assoc[(assoc.get("test") == "mann_whitney")] if "test" in assoc else assoc
        a = a.dropna(subset=["auc"]).sort_values(["pvalue", "auc"], ascending=[True, False])
        for r in a.head(5).itertuples():
            rows.append(
                (
                    "association",
                    f"{r.feature} ({r.family}, {r.measure})",
                    f"AUC {r.auc:.2f} ({r.ci_low:.2f}-{r.ci_high:.2f})",
                    f"p={r.pvalue:.2g}, padj={r.padj:.2g}, n={r.n}",
                )
            )
    return pd.DataFrame(rows, columns=["topic", "finding", "value", "detail"])


def _cell(v) -> str:
    """One table cell as text: floats to 3 significant digits, missing values empty."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.3g}"
    return str(v)


def html_table(df: pd.DataFrame, title: str, note: str = "", max_rows: int | None = None) -> str:
    """A table as a small standalone HTML page (escaped text), for reading in the report.

    With ``max_rows`` only the first rows are shown and the page says how many were left out
    (the TSV beside it holds them all).
    """
    e = html.escape
    shown = df if max_rows is None else df.head(max_rows)
    head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    left = len(df) - len(shown)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>body{{font-family:sans-serif;font-size:13px}}"
        "table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:3px 6px;"
        "text-align:left;vertical-align:top}th{background:#eee}</style></head><body>",
        f"<h2>{e(title)}</h2>",
        f"<p>{e(note)}</p>" if note else "",
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>",
        f"<p>{left} more rows in the TSV.</p>" if left > 0 else "",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _de_mode_html(mode: str, permutation_nulls: int = 0) -> str:
    """What the p-values of the DE tables are, by ``de.mode``."""
    if mode == "deseq2":
        return (
            "<p>Mode <b>deseq2</b>: the p-values are DESeq2's Wald (normal) and likelihood-"
            "ratio (chi-square) p-values, dispersions taken as known; single wild counts are "
            "not replaced. The <code>test</code> column of every table names the test.</p>"
        )
    return (
        "<p>Mode <b>calibrated</b> (the default): the log2 fold changes and dispersions are "
        "DESeq2's, the p-values are quasi-likelihood tests (as edgeR's glmQLFit / "
        "glmQLFTest): each design is refitted with DESeq2's trended NB dispersions, each "
        "gene's residual deviance over its residual degrees of freedom is its QL dispersion, "
        "squeezed by empirical Bayes towards a trend in abundance (limma's fitFDist), and "
        "the likelihood-ratio tests become F-tests (reduced minus full deviance, per test df, "
        "over the squeezed QL dispersion; F reference with the prior plus residual df), the "
        "per-visit Wald tests t-tests (z over the square root of the QL dispersion). The "
        "QL dispersion carries what the NB model's dispersion misses (gene-wise dispersion "
        "off the trend, sample-level noise, patient-specific trajectories), which made "
        "DESeq2's tests claim an FDR below the one they had on simulated trial cohorts. "
        + (
            "Tests of a patient-level label (the responder-specific trajectory, "
            "responder:visit) are calibrated by permutation as well: the labels are permuted "
            "between patients (each keeps its samples, so patient-specific trajectories stay "
            "with their patient), each permutation gives every gene a null QL F p-value, and a "
            "gene's p-value is the share of the pooled null p-values at or below its own "
            f"(<code>de.permutation_nulls</code> = {int(permutation_nulls)} null values, "
            "seeded). Tests of the change within patients (the time test and the per-visit "
            "tests) are calibrated the same way on sign flips: a random half of the patients "
            "have their trajectory mirrored (within-patient design columns times -1) and the "
            "model is refitted, which respects patient-specific trajectories. "
            if permutation_nulls
            else ""
        )
        + "The <code>test</code> column of every table names the test; <code>stat</code> is "
        "the F or t statistic.</p>"
    )


PATIENTS_TITLE = "The patients: flow and swimmer plot"


def patients_html(flow: pd.DataFrame, figures) -> str:
    """The landing page's pictures of the patients as one HTML fragment (no <html> wrapper, so
    the report's landing text can include it, and the report shows it as a page too): the
    patient-flow table (text), then each figure as an embedded PNG with its caption.

    ``figures``: (title, PNG bytes, caption) in display order.
    """
    e = html.escape
    cols = [c for c in ("step", "visit", "n", "note") if c in flow.columns]
    head = "".join(f"<th>{e(c)}</th>" for c in cols)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>"
        for row in flow[cols].itertuples(index=False, name=None)
    )
    parts = [
        "<div class='rhlh-patients' style='font-family:sans-serif;font-size:13px'>",
        f"<h2>{e(PATIENTS_TITLE)}</h2>",
        "<table style='border-collapse:collapse' border='1' cellpadding='3'>"
        "<caption>Patient flow</caption>",
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>",
    ]
    for title, png, caption in figures:
        if png[:8] != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"{title}: not a PNG image")
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure style='margin:1em 0'><img alt='{e(title)}' style='max-width:100%' "
            f"src='data:image/png;base64,{data}'/><figcaption><b>{e(title)}.</b> "
            f"{e(' '.join(caption.split()))}</figcaption></figure>"
        )
    parts.append("</div>")
    return "\n".join(parts)


def methods_html(
    config: dict,
    versions: pd.DataFrame,
    designs: pd.DataFrame | None = None,
    workflow_version: str | None = None,
) -> str:
    """The methods page: versions, designs and tests, response definition, censoring, seed.

    ``versions``: package, version, rules (``rhlh.versions.collect_versions`` of what each
    rule's script recorded in its own environment); ``workflow_version`` defaults to
    ``rhlh.__version__``."""
    e = html.escape
    workflow_version = workflow_version or __version__
    clin = config.get("clinical", {})
    cyto = config.get("cytokines", {})
    sig = config.get("signatures", {})
    de = config.get("de", {})
    parts = [
        "<html><head><meta charset='utf-8'><title>Methods</title></head><body>",
        "<h1>Methods</h1>",
        f"<p>R-HLH workflow version <b>{e(workflow_version)}</b> (release tag "
        f"v{e(workflow_version)}).</p>",
        "<h2>Inputs and validation</h2><p>Every input table is checked against the data "
        "contract before any analysis (types, identifiers, visits, cross-table references, "
        "clinical timelines); counts are read from a matrix, featureCounts table or h5ad "
        "(single-cell data summed into pseudobulk profiles per sample).</p>",
        "<h2>Response definition</h2>",
        f"<p>Responder: <b>{e(str(clin.get('responder_definition', 'cr_pr_d28')))}</b> "
        "(cr_pr_d28 = CR or PR at D28; patients dead or not assessed at the endpoint are "
        "non-responders, intention to treat).</p>",
        "<h2>Expression</h2><p>DESeq2 median-of-ratios size factors and blind "
        "variance-stabilizing transform (pydeseq2); log2-CPM per sample.</p>",
        "<h2>Differential expression</h2><p>Per-visit Wald tests against the baseline visit "
        f"({e(config.get('baseline_visit', 'D0'))}) in a design paired by patient; "
        "likelihood-ratio tests of change over time and of response-specific trajectories "
        "with dispersions from the full model (as DESeq2). The fits follow R DESeq2 1.38 "
        "where pydeseq2 departs from it (standard errors from fitted means floored at 0.5, "
        "DESeq2's parametric dispersion trend and gene-wise dispersion rules, reduced models "
        "fitted on their own for the likelihood-ratio tests).</p>",
        _de_mode_html(de.get("mode", "calibrated"), de.get("permutation_nulls", 0)),
    ]
    if de:
        parts.append("<pre>" + e(str(de)) + "</pre>")
    if designs is not None and len(designs):
        parts.append(designs.to_html(index=False, escape=True))
    parts += [
        "<h2>Signatures</h2>",
        f"<p>Methods: {e(', '.join(sig.get('methods', ['ulm'])))}; primary method scores "
        "each sample alone so scores do not change when a batch is added; mixed models "
        "score ~ visit x responder + (1|patient) (REML), BH across signatures.</p>",
        "<h2>Cytokines</h2>",
        f"<p>Left-censored readings substituted by "
        f"<b>{e(str(cyto.get('substitution', 'lloq/sqrt2')))}</b> and analysed on log10; "
        f"plate adjustment: {e(str(cyto.get('plate_adjustment', 'none')))}; mixed models "
        "log10(value) ~ visit x responder + (1|patient).</p>",
        "<h2>Clinical endpoints</h2><p>Exact (Clopper-Pearson) CIs, Kaplan-Meier survival "
        "until HSCT, Aalen-Johansen cumulative incidence with competing events, Simon "
        "(1989) optimal two-stage design.</p>",
        _clinical_choices(clin),
        _resampling(config),
        f"<h2>Reproducibility</h2><p>Seed: <b>{e(str(config.get('seed')))}</b>. Same inputs "
        "and seed give identical tables.</p>",
        "<h2>Software versions</h2><p>As recorded by each rule's script in the environment it "
        "ran in (its conda environment under <code>--sdm conda</code>): every third-party "
        "package the script imported; a package at two versions in two environments has "
        "two rows.</p>",
    ]
    primary = (
        versions["primary"].astype(bool)
        if "primary" in versions
        else pd.Series(True, index=versions.index)
    )
    for title, rows in (
        ("Analysis packages", versions[primary]),
        ("Their dependencies, as imported", versions[~primary]),
    ):
        if not len(rows):
            continue
        parts += [
            f"<h3>{e(title)}</h3><table border='1' cellpadding='3'>",
            "<tr><th>package</th><th>version</th><th>rules</th></tr>",
        ]
        parts += [
            f"<tr><td>{e(str(r.package))}</td><td>{e(str(r.version))}</td>"
            f"<td>{e(str(r.rules))}</td></tr>"
            for r in rows.itertuples(index=False)
        ]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _resampling(config: dict) -> str:
    """Bootstrap resamples and the Mann-Whitney p-value rule in force, one paragraph."""
    e = html.escape
    resp = config.get("response", {})
    nb = {
        "mixed models of signatures": config.get("signatures", {}).get("n_boot"),
        "cytokines": config.get("cytokines", {}).get("n_boot"),
        "cell-type composition": config.get("singlecell", {}).get("composition_n_boot"),
        "AUC and Spearman CIs": resp.get("n_boot"),
    }
    counts = ", ".join(f"{k} {v}" for k, v in nb.items() if v is not None)
    return (
        "<h2>Resampling</h2><p>Percentile 95% CIs from patient-level bootstrap resamples "
        "(seeded per feature; patients drawn within response group, all patients together for "
        f"Spearman): {e(counts)}. Mann-Whitney p-values: "
        "exact without ties; with ties the exact permutation distribution of the mid-rank sum "
        "over every group arrangement (two-sided P(|W - E W| &gt;= |w - E W|), as R's coin "
        "package) when "
        f"there are at most {e(str(resp.get('exact_max_arrangements', '')))} arrangements, else "
        f"{e(str(resp.get('n_perm', '')))} seeded random arrangements; the table's note says "
        "which.</p>"
    )


def _clinical_choices(clin: dict) -> str:
    """The clinical rules in force, as one paragraph of the methods page."""
    e = html.escape
    win = clin.get("safety_window", {})
    hsct = "competing event" if clin.get("hsct_competing", True) else "censoring"
    return (
        f"<p>Response-rate rule: <b>{e(str(clin.get('rate_rule', 'w8_or_preconditioning')))}"
        "</b> (w8_or_preconditioning: W8, or the pre-conditioning assessment for patients "
        "conditioned before W8; itt: visits as listed). Time to response: death and HSCT "
        f"({e(hsct)}); cumulative incidence CIs from Gray's variance (as R cmprsk) on the "
        "log(-log) scale, at D28, W8, pre-conditioning and end of follow-up; median CIs by "
        "band inversion (Brookmeyer-Crowley). Safety window: day "
        f"{e(str(win.get('start_day', 0)))} to "
        f"<b>{e(str(win.get('end', 'day_before_conditioning')))}</b>; events outside are "
        "listed separately. PK statistics falling below the LLOQ are reported as &lt; LLOQ.</p>"
    )
