"""Bad inputs: each copy of the example has one defect and must stop with one clear message.

Every case is checked through the library (fast); a selection also runs through the real
``snakemake`` command line, which must exit non-zero and leave nothing under results/ but logs.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml

from rhlh.contract.validate import validate_cohort
from rhlh.errors import InputError
from rhlh.workflow_support import check_genesets

from .conftest import REPO, files_under, run_workflow


def _edit(path: Path, old: str, new: str, count: int = 1):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, count))


def _edit_counts(cohort: Path, fn):
    p = cohort / "counts.tsv.gz"
    lines = gzip.decompress(p.read_bytes()).decode().splitlines()
    lines = fn(lines)
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def _set_count(value):
    def fn(lines):
        cells = lines[5].split("\t")
        cells[4] = value
        lines[5] = "\t".join(cells)
        return lines

    return lambda c: _edit_counts(c, fn)


def _drop_sample_row(c):
    lines = (c / "samples.tsv").read_text().splitlines()
    (c / "samples.tsv").write_text("\n".join(lines[:3] + lines[4:]) + "\n")


def _append(name, line):
    return lambda c: (c / name).write_text((c / name).read_text() + line + "\n")


def _write(name, text):
    return lambda c: (c / name).write_text(text)


def _h5ad_cells_without_sample_id(cohort: Path):
    """Swap the counts for a single-cell h5ad whose obs lacks the sample_id column."""
    import anndata as ad
    import numpy as np

    (cohort / "counts.tsv.gz").unlink()
    x = np.ones((4, 3), dtype=np.int64)
    adata = ad.AnnData(X=x)
    adata.obs_names = [f"cell{i}" for i in range(4)]
    adata.write_h5ad(cohort / "counts.h5ad")


def _counts_frame(cohort):
    import pandas as pd

    path = cohort / "counts.tsv.gz"
    df = pd.read_csv(path, sep="\t")
    path.unlink()
    return df


def _transpose_counts(cohort):
    df = _counts_frame(cohort).drop(columns="gene_name").set_index("gene_id")
    df.T.rename_axis("id").to_csv(cohort / "counts.tsv", sep="\t")


def _rename_counts(cohort, name):
    _counts_frame(cohort).to_csv(cohort / name, sep="\t", index=False)


def _quant_folder(cohort):
    (cohort / "counts.tsv.gz").unlink()
    sub = cohort / "quant" / "P001_D0"
    sub.mkdir(parents=True)
    (sub / "quant.sf").write_text("Name\tLength\tEffectiveLength\tTPM\tNumReads\nT1\t9\t9\t1\t1\n")


def _first_line_header(name):
    return (REPO / "example" / "cohort" / name).read_text().splitlines()[0]


# (id, mutation, file that must be named, substrings of the message)
CASES = [
    (
        "dup_sample",
        _append("samples.tsv", "P001_D0\tP001\tD63\t63\tB1"),
        "samples.tsv",
        ["duplicated identifier", "sample_id", "P001_D0"],
    ),
    (
        "count_sample_not_in_sheet",
        _drop_sample_row,
        "counts.tsv.gz",
        ["not in samples.tsv", "sample_id"],
    ),
    (
        "sheet_sample_not_in_counts",
        _append("samples.tsv", "P001_X\tP001\tD63\t63\tB1"),
        "samples.tsv",
        ["visit"],
    ),
    ("count_negative", _set_count("-1"), "counts.tsv.gz", ["negative count", "row 6", "'-1'"]),
    ("count_fractional", _set_count("2.5"), "counts.tsv.gz", ["fractional count", "'2.5'"]),
    ("count_text", _set_count("abc"), "counts.tsv.gz", ["not a number", "'abc'"]),
    ("count_nan", _set_count("NaN"), "counts.tsv.gz", ["count"]),
    ("count_inf", _set_count("inf"), "counts.tsv.gz", ["finite"]),
    (
        "unknown_visit",
        lambda c: _edit(c / "samples.tsv", "\tD14\t", "\tD15\t"),
        "samples.tsv",
        ["unknown visit", "column 'visit'", "'D15'"],
    ),
    (
        "unknown_patient",
        lambda c: _edit(c / "samples.tsv", "P002_D0\tP002", "P002_D0\tP999"),
        "samples.tsv",
        ["patient not found in patients.tsv", "'P999'"],
    ),
    (
        "bad_response",
        lambda c: _edit(c / "responses.tsv", "\tNR\n", "\tpartial\n"),
        "responses.tsv",
        ["unknown response", "column 'response'", "'partial'"],
    ),
    (
        "empty_counts",
        lambda c: (c / "counts.tsv.gz").write_bytes(gzip.compress(b"")),
        "counts.tsv.gz",
        ["empty"],
    ),
    (
        "counts_not_gzip",
        lambda c: (c / "counts.tsv.gz").write_text("gene_id\tS\n"),
        "counts.tsv.gz",
        ["gzip"],
    ),
    (
        "truncated_counts",
        lambda c: _edit_counts(c, lambda ls: ls[:-1] + [ls[-1][:40]]),
        "counts.tsv.gz",
        ["truncated"],
    ),
    ("empty_samples", _write("samples.tsv", ""), "samples.tsv", ["empty"]),
    (
        "samples_header_only",
        _write("samples.tsv", _first_line_header("samples.tsv") + "\n"),
        "samples.tsv",
        ["no rows"],
    ),
    (
        "samples_comma_delimited",
        lambda c: (c / "samples.tsv").write_text(
            (c / "samples.tsv").read_text().replace("\t", ",")
        ),
        "samples.tsv",
        ["tab-separated"],
    ),
    (
        "samples_missing_column",
        lambda c: _edit(c / "samples.tsv", "\tbatch\n", "\tlot\n"),
        "samples.tsv",
        ["required column missing", "'batch'"],
    ),
    (
        "sample_id_bad_chars",
        lambda c: _edit(c / "samples.tsv", "P003_D0", "P003 D0"),
        "samples.tsv",
        ["identifier", "'P003 D0'"],
    ),
    (
        "code_as_value",
        lambda c: _edit(c / "samples.tsv", "P003_D0", "__import__('os').system('id')"),
        "samples.tsv",
        ["identifier", "__import__"],
    ),
    (
        "day_not_integer",
        lambda c: _edit(c / "samples.tsv", "\tD7\t7\t", "\tD7\tseven\t"),
        "samples.tsv",
        ["whole number", "column 'day'", "'seven'"],
    ),
    (
        "two_draws_same_visit",
        _append("samples.tsv", "P001_bis\tP001\tD0\t0\tB1"),
        "samples.tsv",
        ["same patient and visit"],
    ),
    (
        "empty_batch",
        lambda c: _edit(c / "samples.tsv", "\t0\tB1\n", "\t0\t\n"),
        "samples.tsv",
        ["empty batch"],
    ),
    (
        "dup_patient",
        _append("patients.tsv", "P001\t40\t\t40\t\t\tC4\tF\t86\tSH2D1A"),
        "patients.tsv",
        ["duplicated identifier", "patient_id"],
    ),
    (
        "followup_text",
        lambda c: _edit(c / "patients.tsv", "P002\t79", "P002\tlate"),
        "patients.tsv",
        ["last_followup_day", "'late'"],
    ),
    (
        "hsct_before_d0",
        lambda c: _edit(c / "patients.tsv", "P002\t79\t51", "P002\t79\t-5"),
        "patients.tsv",
        ["before D0", "hsct_day"],
    ),
    (
        "response_after_death",
        _append("responses.tsv", "P001\tW8\t56\tCR"),
        "responses.tsv",
        ["after the patient's death"],
    ),
    (
        "response_unknown_patient",
        _append("responses.tsv", "P999\tW8\t56\tCR"),
        "responses.tsv",
        ["patient not found", "'P999'"],
    ),
    (
        "response_visit_unknown",
        lambda c: _edit(c / "responses.tsv", "\tD21\t", "\tD22\t"),
        "responses.tsv",
        ["unknown response visit", "'D22'"],
    ),
    (
        "cytokine_unknown_sample",
        _append("cytokines.tsv", "NOPE\tIL6\t3\tpg/mL\t3.2\t10000\tPL1"),
        "cytokines.tsv",
        ["sample not found", "'NOPE'"],
    ),
    (
        "cytokine_text_value",
        _append("cytokines.tsv", "P001_D0\tIL2\tabc\tpg/mL\t3.2\t10000\tPL1"),
        "cytokines.tsv",
        ["value", "abc"],
    ),
    (
        "pk_bad_matrix",
        lambda c: _edit(c / "pk.tsv", "\tcsf\t", "\turine\t"),
        "pk.tsv",
        ["unknown matrix", "'urine'"],
    ),
    (
        "event_grade_6",
        lambda c: _edit(
            c / "events.tsv",
            "\tadverse_event\tneutropenia\t2\t",
            "\tadverse_event\tneutropenia\t6\t",
        ),
        "events.tsv",
        ["grade must be 1 to 5"],
    ),
    (
        "event_unknown_category",
        lambda c: _edit(c / "events.tsv", "\tviral_infection\t", "\tinfection\t"),
        "events.tsv",
        ["unknown event category", "'infection'"],
    ),
    (
        "conditioning_after_hsct",
        lambda c: _edit(c / "patients.tsv", "P002\t79\t51\t\t44", "P002\t79\t51\t\t60"),
        "patients.tsv",
        ["conditioning", "conditioning_day"],
    ),
    (
        "pk_negative",
        lambda c: _edit(c / "pk.tsv", "\tD28\tcsf\t0.90\t", "\tD28\tcsf\t-0.90\t"),
        "pk.tsv",
        ["negative concentration", "column 'concentration'"],
    ),
    (
        "event_status_unknown",
        lambda c: _edit(
            c / "events.tsv", "\tCMV reactivation\t2\tnew", "\tCMV reactivation\t2\tresolved"
        ),
        "events.tsv",
        ["unknown event status", "'resolved'"],
    ),
    (
        "cytokine_negative",
        _append("cytokines.tsv", "P001_D0\tIL2\t-5\tpg/mL\t3.2\t10000\tPL1"),
        "cytokines.tsv",
        ["-5"],
    ),
    (
        "cytokine_bad_unit",
        _append("cytokines.tsv", "P001_D0\tIL2\t5\tfurlongs\t3.2\t10000\tPL1"),
        "cytokines.tsv",
        ["unit", "furlongs"],
    ),
    (
        "response_duplicate_visit",
        _append("responses.tsv", "P002\tD7\t7\tPR"),
        "responses.tsv",
        ["same patient and visit", "'D7'"],
    ),
    (
        "patients_empty",
        _write("patients.tsv", ""),
        "patients.tsv",
        ["empty"],
    ),
    (
        "counts_duplicate_gene",
        lambda c: _edit_counts(c, lambda ls: ls + [ls[3]]),
        "counts.tsv.gz",
        ["duplicated gene id", "column 'gene_id'"],
    ),
    (
        "counts_duplicate_sample_column",
        lambda c: _edit_counts(c, lambda ls: [line + "\t" + line.split("\t")[2] for line in ls]),
        "counts.tsv.gz",
        ["duplicated sample column"],
    ),
    (
        "ambiguous_samples_tsv_and_csv",
        lambda c: (c / "samples.csv").write_text(
            (c / "samples.tsv").read_text().replace("\t", ",")
        ),
        "cohort",
        ["several samples files", "samples.tsv", "samples.csv"],
    ),
    (
        "ambiguous_counts_tsv_and_h5ad",
        lambda c: (c / "counts.h5ad").write_bytes(b"not used"),
        "cohort",
        ["several counts files", "counts.tsv.gz", "counts.h5ad"],
    ),
    (
        "counts_transposed",
        lambda c: _transpose_counts(c),
        "counts.tsv",
        ["looks transposed", "first column holds sample ids", "transpose it"],
    ),
    (
        "counts_nfcore_tpm_table",
        lambda c: _rename_counts(c, "salmon.merged.gene_tpm.tsv"),
        "salmon.merged.gene_tpm.tsv",
        ["TPM table, not counts", "salmon.merged.gene_counts.tsv"],
    ),
    (
        "counts_quant_folder_without_tx2gene",
        lambda c: _quant_folder(c),
        "quant",
        ["tx2gene", "counts.tx2gene"],
    ),
    (
        "count_beyond_int64",
        _set_count("99999999999999999999"),
        "counts.tsv.gz",
        ["too large for a 64-bit integer", "row 6", "column 'P001_D14'"],
    ),
    (
        "count_sample_all_zero",
        lambda c: _edit_counts(
            c,
            lambda ls: [
                "\t".join(v if i != 2 or n == 0 else "0" for i, v in enumerate(line.split("\t")))
                for n, line in enumerate(ls)
            ],
        ),
        "counts.tsv.gz",
        ["no count at all", "sample P001_D0", "exclude_samples"],
    ),
    (
        "count_matrix_all_zero",
        lambda c: _edit_counts(
            c,
            lambda ls: (
                [ls[0]]
                + [
                    "\t".join(line.split("\t")[:2] + ["0"] * (len(line.split("\t")) - 2))
                    for line in ls[1:]
                ]
            ),
        ),
        "counts.tsv.gz",
        ["no count at all (every value is 0)"],
    ),
    (
        "h5ad_without_sample_id",
        lambda c: _h5ad_cells_without_sample_id(c),
        "counts.h5ad",
        ["not in samples.tsv", "cell0"],
    ),
]


def _trailing_tab_every_line(name):
    def fn(c):
        p = c / name
        p.write_text("".join(line + "\t\n" for line in p.read_text().splitlines()))

    return fn


def _trailing_tab_on_line(name, k):
    def fn(c):
        lines = (c / name).read_text().splitlines()
        lines[k] += "\t"
        (c / name).write_text("\n".join(lines) + "\n")

    return fn


def _latin1_centre(c):
    p = c / "patients.tsv"
    text = p.read_text().replace("\tC3\t", "\tH\u00f4pital Necker \u00e9\t", 1)
    p.write_bytes(text.encode("latin-1"))


def _symlink(name, target):
    def fn(c):
        (c / name).unlink()
        (c / name).symlink_to(target)

    return fn


def _symlink_loop(c):
    (c / "samples.tsv").unlink()
    (c / "samples.tsv").symlink_to(c / "samples.tsv")


def _dir_instead(name):
    def fn(c):
        (c / name).unlink()
        (c / name).mkdir()
        (c / name / "part1.tsv").write_text("x\n")

    return fn


def _remove_cohort(c):
    import shutil

    shutil.rmtree(c)


def _cohort_is_file(c):
    import shutil

    shutil.rmtree(c)
    c.write_text("samples\n")


def _replace_col(name, col, row, value):
    """Set one cell (file row ``row``, header = 1) of a table."""

    def fn(c):
        lines = (c / name).read_text().splitlines()
        header = lines[0].split("\t")
        cells = lines[row - 1].split("\t")
        cells[header.index(col)] = value
        lines[row - 1] = "\t".join(cells)
        (c / name).write_text("\n".join(lines) + "\n")

    return fn


def _row_of(name, col, value):
    lines = (REPO / "example" / "cohort" / name).read_text().splitlines()
    k = lines[0].split("\t").index(col)
    return next(i for i, ln in enumerate(lines, start=1) if ln.split("\t")[k] == value)


def _hsct_row(name):
    """File row of the first row of ``name`` for patient P002 (HSCT on day 51)."""
    lines = (REPO / "example" / "cohort" / name).read_text().splitlines()
    return next(i for i, ln in enumerate(lines, start=1) if ln.startswith("P002"))


PLAUS_ERROR = {
    "plausibility": {"visit_day": "error", "visit_day_tolerance": 3, "after_hsct": "error"}
}
P001_D7 = _row_of("samples.tsv", "sample_id", "P001_D7")

CASES += [
    (
        "samples_trailing_tab_every_line",
        _trailing_tab_every_line("samples.tsv"),
        "samples.tsv",
        ["trailing delimiter", "row 1", "column '#6 (empty name)'"],
    ),
    (
        "patients_trailing_tab_header_only",
        _trailing_tab_on_line("patients.tsv", 0),
        "patients.tsv",
        ["header ends with an empty column name", "row 1"],
    ),
    (
        "samples_trailing_tab_one_row",
        _trailing_tab_on_line("samples.tsv", 4),
        "samples.tsv",
        ["trailing delimiter", "row 5", "column '#6 (empty)'", "6 fields"],
    ),
    (
        "header_empty_column_name",
        lambda c: _edit(c / "samples.tsv", "\tday\t", "\t\t"),
        "samples.tsv",
        ["empty column name", "row 1", "column '#4'"],
    ),
    (
        "patients_latin1_centre",
        _latin1_centre,
        "patients.tsv",
        ["not UTF-8", "row 3", "column 'centre'", "0xF4", "Latin-1", "UTF-8"],
    ),
    (
        "responses_utf16",
        lambda c: (c / "responses.tsv").write_bytes(
            (c / "responses.tsv").read_text().encode("utf-16")
        ),
        "responses.tsv",
        ["UTF-16", "UTF-8"],
    ),
    (
        "samples_gzip_without_gz",
        lambda c: (c / "samples.tsv").write_bytes(gzip.compress((c / "samples.tsv").read_bytes())),
        "samples.tsv",
        ["gzip-compressed", ".gz"],
    ),
    (
        "samples_is_a_folder",
        _dir_instead("samples.tsv"),
        "samples.tsv",
        ["is a folder, not a file"],
    ),
    (
        "cytokines_is_a_folder",
        _dir_instead("cytokines.tsv"),
        "cytokines.tsv",
        ["is a folder, not a file"],
    ),
    (
        "patients_dangling_symlink",
        _symlink("patients.tsv", "/nonexistent/patients.tsv"),
        "patients.tsv",
        ["symbolic link whose target does not exist", "/nonexistent/patients.tsv"],
    ),
    (
        "counts_dangling_symlink",
        _symlink("counts.tsv.gz", "../elsewhere/counts.tsv.gz"),
        "counts.tsv.gz",
        ["symbolic link whose target does not exist"],
    ),
    (
        "samples_symlink_loop",
        _symlink_loop,
        "samples.tsv",
        ["loop of links"],
    ),
    (
        "cohort_folder_missing",
        _remove_cohort,
        "cohort",
        ["cohort folder does not exist"],
    ),
    (
        "cohort_is_a_file",
        _cohort_is_file,
        "cohort",
        ["must name a folder"],
    ),
    (
        "response_visit_d56_not_w8",
        lambda c: _edit(c / "responses.tsv", "\tW8\t", "\tD56\t"),
        "responses.tsv",
        ["unknown response visit", "column 'visit'", "'D56'", "W8"],
    ),
    (
        "response_day_fraction",
        lambda c: _edit(c / "responses.tsv", "\tD14\t14\t", "\tD14\t14.5\t"),
        "responses.tsv",
        ["whole number", "column 'day'", "'14.5'"],
    ),
    (
        "samples_day_empty",
        _replace_col("samples.tsv", "day", 3, ""),
        "samples.tsv",
        ["whole number", "row 3", "column 'day'"],
    ),
    (
        "patients_death_day_fraction",
        lambda c: _edit(c / "patients.tsv", "P001\t40\t\t40\t", "P001\t40\t\t40.5\t"),
        "patients.tsv",
        ["whole number", "row 2", "column 'death_day'", "'40.5'"],
    ),
    (
        "pk_day_text",
        _replace_col("pk.tsv", "day", 3, "day7"),
        "pk.tsv",
        ["whole number", "row 3", "column 'day'", "'day7'"],
    ),
    (
        "events_day_text",
        _replace_col("events.tsv", "day", 2, "d18"),
        "events.tsv",
        ["whole number", "row 2", "column 'day'", "'d18'"],
    ),
    (
        "events_grade_text",
        _replace_col("events.tsv", "grade", 2, "G2"),
        "events.tsv",
        ["integer", "row 2", "column 'grade'", "'G2'"],
    ),
    (
        "pk_unknown_visit",
        _replace_col("pk.tsv", "visit", 3, "D99"),
        "pk.tsv",
        ["unknown PK visit", "row 3", "column 'visit'", "'D99'"],
    ),
    (
        "pk_unit_not_convertible",
        _replace_col("pk.tsv", "unit", 3, "IU/mL"),
        "pk.tsv",
        ["unknown concentration unit", "row 3", "column 'unit'", "'IU/mL'"],
    ),
    (
        "pk_unit_mass_only",
        _replace_col("pk.tsv", "unit", 4, "mg"),
        "pk.tsv",
        ["unknown concentration unit", "row 4", "column 'unit'", "'mg'"],
    ),
    (
        "pk_unit_empty",
        _replace_col("pk.tsv", "unit", 5, ""),
        "pk.tsv",
        ["empty unit", "row 5", "column 'unit'"],
    ),
    (
        "pk_concentration_text",
        _replace_col("pk.tsv", "concentration", 3, "high"),
        "pk.tsv",
        ["unparseable concentration", "row 3", "column 'concentration'", "'high'"],
    ),
    (
        "pk_lloq_text",
        _replace_col("pk.tsv", "lloq", 3, "half"),
        "pk.tsv",
        ["expected a number", "row 3", "column 'lloq'", "'half'"],
    ),
    (
        "pk_unknown_patient",
        _replace_col("pk.tsv", "patient_id", 3, "P777"),
        "pk.tsv",
        ["patient not found", "row 3", "column 'patient_id'", "'P777'"],
    ),
    (
        "events_unknown_patient",
        _replace_col("events.tsv", "patient_id", 2, "P777"),
        "events.tsv",
        ["patient not found", "row 2", "column 'patient_id'", "'P777'"],
    ),
    (
        "samples_empty_patient_id",
        _replace_col("samples.tsv", "patient_id", 2, ""),
        "samples.tsv",
        ["empty value", "row 2", "column 'patient_id'"],
    ),
    (
        "patients_age_text",
        _replace_col("patients.tsv", "age_months", 2, "7y"),
        "patients.tsv",
        ["expected a number", "row 2", "column 'age_months'", "'7y'"],
    ),
    (
        "responses_missing_column",
        lambda c: _edit(c / "responses.tsv", "\tresponse\n", "\toutcome\n"),
        "responses.tsv",
        ["required column missing", "column 'response'"],
    ),
    (
        "cytokine_lloq_above_uloq",
        _replace_col("cytokines.tsv", "lloq", 2, "20000"),
        "cytokines.tsv",
        ["lower limit of quantification above the upper one", "row 2", "column 'lloq'"],
    ),
    (
        "cytokine_lloq_text",
        _replace_col("cytokines.tsv", "lloq", 3, "low"),
        "cytokines.tsv",
        ["lloq must be a non-negative number", "row 3", "column 'lloq'", "'low'"],
    ),
    (
        "cytokine_empty_analyte",
        _replace_col("cytokines.tsv", "analyte", 4, ""),
        "cytokines.tsv",
        ["empty analyte name", "row 4", "column 'analyte'"],
    ),
    (
        "sample_d7_at_day_30",
        _replace_col("samples.tsv", "day", P001_D7, "30"),
        "samples.tsv",
        ["labelled D7 is dated day 30", f"row {P001_D7}", "column 'day'", "plausibility.visit_day"],
        PLAUS_ERROR,
    ),
    (
        "sample_d0_at_day_minus_30",
        _replace_col("samples.tsv", "day", 2, "-30"),
        "samples.tsv",
        ["labelled D0 is dated day -30", "row 2", "column 'day'"],
        PLAUS_ERROR,
    ),
    (
        "response_d28_at_day_3",
        lambda c: _edit(c / "responses.tsv", "\tD28\t28\t", "\tD28\t3\t"),
        "responses.tsv",
        ["labelled D28 is dated day 3", "column 'day'", "row "],
        PLAUS_ERROR,
    ),
    (
        "pk_d7_at_day_40",
        lambda c: _edit(c / "pk.tsv", "P001\t7\tD7\tplasma", "P001\t40\tD7\tplasma"),
        "pk.tsv",
        ["PK draw labelled D7 is dated day 40", "row 3", "column 'day'"],
        PLAUS_ERROR,
    ),
    (
        "pk_precond8_far_from_conditioning",
        lambda c: _edit(c / "pk.tsv", "P002\t36\tPRECOND8", "P002\t20\tPRECOND8"),
        "pk.tsv",
        ["labelled PRECOND8 is dated day 20", "planned day 36", "column 'day'"],
        PLAUS_ERROR,
    ),
    (
        "sample_after_hsct",
        _append("samples.tsv", "P002_D56\tP002\tD56\t56\tB1"),
        "samples.tsv",
        ["sample after the patient's HSCT", "hsct_day 51", "column 'day'", "row "],
        {"plausibility": {"visit_day": "off", "after_hsct": "error"}},
    ),
    (
        "response_after_hsct",
        _append("responses.tsv", "P002\tW8\t56\tCR"),
        "responses.tsv",
        ["response after the patient's HSCT", "hsct_day 51", "column 'day'", "row "],
        {"plausibility": {"visit_day": "off", "after_hsct": "error"}},
    ),
]


def _plaus_error(check):
    return {"plausibility": {"visit_day": "off", "after_hsct": "off", check: "error"}}


N_EVENT_ROWS = len((REPO / "example" / "cohort" / "events.tsv").read_text().splitlines())

CASES += [
    (
        "event_before_d0",
        _replace_col("events.tsv", "day", 2, "-5"),
        "events.tsv",
        [
            "event 'thrombocytopenia' dated day -5, before D0",
            "row 2",
            "column 'day'",
            "plausibility.event_before_d0: error",
        ],
        _plaus_error("event_before_d0"),
    ),
    (
        "event_after_death",
        _replace_col("events.tsv", "day", 2, "45"),
        "events.tsv",
        ["dated day 45, after the patient's death (death_day 40)", "row 2", "column 'day'"],
        _plaus_error("event_after_followup"),
    ),
    (
        "event_after_last_followup",
        _append("events.tsv", "P002\t90\tadverse_event\tanaemia\t1\tnew"),
        "events.tsv",
        [
            "event 'anaemia' dated day 90, after the patient's last follow-up "
            "(last_followup_day 79)",
            f"row {N_EVENT_ROWS + 1}",
            "plausibility.event_after_followup",
        ],
        _plaus_error("event_after_followup"),
    ),
    (
        "cytokine_plain_value_below_lloq",
        _replace_col("cytokines.tsv", "value", 2, "1.5"),
        "cytokines.tsv",
        [
            "IFN-γ reading 1.5 pg/mL of sample P001_D0 is below its LLOQ (3.2 pg/mL)",
            "row 2",
            "column 'value'",
            "plausibility.cytokine_range",
        ],
        _plaus_error("cytokine_range"),
    ),
    (
        "cytokine_plain_value_above_uloq",
        _replace_col("cytokines.tsv", "value", 3, "25000"),
        "cytokines.tsv",
        ["MIG reading 25000 pg/mL", "above its ULOQ (10000 pg/mL)", "row 3", "column 'value'"],
        _plaus_error("cytokine_range"),
    ),
]


def _keep_patients(*keep):
    """Cut the cohort down to the patients ``keep`` (every table and the counts)."""

    def fn(c):
        for p in c.glob("*.tsv"):
            lines = p.read_text().splitlines()
            p.write_text("\n".join(lines[:1] + [ln for ln in lines[1:] if ln.startswith(keep)]))
            p.write_text(p.read_text() + "\n")

        def cols(lines):
            head = lines[0].split("\t")
            idx = [i for i, h in enumerate(head) if i < 2 or h.startswith(keep)]
            return ["\t".join(line.split("\t")[i] for i in idx) for line in lines]

        _edit_counts(c, cols)

    return fn


CASES += [
    (
        "one_patient_cohort",
        _keep_patients("P002"),
        "samples.tsv",
        [
            "baseline visit D0 has samples with counts of only 1 patient(s)",
            "column 'visit'",
            "de.min_patients_per_visit",
        ],
    ),
    (
        "two_patient_cohort",
        _keep_patients("P002", "P003"),
        "samples.tsv",
        ["only 2 patient(s)", "row 2"],
    ),
]

# defects of a whole file (format, encoding, a folder or a broken link): no row or column
WHOLE_FILE = {
    "empty_counts",
    "counts_not_gzip",
    "empty_samples",
    "samples_header_only",
    "patients_empty",
    "ambiguous_samples_tsv_and_csv",
    "ambiguous_counts_tsv_and_h5ad",
    "counts_transposed",
    "counts_nfcore_tpm_table",
    "counts_quant_folder_without_tx2gene",
    "count_matrix_all_zero",
    "responses_utf16",
    "samples_gzip_without_gz",
    "samples_is_a_folder",
    "cytokines_is_a_folder",
    "patients_dangling_symlink",
    "counts_dangling_symlink",
    "samples_symlink_loop",
    "cohort_folder_missing",
    "cohort_is_a_file",
}


def _apply(case_id, cohort):
    mutate = {c[0]: c[1] for c in CASES}[case_id]
    mutate(cohort)


def _config(cohort: Path) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["cohort"] = str(cohort)
    cfg["genesets"] = [str(REPO / g) for g in cfg["genesets"]]
    return cfg


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_defect_is_reported(cohort_copy, case):
    case_id, mutate, fname, needles = case[:4]
    overrides = case[4] if len(case) > 4 else {}
    mutate(cohort_copy)
    with pytest.raises(InputError) as err:
        validate_cohort(_config(cohort_copy) | overrides)
    msg = str(err.value)
    assert fname in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    # the message names where: a row (or sample / gene) or a column, unless the whole file is bad
    if case_id not in WHOLE_FILE:
        assert err.value.row is not None or err.value.column is not None, msg


def test_corpus_size():
    assert len(CASES) >= 80 and len({c[0] for c in CASES}) == len(CASES)


def test_crlf_bom_sheet_is_accepted(cohort_copy):
    p = cohort_copy / "samples.tsv"
    p.write_bytes(b"\xef\xbb\xbf" + p.read_text().replace("\n", "\r\n").encode())
    cohort = validate_cohort(_config(cohort_copy))
    assert list(cohort.samples.columns[:2]) == ["sample_id", "patient_id"]


def test_gmt_without_genes_in_data(tmp_path):
    gmt = tmp_path / "mine.gmt"
    gmt.write_text("MY_SET\tsource\tNOTAGENE1\tNOTAGENE2\n")
    # the signature stage is left out with this message (tests/test_deliveries.py runs it)
    why = check_genesets({"genesets": [str(gmt)]}, tmp_path, ["STAT1", "IRF1"])
    assert "mine.gmt" in why and "no gene of any set" in why
    gmt.write_text("MY_SET\tsource\tNOTAGENE1\tstat1\n")
    assert check_genesets({"genesets": [str(gmt)]}, tmp_path, ["STAT1", "IRF1"]) is None


def _drop_count_column(lines, k=3):
    return ["\t".join(c for i, c in enumerate(line.split("\t")) if i != k) for line in lines]


def test_drop_mode_accepts_mismatch(cohort_copy):
    _edit_counts(cohort_copy, _drop_count_column)
    with pytest.raises(InputError, match="no column in the counts"):
        validate_cohort(_config(cohort_copy))
    cfg = _config(cohort_copy) | {"sample_mismatch": "drop"}
    cohort = validate_cohort(cfg)
    assert len(cohort.dropped_samples) == 1 and cohort.warnings


CLI_CASES = [
    "dup_sample",
    "count_sample_not_in_sheet",
    "count_negative",
    "count_fractional",
    "count_text",
    "unknown_visit",
    "unknown_patient",
    "bad_response",
    "empty_counts",
    "samples_trailing_tab_every_line",
    "patients_latin1_centre",
    "samples_is_a_folder",
    "cohort_folder_missing",
    "one_patient_cohort",
]


@pytest.mark.parametrize("case_id", CLI_CASES)
def test_cli_stops_before_analysis(tmp_path, cohort_copy, case_id):
    _apply(case_id, cohort_copy)
    fname = {c[0]: c[2] for c in CASES}[case_id]
    r = run_workflow(tmp_path, config={"cohort": "cohort", "results": "results"})
    assert r.returncode != 0
    assert "Invalid input" in r.stderr and fname in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    left = files_under(tmp_path / "results")
    assert left and all(f.startswith("logs/") for f in left), left


def test_cli_unknown_config_key(tmp_path):
    r = run_workflow(
        tmp_path,
        config={"cohort": str(REPO / "example" / "cohort"), "results": "results", "no_such_key": 1},
    )
    assert r.returncode != 0
    assert "no_such_key" in r.stderr
    assert files_under(tmp_path / "results") == []


def test_code_like_column_is_passed_through_never_run(cohort_copy, tmp_path, monkeypatch):
    """A column named like Python code is an ordinary covariate: kept, never evaluated."""
    monkeypatch.chdir(tmp_path)
    name = "__import__('os').system('touch PWNED')"
    p = cohort_copy / "samples.tsv"
    lines = p.read_text().splitlines()
    lines = [lines[0] + "\t" + name] + [ln + "\tx" for ln in lines[1:]]
    p.write_text("\n".join(lines) + "\n")
    cohort = validate_cohort(_config(cohort_copy))
    assert name in cohort.samples.columns
    assert not (tmp_path / "PWNED").exists()


def test_config_baseline_and_excluded_samples_are_checked(cohort_copy):
    cfg = _config(cohort_copy) | {"baseline_visit": "D1"}
    with pytest.raises(InputError, match="baseline_visit 'D1' is not one of the visits"):
        validate_cohort(cfg)
    cfg = _config(cohort_copy)
    cfg["expression"] = dict(cfg["expression"], exclude_samples=["P999_D0"])
    with pytest.raises(InputError, match="sample to exclude is not in the counts") as err:
        validate_cohort(cfg)
    assert "P999_D0" in str(err.value)


# --- accepted, with the right result -----------------------------------------------------------

ODD_IDS = {"P001": "NA", "P002": "0012", "P003": "1e5", "P004": "TRUE", "P005": "NULL"}


def _rename_patients(cohort: Path, mapping: dict):
    for p in cohort.iterdir():
        if p.name.endswith(".gz"):
            text = gzip.decompress(p.read_bytes()).decode()
        else:
            text = p.read_text()
        for old, new in mapping.items():
            text = text.replace(old, new)
        if p.name.endswith(".gz"):
            p.write_bytes(gzip.compress(text.encode()))
        else:
            p.write_text(text)


def test_identifiers_stay_text_through_validated_copies(cohort_copy, tmp_path):
    from rhlh.contract.validate import clean_table, resolve_inputs
    from rhlh.io import write_tsv
    from rhlh.tables import read_patients, read_samples, read_validated

    _rename_patients(cohort_copy, ODD_IDS)
    cfg = _config(cohort_copy)
    cohort = validate_cohort(cfg)
    assert set(ODD_IDS.values()) <= set(cohort.patients["patient_id"])
    assert "NA_D0" in set(cohort.samples["sample_id"])
    paths = resolve_inputs(cfg)
    for table in ("samples", "patients", "responses", "pk", "events"):
        out = tmp_path / f"{table}.tsv"
        write_tsv(clean_table(table, paths, cfg), out)
        ids = set(read_validated(out)["patient_id"])
        assert set(ODD_IDS.values()) <= ids, (table, sorted(ids)[:8])
    assert set(ODD_IDS.values()) <= set(read_patients(tmp_path / "patients.tsv")["patient_id"])
    samples = read_samples(tmp_path / "samples.tsv")
    assert samples["patient_id"].notna().all()
    assert "0012" in set(samples["patient_id"]) and "NA" in set(samples["patient_id"])


def test_pk_units_converted_to_ng_per_ml(cohort_copy):
    from rhlh.contract.validate import RUXOLITINIB_G_PER_MOL, read_patients, read_pk

    p = cohort_copy / "pk.tsv"
    lines = p.read_text().splitlines()
    # row 2: <0.5 ng/mL with lloq 0.5; row 3: 34.60 ng/mL
    lines[1] = lines[1].replace("<0.5\tng/mL\t0.5", "<500\tpg/mL\t500")
    lines[2] = lines[2].replace("34.60\tng/mL", "34600\tng/L")
    lines[3] = lines[3].split("\t")
    lines[3][4], lines[3][5] = "100", "nmol/L"
    lines[3] = "\t".join(lines[3])
    lines[4] = lines[4].replace("\tng/mL\t", "\tµg/L\t")
    p.write_text("\n".join(lines) + "\n")
    patients = read_patients(cohort_copy / "patients.tsv")
    pk = read_pk(
        p,
        patients,
        cohort_copy / "patients.tsv",
        ["D0", "D7", "D14"] + [f"D{d}" for d in range(21, 57, 7)],
    )
    assert set(pk["unit"]) == {"ng/mL"}
    assert pk.at[2, "concentration"] == "<0.5" and pk.at[2, "lloq"] == 0.5
    assert pk.at[3, "concentration"] == "34.6"
    assert float(pk.at[4, "concentration"]) == pytest.approx(100 * RUXOLITINIB_G_PER_MOL / 1e3)
    original = (REPO / "example" / "cohort" / "pk.tsv").read_text().splitlines()[4].split("\t")
    assert pk.at[5, "concentration"] == original[4]  # ug/L = ng/mL: text unchanged


def test_duplicated_gene_names_are_listed(cohort_copy):
    def dup_name(lines):
        cells = lines[2].split("\t")
        cells[1] = lines[1].split("\t")[1]
        lines[2] = "\t".join(cells)
        return lines

    _edit_counts(cohort_copy, dup_name)
    first = gzip.decompress((cohort_copy / "counts.tsv.gz").read_bytes()).decode()
    name = first.splitlines()[1].split("\t")[1]
    cohort = validate_cohort(_config(cohort_copy))
    notes = [w for w in cohort.warnings if "shared by several gene ids" in w]
    assert notes and f"{name} (genes 1, 2)" in notes[0], cohort.warnings


def test_plausibility_warnings_are_collected(cohort_copy):
    from rhlh.contract.validate import plausibility_table, resolve_inputs

    _replace_col("samples.tsv", "day", P001_D7, "30")(cohort_copy)
    _edit(cohort_copy / "pk.tsv", "P001\t7\tD7\tplasma", "P001\t40\tD7\tplasma")
    cfg = _config(cohort_copy)
    assert cfg["plausibility"]["visit_day"] == "warn"
    cohort = validate_cohort(cfg)
    found = [w for w in cohort.warnings if "labelled D7" in w]
    assert len(found) == 2 and f"row {P001_D7}" in found[0], cohort.warnings
    table = plausibility_table(resolve_inputs(cfg), cfg)
    assert list(table["file"]) == ["samples.tsv", "pk.tsv"]
    assert list(table["severity"]) == ["warn", "warn"] and set(table["check"]) == {"visit_day"}
    cfg["plausibility"] = dict(cfg["plausibility"], visit_day="off")
    assert validate_cohort(cfg).warnings == [w for w in cohort.warnings if w not in found]


def test_event_and_cytokine_warnings_are_collected(cohort_copy):
    """The event and cytokine checks warn by default: validation passes, and the findings are
    in the validation warnings and the warnings table (inputs/warnings.tsv)."""
    from rhlh.contract.validate import plausibility_table, resolve_inputs

    _replace_col("events.tsv", "day", 2, "-5")(cohort_copy)
    _replace_col("cytokines.tsv", "value", 2, "1.5")(cohort_copy)
    cfg = _config(cohort_copy)
    assert cfg["plausibility"]["event_before_d0"] == "warn"
    assert cfg["plausibility"]["cytokine_range"] == "warn"
    warnings = validate_cohort(cfg).warnings
    assert any("events.tsv, row 2, column 'day': event 'thrombocytopenia'" in w for w in warnings)
    assert any("row 2, column 'value': IFN-γ reading 1.5 pg/mL" in w for w in warnings)
    table = plausibility_table(resolve_inputs(cfg), cfg)
    assert list(table["check"]) == ["event_before_d0", "cytokine_range"]
    assert list(table["file"]) == ["events.tsv", "cytokines.tsv"]
    assert list(table["row"]) == [2, 2] and list(table["severity"]) == ["warn", "warn"]
    cfg["plausibility"] = dict(cfg["plausibility"], event_before_d0="off", cytokine_range="off")
    assert plausibility_table(resolve_inputs(cfg), cfg).empty


def test_example_has_no_plausibility_warning():
    from rhlh.contract.validate import plausibility_table, resolve_inputs

    cfg = _config(REPO / "example" / "cohort")
    assert plausibility_table(resolve_inputs(cfg), cfg).empty


def test_formula_cells_are_quoted_in_validated_copies(cohort_copy, tmp_path):
    import pandas as pd

    from rhlh.contract.validate import clean_table, resolve_inputs
    from rhlh.io import formula_safe, write_tsv
    from rhlh.tables import read_validated

    _edit(cohort_copy / "patients.tsv", "\tC3\t", "\t=cmd|' /C calc'!A0\t")
    _edit(cohort_copy / "patients.tsv", "\tSTXBP2", "\t@SUM(A1)")
    cfg = _config(cohort_copy)
    validate_cohort(cfg)
    df = clean_table("patients", resolve_inputs(cfg), cfg)
    out = tmp_path / "patients.tsv"
    write_tsv(formula_safe(df), out)
    back = read_validated(out, numeric=("age_months",))
    assert "'=cmd|' /C calc'!A0" in set(back["centre"])
    assert "'@SUM(A1)" in set(back["genotype"])
    assert not back["centre"].str.match(r"^[=+@]").any()
    # numbers, negative numbers as text and identifiers are left alone
    frame = formula_safe(
        pd.DataFrame({"patient_id": ["-P1"], "x": ["-5"], "y": ["-abc"], "z": [-3.0]})
    )
    assert frame.iloc[0].tolist() == ["-P1", "-5", "'-abc", -3.0]


def test_signature_models_of_one_patient_are_an_empty_table(caplog):
    import pandas as pd

    from rhlh.signatures.models import fit_signature_models

    scores = pd.DataFrame(
        {
            "sample_id": ["S0", "S7"],
            "patient_id": ["P1", "P1"],
            "visit": ["D0", "D7"],
            "signature": ["IFNG", "IFNG"],
            "method": ["zscore", "zscore"],
            "score": [0.1, 0.5],
        }
    )
    responders = pd.DataFrame(
        {"patient_id": ["P1"], "responder": [True], "response_class": ["CR"], "reason": [""]}
    )
    with caplog.at_level("WARNING", logger="rhlh"):
        out = fit_signature_models(scores, responders, ["D0", "D7"], methods=("zscore",), n_boot=5)
    assert out.empty and {"signature", "score_method"} <= set(out.columns)
    assert "no mixed model fitted" in caplog.text
