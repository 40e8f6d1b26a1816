"""Reliability of whole runs: reproducible tables, no network, inputs untouched, kill + resume."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import EXAMPLE, NETGUARD, REPO, SNAKEMAKE, run_workflow, tree_digests

pytestmark = pytest.mark.slow


def test_network_guard_is_active(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(NETGUARD))
    code = "import socket; socket.create_connection(('192.0.2.1', 80), timeout=1)"
    r = subprocess.run(
        [str(Path(SNAKEMAKE).with_name("python")), "-c", code],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "network access blocked" in r.stderr


def test_noop_rerun(example_run):
    r = run_workflow(example_run, "-n", config={"cohort": str(EXAMPLE), "results": "results"})
    assert r.returncode == 0
    assert "Nothing to be done" in r.stdout + r.stderr


def test_kill_during_de_and_resume(example_run, tmp_path):
    """A run killed in the DE stage and resumed gives the tables of the session's example run
    byte for byte: an independent second run of the same inputs and seed (test_deploy's
    deployed copy is a third)."""
    cmd = [
        SNAKEMAKE,
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(tmp_path),
        "--cores",
        "2",
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        "--config",
        f"cohort={EXAMPLE}",
        "results=results",
    ]
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
    # what Snakemake tells the user after a kill: unlock, then rerun the incomplete jobs
    cfg = {"cohort": str(EXAMPLE), "results": "results"}
    assert run_workflow(tmp_path, "--unlock", config=cfg).returncode == 0
    r = run_workflow(tmp_path, "--rerun-incomplete", config=cfg)
    assert r.returncode == 0, r.stderr[-4000:]
    assert tree_digests(example_run / "results") == tree_digests(tmp_path / "results")
