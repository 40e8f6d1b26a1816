"""Single-cell input: cell QC while streaming, minimum cells per profile, cell-type composition.

Cell QC. The metrics are scanpy's (:func:`scanpy.pp.calculate_qc_metrics`, with ``MT-`` genes
as mitochondrial and ``RPS``/``RPL`` genes as ribosomal), computed on an AnnData of each chunk
of cells. The loop over chunks is the project's own
(:func:`rhlh.contract.counts.read_h5ad_counts`): scanpy's QC and filtering work on an AnnData
held in memory (or backed, where ``calculate_qc_metrics`` and ``filter_cells`` still load the
whole matrix), which for 1,000,000 cells x 30,000 genes is several GiB; streaming chunks of
rows keeps memory at one chunk plus a few numbers per cell, and sums the kept cells into
pseudobulk in the same pass.

Rules (config section ``singlecell``):

* a cell is removed when it has fewer than ``min_genes`` detected genes, fewer than
  ``min_counts`` counts, or more than ``max_pct_mt`` % mitochondrial counts;
* with ``mad_filter: true`` also when, within its sample, log1p(total counts) or log1p(genes)
  lies more than ``n_mads`` median absolute deviations from the sample's median, or its
  mitochondrial % more than ``n_mads`` MADs above it (as in the single-cell best-practices
  book). Off by default: it needs the per-sample distribution before any cell is summed, so
  the file is read twice, and fixed thresholds are the ones a lab SOP states and that give
  the same rule to every sample of a trial delivered over months;
* a sample that loses more than ``max_fraction_removed`` of its cells is flagged (kept); a
  sample left with fewer than ``min_cells_per_sample`` cells is dropped (listed with the
  reason);
* a sample x cell-type pseudobulk profile of fewer than ``min_cells_per_profile`` kept cells
  is dropped (listed).

Composition: kept cells per sample x cell type, proportions transformed as propeller does
(logit of (n + 0.5) / (N + 0.5 K), or arcsine square root of n / N), then the shared
longitudinal mixed model (:func:`rhlh.longitudinal.fit_visit_by_response`: change from
baseline by response group, random intercept per patient, responder x visit interaction),
Benjamini-Hochberg across cell types.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("rhlh")

QC_METRICS = ["n_genes", "total_counts", "pct_counts_mt", "pct_counts_ribo"]
# bit flags of the reasons a cell is removed
REASONS = {1: "low_genes", 2: "low_counts", 4: "high_mt", 8: "mad_outlier"}
SAMPLE_QC_COLUMNS = [
    "sample_id",
    "n_cells_in",
    "n_cells_kept",
    "fraction_removed",
    *[f"n_{r}" for r in REASONS.values()],
    *[f"median_{m}" for m in QC_METRICS],
    *[f"median_{m}_kept" for m in QC_METRICS],
    "flagged",
    "status",
    "reason",
]
PROFILE_QC_COLUMNS = ["sample_id", "cell_type", "n_cells_in", "n_cells", "status", "reason"]
COMPOSITION_COLUMNS = [
    "sample_id",
    "patient_id",
    "visit",
    "day",
    "responder",
    "cell_type",
    "n_cells",
    "n_cells_sample",
    "proportion",
    "transformed",
]


def gene_masks(gene_names) -> tuple[np.ndarray, np.ndarray]:
    """Mitochondrial (``MT-``) and ribosomal (``RPS``/``RPL``) genes, case-insensitive."""
    names = pd.Series(np.asarray(gene_names, dtype=str)).str.upper()
    return (
        names.str.startswith("MT-").to_numpy(),
        names.str.startswith(("RPS", "RPL")).to_numpy(),
    )


def chunk_metrics(block, mt: np.ndarray, ribo: np.ndarray) -> np.ndarray:
    """QC metrics of a chunk of cells (rows), by scanpy: n_genes, total_counts, pct mt, pct ribo.

    ``block`` is a cells x genes (sparse) count matrix; returns a float32 array cells x 4 in the
    order of ``QC_METRICS`` (percentages 0 for cells without counts).
    """
    import anndata as ad
    import scanpy as sc

    var = pd.DataFrame({"mt": mt, "ribo": ribo}, index=[str(i) for i in range(len(mt))])
    chunk = ad.AnnData(X=block, var=var)
    obs_m, _ = sc.pp.calculate_qc_metrics(
        chunk, qc_vars=["mt", "ribo"], percent_top=None, log1p=False, inplace=False
    )
    out = obs_m[["n_genes_by_counts", "total_counts", "pct_counts_mt", "pct_counts_ribo"]]
    return np.nan_to_num(out.to_numpy(dtype=np.float64)).astype(np.float32)


def _mad(x):
    med = np.median(x)
    return med, np.median(np.abs(x - med))


class CellQC:
    """Per-cell QC during the streaming read (the ``cell_qc`` of ``read_h5ad_counts``).

    Holds four float32 metrics and one reason code per cell (about 17 bytes a cell), never the
    matrix. ``config`` is the ``singlecell`` config section.
    """

    def __init__(self, config: dict):
        self.cfg = dict(config)
        self.two_pass = bool(self.cfg["mad_filter"])

    def start(self, obs: pd.DataFrame, var: pd.DataFrame) -> None:
        """Called once with the file's obs and var, before any chunk."""
        names = var["gene_name"] if "gene_name" in var.columns else var.index
        self.mt, self.ribo = gene_masks(names)
        if not self.mt.any():
            log.warning("no mitochondrial (MT-) gene among the genes: pct_counts_mt is 0")
        n = len(obs)
        self.obs_names = obs.index.astype(str).to_numpy()
        self.sample_of = obs["sample_id"].astype(str).to_numpy()
        self.cell_type = (
            obs["cell_type"].astype(str).to_numpy() if "cell_type" in obs.columns else None
        )
        self.metrics = np.zeros((n, len(QC_METRICS)), dtype=np.float32)
        self.reason = np.zeros(n, dtype=np.uint8)

    def _fixed(self, m: np.ndarray) -> np.ndarray:
        c = self.cfg
        code = np.zeros(len(m), dtype=np.uint8)
        code |= np.where(m[:, 0] < c["min_genes"], 1, 0).astype(np.uint8)
        code |= np.where(m[:, 1] < c["min_counts"], 2, 0).astype(np.uint8)
        code |= np.where(m[:, 2] > c["max_pct_mt"], 4, 0).astype(np.uint8)
        return code

    def measure(self, block, start: int, stop: int) -> None:
        """Metrics of cells start..stop (and their fixed-threshold verdict)."""
        m = chunk_metrics(block, self.mt, self.ribo)
        self.metrics[start:stop] = m
        self.reason[start:stop] = self._fixed(m)

    def decide(self) -> None:
        """Per-sample MAD outliers, once every cell is measured (two-pass mode)."""
        k = float(self.cfg["n_mads"])
        codes, _ = pd.factorize(self.sample_of)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for idx in np.split(order, bounds):
            m = self.metrics[idx].astype(np.float64)
            out = np.zeros(len(idx), dtype=bool)
            for col in (0, 1):
                x = np.log1p(m[:, col])
                med, mad = _mad(x)
                out |= np.abs(x - med) > k * mad if mad > 0 else False
            med, mad = _mad(m[:, 2])
            if mad > 0:
                out |= m[:, 2] > med + k * mad
            self.reason[idx] |= np.where(out, 8, 0).astype(np.uint8)

    def keep(self, start: int, stop: int) -> np.ndarray:
        """Which cells of start..stop are summed."""
        return self.reason[start:stop] == 0

    def cell_table(self) -> pd.DataFrame:
        """One row per cell: cell_id, sample_id, cell_type, the metrics, kept, reason."""
        df = pd.DataFrame(self.metrics, columns=QC_METRICS)
        df.insert(0, "cell_id", self.obs_names)
        df.insert(1, "sample_id", self.sample_of)
        if self.cell_type is not None:
            df.insert(2, "cell_type", self.cell_type)
        df["n_genes"] = df["n_genes"].astype(np.int64)
        df["total_counts"] = df["total_counts"].astype(np.int64)
        df["kept"] = self.reason == 0
        df["reason"] = pd.Categorical.from_codes(
            self.reason.astype(np.int64), _reason_labels()
        ).astype(str)
        return df


