"""Tests of rhlh.cytokines: lab exports, censoring, plates, and the analysis on simulated data."""

import math

import numpy as np
import pandas as pd
import pytest

from rhlh import cytokines as cy
from rhlh import longitudinal as lg
from rhlh import stats as rst
from rhlh.contract import lab
from rhlh.errors import InputError

HEADER = "sample_id\tanalyte\tvalue\tunit\tlloq\tuloq\tplate\n"


def write(tmp_path, body, header=HEADER, name="cytokines.tsv"):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


# ---------------------------------------------------------------- parse_value


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3.5", (3.5, "none", math.nan)),
        ("3,5", (3.5, "none", math.nan)),
        (" 12 ", (12.0, "none", math.nan)),
        ("1.5e3", (1500.0, "none", math.nan)),
        ("<3.2", (3.2, "left", 3.2)),
        ("< 3.2", (3.2, "left", 3.2)),
        ("<3,2", (3.2, "left", 3.2)),
        ("<=3.2", (3.2, "left", 3.2)),
        (">10000", (10000.0, "right", 10000.0)),
        ("> 10000", (10000.0, "right", 10000.0)),
        ("OOR <", (math.nan, "left", math.nan)),
        ("OOR<", (math.nan, "left", math.nan)),
        ("OOR >", (math.nan, "right", math.nan)),
        ("<LLOQ", (math.nan, "left", math.nan)),
        (">ULOQ", (math.nan, "right", math.nan)),
        ("0", (math.nan, "left", math.nan)),
        ("", (math.nan, "none", math.nan)),
        ("NA", (math.nan, "none", math.nan)),
    ],
)
def test_parse_value(text, expected):
    got = lab.parse_value(text)
    assert got[1] == expected[1]
    for a, b in ((got[0], expected[0]), (got[2], expected[2])):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.mark.parametrize("text", ["abc", "-3", "<-1", "3.2.1", "1,000", "<", "3 pg", "1,2,3"])
def test_parse_value_rejects_nonsense(text):
    with pytest.raises(ValueError):
        lab.parse_value(text)


@pytest.mark.parametrize(
    "name, canon",
    [
        ("IFN-γ", "IFNG"),
        ("IFNg", "IFNG"),
        ("IFN-gamma", "IFNG"),
        ("IFNG", "IFNG"),
        ("ifn gamma", "IFNG"),
        ("TNF-alpha", "TNFA"),
        ("TNF-α", "TNFA"),
        ("TNFa", "TNFA"),
        ("IL-6", "IL6"),
        ("IL-1β", "IL1B"),
        ("IL-1b", "IL1B"),
        ("IL1b", "IL1B"),
        ("MIG", "CXCL9"),
        ("CXCL-9", "CXCL9"),
        ("IL-18", "IL18"),
        ("IL-10", "IL10"),
        ("IL-2", "IL2"),
        ("IL 1 beta", "IL1B"),
    ],
)
def test_canonical_analyte(name, canon):
    assert lab.canonical_analyte(name) == (canon, True)


def test_unknown_analyte_kept():
    assert lab.canonical_analyte(" sCD25 ") == ("sCD25", False)


# ---------------------------------------------------------------- table parsing


