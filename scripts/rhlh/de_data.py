"""What the DE stage takes from its inputs and gives back when a contrast cannot be estimated:
the genes x samples count frame, the sample sheet with responder flags, the visits and
contrasts to test, and tables without statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.de import mark_signature_genes
from rhlh.design import Contrast
from rhlh.tables import (
    DE_CELL_TYPE_COUNT_COLUMNS,
    DE_SKIPPED_COLUMNS,
    empty_de_table,
    empty_lrt_table,
)


def counts_from_adata(adata, cell_type=None):
    """(counts genes x samples, gene names or None, sample sheet) of a validated counts AnnData;
    with ``cell_type``, the pseudobulk profiles of that cell type, named by their sample."""
    if cell_type is not None:
        adata = adata[adata.obs["cell_type"].astype(str) == cell_type].copy()
        adata.obs_names = adata.obs["sample_id"].astype(str).to_numpy()
    raw = adata.layers["counts"] if "counts" in adata.layers else adata.X
    raw = raw.toarray() if hasattr(raw, "toarray") else np.asarray(raw)
    gene_ids = adata.var["gene_id"].astype(str) if "gene_id" in adata.var else adata.var_names
    counts = pd.DataFrame(
        raw.T, index=pd.Index(gene_ids, name="gene_id"), columns=adata.obs_names.astype(str)
    )
    names = (
        pd.Series(adata.var["gene_name"].astype(str).to_numpy(), index=counts.index)
        if "gene_name" in adata.var
        else None
    )
    samples = adata.obs.copy()
    samples["sample_id"] = adata.obs_names.astype(str)
    for col in ("patient_id", "visit", "batch"):
        samples[col] = samples[col].astype(str)
    return counts, names, samples


def with_responders(samples: pd.DataFrame, responders: pd.DataFrame) -> pd.DataFrame:
    """The sample sheet with a ``responder`` column (True / False / None) from the responders
    table (rhlh.tables.read_responders)."""
    flag = responders.set_index("patient_id")["responder"]
    out = samples.copy()
    out["responder"] = out["patient_id"].astype(str).map(flag).astype(object)
    return out


def contrast_ids(spec, visits, baseline) -> list[str]:
    """The Wald tables a design asks for: its named contrasts, or each visit vs baseline."""
    wanted = []
    for c in spec.contrasts:
        if isinstance(c, Contrast):
            wanted.append(c.id)
        else:
            wanted += [f"{v}_vs_{baseline}" for v in visits if v != baseline]
    return wanted


def unestimable_table(gene_ids, gene_names, shrink, gene_sets, reason=None) -> pd.DataFrame:
    """The table of a contrast the data cannot estimate: every gene, no statistics (with a
    ``reason`` column when a reason is given)."""
    names = None if gene_names is None else gene_names.reindex(gene_ids).to_numpy()
    table = empty_de_table(gene_ids, names, shrink=shrink, reason=reason)
    return _reason_last(mark_signature_genes(table, gene_sets))


def untested_lrt_table(gene_ids, gene_names, gene_sets, reason) -> pd.DataFrame:
    """The LRT table of a design the data cannot estimate: every gene, no statistics, reason."""
    names = None if gene_names is None else gene_names.reindex(gene_ids).to_numpy()
    table = empty_lrt_table(gene_ids, names, reason=reason)
    return _reason_last(mark_signature_genes(table, gene_sets))


def _reason_last(table: pd.DataFrame) -> pd.DataFrame:
    if "reason" not in table:
        return table
    return table[[c for c in table.columns if c != "reason"] + ["reason"]]


def cell_type_untestable(counts: pd.DataFrame, samples: pd.DataFrame) -> str | None:
    """Why a cell type's pseudobulk cannot enter any design before a fit is tried (no profile
    left after cell QC and min_cells_per_profile, or no gene with enough reads), else None.
    What a design needs beyond that (patients at baseline, residual degrees of freedom) is
    checked by rhlh.de.run_design, whose InputError names it."""
    if counts.shape[1] == 0 or len(samples) == 0:
        return "no pseudobulk profile left after cell QC (min_cells_per_profile)"
    if counts.shape[0] == 0:
        return "no gene reaches min_total_count reads"
    return None


def response_groups_missing(spec, samples: pd.DataFrame) -> str | None:
    """Why a design with a ``responder`` term cannot be estimated on this cohort (a valid but
    small cohort with no non-responder, or no responder, among the patients with a known
    response), else None. ``samples``: the sheet with responder flags (with_responders)."""
    import re

    if not re.search(r"\bresponder\b", spec.formula):
        return None
    known = samples[samples["responder"].notna()] if "responder" in samples else samples[:0]
    groups = set(known["responder"].astype(bool))
    if len(groups) >= 2:
        return None
    n = int(known["patient_id"].nunique())
    if not groups:
        missing = "patient with a known response (clinical/responders.tsv)"
    else:
        missing = "non-responder" if True in groups else "responder"
    return (
        f"no {missing} among the {n} patient(s) with a known response: the responder "
        f"terms of {spec.formula} need both response groups"
    )


def skipped_row(cell_type, design_id, samples: pd.DataFrame, reason) -> dict:
    """One row of de/skipped.tsv or de/cell_types_skipped.tsv (DE_SKIPPED_COLUMNS); cell_type
    is empty for the designs on all samples (bulk)."""
    n_patients = int(samples["patient_id"].nunique()) if len(samples) else 0
    cell = "" if cell_type is None else str(cell_type)
    values = [cell, str(design_id), int(len(samples)), n_patients, str(reason)]
    return dict(zip(DE_SKIPPED_COLUMNS, values, strict=True))


def significant_counts(tables: dict, alpha: float) -> pd.DataFrame:
    """Genes with padj < alpha per cell type and contrast, from ``{(cell_type, contrast): DE
    table}`` (Wald or LRT tables of :func:`rhlh.tables.read_de_table`): cell_type, contrast,
    n_genes, n_tested (padj computed), n_significant, tested (False: a table written without
    statistics, see :func:`unestimable_table`; n_significant is then NaN). Rows in the
    order of ``tables``."""
    rows = []
    for (cell_type, contrast), tab in tables.items():
        padj = pd.to_numeric(tab["padj"], errors="coerce")
        tested = bool(pd.to_numeric(tab["pvalue"], errors="coerce").notna().any())
        rows.append(
            {
                "cell_type": cell_type,
                "contrast": contrast,
                "n_genes": len(tab),
                "n_tested": int(padj.notna().sum()),
                "n_significant": int((padj < alpha).sum()) if tested else np.nan,
                "tested": tested,
            }
        )
    return pd.DataFrame(rows, columns=DE_CELL_TYPE_COUNT_COLUMNS)
