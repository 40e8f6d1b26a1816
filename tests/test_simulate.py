"""The embedded example is exactly the simulator's output for the committed seed."""

import filecmp

import numpy as np

from rhlh_dev.simulate import simulate_cohort, write_cohort

from .conftest import EXAMPLE


def test_example_cohort_is_reproducible(tmp_path):
    write_cohort(simulate_cohort(seed=2024), tmp_path)
    committed = sorted(p.name for p in EXAMPLE.iterdir())
    assert committed == sorted(p.name for p in tmp_path.iterdir())
    for name in committed:
        assert filecmp.cmp(EXAMPLE / name, tmp_path / name, shallow=False), name


def test_simulated_cohort_shape():
    c = simulate_cohort(n_patients=20, n_genes=3000, seed=2024)
    s = c["samples"]
    assert s["patient_id"].nunique() == 20
    assert set(s["batch"]) == {"B1", "B2"}
    assert (s["visit"] == "D0").sum() == 20  # every patient has a baseline draw
    # dropout: no draw on or after death/conditioning
    p = c["patients"].set_index("patient_id")
    end = p["death_day"].fillna(p["conditioning_day"]).fillna(10_000)
    visit_day = s["visit"].str[1:].astype(int)
    assert (visit_day.to_numpy() < end.loc[s["patient_id"]].to_numpy()).all()
    # censored readings in both lab spellings
    v = c["cytokines"]["value"]
    assert v.str.startswith("<").any() and (v == "OOR <").any()
    assert c["counts"].shape == (len(s), 3000)


def test_ifn_genes_fall_in_responders():
    c = simulate_cohort(n_patients=30, n_genes=1500, seed=7)
    s = c["samples"].reset_index(drop=True)
    var = c["var"]
    ifn = var["gene_name"].isin(c["ifn_genes"]).to_numpy()
    truth = c["truth"].set_index("patient_id")["responder_truth"]
    logc = np.log2(c["counts"] + 1)
    score = logc[:, ifn].mean(axis=1) - logc[:, ~ifn].mean(axis=1)
    resp = s["patient_id"].map(truth).to_numpy()
    d0, d28 = (s["visit"] == "D0").to_numpy(), (s["visit"] == "D28").to_numpy()
    fall_r = score[d0 & resp].mean() - score[d28 & resp].mean()
    fall_nr = score[d0 & ~resp].mean() - score[d28 & ~resp].mean()
    assert fall_r > 0.7 and fall_nr < 0.4
