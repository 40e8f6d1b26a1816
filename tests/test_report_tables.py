"""rhlh.report.html_table: key tables as HTML pages for the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
