"""The readers of cross-stage tables: identifiers stay text, flags are parsed once, one way."""

import numpy as np
import pandas as pd
import pytest

from rhlh import de_data, tables
from rhlh.design import parse_design_specs
from rhlh.io import write_tsv


def _write(tmp_path, name, df):
    path = tmp_path / name
    write_tsv(df, path)
    return path


def test_identifiers_stay_text(tmp_path):
    scores = pd.DataFrame(
        {
            "sample_id": ["NA_D0", "007", "1e5"],
            "patient_id": ["NA", "007", "1e5"],
            "visit": ["D0", "D0", "D0"],
            "day": [0, 1, np.nan],
            "signature": ["S", "S", "S"],
            "method": ["ulm"] * 3,
            "score": [0.5, np.nan, 1.25],
        }
    )
    back = tables.read_scores(_write(tmp_path, "scores.tsv", scores))
    assert back["patient_id"].tolist() == ["NA", "007", "1e5"]
    assert back["sample_id"].tolist() == ["NA_D0", "007", "1e5"]
    assert back["score"].isna().tolist() == [False, True, False]
    assert back["day"].dtype == float and np.isnan(back["day"].iloc[2])


def test_responders_one_typed_form(tmp_path):
    df = pd.DataFrame(
        {
            "patient_id": ["NA", "P2", "P3"],
            "responder": ["True", "False", ""],
            "response_class": ["cr", "NR", "NE"],
            "reason": ["x", "", "no D28 assessment"],
        }
    )
    back = tables.read_responders(_write(tmp_path, "responders.tsv", df))
    assert list(back.columns) == tables.RESPONDER_COLUMNS
    assert back["patient_id"].tolist() == ["NA", "P2", "P3"]
    assert back["responder"].tolist() == [True, False, None]
    assert back["response_class"].tolist() == ["CR", "NR", "NE"]
    # the same frame with typed flags gives the same table
    typed = df.assign(responder=[True, False, None])
    pd.testing.assert_frame_equal(tables.as_responders(typed), back)
    # a spelling the writer never uses is refused with its row
    bad = df.assign(responder=["yes", "False", ""])
    with pytest.raises(ValueError, match="row 2, column 'responder'.*'yes'"):
        tables.read_responders(_write(tmp_path, "bad.tsv", bad))


def test_de_table_reader_and_empty_table(tmp_path):
    gene_ids = pd.Index(["G1", "G2"], name="gene_id")
    names = pd.Series(["STAT1", ""], index=gene_ids)
    empty = de_data.unestimable_table(gene_ids, names, True, {"IFNG_SET": ["STAT1"]})
    assert list(empty.columns) == tables.DE_WALD_COLUMNS
    back = tables.read_de_table(_write(tmp_path, "D7_vs_D0.tsv", empty))
    assert back["gene_name"].tolist() == ["STAT1", ""]
    assert back["signature_genes"].tolist() == ["IFNG_SET", ""]
    assert back["pvalue"].isna().all() and back["pvalue"].dtype == float
    with pytest.raises(ValueError, match="not a DE table"):
        tables.read_de_table(_write(tmp_path, "other.tsv", pd.DataFrame({"gene_id": ["G1"]})))


def test_contrast_ids():
    spec = parse_design_specs(
        [
            {"id": "visit", "formula": "~ patient_id + visit", "contrasts": ["visit"]},
        ]
    )[0]
    assert de_data.contrast_ids(spec, ["D0", "D7", "D14"], "D0") == ["D7_vs_D0", "D14_vs_D0"]


def test_untested_cell_type_tables_carry_the_reason(tmp_path):
    gene_ids = pd.Index(["G1", "G2", "G3"], name="gene_id")
    names = pd.Series(["STAT1", "", "IRF1"], index=gene_ids)
    sets = {"IFNG_SET": ["STAT1", "IRF1"]}
    why = "baseline visit D0 has samples of only 2 patient(s) (min_patients_per_visit=3)"
    wald = de_data.unestimable_table(gene_ids, names, True, sets, reason=why)
    assert list(wald.columns) == [*tables.DE_WALD_COLUMNS, "reason"]
    lrt = de_data.untested_lrt_table(gene_ids, names, sets, why)
    assert list(lrt.columns) == [*tables.DE_LRT_COLUMNS, "reason"]
    for name, table in (("wald.tsv", wald), ("lrt.tsv", lrt)):
        back = tables.read_de_table(_write(tmp_path, name, table))
        assert back["gene_id"].tolist() == ["G1", "G2", "G3"]
        assert back["pvalue"].isna().all() and back["stat"].isna().all()
        assert (back["reason"] == why).all()
        assert back["signature_genes"].tolist() == ["IFNG_SET", "", "IFNG_SET"]
    # without a reason, the table of an unestimable contrast is unchanged (no reason column)
    plain = de_data.unestimable_table(gene_ids, names, True, sets)
    assert "reason" not in plain.columns


