"""Trial endpoints: the primary endpoint (alive at HSCT or week 8), survival until HSCT, response
rates by visit, time to response, reactivation, and the one-page endpoint table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.clinical.pk import median_ci as median_order_stat_ci
from rhlh.clinical.pk import median_order_ci
from rhlh.clinical.responders import W8_OR_PRECOND, primary_endpoint_status, visit_status
from rhlh.contract.timeline import fmt_day, patient_days, response_rows
from rhlh.survival import (
    aalen_johansen,
    cuminc_at,
    kaplan_meier,
    median_ci,
    numbers_at_risk,
    proportion,
)

RESPONSE_VISITS = ("D7", "D14", "D21", "D28", "W8", "PRECOND1")
POLICY_KEYS = ("dead", "hsct", "missing", "ne")
DEFAULT_POLICY = {"dead": "failure", "hsct": "failure", "missing": "failure", "ne": "failure"}
# response-rate rules: 'w8_or_preconditioning' (protocol default) adds the visit
# "W8 or PRECOND1" after W8 (PRECOND1 for patients conditioned on or before the W8 day, W8 for
# the others); 'itt' reports the visits as listed (leaving for HSCT before W8 = failure at W8)
RATE_RULES = ("w8_or_preconditioning", "itt")


def rate_visits(visits, rule: str = "w8_or_preconditioning") -> list:
    """The visits whose response rates are reported under ``rule`` (see RATE_RULES)."""
    if rule not in RATE_RULES:
        raise ValueError(f"rate rule must be one of {', '.join(RATE_RULES)}, got {rule!r}")
    out = [v for v in visits if v != W8_OR_PRECOND]
    if rule == "w8_or_preconditioning" and "W8" in out:
        out.insert(out.index("W8") + 1, W8_OR_PRECOND)
    return out


RATE_COLUMNS = [
    "visit",
    "outcome",
    "x",
    "n",
    "estimate",
    "ci_low",
    "ci_high",
    "n_patients",
    "n_assessed",
    "n_ne",
    "n_dead",
    "n_hsct",
    "n_missing",
    "n_not_due",
    "n_excluded",
]
ENDPOINT_COLUMNS = ["endpoint", "estimate", "ci_low", "ci_high", "n", "note"]
HORIZON_COLUMNS = [
    "outcome",
    "horizon",
    "day",
    "cuminc",
    "variance",
    "ci_low",
    "ci_high",
    "n_at_risk",
    "n",
    "n_event",
    "competing",
]
FIXED_HORIZONS = {"D28": 28.0, "W8": 56.0}
# reactivation is timed from the first response: the same day counts, not study visits
REACTIVATION_HORIZONS = {"28 days": 28.0, "56 days": 56.0}


def primary_endpoint(
    patients: pd.DataFrame, horizon: float = 56, missing: str = "failure", level: float = 0.95
) -> dict:
    """Proportion alive at HSCT or week 8 with exact CI; lost-to-follow-up as ``missing``
    ('failure' or 'exclude'); dict x, n, estimate, ci_low, ci_high, n_lost."""
    _check_policy_value(missing)
    st = primary_endpoint_status(patients, horizon)
    lost = st["success"].isna()
    x = int(st["success"].eq(True).sum())
    n = len(st) - (int(lost.sum()) if missing == "exclude" else 0)
    out = proportion(x, n, level)
    out["n_lost"] = int(lost.sum())
    return out


def survival_until_hsct(
    patients: pd.DataFrame, horizon: float = 56, level: float = 0.95, risk_times=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kaplan-Meier of death censored at HSCT/last follow-up/horizon, and numbers at risk at
    ``risk_times`` (default weekly); returns (km table, at-risk table time, n_at_risk)."""
    st = primary_endpoint_status(patients, horizon)
    km = kaplan_meier(st["time"], st["event"], level)
    if risk_times is None:
        risk_times = np.arange(0, horizon + 1, 7)
    risk = pd.DataFrame(
        {
            "time": np.asarray(risk_times, dtype=float),
            "n_at_risk": numbers_at_risk(st["time"], risk_times),
        }
    )
    return km, risk


