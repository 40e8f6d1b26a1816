"""Whole runs side by side and runs that fail or skip: one lock per results root (two cohorts
at once from one working directory, a second run on a busy root refused), the failing rule's
log holding its error, and a small cohort whose group comparisons are skipped, not failed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from rhlh import tables
from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import EXAMPLE, run_workflow, workflow_command

pytestmark = pytest.mark.slow


def _popen(workdir, log, config, targets, *args):
    cmd = workflow_command(workdir, *args, config=config, targets=targets, cores=1)
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )


def test_two_cohorts_at_once_and_a_busy_results_root_refused(tmp_path):
    """Two cohorts from one working directory (one .snakemake/) at once both complete; while
    the first is running (after the second ended, which removes Snakemake's shared lock folder)
    another run on the first one's results root is refused with a lock message."""
    small = tmp_path / "small"
    write_cohort(simulate_cohort(n_patients=6, n_genes=300, seed=11), small, "tsv")
    # the response test's permutations (about 67 of them) keep the first run busy for
    # the refusals below, however fast the rest has become
    slow = tmp_path / "slow.yaml"
    slow.write_text("de:\n  permutation_nulls: 200000\n")
    cfg_a = {"cohort": str(EXAMPLE), "results": "res_a"}
    cfg_b = {"cohort": str(small), "results": "res_b"}
    # on one core: validation, the mixed models and the DE fits with their permutations (a
    # few minutes; the mixed models alone, now fast, ended before the refusals were tried)
    target_a = [
        "res_a/cytokines/mixed_models.tsv",
        "res_a/signatures/mixed_models.tsv",
        "res_a/de/lrt_time_by_response.tsv",
    ]
    target_b = ["res_b/inputs/summary.tsv", "res_b/clinical/responders.tsv"]
    log_a = open(tmp_path / "a.log", "w")
    a = _popen(tmp_path, log_a, cfg_a, target_a, "--configfile", str(slow))
    try:
        b = run_workflow(tmp_path, config=cfg_b, targets=target_b, timeout=600)
        assert b.returncode == 0, b.stderr[-3000:]
        assert (tmp_path / "res_b/clinical/responders.tsv").exists()
        assert a.poll() is None, "the first run ended before the test could use it"
        for extra in ((), ("--workflow-profile", "none"), ("--unlock",)):
            c = run_workflow(tmp_path, *extra, config=cfg_a, targets=target_a, timeout=300)
            assert a.poll() is None, "the first run ended before the refusal could be tried"
            assert c.returncode != 0, (extra, c.stderr[-2000:])
            assert "Results root 'res_a' is locked: another run is using it" in c.stderr
            assert f"pid {a.pid}" in c.stderr
            assert "IncompleteFilesException" not in c.stderr + c.stdout
            assert "Traceback" not in c.stderr
        assert a.poll() is None, "the refusals must have happened while the first run was live"
        assert a.wait(timeout=900) == 0, (tmp_path / "a.log").read_text()[-3000:]
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
        log_a.close()
    text = (tmp_path / "a.log").read_text()
    assert "FileNotFoundError" not in text
    assert all((tmp_path / t).stat().st_size > 0 for t in target_a)
    # the lock ends with its run: the same root is free again, nothing left to do
    r = run_workflow(tmp_path, "-n", "--configfile", str(slow), config=cfg_a, targets=target_a)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Nothing to be done" in r.stdout + r.stderr


def test_lock_is_released_when_a_run_is_killed(tmp_path):
    """kill -9 of a run leaves no lock of ours behind (the kernel drops it)."""
    log = open(tmp_path / "a.log", "w")
    cfg = {"cohort": str(EXAMPLE), "results": "results"}
    proc = _popen(tmp_path, log, cfg, ["results/cytokines/mixed_models.tsv"])
    deadline = time.time() + 300
    while time.time() < deadline and "rule " not in (tmp_path / "a.log").read_text():
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    r = run_workflow(tmp_path, "-n", config=cfg)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "is locked: another run" not in r.stderr


def test_failing_rule_has_its_error_in_its_log(tmp_path, cohort_copy):
    """A rule script that raises: its log file (the one Snakemake's error names) holds the
    error and its traceback."""
    cfg = {"cohort": "cohort", "results": "results"}
    counts = "results/inputs/validated/counts.h5ad"
    r = run_workflow(tmp_path, config=cfg, targets=[counts])
    assert r.returncode == 0, r.stderr[-3000:]
    (tmp_path / counts).write_bytes(b"this is not an h5ad file\n")  # a damaged derived file
    r = run_workflow(tmp_path, config=cfg, targets=["results/expression/normalized.h5ad"])
    assert r.returncode != 0
    log = (tmp_path / "results/logs/expression_normalize/log.txt").read_text()
    assert "ERROR the step stopped:" in log, log
    assert "Traceback (most recent call last)" in log
    assert "file signature not found" in log  # the error itself, from h5py


def test_small_cohort_without_non_responders_runs_to_the_end(tmp_path):
    """A valid but small cohort (3 patients, all responders): what needs both response groups
    is skipped with a line in its log and in the report's headline, everything else runs."""
    cohort = simulate_cohort(n_patients=3, n_genes=300, seed=4, responder_fraction=1.0)
    write_cohort(cohort, tmp_path / "cohort", "tsv")
    r = run_workflow(tmp_path, config={"cohort": "cohort", "results": "results"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "Traceback" not in r.stderr
    res = tmp_path / "results"
    responders = tables.read_responders(res / "clinical/responders.tsv")
    assert len(responders) == 3 and responders["responder"].eq(True).all()
    skipped = tables.read_de_skipped(res / "de/skipped.tsv")
    assert list(skipped["design"]) == ["time_by_response"]
    assert "no non-responder among the 3 patient(s)" in skipped["reason"].iloc[0]
    lrt = tables.read_de_table(res / "de/lrt_time_by_response.tsv")
    assert lrt["pvalue"].isna().all() and lrt["reason"].str.startswith("no non-responder").all()
    assert tables.read_de_table(res / "de/lrt_time.tsv")["pvalue"].notna().any()
    # a visit nobody reached (no D56 draw in this cohort): its table, every gene, no statistics
    assert "\tD56\t" not in (tmp_path / "cohort/samples.tsv").read_text()
    d56 = tables.read_de_table(res / "de/visit/D56_vs_D0.tsv")
    assert len(d56) == 300 and d56["pvalue"].isna().all()
    assert "design time_by_response: skipped" in (res / "logs/de_fit/log.txt").read_text()
    for rule in ("signatures_models", "cytokines_models", "response_associations"):
        log = (res / "logs" / rule / "log.txt").read_text()
        assert "skipped: " in log and "0 non-responder(s)" in log, (rule, log)
    headline = tables.read_result(res / "report/headline.tsv")
    assert "skipped" in set(headline["topic"])
    assert (res / "report/tables/de_skipped.html").exists()