def _reason_labels() -> list[str]:
    out = []
    for code in range(16):
        parts = [name for bit, name in REASONS.items() if code & bit]
        out.append(";".join(parts))
    return out


def sample_qc_table(qc: CellQC) -> pd.DataFrame:
    """Per sample: cells in / kept, removed per reason, metric medians, flag, status, reason."""
    cfg = qc.cfg
    df = pd.DataFrame(qc.metrics.astype(np.float64), columns=QC_METRICS)
    df["sample_id"] = qc.sample_of
    df["kept"] = qc.reason == 0
    for bit, name in REASONS.items():
        df[f"n_{name}"] = (qc.reason & bit) > 0
    g = df.groupby("sample_id", sort=False)
    out = pd.DataFrame({"n_cells_in": g.size(), "n_cells_kept": g["kept"].sum()})
    out["fraction_removed"] = 1.0 - out["n_cells_kept"] / out["n_cells_in"]
    for name in REASONS.values():
        out[f"n_{name}"] = g[f"n_{name}"].sum().astype(int)
    med = g[QC_METRICS].median()
    out[[f"median_{m}" for m in QC_METRICS]] = med.to_numpy()
    med_kept = df[df["kept"]].groupby("sample_id", sort=False)[QC_METRICS].median()
    med_kept = med_kept.reindex(out.index)
    out[[f"median_{m}_kept" for m in QC_METRICS]] = med_kept.to_numpy()
    out["flagged"] = out["fraction_removed"] > cfg["max_fraction_removed"]
    few = out["n_cells_kept"] < cfg["min_cells_per_sample"]
    out["status"] = np.where(few, "dropped", "kept")
    reason = []
    for n, fr, fl, f in zip(
        out["n_cells_kept"], out["fraction_removed"], out["flagged"], few, strict=True
    ):
        parts = []
        if f:
            parts.append(f"{n} cells after QC < min_cells_per_sample {cfg['min_cells_per_sample']}")
        if fl:
            parts.append(
                f"QC removed {fr:.0%} of cells > max_fraction_removed "
                f"{cfg['max_fraction_removed']:.0%}"
            )
        reason.append("; ".join(parts))
    out["reason"] = reason
    out = out.reset_index(names="sample_id")
    out["n_cells_kept"] = out["n_cells_kept"].astype(int)
    return out[SAMPLE_QC_COLUMNS]


