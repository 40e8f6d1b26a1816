"""One reader per table that a stage writes and another reads, with its columns.

Every rule script and library function that reads a workflow output (``results/...``) goes
through these readers; nobody else calls ``pd.read_csv`` on them. Identifier and other text
columns stay text exactly as written (``NA``, ``NULL``, ``007``, ``1e5`` are kept); an empty
cell of a numeric column is NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# --- column lists ---------------------------------------------------------------------------

ID_COLUMNS = ("sample_id", "patient_id")
RESPONDER_COLUMNS = ["patient_id", "responder", "response_class", "reason"]
# a Wald table of de/<design>/<contrast>.tsv (shrunken columns only when shrinkage is on)
DE_STAT_COLUMNS = ["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]
DE_SHRUNK_COLUMNS = ["log2FoldChange_shrunk", "lfcSE_shrunk"]
DE_WALD_COLUMNS = [
    "gene_id",
    "gene_name",
    *DE_STAT_COLUMNS,
    *DE_SHRUNK_COLUMNS,
    "test",  # which test gave pvalue (de.mode); empty when nothing was tested
    "outlier_replaced",
    "signature_genes",
]
DE_NUMERIC_COLUMNS = [*DE_STAT_COLUMNS, "df", *DE_SHRUNK_COLUMNS]
# an LRT table of de/lrt_<test>.tsv
DE_LRT_COLUMNS = [
    "gene_id",
    "gene_name",
    "baseMean",
    "stat",
    "df",
    "pvalue",
    "padj",
    "test",
    "outlier_replaced",
    "signature_genes",
]
# de/cell_types_skipped.tsv: the designs a cell type's pseudobulk could not estimate
DE_SKIPPED_COLUMNS = ["cell_type", "design", "n_samples", "n_patients", "reason"]
# de/cell_types_significant.tsv: genes with padj < alpha per cell type and contrast
DE_CELL_TYPE_COUNT_COLUMNS = [
    "cell_type",
    "contrast",
    "n_genes",
    "n_tested",
    "n_significant",
    "tested",
]
SCORE_COLUMNS = ["sample_id", "patient_id", "visit", "day", "signature", "method", "score"]
# signatures/cell_types/scores.tsv: the same scores on each cell type's pseudobulk
CELL_TYPE_SCORE_COLUMNS = ["cell_type", *SCORE_COLUMNS]
# logs/versions/<rule>.tsv: the package versions one rule's script ran with (rhlh.versions)
VERSION_COLUMNS = ["rule", "package", "version"]

_TEXT = {
    "responders": RESPONDER_COLUMNS,
    "scores": ["sample_id", "patient_id", "visit"],
    "cell_type_scores": ["cell_type", "sample_id", "patient_id", "visit"],
    "cytokine_values": ["sample_id", "patient_id", "visit", "censor", "plate"],
    "cytokine_change": ["sample_id", "patient_id", "visit"],
    "de": ["gene_id", "gene_name", "signature_genes", "reason", "test"],
    "de_skipped": ["cell_type", "design", "reason"],
    "missing_genes": ["signature", "source", "reason", "missing_genes"],
    "mean_change": ["signature"],
    "associations": ["feature"],
    "feature_values": ["feature", "sample_id", "patient_id", "visit"],
    "models": ["patient_id"],
    "versions": VERSION_COLUMNS,
}


def _read(path, text=(), na_text=False) -> pd.DataFrame:
    """A TSV written by rhlh.io.write_tsv: ``text`` columns as str, every other column parsed
    by pandas with only the empty cell as missing. ``na_text``: empty text cells become NaN
    instead of ''."""
    header = Path(path).open(encoding="utf-8").readline().rstrip("\n").split("\t")
    text = [c for c in text if c in header]
    na = {c: [""] for c in header if na_text or c not in text}
    return pd.read_csv(
        path,
        sep="\t",
        dtype=dict.fromkeys(text, str),
        keep_default_na=False,
        na_values=na,
    )


# --- clinical -------------------------------------------------------------------------------

_FLAGS = {"True": True, "False": False, "": None, True: True, False: False}


def _flag_key(v):
    if isinstance(v, str):
        return v.strip()
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return ""
    return bool(v) if isinstance(v, bool | np.bool_) else v


def as_responders(df: pd.DataFrame, source="responders") -> pd.DataFrame:
    """The responders table in its one typed form: patient_id (text), responder (True / False /
    None when unknown), response_class (NR/PR/CR/NE, upper case), reason. Accepts the file's
    text (True/False/empty) or flags already typed, so library functions can take either."""
    out = pd.DataFrame({"patient_id": df["patient_id"].astype(str).to_numpy()})
    flags = df["responder"].map(_flag_key)
    bad = ~flags.map(lambda v: v in _FLAGS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{source}, row {row + 2}, column 'responder': expected True, False or empty "
            f"(found {df['responder'].iloc[row]!r})"
        )
    out["responder"] = flags.map(_FLAGS).astype(object).to_numpy()
    for col in ("response_class", "reason"):
        text = df[col].astype(str) if col in df else pd.Series("", index=df.index)
        out[col] = text.str.strip().to_numpy()
    out["response_class"] = out["response_class"].str.upper()
    return out


def response_label(flag) -> str:
    """Map a responder flag (True/False/None) to its group label."""
    if flag is True or flag == "True":
        return "responder"
    if flag is False or flag == "False":
        return "non-responder"
    return "unknown"


def read_responders(path) -> pd.DataFrame:
    """clinical/responders.tsv in the form of :func:`as_responders`."""
    return as_responders(_read(path, text=RESPONDER_COLUMNS), source=str(path))


def read_validated(path, numeric=()) -> pd.DataFrame:
    """A validated input copy (inputs/validated/<table>.tsv) as text, with ``numeric`` columns
    as float (NaN for empty) and the file row numbers (header = 1) as index."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    for col in numeric:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col].replace("", np.nan)).astype(float)
    df.index = pd.RangeIndex(2, 2 + len(df))
    return df


