"""A seeded simulator of R-HLH-like cohorts: sheets, counts, cytokines, responses, PK, events.

The embedded example cohort (``example/cohort``) is its output for the committed seed; tests
and benchmarks reuse it with other sizes. Run ``python -m rhlh_dev.simulate --help``.
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

VISITS = ["D0", "D7", "D14", "D21", "D28", "D35", "D42", "D49", "D56"]
VISIT_DAY = {v: int(v[1:]) for v in VISITS}
RESPONSE_VISITS = [("D7", 7), ("D14", 14), ("D21", 21), ("D28", 28), ("W8", 56)]
ANALYTES = {  # canonical name: (log10 baseline, log10 fall in responders by D28)
    "IFNG": (2.4, 1.6),
    "CXCL9": (3.6, 1.3),
    "IL10": (2.2, 1.0),
    "IL18": (3.4, 0.6),
    "IL6": (1.4, 0.6),
    "TNFA": (1.2, 0.3),
    "IL2": (0.7, 0.2),
    "IL1B": (0.4, 0.1),
}
LAB_NAMES = [
    {
        "IFNG": "IFN-γ",
        "CXCL9": "MIG",
        "IL10": "IL-10",
        "IL18": "IL-18",
        "IL6": "IL-6",
        "TNFA": "TNF-alpha",
        "IL2": "IL-2",
        "IL1B": "IL-1β",
    },
    {
        "IFNG": "IFNg",
        "CXCL9": "CXCL9",
        "IL10": "IL10",
        "IL18": "IL18",
        "IL6": "IL6",
        "TNFA": "TNFa",
        "IL2": "IL2",
        "IL1B": "IL-1b",
    },
]
# single-cell simulation: mitochondrial genes (appended to var when low-quality cells are
# planted), default cell types with their baseline proportions, and the planted composition
# change: log fold change of a cell type's weight in responders at the plateau (D21 on)
MT_GENES = [
    "MT-ND1",
    "MT-ND2",
    "MT-CO1",
    "MT-CO2",
    "MT-ATP8",
    "MT-ATP6",
    "MT-CO3",
    "MT-ND3",
    "MT-ND4L",
    "MT-ND4",
    "MT-ND5",
    "MT-ND6",
    "MT-CYB",
]
RIBO_GENES = ["RPS3", "RPS6", "RPS27A", "RPL3", "RPL13", "RPL41"]
SC_CELL_TYPES = ("CD8T", "CD4T", "NK", "Mono", "B")
SC_BASE_PROPORTIONS = {"CD8T": 0.25, "CD4T": 0.25, "NK": 0.15, "Mono": 0.25, "B": 0.10}
SC_COMPOSITION_CHANGE = {"CD8T": -1.5}
GENOTYPES = ["PRF1", "UNC13D", "STXBP2", "STX11", "RAB27A", "LYST", "SH2D1A", "XIAP"]
AE_TERMS = [
    "anaemia",
    "thrombocytopenia",
    "neutropenia",
    "hypertension",
    "hypokalaemia",
    "ALT increased",
]
VIRAL_TERMS = ["CMV reactivation", "EBV viraemia", "adenovirus infection", "HHV-6 reactivation"]
# tools/rhlh_dev/simulate.py -> repository root -> the shipped gene sets
GENESET_DIR = Path(__file__).resolve().parents[2] / "resources" / "genesets"
IFN_SETS = (
    "HALLMARK_INTERFERON_GAMMA_RESPONSE",
    "AYERS_IFNG_6",
    "RICE_TYPE1_ISG_6",
    "HALLMARK_IL6_JAK_STAT3_SIGNALING",
)


def _gmt_sets(folder=GENESET_DIR) -> dict[str, list[str]]:
    sets = {}
    for gmt in sorted(Path(folder).glob("*.gmt")):
        for line in gmt.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) > 2:
                sets[parts[0]] = [g for g in parts[2:] if g]
    return sets


def gene_universe(n_genes: int):
    """Gene symbols (all shipped signature genes first, then synthetic), and the IFN genes."""
    sets = _gmt_sets()
    ifn = sorted({g for name in IFN_SETS for g in sets.get(name, [])})
    real = sorted({g for genes in sets.values() for g in genes})
    real = ifn + [g for g in real if g not in set(ifn)]
    if n_genes < len(ifn):
        raise ValueError(f"need at least {len(ifn)} genes to hold the IFN signature genes")
    names = real[:n_genes] + [f"SYNG{i:05d}" for i in range(n_genes - min(n_genes, len(real)))]
    return names, ifn


def simulate_cohort(
    n_patients: int = 20,
    n_genes: int = 3000,
    seed: int = 2024,
    responder_fraction: float = 0.65,
    null: bool = False,
    missing_rate: float = 0.05,
    n_batches: int = 2,
) -> dict:
    """Simulate one cohort; ``null=True`` gives no response-specific change anywhere."""
    rng = np.random.default_rng(seed)
    pids = [f"P{i + 1:03d}" for i in range(n_patients)]
    responder = rng.random(n_patients) < responder_fraction
    # --- clinical timeline -------------------------------------------------------------------
    patients, responses, samples = [], [], []
    for i, pid in enumerate(pids):
        dies = rng.random() < (0.04 if responder[i] else 0.35)
        death = int(rng.integers(10, 50)) if dies else None
        cond = None if dies else int(rng.integers(35, 71))
        hsct = cond + 7 if cond is not None and cond + 7 <= 84 else None
        last = death if dies else (hsct + 28 if hsct else 84)
        end = death if dies else cond  # draws stop at death or conditioning
        react = None
        if responder[i] and not dies and rng.random() < 0.15:
            react = int(rng.integers(30, min(end, 55)))
        patients.append(
            {
                "patient_id": pid,
                "last_followup_day": last,
                "hsct_day": hsct,
                "death_day": death,
                "conditioning_day": cond,
                "reactivation_day": react,
                "centre": f"C{int(rng.integers(1, 10))}",
                "sex": "F" if rng.random() < 0.5 else "M",
                "age_months": int(rng.integers(1, 120)),
                "genotype": GENOTYPES[int(rng.integers(0, len(GENOTYPES)))],
            }
        )
        early = i < int(np.ceil(n_patients * 0.6)) or n_batches == 1
        for v in VISITS:
            day = VISIT_DAY[v]
            if end is not None and day >= end:
                break
            if v != "D0" and rng.random() < missing_rate:
                continue
            # deliveries: early patients in B1 (their late draws in B2), later patients in B2
            batch = "B1" if early and day <= 35 else ("B2" if n_batches > 1 else "B1")
            samples.append(
                {
                    "sample_id": f"{pid}_{v}",
                    "patient_id": pid,
                    "visit": v,
                    "day": day + int(rng.integers(-1, 2)) if day else 0,
                    "batch": batch,
                }
            )
        for v, day in [*RESPONSE_VISITS, ("PRECOND1", None)]:
            if v == "PRECOND1" and cond is None:
                continue
            d = (cond - 1) if v == "PRECOND1" else day
            if d is None or (end is not None and d >= end and v != "PRECOND1"):
                continue
            if death is not None and d > death:
                continue
            if responder[i]:
                p_cr = {"D7": 0.05, "D14": 0.25, "D21": 0.4, "D28": 0.5}.get(v, 0.7)
                p_pr = {"D7": 0.5, "D14": 0.65}.get(v, 1 - p_cr)
                u = rng.random()
                resp = "CR" if u < p_cr else ("PR" if u < p_cr + p_pr else "NR")
                if v == "D28" and resp == "NR":
                    resp = "PR"
            else:
                u = rng.random()
                resp = "PR" if (v in ("D7", "D14") and u < 0.2) else ("NE" if u > 0.95 else "NR")
            responses.append({"patient_id": pid, "visit": v, "day": d, "response": resp})
    patients = pd.DataFrame(patients)
    for col in ("hsct_day", "death_day", "conditioning_day", "reactivation_day"):
        patients[col] = patients[col].astype("Int64")
    samples = pd.DataFrame(samples)
    responses = pd.DataFrame(responses)
    resp_of = dict(zip(pids, responder, strict=True))
    s_resp = samples["patient_id"].map(resp_of).to_numpy()
    s_day = samples["visit"].map(VISIT_DAY).to_numpy().astype(float)
    # --- expression --------------------------------------------------------------------------
    genes, ifn_genes = gene_universe(n_genes)
    n_s = len(samples)
    log_mu = rng.normal(np.log(150), 1.6, n_genes).clip(np.log(0.5), np.log(2e5))
    disp = (0.06 + 2.0 / np.exp(log_mu)) * np.exp(rng.normal(0, 0.35, n_genes))
    p_index = samples["patient_id"].map({p: k for k, p in enumerate(pids)}).to_numpy()
    patient_eff = rng.normal(0, 0.25, (n_patients, n_genes))
    lfc = np.zeros((n_s, n_genes))
    time_shape = np.minimum(s_day / 21.0, 1.0)  # change reaches its plateau by D21
    ifn_idx = np.array([genes.index(g) for g in ifn_genes])
    loading = rng.uniform(0.5, 1.0, len(ifn_idx))
    # each patient's own IFN fall (log2), larger in responders; one shared law under the null
    fall_r = rng.normal(1.4, 0.5, n_patients).clip(0, None)
    fall_nr = rng.normal(0.3, 0.3, n_patients).clip(0, None)
    fall_patient = np.where(responder, fall_r, fall_nr) if not null else fall_r
    fall = fall_patient[p_index]
    lfc[:, ifn_idx] -= np.outer(time_shape * fall, loading)
    rest = np.setdiff1d(np.arange(n_genes), ifn_idx)
    steroid = rng.choice(rest, size=min(100, len(rest)), replace=False)
    lfc[:, steroid] += np.outer(time_shape, rng.choice([-1.0, 1.0], len(steroid)))
    batch_genes = rng.choice(rest, size=min(50, len(rest)), replace=False)
    is_b2 = (samples["batch"] == "B2").to_numpy()
    lfc[np.ix_(is_b2, batch_genes)] += rng.choice([-0.5, 0.5], len(batch_genes))
    sf = np.exp(rng.normal(0, 0.25, n_s))
    mu = sf[:, None] * np.exp(log_mu[None, :] + patient_eff[p_index] + lfc * np.log(2))
    r = 1.0 / disp
    counts = rng.negative_binomial(r[None, :], r[None, :] / (r[None, :] + mu)).astype(np.int64)
    gene_ids = [f"SIMG{i + 1:05d}" for i in range(n_genes)]
    var = pd.DataFrame({"gene_id": gene_ids, "gene_name": genes})
    # --- cytokines ---------------------------------------------------------------------------
    lloq, uloq = 3.2, 10000.0
    cyto = []
    plate_of = samples["batch"].map({"B1": "PL1", "B2": "PL2"}).to_numpy()
    patient_cyto = rng.normal(0, 0.25, (n_patients, len(ANALYTES)))
    cyto_factor = rng.normal(1.0, 0.4, n_patients).clip(0, None)  # patients fall unequally
    for k, row in enumerate(samples.itertuples(index=False)):
        plate = plate_of[k]
        lab = LAB_NAMES[0 if plate == "PL1" else 1]
        for a, (name, (base, fall_a)) in enumerate(ANALYTES.items()):
            f = (
                time_shape[k]
                * cyto_factor[p_index[k]]
                * ((fall_a if s_resp[k] else 0.25 * fall_a) if not null else 0.5)
            )
            val = 10 ** (base - f + patient_cyto[p_index[k], a] + rng.normal(0, 0.2))
            unit = "pg/mL"
            if val < lloq:
                text = "<3.2" if plate == "PL1" else "OOR <"
            elif val > uloq:
                text = ">10000" if plate == "PL1" else "OOR >"
            elif plate == "PL2" and name == "IL18":
                text, unit = f"{val / 1000:.4f}", "ng/mL"
            else:
                text = f"{val:.2f}"
            if rng.random() < 0.01:
                text = ""
            lo, hi = (lloq, uloq) if unit == "pg/mL" else (lloq / 1000, uloq / 1000)
            cyto.append(
                {
                    "sample_id": row.sample_id,
                    "analyte": lab[name],
                    "value": text,
                    "unit": unit,
                    "lloq": f"{lo:g}",
                    "uloq": f"{hi:g}",
                    "plate": plate,
                }
            )
    cytokines = pd.DataFrame(cyto)
    # --- PK and safety -----------------------------------------------------------------------
    pk, events = [], []
    for p in patients.itertuples(index=False):
        drawn = samples.loc[samples["patient_id"] == p.patient_id]
        for s in drawn.itertuples(index=False):
            conc = "<0.5" if s.visit == "D0" else f"{10 ** rng.normal(1.6, 0.3):.2f}"
            pk.append(
                {
                    "patient_id": p.patient_id,
                    "day": s.day,
                    "visit": s.visit,
                    "matrix": "plasma",
                    "concentration": conc,
                    "unit": "ng/mL",
                    "lloq": 0.5,
                }
            )
            if s.visit in ("D7", "D28"):
                c = 10 ** rng.normal(0.3, 0.35)
                pk.append(
                    {
                        "patient_id": p.patient_id,
                        "day": s.day,
                        "visit": s.visit,
                        "matrix": "csf",
                        "concentration": "<0.5" if c < 0.5 else f"{c:.2f}",
                        "unit": "ng/mL",
                        "lloq": 0.5,
                    }
                )
        if pd.notna(p.conditioning_day):
            d = int(p.conditioning_day) - 8
            if d > 0:
                pk.append(
                    {
                        "patient_id": p.patient_id,
                        "day": d,
                        "visit": "PRECOND8",
                        "matrix": "plasma",
                        "concentration": f"{10 ** rng.normal(1.6, 0.3):.2f}",
                        "unit": "ng/mL",
                        "lloq": 0.5,
                    }
                )
        end = int(p.death_day) if pd.notna(p.death_day) else int(p.last_followup_day)
        for _ in range(int(rng.poisson(2.0))):
            events.append(
                {
                    "patient_id": p.patient_id,
                    "day": int(rng.integers(1, max(end, 2))),
                    "category": "adverse_event",
                    "term": AE_TERMS[int(rng.integers(0, len(AE_TERMS)))],
                    "grade": int(rng.choice([1, 2, 3, 4], p=[0.35, 0.35, 0.2, 0.1])),
                    "status": "new",
                }
            )
        if rng.random() < 0.4:
            events.append(
                {
                    "patient_id": p.patient_id,
                    "day": int(rng.integers(1, max(end, 2))),
                    "category": "viral_infection",
                    "term": VIRAL_TERMS[int(rng.integers(0, len(VIRAL_TERMS)))],
                    "grade": int(rng.choice([1, 2, 3])),
                    "status": "new" if rng.random() < 0.7 else "worsening",
                }
            )
    pk = pd.DataFrame(pk)
    events = pd.DataFrame(events).sort_values(["patient_id", "day", "term"], kind="stable")
    truth = pd.DataFrame({"patient_id": pids, "responder_truth": responder})
    return {
        "samples": samples,
        "patients": patients,
        "responses": responses,
        "cytokines": cytokines,
        "pk": pk,
        "events": events,
        "var": var,
        "counts": counts,
        "truth": truth,
        "ifn_genes": ifn_genes,
        "seed": seed,
    }


def _tsv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(sep="\t", index=False, lineterminator="\n").encode()


def _write_gz(data: bytes, path: Path) -> None:
    # mtime=0 and no file name: byte-identical archives for the same content
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    path.write_bytes(buf.getvalue())


def counts_frame(cohort: dict) -> pd.DataFrame:
    """The genes x samples matrix with gene_id and gene_name columns."""
    mat = pd.DataFrame(cohort["counts"].T, columns=cohort["samples"]["sample_id"])
    return pd.concat([cohort["var"].reset_index(drop=True), mat], axis=1)


def write_cohort(
    cohort: dict,
    outdir,
    fmt: str = "tsv",
    cells_per_sample: int = 200,
    cell_types=SC_CELL_TYPES,
    low_quality_fraction: float = 0.0,
    high_mt_fraction: float = 0.0,
    composition_change=None,
) -> dict[str, Path]:
    """Write a cohort folder with the data contract's file names; returns the paths.

    Single-cell (``h5ad-sc``): each sample's counts are split over ``cells_per_sample`` cells
    whose cell types are drawn with ``SC_BASE_PROPORTIONS`` (equal weights unless every name
    is one of those),
    changed in responders over time by ``composition_change`` ({cell type: log weight change
    at the plateau}, default ``SC_COMPOSITION_CHANGE``: CD8 T cells falling; ``{}`` for none).
    ``low_quality_fraction`` / ``high_mt_fraction`` > 0 plant extra cells with few genes and
    counts, or with a high mitochondrial fraction (``MT_GENES`` and ``RIBO_GENES`` are then
    appended to the genes and every cell gets some of their counts); obs["sim_quality"] says
    which cell is
    ``ok``, ``low_quality`` or ``high_mt``. Without planted cells the cells sum back exactly to
    the bulk counts; with them, the ``ok`` cells do on the bulk genes.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ("samples", "patients", "responses", "cytokines", "pk", "events"):
        paths[name] = out / f"{name}.tsv"
        paths[name].write_bytes(_tsv_bytes(cohort[name]))
    if fmt == "tsv":
        paths["counts"] = out / "counts.tsv.gz"
        _write_gz(_tsv_bytes(counts_frame(cohort)), paths["counts"])
    elif fmt == "featurecounts":
        fc = counts_frame(cohort).drop(columns="gene_name").rename(columns={"gene_id": "Geneid"})
        n = len(fc)
        annot = pd.DataFrame(
            {
                "Chr": ["chr1"] * n,
                "Start": np.arange(n) * 1000 + 1,
                "End": np.arange(n) * 1000 + 900,
                "Strand": ["+"] * n,
                "Length": [900] * n,
            }
        )
        fc = pd.concat([fc[["Geneid"]], annot, fc.drop(columns="Geneid")], axis=1)
        fc.columns = [*fc.columns[:6], *[f"/data/bam/{c}.bam" for c in fc.columns[6:]]]
        paths["counts"] = out / "counts.featurecounts.tsv"
        body = "# Program:featureCounts v2.0.3; simulated\n" + fc.to_csv(
            sep="\t", index=False, lineterminator="\n"
        )
        paths["counts"].write_text(body)
    elif fmt in ("h5ad", "h5ad-sc"):
        paths["counts"] = out / "counts.h5ad"
        _write_h5ad_counts(
            cohort,
            paths["counts"],
            single_cell=fmt == "h5ad-sc",
            cells_per_sample=cells_per_sample,
            cell_types=cell_types,
            low_quality_fraction=low_quality_fraction,
            high_mt_fraction=high_mt_fraction,
            composition_change=composition_change,
        )
    else:
        raise ValueError(f"unknown format {fmt}")
    return paths