def test_tricky_readings_table(tmp_path):
    body = "".join(
        [
            "S1\tIFN-γ\t12,5\tpg/mL\t\t\tA\n",  # comma decimal, Greek letter
            "S1\tMIG\t2,5\tng/mL\t0.01\t\tA\n",  # ng/mL -> x1000, lloq converted too
            "S1\tIL-1β\t<3.2\tpg/ml\t5\t\tA\n",  # reading's own bound wins over lloq
            "S1\tTNF-alpha\tOOR <\tpg/mL\t1.5\t\tA\n",  # bound from the row's lloq
            "S2\tTNF-α\t<LLOQ\tpg/mL\t\t\tA\n",  # bound from the plate's lloq
            "S2\tIL-6\t>10000\tpg/mL\t\t\tA\n",
            "S2\tIL6\tOOR >\tpg/mL\t\t\tB\n",  # plate B row without uloq...
            "S3\tIL-6\t40\tng/L\t\t2000\tB\n",  # ...takes plate B's uloq (ng/L = pg/mL)
            "S3\tIFNg\t\tpg/mL\t\t\tA\n",  # empty = missing
            "S3\tIL-10\t< 3.2\tµg/L\t\t\tA\n",  # micro sign, space after '<'
            "S3\tIL-18\t7\tug/L\t\t\tA\n",
            "S3\tIL-2\t0,75\tpg/mL\t\t\tA\n",
        ]
    )
    df = lab.parse_cytokines(write(tmp_path, body))
    df = df.set_index(["sample_id", "analyte", "plate"])
    assert (df["unit"] == "pg/mL").all()

    def get(s, a, p="A"):
        r = df.loc[(s, a, p)]
        return r["value"], r["censor"]

    assert get("S1", "IFNG") == (12.5, "none")
    assert get("S1", "CXCL9") == (2500.0, "none")
    assert df.loc[("S1", "CXCL9", "A"), "lloq"] == pytest.approx(10.0)
    assert get("S1", "IL1B") == (3.2, "left")
    assert get("S1", "TNFA") == (1.5, "left")
    assert get("S2", "TNFA") == (1.5, "left")
    assert get("S2", "IL6") == (10000.0, "right")
    assert get("S2", "IL6", "B") == (2000.0, "right")
    assert get("S3", "IL6", "B") == (40.0, "none")
    v, c = get("S3", "IFNG")
    assert math.isnan(v) and c == "none"
    assert get("S3", "IL10") == (3200.0, "left")
    assert get("S3", "IL18") == (7000.0, "none")
    assert get("S3", "IL2") == (0.75, "none")
    assert df.loc[("S1", "IFNG", "A"), "analyte_raw"] == "IFN-γ"
    assert df.loc[("S3", "IL2", "A"), "row"] == 13


@pytest.mark.parametrize(
    "line, row, column, value",
    [
        ("S1\tIFNG\tabc\tpg/mL\t\t\tA\n", 3, "value", "abc"),
        ("S1\tIFNG\t-4\tpg/mL\t\t\tA\n", 3, "value", "-4"),
        ("S1\tIFNG\t4\tIU/banana\t\t\tA\n", 3, "unit", "IU/banana"),
        ("S1\tIFNG\t4\t\t\t\tA\n", 3, "unit", ""),
        ("S1\tIFNG\t4\tpg/mL\tlow\t\tA\n", 3, "lloq", "low"),
        ("S1\tIFNG\t3,500\tpg/mL\t\t\tA\n", 3, "value", "3,500"),
        ("S1\tIFNG\t<LLOQ\tpg/mL\t\t\tC\n", 3, "value", None),
    ],
)
def test_nonsense_readings_raise_input_error(tmp_path, line, row, column, value):
    body = "S0\tIL6\t5\tpg/mL\t\t\tA\n" + line
    path = write(tmp_path, body)
    with pytest.raises(InputError) as err:
        lab.parse_cytokines(path)
    e = err.value
    assert e.file == str(path) and e.row == row and e.column == column and e.value == value
    assert str(path) in str(e)


def test_missing_column_and_empty_file(tmp_path):
    with pytest.raises(InputError, match="unit"):
        lab.parse_cytokines(write(tmp_path, "S1\tIL6\t3\n", header="sample_id\tanalyte\tvalue\n"))
    with pytest.raises(InputError, match="empty"):
        lab.parse_cytokines(write(tmp_path, "", header=""))


def test_unknown_analyte_warns(tmp_path):
    path = write(tmp_path, "S1\tsCD25\t300\tpg/mL\t\t\tA\n")
    with pytest.warns(UserWarning, match="sCD25"):
        df = lab.parse_cytokines(path)
    assert df["analyte"].tolist() == ["sCD25"]


