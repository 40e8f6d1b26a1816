"""Benchmark of the workflow: wall time, CPU time and peak memory per stage and end to end.

Simulates cohorts of growing size with ``rhlh_dev.simulate``, runs ``snakemake`` stage by stage on
a results folder of each, optionally times R DESeq2 on the same counts (``tools/
bench_deseq2.R``) and the streaming pseudobulk of a large single-cell file, and writes a table
(TSV + markdown), a targets table and figures. Run ``python -m rhlh_dev.benchmark --help``; see
``docs/benchmark.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rhlh import resources

REPO = Path(__file__).resolve().parents[2]  # tools/rhlh_dev/benchmark.py -> repository root
# Dependency order; a stage whose rule file is not wired (no TARGETS entry) is skipped.
STAGES = ("inputs", "expression", "clinical", "de", "signatures", "cytokines", "response", "all")
MIB = 1024.0 * 1024.0
GIB = 1024.0


@dataclass(frozen=True)
class BulkSize:
    """A simulated bulk cohort: patients (9 planned visits each) x genes."""

    patients: int
    genes: int


@dataclass(frozen=True)
class CellSize:
    """A simulated single-cell file: cells x genes, UMIs per cell, from a bulk cohort's sheets."""

    cells: int
    genes: int
    patients: int = 20
    umis_per_cell: int = 120


SIZES = {
    "tiny": BulkSize(4, 300),
    "trial": BulkSize(20, 20_000),
    "consortium": BulkSize(200, 20_000),
    # 150 patients give ~1,000 samples with the simulator's attrition (HSCT, death)
    "large": BulkSize(150, 60_000),
    "sc": CellSize(1_000_000, 30_000),
}
COLUMNS = [
    "size",
    "kind",
    "n_samples",
    "n_genes",
    "n_cells",
    "stage",
    "repeats",
    "wall_s",
    "cpu_s",
    "peak_rss_mib",
    "peak_tree_pss_mib",
    "jobs",
    "load_1m",
    "status",
]


def parse_size(text: str):
    """A size by name (``trial``), or ``PxG`` (bulk patients x genes), or ``sc:CxG`` (cells)."""
    text = text.strip()
    if text in SIZES:
        return text, SIZES[text]
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if m:
        return text, BulkSize(int(m[1]), int(m[2]))
    m = re.fullmatch(r"sc:(\d+)x(\d+)", text)
    if m:
        return text, CellSize(int(m[1]), int(m[2]))
    raise ValueError(f"unknown size '{text}': use {', '.join(SIZES)}, PxG or sc:CELLSxGENES")


# --- measuring one command ------------------------------------------------------------------


@dataclass
class Measure:
    """What one command cost: wall and CPU seconds, peak memory, exit status."""

    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    peak_tree_pss_mib: float
    rc: int
    log: str
    load_1m: float = np.nan


def _pss(p) -> int:
    # PSS splits shared pages among the processes mapping them, so forked workers (R
    # MulticoreParam, joblib) are not counted once per worker as plain RSS would be
    try:
        with open(f"/proc/{p.pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return p.memory_info().rss


def _tree_pss(proc) -> int:
    import psutil

    total = 0
    try:
        members = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in members:
        try:
            total += _pss(p)
        except psutil.Error:
            pass
    return total


def measure_command(cmd, log_path, env=None, cwd=None, poll_s: float = 0.05) -> Measure:
    """Run a command; wall time, CPU time and peak RSS of it and all its descendants.

    CPU time and ``peak_rss_mib`` come from the kernel (``wait4`` on the child: user + system
    time of the whole reaped tree, and the largest maximum RSS of any single process in it).
    ``peak_tree_pss_mib`` is the largest sum of proportional set size (PSS, else RSS) over the
    live process tree, polled every ``poll_s`` seconds (concurrent jobs add up; spikes shorter
    than a poll can be missed). ``load_1m`` is the machine's load average when it started.
    """
    import psutil

    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak = [0]
    done = threading.Event()
    load = os.getloadavg()[0]
    with open(log_path, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
        )
        ps = psutil.Process(proc.pid)

        def poll():
            while not done.is_set():
                peak[0] = max(peak[0], _tree_pss(ps))
                done.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        # wait4 rather than getrusage(RUSAGE_CHILDREN) deltas: same CPU numbers, and the
        # maximum RSS is then this command's own, not the largest of every earlier one
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measure(
        wall_s=wall,
        cpu_s=ru.ru_utime + ru.ru_stime,
        peak_rss_mib=ru.ru_maxrss / 1024.0,  # KiB on Linux
        peak_tree_pss_mib=peak[0] / MIB,
        rc=proc.returncode,
        log=str(log_path),
        load_1m=load,
    )


def tool_env() -> dict:
    """Environment for child processes: this interpreter's bin first on PATH, fixed hash seed."""
    bindir = str(Path(sys.executable).parent)
    return dict(
        os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""), PYTHONHASHSEED="0"
    )