def test_cell_type_untestable_and_skipped_rows(tmp_path):
    samples = pd.DataFrame(
        {"sample_id": ["A_D0", "A_D7", "B_D0"], "patient_id": ["A", "A", "B"], "visit": "D0"}
    )
    counts = pd.DataFrame(np.ones((2, 3)), columns=samples["sample_id"])
    assert de_data.cell_type_untestable(counts, samples) is None
    none = de_data.cell_type_untestable(counts.iloc[:, :0], samples.iloc[:0])
    assert none.startswith("no pseudobulk profile")
    assert de_data.cell_type_untestable(counts.iloc[:0], samples).startswith("no gene")
    rows = [
        de_data.skipped_row("Rare", "visit", samples, "too few patients"),
        de_data.skipped_row("Gone", "visit", samples.iloc[:0], none),
    ]
    table = pd.DataFrame(rows, columns=tables.DE_SKIPPED_COLUMNS)
    back = tables.read_de_skipped(_write(tmp_path, "skipped.tsv", table))
    assert back["n_samples"].tolist() == [3, 0]
    assert back["n_patients"].tolist() == [2, 0]
    assert back["reason"].tolist() == ["too few patients", none]


def test_designs_needing_both_response_groups_are_skipped_without_them():
    visit, by_response = parse_design_specs(
        [
            {"id": "visit", "formula": "~ patient_id + visit", "contrasts": ["visit"]},
            {
                "id": "time_by_response",
                "formula": "~ patient_id + visit + responder:visit",
                "reduced": "~ patient_id + visit",
            },
        ]
    )
    samples = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "patient_id": ["P1", "P1", "P2", "P3"],
            "responder": [True, True, True, None],
        }
    )
    assert de_data.response_groups_missing(visit, samples) is None
    why = de_data.response_groups_missing(by_response, samples)
    assert why.startswith("no non-responder among the 2 patient(s) with a known response")
    samples.loc[3, "responder"] = False
    assert de_data.response_groups_missing(by_response, samples) is None
    only_nr = samples.assign(responder=False)
    assert "no responder among the 3" in de_data.response_groups_missing(by_response, only_nr)
    unknown = samples.assign(responder=None)
    assert "no patient with a known response" in de_data.response_groups_missing(
        by_response, unknown
    )
    row = de_data.skipped_row(None, "time_by_response", samples, why)
    assert row["cell_type"] == "" and row["n_patients"] == 3 and row["n_samples"] == 4


def test_response_groups_note():
    from rhlh.longitudinal import response_groups_note

    both = pd.DataFrame({"patient_id": ["P1", "P2"], "responder": [True, False]})
    assert response_groups_note(both, "x") is None
    assert "needs 3 in each group" in response_groups_note(both, "the tests", 3)
    only = pd.DataFrame({"patient_id": ["P1", "P2"], "responder": [True, True]})
    note = response_groups_note(only, "the interaction")
    assert note == (
        "skipped: the interaction: the cohort has 2 responder(s) and 0 non-responder(s) with a "
        "known response, and this needs both response groups"
    )


def test_headline_says_what_was_skipped():
    from rhlh.report import headline

    summary = pd.DataFrame(columns=["section", "item", "value"])
    endpoints = pd.DataFrame(columns=["endpoint", "estimate", "ci_low", "ci_high", "note"])
    simon = pd.DataFrame(
        columns=["design", "stage", "decision", "successes", "n_observed", "threshold"]
    )
    responders = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "responder": [True, True],
            "response_class": ["CR", "CR"],
            "reason": ["", ""],
        }
    )
    args = (summary, endpoints, simon, responders, None, None, None, ["D0", "D7"])
    table = headline(*args)
    row = table[table["topic"] == "skipped"]
    assert len(row) == 1 and "no non-responder" in row["finding"].iloc[0]
    both = responders.assign(responder=[True, False])
    assert "skipped" not in set(headline(summary, endpoints, simon, both, *args[4:])["topic"])
