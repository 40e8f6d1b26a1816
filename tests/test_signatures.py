"""Tests of rhlh.signatures (scoring, enrichment, models): GMT files, per-sample scores,
longitudinal and competitive tests."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from rhlh.contract import genesets
from rhlh.errors import InputError
from rhlh.signatures import enrichment as enr
from rhlh.signatures import models as mod
from rhlh.signatures import scoring as sco
from rhlh.tables import SCORE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
GENESETS = ROOT / "resources" / "genesets"


def _shared_genesets():
    for base in (ROOT / "shared", ROOT.parent / "shared"):
        if (base / "genesets").is_dir():
            return base / "genesets"
    return None


# --------------------------------------------------------------------------------------------
# shipped GMT files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gmt", "long"),
    [
        ("hallmark_inflammatory_v7.5.1.gmt", "hallmark_v7.5.1_subset_long.tsv"),
        ("small_signatures.gmt", "small_signatures_long.tsv"),
    ],
)
def test_shipped_gmt_equals_shared_long_table(gmt, long):
    shared = _shared_genesets()
    if shared is None:
        pytest.skip("shared/genesets not present beside the repository")
    table = pd.read_csv(shared / long, sep="\t", dtype=str)
    expected = {k: list(v) for k, v in table.groupby("source", sort=False)["target"]}
    got = genesets.read_gmt(GENESETS / gmt)
    assert got == expected  # same sets, same genes, same order
    descriptions = genesets.read_gmt_descriptions(GENESETS / gmt)
    prov = table.groupby("source").agg(lambda s: s.iloc[0]).iloc[:, -1]
    for name, text in descriptions.items():
        assert prov[name] in text


def test_shipped_gmt_sizes_and_attribution():
    hall = genesets.read_gmt(GENESETS / "hallmark_inflammatory_v7.5.1.gmt")
    sizes = {k: len(v) for k, v in hall.items()}
    assert sizes == {
        "HALLMARK_TNFA_SIGNALING_VIA_NFKB": 200,
        "HALLMARK_IL6_JAK_STAT3_SIGNALING": 87,
        "HALLMARK_INTERFERON_ALPHA_RESPONSE": 97,
        "HALLMARK_INTERFERON_GAMMA_RESPONSE": 200,
        "HALLMARK_INFLAMMATORY_RESPONSE": 200,
        "HALLMARK_IL2_STAT5_SIGNALING": 199,
    }
    small = genesets.read_gmt(GENESETS / "small_signatures.gmt")
    assert small["AYERS_IFNG_6"] == ["IFNG", "STAT1", "IDO1", "CXCL10", "CXCL9", "HLA-DRA"]
    lic = (GENESETS / "LICENSE.md").read_text()
    assert "CC BY 4.0" in lic and "Liberzon" in lic and "Ayers" in lic
    assert (GENESETS / "README.md").exists()


def test_long_table_to_gmt_round_trip(tmp_path):
    long = tmp_path / "long.tsv"
    long.write_text(
        "source\ttarget\tref\nS1\tA\tpaper 1\nS1\tB\tpaper 1\nS2\tC\tpaper 2\n"
        "S2\tD\tpaper 2\nS2\tC\tpaper 2\n"
    )
    sets = genesets.long_table_to_gmt(long, tmp_path / "x.gmt", description="{name}: {provenance}")
    assert sets == {"S1": ["A", "B"], "S2": ["C", "D"]}
    assert genesets.read_gmt(tmp_path / "x.gmt") == sets
    assert genesets.read_gmt_descriptions(tmp_path / "x.gmt") == {
        "S1": "S1: paper 1",
        "S2": "S2: paper 2",
    }


# --------------------------------------------------------------------------------------------
# GMT reader errors
# --------------------------------------------------------------------------------------------


def _write(tmp_path, text, name="sets.gmt"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_gmt_ok_with_blank_lines_and_trailing_tabs(tmp_path):
    p = _write(tmp_path, "A\tdesc\tG1\tG2\t\n\nB\thttp://x\tG3\tG3\tG4\n")
    assert genesets.read_gmt(p) == {"A": ["G1", "G2"], "B": ["G3", "G4"]}


@pytest.mark.parametrize(
    ("text", "row", "column", "words"),
    [
        ("A\tdesc\tG1\nB\tdesc\n", 2, "field 3", "at least 3"),
        ("A\tdesc\tG1\nA\tdesc\tG2\n", 2, "field 1 (name)", "duplicated gene-set name"),
        ("A\tdesc\tG1\n\nB\tdesc\tG1\t\tG2\n", 3, "field 4", "empty gene name"),
        ("A\tdesc\tG1\n\tdesc\tG2\n", 2, "field 1 (name)", "empty"),
        ("A\tdesc\t\t\n", 1, "field 3", "no genes"),
    ],
)
def test_read_gmt_malformed(tmp_path, text, row, column, words):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        genesets.read_gmt(p)
    assert err.value.file == str(p)
    assert err.value.row == row
    assert err.value.column == column
    assert words in str(err.value)


def test_read_gmt_empty_file(tmp_path):
    with pytest.raises(InputError, match="empty"):
        genesets.read_gmt(_write(tmp_path, "\n \n"))


def test_load_gene_sets_duplicate_name_across_files(tmp_path):
    a = _write(tmp_path, "S\td\tG1\tG2\n", "a.gmt")
    b = _write(tmp_path, "T\td\tG1\nS\td\tG3\n", "b.gmt")
    with pytest.raises(InputError) as err:
        genesets.load_gene_sets([a, b])
    assert err.value.file == str(b) and "a.gmt" in str(err.value)
    sets, sources = genesets.load_gene_sets([a])
    assert sets == {"S": ["G1", "G2"]} and sources == {"S": str(a)}


# --------------------------------------------------------------------------------------------
# expression matrix and gene matching
# --------------------------------------------------------------------------------------------


def test_counts_by_symbol_prefers_gene_name_and_sums_duplicates():
    df = pd.DataFrame(
        {
            "gene_id": ["ENSG1", "ENSG2", "ENSG3", "stat1"],
            "gene_name": ["IFNG", "", "IFNG", None],
            "s1": [1, 2, 3, 4],
            "s2": [10, 20, 30, 40],
        }
    )
    out = sco.counts_by_symbol(df)
    assert list(out.columns) == ["ENSG2", "IFNG", "STAT1"]
    assert out.loc["s1"].tolist() == [2, 4, 4] and out.loc["s2"].tolist() == [20, 40, 40]
    adata = ad.AnnData(
        X=df[["s1", "s2"]].to_numpy(float).T,
        obs=pd.DataFrame(index=["s1", "s2"]),
        var=pd.DataFrame(
            {"gene_id": df["gene_id"].tolist(), "gene_name": ["IFNG", "", "IFNG", ""]},
            index=df["gene_id"].tolist(),
        ),
    )
    pd.testing.assert_frame_equal(sco.counts_by_symbol(adata), out)
    # without gene_name, gene_id is the symbol
    out2 = sco.counts_by_symbol(df.drop(columns="gene_name"))
    assert list(out2.columns) == ["ENSG1", "ENSG2", "ENSG3", "STAT1"]


def test_counts_by_symbol_rejects_negative():
    df = pd.DataFrame({"gene_id": ["A", "B"], "s1": [1, -1]})
    with pytest.raises(InputError, match="non-negative"):
        sco.counts_by_symbol(df, source="counts.tsv")


# --------------------------------------------------------------------------------------------
# scores against hand computations
# --------------------------------------------------------------------------------------------


def _toy_expr():
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(40)]
    x = pd.DataFrame(rng.normal(5, 2, (3, 40)), index=["a", "b", "c"], columns=genes)
    return x, {"S1": genes[:6], "S2": genes[10:25]}


def test_ulm_equals_ols_t_of_membership():
    x, sets = _toy_expr()
    got = sco.score_ulm(x, sets)
    for s in x.index:
        for name, genes in sets.items():
            member = x.columns.isin(genes).astype(float)
            fit = sm.OLS(x.loc[s].to_numpy(), sm.add_constant(member)).fit()
            assert got.loc[s, name] == pytest.approx(fit.tvalues[1], rel=1e-10)


def test_singscore_hand_computed():
    x = pd.DataFrame([[5.0, 1.0, 3.0, 3.0, 0.0]], index=["a"], columns=list("ABCDE"))
    # ascending ranks with ties averaged: A=5, B=2, C=3.5, D=3.5, E=1
    got = sco.score_singscore(x, {"S": ["A", "C"], "T": ["E"]})
    # S: mean rank 4.25; min (2+1)/2 = 1.5, max (10-2+1)/2 = 4.5 -> 2.75/3 - 0.5
    assert got.loc["a", "S"] == pytest.approx(2.75 / 3 - 0.5)
    # T: rank 1 is the lowest possible -> -0.5
    assert got.loc["a", "T"] == pytest.approx(-0.5)


def test_aucell_hand_computed():
    x = pd.DataFrame(
        [np.arange(20, 0, -1, dtype=float)], index=["a"], columns=[f"G{i}" for i in range(20)]
    )
    # descending rank of G{i} is i + 1; top 20% -> k = 4
    got = sco.score_aucell(x, {"S": ["G0", "G2", "G10"], "T": ["G3", "G19"]}, top=0.2)
    # S: hits at ranks 1 and 3 -> (4) + (2) = 6; best for 3 genes = 4 + 3 + 2 = 9
    assert got.loc["a", "S"] == pytest.approx(6 / 9)
    # T: hit at rank 4 -> 1; best for 2 genes = 4 + 3
    assert got.loc["a", "T"] == pytest.approx(1 / 7)


def test_mean_and_mean_z_hand_computed():
    x = pd.DataFrame(
        {"A": [1.0, 2.0, 3.0], "B": [0.0, 0.0, 6.0], "C": [4.0, 4.0, 4.0]}, index=["a", "b", "c"]
    )
    mean = sco.score_mean(x, {"S": ["A", "B"]})
    assert mean["S"].tolist() == [0.5, 1.0, 4.5]
    z = sco.score_mean_z(x, {"S": ["A", "B", "C"]})
    # A z: -1, 0, 1; B: mean 2, sd sqrt(12) -> -2/sqrt12, -2/sqrt12, 4/sqrt12; C constant: out
    s12 = np.sqrt(12)
    expected = [(-1 - 2 / s12) / 2, (0 - 2 / s12) / 2, (1 + 4 / s12) / 2]
    np.testing.assert_allclose(z["S"].to_numpy(), expected, rtol=1e-12)


def test_log_cpm_per_sample():
    counts = pd.DataFrame({"A": [1, 0], "B": [3, 10]}, index=["s1", "s2"])
    out = sco.sample_log_cpm(counts)
    assert out.loc["s1", "A"] == pytest.approx(np.log2(250000 + 1))
    assert out.loc["s2", "B"] == pytest.approx(np.log2(1e6 + 1))
    with pytest.raises(InputError, match="no counts"):
        sco.sample_log_cpm(pd.DataFrame({"A": [0]}, index=["s0"]))


# --------------------------------------------------------------------------------------------
# simulated cohorts
# --------------------------------------------------------------------------------------------


def _simulate(
    n_patients=16,
    visits=("D0", "D7", "D14", "D28"),
    n_genes=400,
    ifn_fall=1.5,
    seed=7,
    prefix="P",
    batch="B1",
):
    """NB counts; the first 20 genes (IFN1..IFN20) fall after D0 in responders only."""
    rng = np.random.default_rng(seed)
    genes = [f"IFN{i + 1}" for i in range(20)] + [f"G{i}" for i in range(n_genes - 20)]
    gene_rng = np.random.default_rng(12345)  # gene means shared by every batch
    log_mu = gene_rng.normal(np.log(200), 1.2, n_genes)
    rows, mats = [], []
    for p in range(n_patients):
        pid = f"{prefix}{p:02d}"
        responder = p % 2 == 0
        peff = rng.normal(0, 0.2, n_genes)
        for v in visits:
            day = int(v[1:])
            lfc = np.zeros(n_genes)
            if responder and day > 0:
                lfc[:20] = -ifn_fall * min(day / 14, 1.0)
            mu = np.exp(log_mu + peff + lfc * np.log(2) + rng.normal(0, 0.1))
            mats.append(rng.negative_binomial(10, 10 / (10 + mu)))
            rows.append(
                {
                    "sample_id": f"{pid}_{v}",
                    "patient_id": pid,
                    "visit": v,
                    "day": day,
                    "batch": batch,
                    "responder": responder,
                }
            )
    samples = pd.DataFrame(rows)
    counts = pd.DataFrame(np.array(mats).T, columns=samples["sample_id"])
    counts.insert(0, "gene_id", [f"ENSG{i:05d}" for i in range(n_genes)])
    counts.insert(1, "gene_name", genes)
    return counts, samples, genes


def test_batch_stability_per_sample_methods():
    counts1, samples1, genes = _simulate(n_patients=6, seed=1, prefix="A", batch="B1")
    counts2, samples2, _ = _simulate(n_patients=4, seed=2, prefix="B", batch="B2")
    sets = {"IFN": genes[:20], "RANDOM": genes[100:130], "SHORT": genes[200:206]}
    s1, _ = sco.score_signatures(counts1, sets, samples1, min_genes=3)
    both = counts1.merge(counts2, on=["gene_id", "gene_name"])
    s2, _ = sco.score_signatures(both, sets, pd.concat([samples1, samples2]), min_genes=3)
    assert set(s1["method"]) == set(sco.METHODS)
    key = ["sample_id", "signature", "method"]
    m = s1.merge(s2, on=key, suffixes=("_old", "_new"))
    assert len(m) == len(s1)
    diff = (m["score_old"] - m["score_new"]).abs()
    for method, flags in sco.METHODS.items():
        d = diff[m["method"] == method]
        assert len(d) > 0
        if flags["cohort_dependent"]:
            assert d.max() > 1e-3, f"{method} is flagged cohort-dependent but did not change"
        else:
            assert d.max() < 1e-9, f"{method} changed when a batch was added"
    # the primary method is per-sample
    assert not sco.METHODS[sco.PRIMARY_METHOD]["cohort_dependent"]


def test_score_table_and_anndata():
    counts, samples, genes = _simulate(n_patients=4, n_genes=200)
    sets = {"IFN": genes[:20], "BIG": genes[20:90], "GONE": ["NOPE1", "NOPE2", genes[5]]}
    scores, report = sco.score_signatures(counts, sets, samples, min_genes=3, short_max=50)
    assert list(scores.columns) == SCORE_COLUMNS
    assert set(scores["signature"]) == {"IFN", "BIG"}
    # short-set methods only on the sets with <= short_max genes
    assert set(scores.loc[scores["signature"] == "BIG", "method"]) == {"ulm", "singscore", "aucell"}
    assert len(scores) == len(samples) * (5 + 3)
    row = scores[(scores["sample_id"] == "P01_D14")].iloc[0]
    assert row["patient_id"] == "P01" and row["visit"] == "D14" and row["day"] == 14
    adata = sco.scores_to_anndata(scores, report)
    assert adata.shape == (len(samples), 8)
    assert "IFN__ulm" in adata.var_names
    assert bool(adata.var.loc["IFN__mean_z_cohort", "cohort_dependent"])
    assert adata.var.loc["IFN__ulm", "n_genes_used"] == 20
    sub = scores[(scores["signature"] == "IFN") & (scores["method"] == "ulm")]
    sub = sub.set_index("sample_id")["score"]
    np.testing.assert_allclose(adata[sub.index, "IFN__ulm"].X.ravel(), sub.to_numpy())


def test_missing_genes_reported_and_small_sets_refused(tmp_path, caplog):
    counts, samples, genes = _simulate(n_patients=3, n_genes=100)
    gmt = _write(
        tmp_path,
        f"OK\td\t{chr(9).join(genes[:8])}\tMISSING1\n"
        f"SMALL\td\t{genes[10]}\t{genes[11]}\tMISSING2\tMISSING3\n",
        "u.gmt",
    )
    sets, sources = genesets.load_gene_sets([gmt])
    with caplog.at_level(logging.WARNING, logger="rhlh"):
        scores, report = sco.score_signatures(counts, sets, samples, min_genes=3, sources=sources)
    assert set(scores["signature"]) == {"OK"}
    rep = report.set_index("signature")
    assert rep.loc["OK", "missing_genes"] == "MISSING1"
    assert (rep.loc["OK", "n_present"], rep.loc["OK", "n_missing"]) == (8, 1)
    assert not rep.loc["SMALL", "used"]
    assert rep.loc["SMALL", "missing_genes"] == "MISSING2,MISSING3"
    assert "min_genes=3" in rep.loc["SMALL", "reason"]
    assert rep.loc["SMALL", "source"] == str(gmt)
    assert any("SMALL" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    # no set survives -> InputError
    with pytest.raises(InputError, match="min_genes=20"):
        sco.score_signatures(counts, sets, samples, min_genes=20, sources=sources)


def test_gmt_with_no_gene_in_data_names_the_file(tmp_path):
    counts, samples, genes = _simulate(n_patients=3, n_genes=100)
    good = _write(tmp_path, f"OK\td\t{chr(9).join(genes[:8])}\n", "good.gmt")
    bad = _write(tmp_path, "E1\td\tENSG_X1\tENSG_X2\nE2\td\tENSG_X3\n", "ensembl.gmt")
    sets, sources = genesets.load_gene_sets([good, bad])
    with pytest.raises(InputError) as err:
        sco.score_signatures(counts, sets, samples, sources=sources)
    assert err.value.file == str(bad)
    assert "no gene of any set in this GMT file" in str(err.value)


def test_sample_missing_from_samples_table():
    counts, samples, genes = _simulate(n_patients=2, n_genes=60)
    with pytest.raises(InputError, match="not in the samples table"):
        sco.score_signatures(counts, {"S": genes[:10]}, samples.iloc[1:])


def test_interaction_detected_in_responders_and_not_on_null():
    visits = ["D0", "D7", "D14", "D28"]
    counts, samples, genes = _simulate(n_patients=16, visits=visits, n_genes=400, seed=11)
    rng = np.random.default_rng(3)
    null_genes = rng.permutation(genes[20:])
    sets = {"IFN": genes[:20]}
    sets.update({f"NULL{k:02d}": list(null_genes[15 * k : 15 * (k + 1)]) for k in range(20)})
    scores, _ = sco.score_signatures(counts, sets, samples, methods=("ulm",))
    responders = samples.drop_duplicates("patient_id")[["patient_id", "responder"]]
    res = mod.fit_signature_models(scores, responders, visits, n_boot=0, seed=0)
    assert {"signature", "score_method", "feature", "term", "pvalue", "padj"} <= set(res.columns)
    assert (res["score_method"] == "ulm").all()
    inter = res[res["term"] == "interaction"].set_index("signature")
    assert inter["converged"].all()
    # IFN genes fall in responders only: responders' change minus non-responders' < 0
    assert inter.loc["IFN", "estimate"] < 0
    # no labelling of the patients as responder / non-responder gives a larger F
    assert inter.loc["IFN", "pvalue"] == pytest.approx(1 / 2000)
    assert inter.loc["IFN", "padj"] == pytest.approx(21 / 2000)  # the smallest of 21 sets
    # the within-group change: responders fall at D28, non-responders do not
    vis = res[(res["signature"] == "IFN") & (res["term"] == "visit_vs_baseline")]
    vis = vis.set_index(["group", "visit"])
    assert vis.loc[("responder", "D28"), "ci_high"] < 0
    assert (
        vis.loc[("non-responder", "D28"), "ci_low"]
        < 0
        < vis.loc[("non-responder", "D28"), "ci_high"]
    )
    change = mod.signature_change_from_baseline(scores, responders)
    ifn = change[(change["signature"] == "IFN") & (change["visit"] == "D28")]
    assert ifn.loc[ifn["responder"].astype(bool), "change"].mean() < -1
    d0 = change[change["visit"] == "D0"]
    np.testing.assert_allclose(d0["change"], 0.0)


def test_interaction_nominal_on_null_cohort():
    visits = ["D0", "D7", "D14", "D28"]
    counts, samples, genes = _simulate(
        n_patients=16, visits=visits, n_genes=400, seed=12, ifn_fall=0.0
    )
    rng = np.random.default_rng(4)
    null_genes = rng.permutation(genes)
    sets = {f"NULL{k:02d}": list(null_genes[15 * k : 15 * (k + 1)]) for k in range(25)}
    scores, _ = sco.score_signatures(counts, sets, samples, methods=("ulm",))
    responders = samples.drop_duplicates("patient_id")[["patient_id", "responder"]]
    res = mod.fit_signature_models(scores, responders, visits, n_boot=0, seed=0)
    inter = res[res["term"] == "interaction"]
    assert len(inter) == 25 and inter["converged"].all()
    assert (inter["pvalue"] < 0.05).sum() <= 4  # nominal: expect 1.25 of 25
    assert stats.kstest(inter["pvalue"], "uniform").pvalue > 0.01


# --------------------------------------------------------------------------------------------
# competitive gene-set tests
# --------------------------------------------------------------------------------------------


def _de_table(n=2000, seed=0, shift=None, shift_genes=()):
    rng = np.random.default_rng(seed)
    stat = rng.normal(0, 1, n)
    names = [f"G{i}" for i in range(n)]
    if shift:
        idx = [names.index(g) for g in shift_genes]
        stat[idx] += shift
    return pd.DataFrame(
        {
            "gene_id": [f"ENSG{i:05d}" for i in range(n)],
            "gene_name": names,
            "stat": stat,
            "log2FoldChange": stat / 3,
            "pvalue": 2 * stats.norm.sf(np.abs(stat)),
        }
    )


def _brute_force_es(values: pd.Series, genes):
    """Textbook weighted (p = 1) running sum walked gene by gene."""
    ranked = values.sort_values(ascending=False, kind="stable")
    hit = ranked.index.isin(genes)
    nr = np.abs(ranked[hit]).sum()
    miss_step = 1.0 / (len(ranked) - hit.sum())
    run, best = 0.0, 0.0
    for g, v in ranked.items():
        run += abs(v) / nr if g in genes else -miss_step
        if abs(run) > abs(best):
            best = run
    return best


def test_gsea_es_matches_brute_force():
    de = _de_table(n=300, seed=4, shift=0.8, shift_genes=[f"G{i}" for i in range(10)])
    values, _ = enr.de_gene_stats(de)
    sets = {
        "UP": [f"G{i}" for i in range(10)],
        "RND": [f"G{i}" for i in range(100, 250, 7)],
        "DOWN": list(values.sort_values().index[:12]),
    }
    res = enr.gsea_test(values, sets, n_perm=50, seed=1)
    for name, genes in sets.items():
        assert res.loc[name, "es"] == pytest.approx(_brute_force_es(values, genes), abs=1e-12)
    assert res.loc["DOWN", "es"] < 0 < res.loc["UP", "es"]


def test_ulm_on_de_matches_ols():
    de = _de_table(n=500, seed=5)
    values, _ = enr.de_gene_stats(de)
    genes = [f"G{i}" for i in range(0, 500, 17)]
    res = enr.ulm_test(values, {"S": genes})
    member = values.index.isin(genes).astype(float)
    fit = sm.OLS(values.to_numpy(), sm.add_constant(member)).fit()
    assert res.loc["S", "score"] == pytest.approx(fit.tvalues[1], rel=1e-10)
    assert res.loc["S", "pvalue"] == pytest.approx(fit.pvalues[1], rel=1e-8)


def _random_sets(rng, pool, n_sets, size):
    return {f"NULL{k:03d}": list(rng.choice(pool, size, replace=False)) for k in range(n_sets)}


def test_competitive_finds_planted_set_and_is_uniform_on_null():
    planted = [f"G{i}" for i in range(0, 1000, 40)]  # 25 genes
    de = _de_table(n=2000, seed=9, shift=1.0, shift_genes=planted)
    null_de = _de_table(n=2000, seed=19)
    rng = np.random.default_rng(10)
    sets = {"PLANTED": planted, **_random_sets(rng, [f"G{i}" for i in range(2000)], 200, 25)}
    res = enr.competitive_tests({"D7_vs_D0": de, "null": null_de}, sets, n_perm=1000, seed=0)
    assert list(res.columns) == enr.ENRICHMENT_COLUMNS
    for method in ("ulm", "gsea"):
        r = res[(res["method"] == method) & (res["contrast"] == "D7_vs_D0")]
        r = r.set_index("signature")
        assert r.loc["PLANTED", "score"] > 0
        assert r.loc["PLANTED", "pvalue"] < 0.005
        assert (r["n_genes"] == 25).all()
        null_p = res.loc[(res["method"] == method) & (res["contrast"] == "null"), "pvalue"]
        assert len(null_p) == 201
        assert 0.01 <= (null_p < 0.05).mean() <= 0.10
        assert stats.kstest(null_p, "uniform").pvalue > 0.01
    ulm = res[(res["method"] == "ulm") & (res["contrast"] == "D7_vs_D0")].set_index("signature")
    assert ulm.loc["PLANTED", "padj"] < 0.05
    # seeded: same call, same result
    again = enr.competitive_tests({"D7_vs_D0": de}, {"PLANTED": planted}, n_perm=1000, seed=0)
    g = res[
        (res["method"] == "gsea")
        & (res["signature"] == "PLANTED")
        & (res["contrast"] == "D7_vs_D0")
    ]
    assert again.loc[again["method"] == "gsea", "pvalue"].iloc[0] == g["pvalue"].iloc[0]


def _lrt_table(n, rng, planted_n=0, bump=8.0):
    chi = rng.chisquare(3, n)
    chi[:planted_n] += bump
    return pd.DataFrame(
        {
            "gene_id": [f"G{i}" for i in range(n)],
            "gene_name": "",
            "stat": chi,
            "log2FoldChange": np.nan,
            "pvalue": stats.chi2.sf(chi, 3),
        }
    )


def test_competitive_lrt_table_is_one_sided():
    rng = np.random.default_rng(21)
    n = 1500
    de = _lrt_table(n, rng, planted_n=30)
    null_de = _lrt_table(n, rng)
    values, directional = enr.de_gene_stats(null_de)
    assert not directional
    # the one-sided normal score is N(0, 1) under the null
    assert abs(values.mean()) < 0.1 and abs(values.std() - 1) < 0.1
    sets = {
        "PLANTED": [f"G{i}" for i in range(30)],
        **_random_sets(rng, [f"G{i}" for i in range(n)], 150, 30),
    }
    res = enr.competitive_tests({"lrt_time": de, "null": null_de}, sets, n_perm=500, seed=2)
    assert (res["alternative"] == "greater").all()
    for method in ("ulm", "gsea"):
        r = res[(res["method"] == method) & (res["contrast"] == "lrt_time")]
        r = r.set_index("signature")
        assert r.loc["PLANTED", "pvalue"] < 0.005 and r.loc["PLANTED", "score"] > 0
        null_p = res.loc[(res["method"] == method) & (res["contrast"] == "null"), "pvalue"]
        assert stats.kstest(null_p, "uniform").pvalue > 0.01
        assert (null_p < 0.05).mean() <= 0.10


def test_competitive_skips_small_sets(caplog):
    de = _de_table(n=200)
    with caplog.at_level(logging.WARNING, logger="rhlh"):
        res = enr.competitive_tests(
            {"c": de},
            {"TINY": ["G1", "G2", "XX"], "OK": [f"G{i}" for i in range(10)]},
            methods=("ulm",),
            min_genes=5,
        )
    assert res["signature"].tolist() == ["OK"]
    assert any("TINY" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match="stat"):
        enr.competitive_tests({"c.tsv": de.drop(columns="stat")}, {"OK": ["G1"]})


# --------------------------------------------------------------------------------------------
# summaries and figures
# --------------------------------------------------------------------------------------------


def test_group_means_hand_computed():
    df = pd.DataFrame(
        {"signature": "S", "group": ["a", "a", "a", "b"], "visit": "D7", "v": [1.0, 2.0, 6.0, 5.0]}
    )
    out = mod.group_means(df, "v").set_index("group")
    half = stats.t.ppf(0.975, 2) * np.std([1, 2, 6], ddof=1) / np.sqrt(3)
    assert out.loc["a", "mean"] == pytest.approx(3.0)
    assert out.loc["a", "ci_high"] == pytest.approx(3.0 + half)
    assert out.loc["b", "n"] == 1 and np.isnan(out.loc["b", "ci_low"])


def test_mean_change_table_and_figures(tmp_path):
    visits = ["D0", "D7", "D14"]
    counts, samples, genes = _simulate(n_patients=6, visits=visits, n_genes=120, seed=3)
    scores, _ = sco.score_signatures(counts, {"IFN": genes[:20]}, samples, methods=("ulm",))
    responders = samples.drop_duplicates("patient_id")[["patient_id", "responder"]]
    responders["responder"] = responders["responder"].map({True: "True", False: "False"})
    change = mod.signature_change_from_baseline(scores, responders)
    table = mod.mean_change_table(change, visits)
    assert list(table["group"].unique()) == ["responder", "non-responder"]
    assert list(table["visit"].unique()) == ["D7", "D14"]
    # responders' IFN genes fell by D14: by hand from the score table
    ulm = scores.set_index("sample_id")["score"]
    resp_ids = responders.loc[responders["responder"] == "True", "patient_id"]
    by_hand = np.mean([ulm[f"{p}_D14"] - ulm[f"{p}_D0"] for p in resp_ids])
    got = table[(table["group"] == "responder") & (table["visit"] == "D14")]["mean"].iloc[0]
    assert got == pytest.approx(by_hand) and got < 0
    from rhlh.figures import signatures as fs
    from rhlh.io import save_figure

    save_figure(fs.plot_spaghetti(scores, responders, "IFN", "ulm", visits), tmp_path / "s.png")
    save_figure(
        fs.plot_spaghetti(scores, responders, "NOPE", "ulm", visits, note="refused"),
        tmp_path / "n.png",
    )
    save_figure(fs.plot_change_heatmap(table, visits), tmp_path / "h.png")
    for name in ("s", "n", "h"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.pdf").exists()


def test_competitive_skips_a_contrast_without_statistics():
    """A contrast the DE stage could not estimate (all statistics empty) is left out with a
    warning; the other contrasts are tested as usual."""
    de = _de_table(n=300, seed=3)
    empty = de.assign(stat=np.nan, pvalue=np.nan, log2FoldChange=np.nan)
    sets = {"S": [f"G{i}" for i in range(0, 300, 10)]}
    res = enr.competitive_tests({"D7_vs_D0": de, "D56_vs_D0": empty}, sets, n_perm=100, seed=0)
    assert set(res["contrast"]) == {"D7_vs_D0"} and len(res) == 2
    # a table with statistics for too few genes is still an error, not silently skipped
    few = de.assign(stat=np.where(np.arange(300) < 2, 1.0, np.nan))
    with pytest.raises(InputError, match="fewer than 3 genes"):
        enr.competitive_tests({"D7_vs_D0": few}, sets, n_perm=100, seed=0)


def test_score_cell_types_scores_each_cell_type_on_its_own():
    counts, samples, genes = _simulate(n_patients=4, n_genes=200)
    sets = {"IFN": genes[:20], "BIG": genes[20:90]}
    x = counts[samples["sample_id"]].to_numpy().T  # samples x genes
    # two cell types: T = the counts, NK = the counts with the IFN genes quartered
    nk = x.copy()
    nk[:, :20] = nk[:, :20] // 4
    var = counts[["gene_id", "gene_name"]].set_index("gene_id", drop=False)
    var.index.name = None
    obs = pd.concat([samples.assign(cell_type="T"), samples.assign(cell_type="NK")])
    obs.index = [f"{s}|{c}" for s, c in zip(obs["sample_id"], obs["cell_type"], strict=True)]
    by_ct = ad.AnnData(X=np.vstack([x, nk]).astype(float), obs=obs, var=var)
    by_ct.layers["counts"] = by_ct.X.copy()
    excluded = samples["sample_id"].iloc[0]
    out = sco.score_cell_types(by_ct, sets, exclude_samples=[excluded], min_genes=3)
    assert list(out.columns) == ["cell_type", *SCORE_COLUMNS]
    assert set(out["cell_type"]) == {"T", "NK"}
    assert excluded not in set(out["sample_id"])
    keep = (samples["sample_id"] != excluded).to_numpy()
    for cell_type, mat in (("T", x), ("NK", nk)):
        table = counts[["gene_id", "gene_name"]].copy()
        for sid, row in zip(samples["sample_id"][keep], mat[keep], strict=True):
            table[sid] = row
        expected, _ = sco.score_signatures(table, sets, samples[keep], min_genes=3)
        got = out[out["cell_type"] == cell_type].drop(columns="cell_type")
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)
    # the quartered IFN genes score lower in NK than in T
    ulm = out[(out["signature"] == "IFN") & (out["method"] == "ulm")]
    wide = ulm.pivot(index="sample_id", columns="cell_type", values="score")
    assert (wide["NK"] < wide["T"]).all()