def profile_qc_table(raw: dict, sample_qc: pd.DataFrame, min_cells: int) -> pd.DataFrame:
    """Per sample x cell type pseudobulk profile: cells in, cells kept, status, reason."""
    if raw.get("ct_index") is None:
        return pd.DataFrame(columns=PROFILE_QC_COLUMNS)
    idx = raw["ct_index"]
    kept = raw["ct_n_cells"].to_numpy()
    out = pd.DataFrame(
        {
            "sample_id": idx.get_level_values(0).astype(str),
            "cell_type": idx.get_level_values(1).astype(str),
            "n_cells_in": raw["ct_n_cells_in"].to_numpy(),
            "n_cells": kept,
        }
    )
    dropped_samples = set(sample_qc.loc[sample_qc["status"] == "dropped", "sample_id"])
    s_drop = out["sample_id"].isin(dropped_samples).to_numpy()
    few = kept < min_cells
    out["status"] = np.where(s_drop | few, "dropped", "kept")
    out["reason"] = [
        "sample dropped (too few cells after QC)"
        if sd
        else (f"{n} cells after QC < min_cells_per_profile {min_cells}" if f else "")
        for sd, f, n in zip(s_drop, few, kept, strict=True)
    ]
    return out[PROFILE_QC_COLUMNS]


