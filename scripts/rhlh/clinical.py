"""Clinical endpoints of the R-HLH trial: responders, response rates, survival until HSCT,
time to response, reactivation, safety, pharmacokinetics and the one-page endpoint table.

Inputs are the validated contract tables (days as numbers, NaN or <NA> for empty). The index
of each table is taken as its file row number in error messages (``rhlh.io.read_table`` sets
header = row 1, first data row = row 2).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.cytokines import parse_value
from rhlh.errors import InputError
from rhlh.survival import aalen_johansen, kaplan_meier, numbers_at_risk, proportion

RESPONSES = ("CR", "PR", "NR", "NE")
RANK = {"NR": 0, "PR": 1, "CR": 2}
RESPONSE_VISIT_DAYS = {"D7": 7, "D14": 14, "D21": 21, "D28": 28, "W8": 56}
RESPONSE_VISITS = ("D7", "D14", "D21", "D28", "W8", "PRECOND1")
DEFINITIONS = ("cr_pr_d28", "cr_d28", "best_by_w8", "alive_at_hsct")
POLICY_KEYS = ("dead", "hsct", "missing", "ne")
DEFAULT_POLICY = {"dead": "failure", "hsct": "failure", "missing": "failure", "ne": "failure"}
PATIENT_DAY_COLUMNS = (
    "last_followup_day",
    "hsct_day",
    "death_day",
    "conditioning_day",
    "reactivation_day",
)

RESPONDER_COLUMNS = ["patient_id", "responder", "response_class", "reason"]
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


# --- small helpers --------------------------------------------------------------------------


def _days(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float)


def _patient_days(patients: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype(str)}, index=patients.index)
    for col in PATIENT_DAY_COLUMNS:
        out[col] = _days(patients, col)
    return out


def _responses(responses: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "patient_id": responses["patient_id"].astype(str),
            "visit": responses["visit"].astype(str),
            "day": _days(responses, "day"),
            "response": responses["response"].astype(str).str.strip().str.upper(),
        },
        index=responses.index,
    )
    return out


def _fmt(x) -> str:
    return str(int(x)) if pd.notna(x) and float(x).is_integer() else str(x)


def _min_day(*values) -> float:
    vals = [v for v in values if pd.notna(v)]
    return float(min(vals)) if vals else float("nan")


# --- consistency ----------------------------------------------------------------------------


def check_clinical_consistency(
    patients: pd.DataFrame, responses: pd.DataFrame, file_names: dict
) -> None:
    """Raise InputError (file, row, column) on clinically impossible timelines; else None."""
    pfile = file_names.get("patients", "patients.tsv")
    rfile = file_names.get("responses", "responses.tsv")
    p = _patient_days(patients)
    dup = p["patient_id"].duplicated()
    if dup.any():
        row = dup[dup].index[0]
        raise InputError(
            pfile,
            "patient listed twice",
            row=row,
            column="patient_id",
            value=p.at[row, "patient_id"],
        )
    for row, r in p.iterrows():

        def fail(msg, col, _row=row, _r=r):
            raise InputError(pfile, msg, row=_row, column=col, value=_fmt(_r[col]))

        if pd.isna(r["last_followup_day"]):
            fail("last_followup_day is required", "last_followup_day")
        for col, what in (
            ("hsct_day", "HSCT"),
            ("death_day", "death"),
            ("conditioning_day", "conditioning"),
            ("reactivation_day", "reactivation"),
            ("last_followup_day", "last follow-up"),
        ):
            if pd.notna(r[col]) and r[col] < 0:
                fail(f"{what} before D0 (first ruxolitinib dose)", col)
        if pd.notna(r["death_day"]):
            if pd.notna(r["hsct_day"]) and r["hsct_day"] > r["death_day"]:
                fail(f"HSCT after death (death_day {_fmt(r['death_day'])})", "hsct_day")
            if pd.notna(r["conditioning_day"]) and r["conditioning_day"] > r["death_day"]:
                fail(
                    f"conditioning after death (death_day {_fmt(r['death_day'])})",
                    "conditioning_day",
                )
            if pd.notna(r["reactivation_day"]) and r["reactivation_day"] > r["death_day"]:
                fail(
                    f"reactivation after death (death_day {_fmt(r['death_day'])})",
                    "reactivation_day",
                )
            if r["last_followup_day"] > r["death_day"]:
                fail(
                    f"last follow-up after death (death_day {_fmt(r['death_day'])})",
                    "last_followup_day",
                )
        if (
            pd.notna(r["conditioning_day"])
            and pd.notna(r["hsct_day"])
            and r["conditioning_day"] > r["hsct_day"]
        ):
            fail(
                f"conditioning starts after HSCT (hsct_day {_fmt(r['hsct_day'])})",
                "conditioning_day",
            )
        for col in ("hsct_day", "conditioning_day", "reactivation_day"):
            if pd.notna(r[col]) and r[col] > r["last_followup_day"]:
                fail(f"{col} after the last follow-up day ({_fmt(r['last_followup_day'])})", col)

    resp = _responses(responses)
    known = p.set_index("patient_id")
    bad = ~resp["response"].isin(RESPONSES)
    if bad.any():
        row = bad[bad].index[0]
        raise InputError(
            rfile,
            "response must be one of CR, PR, NR, NE",
            row=row,
            column="response",
            value=responses.at[row, "response"],
        )
    dup = resp.duplicated(["patient_id", "visit"])
    if dup.any():
        row = dup[dup].index[0]
        raise InputError(
            rfile,
            "two assessments for the same patient and visit",
            row=row,
            column="visit",
            value=resp.at[row, "visit"],
        )
    for row, r in resp.iterrows():
        if r["patient_id"] not in known.index:
            raise InputError(
                rfile,
                f"patient not in {pfile}",
                row=row,
                column="patient_id",
                value=r["patient_id"],
            )
        k = known.loc[r["patient_id"]]
        if pd.isna(r["day"]):
            raise InputError(rfile, "day is required", row=row, column="day")
        if r["day"] < 0:
            raise InputError(
                rfile, "response assessed before D0", row=row, column="day", value=_fmt(r["day"])
            )
        if pd.notna(k["death_day"]) and r["day"] > k["death_day"]:
            raise InputError(
                rfile,
                f"response assessed after death (death_day {_fmt(k['death_day'])} in {pfile})",
                row=row,
                column="day",
                value=_fmt(r["day"]),
            )
        if r["day"] > k["last_followup_day"]:
            raise InputError(
                rfile,
                f"response assessed after the last follow-up day "
                f"({_fmt(k['last_followup_day'])} in {pfile})",
                row=row,
                column="day",
                value=_fmt(r["day"]),
            )
    # a reactivation is defined only after a partial or complete response
    for row, r in p.iterrows():
        if pd.isna(r["reactivation_day"]):
            continue
        mine = resp[(resp["patient_id"] == r["patient_id"]) & resp["response"].isin(["PR", "CR"])]
        if not (mine["day"] < r["reactivation_day"]).any():
            raise InputError(
                pfile,
                f"HLH reactivation without an earlier PR or CR in {rfile}",
                row=row,
                column="reactivation_day",
                value=_fmt(r["reactivation_day"]),
            )


# --- status at a visit and responders ---------------------------------------------------------


def visit_status(
    patients: pd.DataFrame, responses: pd.DataFrame, visit: str, visit_days: dict | None = None
) -> pd.DataFrame:
    """Each patient's status at one response visit: patient_id, status (assessed, ne, dead,
    hsct, missing, not_due), response, day, reason."""
    visit_days = RESPONSE_VISIT_DAYS if visit_days is None else visit_days
    p = _patient_days(patients)
    resp = _responses(responses)
    here = resp[resp["visit"] == visit].set_index("patient_id")
    rows = []
    for r in p.itertuples(index=False):
        pid = r.patient_id
        if pid in here.index:
            a = here.loc[pid]
            status = "ne" if a["response"] == "NE" else "assessed"
            rows.append(
                (
                    pid,
                    status,
                    a["response"],
                    a["day"],
                    f"{a['response']} at {visit} (day {_fmt(a['day'])})",
                )
            )
            continue
        left = _min_day(r.conditioning_day, r.hsct_day)
        if visit == "PRECOND1":
            if pd.notna(left):
                rows.append(
                    (
                        pid,
                        "missing",
                        None,
                        np.nan,
                        f"no PRECOND1 assessment (conditioning on day {_fmt(left)})",
                    )
                )
            elif pd.notna(r.death_day):
                rows.append(
                    (
                        pid,
                        "dead",
                        None,
                        np.nan,
                        f"died on day {_fmt(r.death_day)} before conditioning",
                    )
                )
            else:
                rows.append((pid, "not_due", None, np.nan, "no HSCT conditioning yet"))
            continue
        t = visit_days[visit]
        if pd.notna(r.death_day) and r.death_day <= t:
            rows.append(
                (pid, "dead", None, np.nan, f"died on day {_fmt(r.death_day)}, before {visit}")
            )
        elif pd.notna(left) and left <= t:
            rows.append(
                (
                    pid,
                    "hsct",
                    None,
                    np.nan,
                    f"left for HSCT (conditioning/HSCT day {_fmt(left)}) before {visit}",
                )
            )
        elif r.last_followup_day < t:
            rows.append(
                (
                    pid,
                    "missing",
                    None,
                    np.nan,
                    f"lost to follow-up on day {_fmt(r.last_followup_day)}, before {visit}",
                )
            )
        else:
            rows.append((pid, "missing", None, np.nan, f"no {visit} assessment"))
    return pd.DataFrame(rows, columns=["patient_id", "status", "response", "day", "reason"])


def _last_before(resp: pd.DataFrame, pid: str, day: float):
    mine = resp[
        (resp["patient_id"] == pid) & (resp["day"] <= day) & resp["response"].isin(list(RANK))
    ]
    if mine.empty:
        return None
    last = mine.sort_values("day", kind="stable").iloc[-1]
    return last["response"], last["day"], last["visit"]


def _best_by(resp: pd.DataFrame, pid: str, day: float):
    mine = resp[
        (resp["patient_id"] == pid) & (resp["day"] <= day) & resp["response"].isin(list(RANK))
    ]
    if mine.empty:
        return None
    mine = mine.assign(rank=mine["response"].map(RANK)).sort_values(
        ["rank", "day"], ascending=[False, True]
    )
    top = mine.iloc[0]
    return top["response"], top["day"], top["visit"]


def define_responders(
    patients: pd.DataFrame,
    responses: pd.DataFrame,
    definition: str = "cr_pr_d28",
    horizon: float = 56,
) -> pd.DataFrame:
    """Responder per patient (ITT: dead/missing at the endpoint = non-responder); columns
    patient_id, responder, response_class (NR/PR/CR/NE), reason."""
    if definition not in DEFINITIONS:
        raise ValueError(
            f"unknown responder definition {definition!r}; choose one of {', '.join(DEFINITIONS)}"
        )
    p = _patient_days(patients)
    resp = _responses(responses)
    rows = []
    if definition in ("cr_pr_d28", "cr_d28"):
        wanted = ("CR",) if definition == "cr_d28" else ("PR", "CR")
        st = visit_status(patients, responses, "D28")
        for s in st.itertuples(index=False):
            cls = s.response if s.status in ("assessed", "ne") else "NE"
            ok = cls in wanted
            reason = s.reason
            if s.status not in ("assessed", "ne"):
                reason += "; non-responder (ITT)"
            rows.append((s.patient_id, ok, cls, reason))
    elif definition == "best_by_w8":
        for r in p.itertuples(index=False):
            best = _best_by(resp, r.patient_id, horizon)
            if best is None:
                why = "no evaluable response assessment by W8"
                if pd.notna(r.death_day) and r.death_day <= horizon:
                    why += f" (died on day {_fmt(r.death_day)})"
                rows.append((r.patient_id, False, "NE", why + "; non-responder (ITT)"))
            else:
                cls, day, visit = best
                rows.append(
                    (
                        r.patient_id,
                        cls in ("PR", "CR"),
                        cls,
                        f"best response by W8: {cls} (first at {visit}, day {_fmt(day)})",
                    )
                )
    else:
        prim = primary_endpoint_status(patients, horizon=horizon)
        for r, s in zip(p.itertuples(index=False), prim.itertuples(index=False), strict=True):
            end = _min_day(r.hsct_day, horizon)
            best = _best_by(resp, r.patient_id, end)
            cls = best[0] if best is not None else "NE"
            rows.append((r.patient_id, bool(s.success), cls, s.reason))
    out = pd.DataFrame(rows, columns=RESPONDER_COLUMNS)
    out["responder"] = out["responder"].astype(bool)
    return out


# --- primary endpoint: survival until HSCT ----------------------------------------------------


def primary_endpoint_status(patients: pd.DataFrame, horizon: float = 56) -> pd.DataFrame:
    """Per patient: alive at HSCT or at week 8 (success) and the KM time/event for death
    censored at HSCT, the horizon or last follow-up; columns patient_id, status, success,
    time, event, reason."""
    p = _patient_days(patients)
    rows = []
    for r in p.itertuples(index=False):
        reached_hsct = pd.notna(r.hsct_day) and r.hsct_day <= horizon
        # death on or after the graft day still counts as having reached HSCT alive
        died_first = (
            pd.notna(r.death_day)
            and r.death_day <= horizon
            and not (reached_hsct and r.death_day >= r.hsct_day)
        )
        if died_first:
            rows.append(
                (
                    r.patient_id,
                    "died",
                    False,
                    r.death_day,
                    True,
                    f"died on day {_fmt(r.death_day)} before HSCT and week 8",
                )
            )
        elif reached_hsct:
            rows.append(
                (
                    r.patient_id,
                    "alive at HSCT",
                    True,
                    r.hsct_day,
                    False,
                    f"alive at HSCT on day {_fmt(r.hsct_day)}",
                )
            )
        elif r.last_followup_day >= horizon or (pd.notna(r.death_day) and r.death_day > horizon):
            rows.append(
                (
                    r.patient_id,
                    "alive at week 8",
                    True,
                    float(horizon),
                    False,
                    f"alive at day {_fmt(horizon)} without HSCT",
                )
            )
        else:
            rows.append(
                (
                    r.patient_id,
                    "lost to follow-up",
                    None,
                    r.last_followup_day,
                    False,
                    f"last seen alive on day {_fmt(r.last_followup_day)}, before "
                    f"day {_fmt(horizon)}; status at week 8 unknown",
                )
            )
    out = pd.DataFrame(rows, columns=["patient_id", "status", "success", "time", "event", "reason"])
    out["time"] = out["time"].astype(float)
    out["event"] = out["event"].astype(bool)
    return out


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
    patients: pd.DataFrame, responses: pd.DataFrame, level: str = "PR", competing=("death",)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Delay to first PR-or-better (level 'PR') or CR, death competing (and HSCT if listed in
    ``competing``, else censoring); returns (per-patient table, Aalen-Johansen table)."""
    if level not in ("PR", "CR"):
        raise ValueError("level must be 'PR' or 'CR'")
    wanted = ["CR"] if level == "CR" else ["PR", "CR"]
    p = _patient_days(patients)
    resp = _responses(responses)
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
    reactivation (or competing event / censoring) and the Aalen-Johansen table on that scale."""
    p = _patient_days(patients)
    resp = _responses(responses)
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
        rows.append((r.patient_id, t0, r.reactivation_day, float(t) - t0, code, name))
    per = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "first_response_day",
            "reactivation_day",
            "time",
            "status",
            "outcome",
        ],
    )
    if per.empty:
        cif = aalen_johansen([], [], cause=1)
    else:
        cif = aalen_johansen(per["time"], per["status"], cause=1)
    return per, cif


# --- safety -----------------------------------------------------------------------------------


def adverse_events(events: pd.DataFrame | None, n_patients: int) -> pd.DataFrame:
    """Events by category and term: n_events, n_patients, pct_patients, patients by worst grade
    (grade_1..grade_5) and n_patients_grade3plus."""
    cols = [
        "category",
        "term",
        "n_events",
        "n_patients",
        "pct_patients",
        "grade_1",
        "grade_2",
        "grade_3",
        "grade_4",
        "grade_5",
        "n_patients_grade3plus",
    ]
    if events is None or len(events) == 0:
        return pd.DataFrame(columns=cols)
    ev = events.assign(grade=pd.to_numeric(events["grade"]).astype(int))
    rows = []
    for (cat, term), g in ev.groupby(["category", "term"], sort=True):
        worst = g.groupby("patient_id")["grade"].max()
        by_grade = [int((worst == k).sum()) for k in range(1, 6)]
        rows.append(
            (
                cat,
                term,
                len(g),
                len(worst),
                100 * len(worst) / n_patients,
                *by_grade,
                int((worst >= 3).sum()),
            )
        )
    return pd.DataFrame(rows, columns=cols)


def patients_with_grade(
    events: pd.DataFrame | None, min_grade: int = 3, category: str = "adverse_event"
) -> int:
    """Number of patients with at least one event of ``category`` at ``min_grade`` or worse."""
    if events is None or len(events) == 0:
        return 0
    ev = events[(events["category"] == category) & (pd.to_numeric(events["grade"]) >= min_grade)]
    return int(ev["patient_id"].nunique())


def viral_infections(events: pd.DataFrame | None, patients: pd.DataFrame) -> pd.DataFrame:
    """Viral infections per patient: n_new, n_worsening, worst_grade, terms (all patients)."""
    cols = ["patient_id", "n_new", "n_worsening", "worst_grade", "terms"]
    pids = patients["patient_id"].astype(str).tolist()
    if events is None or len(events) == 0:
        vi = pd.DataFrame(columns=["patient_id", "status", "grade", "term"])
    else:
        vi = events[events["category"] == "viral_infection"]
    rows = []
    for pid in pids:
        g = vi[vi["patient_id"].astype(str) == pid]
        rows.append(
            (
                pid,
                int((g["status"] == "new").sum()),
                int((g["status"] == "worsening").sum()),
                float(pd.to_numeric(g["grade"]).max()) if len(g) else np.nan,
                ";".join(sorted(set(g["term"].astype(str)))),
            )
        )
    return pd.DataFrame(rows, columns=cols)


# --- pharmacokinetics -------------------------------------------------------------------------


def _parse_concentration(raw, lloq=np.nan, uloq=np.nan) -> tuple[float, str]:
    """(value or censoring limit, censor flag '<' / '>' / '') of one PK reading."""
    value, censor, bound = parse_value(raw)
    if censor == "left":
        # a bare "<LLOQ" / "OOR <" takes its limit from the row's lloq column
        return (bound if not np.isnan(bound) else float(lloq)), "<"
    if censor == "right":
        return (bound if not np.isnan(bound) else float(uloq)), ">"
    return float(value), ""


def pk_values(pk: pd.DataFrame, substitution: str = "lloq/2") -> pd.DataFrame:
    """PK readings with numeric value and censor flag; below-LLOQ readings become LLOQ, LLOQ/2,
    0 or NaN per ``substitution``; columns patient_id, day, visit, matrix, raw, bound, censor,
    value, unit."""
    if substitution not in ("lloq", "lloq/2", "zero", "nan"):
        raise ValueError("substitution must be one of lloq, lloq/2, zero, nan")
    lloq = _days(pk, "lloq")
    rows = []
    for (_idx, r), lq in zip(pk.iterrows(), lloq, strict=True):
        bound, cens = _parse_concentration(r["concentration"], lq)
        if cens == "<":
            # the reading's own limit wins over the file's lloq column when both exist
            lim = bound if pd.notna(bound) else lq
            value = {"lloq": lim, "lloq/2": lim / 2, "zero": 0.0, "nan": np.nan}[substitution]
        else:
            value = bound
        rows.append(
            (
                r["patient_id"],
                float(r["day"]),
                r["visit"],
                r["matrix"],
                str(r["concentration"]),
                bound,
                cens,
                value,
                r.get("unit", ""),
            )
        )
    return pd.DataFrame(
        rows,
        columns=["patient_id", "day", "visit", "matrix", "raw", "bound", "censor", "value", "unit"],
    )


def pk_summary(values: pd.DataFrame, visits=None) -> pd.DataFrame:
    """Per matrix and visit: n, n_below_lloq, median, q1, q3, min, max, geo_mean (values > 0)."""
    rows = []
    for (matrix, visit), g in values.groupby(["matrix", "visit"], sort=False):
        v = g["value"].dropna()
        pos = v[v > 0]
        rows.append(
            (
                matrix,
                visit,
                len(g),
                int((g["censor"] == "<").sum()),
                v.median() if len(v) else np.nan,
                v.quantile(0.25) if len(v) else np.nan,
                v.quantile(0.75) if len(v) else np.nan,
                v.min() if len(v) else np.nan,
                v.max() if len(v) else np.nan,
                float(np.exp(np.log(pos).mean())) if len(pos) else np.nan,
            )
        )
    out = pd.DataFrame(
        rows,
        columns=[
            "matrix",
            "visit",
            "n",
            "n_below_lloq",
            "median",
            "q1",
            "q3",
            "min",
            "max",
            "geo_mean",
        ],
    )
    order = list(visits) if visits is not None else sorted(out["visit"].unique())
    out["_o"] = out["visit"].map({v: i for i, v in enumerate(order)}).fillna(len(order))
    return out.sort_values(["matrix", "_o", "visit"]).drop(columns="_o").reset_index(drop=True)


def csf_plasma_ratio(values: pd.DataFrame) -> pd.DataFrame:
    """CSF/plasma ratio for paired draws (same patient and day); censored partners flagged and
    the ratio left NaN when the plasma value is censored or zero."""
    key = ["patient_id", "day", "visit"]
    pl = values[values["matrix"] == "plasma"][[*key, "value", "censor"]]
    cs = values[values["matrix"] == "csf"][[*key, "value", "censor"]]
    m = pl.merge(cs, on=key, suffixes=("_plasma", "_csf"))
    m = m.rename(columns={"value_plasma": "plasma", "value_csf": "csf"})
    ok = (m["censor_plasma"] == "") & (m["plasma"] > 0)
    m["ratio"] = np.where(ok, m["csf"] / m["plasma"].where(ok, np.nan), np.nan)
    m["note"] = np.where(
        ~ok,
        "plasma censored or zero",
        np.where(m["censor_csf"] == "<", "CSF below LLOQ (substituted)", ""),
    )
    return m[[*key, "plasma", "censor_plasma", "csf", "censor_csf", "ratio", "note"]]


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
) -> pd.DataFrame:
    """Collect every endpoint into rows endpoint, estimate, ci_low, ci_high, n, note;
    ``safety`` is (patients with a grade >= 3 adverse event, patients)."""
    from rhlh.survival import median_time, step_value

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
                f"KM survival until HSCT at day {_fmt(horizon)}",
                s,
                lo,
                hi,
                int(km["n_at_risk"].iloc[0]) if len(km) else 0,
                "death, censored at HSCT/last follow-up; log-log 95% CI",
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
                    f"{r.n_missing}, NE {r.n_ne}, excluded {r.n_excluded}",
                )
            )
    for name, cif in (ttr or {}).items():
        med = median_time(cif, "cuminc")
        at28 = step_value(cif, "cuminc", 28, 0.0)
        n = int(cif["n_at_risk"].iloc[0]) if len(cif) else 0
        rows.append(
            (
                f"cumulative incidence of first {name} by day 28",
                at28,
                np.nan,
                np.nan,
                n,
                "Aalen-Johansen, death competing",
            )
        )
        rows.append(
            (
                f"median days to first {name}",
                med,
                np.nan,
                np.nan,
                n,
                "not reached" if np.isnan(med) else "first day cumulative incidence >= 0.5",
            )
        )
    if react is not None:
        per, cif = react
        n_re = int((per["status"] == 1).sum()) if len(per) else 0
        final = float(cif["cuminc"].iloc[-1]) if len(cif) else np.nan
        rows.append(
            (
                "HLH reactivation after PR/CR (cumulative incidence, end of follow-up)",
                final,
                np.nan,
                np.nan,
                len(per),
                f"{n_re} reactivations among {len(per)} responders; death and HSCT competing",
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
        k, n = safety
        est = proportion(k, n)
        rows.append(
            (
                "patients with an adverse event of grade >= 3",
                est["estimate"],
                est["ci_low"],
                est["ci_high"],
                n,
                f"{k}/{n}, exact 95% CI",
            )
        )
    return pd.DataFrame(rows, columns=ENDPOINT_COLUMNS)


# --- figures ----------------------------------------------------------------------------------


def _steps(table: pd.DataFrame, column: str, start: float):
    t = np.concatenate([[0.0], table["time"].to_numpy(dtype=float)])
    y = np.concatenate([[start], table[column].to_numpy(dtype=float)])
    return t, y


def plot_km(km: pd.DataFrame, risk: pd.DataFrame, horizon: float = 56):
    """Kaplan-Meier curve of survival until HSCT with CI band, censor ticks and numbers at
    risk under the axis."""
    import matplotlib.pyplot as plt

    from rhlh.plotting import OKABE_ITO

    fig, ax = plt.subplots(figsize=(6, 4.2))
    t, s = _steps(km, "survival", 1.0)
    _, lo = _steps(km, "ci_low", 1.0)
    _, hi = _steps(km, "ci_high", 1.0)
    ax.step(t, s, where="post", color=OKABE_ITO[0], lw=2, label="Kaplan-Meier")
    ax.fill_between(
        t, lo, hi, step="post", color=OKABE_ITO[0], alpha=0.2, lw=0, label="95% CI (log-log)"
    )
    cens = km[km["n_censored"] > 0]
    ax.plot(cens["time"], cens["survival"], "|", color="black", ms=10, label="censored")
    ax.set_xlim(0, horizon + 1)
    ax.set_ylim(0, 1.03)
    ax.set_xticks(risk["time"])
    ax.set_xlabel("days since first ruxolitinib dose")
    ax.set_ylabel("probability alive (censored at HSCT)")
    ax.set_title("Survival until HSCT")
    ax.legend(loc="lower left", frameon=False, fontsize=8)
    for tt, n in zip(risk["time"], risk["n_at_risk"], strict=True):
        ax.annotate(
            str(n),
            (tt, 0),
            xytext=(0, -52),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            annotation_clip=False,
        )
    ax.annotate(
        "at risk",
        (0, 0),
        xytext=(-14, -52),
        textcoords="offset points",
        ha="right",
        fontsize=8,
        annotation_clip=False,
    )
    fig.subplots_adjust(bottom=0.25)
    return fig


def plot_response_rates(rates: pd.DataFrame, visits=RESPONSE_VISITS):
    """Response rates by visit (CR and PR-or-better) with exact 95% CI error bars."""
    import matplotlib.pyplot as plt

    from rhlh.plotting import OKABE_ITO

    fig, ax = plt.subplots(figsize=(7, 4))
    order = [v for v in visits if v in set(rates["visit"])]
    x = np.arange(len(order))
    for k, (outcome, label) in enumerate((("PR_or_better", "PR or better"), ("CR", "CR"))):
        r = rates[rates["outcome"] == outcome].set_index("visit").reindex(order)
        off = (k - 0.5) * 0.36
        ax.bar(x + off, r["estimate"], width=0.36, color=OKABE_ITO[2 + k], label=label)
        ax.errorbar(
            x + off,
            r["estimate"],
            yerr=[r["estimate"] - r["ci_low"], r["ci_high"] - r["estimate"]],
            fmt="none",
            ecolor="black",
            capsize=3,
            lw=1,
        )
        for xi, (xx, nn, hi) in enumerate(zip(r["x"], r["n"], r["ci_high"], strict=True)):
            ax.annotate(
                f"{int(xx)}/{int(nn)}",
                (xi + off, hi),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(x, order)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("proportion of patients (ITT)")
    ax.set_title("Response rate by visit (exact 95% CI)")
    ax.legend(frameon=False)
    return fig


def plot_cuminc(
    curves: dict,
    xlabel: str = "days since first ruxolitinib dose",
    title: str = "Cumulative incidence (death competing)",
):
    """Aalen-Johansen cumulative incidence step curves, one per named table."""
    import matplotlib.pyplot as plt

    from rhlh.plotting import OKABE_ITO

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, (name, cif) in enumerate(curves.items()):
        t, y = _steps(cif, "cuminc", 0.0)
        ax.step(t, y, where="post", lw=2, color=OKABE_ITO[k % len(OKABE_ITO)], label=name)
    ax.set_ylim(0, 1.03)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("cumulative incidence")
    ax.set_title(title)
    ax.legend(frameon=False, loc="lower right")
    return fig


def plot_pk(values: pd.DataFrame, matrix: str, visits=None):
    """Concentrations in one matrix by visit (log scale), below-LLOQ readings as open marks."""
    import matplotlib.pyplot as plt

    from rhlh.plotting import OKABE_ITO

    v = values[values["matrix"] == matrix]
    order = [x for x in (visits or sorted(v["visit"].unique())) if x in set(v["visit"])]
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(order) + 2), 4))
    if not order:
        ax.text(0.5, 0.5, f"no {matrix} readings", ha="center", va="center", transform=ax.transAxes)
    rng = np.random.default_rng(0)  # fixed jitter so reruns give identical figures
    for i, visit in enumerate(order):
        g = v[(v["visit"] == visit) & v["value"].notna() & (v["value"] > 0)]
        jit = rng.uniform(-0.15, 0.15, len(g))
        cens = (g["censor"] == "<").to_numpy()
        ax.scatter(i + jit[~cens], g["value"][~cens], s=18, color=OKABE_ITO[0], alpha=0.8)
        ax.scatter(
            i + jit[cens], g["value"][cens], s=18, facecolors="none", edgecolors=OKABE_ITO[1]
        )
        if len(g):
            ax.hlines(g["value"].median(), i - 0.3, i + 0.3, color="black", lw=1.5)
    if order:
        ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order)
    unit = v["unit"].dropna().astype(str)
    ax.set_ylabel(f"ruxolitinib ({unit.iloc[0] if len(unit) else ''})")
    label = "CSF" if matrix == "csf" else matrix
    ax.set_title(
        f"Ruxolitinib in {label}\nopen: below LLOQ (substituted); bar: median", fontsize=10
    )
    return fig
