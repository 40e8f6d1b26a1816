"""Per-rule package versions (rhlh.versions): what a script imported, in its own environment,
collected into the methods page."""

from __future__ import annotations

import importlib.metadata as md
import platform

import pandas as pd

from rhlh.report import methods_html
from rhlh.tables import VERSION_COLUMNS, read_versions
from rhlh.versions import collect_versions, imported_versions, versions_table, write_versions


def test_imported_versions_lists_what_is_imported_only():
    got = imported_versions(["pandas", "pandas.core.frame", "numpy", "json", "os.path", "rhlh"])
    assert got == {
        "python": platform.python_version(),
        "numpy": md.version("numpy"),
        "pandas": md.version("pandas"),
    }


def test_imported_versions_skips_modules_without_metadata():
    # a module importable from a path but not installed (snakemake's own, under --sdm conda)
    assert imported_versions(["no_such_module_xyz", "_private"]) == {
        "python": platform.python_version()
    }


def test_imported_versions_of_this_process_includes_pandas():
    assert imported_versions()["pandas"] == pd.__version__


def test_write_and_read_versions(tmp_path):
    path = tmp_path / "de_fit.tsv"
    write_versions(path, "de_fit", ["scipy", "numpy"])
    df = read_versions(path)
    assert list(df.columns) == VERSION_COLUMNS
    assert set(df["package"]) == {"python", "numpy", "scipy"}
    assert (df["rule"] == "de_fit").all()
    assert df.set_index("package").loc["scipy", "version"] == md.version("scipy")


def test_read_versions_keeps_versions_as_text(tmp_path):
    path = tmp_path / "v.tsv"
    path.write_text("rule\tpackage\tversion\nr\tx\t1.10\nr\ty\t2.0\n")
    assert read_versions(path)["version"].tolist() == ["1.10", "2.0"]


def test_collect_versions_one_row_per_package_version_with_its_rules():
    a = versions_table("de_fit", {"python": "3.11.7", "numpy": "2.4.6", "pydeseq2": "0.5.4"})
    b = versions_table("cytokines_models", {"python": "3.11.7", "numpy": "1.26.4"})
    c = versions_table("de_fit_cell_type", {"python": "3.11.7", "numpy": "2.4.6"})
    out = collect_versions([a, b, c])
    assert list(out.columns) == ["package", "version", "rules", "primary"]
    assert out.drop(columns="primary").to_dict("records") == [
        {"package": "python", "version": "3.11.7",
         "rules": "cytokines_models, de_fit, de_fit_cell_type"},
        {"package": "pydeseq2", "version": "0.5.4", "rules": "de_fit"},
        {"package": "numpy", "version": "1.26.4", "rules": "cytokines_models"},
        {"package": "numpy", "version": "2.4.6", "rules": "de_fit, de_fit_cell_type"},
    ]  # fmt: skip
    assert out["primary"].all()


def test_collect_versions_lists_dependencies_after_the_analysis_packages():
    a = versions_table("r", {"python": "3.11.7", "pytz": "2026.1", "numpy": "2.4.6"})
    out = collect_versions([a])
    assert out["package"].tolist() == ["python", "numpy", "pytz"]
    assert out["primary"].tolist() == [True, True, False]


def test_methods_page_shows_each_environments_versions():
    a = versions_table("de_fit", {"python": "3.11.7", "numpy": "2.4.6"})
    b = versions_table("cytokines_models", {"python": "3.11.7", "numpy": "1.26.4"})
    page = methods_html({"seed": 1}, collect_versions([a, b]))
    assert "<tr><td>numpy</td><td>1.26.4</td><td>cytokines_models</td></tr>" in page
    assert "<tr><td>numpy</td><td>2.4.6</td><td>de_fit</td></tr>" in page
    # nothing listed that no rule imported
    assert "statsmodels" not in page.split("Software versions")[1]


def test_methods_page_puts_dependencies_in_their_own_table():
    a = versions_table("de_fit", {"python": "3.11.7", "numpy": "2.4.6", "pytz": "2026.1"})
    page = methods_html({}, collect_versions([a])).split("Software versions")[1]
    analysis, deps = page.split("Their dependencies")
    assert "numpy" in analysis and "pytz" not in analysis
    assert "<tr><td>pytz</td><td>2026.1</td><td>de_fit</td></tr>" in deps
