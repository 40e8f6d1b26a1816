"""Cluster execution: the profiles and workflow/rules/cluster.smk, and a live SLURM run.

The live test (test_slurm_run_matches_local_run) brings up a real single-node Slurm cluster with
tools/slurm/up.sh, runs the example workflow through snakemake-executor-plugin-slurm, and checks
that every result table is byte-identical to a local run's. It runs only with RHLH_SLURM_TEST=1,
on Linux, as root (CI: .ci/run sets it); it stops only the daemons up.sh started for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rhlh.resources import files_mb, ingest_memory_mb, ingest_runtime_min

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROFILES = REPO / "profiles"
# what a working copy of the workflow needs (results, .snakemake and .venv stay behind)
WORKFLOW_FILES = (
    "Snakefile",
    "workflow",
    "profiles",
    "scripts",
    "config",
    "resources",
    "envs",
    "example",
)


def load_profile(name: str) -> dict:
    """A profile's config.yaml as a dict."""
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def copy_workflow(dst: Path) -> Path:
    """A working copy of the workflow (same relative paths as the repository) in dst."""
    dst.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


def snakemake(workdir: Path, *args, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run snakemake in workdir with the venv first on PATH (jobs start the same Python)."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    full_env["PATH"] = f"{BIN}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "snakemake"), *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def slurm_dry_run(workdir: Path, *config, env=None) -> subprocess.CompletedProcess:
    """A dry run with the SLURM profile and test site settings (partition debug, account ci);
    ``config``: the key=value words of --config."""
    site = {"RHLH_SLURM_PARTITION": "debug", "RHLH_SLURM_ACCOUNT": "ci", **(env or {})}
    args = ["-n", "--workflow-profile", "profiles/slurm", "--config", *config]
    return snakemake(workdir, *args, env=site)


