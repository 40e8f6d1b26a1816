"""Transcript quantifications (salmon ``quant.sf``, kallisto ``abundance.tsv``) to gene counts.

A delivery is a folder with one sub-folder per sample (named by its sample_id, as nf-core and
the tools themselves lay it out: ``<sample>/quant.sf`` or ``<sample>/abundance.tsv``) plus a
tx2gene table (``counts.tx2gene``: transcript id, gene id; a header row is optional).

Transcripts are summarised to genes as tximport's ``summarizeToGene`` does: counts and TPM
are summed, the gene length is the TPM-weighted mean of the transcripts' effective lengths
(a gene without abundance in a sample takes the geometric mean of its lengths in the other
samples, or, with none, the mean over samples and transcripts). Then, by
``counts.counts_from_abundance``:

- ``lengthScaledTPM`` (the default): TPM x the gene's mean length over samples, scaled to each
  sample's total estimated count. These counts need no offset: the length bias across samples
  is gone, so the DE engine's size factors are the right normalisation. This is the choice the
  workflow makes, because its DE engine takes one size factor per sample, not a gene x sample
  offset matrix.
- ``scaledTPM``: TPM scaled to each sample's total count (no length correction).
- ``no``: the estimated counts themselves; :func:`tximport_norm_factors` then gives the
  gene x sample normalisation factors that DESeq2's ``DESeqDataSetFromTximport`` derives from
  the average transcript lengths (tested against R; the DE stage uses size factors only, so
  the README recommends lengthScaledTPM for DE).

The estimates are rounded to integers for the count model (as DESeq2 does with tximport
input); the number of changed cells and the largest change are logged.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rhlh.errors import InputError
from rhlh.io import _delimiter, read_table, read_text

log = logging.getLogger("rhlh")

# file name -> (id, effective length, TPM, estimated count) columns
QUANT_FILES = {
    "quant.sf": ("Name", "EffectiveLength", "TPM", "NumReads"),
    "abundance.tsv": ("target_id", "eff_length", "tpm", "est_counts"),
}
COUNTS_FROM_ABUNDANCE = ("lengthScaledTPM", "scaledTPM", "no")


def quant_files(folder) -> dict[str, Path]:
    """{sample id: quantification file} of a delivery folder (one sub-folder per sample)."""
    folder = Path(folder)
    found = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [sub / n for n in QUANT_FILES if (sub / n).is_file()]
        if len(files) > 1:
            raise InputError(sub, "both quant.sf and abundance.tsv: keep one quantification")
        if files:
            found[sub.name] = files[0]
    if not found:
        raise InputError(
            folder,
            "no quantification: a counts folder holds one sub-folder per sample with its "
            "salmon quant.sf or kallisto abundance.tsv",
        )
    return found


def read_quant(path) -> pd.DataFrame:
    """One quantification file as a frame indexed by transcript: length, tpm, count."""
    path = Path(path)
    id_col, len_col, tpm_col, cnt_col = QUANT_FILES[path.name]
    df = read_table(path, required=[id_col, len_col, tpm_col, cnt_col])
    out = pd.DataFrame(index=pd.Index(df[id_col].astype(str).str.strip(), name="tx"))
    for name, col in (("length", len_col), ("tpm", tpm_col), ("count", cnt_col)):
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() | (values < 0) | ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                path,
                "not a non-negative number",
                row=int(df.index[i]),
                column=col,
                value=df[col].iloc[i],
            )
        out[name] = values.to_numpy(float)
    if out.index.duplicated().any():
        dup = out.index[out.index.duplicated()][0]
        raise InputError(path, "duplicated transcript id", column=id_col, value=dup)
    return out


def read_tx2gene(path) -> tuple[pd.Series, dict[str, str]]:
    """tx2gene as (transcript id -> gene id, {gene id: gene name}): columns transcript id,
    gene id and, as nf-core writes it, an optional gene name; a header row is optional."""
    path = Path(path)
    text = read_text(path)
    rows = [ln.split(_delimiter(path)) for ln in text.splitlines() if ln.strip()]
    if not rows or min(len(r) for r in rows) < 2:
        raise InputError(path, "tx2gene needs two columns: transcript id, gene id", row=1)
    first = [v.strip().lower() for v in rows[0][:2]]
    if first[0] in ("tx", "tx_id", "transcript_id", "txname", "transcript") or "gene" in first[1]:
        rows = rows[1:]
    tx = [r[0].strip() for r in rows]
    gene = [r[1].strip() for r in rows]
    s = pd.Series(gene, index=pd.Index(tx, name="tx"))
    names = {
        g: r[2].strip() for g, r in zip(gene, rows, strict=True) if len(r) > 2 and r[2].strip()
    }
    return s[~s.index.duplicated(keep="first")], names


def summarize_to_gene(
    quants: dict[str, pd.DataFrame], tx2gene: pd.Series, tx2gene_path="tx2gene"
) -> dict[str, pd.DataFrame]:
    """tximport's gene-level summary of per-sample transcript tables (genes x samples frames
    ``counts``, ``abundance``, ``length``; genes sorted by id)."""
    samples = list(quants)
    tx = quants[samples[0]].index
    for s in samples[1:]:
        if not quants[s].index.equals(tx):
            raise InputError(
                s, "transcripts differ from the first sample's: quantify all on one index"
            )
    known = tx.isin(tx2gene.index)
    if not known.any():
        raise InputError(
            tx2gene_path,
            f"no transcript of the quantifications is in tx2gene (file ids e.g. {tx[0]!r}, "
            f"tx2gene e.g. {tx2gene.index[0]!r}): use the annotation the index was built from",
        )
    if (~known).any():
        log.warning("%d transcripts missing from tx2gene are left out", int((~known).sum()))
    gene = tx2gene.reindex(tx[known]).to_numpy()

    def stack(field):
        return np.column_stack([quants[s][field].to_numpy()[known] for s in samples])

    abundance_tx, counts_tx, length_tx = stack("tpm"), stack("count"), stack("length")
    codes, genes = pd.factorize(gene, sort=True)

    def rowsum(m):
        out = np.zeros((len(genes), m.shape[1]))
        np.add.at(out, codes, m)
        return out

    abundance = rowsum(abundance_tx)
    counts = rowsum(counts_tx)
    with np.errstate(invalid="ignore", divide="ignore"):
        length = rowsum(abundance_tx * length_tx) / abundance
    ave_tx = length_tx.mean(axis=1)
    ave_gene = np.bincount(codes, weights=ave_tx) / np.bincount(codes)
    missing = np.isnan(length)
    for i in np.flatnonzero(missing.any(axis=1)):
        row = length[i]
        hole = np.isnan(row)
        row[hole] = ave_gene[i] if hole.all() else np.exp(np.mean(np.log(row[~hole])))
    frame = lambda m: pd.DataFrame(m, index=pd.Index(genes, name="gene_id"), columns=samples)  # noqa: E731
    return {"counts": frame(counts), "abundance": frame(abundance), "length": frame(length)}


def counts_from_abundance(summary: dict, method: str = "lengthScaledTPM") -> pd.DataFrame:
    """Gene counts of a summary by tximport's ``countsFromAbundance`` rule."""
    if method not in COUNTS_FROM_ABUNDANCE:
        raise ValueError(f"counts_from_abundance must be one of {COUNTS_FROM_ABUNDANCE}")
    counts = summary["counts"]
    if method == "no":
        return counts
    abundance = summary["abundance"]
    new = (
        abundance.mul(summary["length"].mean(axis=1), axis=0)
        if method == "lengthScaledTPM"
        else abundance
    )
    return new * (counts.sum(axis=0) / new.sum(axis=0))


