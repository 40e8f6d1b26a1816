"""Calibration of the longitudinal DE tests on a simulator built to be hard on them.

``simulate_de_cohort`` draws counts with what real cohorts have and the NB GLM does not
model: gene-wise dispersions scattered widely around the trend (log-normal), sample-level
extra noise per gene (a log-normal factor on each mean, heavier for some genes), per-patient
random slopes for every gene (genes without a planted change still move within patients),
and non-responders who drop out earlier. Truth is known per gene and per test.

``calibrate`` runs the project's DE designs on several seeds and a null cohort, in each
``de.mode``, and reports the empirical FDR and recall at padj < alpha per test:

    python -m rhlh_dev.calibration --seeds 1 2 3 4 5 --genes 3000 --out results/calibration
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

VISITS = ["D0", "D7", "D14", "D21", "D28", "D35", "D42", "D49", "D56"]
VISIT_DAY = {v: int(v[1:]) for v in VISITS}
TESTS = ("wald_D7", "lrt_time", "lrt_response")


def simulate_de_cohort(
    seed: int,
    n_patients: int = 20,
    n_genes: int = 3000,
    null: bool = False,
    responder_fraction: float = 0.6,
    disp_scatter: float = 0.6,
    sample_noise: float = 0.15,
    slope_sd: float = 0.25,
    frac_changing: float = 0.1,
) -> dict:
    """One cohort for the DE tests: counts (genes x samples), samples, truth per test.

    ``null=True`` plants no change at all (every call is false). Otherwise 10% of genes change
    over time in both groups (half of them differently in responders: the response genes);
    effects are on log2 scale, reach a plateau by D21, and vary between patients.
    """
    rng = np.random.default_rng(seed)
    pids = [f"P{i + 1:03d}" for i in range(n_patients)]
    n_resp = int(round(n_patients * responder_fraction))
    responder = np.zeros(n_patients, bool)
    responder[rng.choice(n_patients, n_resp, replace=False)] = True
    rows = []
    for i, pid in enumerate(pids):
        # non-responders leave earlier (death or early transplant), responders later
        last = int(rng.integers(14, 57)) if not responder[i] else int(rng.integers(35, 70))
        for v in VISITS:
            if VISIT_DAY[v] > last:
                break
            if v != "D0" and rng.random() < (0.08 if responder[i] else 0.15):
                continue
            rows.append(
                {
                    "sample_id": f"{pid}_{v}",
                    "patient_id": pid,
                    "visit": v,
                    "responder": "responder" if responder[i] else "non_responder",
                }
            )
    samples = pd.DataFrame(rows)
    samples["batch"] = "B1"
    p_index = samples["patient_id"].map({p: k for k, p in enumerate(pids)}).to_numpy()
    day = samples["visit"].map(VISIT_DAY).to_numpy().astype(float)
    shape = np.minimum(day / 21.0, 1.0)
    s_resp = responder[p_index]
    n_s = len(samples)
    log_mu = rng.normal(np.log(120), 1.7, n_genes).clip(np.log(0.3), np.log(2e5))
    trend = 0.04 + 1.5 / np.exp(log_mu)
    disp = trend * np.exp(rng.normal(0, disp_scatter, n_genes))
    patient_eff = rng.normal(0, 0.3, (n_patients, n_genes))
    # per-patient random slopes on every gene (mean zero), log2 scale
    slopes = rng.normal(0, slope_sd, (n_patients, n_genes)) * rng.gamma(2.0, 0.5, n_genes)
    lfc = shape[:, None] * slopes[p_index]
    time_genes = np.zeros(n_genes, bool)
    resp_genes = np.zeros(n_genes, bool)
    if not null:
        n_change = int(n_genes * frac_changing)
        changing = rng.choice(n_genes, n_change, replace=False)
        time_genes[changing] = True
        size = rng.choice([-1, 1], n_change) * rng.gamma(2.0, 0.45, n_change)
        lfc[:, changing] += np.outer(shape, size)
        specific = changing[: n_change // 2]
        resp_genes[specific] = True
        extra = rng.choice([-1, 1], len(specific)) * rng.gamma(2.0, 0.5, len(specific))
        lfc[np.ix_(s_resp, specific)] += np.outer(shape[s_resp], extra)
    # sample-level extra-NB noise, gene-specific amount (log scale)
    tau = sample_noise * rng.gamma(1.5, 1 / 1.5, n_genes)
    noise = rng.normal(0, 1, (n_s, n_genes)) * tau[None, :]
    sf = np.exp(rng.normal(0, 0.3, n_s))
    mu = sf[:, None] * np.exp(log_mu[None, :] + patient_eff[p_index] + lfc * np.log(2) + noise)
    r = 1.0 / disp
    counts = rng.negative_binomial(r[None, :], r[None, :] / (r[None, :] + mu))
    genes = [f"G{g + 1:05d}" for g in range(n_genes)]
    counts = pd.DataFrame(counts.T.astype(np.int64), index=genes, columns=samples["sample_id"])
    # the D7 contrast: a mean change at D7 (every time gene has one; shape(D7) = 1/3)
    truth = pd.DataFrame(
        {"wald_D7": time_genes, "lrt_time": time_genes, "lrt_response": resp_genes},
        index=genes,
    )
    return {"counts": counts, "samples": samples, "truth": truth, "null": null, "seed": seed}


DESIGNS = [
    {
        "id": "visit",
        "formula": "~ patient_id + visit",
        "contrasts": ["visit"],
        "reduced": {"time": "~ patient_id"},
    },
    {
        "id": "time_by_response",
        "formula": "~ patient_id + visit + responder:visit",
        "reduced": "~ patient_id + visit",
    },
]


def run_cohort(cohort: dict, mode: str, alpha: float = 0.05, n_cpus: int = 1, **kw) -> dict:
    """padj of each test (a Series per test) from the project's DE code in ``mode``."""
    from rhlh import de
    from rhlh.design import parse_design_specs

    counts = cohort["counts"]
    counts = counts[counts.sum(axis=1) >= 10]
    samples = cohort["samples"].copy()
    samples["responder"] = samples["responder"].eq("responder").astype(object)
    levels = {"visit": [v for v in VISITS if v in set(samples["visit"])]}
    out = {}
    cache = {}
    for spec in parse_design_specs(DESIGNS):
        res = de.run_design(
            counts,
            samples,
            spec,
            levels=levels,
            reference={"visit": "D0"},
            baseline="D0",
            alpha=alpha,
            shrink=False,
            outlier_handling=False,
            mode=mode,
            n_cpus=n_cpus,
            **kw,
            outlier_cache=cache,
        )
        if spec.id == "visit":
            out["wald_D7"] = res.wald["D7_vs_D0"].set_index("gene_id")
            out["lrt_time"] = res.lrt["time"].set_index("gene_id")
        else:
            out["lrt_response"] = res.lrt["time_by_response"].set_index("gene_id")
    return out