def apply_cell_qc(raw: dict, qc: CellQC) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Drop samples and profiles with too few kept cells from a ``read_h5ad_counts`` result.

    Returns (raw with only kept samples / profiles, sample QC table, profile QC table).
    """
    cfg = qc.cfg
    sample_qc = sample_qc_table(qc)
    raw = dict(raw)
    if raw.get("ct_index") is not None:
        pair = pd.MultiIndex.from_arrays([qc.sample_of, qc.cell_type])
        raw["ct_n_cells_in"] = (
            pd.Series(1, index=pair).groupby(level=[0, 1]).size().reindex(raw["ct_index"])
        )
    profiles = profile_qc_table(raw, sample_qc, int(cfg["min_cells_per_profile"]))
    keep_s = set(sample_qc.loc[sample_qc["status"] == "kept", "sample_id"])
    if not keep_s:
        raise ValueError(
            f"cell QC left no sample with >= {cfg['min_cells_per_sample']} cells "
            f"({int(sample_qc['n_cells_kept'].sum())} of {int(sample_qc['n_cells_in'].sum())} "
            "cells kept): check the thresholds of config section singlecell (min_genes, "
            "min_counts, max_pct_mt) against these cells"
        )
    pos = [i for i, s in enumerate(raw["samples"]) if s in keep_s]
    raw["samples"] = [raw["samples"][i] for i in pos]
    raw["counts"] = raw["counts"][pos]
    raw["n_cells"] = raw["n_cells"].iloc[pos]
    if raw.get("ct_index") is not None:
        keep_p = np.flatnonzero((profiles["status"] == "kept").to_numpy())
        raw["ct_index"] = raw["ct_index"][keep_p]
        raw["ct_counts"] = raw["ct_counts"][keep_p]
        raw["ct_n_cells"] = raw["ct_n_cells"].iloc[keep_p]
    return raw, sample_qc, profiles


def add_profile_cells(by_ct, ct_n_cells: pd.Series) -> None:
    """obs['n_cells'] of the per-cell-type pseudobulk AnnData (obs names 'sample|cell type')."""
    lookup = {f"{s}|{c}": int(n) for (s, c), n in ct_n_cells.items()}
    by_ct.obs["n_cells"] = [lookup[i] for i in by_ct.obs_names]


def write_cell_table(df: pd.DataFrame, path) -> None:
    """The per-cell QC table as gzipped TSV, deterministically (no time stamp) and atomically."""
    import os

    from rhlh.io import FLOAT_FORMAT, atomic_path

    tmp = atomic_path(path)
    try:
        df.to_csv(
            tmp,
            sep="\t",
            index=False,
            float_format=FLOAT_FORMAT,
            lineterminator="\n",
            compression={"method": "gzip", "mtime": 0, "compresslevel": 6},
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def is_single_cell_h5ad(path) -> bool:
    """Whether a counts file is a single-cell h5ad (obs has sample_id and more rows than
    distinct samples), as :func:`rhlh.contract.counts.read_h5ad_counts` decides it."""
    if not str(path).lower().endswith(".h5ad"):
        return False
    import anndata.io as aio
    import h5py

    try:
        with h5py.File(path, "r") as f:
            obs = f.get("obs")
            if obs is None or "sample_id" not in obs:
                return False
            values = pd.Series(np.asarray(aio.read_elem(obs["sample_id"])))
    except OSError:
        return False
    return bool(values.nunique(dropna=False) < len(values))


# --- composition ----------------------------------------------------------------------------


def transform_proportions(counts: pd.DataFrame, method: str = "logit") -> pd.DataFrame:
    """Samples x cell types counts -> transformed proportions, as propeller (speckle) does.

    ``logit``: log(p / (1 - p)) with p = (n + 0.5) / sum over cell types of (n + 0.5);
    ``asin``: arcsin(sqrt(n / N)).
    """
    x = counts.astype(float)
    if method == "logit":
        p = (x + 0.5).div((x + 0.5).sum(axis=1), axis=0)
        return np.log(p / (1 - p))
    if method == "asin":
        return np.arcsin(np.sqrt(x.div(x.sum(axis=1), axis=0)))
    raise ValueError(f"transform must be 'logit' or 'asin', not {method!r}")


def composition_table(
    profiles: pd.DataFrame,
    samples: pd.DataFrame,
    responders: pd.DataFrame | None = None,
    transform: str = "logit",
) -> pd.DataFrame:
    """Long table of kept cells per sample x cell type (zeros filled in), with proportions.

    ``profiles`` is the profile QC table (cells after QC, before the per-profile minimum);
    samples dropped by QC are left out. ``responders`` (clinical/responders.tsv) adds the
    responder flag (None when unknown or absent).
    """
    p = profiles[~profiles["reason"].str.startswith("sample dropped")]
    wide = (
        p.pivot_table(
            index="sample_id", columns="cell_type", values="n_cells", aggfunc="sum", fill_value=0
        )
        .astype(np.int64)
        .sort_index(axis=1)
    )
    wide = wide[wide.sum(axis=1) > 0]
    trans = transform_proportions(wide, transform)
    total = wide.sum(axis=1)
    long = wide.stack().rename("n_cells").reset_index()
    long["n_cells_sample"] = long["sample_id"].map(total).astype(np.int64)
    long["proportion"] = long["n_cells"] / long["n_cells_sample"]
    long["transformed"] = (
        trans.stack().reindex(pd.MultiIndex.from_frame(long[["sample_id", "cell_type"]])).to_numpy()
    )
    sheet = samples.set_index("sample_id")[["patient_id", "visit", "day"]]
    long = long.join(sheet, on="sample_id")
    resp = {}
    if responders is not None:
        resp = dict(zip(responders["patient_id"], responders["responder"], strict=True))
    long["responder"] = [resp.get(pid) for pid in long["patient_id"]]
    return long[COMPOSITION_COLUMNS]


def _group(flag) -> str:
    if flag is True:
        return "responder"
    if flag is False:
        return "non-responder"
    return "unknown"


def composition_by_visit(long: pd.DataFrame, visits) -> pd.DataFrame:
    """Mean / median proportion per visit x response group x cell type (and group 'all')."""
    d = long.assign(group=[_group(f) for f in long["responder"]])
    both = pd.concat([d, d.assign(group="all")], ignore_index=True)
    g = both.groupby(["group", "visit", "cell_type"], observed=True)
    out = g.agg(
        n_samples=("sample_id", "nunique"),
        n_patients=("patient_id", "nunique"),
        n_cells=("n_cells", "sum"),
        mean_proportion=("proportion", "mean"),
        median_proportion=("proportion", "median"),
        sd_proportion=("proportion", "std"),
    ).reset_index()
    out["pooled_proportion"] = out["n_cells"] / out.groupby(["group", "visit"])[
        "n_cells"
    ].transform("sum")
    vorder = {v: i for i, v in enumerate(visits)}
    gorder = {"responder": 0, "non-responder": 1, "unknown": 2, "all": 3}
    out = out.sort_values(
        ["group", "visit", "cell_type"],
        key=lambda s: (
            s.map(gorder) if s.name == "group" else (s.map(vorder) if s.name == "visit" else s)
        ),
        kind="mergesort",
    )
    return out.reset_index(drop=True)


def composition_tests(
    long: pd.DataFrame,
    visits,
    baseline: str,
    seed: int = 0,
    n_boot: int = 0,
    min_patients: int = 3,
    transform: str = "logit",
    n_perm: int = 1999,
) -> pd.DataFrame:
    """Longitudinal composition tests per cell type with the shared mixed model.

    Transformed proportions per sample in ``value ~ group + group:visit + (1 | patient)``
    (:func:`rhlh.longitudinal.fit_visit_by_response`): change from baseline at each visit in
    responders, non-responders and everyone, and the joint responder x visit interaction (Wald F
    referred to ``n_perm`` labellings of the patients as responder / non-responder); BH
    across cell types within each term x group x visit. ``feature`` is the cell type.
    """
    from rhlh.longitudinal import fit_visit_by_response

    d = long.rename(columns={"cell_type": "feature", "transformed": "value"})
    out = fit_visit_by_response(
        d,
        value_col="value",
        feature_col="feature",
        visits=list(visits),
        baseline=baseline,
        seed=seed,
        n_boot=n_boot,
        min_patients=min_patients,
        n_perm=n_perm,
    )
    out = out.rename(columns={"feature": "cell_type"})
    out.insert(1, "transform", transform)
    return out
