"""The benchmark harness: measurement, single-cell generator, summaries, targets, one tiny run."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest

from rhlh_dev import benchmark as bm


def test_measure_command_counts_cpu_and_memory(tmp_path):
    # a child that allocates ~200 MiB and spins ~0.3 s of CPU: both must show up
    code = (
        "import time, numpy as np\n"
        "a = np.ones(200 * 2**20 // 8)\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\n"
        "time.sleep(0.3)\n"
    )
    m = bm.measure_command([sys.executable, "-c", code], tmp_path / "log.txt")
    assert m.rc == 0
    assert m.wall_s >= 0.6
    assert 0.3 <= m.cpu_s < m.wall_s + 1
    assert 200 <= m.peak_rss_mib < 600
    assert 150 <= m.peak_tree_pss_mib < 600
    failing = bm.measure_command([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "f")
    assert failing.rc == 3


def test_parse_size():
    assert bm.parse_size("trial") == ("trial", bm.BulkSize(20, 20_000))
    assert bm.parse_size("4x300") == ("4x300", bm.BulkSize(4, 300))
    assert bm.parse_size("sc:1000x50")[1] == bm.CellSize(1000, 50)
    with pytest.raises(ValueError):
        bm.parse_size("huge")


def test_jobs_done(tmp_path):
    log = tmp_path / "l.txt"
    log.write_text("1 of 3 steps (33%) done\nx\n3 of 3 steps (100%) done\n")
    assert bm.jobs_done(log) == 3
    log.write_text("Nothing to be done.\n")
    assert bm.jobs_done(log) == 0


def test_sc_generator_is_valid_sparse_and_sums_back(tmp_path):
    rng = np.random.default_rng(1)
    profiles = rng.gamma(0.5, 10, size=(3, 40))
    var = pd.DataFrame(
        {"gene_id": [f"G{i}" for i in range(40)]}, index=[f"G{i}" for i in range(40)]
    )
    var["gene_name"] = var["gene_id"]
    path = tmp_path / "sc.h5ad"
    out = bm.write_sc_h5ad(
        path, profiles, ["S1", "S2", "S3"], var, 3000, seed=5, umis_per_cell=30, chunk=700
    )
    import anndata as ad

    a = ad.read_h5ad(path)
    assert a.shape == (3000, 40)
    x = a.X.tocsr()
    x.sort_indices()
    assert x.has_canonical_format and x.nnz == out["nnz"]
    assert int(x.sum()) == out["total_counts"]
    umis = np.asarray(x.sum(axis=1)).ravel()
    assert 20 < umis.mean() < 40  # Poisson(30) draws per cell
    with h5py.File(path) as f:
        assert f["X"].attrs["encoding-type"] == "csr_matrix"
    # the project's streaming pseudobulk gives back the per-sample totals we generated
    expected = dict(zip(["S1", "S2", "S3"], out["per_sample"], strict=True))
    assert bm.check_pseudobulk(path, chunk_size=512, expected=expected)["sums_match"] is True
    wrong = dict(expected, S1=expected["S1"] + 1)
    assert bm.check_pseudobulk(path, chunk_size=512, expected=wrong)["sums_match"] is False
    # the pseudobulk profile follows the sample's expression profile
    by_sample = np.vstack(
        [
            np.asarray(x[(a.obs["sample_id"] == s).to_numpy()].sum(axis=0)).ravel()
            for s in ["S1", "S2", "S3"]
        ]
    )
    for k in range(3):
        r = np.corrcoef(by_sample[k], profiles[k])[0, 1]
        assert r > 0.9


def _runs(walls):
    rows = []
    for (size, n, g), stages in walls.items():
        for stage, values in stages.items():
            for rep, w in enumerate(values):
                rows.append(
                    {
                        "size": size,
                        "kind": "bulk",
                        "n_samples": n,
                        "n_genes": g,
                        "n_cells": 0,
                        "stage": stage,
                        "wall_s": w,
                        "cpu_s": w / 2,
                        "peak_rss_mib": 100.0 * w,
                        "peak_tree_pss_mib": 150.0 * w,
                        "jobs": 1,
                        "load_1m": 0.5,
                        "status": "ok",
                        "repeat": rep,
                    }
                )
    return pd.DataFrame(rows)


def test_summary_medians_and_targets():
    runs = _runs(
        {
            ("a", 100, 1000): {
                "de": [1.0, 3.0, 2.0],
                "R_DESeq2": [5.0, 5.0, 5.0],
                "noop_rerun": [4.0, 6.0, 4.5],
                "end_to_end": [4.0, 4.0, 4.0],
            },
            ("b", 1000, 1000): {
                "de": [30.0, 30.0, 30.0],
                "R_DESeq2": [50.0, 50.0, 50.0],
                "noop_rerun": [3.0, 3.0, 3.0],
                "end_to_end": [60.0, 60.0, 60.0],
            },
        }
    )
    runs.loc[(runs["size"] == "a") & (runs["stage"] == "de") & (runs["repeat"] == 1), "status"] = (
        "failed (rc 1)"
    )
    s = bm.summarise(runs)
    row = s[(s["size"] == "a") & (s["stage"] == "de")].iloc[0]
    assert row["wall_s"] == 1.5 and row["repeats"] == 2  # median of the 2 ok runs
    assert row["status"].startswith("failed")
    assert s[(s["size"] == "a") & (s["stage"] == "noop_rerun")]["wall_s"].iloc[0] == 4.5
    t = bm.evaluate_targets(s).set_index(["target", "size"])["met"]
    assert t[("DE stage <= 0.5 x R DESeq2 (same data, cores)", "a")] == "yes"  # 1.5 <= 2.5
    assert t[("DE stage <= 0.5 x R DESeq2 (same data, cores)", "b")] == "NO"  # 30 > 25
    assert t[("whole workflow <= R DESeq2 alone", "a")] == "yes"
    assert t[("whole workflow <= R DESeq2 alone", "b")] == "NO"
    assert t[("no-op rerun < 5 s", "a")] == "yes"
    scaling = bm.evaluate_targets(s)
    scaling = scaling[scaling["size"] == "a->b"].iloc[0]
    # 10x the samples, 15x the time: 15 > 1.2 * 10
    assert scaling["measured"] == pytest.approx(15.0) and scaling["met"] == "NO"


def test_markdown_table():
    md = bm.markdown(pd.DataFrame({"x": ["a"], "y": [1.234], "z": [np.nan]}))
    assert md.splitlines() == ["| x | y | z |", "| --- | --- | --- |", "| a | 1.23 |  |"]


def test_harness_tiny_run(tmp_path):
    """One repeat of a tiny cohort through parse + the inputs stage, no R, no figure."""
    args = SimpleNamespace(
        sizes="4x300",
        repeats=1,
        cores=2,
        workdir=str(tmp_path / "w"),
        out=str(tmp_path / "o"),
        stages="inputs",
        format="tsv",
        seed=7,
        profile="",
        r=False,
        rscript="Rscript",
        end_to_end=False,
        imports=False,
        figure=False,
        chunk_size=50_000,
        sc_workflow=False,
        keep=False,
    )
    tables = bm.run_benchmark(args)
    s = pd.read_csv(tmp_path / "o" / "benchmark_summary.tsv", sep="\t")
    assert list(s.columns[: len(bm.COLUMNS)]) == bm.COLUMNS
    assert set(s["stage"]) == {"simulate", "parse", "inputs"}
    assert (s["status"] == "ok").all(), s["status"].tolist()
    measured = s[s["stage"].isin(["parse", "inputs"])]
    for col in ("wall_s", "cpu_s", "peak_rss_mib", "peak_tree_pss_mib"):
        assert (measured[col] > 0).all(), col
    assert measured["wall_s"].ge(measured["cpu_s"] / 2).all()  # 2 cores at most
    inputs = s[s["stage"] == "inputs"].iloc[0]
    assert inputs["jobs"] >= 3 and inputs["n_samples"] > 0 and inputs["n_genes"] == 300
    assert (tmp_path / "o" / "benchmark_targets.tsv").exists()
    assert json.loads((tmp_path / "o" / "benchmark_machine.json").read_text())["cores_used"] == 2
    assert len(tables["runs"]) == 3
