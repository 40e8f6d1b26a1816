"""Shared fixtures: a copy of the example cohort, and a Snakemake runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example" / "cohort"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# snakemake-executor-plugin-slurm runs `scontrol show config` whenever Snakemake starts (for
# a help text). Where Slurm's client is installed but no controller answers (a machine after
# the live Slurm test stopped its daemons), each start then waits ~10 s for scontrol's own
# timeout. The tests run scontrol through this wrapper: `show config` gets 1 s, anything else
# (the live test's up.sh, the plugin on a running cluster) goes straight to the real command.
SCONTROL_WRAPPER = """#!/bin/sh
here=$(dirname "$0")
PATH=$(printf '%s' "$PATH" | tr ':' '\\n' | grep -vxF "$here" | paste -sd: -)
real=$(command -v scontrol) || exit 127
if [ "$1" = show ] && [ "$2" = config ]; then exec timeout 1 "$real" "$@"; fi
exec "$real" "$@"
"""


def pytest_configure(config):
    """Put the scontrol wrapper first on PATH for every command the tests start."""
    import tempfile

    wrapper_dir = Path(tempfile.mkdtemp(prefix="rhlh-test-bin-"))
    (wrapper_dir / "scontrol").write_text(SCONTROL_WRAPPER)
    (wrapper_dir / "scontrol").chmod(0o755)
    os.environ["PATH"] = f"{wrapper_dir}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def cohort_copy(tmp_path) -> Path:
    """A writable copy of the example cohort folder."""
    dst = tmp_path / "cohort"
    shutil.copytree(EXAMPLE, dst)
    return dst


def workflow_command(workdir: Path, *args, config=None, targets=(), cores: int = 2) -> list:
    """The snakemake command line of the tests (repo's Snakefile, ``workdir`` as working
    directory); targets first, since --configfile and --config take every following word."""
    cmd = [SNAKEMAKE, *targets, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += ["--cores", str(cores), "--configfile", str(REPO / "config" / "config.yaml")]
    cmd += list(args)
    if config:
        cmd += ["--config"] + [f"{k}={v}" for k, v in config.items()]
    return cmd


def run_workflow(
    workdir: Path, *args, config: dict | None = None, targets=(), timeout=1200, env=None
):
    """Run snakemake on the repo's Snakefile with ``workdir`` as working directory."""
    cmd = workflow_command(workdir, *args, config=config, targets=targets)
    env = dict(os.environ, PYTHONHASHSEED="0", **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def files_under(root: Path):
    """Relative paths of all files under root (empty list if it does not exist)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


NETGUARD = REPO / "tests" / "netguard"


def tree_digests(root: Path, pattern="*.tsv") -> dict[str, str]:
    """sha256 of every file matching pattern under root, logs excluded."""
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob(pattern))
        if "logs" not in p.relative_to(root).parts
    }


@pytest.fixture(scope="session")
def example_run(tmp_path_factory):
    """One complete run of the example with networking blocked; returns its working folder."""
    work = tmp_path_factory.mktemp("example_run")
    before = tree_digests(EXAMPLE, "*")
    r = run_workflow(
        work,
        config={"cohort": str(EXAMPLE), "results": "results"},
        env={"PYTHONPATH": str(NETGUARD)},
    )
    assert r.returncode == 0, r.stderr[-4000:]
    assert tree_digests(EXAMPLE, "*") == before, "the workflow modified its input folder"
    return work
