"""Reliability of whole runs: reproducible tables, no network, inputs untouched, kill + resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import EXAMPLE, REPO, SNAKEMAKE, run_workflow

pytestmark = pytest.mark.slow
NETGUARD = REPO / "tests" / "netguard"


def _digests(root: Path, pattern="*.tsv") -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob(pattern))
        if "logs" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """One complete run of the example with networking blocked; returns its folder."""
    work = tmp_path_factory.mktemp("clean")
    before = _digests(EXAMPLE, "*")
    env_extra = {"PYTHONPATH": str(NETGUARD)}
    r = run_workflow(work, config={"cohort": str(EXAMPLE), "results": "results"}, env=env_extra)
    assert r.returncode == 0, r.stderr[-4000:]
    assert _digests(EXAMPLE, "*") == before, "the workflow modified its input folder"
    return work


def test_network_guard_is_active(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(NETGUARD))
    code = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=1)"
    r = subprocess.run([str(Path(SNAKEMAKE).with_name("python")), "-c", code], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "network access blocked" in r.stderr


def test_noop_rerun(clean_run):
    r = run_workflow(clean_run, "-n", config={"cohort": str(EXAMPLE), "results": "results"})
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr


def test_two_runs_give_identical_tables(clean_run, tmp_path):
    r = run_workflow(tmp_path, config={"cohort": str(EXAMPLE), "results": "results"})
    assert r.returncode == 0, r.stderr[-4000:]
    a, b = _digests(clean_run / "results"), _digests(tmp_path / "results")
    assert a and a == b


def test_kill_during_de_and_resume(clean_run, tmp_path):
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
           "--configfile", str(REPO / "config" / "config.yaml"),
           "--config", f"cohort={EXAMPLE}", "results=results"]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 600
    killed = False
    while time.time() < deadline and proc.poll() is None:
        text = (tmp_path / "first.log").read_text()
        if "rule de_" in text or "Rule: de_" in text:
            time.sleep(3)  # let the DE job get going
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.5)
    proc.wait()
    log.close()
    assert killed, "the run never reached the DE stage"
    # no half-written table under a final name
    for p in (tmp_path / "results").rglob("*.tsv"):
        assert p.stat().st_size > 0
    r = run_workflow(tmp_path, "--rerun-incomplete",
                     config={"cohort": str(EXAMPLE), "results": "results"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert _digests(clean_run / "results") == _digests(tmp_path / "results")