def snakemake_cmd(workdir, cohort, results, cores: int, targets=(), profile=None) -> list:
    """The snakemake command line of one benchmark call (repo Snakefile, own workdir)."""
    exe = Path(sys.executable).with_name("snakemake")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "snakemake"]
    # targets first: --configfile and --config take every following word as theirs
    cmd += [str(t) for t in targets]
    cmd += ["-s", REPO / "Snakefile", "-d", workdir, "--cores", str(cores)]
    # no "code" trigger: an edit of a rule script by someone else mid-benchmark would rerun
    # finished stages (and everything downstream) inside a later stage's timing
    cmd += ["--rerun-triggers", "mtime", "input", "params", "software-env"]
    if profile:
        cmd += ["--workflow-profile", profile]
    cmd += ["--configfile", REPO / "config" / "config.yaml"]
    return cmd + ["--config", f"cohort={cohort}", f"results={results}"]


def jobs_done(log_path) -> int:
    """Number of jobs a snakemake call ran, from its log ('N of M steps (..%) done')."""
    text = Path(log_path).read_text(errors="replace")
    found = re.findall(r"(\d+) of \d+ steps? \([\d.]+%\) done", text)
    return int(found[-1]) if found else 0


def list_targets(cohort, results, workdir, cores: int = 1) -> dict:
    """Load the workflow (this parses the Snakefile and validates the inputs) and return TARGETS."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    Path(workdir).mkdir(parents=True, exist_ok=True)
    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=cores),
            config_settings=ConfigSettings(
                config={"cohort": str(cohort), "results": str(results)},
                configfiles=[REPO / "config" / "config.yaml"],
            ),
            storage_settings=StorageSettings(),
            snakefile=REPO / "Snakefile",
            workdir=Path(workdir),
        )
        # the loaded workflow's globals hold the TARGETS dict the rule files fill in;
        # stage_targets() (common.smk) calls its function entries (targets needing another stage)
        targets = wf._workflow.globals["stage_targets"]()
        return {stage: [str(f) for f in files] for stage, files in targets.items()}


# --- cohorts --------------------------------------------------------------------------------


def _stamp(folder: Path) -> Path:
    return folder / ".bench_complete.json"


def ensure_bulk_cohort(size: BulkSize, root: Path, seed: int, fmt: str, need_r: bool):
    """Simulate (once; reused when its stamp exists) a bulk cohort with the simulate CLI."""
    folder = root / "cohorts" / f"bulk_{size.patients}x{size.genes}_s{seed}_{fmt}"
    if _stamp(folder).exists():
        meta = json.loads(_stamp(folder).read_text())
        if not need_r or meta.get("r_counts"):
            return folder, meta, None
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [sys.executable, "-m", "rhlh_dev.simulate", "--out", folder, "--patients", size.patients]
    cmd += ["--genes", size.genes, "--seed", seed, "--format", fmt, "--truth"]
    m = measure_command(cmd, root / "logs" / f"simulate_{folder.name}.log", env=_lib_env())
    if m.rc != 0:
        raise RuntimeError(f"simulation failed, see {m.log}")
    n_samples = sum(1 for _ in open(folder / "samples.tsv")) - 1
    meta = {"n_samples": n_samples, "n_genes": size.genes, "format": fmt, "r_counts": None}
    if fmt == "tsv":
        meta["r_counts"] = str(folder / "counts.tsv.gz")
    elif need_r:
        # R reads a plain matrix: write the same counts as a TSV outside the cohort's names
        from rhlh_dev.simulate import counts_frame, simulate_cohort

        cohort = simulate_cohort(size.patients, size.genes, seed)
        path = folder / "bench_counts_for_r.tsv"
        counts_frame(cohort).to_csv(path, sep="\t", index=False, lineterminator="\n")
        meta["r_counts"] = str(path)
    _stamp(folder).write_text(json.dumps(meta))
    return folder, meta, m


def _lib_env() -> dict:
    """tool_env with this checkout's ``rhlh`` (scripts/) and ``rhlh_dev`` (tools/) importable."""
    env = tool_env()
    paths = [str(REPO / "scripts"), str(REPO / "tools")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    return env


def write_sc_h5ad(
    path,
    profiles: np.ndarray,
    sample_ids,
    var: pd.DataFrame,
    n_cells: int,
    seed: int,
    umis_per_cell: int = 120,
    cell_types=("T", "NK", "Mono", "B"),
    chunk: int = 50_000,
) -> dict:
    """Write a sparse single-cell h5ad in chunks (memory bounded by one chunk); returns totals.

    Cells are split evenly over the samples (in sample order); each cell draws
    Poisson(``umis_per_cell``) UMIs from its sample's expression profile, so duplicates give
    counts > 1 and the pseudobulk of a sample is proportional to its profile.
    """
    import h5py
    from anndata.io import write_elem

    rng = np.random.default_rng(seed)
    n_s, n_g = profiles.shape
    cdf = np.cumsum(profiles / profiles.sum(axis=1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    cell_sample = np.repeat(np.arange(n_s), -(-n_cells // n_s))[:n_cells]
    ctypes = np.asarray(cell_types)
    cell_type = ctypes[rng.integers(0, len(ctypes), n_cells)]
    obs = pd.DataFrame(
        {
            "sample_id": pd.Categorical(np.asarray(sample_ids)[cell_sample], categories=sample_ids),
            "cell_type": pd.Categorical(cell_type, categories=list(cell_types)),
        },
        index=pd.Index([f"cell{i}" for i in range(n_cells)]),
    )
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    total, nnz = 0, 0
    per_sample = np.zeros(n_s, dtype=np.int64)
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        write_elem(f, "obs", obs)
        write_elem(f, "var", var)
        for key in ("uns", "obsm", "varm", "obsp", "varp", "layers"):
            write_elem(f, key, {})
        del obs
        grp = f.create_group("X")
        grp.attrs["encoding-type"] = "csr_matrix"
        grp.attrs["encoding-version"] = "0.1.0"
        grp.attrs["shape"] = np.array([n_cells, n_g], dtype=np.int64)
        kw = {"maxshape": (None,), "chunks": (1 << 20,)}
        data = grp.create_dataset("data", shape=(0,), dtype=np.int32, **kw)
        indices = grp.create_dataset("indices", shape=(0,), dtype=np.int32, **kw)
        indptr = grp.create_dataset("indptr", shape=(n_cells + 1,), dtype=np.int64)
        indptr[0] = 0
        for start in range(0, n_cells, chunk):
            stop = min(start + chunk, n_cells)
            umis = rng.poisson(umis_per_cell, stop - start).clip(1)
            owner = np.repeat(np.arange(stop - start), umis)
            samp = cell_sample[start:stop][owner]
            genes = np.empty(owner.size, dtype=np.int64)
            for s in np.unique(samp):
                hit = samp == s
                genes[hit] = np.searchsorted(cdf[s], rng.random(int(hit.sum())), side="right")
            # row-major codes sort into CSR order; repeated draws of a gene become its count
            codes, counts = np.unique(owner * n_g + genes, return_counts=True)
            rows = codes // n_g
            row_nnz = np.bincount(rows, minlength=stop - start)
            k0 = data.shape[0]
            data.resize((k0 + codes.size,))
            indices.resize((k0 + codes.size,))
            data[k0:] = counts.astype(np.int32)
            indices[k0:] = (codes % n_g).astype(np.int32)
            indptr[start + 1 : stop + 1] = k0 + np.cumsum(row_nnz)
            np.add.at(
                per_sample,
                cell_sample[start:stop],
                np.bincount(rows, weights=counts, minlength=stop - start).astype(np.int64),
            )
            total += int(counts.sum())
            nnz += int(codes.size)
    os.replace(tmp, path)
    return {"total_counts": total, "nnz": nnz, "per_sample": per_sample.tolist()}


def make_sc_cohort(size: CellSize, folder, seed: int) -> dict:
    """A cohort folder whose counts are a single-cell h5ad of ``size`` (sheets from simulate)."""
    from rhlh.io import write_tsv
    from rhlh_dev.simulate import simulate_cohort

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cohort = simulate_cohort(size.patients, size.genes, seed)
    for name in ("samples", "patients", "responses", "cytokines", "pk", "events"):
        write_tsv(cohort[name], folder / f"{name}.tsv")
    var = cohort["var"].set_index("gene_id", drop=False)
    var.index.name = None
    profiles = cohort["counts"].astype(np.float64) + 0.1  # every gene can be drawn
    ids = list(cohort["samples"]["sample_id"])
    del cohort
    out = write_sc_h5ad(
        folder / "counts.h5ad", profiles, ids, var, size.cells, seed + 1, size.umis_per_cell
    )
    meta = {
        "n_samples": len(ids),
        "n_genes": size.genes,
        "n_cells": size.cells,
        "nnz": out["nnz"],
        "total_counts": out["total_counts"],
        "per_sample": dict(zip(ids, out["per_sample"], strict=True)),
    }
    _stamp(folder).write_text(json.dumps(meta))
    return meta


# cell QC thresholds that every simulated benchmark cell (Poisson(120) UMIs, no MT- genes)
# passes, so the pseudobulk sums can still be checked while the QC cost is measured
BENCH_CELL_QC = {
    "min_genes": 10,
    "min_counts": 20,
    "max_pct_mt": 20.0,
    "mad_filter": False,
    "n_mads": 5.0,
    "min_cells_per_sample": 20,
    "max_fraction_removed": 0.5,
    "min_cells_per_profile": 10,
}


def check_pseudobulk(
    counts_path, chunk_size: int, expected: dict | None = None, cell_qc_dir=None
) -> dict:
    """Stream a single-cell h5ad into pseudobulk (rhlh.contract.counts.read_counts); check sums.

    ``cell_qc_dir``: also run the cell QC as ingest_counts does (scanpy metrics per chunk,
    ``BENCH_CELL_QC``, QC tables and the per-cell table written into that folder).
    """
    from rhlh.contract.counts import read_counts, read_h5ad_counts

    if cell_qc_dir is not None:
        from rhlh import singlecell as sc
        from rhlh.io import write_tsv

        qc = sc.CellQC(BENCH_CELL_QC)
        out = read_h5ad_counts(counts_path, chunk_size=chunk_size, cell_qc=qc)
        out, sample_qc, profile_qc = sc.apply_cell_qc(out, qc)
        folder = Path(cell_qc_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_tsv(sample_qc, folder / "qc_samples.tsv")
        write_tsv(profile_qc, folder / "qc_profiles.tsv")
        sc.write_cell_table(qc.cell_table(), folder / "qc_cells.tsv.gz")
    else:
        out = read_counts(counts_path, chunk_size=chunk_size)
    sums = dict(zip(out["samples"], out["counts"].sum(axis=1).tolist(), strict=True))
    ok = None
    if expected is not None:
        ok = all(sums.get(s) == v for s, v in expected.items()) and len(sums) == len(expected)
    return {"n_samples": len(sums), "n_genes": out["counts"].shape[1], "sums_match": ok}


# --- one size -------------------------------------------------------------------------------


def _row(label, kind, meta, stage, m: Measure | None, jobs=0, status="ok", **extra):
    row = {
        "size": label,
        "kind": kind,
        "n_samples": meta.get("n_samples"),
        "n_genes": meta.get("n_genes"),
        "n_cells": meta.get("n_cells", 0),
        "stage": stage,
        "wall_s": m.wall_s if m else np.nan,
        "cpu_s": m.cpu_s if m else np.nan,
        "peak_rss_mib": m.peak_rss_mib if m else np.nan,
        "peak_tree_pss_mib": m.peak_tree_pss_mib if m else np.nan,
        "load_1m": m.load_1m if m else np.nan,
        "jobs": jobs,
        "status": status if (m is None or m.rc == 0) else f"failed (rc {m.rc}, log {m.log})",
    }
    row.update(extra)
    return row


def _say(msg: str) -> None:
    print(f"[benchmark {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_bulk(label, size: BulkSize, args, root: Path) -> list[dict]:
    """All repeats of one bulk size: parse, stages, no-op rerun, end to end, R DESeq2."""
    want_r = args.r and shutil.which(args.rscript) is not None
    cohort, meta, sim = ensure_bulk_cohort(size, root, args.seed, args.format, want_r)
    rows = []
    if sim is not None:
        rows.append(_row(label, "bulk", meta, "simulate", sim, repeat=0))
    _say(f"{label}: {meta['n_samples']} samples x {meta['n_genes']} genes in {cohort}")
    stages = [s.strip() for s in args.stages.split(",")] if args.stages else list(STAGES)
    env = _lib_env()
    for rep in range(args.repeats):
        base = root / "runs" / label / f"rep{rep}"
        shutil.rmtree(base, ignore_errors=True)
        res, wd = base / "results", base / "workdir"
        tfile = base / "targets.json"
        cmd = [sys.executable, "-m", "rhlh_dev.benchmark", "list-targets", "--cohort", cohort]
        cmd += ["--results", res, "--workdir", wd, "--json", tfile]
        m = measure_command(cmd, base / "logs" / "parse.log", env=env)
        rows.append(_row(label, "bulk", meta, "parse", m, repeat=rep))
        if m.rc != 0:
            _say(f"{label}: loading the workflow failed, see {m.log}")
            break
        targets = json.loads(tfile.read_text())
        failed = False
        todo = stages
        if not args.stages:  # stages this harness does not know yet run before "all"
            todo = [*stages[:-1], *(t for t in targets if t not in STAGES), "all"]
        for stage in todo:
            if stage != "all" and stage not in targets:
                continue
            tg = [] if stage == "all" else targets[stage]
            cmd = snakemake_cmd(wd, cohort, res, args.cores, tg, args.profile)
            m = measure_command(cmd, base / "logs" / f"{stage}.log", env=env)
            rows.append(_row(label, "bulk", meta, stage, m, jobs_done(m.log), repeat=rep))
            _say(f"{label} rep {rep}: {stage} {m.wall_s:.1f} s (rc {m.rc})")
            if m.rc != 0:
                failed = True
                break
        if not failed and "all" in stages:
            cmd = snakemake_cmd(wd, cohort, res, args.cores, (), args.profile)
            m = measure_command(cmd, base / "logs" / "noop.log", env=env)
            rows.append(_row(label, "bulk", meta, "noop_rerun", m, jobs_done(m.log), repeat=rep))
        if want_r and not failed:
            rows.append(run_r(label, meta, cohort, res, base, args, rep))
        if args.end_to_end and not failed:
            e2e = base / "e2e"
            cmd = snakemake_cmd(
                e2e / "workdir", cohort, e2e / "results", args.cores, (), args.profile
            )
            m = measure_command(cmd, base / "logs" / "end_to_end.log", env=env)
            rows.append(_row(label, "bulk", meta, "end_to_end", m, jobs_done(m.log), repeat=rep))
            _say(f"{label} rep {rep}: end to end {m.wall_s:.1f} s (rc {m.rc})")
        if not args.keep:
            shutil.rmtree(res, ignore_errors=True)
            shutil.rmtree(base / "e2e", ignore_errors=True)
    return rows


def run_r(label, meta, cohort: Path, results: Path, base: Path, args, rep: int) -> dict:
    """Time tools/bench_deseq2.R on the cohort's counts (responders from the clinical stage)."""
    responders = results / "clinical" / "responders.tsv"
    if not responders.exists():  # clinical stage not run: the simulator's truth
        truth = pd.read_csv(cohort / "truth.tsv", sep="\t")
        truth = truth.rename(columns={"responder_truth": "responder"})
        responders = base / "responders_truth.tsv"
        truth.to_csv(responders, sep="\t", index=False)
    out = base / "r_timing.tsv"
    cmd = [
        args.rscript,
        REPO / "tools" / "bench_deseq2.R",
        meta["r_counts"],
        cohort / "samples.tsv",
        responders,
        args.cores,
        out,
    ]
    m = measure_command(cmd, base / "logs" / "r_deseq2.log", env=tool_env())
    _say(f"{label} rep {rep}: R DESeq2 {m.wall_s:.1f} s (rc {m.rc})")
    extra = {}
    if m.rc == 0 and out.exists():
        steps = pd.read_csv(out, sep="\t").set_index("step")
        extra["r_compute_s"] = float(steps.loc["total", "wall_s"])
    return _row(label, "bulk", meta, "R_DESeq2", m, repeat=rep, **extra)


def run_sc(label, size: CellSize, args, root: Path) -> list[dict]:
    """Single-cell file: generate (once), stream it into pseudobulk, and the inputs stage."""
    folder = root / "cohorts" / f"sc_{size.cells}x{size.genes}_s{args.seed}"
    rows = []
    env = _lib_env()
    if not _stamp(folder).exists():
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "rhlh_dev.benchmark",
            "make-sc",
            "--out",
            folder,
            "--cells",
            size.cells,
            "--genes",
            size.genes,
            "--patients",
            size.patients,
            "--seed",
            args.seed,
            "--umis-per-cell",
            size.umis_per_cell,
        ]
        m = measure_command(cmd, root / "logs" / f"make_sc_{folder.name}.log", env=env)
        if m.rc != 0:
            raise RuntimeError(f"single-cell generation failed, see {m.log}")
        meta = json.loads(_stamp(folder).read_text())
        rows.append(_row(label, "single-cell", meta, "simulate", m, repeat=0))
    meta = json.loads(_stamp(folder).read_text())
    _say(f"{label}: {meta['n_cells']} cells x {meta['n_genes']} genes, {meta['nnz']} nonzeros")
    for rep in range(args.repeats):
        base = root / "runs" / label / f"rep{rep}"
        shutil.rmtree(base, ignore_errors=True)
        cmd = [
            sys.executable,
            "-m",
            "rhlh_dev.benchmark",
            "pseudobulk",
            "--counts",
            folder / "counts.h5ad",
            "--chunk-size",
            args.chunk_size,
            "--json",
            base / "pseudobulk.json",
            "--expected",
            _stamp(folder),
            "--cell-qc",
            base / "cell_qc",
        ]
        m = measure_command(cmd, base / "logs" / "pseudobulk.log", env=env)
        status = "ok"
        if m.rc == 0:
            check = json.loads((base / "pseudobulk.json").read_text())
            status = "ok" if check["sums_match"] else "WRONG pseudobulk sums"
        rows.append(_row(label, "single-cell", meta, "pseudobulk", m, status=status, repeat=rep))
        _say(f"{label} rep {rep}: pseudobulk {m.wall_s:.1f} s, {m.peak_rss_mib:.0f} MiB")
        if args.sc_workflow:
            res, wd = base / "results", base / "workdir"
            cmd = [
                sys.executable,
                "-m",
                "rhlh_dev.benchmark",
                "list-targets",
                "--cohort",
                folder,
                "--results",
                res,
                "--workdir",
                wd,
                "--json",
                base / "targets.json",
            ]
            m = measure_command(cmd, base / "logs" / "parse.log", env=env)
            rows.append(_row(label, "single-cell", meta, "parse", m, repeat=rep))
            if m.rc == 0:
                targets = json.loads((base / "targets.json").read_text())
                cmd = snakemake_cmd(wd, folder, res, args.cores, targets["inputs"], args.profile)
                # the simulated cells hold ~120 UMIs: QC thresholds they pass (config defaults
                # are for real 10x cells and would remove them all)
                qc_config = base / "singlecell.json"
                qc_config.write_text(json.dumps({"singlecell": BENCH_CELL_QC}))
                cmd.insert(cmd.index("--configfile") + 2, qc_config)
                m = measure_command(cmd, base / "logs" / "inputs.log", env=env)
                rows.append(
                    _row(label, "single-cell", meta, "inputs", m, jobs_done(m.log), repeat=rep)
                )
            if not args.keep:
                shutil.rmtree(res, ignore_errors=True)
    return rows


# --- imports, summary, targets --------------------------------------------------------------

IMPORTS = (
    "",
    "numpy",
    "pandas",
    "scipy.stats",
    "matplotlib.pyplot",
    "anndata",
    "statsmodels.api",
    "pydeseq2.dds",
    "scanpy",
    "snakemake.script",
)


def measure_imports(modules=IMPORTS, repeats: int = 3) -> pd.DataFrame:
    """Wall time of ``python -c 'import M'`` in a fresh interpreter (median of repeats)."""
    rows = []
    env = tool_env()
    for mod in modules:
        code = f"import {mod}" if mod else "pass"
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", code],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - t0)
        rows.append({"module": mod or "(interpreter start)", "wall_s": float(np.median(times))})
    out = pd.DataFrame(rows)
    out["minus_start_s"] = out["wall_s"] - out["wall_s"].iloc[0]
    return out


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Median over repeats of each size x stage (failed runs are left out of the medians)."""
    keys = ["size", "kind", "n_samples", "n_genes", "n_cells", "stage"]
    order = {
        s: i
        for i, s in enumerate(
            ["simulate", "parse", *STAGES, "noop_rerun", "end_to_end", "R_DESeq2", "pseudobulk"]
        )
    }
    rows = []
    for key, grp in runs.groupby(keys, sort=False, dropna=False):
        ok = grp[grp["status"] == "ok"]
        use = ok if len(ok) else grp
        row = dict(zip(keys, key, strict=True))
        row["repeats"] = len(ok)
        for col in ("wall_s", "cpu_s", "peak_rss_mib", "peak_tree_pss_mib", "jobs", "load_1m"):
            row[col] = float(np.median(use[col])) if len(use) else np.nan
        if "r_compute_s" in grp and grp["r_compute_s"].notna().any():
            row["r_compute_s"] = float(np.median(use["r_compute_s"].dropna()))
        row["status"] = "ok" if len(ok) == len(grp) else "; ".join(sorted(set(grp["status"])))
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=COLUMNS)
    out["_o"] = out["stage"].map(order).fillna(len(order))
    out = out.sort_values(["_o"], kind="stable").drop(columns="_o")
    size_order = {s: i for i, s in enumerate(pd.unique(runs["size"]))}
    out = out.sort_values("size", key=lambda s: s.map(size_order), kind="stable")
    cols = COLUMNS + [c for c in out.columns if c not in COLUMNS]
    return out.reindex(columns=cols).reset_index(drop=True)


def _get(summary, size, stage, col="wall_s"):
    hit = summary[(summary["size"] == size) & (summary["stage"] == stage)]
    hit = hit[hit["repeats"] > 0]  # at least one repeat succeeded: median of those
    return float(hit[col].iloc[0]) if len(hit) else np.nan


def _workflow_wall(summary, size) -> float:
    """End-to-end wall time: the fresh full run, else the sum of the stage calls."""
    e2e = _get(summary, size, "end_to_end")
    if np.isfinite(e2e):
        return e2e
    part = summary[(summary["size"] == size) & summary["stage"].isin(["parse", *STAGES])]
    return float(part["wall_s"].sum()) if len(part) else np.nan


def evaluate_targets(summary: pd.DataFrame) -> pd.DataFrame:
    """The issue's performance targets, each met / not met / not measured."""
    rows = []

    def add(target, size, measured, limit, unit, met=None):
        if met is None:
            met = bool(measured <= limit) if np.isfinite(measured) and np.isfinite(limit) else None
        rows.append(
            {
                "target": target,
                "size": size,
                "measured": measured,
                "limit": limit,
                "unit": unit,
                "met": "n/a" if met is None else ("yes" if met else "NO"),
            }
        )

    bulk = summary[summary["kind"] == "bulk"]
    for size in pd.unique(bulk["size"]):
        r = _get(summary, size, "R_DESeq2")
        add(
            "DE stage <= 0.5 x R DESeq2 (same data, cores)",
            size,
            _get(summary, size, "de"),
            0.5 * r,
            "s",
        )
        add("whole workflow <= R DESeq2 alone", size, _workflow_wall(summary, size), r, "s")
        add("no-op rerun < 5 s", size, _get(summary, size, "noop_rerun"), 5.0, "s")
        sub = bulk[bulk["size"] == size]
        n, g = sub["n_samples"].iloc[0], sub["n_genes"].iloc[0]
        if n >= 1000 and g >= 60_000:
            ok = sub[sub["repeats"] > 0]
            peak = max(ok["peak_tree_pss_mib"].max(), ok["peak_rss_mib"].max()) / GIB
            add("1,000 samples x 60,000 genes: peak < 8 GiB", size, peak, 8.0, "GiB")
        # the cluster requests (rhlh.resources) cover what the jobs used: the stage's largest
        # single process is its heavy job (de_fit, expression_normalize / expression_qc)
        for stage, kind in (("de", "de_fit"), ("expression", "expression")):
            peak_mb = _get(summary, size, stage, "peak_rss_mib") * 1.048576
            asked = resources.memory_mb(kind, (int(n), int(g)))
            add(f"{stage} job peak < its mem_mb request", size, peak_mb, asked, "MB")
    for size in pd.unique(summary.loc[summary["kind"] == "single-cell", "size"]):
        peak = _get(summary, size, "pseudobulk", "peak_rss_mib") / GIB
        add("pseudobulk of the single-cell file < 4 GiB", size, peak, 4.0, "GiB")
    # linear growth: each bulk size against the next larger one, cost per count-matrix cell
    sized = []
    for size in pd.unique(bulk["size"]):
        sub = bulk[bulk["size"] == size].iloc[0]
        wall = _workflow_wall(summary, size)
        if np.isfinite(wall):
            sized.append(
                (int(sub["n_samples"]) * int(sub["n_genes"]), size, wall, int(sub["n_samples"]))
            )
    sized.sort()
    for (w0, s0, t0, n0), (w1, s1, t1, n1) in zip(sized, sized[1:], strict=False):
        add(
            f"time ratio <= 1.2 x size ratio ({s0} -> {s1}; samples x{n1 / n0:.2f}, "
            f"samples x genes x{w1 / w0:.2f})",
            f"{s0}->{s1}",
            t1 / t0,
            1.2 * w1 / w0,
            "ratio",
        )
    return pd.DataFrame(rows, columns=["target", "size", "measured", "limit", "unit", "met"])


def markdown(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    """A DataFrame as a GitHub markdown table."""

    def fmt(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else floatfmt.format(v)
        return str(v)

    lines = [
        "| " + " | ".join(map(str, df.columns)) + " |",
        "| " + " | ".join("---" for _ in df.columns) + " |",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def plot_summary(summary: pd.DataFrame, png_path) -> None:
    """Wall time and peak memory per stage and size (two panels), PNG + PDF."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rhlh.figures import OKABE_ITO
    from rhlh.io import save_figure

    data = summary[summary["stage"] != "simulate"].dropna(subset=["wall_s"])
    stages = list(pd.unique(data["stage"]))
    sizes = list(pd.unique(data["size"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(stages) * max(1, len(sizes)) + 2))
    height = 0.8 / max(1, len(sizes))
    y = np.arange(len(stages))
    for k, size in enumerate(sizes):
        sub = data[data["size"] == size].set_index("stage").reindex(stages)
        for ax, col, scale in ((axes[0], "wall_s", 1.0), (axes[1], "peak_tree_pss_mib", GIB)):
            ax.barh(y + k * height, sub[col] / scale, height, color=OKABE_ITO[k % 8], label=size)
    for ax, label in ((axes[0], "wall time (s, median)"), (axes[1], "peak RSS (GiB, tree)")):
        ax.set_yticks(y + height * (len(sizes) - 1) / 2, stages)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    # time spans orders of magnitude (log); memory is read against 4 / 8 GiB limits (linear)
    axes[0].set_xscale("log")
    axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].legend(title="size", fontsize=8)
    fig.suptitle("R-HLH workflow benchmark")
    fig.tight_layout()
    save_figure(fig, png_path)


def machine_info(cores: int) -> dict:
    """The machine the numbers come from."""
    import psutil

    return {
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "cores_used": cores,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
    }


# --- command line ---------------------------------------------------------------------------


def run_benchmark(args) -> dict[str, pd.DataFrame]:
    """Run every requested size; write runs/summary/targets/imports TSVs and the figure."""
    from rhlh.io import write_tsv

    root = Path(args.workdir).resolve()
    out = Path(args.out).resolve() if args.out else root
    root.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    for label, size in sizes:
        if isinstance(size, CellSize):
            rows += run_sc(label, size, args, root)
        else:
            rows += run_bulk(label, size, args, root)
    runs = pd.DataFrame(rows)
    summary = summarise(runs)
    targets = evaluate_targets(summary)
    tables = {"runs": runs, "summary": summary, "targets": targets}
    if args.imports:
        tables["imports"] = measure_imports(repeats=max(1, args.repeats))
    for name, df in tables.items():
        write_tsv(df, out / f"benchmark_{name}.tsv")
    info = machine_info(args.cores)
    (out / "benchmark_machine.json").write_text(json.dumps(info, indent=1) + "\n")
    if args.figure and len(summary):
        plot_summary(summary, out / "benchmark.png")
    print(f"machine: {json.dumps(info)}")
    show = summary.drop(columns=[c for c in ("kind",) if c in summary])
    print("\n" + markdown(show) + "\n")
    r_rows = summary[summary["stage"].isin(["de", "R_DESeq2"])]
    for size in pd.unique(r_rows["size"]):
        de, r = _get(summary, size, "de"), _get(summary, size, "R_DESeq2")
        if np.isfinite(de) and np.isfinite(r):
            print(f"{size}: DE stage {de:.1f} s vs R DESeq2 {r:.1f} s: ratio {de / r:.2f}")
    print("\n" + markdown(targets) + "\n")
    if "imports" in tables:
        print(markdown(tables["imports"], "{:.3f}") + "\n")
    print(f"tables and figure in {out}")
    return tables


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m rhlh_dev.benchmark``."""
    ap = argparse.ArgumentParser(
        prog="python -m rhlh_dev.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--sizes",
        default="trial",
        help=f"comma list of {', '.join(SIZES)}, PxG (patients x genes) or "
        "sc:CELLSxGENES (default: trial)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="runs per size; medians reported")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--workdir",
        default="/tmp/rhlh-benchmark",
        help="cohorts, results folders and logs (never the repo's results/)",
    )
    ap.add_argument("--out", default=None, help="where tables and figure go (default: workdir)")
    ap.add_argument(
        "--stages",
        default=None,
        help=f"comma list of stages to run, in order (default: {','.join(STAGES)})",
    )
    ap.add_argument(
        "--format",
        default="tsv",
        choices=["tsv", "featurecounts", "h5ad"],
        help="count file form of the bulk cohorts",
    )
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument(
        "--profile",
        default=str(REPO / "profiles" / "default"),
        help="snakemake workflow profile ('' for none)",
    )
    ap.add_argument("--no-r", dest="r", action="store_false", help="skip the R DESeq2 timing")
    ap.add_argument("--rscript", default="Rscript")
    ap.add_argument(
        "--no-end-to-end",
        dest="end_to_end",
        action="store_false",
        help="skip the fresh full run (end to end = sum of the stage calls)",
    )
    ap.add_argument("--no-imports", dest="imports", action="store_false")
    ap.add_argument("--no-figure", dest="figure", action="store_false")
    ap.add_argument("--chunk-size", type=int, default=50_000, help="pseudobulk rows per chunk")
    ap.add_argument(
        "--sc-workflow",
        action="store_true",
        help="single-cell sizes: also run the workflow's inputs stage",
    )
    ap.add_argument("--keep", action="store_true", help="keep the results folders")
    return ap


def _sub_main(cmd: str, argv) -> None:
    ap = argparse.ArgumentParser(prog=f"python -m rhlh_dev.benchmark {cmd}")
    if cmd == "list-targets":
        ap.add_argument("--cohort", required=True)
        ap.add_argument("--results", required=True)
        ap.add_argument("--workdir", required=True)
        ap.add_argument("--json", required=True)
        a = ap.parse_args(argv)
        targets = list_targets(a.cohort, a.results, a.workdir)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(targets, indent=1))
    elif cmd == "make-sc":
        ap.add_argument("--out", required=True)
        ap.add_argument("--cells", type=int, required=True)
        ap.add_argument("--genes", type=int, required=True)
        ap.add_argument("--patients", type=int, default=20)
        ap.add_argument("--umis-per-cell", type=int, default=120)
        ap.add_argument("--seed", type=int, default=2024)
        a = ap.parse_args(argv)
        size = CellSize(a.cells, a.genes, a.patients, a.umis_per_cell)
        meta = make_sc_cohort(size, a.out, a.seed)
        print(f"wrote {a.cells} cells x {a.genes} genes, {meta['nnz']} nonzeros to {a.out}")
    elif cmd == "pseudobulk":
        ap.add_argument("--counts", required=True)
        ap.add_argument("--chunk-size", type=int, default=50_000)
        ap.add_argument("--json", required=True)
        ap.add_argument("--expected", default=None, help="make-sc stamp with per-sample sums")
        ap.add_argument(
            "--cell-qc", default=None, help="also run the cell QC, writing its tables here"
        )
        a = ap.parse_args(argv)
        expected = json.loads(Path(a.expected).read_text())["per_sample"] if a.expected else None
        result = check_pseudobulk(a.counts, a.chunk_size, expected, cell_qc_dir=a.cell_qc)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result))
        print(json.dumps(result))


def main(argv=None) -> None:
    """Command line entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("list-targets", "make-sc", "pseudobulk"):
        _sub_main(argv[0], argv[1:])
        return
    run_benchmark(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
