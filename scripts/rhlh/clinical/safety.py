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
