"""Tests of rhlh.design: formula parsing, hand-built model matrices, rank checks, config."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rhlh.design import (
    Contrast,
    build_design,
    contrast_vector,
    is_nested,
    ns_basis,
    parse_design_specs,
    parse_formula,
    workflow_table_keys,
)
from rhlh.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "deseq2"
VISITS = ["D0", "D7", "D14", "D21"]


def small_samples():
    # 4 patients x 3 visits, batch nested in patient, responder constant within patient
    rows = []
    for i, p in enumerate(["P1", "P2", "P3", "P4"]):
        for v, d in (("D0", 0), ("D7", 7), ("D14", 15)):
            rows.append(
                {
                    "sample_id": f"{p}_{v}",
                    "patient_id": p,
                    "visit": v,
                    "day": d,
                    "batch": "B1" if i < 2 else "B2",
                    "responder": i % 2 == 0,
                }
            )
    return pd.DataFrame(rows).set_index("sample_id", drop=False)


def test_parse_formula_terms():
    terms = parse_formula(
        "~ patient_id + visit + responder:visit + ns(day, df=3)",
        ["patient_id", "visit", "responder", "day"],
    )
    assert [t.label for t in terms] == ["patient_id", "visit", "responder:visit", "ns(day, df=3)"]
    assert terms[2].columns == ("responder", "visit")
    assert terms[3].parts[0].spline_df == 3


@pytest.mark.parametrize(
    "formula",
    [
        "~ __import__('os').system('true')",
        "~ visit + log(day)",
        "~ visit * responder",
        "~ visit - 1",
        "~ visit + + day",
        "~ 0 + visit",
        "y ~ visit",
        "~ visit + 1day",
        "~ visit + unknown",
        "~ ns(day, df=30)",
        "~ visit + visit",
        "",
    ],
)
def test_parse_formula_rejects(formula):
    with pytest.raises(InputError):
        parse_formula(formula, ["visit", "day", "responder"])


def test_treatment_coding_by_hand():
    s = small_samples()
    d = build_design(s, "~ visit + responder", levels={"visit": VISITS})
    assert list(d.matrix.columns) == ["Intercept", "visitD7", "visitD14", "responderTrue"]
    assert d.references == {"visit": "D0", "responder": "False"}
    # D21 is a configured level that no sample has: no column for it
    assert d.levels["visit"] == ["D0", "D7", "D14"]
    row = d.matrix.loc["P1_D14"].tolist()  # P1 is a responder (i = 0)
    assert row == [1.0, 0.0, 1.0, 1.0]
    row = d.matrix.loc["P2_D0"].tolist()
    assert row == [1.0, 0.0, 0.0, 0.0]


def test_reference_override_and_unknown_level():
    s = small_samples()
    d = build_design(s, "~ visit", levels={"visit": VISITS}, reference={"visit": "D7"})
    assert list(d.matrix.columns) == ["Intercept", "visitD0", "visitD14"]
    with pytest.raises(InputError):
        build_design(s, "~ visit", levels={"visit": ["D0", "D7"]})  # D14 not configured


def test_nested_batch_is_dropped_and_explained():
    s = small_samples()
    d = build_design(s, "~ batch + patient_id + visit", levels={"visit": VISITS})
    assert d.dropped_terms == ["batch"]
    assert not any(c.startswith("batch") for c in d.matrix.columns)
    assert any("nested within 'patient_id'" in m for m in d.messages)
    assert np.linalg.matrix_rank(d.matrix.to_numpy()) == d.matrix.shape[1] == 1 + 3 + 2
    # a batch that crosses patients is estimable and kept
    s2 = s.copy()
    s2.loc[["P1_D14", "P3_D0"], "batch"] = ["B2", "B1"]
    d2 = build_design(s2, "~ batch + patient_id + visit", levels={"visit": VISITS})
    assert "batchB2" in d2.matrix.columns and not d2.dropped


def test_interaction_with_nested_group():
    s = small_samples()
    d = build_design(
        s, "~ patient_id + visit + responder + responder:visit", levels={"visit": VISITS}
    )
    # responder is constant within patient: its main effect is not estimable
    assert d.dropped_terms == ["responder"]
    inter = d.matrix[["responderTrue:visitD7", "responderTrue:visitD14"]]
    expect = pd.DataFrame(
        {
            "responderTrue:visitD7": ((s.responder) & (s.visit == "D7")).astype(float),
            "responderTrue:visitD14": ((s.responder) & (s.visit == "D14")).astype(float),
        }
    )
    pd.testing.assert_frame_equal(inter, expect, check_names=False)
    # a visit seen only in responders makes its interaction column non-estimable
    s3 = s.drop(index=["P2_D14", "P4_D14"])
    d3 = build_design(s3, "~ patient_id + visit + responder:visit", levels={"visit": VISITS})
    assert "responderTrue:visitD14" in d3.dropped
    assert np.linalg.matrix_rank(d3.matrix.to_numpy()) == d3.matrix.shape[1]


def test_all_zero_interaction_column_dropped():
    s = small_samples()
    s = s[~((s.responder) & (s.visit == "D7"))]
    d = build_design(s, "~ visit + responder:visit", levels={"visit": VISITS})
    assert "responderTrue:visitD7" in d.dropped
    assert any("all-zero" in m for m in d.messages)


def test_missing_value_in_design_column():
    s = small_samples().astype({"responder": object})
    s.loc["P1_D0", "responder"] = None
    with pytest.raises(InputError) as err:
        build_design(s, "~ responder")
    assert err.value.column == "responder"


def test_ns_basis_matches_r():
    ref = pd.read_csv(FIXTURES / "ns_day_df3.tsv", sep="\t")
    basis = ns_basis(ref["day"].to_numpy(), 3)
    np.testing.assert_allclose(basis, ref[["X1", "X2", "X3"]].to_numpy(), atol=1e-8)


def test_spline_term_in_design():
    ref = pd.read_csv(FIXTURES / "ns_day_df3.tsv", sep="\t").set_index("sample_id")
    coldata = pd.read_csv(FIXTURES / "coldata.tsv", sep="\t").set_index("sample_id")
    d = build_design(coldata, "~ patient_id + ns(day, df=3)")
    cols = ["ns(day, df=3)[1]", "ns(day, df=3)[2]", "ns(day, df=3)[3]"]
    np.testing.assert_allclose(
        d.matrix[cols].to_numpy(), ref[["X1", "X2", "X3"]].to_numpy(), atol=1e-8
    )
    with pytest.raises(InputError):
        build_design(coldata, "~ ns(visit, df=2)")


def test_contrast_vectors():
    s = small_samples()
    d = build_design(s, "~ patient_id + visit", levels={"visit": VISITS})
    cols = list(d.matrix.columns)
    v = contrast_vector(d, "visit", "D14", "D7")
    assert v[cols.index("visitD14")] == 1 and v[cols.index("visitD7")] == -1
    assert np.abs(v).sum() == 2
    v0 = contrast_vector(d, "visit", "D7", "D0")
    assert v0[cols.index("visitD7")] == 1 and np.abs(v0).sum() == 1
    with pytest.raises(ValueError):
        contrast_vector(d, "visit", "D21", "D0")


def test_is_nested():
    s = small_samples()
    s.loc["P1_D7", "day"] = 8  # else day is a function of visit, hence in its span
    full = build_design(s, "~ patient_id + visit", levels={"visit": VISITS})
    red = build_design(s, "~ patient_id")
    other = build_design(s, "~ day")
    assert is_nested(full, red)
    assert not is_nested(red, full)
    assert not is_nested(full, other)


def test_parse_design_specs():
    specs = parse_design_specs(
        [
            {
                "id": "visit",
                "formula": "~ batch + patient_id + visit",
                "contrasts": ["visit"],
                "reduced": {"time": "~ batch + patient_id"},
            },
            {
                "id": "time_by_response",
                "formula": "~ patient_id + visit + responder:visit",
                "reduced": "~ patient_id + visit",
                "exclude_samples": ["P01_D7"],
            },
            {
                "id": "pairs",
                "formula": "~ patient_id + visit",
                "contrasts": [["visit", "D14", "D7"], {"id": "late", "weights": {"visitD28": 1}}],
            },
        ]
    )
    assert specs[0].contrasts == ["visit"] and specs[0].reduced == {"time": "~ batch + patient_id"}
    assert specs[1].reduced == {"time_by_response": "~ patient_id + visit"}
    assert specs[1].exclude_samples == ["P01_D7"]
    assert specs[2].contrasts[0] == Contrast("D14_vs_D7", "visit", "D14", "D7")
    assert specs[2].contrasts[1].weights == {"visitD28": 1.0}


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "a", "formula": "~ visit"},  # neither contrasts nor reduced
        {"id": "a b", "formula": "~ visit", "contrasts": ["visit"]},
        {"id": "a", "formula": "~ visit * x", "contrasts": ["visit"]},
        {"id": "a", "formula": "~ visit", "reduced": "~ os.system('x')"},
        {"id": "a", "formula": "~ visit", "contrasts": [["visit", "D7"]]},
        {"id": "a", "formula": "~ visit", "contrasts": ["visit"], "typo": 1},
    ],
)
def test_parse_design_specs_rejects(entry):
    with pytest.raises(InputError):
        parse_design_specs([entry])


def test_duplicate_design_id():
    e = {"id": "a", "formula": "~ visit", "contrasts": ["visit"]}
    with pytest.raises(InputError):
        parse_design_specs([e, dict(e)])


def test_workflow_table_keys():
    # the shipped designs (config/config.yaml = the schema's default)
    import yaml

    shipped = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    specs = parse_design_specs(shipped["de"]["designs"])
    keys = workflow_table_keys(specs, ["D0", "D7", "D14"], "D0")
    assert keys == ["visit/D7_vs_D0", "visit/D14_vs_D0", "lrt_time", "lrt_time_by_response"]
    bad = parse_design_specs([{"id": "b", "formula": "~ batch", "contrasts": ["batch"]}])
    with pytest.raises(InputError):
        workflow_table_keys(bad, ["D0"], "D0")
