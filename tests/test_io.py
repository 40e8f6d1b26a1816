"""Atomic, deterministic writers leave no temporary files behind."""

import matplotlib.pyplot as plt
import pandas as pd

from rhlh.io import save_figure, write_tsv


def test_save_figure_leaves_only_outputs(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    save_figure(fig, tmp_path / "fig.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.pdf", "fig.png"]
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def test_write_tsv_is_deterministic(tmp_path):
    df = pd.DataFrame({"a": [1.0 / 3, 2.0], "b": ["x", "y"]})
    write_tsv(df, tmp_path / "a.tsv")
    write_tsv(df, tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
    assert (tmp_path / "a.tsv").read_text().splitlines()[1] == "0.3333333333\tx"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "b.tsv"]