def run_r_deseq2(cohort: dict, cores: int = 1) -> dict:
    """The same tests by R DESeq2 (tools/bench_deseq2.R, Rscript on the PATH): padj tables."""
    import os
    import subprocess
    import tempfile

    script = Path(__file__).resolve().parents[1] / "bench_deseq2.R"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        counts = cohort["counts"][cohort["counts"].sum(axis=1) >= 10]
        counts.rename_axis("gene_id").reset_index().to_csv(t / "counts.tsv", sep="\t", index=False)
        # the samples rhlh.de keeps (visits seen in >= 3 patients, patients with >= 2
        # samples): bench_deseq2.R applies only the second rule
        from rhlh.de import select_samples

        kept, _ = select_samples(cohort["samples"], [d["formula"] for d in DESIGNS], baseline="D0")
        kept = cohort["samples"][cohort["samples"]["sample_id"].isin(kept["sample_id"])]
        kept.to_csv(t / "samples.tsv", sep="\t", index=False)
        resp = cohort["samples"].drop_duplicates("patient_id")[["patient_id", "responder"]]
        resp = resp.assign(responder=np.where(resp["responder"] == "responder", "True", "False"))
        resp.to_csv(t / "responders.tsv", sep="\t", index=False)
        (t / "tables").mkdir()
        env = {**os.environ, "RHLH_R_TABLES": str(t / "tables")}
        subprocess.run(
            [
                "Rscript",
                str(script),
                str(t / "counts.tsv"),
                str(t / "samples.tsv"),
                str(t / "responders.tsv"),
                str(cores),
                str(t / "steps.tsv"),
                "D0",
                "none",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        read = lambda n: pd.read_csv(t / "tables" / f"{n}.tsv", sep="\t").set_index("gene_id")  # noqa: E731
        return {
            "wald_D7": read("wald_D7"),
            "lrt_time": read("lrt_time"),
            "lrt_response": read("lrt_time_by_response"),
        }


def score(tables: dict, truth: pd.DataFrame, alpha: float = 0.05) -> list[dict]:
    """Calls, false calls, FDR and recall of each test at padj < alpha."""
    rows = []
    for test, tab in tables.items():
        called = tab.index[tab["padj"].fillna(1.0).to_numpy() < alpha]
        true = truth.index[truth[test].to_numpy()]
        n_false = int((~truth.loc[called, test]).sum())
        rows.append(
            {
                "test": test,
                "calls": len(called),
                "false": n_false,
                "fdr": n_false / len(called) if len(called) else 0.0,
                "recall": (len(called) - n_false) / len(true) if len(true) else np.nan,
                "null_p_below_0.01": float(
                    (
                        tab.loc[truth.index[~truth[test]].intersection(tab.index), "pvalue"] < 0.01
                    ).mean()
                ),
            }
        )
    return rows


def agreement(ours: dict, r: dict, alpha: float = 0.05) -> list[dict]:
    """DESeq2-compatible mode against R DESeq2 on one cohort: Spearman of log2FC (Wald) and
    of the statistic over genes with baseMean >= 1, share of genes with the same call."""
    rows = []
    for test, tab in ours.items():
        rt = r[test].reindex(tab.index)
        use = (tab["baseMean"] >= 1).to_numpy() & rt["stat"].notna().to_numpy()
        use &= tab["stat"].notna().to_numpy()
        row = {"test": test, "genes": int(use.sum())}
        if "log2FoldChange" in tab:
            row["lfc_spearman"] = spearmanr(tab["log2FoldChange"][use], rt["log2FoldChange"][use])[
                0
            ]
        row["stat_spearman"] = spearmanr(tab["stat"][use], rt["stat"][use])[0]
        a = tab["padj"].fillna(1).to_numpy() < alpha
        b = rt["padj"].fillna(1).to_numpy() < alpha
        row["calls_agree"] = float(np.mean(a == b))
        rows.append(row)
    return rows


def calibrate(seeds, modes, n_genes=3000, n_patients=20, null_seeds=(101,), alpha=0.05, **kw):
    """One row per cohort x mode x test (FDR, recall, calls) and the seconds per fit; mode
    "R" is R DESeq2 itself (tools/bench_deseq2.R)."""
    rows, agree = [], []
    for seed, null in [*[(s, False) for s in seeds], *[(s, True) for s in null_seeds]]:
        cohort = simulate_de_cohort(seed, n_patients=n_patients, n_genes=n_genes, null=null)
        done = {}
        for mode in modes:
            t0 = time.perf_counter()
            if mode == "R":
                tables = run_r_deseq2(cohort)
            else:
                extra = kw if mode == "calibrated" else {}
                tables = run_cohort(cohort, mode, alpha=alpha, **extra)
            secs = time.perf_counter() - t0
            done[mode] = tables
            if mode in ("R", "deseq2") and {"R", "deseq2"} <= set(done):
                for r in agreement(done["deseq2"], done["R"], alpha):
                    agree.append({"seed": seed, "null": null, **r})
            for r in score(tables, cohort["truth"], alpha):
                rows.append({"seed": seed, "null": null, "mode": mode, **r, "seconds": secs})
            print(pd.DataFrame(rows).tail(len(tables)).to_string(index=False), flush=True)
    return pd.DataFrame(rows), pd.DataFrame(agree)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and worst FDR, mean recall per mode x test over the effect cohorts; null calls."""
    eff = rows[~rows["null"]]
    out = eff.groupby(["mode", "test"]).agg(
        fdr_mean=("fdr", "mean"), fdr_worst=("fdr", "max"), recall_mean=("recall", "mean")
    )
    null_calls = rows[rows["null"]].groupby(["mode", "test"])["calls"].max()
    out["null_calls_max"] = null_calls.reindex(out.index)
    return out.reset_index()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--null-seeds", type=int, nargs="*", default=[101])
    ap.add_argument(
        "--modes", nargs="+", default=["calibrated", "deseq2"], help="calibrated, deseq2, R"
    )
    ap.add_argument("--permutation-nulls", type=int, default=50000)
    ap.add_argument("--genes", type=int, default=3000)
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("results/calibration"))
    a = ap.parse_args(argv)
    rows, agree = calibrate(
        a.seeds,
        a.modes,
        a.genes,
        a.patients,
        a.null_seeds,
        permutation_nulls=a.permutation_nulls,
    )
    a.out.mkdir(parents=True, exist_ok=True)
    rows.to_csv(a.out / "runs.tsv", sep="\t", index=False)
    summary = summarise(rows)
    summary.to_csv(a.out / "summary.tsv", sep="\t", index=False)
    print(summary.to_string(index=False))
    if len(agree):
        agree.to_csv(a.out / "agreement_with_r.tsv", sep="\t", index=False)
        print(agree.to_string(index=False))


if __name__ == "__main__":
    main()
