"""Clinical endpoints: hand-computed cohorts, R survival reference values, consistency errors."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rhlh.clinical import endpoints, responders, safety
from rhlh.clinical import pk as pk_lib
from rhlh.contract import timeline
from rhlh.errors import InputError
from rhlh.figures import clinical as clinical_figures
from rhlh.survival import aalen_johansen, clopper_pearson, kaplan_meier, median_time

NAN = np.nan
FILES = {"patients": "patients.tsv", "responses": "responses.tsv"}


# --- exact binomial interval ------------------------------------------------------------------


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086028447398, abs=1e-9)
    assert hi == pytest.approx(0.812913971552602, abs=1e-9)
    # closed forms at the edges
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)), abs=1e-12)
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** (1 / 10), 1.0), abs=1e-12)
    assert np.isnan(clopper_pearson(0, 0)[0])


@pytest.mark.parametrize("x,n", [(1, 6), (3, 20), (14, 20), (19, 20)])
def test_clopper_pearson_defining_equations(x, n):
    # the bounds solve P(X >= x | lo) = 0.025 and P(X <= x | hi) = 0.025
    lo, hi = clopper_pearson(x, n)
    assert stats.binom.sf(x - 1, n, lo) == pytest.approx(0.025, abs=1e-9)
    assert stats.binom.cdf(x, n, hi) == pytest.approx(0.025, abs=1e-9)


# --- Kaplan-Meier and Aalen-Johansen --------------------------------------------------------


def test_kaplan_meier_hand_and_r():
    km = kaplan_meier([1, 2, 2, 3, 4, 5, 5, 6], [1, 1, 0, 1, 0, 1, 1, 0])
    assert km["time"].tolist() == [1, 2, 3, 4, 5, 6]
    assert km["n_at_risk"].tolist() == [8, 7, 5, 4, 3, 1]
    # 7/8, *6/7, *4/5, (censored), *1/3, (censored)
    assert km["survival"].to_numpy() == pytest.approx([7 / 8, 0.75, 0.6, 0.6, 0.2, 0.2], abs=1e-12)
    greenwood = 1 / 56 + 1 / 42 + 1 / 20 + 2 / 3
    assert km["std_err"].iloc[4] == pytest.approx(0.2 * np.sqrt(greenwood), abs=1e-12)
    # R 4.x: survfit(Surv(t, e) ~ 1, conf.type = "log-log")
    assert km["ci_low"].to_numpy() == pytest.approx(
        [
            0.38700001403203,
            0.31480711370552,
            0.19549586608500,
            0.19549586608500,
            0.00958379384876,
            0.00958379384876,
        ],
        abs=1e-9,
    )
    assert km["ci_high"].to_numpy() == pytest.approx(
        [
            0.981392965879,
            0.930898317091,
            0.852254345762,
            0.852254345762,
            0.572736485552,
            0.572736485552,
        ],
        abs=1e-9,
    )
    assert median_time(km) == 5


def test_aalen_johansen_hand_and_r():
    # status 1 = event of interest, 2 = competing, 0 = censored
    cif = aalen_johansen([1, 2, 3, 3, 4, 5, 6], [1, 2, 1, 0, 2, 1, 0], cause=1)
    assert cif["cuminc"].to_numpy() == pytest.approx(
        [1 / 7, 1 / 7, 2 / 7, 2 / 7, 10 / 21, 10 / 21], abs=1e-12
    )
    comp = aalen_johansen([1, 2, 3, 3, 4, 5, 6], [1, 2, 1, 0, 2, 1, 0], cause=2)
    # the two incidences and overall survival add up to one
    assert (cif["cuminc"] + comp["cuminc"] + cif["survival"]).to_numpy() == pytest.approx(
        np.ones(6), abs=1e-12
    )
    # R: survfit(Surv(t, factor(s, 0:2)) ~ 1)$pstate, state 1
    assert comp["cuminc"].iloc[-1] == pytest.approx(0.333333333333, abs=1e-9)


def test_aalen_johansen_without_competing_is_one_minus_km():
    rng = np.random.default_rng(1)
    t = rng.integers(1, 30, 40).astype(float)
    e = rng.random(40) < 0.6
    km = kaplan_meier(t, e)
    cif = aalen_johansen(t, e.astype(int))
    assert cif["cuminc"].to_numpy() == pytest.approx(1 - km["survival"].to_numpy(), abs=1e-12)


# --- a hand cohort ----------------------------------------------------------------------------


def cohort():
    """Six patients; index = file row numbers as rhlh.io.read_table gives them."""
    p = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4", "P5", "P6"],
            "last_followup_day": [10, 100, 80, 30, 70, 30],
            "hsct_day": [NAN, 40, NAN, NAN, 50, NAN],
            "death_day": [10, NAN, NAN, NAN, 70, 30],
            "conditioning_day": [NAN, 33, NAN, NAN, 43, NAN],
            "reactivation_day": [NAN, NAN, NAN, NAN, 35, NAN],
        },
        index=range(2, 8),
    )
    r = [
        ("P1", "D7", 7, "NR"),
        ("P2", "D7", 7, "PR"),
        ("P2", "D14", 14, "PR"),
        ("P2", "D21", 21, "CR"),
        ("P2", "D28", 28, "CR"),
        ("P2", "PRECOND1", 32, "CR"),
        ("P3", "D7", 7, "NR"),
        ("P3", "D14", 14, "PR"),
        ("P3", "D21", 21, "PR"),
        ("P3", "D28", 28, "NE"),
        ("P3", "W8", 56, "PR"),
        ("P4", "D7", 7, "PR"),
        ("P4", "D14", 14, "NR"),
        ("P4", "D21", 21, "NR"),
        ("P5", "D7", 7, "NR"),
        ("P5", "D14", 14, "NR"),
        ("P5", "D21", 21, "PR"),
        ("P5", "D28", 28, "PR"),
        ("P5", "PRECOND1", 42, "PR"),
        ("P6", "D7", 7, "NR"),
        ("P6", "D14", 14, "NR"),
        ("P6", "D21", 21, "NR"),
    ]
    r = pd.DataFrame(r, columns=["patient_id", "visit", "day", "response"])
    r.index = range(2, 2 + len(r))
    r["day"] = r["day"].astype(float)
    return p, r


def test_hand_cohort_is_consistent():
    p, r = cohort()
    assert timeline.check_clinical_consistency(p, r, FILES) is None
    # nullable integers as the validator delivers them work too
    p2 = p.copy()
    for col in ("hsct_day", "death_day", "conditioning_day", "reactivation_day"):
        p2[col] = p2[col].astype("Int64")
    timeline.check_clinical_consistency(p2, r, FILES)


def test_primary_endpoint():
    p, _ = cohort()
    st = responders.primary_endpoint_status(p)
    assert st["status"].tolist() == [
        "died",
        "alive at HSCT",
        "alive at week 8",
        "lost to follow-up",
        "alive at HSCT",
        "died",
    ]
    itt = endpoints.primary_endpoint(p)
    assert (itt["x"], itt["n"], itt["n_lost"]) == (3, 6, 1)
    assert (itt["ci_low"], itt["ci_high"]) == pytest.approx(clopper_pearson(3, 6), abs=1e-12)
    assert (itt["ci_low"], itt["ci_high"]) == pytest.approx((0.118117248, 0.881882752), abs=1e-8)
    exc = endpoints.primary_endpoint(p, missing="exclude")
    assert (exc["x"], exc["n"]) == (3, 5)


def test_survival_until_hsct():
    p, _ = cohort()
    km, risk = endpoints.survival_until_hsct(p)
    # deaths day 10 (6 at risk) and day 30 (5 at risk; P4 censored the same day)
    assert km["time"].tolist() == [10, 30, 40, 50, 56]
    assert km["survival"].to_numpy() == pytest.approx(
        [5 / 6, 2 / 3, 2 / 3, 2 / 3, 2 / 3], abs=1e-12
    )
    assert km["n_censored"].tolist() == [0, 1, 1, 1, 1]
    assert risk["n_at_risk"].tolist() == [6, 6, 5, 5, 5, 3, 2, 2, 1]


def test_response_rates_policies():
    p, r = cohort()
    rates = endpoints.response_rates(p, r).set_index(["visit", "outcome"])
    d28 = rates.loc[("D28", "PR_or_better")]
    assert (d28["x"], d28["n"]) == (2, 6)
    assert (d28["n_assessed"], d28["n_ne"], d28["n_dead"], d28["n_missing"]) == (2, 1, 1, 2)
    assert (rates.loc[("D28", "CR"), "x"], rates.loc[("D28", "CR"), "n"]) == (1, 6)
    assert (d28["ci_low"], d28["ci_high"]) == pytest.approx(clopper_pearson(2, 6), abs=1e-12)
    w8 = rates.loc[("W8", "PR_or_better")]
    assert (w8["x"], w8["n"], w8["n_hsct"], w8["n_dead"], w8["n_missing"]) == (1, 6, 2, 2, 1)
    pre = rates.loc[("PRECOND1", "CR")]
    # P3 and P4 have no conditioning: not due, never in the denominator
    assert (pre["x"], pre["n"], pre["n_not_due"], pre["n_dead"]) == (1, 4, 2, 2)
    excl = endpoints.response_rates(
        p, r, policy={"dead": "exclude", "missing": "exclude", "ne": "exclude", "hsct": "exclude"}
    )
    excl = excl.set_index(["visit", "outcome"])
    assert (excl.loc[("D28", "PR_or_better"), "x"], excl.loc[("D28", "PR_or_better"), "n"]) == (
        2,
        2,
    )
    assert excl.loc[("W8", "PR_or_better"), "n"] == 1
    assert excl.loc[("PRECOND1", "PR_or_better"), "n"] == 2
    with pytest.raises(ValueError):
        endpoints.response_rates(p, r, policy={"dead": "ignore"})


def test_define_responders():
    p, r = cohort()
    d = responders.define_responders(p, r)  # default cr_pr_d28
    assert d.columns.tolist() == ["patient_id", "responder", "response_class", "reason"]
    assert d["responder"].tolist() == [False, True, False, False, True, False]
    assert d["response_class"].tolist() == ["NE", "CR", "NE", "NE", "PR", "NE"]
    assert "died on day 10" in d.loc[0, "reason"] and "ITT" in d.loc[0, "reason"]
    assert "no D28 assessment" in d.loc[3, "reason"]
    assert d["responder"].dtype == bool
    assert responders.define_responders(p, r, "cr_d28")["responder"].tolist() == [
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    best = responders.define_responders(p, r, "best_by_w8")
    assert best["responder"].tolist() == [False, True, True, True, True, False]
    assert best["response_class"].tolist() == ["NR", "CR", "PR", "PR", "PR", "NR"]
    alive = responders.define_responders(p, r, "alive_at_hsct")
    assert alive["responder"].tolist() == [False, True, True, False, True, False]
    with pytest.raises(ValueError, match="unknown responder definition"):
        responders.define_responders(p, r, "cr_at_w12")


def test_time_to_first_pr_cumulative_incidence():
    p, r = cohort()
    per, cif = endpoints.time_to_response(p, r, "PR")
    assert per["time"].tolist() == [10, 7, 14, 7, 21, 30]
    assert per["status"].tolist() == [2, 1, 1, 1, 1, 2]
    # by hand: 2/6 at day 7; S = 1/2 after the day-10 death; +1/2*1/3; +1/3*1/2
    assert cif.set_index("time")["cuminc"].to_dict() == pytest.approx(
        {7: 1 / 3, 10: 1 / 3, 14: 1 / 2, 21: 2 / 3, 30: 2 / 3}, abs=1e-12
    )
    assert median_time(cif, "cuminc") == 14


def test_time_to_first_cr_cumulative_incidence():
    p, r = cohort()
    per, cif = endpoints.time_to_response(p, r, "CR", competing=("death",))
    assert per["status"].tolist() == [2, 1, 0, 0, 0, 2]
    # P5 censored at HSCT (day 50) although dead on day 70
    assert per["time"].tolist() == [10, 21, 80, 30, 50, 30]
    assert cif["cuminc"].iloc[-1] == pytest.approx(1 / 6, abs=1e-12)
    assert np.isnan(median_time(cif, "cuminc"))
    # HSCT as a competing event instead of censoring
    per2, _ = endpoints.time_to_response(p, r, "CR", competing=("death", "hsct"))
    assert per2.loc[4, "status"] == 3


def test_reactivation():
    p, r = cohort()
    per, cif = endpoints.reactivation(p, r)
    assert per["patient_id"].tolist() == ["P2", "P3", "P4", "P5"]
    assert per["time"].tolist() == [33, 66, 23, 14]
    assert per["status"].tolist() == [3, 0, 0, 1]
    assert cif["cuminc"].iloc[-1] == pytest.approx(1 / 4, abs=1e-12)


# --- consistency errors -------------------------------------------------------------------------


def _broken(kind):
    p, r = cohort()
    if kind == "hsct_before_d0":
        p.loc[3, "hsct_day"] = -2
    elif kind == "death_before_hsct":
        p.loc[6, "death_day"] = 45
        p.loc[6, "last_followup_day"] = 45
    elif kind == "response_after_death":
        r.loc[len(r) + 2] = ["P1", "D14", 14.0, "PR"]
    elif kind == "followup_after_death":
        p.loc[2, "last_followup_day"] = 20
    elif kind == "conditioning_after_hsct":
        p.loc[3, "conditioning_day"] = 41
    elif kind == "reactivation_without_response":
        p.loc[7, "reactivation_day"] = 20
    elif kind == "bad_response":
        r.loc[4, "response"] = "PD"
    elif kind == "duplicate_visit":
        r.loc[5, "visit"] = "D7"
    elif kind == "unknown_patient":
        r.loc[9, "patient_id"] = "P9"
    elif kind == "response_after_followup":
        r.loc[len(r) + 2] = ["P4", "D28", 31.0, "PR"]
    return p, r


@pytest.mark.parametrize(
    "kind,file,row,column",
    [
        ("hsct_before_d0", "patients.tsv", 3, "hsct_day"),
        ("death_before_hsct", "patients.tsv", 6, "hsct_day"),
        ("response_after_death", "responses.tsv", 24, "day"),
        ("followup_after_death", "patients.tsv", 2, "last_followup_day"),
        ("conditioning_after_hsct", "patients.tsv", 3, "conditioning_day"),
        ("reactivation_without_response", "patients.tsv", 7, "reactivation_day"),
        ("bad_response", "responses.tsv", 4, "response"),
        ("duplicate_visit", "responses.tsv", 5, "visit"),
        ("unknown_patient", "responses.tsv", 9, "patient_id"),
        ("response_after_followup", "responses.tsv", 24, "day"),
    ],
)
def test_consistency_errors(kind, file, row, column):
    p, r = _broken(kind)
    with pytest.raises(InputError) as err:
        timeline.check_clinical_consistency(p, r, FILES)
    assert (err.value.file, err.value.row, err.value.column) == (file, row, column)
    assert file in str(err.value) and f"row {row}" in str(err.value)


# --- safety and PK ------------------------------------------------------------------------------


def events():
    return pd.DataFrame(
        [
            ("P1", 3, "adverse_event", "neutropenia", 2, "new"),
            ("P1", 8, "adverse_event", "neutropenia", 4, "worsening"),
            ("P2", 5, "adverse_event", "neutropenia", 1, "new"),
            ("P3", 9, "adverse_event", "rash", 3, "new"),
            ("P2", 12, "viral_infection", "CMV", 2, "new"),
            ("P2", 19, "viral_infection", "CMV", 3, "worsening"),
            ("P4", 4, "viral_infection", "EBV", 1, "new"),
        ],
        columns=["patient_id", "day", "category", "term", "grade", "status"],
    )


def test_adverse_events_by_term_and_worst_grade():
    ae = safety.adverse_events(events(), 6).set_index("term")
    neu = ae.loc["neutropenia"]
    assert (neu["n_events"], neu["n_patients"]) == (3, 2)
    assert neu["pct_patients"] == pytest.approx(100 * 2 / 6)
    assert [neu[f"grade_{k}"] for k in range(1, 6)] == [1, 0, 0, 1, 0]
    assert neu["n_patients_grade3plus"] == 1
    assert ae.loc["CMV", "n_patients"] == 1 and ae.loc["CMV", "grade_3"] == 1
    assert safety.patients_with_grade(events(), 3) == 2
    assert safety.adverse_events(None, 6).empty


def test_viral_infections_per_patient():
    p, _ = cohort()
    vi = safety.viral_infections(events(), p).set_index("patient_id")
    assert len(vi) == 6
    assert (vi.loc["P2", "n_new"], vi.loc["P2", "n_worsening"], vi.loc["P2", "worst_grade"]) == (
        1,
        1,
        3,
    )
    assert vi.loc["P4", "terms"] == "EBV" and vi.loc["P1", "n_new"] == 0


def pk():
    return pd.DataFrame(
        [
            ("P1", 0, "D0", "plasma", "OOR <", "ng/mL", 0.5),
            ("P1", 7, "D7", "plasma", "25.0", "ng/mL", 0.5),
            ("P1", 7, "D7", "csf", "<0.5", "ng/mL", 0.5),
            ("P2", 7, "D7", "plasma", "<LLOQ", "ng/mL", 1.0),
            ("P2", 7, "D7", "csf", "2.0", "ng/mL", 0.5),
            ("P3", 7, "D7", "plasma", "40", "ng/mL", 0.5),
            ("P3", 7, "D7", "csf", "1.0", "ng/mL", 0.5),
            ("P3", 14, "D14", "plasma", ">100", "ng/mL", 0.5),
        ],
        columns=["patient_id", "day", "visit", "matrix", "concentration", "unit", "lloq"],
    )


def test_pk_censoring_substitution_and_ratio():
    v = pk_lib.pk_values(pk())
    assert v["censor"].tolist() == ["<", "", "<", "<", "", "", "", ">"]
    assert v["value"].tolist() == [0.25, 25.0, 0.25, 0.5, 2.0, 40.0, 1.0, 100.0]
    assert pk_lib.pk_values(pk(), "lloq")["value"].iloc[3] == 1.0
    assert np.isnan(pk_lib.pk_values(pk(), "nan")["value"].iloc[0])
    s = pk_lib.pk_summary(v, visits=["D0", "D7", "D14"]).set_index(["matrix", "visit"])
    d7 = s.loc[("plasma", "D7")]
    assert (d7["n"], d7["n_below_lloq"], d7["median"]) == (3, 1, 25.0)
    assert d7["geo_mean"] == pytest.approx(500 ** (1 / 3), abs=1e-12)
    ratio = pk_lib.csf_plasma_ratio(v).set_index("patient_id")
    assert ratio.loc["P1", "ratio"] == pytest.approx(0.01)
    assert np.isnan(ratio.loc["P2", "ratio"])
    assert ratio.loc["P3", "ratio"] == pytest.approx(0.025)
    with pytest.raises(ValueError):
        pk_lib.pk_values(pk().assign(concentration="abc"))


# --- endpoints table and figures ----------------------------------------------------------------


def test_endpoints_table():
    p, r = cohort()
    km, _ = endpoints.survival_until_hsct(p)
    rates = endpoints.response_rates(p, r)
    per = {k: endpoints.time_to_response(p, r, k)[0] for k in ("PR", "CR")}
    ttr = {k: endpoints.time_to_response(p, r, k)[1] for k in ("PR", "CR")}
    react = endpoints.reactivation(p, r)
    # P4: PR at D7, NR at D14 and D21, no reactivation recorded: a loss of response
    assert react[0].set_index("patient_id")["loss_of_response_day"].to_dict() == pytest.approx(
        {"P2": NAN, "P3": NAN, "P4": 14.0, "P5": NAN}, nan_ok=True
    )
    assert endpoints.preconditioning_day(p) == 37  # median of 33 and 43, minus one
    hz = dict(endpoints.FIXED_HORIZONS, precond=37.0)
    horizons = pd.concat(
        [
            endpoints.cuminc_horizons(ttr, per, hz, "death and HSCT"),
            endpoints.cuminc_horizons(
                {"reactivation": react[1]}, {"reactivation": react[0]}, hz, "death and HSCT"
            ),
        ]
    )
    h = horizons.set_index(["outcome", "horizon"])
    assert h.loc[("PR", "D28"), "cuminc"] == pytest.approx(2 / 3)
    assert h.loc[("PR", "D28"), "n_event"] == 4
    assert h.loc[("PR", "end of follow-up"), "day"] == 30
    # CR with HSCT competing: P5's HSCT at day 50 ends follow-up (no censoring left after)
    assert h.loc[("CR", "W8"), "cuminc"] == pytest.approx(1 / 6)
    tab = endpoints.endpoints_table(
        primary=endpoints.primary_endpoint(p),
        km=km,
        rates=rates,
        ttr=ttr,
        react=react,
        safety=(2, 6),
        horizons=horizons,
    )
    assert tab.columns.tolist() == ["endpoint", "estimate", "ci_low", "ci_high", "n", "note"]
    e = tab.set_index("endpoint")
    assert e.loc["alive at HSCT or week 8 (primary)", "estimate"] == 0.5
    assert e.loc["KM survival until HSCT at day 56", "estimate"] == pytest.approx(2 / 3)
    assert e.loc["PR or better rate at D28", "estimate"] == pytest.approx(2 / 6)
    assert e.loc["median days to first PR", "estimate"] == 14
    d28 = e.loc["cumulative incidence of first PR by D28 (day 28)"]
    assert d28["estimate"] == pytest.approx(2 / 3)
    assert d28["ci_low"] < 2 / 3 < d28["ci_high"]
    # with 6 patients the lower band never reaches 0.5: upper limit not reached
    assert e.loc["median days to first PR", ["ci_low", "ci_high"]].tolist() == pytest.approx(
        [7, NAN], nan_ok=True
    )
    lost = e.loc["responders with loss of response (NR after PR/CR) without recorded reactivation"]
    assert (lost["estimate"], lost["n"]) == (0.25, 4)
    assert e.loc["patients with an adverse event of grade >= 3, whole follow-up", "estimate"] == (
        pytest.approx(1 / 3)
    )


def test_figures_draw():
    p, r = cohort()
    km, risk = endpoints.survival_until_hsct(p)
    figs = [
        clinical_figures.plot_km(km, risk),
        clinical_figures.plot_response_rates(endpoints.response_rates(p, r)),
        clinical_figures.plot_cuminc({"PR": endpoints.time_to_response(p, r)[1]}),
        clinical_figures.plot_pk(pk_lib.pk_values(pk()), "plasma", ["D0", "D7", "D14"]),
    ]
    import matplotlib.pyplot as plt

    for f in figs:
        assert len(f.axes) == 1 and f.axes[0].has_data()
        plt.close(f)


# --- cumulative incidence variance, CI, horizons and median CI vs R cmprsk --------------------

CUMINC = Path(__file__).parent / "fixtures" / "cuminc"


def _fixture(name):
    return pd.read_csv(CUMINC / name, sep="\t")


def test_cuminc_fixture_inputs_are_the_example_cohort():
    # the times R was given are the ones the library derives from example/cohort today
    from rhlh.contract.timeline import PATIENT_DAY_COLUMNS
    from rhlh.tables import read_validated

    ex = Path(__file__).parents[1] / "example" / "cohort"
    pats = read_validated(ex / "patients.tsv", PATIENT_DAY_COLUMNS)
    resp = read_validated(ex / "responses.tsv", ["day"])
    times = _fixture("times.tsv")
    for level, name in (("PR", "first_pr"), ("CR", "first_cr")):
        per, _ = endpoints.time_to_response(pats, resp, level)
        ref = times[(times["dataset"] == "example") & (times["outcome"] == name)]
        assert per["time"].tolist() == ref["time"].tolist()
        assert per["status"].tolist() == ref["status"].tolist()
    per, _ = endpoints.reactivation(pats, resp)
    ref = times[times["outcome"] == "reactivation"]
    assert per["time"].tolist() == ref["time"].tolist()
    assert per["status"].tolist() == ref["status"].tolist()


@pytest.mark.parametrize(
    "dataset,outcome",
    [
        ("example", "first_pr"),
        ("example", "first_cr"),
        ("example", "reactivation"),
        ("hand", "cause1"),
    ],
)
def test_cuminc_variance_ci_horizons_median_match_cmprsk(dataset, outcome):
    from rhlh.survival import cuminc_at, median_ci

    def pick(t):
        return t[(t["dataset"] == dataset) & (t["outcome"] == outcome)]

    g = pick(_fixture("times.tsv"))
    cif = aalen_johansen(g["time"], g["status"])
    ref = pick(_fixture("curves.tsv"))
    assert cif["time"].tolist() == ref["time"].tolist()
    for ours, theirs in (
        ("cuminc", "est"),
        ("variance", "var"),
        ("ci_low", "ci_low"),
        ("ci_high", "ci_high"),
    ):
        a, b = cif[ours].to_numpy(dtype=float), ref[theirs].to_numpy(dtype=float)
        assert (np.isnan(a) == np.isnan(b)).all(), ours
        assert a[~np.isnan(a)] == pytest.approx(b[~np.isnan(b)], abs=1e-9, rel=1e-9), ours
    for h in pick(_fixture("horizons.tsv")).itertuples(index=False):
        got = cuminc_at(cif, h.horizon)
        if np.isnan(h.est):  # after the last time cmprsk gives NA
            assert h.horizon > cif["time"].max()
            final = cif["n_censored"].iloc[-1] == 0
            assert np.isnan(got["cuminc"]) != final
            continue
        for ours, theirs in (
            ("cuminc", h.est),
            ("variance", h.var),
            ("ci_low", h.ci_low),
            ("ci_high", h.ci_high),
        ):
            assert got[ours] == pytest.approx(theirs, abs=1e-9, nan_ok=True), ours
    m = pick(_fixture("medians.tsv")).iloc[0]
    assert median_ci(cif) == pytest.approx(
        (m["median"], m["ci_low"], m["ci_high"]), abs=1e-12, nan_ok=True
    )


def test_cuminc_variance_by_hand():
    # 4 subjects, events of interest at 1 and 3, competing at 2, censored at 4:
    # F = 1/4 at 1; S = 1/2 after 2; F = 1/4 + 1/2 * 1/2 = 1/2 at 3
    cif = aalen_johansen([1, 2, 3, 4], [1, 2, 1, 0])
    assert cif["cuminc"].tolist() == pytest.approx([0.25, 0.25, 0.5, 0.5])
    # Gray's sums at day 1 (n = 4, S after = 3/4): a = b = c = (4/3)^2 / 16 = 1/9,
    # V = a + F^2 c - 2 F b = (1/9)(1 + 1/16 - 1/2) = 1/16
    v = cif["variance"].to_numpy()
    assert v[0] == pytest.approx(1 / 16, abs=1e-12)
    assert v[1] == v[0]  # cmprsk updates the variance at event-of-interest times only
    # cmprsk 2.2-11: timepoints(cuminc(c(1, 2, 3, 4), c(1, 2, 1, 0)), 1:4)$var["1 1", ]
    assert v == pytest.approx([0.0625, 0.0625, 0.10590278, 0.10590278], abs=1e-8)


# --- safety window ----------------------------------------------------------------------------

WINDOW = {"start_day": 0, "end": "day_before_conditioning"}


def test_treatment_windows_protocol_default():
    p, _ = cohort()
    w = safety.treatment_windows(p, WINDOW).set_index("patient_id")
    # P2 conditioning day 33 -> 32; P5 day 43 -> 42; no conditioning: last follow-up / death
    assert w["window_end"].to_dict() == {
        "P1": 10,
        "P2": 32,
        "P3": 80,
        "P4": 30,
        "P5": 42,
        "P6": 30,
    }
    assert (w["window_start"] == 0).all()
    hsct = safety.treatment_windows(p, {"start_day": 0, "end": "hsct"}).set_index("patient_id")
    assert (hsct.loc["P2", "window_end"], hsct.loc["P5", "window_end"]) == (40, 50)
    fu = safety.treatment_windows(p, {"start_day": 0, "end": "end_of_followup"})
    assert fu.set_index("patient_id").loc["P5", "window_end"] == 70
    with pytest.raises(ValueError):
        safety.treatment_windows(p, {"start_day": 0, "end": "week8"})


def test_events_split_by_window_and_viral_counts():
    p, _ = cohort()
    ev = pd.concat(
        [
            events(),
            pd.DataFrame(
                [
                    ("P2", 33, "adverse_event", "mucositis", 3, "new"),  # conditioning day
                    ("P5", 44, "viral_infection", "BK", 2, "new"),
                    ("P3", -2, "adverse_event", "rash", 1, "new"),
                ],
                columns=events().columns,
            ),
        ],
        ignore_index=True,
    )
    inside, outside = safety.split_by_window(ev, p, WINDOW)
    assert len(inside) == 7 and len(outside) == 3
    assert outside.set_index("term")["window"].to_dict() == {
        "mucositis": "after window",
        "BK": "after window",
        "rash": "before window",
    }
    assert safety.patients_with_grade(inside, 3) == 2
    assert safety.patients_with_grade(ev, 3) == 3
    assert safety.patients_with_viral_infection(inside) == 2
    assert safety.patients_with_viral_infection(ev) == 3
    tab = endpoints.endpoints_table(
        safety={
            "window": "on treatment",
            "grade3": 2,
            "grade3_any": 3,
            "viral": 2,
            "viral_any": 3,
            "n_outside": 3,
            "n": 6,
        }
    ).set_index("endpoint")
    vi = tab.loc["patients with a viral infection (new or worsening), on treatment"]
    # R: binom.test(2, 6)$conf.int
    assert (vi["estimate"], vi["ci_low"], vi["ci_high"]) == pytest.approx(
        (1 / 3, 0.0432718682927, 0.7772219044965), abs=1e-11
    )
    assert "3 events outside the window" in vi["note"]


# --- patient flow and swimmer plot ------------------------------------------------------------


def test_patient_flow():
    from rhlh.clinical.flow import patient_flow

    p, r = cohort()
    f = patient_flow(p, r).set_index(["step", "visit"])
    assert f.loc[("enrolled", ""), "n"] == 6
    d28 = f.loc[("assessed", "D28")]
    # P2, P5 assessed, P3 NE; P1 dead; P4, P6 no D28 assessment
    assert (d28["n"], d28["n_ne"], d28["n_dead_before"], d28["n_missing"]) == (3, 1, 1, 2)
    w8 = f.loc[("assessed", "W8")]
    assert (w8["n"], w8["n_hsct_before"], w8["n_dead_before"]) == (1, 2, 2)
    assert f.loc[("HSCT", ""), "n"] == 2 and f.loc[("conditioning", ""), "n"] == 2
    # P1, P6 died without HSCT; P5 died on day 70 after the graft on day 50
    assert f.loc[("died before HSCT", ""), "n"] == 2
    assert f.loc[("died after HSCT", ""), "n"] == 1
    assert f.loc[("lost to follow-up", ""), "n"] == 1  # P4, last seen day 30
    simon = pd.DataFrame(
        [("optimal", "alive_at_hsct", "stage 1", 3, 3, 1, 1, "stop for futility")],
        columns=[
            "design",
            "success_definition",
            "stage",
            "n_planned",
            "n_observed",
            "successes",
            "threshold",
            "decision",
        ],
    )
    f2 = patient_flow(p, r, simon=simon)
    assert f2["step"].tolist()[:2] == ["enrolled", "Simon stage-1 readout"]
    assert f2.loc[1, "note"].endswith("stop for futility")


def test_swimmer_and_flow_figures_draw():
    import matplotlib.pyplot as plt

    from rhlh.clinical.flow import patient_flow

    p, r = cohort()
    samples = pd.DataFrame({"patient_id": ["P1", "P2", "P2"], "day": [0, 0, 7]})
    fig = clinical_figures.plot_swimmer(p, r, samples)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "P2" and labels[0] == "P1"  # longest follow-up on top
    assert len(ax.patches) >= 6
    plt.close(fig)
    fig = clinical_figures.plot_patient_flow(patient_flow(p, r))
    assert any("n = 6" in t.get_text() for t in fig.axes[0].texts)
    plt.close(fig)


def test_pk_summary_below_lloq_is_not_a_substituted_median():
    v = pk_lib.pk_values(pk())
    s = pk_lib.pk_summary(v, visits=["D0", "D7", "D14"]).set_index(["matrix", "visit"])
    d0 = s.loc[("plasma", "D0")]  # the one reading is below LLOQ
    assert np.isnan(d0["median"]) and np.isnan(d0["geo_mean"]) and np.isnan(d0["min"])
    assert np.isnan(d0["max"])
    assert d0["summary"] == "< LLOQ (1/1 below 0.5)"
    csf = s.loc[("csf", "D7")]  # 1 of 3 below: median observed, minimum censored
    assert csf["median"] == 1.0 and np.isnan(csf["min"]) and np.isnan(csf["q1"])
    assert csf["summary"].endswith("1/3 below LLOQ")
    # 2 of 4 below: the median interpolates with a censored reading, left empty
    half = pd.DataFrame(
        [
            (f"P{i}", 7, "D7", "plasma", c, "ng/mL", 0.5)
            for i, c in enumerate(["<0.5", "<0.5", "3", "5"])
        ],
        columns=pk().columns,
    )
    h = pk_lib.pk_summary(pk_lib.pk_values(half)).iloc[0]
    assert np.isnan(h["median"]) and h["q3"] == pytest.approx(3.5) and h["max"] == 5
    assert "below LLOQ" in h["summary"] and not h["summary"].startswith("<")


def test_rate_rule_w8_or_preconditioning():
    p, r = cohort()
    assert endpoints.rate_visits(["D28", "W8", "PRECOND1"]) == [
        "D28",
        "W8",
        "W8 or PRECOND1",
        "PRECOND1",
    ]
    assert endpoints.rate_visits(["D28", "W8"], "itt") == ["D28", "W8"]
    with pytest.raises(ValueError):
        endpoints.rate_visits(["W8"], "per_protocol")
    st = responders.visit_status(p, r, responders.W8_OR_PRECOND).set_index("patient_id")
    # P2 (conditioning day 33) and P5 (day 43): their PRECOND1 assessment; others W8 status
    assert st["status"].to_dict() == {
        "P1": "dead",
        "P2": "assessed",
        "P3": "assessed",
        "P4": "missing",
        "P5": "assessed",
        "P6": "dead",
    }
    assert st.loc["P2", "response"] == "CR" and st.loc["P5", "response"] == "PR"
    assert st.loc["P2", "reason"].startswith("conditioning before W8")
    rates = endpoints.response_rates(p, r, endpoints.rate_visits(["W8"])).set_index(
        ["visit", "outcome"]
    )
    # ITT W8 counts the two transplanted patients as failures: 1/6; the protocol rule 3/6
    assert rates.loc[("W8", "PR_or_better"), "x"] == 1
    both = rates.loc[("W8 or PRECOND1", "PR_or_better")]
    assert (both["x"], both["n"], both["n_hsct"]) == (3, 6, 0)
    assert rates.loc[("W8 or PRECOND1", "CR"), "x"] == 1


def test_km_median_ci_matches_survfit():
    from rhlh.survival import median_ci

    times = _fixture("km_times.tsv")
    ref = _fixture("km_medians.tsv").set_index("dataset")
    for ds, g in times.groupby("dataset", sort=False):
        km = kaplan_meier(g["time"], g["event"])
        r = ref.loc[ds]
        got = median_ci(km, "survival")
        assert got == pytest.approx(
            (r["median"], r["ci_low"], r["ci_high"]), abs=1e-12, nan_ok=True
        ), ds


def test_endpoints_table_csf_pk_rows():
    v = pk_lib.pk_values(pk())
    tab = endpoints.endpoints_table(
        pk=pk_lib.pk_summary(v), pk_ratio=pk_lib.csf_plasma_ratio(v)
    ).set_index("endpoint")
    csf = tab.loc["CSF ruxolitinib at D7 (median)"]
    assert (csf["estimate"], csf["n"]) == (1.0, 3)
    assert "1/3 below LLOQ" in csf["note"]
    ratio = tab.loc["CSF/plasma ruxolitinib ratio (median of paired draws)"]
    # P1 0.25/25 = 0.01, P3 1/40 = 0.025; P2's plasma is censored
    assert (ratio["estimate"], ratio["n"]) == (pytest.approx(0.0175), 2)


def test_median_order_ci_matches_binomial_tables():
    # classic tables of the distribution-free 95% CI of a median: (l, u) order statistics
    for n, (l_ref, u_ref) in {
        6: (1, 6),
        10: (2, 9),
        17: (5, 13),
        20: (6, 15),
        37: (13, 25),
    }.items():
        lo, u, cover = pk_lib.median_order_ci(n)
        assert (lo, u) == (l_ref, u_ref), n
        # coverage by counting: P(l <= #(X < median) <= u - 1) = sum of binomial(n, 1/2) terms
        terms = [math.comb(n, j) for j in range(lo, u)]
        assert cover == pytest.approx(sum(terms) / 2**n, abs=1e-12)
        assert cover >= 0.95
        # one fewer order statistic on each side would no longer reach 95%
        tighter = sum(math.comb(n, j) for j in range(lo + 1, u - 1)) / 2**n
        assert tighter < 0.95
    assert pk_lib.median_order_ci(5)[0] == 0  # 2/32 = 6% outside: no 95% interval


def test_median_ci_honours_lloq_and_covers():
    x = np.arange(1.0, 20.0)  # 19 quantified + 1 below LLOQ = 20: order statistics 6 and 15
    ci = pk_lib.median_ci(x, 1)
    assert (ci["ci_low"], ci["ci_high"], ci["n"]) == (5.0, 14.0, 20)
    # 6 below the LLOQ: the 6th order statistic is censored, its limit left empty
    ci = pk_lib.median_ci(np.arange(1.0, 15.0), 6)
    assert np.isnan(ci["ci_low"]) and ci["ci_high"] == 9.0
    assert "lower limit below the LLOQ" in ci["note"]
    # position unknown (ratios): the censored readings count lowest and highest
    ci = pk_lib.median_ci(np.arange(1.0, 19.0), 2, censored_lowest=False)
    assert (ci["ci_low"], ci["ci_high"]) == (4.0, 15.0)
    # coverage of the population median (1.0 for lognormal(0, 1)) in simulated samples
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(2000):
        v = rng.lognormal(0, 1, 17)
        cens = v < 0.3
        c = pk_lib.median_ci(v[~cens], int(cens.sum()))
        # an empty lower limit is below the LLOQ: 0 bounds it
        hits += np.nan_to_num(c["ci_low"], nan=0.0) <= 1.0 <= c["ci_high"]
    assert 0.93 < hits / 2000 < 0.97  # nominal 95.1%


def test_endpoints_csf_rows_have_order_statistic_ci():
    rows = [
        (f"P{i:02d}", 7, "D7", "csf", c, "ng/mL", 0.5)
        for i, c in enumerate(["<0.5", "<0.5"] + [f"{v:.1f}" for v in np.linspace(0.6, 4.4, 18)])
    ]
    rows += [(f"P{i:02d}", 7, "D7", "plasma", f"{30 + i}", "ng/mL", 0.5) for i in range(20)]
    v = pk_lib.pk_values(pd.DataFrame(rows, columns=pk().columns))
    tab = endpoints.endpoints_table(
        pk=pk_lib.pk_summary(v), pk_ratio=pk_lib.csf_plasma_ratio(v)
    ).set_index("endpoint")
    csf = tab.loc["CSF ruxolitinib at D7 (median)"]
    quant = np.round(np.linspace(0.6, 4.4, 18), 1)
    # 20 readings, 2 below LLOQ ranked lowest: 6th and 15th values = quantified 4th and 13th
    assert (csf["ci_low"], csf["ci_high"]) == (pytest.approx(quant[3]), pytest.approx(quant[12]))
    assert csf["ci_low"] <= csf["estimate"] <= csf["ci_high"]
    assert "order statistics 6 and 15 of 20" in csf["note"]
    ratio = tab.loc["CSF/plasma ruxolitinib ratio (median of paired draws)"]
    r = np.sort(quant / (30 + np.arange(2, 20)))
    # widened: 2 censored ratios count lowest for the lower limit, highest for the upper
    assert (ratio["ci_low"], ratio["ci_high"]) == (pytest.approx(r[3]), pytest.approx(r[14]))