# --- response rates ---------------------------------------------------------------------------


def _check_policy_value(v):
    if v not in ("failure", "exclude"):
        raise ValueError(f"policy value must be 'failure' or 'exclude', got {v!r}")


def response_rates(
    patients: pd.DataFrame,
    responses: pd.DataFrame,
    visits=RESPONSE_VISITS,
    policy: dict | None = None,
    visit_days: dict | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Rates of CR and of PR-or-better per visit with exact CIs (ITT); dead / hsct / missing /
    NE patients count per ``policy`` ('failure' or 'exclude'); not-due patients are excluded."""
    pol = dict(DEFAULT_POLICY)
    pol.update(policy or {})
    unknown = set(pol) - set(POLICY_KEYS)
    if unknown:
        raise ValueError(f"unknown policy keys: {sorted(unknown)}")
    for v in pol.values():
        _check_policy_value(v)
    rows = []
    for visit in visits:
        st = visit_status(patients, responses, visit, visit_days)
        counts = st["status"].value_counts()
        excluded = st["status"].eq("not_due")
        for key in POLICY_KEYS:
            if pol[key] == "exclude":
                excluded |= st["status"].eq(key)
        n = int((~excluded).sum())
        for outcome, wanted in (("CR", ("CR",)), ("PR_or_better", ("PR", "CR"))):
            x = int(st["response"].isin(wanted).sum())
            est = proportion(x, n, level)
            rows.append(
                (
                    visit,
                    outcome,
                    x,
                    n,
                    est["estimate"],
                    est["ci_low"],
                    est["ci_high"],
                    len(st),
                    int(counts.get("assessed", 0)),
                    int(counts.get("ne", 0)),
                    int(counts.get("dead", 0)),
                    int(counts.get("hsct", 0)),
                    int(counts.get("missing", 0)),
                    int(counts.get("not_due", 0)),
                    int(excluded.sum()),
                )
            )
    return pd.DataFrame(rows, columns=RATE_COLUMNS)


# --- time to response and reactivation (competing risks) -------------------------------------


def time_to_response(
    patients: pd.DataFrame,
    responses: pd.DataFrame,
    level: str = "PR",
    competing=("death", "hsct"),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Delay to first PR-or-better (level 'PR') or CR, death competing (and HSCT if listed in
    ``competing``, else censoring); returns (per-patient table, Aalen-Johansen table)."""
    if level not in ("PR", "CR"):
        raise ValueError("level must be 'PR' or 'CR'")
    wanted = ["CR"] if level == "CR" else ["PR", "CR"]
    p = patient_days(patients)
    resp = response_rows(responses)
    rows = []
    for r in p.itertuples(index=False):
        hits = resp[(resp["patient_id"] == r.patient_id) & resp["response"].isin(wanted)]
        first = hits["day"].min() if len(hits) else np.nan
        left = r.hsct_day
        candidates = [("response", first, 1), ("death", r.death_day, 2)]
        if "hsct" in competing:
            candidates.append(("hsct", left, 3))
        else:
            candidates.append(("censored at HSCT", left, 0))
        candidates.append(("censored", r.last_followup_day, 0))
        # ties: a response assessed on a day counts before a death or HSCT that same day
        order = {"response": 0, "death": 1, "hsct": 2, "censored at HSCT": 3, "censored": 4}
        name, t, code = min(
            ((n, t, c) for n, t, c in candidates if pd.notna(t)), key=lambda x: (x[1], order[x[0]])
        )
        rows.append((r.patient_id, float(t), code, name))
    per = pd.DataFrame(rows, columns=["patient_id", "time", "status", "outcome"])
    cif = aalen_johansen(per["time"], per["status"], cause=1)
    return per, cif


def reactivation(
    patients: pd.DataFrame, responses: pd.DataFrame, competing=("death", "hsct")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """HLH reactivation after the first PR/CR: per responder the days from first response to
    reactivation (or competing event / censoring) and the Aalen-Johansen table on that scale.

    Loss of response: a responder assessed NR after the first PR/CR without a recorded
    reactivation is not counted as a reactivation (the registration's event is a recorded
    reactivation); the day of that first NR is given in ``loss_of_response_day`` and counted
    in the endpoint table so that it is seen."""
    p = patient_days(patients)
    resp = response_rows(responses)
    rows = []
    for r in p.itertuples(index=False):
        hits = resp[(resp["patient_id"] == r.patient_id) & resp["response"].isin(["PR", "CR"])]
        if hits.empty:
            continue
        t0 = float(hits["day"].min())
        cands = [("reactivation", r.reactivation_day, 1)]
        cands.append(("death", r.death_day, 2 if "death" in competing else 0))
        cands.append(("hsct", r.hsct_day, 3 if "hsct" in competing else 0))
        cands.append(("censored", r.last_followup_day, 0))
        order = {"reactivation": 0, "death": 1, "hsct": 2, "censored": 3}
        name, t, code = min(
            ((n, t, c) for n, t, c in cands if pd.notna(t) and t >= t0),
            key=lambda x: (x[1], order[x[0]]),
        )
        mine = resp[(resp["patient_id"] == r.patient_id) & (resp["day"] > t0)]
        lost = mine[mine["response"] == "NR"]["day"].min() if len(mine) else np.nan
        if pd.notna(r.reactivation_day) or (pd.notna(lost) and lost > t):
            lost = np.nan  # a recorded reactivation, or NR after the end of this follow-up
        rows.append((r.patient_id, t0, r.reactivation_day, float(t) - t0, code, name, lost))
    per = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "first_response_day",
            "reactivation_day",
            "time",
            "status",
            "outcome",
            "loss_of_response_day",
        ],
    )
    if per.empty:
        cif = aalen_johansen([], [], cause=1)
    else:
        cif = aalen_johansen(per["time"], per["status"], cause=1)
    return per, cif


