"""Stages that are left out of a workflow: a rule asks whether another stage runs with
produced() (workflow/rules/common.smk), lazily, so the answer follows the rule files included,
in any order. Dry runs of Snakefiles that include only some of the stage files."""

from __future__ import annotations

import re
import subprocess

import pytest

from .conftest import EXAMPLE, REPO, SNAKEMAKE

CANONICAL = ["clinical", "expression", "de", "signatures", "cytokines", "response"]


def dry_run(tmp_path, stages) -> dict[str, list[list[str]]]:
    """Plan of a workflow of common, inputs and these stage files: {rule: [inputs of each job]},
    paths relative to the results root."""
    includes = "".join(
        f'include: "{REPO}/workflow/rules/{s}.smk"\n' for s in ["common", "inputs", *stages]
    )
    (tmp_path / "Snakefile").write_text(
        f'configfile: "{REPO}/config/config.yaml"\n\n\n{includes}\n\n'
        "rule all:\n    default_target: True\n    input:\n        all_targets,\n"
    )
    results = tmp_path / "results"
    r = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "1", "--config", f"cohort={EXAMPLE}", f"results={results}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    plan: dict[str, list[list[str]]] = {}
    for m in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n)*)", r.stdout, flags=re.M):
        found = re.search(r"^    input: (.*)$", m.group(2), flags=re.M)
        inputs = found.group(1).split(", ") if found else []
        plan.setdefault(m.group(1), []).append(
            sorted(p.removeprefix(f"{results}/") for p in inputs)
        )
    return plan


def test_cytokines_and_response_without_omics(tmp_path):
    plan = dry_run(tmp_path, ["clinical", "cytokines", "response"])
    assert "cytokines_models" in plan
    # no signature scores: the rmcorr table is no target
    assert "cytokines_rmcorr" not in plan
    assert plan["response_associations"] == [
        ["clinical/responders.tsv", "cytokines/mixed_models.tsv", "cytokines/values.tsv"]
    ]


def test_response_reads_lrt_genes_from_raw_counts_without_expression_stage(tmp_path):
    plan = dry_run(tmp_path, ["clinical", "de", "cytokines", "response"])
    (inputs,) = plan["response_associations"]
    assert {"de/lrt_time.tsv", "de/lrt_time_by_response.tsv"} <= set(inputs)
    assert "inputs/validated/counts.h5ad" in inputs
    assert "expression/normalized.h5ad" not in inputs


@pytest.mark.parametrize("order", ["canonical", "reversed"])
def test_every_stage_in_any_include_order(tmp_path, order):
    stages = CANONICAL if order == "canonical" else CANONICAL[::-1]
    plan = dry_run(tmp_path, stages)
    assert plan["cytokines_rmcorr"] == [["cytokines/values.tsv", "signatures/scores.tsv"]]
    assert plan["response_associations"] == [
        sorted(
            [
                "clinical/responders.tsv",
                "signatures/scores.tsv",
                "signatures/mixed_models.tsv",
                "cytokines/values.tsv",
                "cytokines/mixed_models.tsv",
                "de/lrt_time.tsv",
                "de/lrt_time_by_response.tsv",
                "expression/normalized.h5ad",
            ]
        )
    ]
    assert "clinical/responders.tsv" in plan["expression_qc"][0]
    enrichment = plan["signatures_enrichment"][0]
    assert "de/lrt_time.tsv" in enrichment and "de/visit/D7_vs_D0.tsv" in enrichment


def test_expression_qc_without_clinical_stage(tmp_path):
    plan = dry_run(tmp_path, ["expression"])
    assert "clinical_responders" not in plan
    assert plan["expression_qc"] == [["expression/normalized.h5ad", "inputs/validated/counts.h5ad"]]