def read_samples(path) -> pd.DataFrame:
    """inputs/validated/samples.tsv: identifiers, visit and batch as text, day a number."""
    return _read(path, text=("sample_id", "patient_id", "visit", "batch"), na_text=True)


def read_patients(path) -> pd.DataFrame:
    """inputs/validated/patients.tsv: patient_id as text, the other columns typed by pandas."""
    return _read(path, text=("patient_id",), na_text=True)


# --- single cell ----------------------------------------------------------------------------


def read_sample_qc(path) -> pd.DataFrame:
    """singlecell/qc_samples.tsv: one row per sample (cells in / kept, medians, flag, status)."""
    df = _read(path, text=("sample_id", "status", "reason"))
    df["flagged"] = df["flagged"].map(_FLAGS).astype(bool)
    return df


def read_profile_qc(path) -> pd.DataFrame:
    """singlecell/qc_profiles.tsv: one row per sample x cell type (cells, status, reason)."""
    return _read(path, text=("sample_id", "cell_type", "status", "reason"))


def read_cell_qc(path) -> pd.DataFrame:
    """singlecell/qc_cells.tsv.gz: one row per cell (metrics, kept, reason)."""
    df = pd.read_csv(
        path,
        sep="\t",
        dtype={c: str for c in ("cell_id", "sample_id", "cell_type", "reason")},
        keep_default_na=False,
        na_values={
            c: [""] for c in ("n_genes", "total_counts", "pct_counts_mt", "pct_counts_ribo")
        },
    )
    df["kept"] = df["kept"].map(_FLAGS).astype(bool)
    return df


def read_composition(path) -> pd.DataFrame:
    """singlecell/composition/cell_counts.tsv: cells per sample x cell type, proportions."""
    df = _read(path, text=("sample_id", "patient_id", "visit", "cell_type", "responder"))
    df["responder"] = df["responder"].map(_FLAGS)
    return df


# --- signatures -----------------------------------------------------------------------------


def read_scores(path) -> pd.DataFrame:
    """signatures/scores.tsv (long): sample_id, patient_id, visit, day, signature, method, score."""
    return _read(path, text=_TEXT["scores"], na_text=True)


def read_cell_type_scores(path) -> pd.DataFrame:
    """signatures/cell_types/scores.tsv (long): cell_type, then the columns of read_scores."""
    return _read(path, text=_TEXT["cell_type_scores"], na_text=True)


