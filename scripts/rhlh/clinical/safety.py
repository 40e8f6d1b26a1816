"""Safety: adverse events by grade and category, patients with a grade >= k event, viral
infections."""

from __future__ import annotations

import numpy as np
import pandas as pd


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


# --- the on-treatment window -----------------------------------------------------------------

WINDOW_ENDS = ("day_before_conditioning", "hsct", "end_of_followup")
WINDOW_COLUMNS = [
    "patient_id",
    "day",
    "category",
    "term",
    "grade",
    "status",
    "window_start",
    "window_end",
    "window",
]


def treatment_windows(patients: pd.DataFrame, window: dict) -> pd.DataFrame:
    """Each patient's on-treatment window [start, end] in days: ``window['start_day']`` (D0)
    to ``window['end']`` = 'day_before_conditioning' (conditioning day - 1; HSCT day - 1 when
    only HSCT is recorded), 'hsct' (HSCT day) or 'end_of_followup'; without conditioning /
    HSCT the window ends at the last follow-up (or death). Columns patient_id, window_start,
    window_end, end_reason."""
    from rhlh.contract.timeline import fmt_day, patient_days

    end = window["end"]
    if end not in WINDOW_ENDS:
        raise ValueError(f"safety window end must be one of {', '.join(WINDOW_ENDS)}")
    p = patient_days(patients)
    rows = []
    for r in p.itertuples(index=False):
        last = r.last_followup_day
        if pd.notna(r.death_day):
            last = max(last, r.death_day)
        if end == "day_before_conditioning" and pd.notna(r.conditioning_day):
            e, why = (
                r.conditioning_day - 1,
                f"day before conditioning (day {fmt_day(r.conditioning_day)})",
            )
        elif end in ("day_before_conditioning", "hsct") and pd.notna(r.hsct_day):
            off = 1 if end == "day_before_conditioning" else 0
            e, why = r.hsct_day - off, f"HSCT day {fmt_day(r.hsct_day)}" + (" - 1" if off else "")
        else:
            e, why = last, "end of follow-up"
        rows.append((r.patient_id, float(window["start_day"]), float(e), why))
    return pd.DataFrame(rows, columns=["patient_id", "window_start", "window_end", "end_reason"])


def split_by_window(
    events: pd.DataFrame | None, patients: pd.DataFrame, window: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Events (their start day) inside and outside each patient's on-treatment window; both
    with WINDOW_COLUMNS (window = 'on treatment', 'before window' or 'after window')."""
    if events is None or len(events) == 0:
        empty = pd.DataFrame(columns=WINDOW_COLUMNS)
        return empty, empty.copy()
    w = treatment_windows(patients, window)
    ev = events.assign(patient_id=events["patient_id"].astype(str))
    ev = ev.merge(w[["patient_id", "window_start", "window_end"]], on="patient_id", how="left")
    day = pd.to_numeric(ev["day"]).astype(float)
    where = np.where(
        day < ev["window_start"],
        "before window",
        np.where(day > ev["window_end"], "after window", "on treatment"),
    )
    ev = ev.assign(day=day, window=where)[WINDOW_COLUMNS]
    inside = ev["window"] == "on treatment"
    return ev[inside].reset_index(drop=True), ev[~inside].reset_index(drop=True)


def patients_with_viral_infection(events: pd.DataFrame | None) -> int:
    """Patients with at least one viral infection (new or worsening)."""
    if events is None or len(events) == 0:
        return 0
    vi = events[
        (events["category"] == "viral_infection") & events["status"].isin(["new", "worsening"])
    ]
    return int(vi["patient_id"].nunique())