def split_counts_to_cells(counts_row: np.ndarray, n_cells: int, rng) -> np.ndarray:
    """Split one sample's counts over cells (multinomial per gene), summing back exactly."""
    weights = rng.dirichlet(np.ones(n_cells) * 5.0)
    cells = np.zeros((n_cells, counts_row.size), dtype=np.int64)
    nz = np.flatnonzero(counts_row)
    for g in nz:
        cells[:, g] = rng.multinomial(counts_row[g], weights)
    return cells


def cell_type_weights(cell_types, day, responder, composition_change=None) -> np.ndarray:
    """Cell-type probabilities of one sample (planted change in responders, plateau by D21)."""
    change = SC_COMPOSITION_CHANGE if composition_change is None else composition_change
    # the default types take their baseline proportions, any other set of names equal ones
    if all(c in SC_BASE_PROPORTIONS for c in cell_types):
        base = np.array([SC_BASE_PROPORTIONS[c] for c in cell_types])
    else:
        base = np.ones(len(cell_types))
    shift = np.array([change.get(c, 0.0) for c in cell_types]) if responder else 0.0
    w = base * np.exp(shift * min(day / 21.0, 1.0))
    return w / w.sum()


def _mt_ribo_counts(total, mt_frac, rng):
    """Mitochondrial then ribosomal counts of a cell with ``total`` other counts: mt_frac of
    those is mitochondrial, 10-30% ribosomal."""
    n_mt, n_ribo = len(MT_GENES), len(RIBO_GENES)
    mito = rng.multinomial(int(total * mt_frac / (1 - mt_frac)), np.ones(n_mt) / n_mt)
    ribo = rng.multinomial(int(total * rng.uniform(0.1, 0.3)), np.ones(n_ribo) / n_ribo)
    return np.concatenate([mito, ribo])