def read_missing_genes(path) -> pd.DataFrame:
    """signatures/missing_genes.tsv: one row per gene set, text columns kept as written."""
    return _read(path, text=_TEXT["missing_genes"])


def read_mean_change(path) -> pd.DataFrame:
    """signatures/mean_change.tsv: mean change from baseline per signature, group and visit."""
    return _read(path, text=_TEXT["mean_change"], na_text=True)


# --- cytokines ------------------------------------------------------------------------------


def read_cytokine_readings(path) -> pd.DataFrame:
    """inputs/validated/cytokines.tsv (parsed readings): 'none' censoring and plate names stay
    text."""
    return _read(path, text=("sample_id", "analyte", "censor", "plate"), na_text=True)


def read_cytokine_values(path) -> pd.DataFrame:
    """cytokines/values.tsv: one row per sample x analyte, identifiers kept as text."""
    return _read(path, text=_TEXT["cytokine_values"], na_text=True)


def read_cytokine_change(path) -> pd.DataFrame:
    """cytokines/change_from_baseline.tsv."""
    return _read(path, text=_TEXT["cytokine_change"], na_text=True)


# --- differential expression ----------------------------------------------------------------


def read_de_table(path) -> pd.DataFrame:
    """A DE table (de/<design>/<contrast>.tsv or de/lrt_<test>.tsv): gene_id, gene_name and
    signature_genes as text ('' when empty), statistics as numbers (NaN when not computed)."""
    df = _read(path, text=_TEXT["de"])
    missing = [c for c in ("gene_id", "pvalue") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a DE table (no column {missing[0]!r})")
    for col in DE_NUMERIC_COLUMNS:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def empty_de_table(gene_ids, gene_names=None, shrink=True, reason=None) -> pd.DataFrame:
    """A Wald table without statistics (a contrast the data cannot estimate): every gene, NaN
    statistics, so that downstream rules still find their file. ``reason`` (why nothing was
    estimated) becomes a ``reason`` column when given."""
    out = pd.DataFrame({"gene_id": np.asarray(gene_ids)})
    out["gene_name"] = "" if gene_names is None else np.asarray(gene_names)
    for col in DE_STAT_COLUMNS + (DE_SHRUNK_COLUMNS if shrink else []):
        out[col] = np.nan
    out["test"] = ""
    out["outlier_replaced"] = False
    if reason is not None:
        out["reason"] = str(reason)
    return out


def empty_lrt_table(gene_ids, gene_names=None, reason=None) -> pd.DataFrame:
    """An LRT table without statistics (a design the data cannot estimate), the columns of
    DE_LRT_COLUMNS but signature_genes, with a ``reason`` column when given."""
    out = pd.DataFrame({"gene_id": np.asarray(gene_ids)})
    out["gene_name"] = "" if gene_names is None else np.asarray(gene_names)
    for col in ("baseMean", "stat", "df", "pvalue", "padj"):
        out[col] = np.nan
    out["test"] = ""
    out["outlier_replaced"] = False
    if reason is not None:
        out["reason"] = str(reason)
    return out


def read_de_skipped(path) -> pd.DataFrame:
    """de/cell_types_skipped.tsv: per cell type, the designs not estimated and why."""
    return _read(path, text=_TEXT["de_skipped"])


# --- response and report --------------------------------------------------------------------


def read_associations(path) -> pd.DataFrame:
    """response/associations.tsv."""
    return _read(path, text=_TEXT["associations"], na_text=True)


def read_feature_values(path) -> pd.DataFrame:
    """response/feature_values.tsv (long values behind the associations)."""
    return _read(path, text=_TEXT["feature_values"], na_text=True)


def read_model_table(path) -> pd.DataFrame:
    """signatures/ or cytokines/mixed_models.tsv."""
    return _read(path, text=_TEXT["models"], na_text=True)


def read_versions(path) -> pd.DataFrame:
    """logs/versions/<rule>.tsv (rule, package, version; all text, '1.10' stays '1.10')."""
    return _read(path, text=_TEXT["versions"])[VERSION_COLUMNS]


def read_result(path) -> pd.DataFrame:
    """Any other small result table (inputs/summary.tsv, clinical/endpoints.tsv,
    clinical/simon_decision.tsv): columns typed by pandas, only '' missing."""
    return _read(path, na_text=True)
