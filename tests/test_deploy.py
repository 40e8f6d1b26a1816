"""A deployed copy runs the whole workflow (snakedeploy, as the Snakemake catalog documents)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, SNAKEMAKE, tree_digests

SNAKEDEPLOY = str(Path(sys.executable).with_name("snakedeploy"))
SKIP = shutil.ignore_patterns(".venv", ".git", "results", ".snakemake", "__pycache__", "*.egg-info")


def deploy(tmp_path) -> Path:
    """snakedeploy deploy-workflow from a copy of this checkout into tmp_path/deployed."""
    source = tmp_path / "rhlh"
    shutil.copytree(REPO, source, ignore=SKIP)
    dest = tmp_path / "deployed"
    r = subprocess.run(
        [SNAKEDEPLOY, "deploy-workflow", str(source), str(dest), "--branch", "main"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    snakefile = dest / "workflow" / "Snakefile"
    text = snakefile.read_text()
    # from a local folder snakedeploy writes the module's path relative to the source;
    # from GitHub it writes github("owner/repo", path="workflow/Snakefile", tag=...)
    assert re.search(r'snakefile:\s*\n\s*"workflow/Snakefile"', text), text
    snakefile.write_text(text.replace('"workflow/Snakefile"', f'"{source}/workflow/Snakefile"'))
    assert (dest / "config" / "config.yaml").exists()
    return dest


def test_deployed_copy_plans_the_whole_workflow(tmp_path):
    dest = deploy(tmp_path)
    r = subprocess.run(
        [SNAKEMAKE, "-n", "--cores", "2"], cwd=dest, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Nothing to be done" not in r.stdout + r.stderr
    for rule in ("validated_table", "de_fit", "signatures_score", "report_summary"):
        assert re.search(rf"^(local)?rule {rule}:", r.stdout, flags=re.M), rule


@pytest.mark.slow
def test_deployed_copy_gives_the_repository_tables(tmp_path, example_run):
    """snakemake --cores 2 in the deployed folder, on its own config (the example cohort)."""
    dest = deploy(tmp_path)
    r = subprocess.run(
        [SNAKEMAKE, "--cores", "2"], cwd=dest, capture_output=True, text=True, timeout=1200
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ours, ref = tree_digests(dest / "results"), tree_digests(example_run / "results")
    assert len(ours) > 50 and ours == ref


def test_plain_snakemake_at_the_root_loads_the_default_profile(tmp_path):
    """No --cores, no --workflow-profile: profiles/default is found and gives the cores."""
    r = subprocess.run(
        [SNAKEMAKE, "-n", "--config", f"results={tmp_path / 'results'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "workflow specific profile profiles/default" in out, out[-2000:]
