"""A new delivery of samples (docs/new-batches.md): which jobs rerun, and a rerun with nothing new
does nothing.

The example cohort is split into its two sequencing batches: B1 is the first delivery, B2 is
appended later (rows of samples.tsv and cytokines.tsv, columns of the counts matrix). The clinical
tables (patients, responses, pk, events) are complete from the start. The finished state of a
run is emulated with `snakemake --touch` on empty outputs (a real run takes minutes), so this
checks Snakemake's file-time rerun decisions on the real DAG, not the numbers.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.test_slurm import copy_workflow, snakemake

# validated tables that do not depend on a sample delivery
CLINICAL_TABLES = {"patients", "responses", "pk", "events"}


def read_summary(text: str) -> list[dict]:
    """Rows of `snakemake --summary` (output_file, rule, status, plan, ...)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    rows = csv.DictReader(io.StringIO("\n".join(lines[start:])), delimiter="\t")
    return [r for r in rows if r.get("plan")]


def summary(wf: Path, *extra) -> list[dict]:
    """`snakemake --dry-run --summary` of the working copy."""
    proc = snakemake(wf, "--dry-run", "--summary", "--config", "results=results", *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return read_summary(proc.stdout)


def table_of(path: str) -> str | None:
    """validated table name of a results/inputs/validated/<table>.tsv path."""
    p = Path(path)
    return p.stem if p.parent.name == "validated" and p.suffix == ".tsv" else None


def pretend_finished(wf: Path, rows: list[dict] | None = None) -> None:
    """Emulate a finished run: create each missing output, then let snakemake --touch order
    their times as after a real run (rows: a summary already at hand)."""
    for row in rows if rows is not None else summary(wf):
        out = wf / row["output_file"]
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        # directory() outputs (figure folders) are the ones without a file suffix
        if out.suffix:
            out.touch()
        else:
            out.mkdir()
    proc = snakemake(wf, "--touch", "--cores", "1", "--config", "results=results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def split_delivery(cohort: Path, first_batch: str):
    """Keep only `first_batch` in the cohort folder; return the held-back rest of each file."""
    samples = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    cyto = pd.read_csv(cohort / "cytokines.tsv", sep="\t", dtype=str, keep_default_na=False)
    counts = pd.read_csv(cohort / "counts.tsv.gz", sep="\t", dtype=str)
    first = samples["batch"] == first_batch
    first_ids = set(samples.loc[first, "sample_id"])
    later_ids = set(samples.loc[~first, "sample_id"])
    assert first_ids and later_ids, "the example needs two batches"
    annot = [c for c in counts.columns if c not in first_ids | later_ids]
    samples[first].to_csv(cohort / "samples.tsv", sep="\t", index=False)
    cyto[cyto["sample_id"].isin(first_ids)].to_csv(cohort / "cytokines.tsv", sep="\t", index=False)
    keep = annot + [c for c in counts.columns if c in first_ids]
    counts[keep].to_csv(cohort / "counts.tsv.gz", sep="\t", index=False)
    return {
        "samples": samples[~first],
        "cytokines": cyto[cyto["sample_id"].isin(later_ids)],
        "counts": counts[annot + [c for c in counts.columns if c in later_ids]],
    }


def deliver(cohort: Path, batch: dict) -> None:
    """What docs/new-batches.md asks: append rows to the sheets, add columns to the counts."""
    with open(cohort / "samples.tsv", "a") as fh:
        batch["samples"].to_csv(fh, sep="\t", index=False, header=False)
    with open(cohort / "cytokines.tsv", "a") as fh:
        batch["cytokines"].to_csv(fh, sep="\t", index=False, header=False)
    counts = pd.read_csv(cohort / "counts.tsv.gz", sep="\t", dtype=str)
    merged = counts.merge(batch["counts"], on=["gene_id", "gene_name"], how="outer", sort=False)
    assert len(merged) == len(counts), "both deliveries must list the same genes"
    merged.to_csv(cohort / "counts.tsv.gz", sep="\t", index=False)


@pytest.fixture(scope="module")
def first_delivery(tmp_path_factory):
    """A working copy holding only batch B1, with a (pretended) finished run."""
    wf = copy_workflow(tmp_path_factory.mktemp("newbatch") / "wf")
    later = split_delivery(wf / "example" / "cohort", "B1")
    pretend_finished(wf)
    return wf, later


def test_new_batch_reruns_sample_jobs_only_and_then_nothing(first_delivery):
    wf, later = first_delivery
    cohort = wf / "example" / "cohort"
    untouched = {p.name: p.stat().st_mtime_ns for p in cohort.iterdir()}
    time.sleep(0.05)
    deliver(cohort, later)
    changed = {p.name for p in cohort.iterdir() if p.stat().st_mtime_ns != untouched[p.name]}
    assert changed == {"samples.tsv", "cytokines.tsv", "counts.tsv.gz"}

    rows = summary(wf)
    pending = {r["output_file"] for r in rows if r["plan"] == "update pending"}
    kept = [r for r in rows if r["plan"] == "no update"]
    rules_pending = {r["rule"] for r in rows if r["output_file"] in pending}
    # the new samples reach every sample-based step ...
    for path in ("inputs/validated/samples.tsv", "inputs/validated/cytokines.tsv"):
        assert f"results/{path}" in pending
    assert {"ingest_counts", "input_summary"} <= rules_pending
    all_rules = {r["rule"] for r in rows}
    sample_based = ("expression_", "de_", "signatures_score", "signatures_models", "cytokines_")
    # enrichment reads only the DE tables, so it follows the samples once a DE rule exists
    if any(r.startswith("de_") for r in all_rules):
        sample_based += ("signatures_enrichment",)
    for rule in all_rules:
        if rule.startswith(sample_based + ("response_",)):
            assert rule in rules_pending, f"{rule} did not rerun for the new batch"
    # ... and the clinical-only steps keep their results
    kept_tables = {table_of(r["output_file"]) for r in kept if r["rule"] == "validated_table"}
    assert kept_tables == CLINICAL_TABLES
    assert "clinical_responders" in {r["rule"] for r in kept}

    # the rerun happens (emulated); a second invocation then has nothing to do
    pretend_finished(wf, rows)
    proc = snakemake(wf, "--dry-run", "--config", "results=results")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_batch_stops_before_any_job(first_delivery, tmp_path):
    """A delivery reusing a sample id stops the run with the validation message; no job runs."""
    wf, later = first_delivery
    bad = copy_workflow(tmp_path / "wf")
    cohort = bad / "example" / "cohort"
    for name in ("samples.tsv", "cytokines.tsv", "counts.tsv.gz"):
        (cohort / name).write_bytes((wf / "example" / "cohort" / name).read_bytes())
    samples = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    dup = samples.iloc[[0]].assign(batch="B9")
    with open(cohort / "samples.tsv", "a") as fh:
        dup.to_csv(fh, sep="\t", index=False, header=False)
    proc = snakemake(bad, "--cores", "1", "--config", "results=results")
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "samples.tsv" in message and dup["sample_id"].iloc[0] in message
    written = [p for p in (bad / "results").rglob("*") if p.is_file()]
    assert all("logs" in p.relative_to(bad / "results").parts for p in written), written