def preconditioning_day(patients: pd.DataFrame) -> float:
    """The pre-conditioning horizon: day -1 of the median conditioning day of the patients who
    started conditioning (NaN when none did)."""
    cond = patient_days(patients)["conditioning_day"].dropna()
    return float(np.median(cond) - 1) if len(cond) else float("nan")


def cuminc_horizons(
    curves: dict, per_patient: dict, horizons: dict, competing: str
) -> pd.DataFrame:
    """Cumulative incidence with variance and log(-log) CI of each named curve at each named
    horizon (day) and at the end of follow-up (last time); rows of HORIZON_COLUMNS."""
    rows = []
    for name, cif in curves.items():
        per = per_patient[name]
        hz = dict(horizons)
        hz["end of follow-up"] = float(cif["time"].max()) if len(cif) else float("nan")
        for label, day in hz.items():
            if pd.isna(day):
                continue
            at = cuminc_at(cif, day)
            n_ev = int(((per["status"] == 1) & (per["time"] <= day)).sum())
            rows.append(
                (
                    name,
                    label,
                    float(day),
                    at["cuminc"],
                    at["variance"],
                    at["ci_low"],
                    at["ci_high"],
                    at["n_at_risk"],
                    len(per),
                    n_ev,
                    competing,
                )
            )
    return pd.DataFrame(rows, columns=HORIZON_COLUMNS)


# --- the one-page endpoint table --------------------------------------------------------------