def test_duplicates_mean_or_error(tmp_path):
    body = (
        "S1\tIL6\t10\tpg/mL\t\t\tA\n"
        "S1\tIL-6\t30\tpg/mL\t\t\tA\n"
        "S1\tIL10\t<2\tpg/mL\t\t\tA\n"
        "S1\tIL10\t<4\tpg/mL\t\t\tA\n"
        "S2\tIL6\t8\tpg/mL\t\t\tA\n"
        "S2\tIL6\t16\tpg/mL\t\t\tB\n"
    )
    path = write(tmp_path, body)
    df = lab.parse_cytokines(path, duplicates="mean").set_index(["sample_id", "analyte", "plate"])
    assert df.loc[("S1", "IL6", "A"), "value"] == 20.0
    # both below their limits: the value is below the smaller limit
    assert tuple(df.loc[("S1", "IL10", "A"), ["value", "censor"]]) == (2.0, "left")
    assert len(df.loc["S2"]) == 2  # different plates: a bridging sample, not a duplicate
    with pytest.raises(InputError) as err:
        lab.parse_cytokines(path, duplicates="error")
    assert err.value.row == 3 and "S1" in str(err.value)


# ---------------------------------------------------------------- censoring


def _values(rows):
    return pd.DataFrame(rows, columns=["sample_id", "analyte", "value", "censor", "plate"])


def test_substitution_rules_and_log10():
    df = _values(
        [
            ("a", "IL6", 3.2, "left", "A"),
            ("b", "IL6", 100.0, "none", "A"),
            ("c", "IL6", 1e4, "right", "A"),
        ]
    )
    out = cy.substitute_censored(df)
    np.testing.assert_allclose(out["value_analysed"], [3.2 / np.sqrt(2), 100, 1e4])
    np.testing.assert_allclose(out["log10_value"], [np.log10(3.2) - 0.5 * np.log10(2), 2, 4])
    assert cy.substitute_censored(df, "lloq/2")["value_analysed"][0] == pytest.approx(1.6)
    assert math.isnan(cy.substitute_censored(df, "drop")["log10_value"][0])
    with pytest.raises(ValueError):
        cy.substitute_censored(df, "lloq*3")


def test_censoring_summary_counts_and_flag():
    samples = pd.DataFrame(
        {"sample_id": list("abcdef"), "visit": ["D0", "D0", "D0", "D7", "D7", "D7"]}
    )
    df = _values(
        [
            ("a", "IL2", 1, "left", "A"),
            ("b", "IL2", 1, "left", "A"),
            ("c", "IL2", 5, "none", "A"),
            ("d", "IL2", 1, "left", "A"),
            ("e", "IL2", np.nan, "none", "A"),
            ("f", "IL2", 9, "right", "A"),
            ("a", "IL6", 5, "none", "A"),
            ("d", "IL6", 1, "left", "A"),
        ]
    )
    out = cy.censoring_summary(df, samples, ["D0", "D7"]).set_index(["analyte", "visit"])
    assert out.loc[("IL2", "D0"), ["n_measured", "n_left", "n_right"]].tolist() == [3, 2, 0]
    assert out.loc[("IL2", "D0"), "frac_left"] == pytest.approx(2 / 3)
    assert out.loc[("IL2", "D7"), ["n_measured", "n_left", "n_right", "n_missing"]].tolist() == [
        2,
        1,
        1,
        1,
    ]
    assert out.loc[("IL2", "all"), "frac_censored"] == pytest.approx(4 / 5)
    assert out.loc["IL2", "uninformative"].all()
    assert not out.loc["IL6", "uninformative"].any()  # 1 of 2 is not "most"


# ---------------------------------------------------------------- plates


