"""rhlh.report.html_table: key tables as HTML pages for the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rhlh.report import html_table


def test_html_table_escapes_formats_and_truncates():
    df = pd.DataFrame(
        {"feature": ["IL6 <b>", "CXCL9", "IFNG"], "auc": [0.912345, np.nan, 0.5], "n": [20, 19, 3]}
    )
    page = html_table(df, "Top & more", "note", max_rows=2)
    assert "<title>Top &amp; more</title>" in page
    assert "<td>IL6 &lt;b&gt;</td><td>0.912</td><td>20</td>" in page
    assert "<td>CXCL9</td><td></td><td>19</td>" in page  # missing value: empty cell
    assert "IFNG" not in page
    assert "1 more rows in the TSV." in page
    assert page.count("<tr>") == 3  # header + 2 rows
    full = html_table(df, "All")
    assert "IFNG" in full and "more rows" not in full


def test_patients_page_embeds_figures_and_flow_table(tmp_path):
    import base64
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rhlh.report import PATIENTS_TITLE, patients_html

    pngs = []
    for k in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [k, 1 - k])
        path = tmp_path / f"f{k}.png"
        fig.savefig(path)
        plt.close(fig)
        pngs.append(path.read_bytes())
    flow = pd.DataFrame(
        {
            "order": [1, 2],
            "step": ["enrolled", "assessed"],
            "visit": ["", "D7"],
            "n": [20, 18],
            "note": ["patients <who> received ruxolitinib", "18 of 20"],
        }
    )
    page = patients_html(
        flow,
        [("Patient flow", pngs[0], "Flow\n caption"), ("Swimmer plot", pngs[1], "Bars & dots")],
    )
    assert page.startswith("<div") and "<html" not in page  # a fragment, for the landing text
    assert f"<h2>{PATIENTS_TITLE}</h2>" in page
    assert "<td>enrolled</td><td></td><td>20</td><td>patients &lt;who&gt; received" in page
    assert "<td>assessed</td><td>D7</td><td>18</td>" in page
    # the figures travel inside the page, byte for byte, in the order given, with captions
    data = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert [base64.b64decode(d) for d in data] == pngs
    assert "<b>Patient flow.</b> Flow caption" in page and "Bars &amp; dots" in page
    assert page.index("Patient flow.") < page.index("Swimmer plot.")
    with pytest.raises(ValueError):
        patients_html(flow, [("x", b"GIF89a", "")])


def test_methods_page_names_resamples_and_exact_rule():
    import yaml

    from rhlh.report import methods_html
    from rhlh.versions import collect_versions

    from .conftest import REPO

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["cytokines"]["n_boot"] = 1234
    cfg["response"]["exact_max_arrangements"] = 5678
    page = methods_html(cfg, collect_versions([]))
    assert "<h2>Resampling</h2>" in page
    assert "cytokines 1234" in page and "mixed models of signatures 2000" in page
    assert "at most 5678 arrangements" in page
