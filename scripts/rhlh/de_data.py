"""What the DE stage takes from its inputs and gives back when a contrast cannot be estimated:
the genes x samples count frame, the sample sheet with responder flags, the visits and
contrasts to test, and tables without statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.de import mark_signature_genes
from rhlh.design import Contrast
from rhlh.tables import empty_de_table


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


def unestimable_table(gene_ids, gene_names, shrink, gene_sets) -> pd.DataFrame:
    """The table of a contrast the data cannot estimate: every gene, no statistics."""
    names = None if gene_names is None else gene_names.reindex(gene_ids).to_numpy()
    return mark_signature_genes(empty_de_table(gene_ids, names, shrink=shrink), gene_sets)