def rule_names(workdir: Path, results: Path) -> set[str]:
    """Names of the rules the workflow declares (snakemake --list-rules)."""
    proc = snakemake(workdir, "--list-rules", "--config", f"results={results}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {line.strip() for line in proc.stdout.splitlines() if re.fullmatch(r"\s*\w+", line)}


def localrules_declared() -> list[str]:
    """Rule names listed under `localrules:` in workflow/rules/cluster.smk."""
    text = (REPO / "workflow" / "rules" / "cluster.smk").read_text()
    block = re.search(r"^localrules:\s*\n((?:[ \t]+\w+,?\s*\n)+)", text, flags=re.M)
    assert block, "no localrules block in cluster.smk"
    return re.findall(r"\w+", block.group(1))


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    """One working copy of the workflow for the quick checks of this module."""
    return copy_workflow(tmp_path_factory.mktemp("cluster") / "wf")


# --- quick checks: always run --------------------------------------------------------------


def test_profiles_parse_and_carry_required_settings():
    default, slurm = load_profile("default"), load_profile("slurm")
    for prof in (default, slurm):
        assert prof["rerun-incomplete"] is True and prof["printshellcmds"] is True
        assert prof["retries"] >= 1, "memory-bound rules need a retry to get more memory"
        assert {"mem_mb", "runtime"} <= set(prof["default-resources"])
    assert slurm["executor"] == "slurm"
    assert slurm["jobs"] >= 1 and slurm["latency-wait"] >= 5
    dres = slurm["default-resources"]
    assert "$RHLH_SLURM_PARTITION" in dres["slurm_partition"]
    assert "$RHLH_SLURM_ACCOUNT" in dres["slurm_account"]
    assert "slurm_extra" in dres


def test_profiles_agree_on_threads_and_leave_memory_to_the_rules():
    """Both profiles name the same multi-threaded rules; neither sets per-rule memory or
    runtime, so the rules' requests from their input size (rhlh.resources) reach the jobs."""
    default, slurm = load_profile("default"), load_profile("slurm")
    assert set(default["set-threads"]) == set(slurm["set-threads"])
    for prof in (default, slurm):
        assert "set-resources" not in prof


# the rules whose memory follows their input or grows with the attempt: cluster jobs
HEAVY_RULES = {
    "ingest_counts",
    "expression_normalize",
    "expression_qc",
    "de_fit",
    "signatures_score",
    "signatures_models",
    "signatures_enrichment",
    "cytokines_models",
    "response_associations",
}


def test_profile_and_localrule_names_are_rules(workflow_copy, tmp_path):
    rules = rule_names(workflow_copy, tmp_path / "results")
    assert {"all", "validated_table", "ingest_counts"} <= rules
    unknown = set(localrules_declared()) - rules
    assert not unknown, f"cluster.smk localrules names unknown rules: {sorted(unknown)}"
    for name in ("default", "slurm"):
        prof = load_profile(name)
        named = set(prof.get("set-resources", {})) | set(prof.get("set-threads", {}))
        assert named - rules == set(), f"profile {name} names unknown rules {named - rules}"
    # the heavy steps must stay cluster jobs
    assert HEAVY_RULES <= rules
    assert not HEAVY_RULES & set(localrules_declared())


def test_profile_resources_reach_jobs(workflow_copy, tmp_path):
    """Dry run with the SLURM profile: site settings and per-rule memory reach the jobs.

    (A dry run cannot show which jobs stay local; the live test checks that.)"""
    proc = slurm_dry_run(workflow_copy, f"results={tmp_path / 'results'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "localrules directive specifies rules that are not" not in out
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            jobs.setdefault(m.group(1), []).append(block)
    (ingest,) = jobs["ingest_counts"]
    delivery = files_mb(sorted((REPO / "example" / "cohort").glob("counts*")))
    assert re.search(rf"\bmem_mb={ingest_memory_mb(delivery)}\b", ingest), ingest
    assert re.search(rf"\bruntime={ingest_runtime_min(delivery)}\b", ingest), ingest
    assert "slurm_partition=debug" in ingest and "slurm_account=ci" in ingest
    assert len(jobs["validated_table"]) == 6


def test_slurm_profile_without_site_settings_stops_early(workflow_copy, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RHLH_SLURM_")}
    proc = subprocess.run(
        [
            str(BIN / "snakemake"),
            "-n",
            "--workflow-profile",
            "profiles/slurm",
            "--config",
            f"results={tmp_path / 'results'}",
        ],
        cwd=workflow_copy,
        env=dict(env, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "export RHLH_SLURM_PARTITION" in out and "export RHLH_SLURM_ACCOUNT" in out
    # nothing ran: the message comes before any job
    assert not (tmp_path / "results" / "inputs").exists()


def fake_slurm_bin(path: Path, cpus: str | None) -> Path:
    """A folder of stand-ins for sinfo (printing ``cpus`` per node, or failing when None),
    squeue and sacct (the plugin asks for one of them even in a dry run)."""
    path.mkdir(parents=True, exist_ok=True)
    scripts = {
        "sinfo": f"printf '%s\\n' {cpus} {cpus}" if cpus else "exit 1",
        "squeue": "exit 0",
        "sacct": "exit 0",
    }
    for name, body in scripts.items():
        (path / name).write_text(f"#!/bin/sh\n{body}\n")
        (path / name).chmod(0o755)
    return path


def capped_threads(workflow_copy, tmp_path, env, *extra):
    """Dry run with the SLURM profile through a Snakefile that includes the workflow and prints
    the thread cap cluster.smk leaves (Snakemake gives each job min(threads, max_threads))."""
    (workflow_copy / "Snakefile.cap").write_text(
        'include: "Snakefile"\n\n\nprint("MAX_THREADS", workflow.resource_settings.max_threads)\n'
    )
    site = {"RHLH_SLURM_PARTITION": "debug", "RHLH_SLURM_ACCOUNT": "ci", **env}
    site["PATH"] = f"{env['PATH']}{os.pathsep}{os.environ['PATH']}" if "PATH" in env else None
    site = {k: v for k, v in site.items() if v is not None}
    args = ["-s", "Snakefile.cap", "-n", "--workflow-profile", "profiles/slurm", *extra]
    proc = snakemake(workflow_copy, *args, "--config", f"results={tmp_path / 'results'}", env=site)
    out = proc.stdout + proc.stderr
    m = re.search(r"^MAX_THREADS (\w+)$", out, flags=re.M)
    return proc, out, (m.group(1) if m else None)


def test_slurm_threads_are_capped_at_the_node_cpus(workflow_copy, tmp_path):
    """A 2-CPU node: the profile's 4 threads become 2 without --max-threads, from sinfo or
    RHLH_SLURM_MAX_CPUS, with a line naming the rules; a larger node keeps them."""
    two = str(fake_slurm_bin(tmp_path / "bin2", "2"))
    proc, out, cap = capped_threads(workflow_copy, tmp_path, {"PATH": two})
    assert proc.returncode == 0, out[-3000:]
    assert cap == "2", out[-3000:]
    assert "Threads capped at 2, the CPUs of one node (sinfo -p debug)" in out
    assert "de_fit 4 -> 2" in out and "expression_normalize 4 -> 2" in out
    assert not (tmp_path / "results" / "inputs").exists()
    # the variable wins over sinfo
    proc, out, cap = capped_threads(
        workflow_copy, tmp_path, {"PATH": two, "RHLH_SLURM_MAX_CPUS": "3"}
    )
    assert proc.returncode == 0 and cap == "3", out[-3000:]
    assert "(RHLH_SLURM_MAX_CPUS)" in out
    # a node with more CPUs than asked (cap above every rule's threads), or no sinfo answer
    # (nothing known, nothing capped)
    for env, want in (({"RHLH_SLURM_MAX_CPUS": "8"}, "8"), ({}, "None")):
        env["PATH"] = str(fake_slurm_bin(tmp_path / "bin0", None))
        proc, out, cap = capped_threads(workflow_copy, tmp_path, env)
        assert proc.returncode == 0 and cap == want, out[-3000:]
        assert "Threads capped" not in out
    # --max-threads below the node's CPUs stays as given
    proc, out, cap = capped_threads(workflow_copy, tmp_path, {"PATH": two}, "--max-threads", "1")
    assert proc.returncode == 0 and cap == "1", out[-3000:]
    # a bad value stops before any job
    proc, out, cap = capped_threads(
        workflow_copy, tmp_path, {"PATH": two, "RHLH_SLURM_MAX_CPUS": "two"}
    )
    assert proc.returncode != 0 and "RHLH_SLURM_MAX_CPUS='two'" in out
    # the local profile is not capped (its threads fit the machine it runs on)
    local = ["-n", "--config", f"results={tmp_path / 'results'}"]
    path = f"{two}{os.pathsep}{os.environ['PATH']}"
    proc = snakemake(workflow_copy, *local, env={"RHLH_SLURM_MAX_CPUS": "1", "PATH": path})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Threads capped" not in proc.stdout + proc.stderr


def test_cell_type_jobs_are_one_cluster_job_per_cell_type(workflow_copy, tmp_path):
    """Dry run of a single-cell cohort with the SLURM profile: each cell type's DE fit, figures
    and enrichment form one group job (no queue wait between them), the cell types apart."""
    from rhlh_dev.simulate import simulate_cohort, write_cohort

    cohort = simulate_cohort(n_patients=8, n_genes=400, seed=5)
    write_cohort(
        cohort, tmp_path / "cohort", "h5ad-sc", cells_per_sample=30, cell_types=("T", "NK")
    )
    fake = str(fake_slurm_bin(tmp_path / "bin", "4"))
    proc = slurm_dry_run(
        workflow_copy,
        f"cohort={tmp_path / 'cohort'}",
        f"results={tmp_path / 'results'}",
        env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    groups = re.split(r"Group job cell_type \(jobs in lexicogr\. order\):", out)[1:]
    assert len(groups) == 2, out[-3000:]
    members = []
    for block in groups:
        block = re.split(r"\n\[[^\]]+\]\n(?:local)?rule ", block)[0]  # up to the next job
        rules = sorted(re.findall(r"^    rule (\w+):", block, flags=re.M))
        cts = set(re.findall(r"wildcards: cell_type=(\w+)", block))
        members.append((rules, cts))
    want = ["de_figures_cell_type", "de_fit_cell_type", "signatures_enrichment_cell_type"]
    assert all(rules == want for rules, _ in members), members
    assert sorted(tuple(cts) for _, cts in members) == [("NK",), ("T",)], members


def test_slurm_scripts_are_valid_bash():
    for script in ("up.sh", "down.sh"):
        path = REPO / "tools" / "slurm" / script
        assert os.access(path, os.X_OK), f"{script} is not executable"
        proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


# --- live SLURM ----------------------------------------------------------------------------

LIVE = (
    os.environ.get("RHLH_SLURM_TEST") == "1"
    and sys.platform.startswith("linux")
    and hasattr(os, "geteuid")
    and os.geteuid() == 0
)
live = pytest.mark.skipif(not LIVE, reason="live SLURM test: set RHLH_SLURM_TEST=1, Linux, root")

# resamples/permutations cut so the whole live test fits the CI budget; both runs use them
FAST = {"n_boot": 5, "n_perm": 99}
# seconds each of the two runs may take (CI: 2 cores); raise it on a busy machine
RUN_TIMEOUT = int(os.environ.get("RHLH_SLURM_TIMEOUT", "420"))


def fast_overlay(workdir: Path) -> Path:
    """A config file lowering every n_boot / n_perm of config/config.yaml (keys that exist)."""
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    overlay = {}
    for section, values in config.items():
        if isinstance(values, dict):
            cut = {k: FAST[k] for k in values if k in FAST}
            if cut:
                overlay[section] = cut
    path = workdir / "config" / "ci_fast.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


def tables(results: Path) -> dict[str, bytes]:
    """Every TSV under results (logs excluded), keyed by relative path."""
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*.tsv"))
        if "logs" not in p.relative_to(results).parts
    }


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running single-node Slurm cluster; afterwards, only what this fixture started stops."""
    state = tmp_path_factory.mktemp("slurm-state")
    env = dict(os.environ, RHLH_SLURM_STATE=str(state))
    up = subprocess.run(
        ["bash", str(REPO / "tools" / "slurm" / "up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert up.returncode == 0, up.stderr[-4000:]
        settings = dict(
            line.split("=", 1) for line in up.stdout.splitlines() if line.startswith("RHLH_")
        )
        yield settings
    finally:
        down = subprocess.run(
            ["bash", str(REPO / "tools" / "slurm" / "down.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        print(up.stderr[-2000:], down.stderr[-2000:], sep="\n")
        assert down.returncode == 0, down.stderr


@live
def test_slurm_run_matches_local_run(slurm_cluster, tmp_path):
    local = copy_workflow(tmp_path / "local")
    remote = copy_workflow(tmp_path / "slurm")
    for wd in (local, remote):
        fast_overlay(wd)
    # Same threads in both runs: multi-threaded numerics need not be bit-identical across
    # thread counts. The SLURM run gets no --max-threads: cluster.smk caps the profile's
    # 4 threads at the node's CPUs (sinfo); the local run asks the same number.
    node_cpus = os.cpu_count() or 1
    threads = str(min(4, node_cpus))
    configs = ["--configfile", "config/config.yaml", "config/ci_fast.yaml"]
    local_threads = ["--set-threads", f"de_fit={threads}", f"expression_normalize={threads}"]
    # The local reference runs at the same time: the SLURM run mostly waits on status polls.
    local_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONHASHSEED="0")
    local_log = open(tmp_path / "local.log", "w")
    local_proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--workflow-profile", "profiles/default", "--cores", threads]
        + local_threads
        + configs
        + ["--config", "results=results"],
        cwd=local,
        env=local_env,
        stdout=local_log,
        stderr=subprocess.STDOUT,
    )
    t0 = time.monotonic()
    remote_env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        PYTHONHASHSEED="0",
        RHLH_SLURM_PARTITION=slurm_cluster["RHLH_SLURM_PARTITION"],
        RHLH_SLURM_ACCOUNT=slurm_cluster["RHLH_SLURM_ACCOUNT"],
    )
    remote_env.pop("RHLH_SLURM_MAX_CPUS", None)  # the node's CPUs come from sinfo
    slurm_args = [
        "--workflow-profile",
        "profiles/slurm",
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--slurm-keep-successful-logs",
        "--jobs",
        "4",
        "--latency-wait",
        "5",
        # a failed job fails the test at once instead of being resubmitted
        "--retries",
        "0",
    ]
    if slurm_cluster.get("RHLH_SLURM_ACCOUNTING") == "0":
        slurm_args += ["--slurm-status-command", "squeue"]
    # SIGINT, not SIGTERM, makes snakemake cancel its SLURM jobs and exit (tools/slurm notes)
    remote_proc = subprocess.run(
        ["timeout", "-s", "INT", "-k", "30", str(RUN_TIMEOUT), str(BIN / "snakemake"), *slurm_args]
        + configs
        + ["--config", "results=results"],
        cwd=remote,
        env=remote_env,
        capture_output=True,
        text=True,
    )
    slurm_s = time.monotonic() - t0
    try:
        local_rc = local_proc.wait(timeout=RUN_TIMEOUT)
    finally:
        if local_proc.poll() is None:
            local_proc.send_signal(2)  # SIGINT: snakemake cleans up its incomplete outputs
            local_proc.wait(timeout=60)
        local_log.close()
    print(f"SLURM run {slurm_s:.0f} s")
    assert remote_proc.returncode == 0, remote_proc.stderr[-6000:]
    assert local_rc == 0, (tmp_path / "local.log").read_text()[-6000:]
    if node_cpus < 4:
        capped = f"Threads capped at {node_cpus}, the CPUs of one node (sinfo -p "
        assert capped in remote_proc.stderr + remote_proc.stdout, remote_proc.stderr[-3000:]

    # the heavy rules really ran as Slurm jobs, and Slurm accounted them as completed
    submitted = re.findall(
        r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/",
        remote_proc.stderr + remote_proc.stdout,
    )
    rules_on_slurm = {rule for _, rule in submitted}
    assert "ingest_counts" in rules_on_slurm, remote_proc.stderr[-3000:]
    assert not rules_on_slurm & set(localrules_declared())
    ids = ",".join(job for job, _ in submitted)
    if slurm_cluster.get("RHLH_SLURM_ACCOUNTING") != "0":
        acct = subprocess.run(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                ids,
                "--format=JobID,State,JobName,Comment,AllocCPUS",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        rows = {line.split("|")[0]: line.split("|")[1:] for line in acct.stdout.split()}
        states = {j: r[0] for j, r in rows.items()}
        # no job asked more CPUs than the node has (else it would stay PENDING)
        assert all(int(r[3]) <= node_cpus for r in rows.values()), rows
        assert set(states) == {j for j, _ in submitted}
        assert set(states.values()) == {"COMPLETED"}, states
        # sacct tells the rules apart: job name rhlh_<run>, comment rule_<rule>[_wildcards_..]
        for job, rule in submitted:
            name, comment = rows[job][1], rows[job][2]
            assert name.startswith("rhlh_"), rows[job]
            assert comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_"), rows[
                job
            ]

    # byte-identical result tables
    want, got = tables(local / "results"), tables(remote / "results")
    assert want, "the local run wrote no tables"
    assert sorted(got) == sorted(want)
    differ = [name for name in want if want[name] != got[name]]
    assert not differ, f"tables differ between local and SLURM runs: {differ}"

    # and a second SLURM invocation has nothing to do
    again = snakemake(
        remote, "-n", *slurm_args, *configs, "--config", "results=results", env=remote_env
    )
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