def size_factors_for_matrix(counts: np.ndarray) -> np.ndarray:
    """DESeq2's median-of-ratios size factors (genes x samples, any non-negative numbers),
    over genes positive in every sample, scaled to geometric mean 1."""
    with np.errstate(divide="ignore"):
        logs = np.log(counts)
    log_geo = logs.mean(axis=1)
    use = np.isfinite(log_geo)
    sf = np.array(
        [
            np.exp(np.median(logs[keep, j] - log_geo[keep]))
            for j in range(counts.shape[1])
            for keep in [use & (counts[:, j] > 0)]
        ]
    )
    return sf / np.exp(np.mean(np.log(sf)))


def tximport_norm_factors(counts, length) -> np.ndarray:
    """Gene x sample normalisation factors from average transcript lengths, as DESeq2 derives
    them for tximport input (counts: the rounded estimated counts; both genes x samples)."""
    counts = np.asarray(counts, dtype=float)
    length = np.asarray(length, dtype=float)
    norm = length / np.exp(np.log(length).mean(axis=1, keepdims=True))
    sf = size_factors_for_matrix(counts / norm)
    nf = norm * sf
    return nf / np.exp(np.log(nf).mean(axis=1, keepdims=True))


def round_estimates(values: np.ndarray, source) -> np.ndarray:
    """Estimated counts rounded to integers, with what rounding changed logged."""
    rounded = np.rint(values)
    change = np.abs(rounded - values)
    n = int((change > 0).sum())
    log.info(
        "%s: rounded %d of %d estimated counts to integers (largest change %.3g)",
        source,
        n,
        values.size,
        float(change.max()) if change.size else 0.0,
    )
    return rounded.astype(np.int64)


def read_quant_folder(folder, tx2gene_path, method: str = "lengthScaledTPM"):
    """(var, samples, counts samples x genes int64, summary) of a per-sample quant delivery."""
    if not tx2gene_path:
        raise InputError(
            folder,
            "per-sample quantifications need a tx2gene table: set counts.tx2gene in the config "
            "(two columns: transcript id, gene id)",
        )
    files = quant_files(folder)
    quants = {s: read_quant(p) for s, p in files.items()}
    tx2gene, names = read_tx2gene(tx2gene_path)
    summary = summarize_to_gene(quants, tx2gene, tx2gene_path)
    genes = counts_from_abundance(summary, method)
    log.info(
        "%s: %d samples, %d genes from %s (counts_from_abundance=%s)",
        folder,
        len(files),
        len(genes),
        ", ".join(sorted({p.name for p in files.values()})),
        method,
    )
    counts = round_estimates(genes.to_numpy().T, folder)
    ids = genes.index.astype(str)
    var = pd.DataFrame(
        {"gene_id": ids, "gene_name": [names.get(g, g) for g in ids]}, index=pd.Index(ids)
    )
    return var, list(genes.columns), counts, summary
