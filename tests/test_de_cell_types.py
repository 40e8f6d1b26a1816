"""Per-cell-type DE summary: genes with padj < alpha per cell type and contrast (table and
heatmap), untested cell types kept as "not tested"."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.de_data import significant_counts, unestimable_table
from rhlh.tables import DE_CELL_TYPE_COUNT_COLUMNS


def _table(padj):
    padj = np.asarray(padj, dtype=float)
    return pd.DataFrame(
        {
            "gene_id": [f"G{i}" for i in range(len(padj))],
            "pvalue": padj / 2,
            "padj": padj,
        }
    )


def test_significant_counts_per_cell_type_and_contrast():
    untested = unestimable_table(["G0", "G1", "G2"], None, True, {}, reason="too sparse")
    tables = {
        ("T", "D14_vs_D0"): _table([0.01, 0.04, 0.05, 0.5, np.nan]),
        ("T", "lrt_time"): _table([0.001, 0.2, 0.3]),
        ("NK", "D14_vs_D0"): _table([0.5, 0.6, np.nan]),
        ("Rare", "D14_vs_D0"): untested,
    }
    out = significant_counts(tables, alpha=0.05)
    assert list(out.columns) == DE_CELL_TYPE_COUNT_COLUMNS
    assert out[["cell_type", "contrast"]].values.tolist() == [list(k) for k in tables]
    # padj < 0.05 strictly; NaN padj (filtered genes) not counted, not tested
    assert out["n_significant"].tolist()[:3] == [2, 1, 0]
    assert out["n_tested"].tolist() == [4, 3, 2, 0]
    assert out["n_genes"].tolist() == [5, 3, 3, 3]
    assert out["tested"].tolist() == [True, True, True, False]
    assert np.isnan(out["n_significant"].iloc[3])


def test_cell_type_counts_figure(tmp_path):
    from rhlh.figures import de as fd
    from rhlh.io import save_figure

    tables = {
        ("T", "D14_vs_D0"): _table([0.01, 0.5]),
        ("T", "lrt_time"): _table([0.01, 0.02]),
        ("NK", "D14_vs_D0"): _table([0.5, 0.6]),
        ("NK", "lrt_time"): unestimable_table(["G0", "G1"], None, True, {}, reason="x"),
    }
    counts = significant_counts(tables, 0.05)
    fig = fd.plot_cell_type_counts(counts, 0.05)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["T", "NK"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["D14_vs_D0", "lrt_time"]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["1", "2", "0", "not tested"])
    save_figure(fig, tmp_path / "ct.png")
    assert (tmp_path / "ct.png").stat().st_size > 1000 and (tmp_path / "ct.pdf").exists()
    empty = fd.plot_cell_type_counts(counts.iloc[:0], 0.05)
    save_figure(empty, tmp_path / "empty.png")