def _planted_cells(n, counts_row, typical_total, kind, rng):
    """Low-quality cells (few genes, few counts) or high-mitochondrial cells of one sample."""
    n_genes = counts_row.size
    n_extra = len(MT_GENES) + len(RIBO_GENES)
    cells = np.zeros((n, n_genes + n_extra), dtype=np.int64)
    expressed = np.flatnonzero(counts_row)
    for i in range(n):
        if kind == "low_quality":
            k = int(rng.integers(5, 31))
            genes = rng.choice(expressed, size=min(k, expressed.size), replace=False)
            cells[i, genes] = rng.integers(1, 3, genes.size)
            extra = rng.integers(0, 4)
            cells[i, n_genes + rng.integers(0, n_extra, extra)] += 1
        else:
            total = int(typical_total * rng.uniform(0.6, 1.4))
            cells[i, :n_genes] = rng.multinomial(total, counts_row / counts_row.sum())
            cells[i, n_genes:] = _mt_ribo_counts(total, rng.uniform(0.35, 0.7), rng)
    return cells


def _write_h5ad_counts(
    cohort,
    path,
    single_cell,
    cells_per_sample,
    cell_types,
    low_quality_fraction=0.0,
    high_mt_fraction=0.0,
    composition_change=None,
):
    import anndata as ad
    import scipy.sparse as sp

    var = cohort["var"].set_index("gene_id", drop=False)
    var.index.name = None
    if not single_cell:
        obs = pd.DataFrame(index=cohort["samples"]["sample_id"].to_numpy())
        adata = ad.AnnData(X=sp.csr_matrix(cohort["counts"]), obs=obs, var=var)
        adata.layers["counts"] = adata.X.copy()
    else:
        rng = np.random.default_rng(cohort["seed"] + 1)
        plant = low_quality_fraction > 0 or high_mt_fraction > 0
        if plant:
            names = MT_GENES + RIBO_GENES
            mt = pd.DataFrame(
                {
                    "gene_id": [f"SIMMT{i + 1:02d}" for i in range(len(MT_GENES))]
                    + [f"SIMRB{i + 1:02d}" for i in range(len(RIBO_GENES))],
                    "gene_name": names,
                }
            )
            var = pd.concat([var, mt.set_index("gene_id", drop=False)])
            var.index.name = None
        resp = dict(
            zip(cohort["truth"]["patient_id"], cohort["truth"]["responder_truth"], strict=True)
        )
        types = list(cell_types)
        blocks, sid, ctype, quality = [], [], [], []
        for k, row in enumerate(cohort["samples"].itertuples(index=False)):
            cells = split_counts_to_cells(cohort["counts"][k], cells_per_sample, rng)
            p = cell_type_weights(
                types, VISIT_DAY[row.visit], resp[row.patient_id], composition_change
            )
            labels = list(rng.choice(types, cells_per_sample, p=p))
            kinds = ["ok"] * cells_per_sample
            if plant:
                totals = cells.sum(axis=1)
                mito = np.stack([_mt_ribo_counts(t, rng.uniform(0.01, 0.06), rng) for t in totals])
                cells = np.hstack([cells, mito])
                extra = []
                for kind, fraction in (
                    ("low_quality", low_quality_fraction),
                    ("high_mt", high_mt_fraction),
                ):
                    n = int(rng.binomial(cells_per_sample, fraction))
                    if n:
                        extra.append(
                            _planted_cells(n, cohort["counts"][k], np.median(totals), kind, rng)
                        )
                        labels += list(rng.choice(types, n, p=p))
                        kinds += [kind] * n
                cells = np.vstack([cells, *extra])
            blocks.append(sp.csr_matrix(cells))
            sid += [row.sample_id] * len(cells)
            ctype += labels
            quality += kinds
        obs = pd.DataFrame({"sample_id": pd.Categorical(sid), "cell_type": pd.Categorical(ctype)})
        if plant:
            obs["sim_quality"] = pd.Categorical(quality)
        obs.index = [f"cell{i}" for i in range(len(obs))]
        adata = ad.AnnData(X=sp.vstack(blocks).tocsr(), obs=obs, var=var)
    adata.write_h5ad(path)