def _two_plates(offset=0.3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(30):
        true = rng.normal(2, 0.5)
        plate = "P1" if i < 20 else "P2"
        rows.append(
            (f"s{i}", "IFNG", 10 ** (true + (offset if plate == "P2" else 0)), "none", plate)
        )
        if i < 5:  # bridging: also measured on plate 2
            rows.append(
                (f"s{i}", "IFNG", 10 ** (true + offset + rng.normal(0, 0.02)), "none", "P2")
            )
    return cy.substitute_censored(_values(rows))


def test_plate_offsets_from_bridging_samples():
    df = _two_plates(offset=0.3)
    eff = cy.plate_effects(df).set_index("plate")
    assert eff.loc["P1", "reference_plate"] == "P1"
    assert eff.loc["P1", "offset_log10"] == 0
    assert eff.loc["P2", "offset_log10"] == pytest.approx(0.3, abs=0.03)
    assert eff.loc["P2", "n_bridging"] == 5
    assert eff.loc["P1", "n_samples"] == 20 and eff.loc["P2", "n_samples"] == 15
    adj = cy.adjust_plates(df, eff.reset_index())
    one = cy.collapse_plates(adj)
    assert len(one) == 30 and one["sample_id"].is_unique
    # after adjustment the bridging samples agree across plates
    b = adj[adj.sample_id == "s0"]["log10_value"]
    assert abs(b.iloc[0] - b.iloc[1]) < 0.06
    raw = cy.collapse_plates(df)
    assert raw.loc[raw.sample_id == "s25", "log10_value"].item() == pytest.approx(
        one.loc[one.sample_id == "s25", "log10_value"].item() + eff.loc["P2", "offset_log10"]
    )


def test_unbridged_plate_is_left_alone():
    df = _two_plates()
    df = df[~((df.plate == "P2") & (df.sample_id.isin([f"s{i}" for i in range(5)])))]
    eff = cy.plate_effects(df)
    assert eff.set_index("plate")["offset_log10"].isna().tolist() == [False, True]
    adj = cy.adjust_plates(df, eff)
    np.testing.assert_allclose(adj["log10_value"], df["log10_value"])


# ---------------------------------------------------------------- analysis on simulated data


def simulate_cohort(seed=0, n=16, visits=("D0", "D7", "D14", "D28")):
    """Cytokine export where IFNG and CXCL9 fall only in responders; IL2 mostly below LLOQ."""
    rng = np.random.default_rng(seed)
    lines, samples, resp = [], [], []
    for p in range(n):
        responder = p < n // 2
        resp.append({"patient_id": f"P{p}", "responder": "True" if responder else "False"})
        u = rng.normal(0, 0.3)
        for i, v in enumerate(visits):
            sid = f"P{p}_{v}"
            samples.append({"sample_id": sid, "patient_id": f"P{p}", "visit": v, "day": 7 * i})
            for analyte, base, slope in (
                ("IFN-γ", 2.5, -0.35),
                ("MIG", 3.5, -0.3),
                ("IL-6", 1.8, 0.0),
                ("IL-2", 0.0, 0.0),
            ):
                logv = base + u + (slope * i if responder else 0) + rng.normal(0, 0.15)
                val = 10**logv
                text = "<2" if val < 2 else f"{val:.4f}".replace(".", ",")
                lines.append(f"{sid}\t{analyte}\t{text}\tpg/mL\t2\t\tA\n")
    return lines, pd.DataFrame(samples), pd.DataFrame(resp)


def test_pipeline_detects_planted_decline_with_right_sign(tmp_path):
    lines, samples, resp = simulate_cohort()
    df = lab.parse_cytokines(write(tmp_path, "".join(lines)))
    df = cy.substitute_censored(df)
    cens = cy.censoring_summary(df, samples, ["D0", "D7", "D14", "D28"])
    flags = cens.groupby("analyte")["uninformative"].first()
    assert flags["IL2"] and not flags["IFNG"] and not flags["IL6"]
    one = cy.collapse_plates(df)
    long = cy.model_table(one, samples, resp)
    tob = cy.tobit_visit_means(long, one, ["D0", "D7", "D14", "D28"])
    tob = tob.set_index(["analyte", "visit", "group"])
    r0 = tob.loc[("IFNG", "D0", "responder")]
    assert r0["n"] == 8 and r0["n_censored"] == 0
    assert r0["mean_tobit"] == pytest.approx(r0["mean_substituted"], abs=1e-5)
    # IL2 true mean is ~0 on log10 while the limit is log10(2): Tobit lands below the limit
    il2 = tob.loc[("IL2", "D0", "non-responder")]
    assert il2["n_censored"] >= 4 and (np.isnan(il2["mean_tobit"]) or il2["mean_tobit"] < 0.3)
    long = long[~long.feature.map(flags)]
    res = lg.fit_visit_by_response(long, visits=["D0", "D7", "D14", "D28"], n_boot=0)
    inter = res[res.term == "interaction"].set_index("feature")
    for a in ("IFNG", "CXCL9"):
        # near the permutation floor (1 / 2000): hardly a relabelling beats the observed F
        assert inter.loc[a, "pvalue"] < 0.005 and inter.loc[a, "estimate"] < 0
        assert inter.loc[a, "padj"] < 0.01
    assert inter.loc["IL6", "pvalue"] > 0.01
    d28 = res[
        (res.term == "visit_vs_baseline") & (res.group == "responder") & (res.visit == "D28")
    ].set_index("feature")
    assert d28.loc["IFNG", "estimate"] == pytest.approx(-1.05, abs=0.2)


def test_cytokine_signature_rmcorr():
    rng = np.random.default_rng(5)
    rows, scores = [], []
    for p in range(8):
        off = rng.normal(0, 2)
        for v in range(4):
            sid = f"P{p}_{v}"
            x = rng.normal()
            rows.append(
                {"sample_id": sid, "patient_id": f"P{p}", "feature": "IFNG", "value": off + x}
            )
            rows.append(
                {"sample_id": sid, "patient_id": f"P{p}", "feature": "IL6", "value": rng.normal()}
            )
            for m in ("ssgsea", "zscore"):
                scores.append(
                    {
                        "sample_id": sid,
                        "signature": "IFNG_RESPONSE",
                        "method": m,
                        "score": -off + 0.8 * x + rng.normal(0, 0.3),
                    }
                )
    model = pd.DataFrame(rows)
    out = cy.cytokine_signature_rmcorr(model, pd.DataFrame(scores))
    assert len(out) == 4
    ifng = out[(out.analyte == "IFNG") & (out.method == "ssgsea")].iloc[0]
    direct = rst.rmcorr(
        model[model.feature == "IFNG"].merge(
            pd.DataFrame(scores).query("method == 'ssgsea'"), on="sample_id"
        ),
        "value",
        "score",
    )
    assert ifng["r"] == pytest.approx(direct["r"]) and ifng["r"] > 0.8
    assert ifng["dof"] == 32 - 8 - 1
    assert out[out.analyte == "IL6"]["padj"].min() > 0.01


def test_tobit_recovers_mean_that_substitution_biases():
    rng = np.random.default_rng(21)
    y = rng.normal(1.0, 0.5, 4000)
    limit = 0.9  # about 42% below the limit
    censor = np.where(y < limit, "left", "none")
    obs = np.where(censor == "left", limit, y)
    mu, sd = cy.censored_normal_mean(obs, censor)
    assert mu == pytest.approx(1.0, abs=0.03) and sd == pytest.approx(0.5, abs=0.03)
    substituted = np.where(censor == "left", limit - 0.5 * np.log10(2), y).mean()
    assert abs(substituted - 1.0) > 0.05
    # no censoring: the MLE is the sample mean and the ML (1/n) sd
    mu0, sd0 = cy.censored_normal_mean(y[:50], np.array(["none"] * 50))
    assert mu0 == pytest.approx(y[:50].mean(), abs=1e-6)
    assert sd0 == pytest.approx(y[:50].std(), abs=1e-5)