def endpoints_table(
    primary: dict | None = None,
    km: pd.DataFrame | None = None,
    rates: pd.DataFrame | None = None,
    ttr: dict | None = None,
    react: tuple | None = None,
    simon: pd.DataFrame | None = None,
    safety: tuple | None = None,
    horizon: float = 56,
    horizons: pd.DataFrame | None = None,
    pk: pd.DataFrame | None = None,
    pk_ratio: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Collect every endpoint into rows endpoint, estimate, ci_low, ci_high, n, note;
    ``safety`` is a dict grade3 / viral (patients with a grade >= 3 adverse event / a viral
    infection in the window), n, and optionally window (text), grade3_any / viral_any (whole
    follow-up), n_outside (events outside the window), or a tuple (grade3, n); ``horizons`` the
    cuminc_horizons table of the ``ttr`` curves and of "reactivation"; ``pk`` the pk_summary
    table (CSF rows reported) and ``pk_ratio`` the csf_plasma_ratio table."""
    from rhlh.survival import step_value

    rows = []
    if primary is not None:
        rows.append(
            (
                "alive at HSCT or week 8 (primary)",
                primary["estimate"],
                primary["ci_low"],
                primary["ci_high"],
                primary["n"],
                f"{primary['x']}/{primary['n']}, exact 95% CI; "
                f"{primary.get('n_lost', 0)} lost to follow-up",
            )
        )
    if km is not None:
        s = step_value(km, "survival", horizon, 1.0)
        lo = step_value(km, "ci_low", horizon, 1.0)
        hi = step_value(km, "ci_high", horizon, 1.0)
        rows.append(
            (
                f"KM survival until HSCT at day {fmt_day(horizon)}",
                s,
                lo,
                hi,
                int(km["n_at_risk"].iloc[0]) if len(km) else 0,
                "death, censored at HSCT/last follow-up; log-log 95% CI",
            )
        )
        med, lo, hi = median_ci(km, "survival")
        rows.append(
            (
                "median days of survival until HSCT (KM)",
                med,
                lo,
                hi,
                int(km["n_at_risk"].iloc[0]) if len(km) else 0,
                "Brookmeyer-Crowley 95% CI on the log-log band, as survival::survfit"
                + ("; median not reached" if np.isnan(med) else ""),
            )
        )
    if rates is not None:
        for r in rates.itertuples(index=False):
            label = "CR" if r.outcome == "CR" else "PR or better"
            rows.append(
                (
                    f"{label} rate at {r.visit}",
                    r.estimate,
                    r.ci_low,
                    r.ci_high,
                    r.n,
                    f"{r.x}/{r.n}; dead {r.n_dead}, HSCT {r.n_hsct}, missing "
                    f"{r.n_missing}, NE {r.n_ne}, excluded {r.n_excluded}; exact 95% CI"
                    + (f"; rate rule {r.rule}" if hasattr(r, "rule") else ""),
                )
            )
    hz = horizons if horizons is not None else pd.DataFrame(columns=HORIZON_COLUMNS)
    for name, cif in (ttr or {}).items():
        n = int(cif["n_at_risk"].iloc[0]) if len(cif) else 0
        for h in hz[hz["outcome"] == name].itertuples(index=False):
            rows.append(
                (
                    f"cumulative incidence of first {name} by {_horizon_label(h)}",
                    h.cuminc,
                    h.ci_low,
                    h.ci_high,
                    n,
                    f"{h.n_event} of {h.n}; Aalen-Johansen, {h.competing} competing; Gray "
                    "variance (cmprsk), log(-log) 95% CI",
                )
            )
        med, lo, hi = median_ci(cif)
        rows.append(
            (
                f"median days to first {name}",
                med,
                lo,
                hi,
                n,
                "not reached"
                if np.isnan(med)
                else "first day cumulative incidence >= 0.5; 95% CI: days the log(-log) "
                "band reaches 0.5 (NaN: not reached)",
            )
        )
    if react is not None:
        per, cif = react
        n_re = int((per["status"] == 1).sum()) if len(per) else 0
        n_lost = int(per["loss_of_response_day"].notna().sum()) if len(per) else 0
        for h in hz[hz["outcome"] == "reactivation"].itertuples(index=False):
            rows.append(
                (
                    f"HLH reactivation after PR/CR by {_horizon_label(h, 'after first response')}",
                    h.cuminc,
                    h.ci_low,
                    h.ci_high,
                    len(per),
                    f"{h.n_event} reactivations among {len(per)} responders; "
                    f"{h.competing} competing; log(-log) 95% CI",
                )
            )
        lost = proportion(n_lost, len(per))
        rows.append(
            (
                "responders with loss of response (NR after PR/CR) without recorded reactivation",
                lost["estimate"],
                lost["ci_low"],
                lost["ci_high"],
                len(per),
                f"{n_lost}/{len(per)}, exact 95% CI; not counted as reactivation "
                f"({n_re} recorded reactivations)",
            )
        )
    if simon is not None:
        for r in simon.itertuples(index=False):
            rows.append(
                (
                    f"Simon two-stage decision, {r.stage}",
                    np.nan,
                    np.nan,
                    np.nan,
                    r.n_observed,
                    f"{r.successes} successes vs threshold > {r.threshold}"
                    f" of {r.n_planned}: {r.decision}",
                )
            )
    if safety is not None:
        if not isinstance(safety, dict):  # (patients with grade >= 3, patients)
            safety = {"grade3": safety[0], "n": safety[1]}
        n = safety["n"]
        window = safety.get("window", "whole follow-up")
        out_note = (
            f"; {safety['n_outside']} events outside the window listed separately"
            if "n_outside" in safety
            else ""
        )
        for key, label in (
            ("grade3", "patients with an adverse event of grade >= 3"),
            ("viral", "patients with a viral infection (new or worsening)"),
        ):
            if key not in safety:
                continue
            k = safety[key]
            est = proportion(k, n)
            extra = (
                f" ({safety[key + '_any']} over the whole follow-up)"
                if key + "_any" in safety
                else ""
            )
            rows.append(
                (
                    f"{label}, {window}",
                    est["estimate"],
                    est["ci_low"],
                    est["ci_high"],
                    n,
                    f"{k}/{n}, exact 95% CI{extra}{out_note}",
                )
            )
    if pk is not None:
        for r in pk[pk["matrix"] == "csf"].itertuples(index=False):
            ci = median_order_ci(int(r.n))
            how = (
                f"95% CI: order statistics {ci[0]} and {ci[1]} of {r.n} "
                f"({ci[2]:.1%} coverage, distribution-free; below-LLOQ readings ranked lowest, "
                "a limit below the LLOQ left empty)"
                if ci[0]
                else "too few readings for a 95% CI"
            )
            rows.append(
                (
                    f"CSF ruxolitinib at {r.visit} (median)",
                    r.median,
                    r.median_ci_low,
                    r.median_ci_high,
                    r.n,
                    f"{r.summary}; {how}",
                )
            )
    if pk_ratio is not None and len(pk_ratio):
        paired = pk_ratio[pk_ratio["ratio"].notna()]
        csf_below = paired["censor_csf"] == "<"
        cens = int(csf_below.sum())
        ok = paired["ratio"]
        # the median keeps the substituted CSF values (as before); its CI does not: a ratio
        # with a censored CSF value may lie anywhere below its bound, so the interval holds
        # for any position of those readings
        ci = median_order_stat_ci(paired.loc[~csf_below, "ratio"], cens, censored_lowest=False)
        rows.append(
            (
                "CSF/plasma ruxolitinib ratio (median of paired draws)",
                float(ok.median()) if len(ok) else np.nan,
                ci["ci_low"],
                ci["ci_high"],
                len(ok),
                f"{len(ok)} paired draws with a quantified plasma value; {cens} CSF readings "
                f"below LLOQ among them (substituted in the median); 95% CI: {ci['note']}, "
                "widened to hold wherever the below-LLOQ ratios lie",
            )
        )
    return pd.DataFrame(rows, columns=ENDPOINT_COLUMNS)


def _horizon_label(h, scale: str = "") -> str:
    if h.horizon == "end of follow-up":
        return f"end of follow-up (day {fmt_day(h.day)}{' ' + scale if scale else ''})"
    if h.horizon.startswith("pre-conditioning"):
        return f"{h.horizon} (day {fmt_day(h.day)})"
    if scale:  # not study days: "28 days after first response"
        return f"{fmt_day(h.day)} days {scale}"
    return f"{h.horizon} (day {fmt_day(h.day)})"