def main(argv=None) -> None:
    """Command line: write a simulated cohort folder."""
    ap = argparse.ArgumentParser(prog="python -m rhlh_dev.simulate", description=__doc__)
    ap.add_argument("--out", required=True, help="output cohort folder")
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--genes", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--format", default="tsv", choices=["tsv", "featurecounts", "h5ad", "h5ad-sc"])
    ap.add_argument("--cells-per-sample", type=int, default=200)
    ap.add_argument(
        "--low-quality-fraction",
        type=float,
        default=0.03,
        help="h5ad-sc: extra low-quality cells (few genes), as a fraction of cells per sample",
    )
    ap.add_argument(
        "--high-mt-fraction",
        type=float,
        default=0.03,
        help="h5ad-sc: extra cells with a high mitochondrial fraction",
    )
    ap.add_argument("--null", action="store_true", help="no response-specific effects")
    ap.add_argument("--batches", type=int, default=2, choices=[1, 2])
    ap.add_argument("--truth", action="store_true", help="also write truth.tsv")
    a = ap.parse_args(argv)
    cohort = simulate_cohort(a.patients, a.genes, a.seed, null=a.null, n_batches=a.batches)
    paths = write_cohort(
        cohort,
        a.out,
        a.format,
        cells_per_sample=a.cells_per_sample,
        low_quality_fraction=a.low_quality_fraction,
        high_mt_fraction=a.high_mt_fraction,
        composition_change={} if a.null else None,
    )
    if a.truth:
        truth = cohort["truth"].copy()
        (Path(a.out) / "truth.tsv").write_bytes(_tsv_bytes(truth))
    print(
        f"wrote {len(cohort['samples'])} samples x {a.genes} genes to {a.out}: "
        + ", ".join(p.name for p in paths.values())
    )


if __name__ == "__main__":
    main()
