"""Patient flow through the trial: enrolled, assessed at each response visit, gone to HSCT,
died, lost to follow-up (results/clinical/patient_flow.tsv)."""

from __future__ import annotations

import pandas as pd

from rhlh.clinical.responders import visit_status
from rhlh.contract.timeline import patient_days

FLOW_COLUMNS = [
    "step",
    "visit",
    "n",
    "n_assessed",
    "n_ne",
    "n_missing",
    "n_dead_before",
    "n_hsct_before",
    "n_not_due",
    "note",
]


def patient_flow(
    patients: pd.DataFrame,
    responses: pd.DataFrame,
    visits=("D7", "D14", "D21", "D28", "W8", "PRECOND1"),
    horizon: float = 56,
    simon: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per step: enrolled; each response visit (patients with a response assessment,
    NE among them, missing, dead or gone to HSCT before it, not due); conditioning, HSCT,
    deaths (before HSCT / after HSCT) and lost to follow-up before ``horizon`` without HSCT.
    ``n`` is the patients in the step (at a visit: assessed, NE included); ``simon`` (the
    simon_decision table) adds the stage-1 readout after enrolment."""
    p = patient_days(patients)
    n = len(p)
    rows = [("enrolled", "", n, *[pd.NA] * 6, "patients who received ruxolitinib (D0)")]
    if simon is not None:
        for r in simon[simon["stage"] == "stage 1"].itertuples(index=False):
            rows.append(
                (
                    "Simon stage-1 readout",
                    "",
                    int(r.n_observed),
                    *[pd.NA] * 6,
                    f"first {r.n_observed} of {r.n_planned} planned ({r.design} design): "
                    f"{r.successes} successes ({r.success_definition}) vs > {r.threshold}: "
                    f"{r.decision}",
                )
            )
    for v in visits:
        st = visit_status(patients, responses, v)
        c = st["status"].value_counts()
        k = int(c.get("assessed", 0)) + int(c.get("ne", 0))
        rows.append(
            (
                "assessed",
                v,
                k,
                int(c.get("assessed", 0)),
                int(c.get("ne", 0)),
                int(c.get("missing", 0)),
                int(c.get("dead", 0)),
                int(c.get("hsct", 0)),
                int(c.get("not_due", 0)),
                f"{k} of {n} with a response assessment",
            )
        )
    cond = int(p["conditioning_day"].notna().sum())
    hsct = int(p["hsct_day"].notna().sum())
    dead = p["death_day"].notna()
    dead_after = dead & p["hsct_day"].notna() & (p["death_day"] >= p["hsct_day"])
    lost = ~dead & p["hsct_day"].isna() & (p["last_followup_day"] < horizon)
    rows += [
        ("conditioning", "", cond, *[pd.NA] * 6, "started HSCT conditioning"),
        ("HSCT", "", hsct, *[pd.NA] * 6, "transplanted"),
        (
            "died before HSCT",
            "",
            int((dead & ~dead_after).sum()),
            *[pd.NA] * 6,
            "deaths without HSCT or before the graft",
        ),
        (
            "died after HSCT",
            "",
            int(dead_after.sum()),
            *[pd.NA] * 6,
            "deaths on or after the graft day",
        ),
        (
            "lost to follow-up",
            "",
            int(lost.sum()),
            *[pd.NA] * 6,
            f"alive, no HSCT, last seen before day {horizon:g}",
        ),
    ]
    out = pd.DataFrame(rows, columns=FLOW_COLUMNS)
    for col in FLOW_COLUMNS[3:9]:
        out[col] = out[col].astype("Int64")
    out.insert(0, "order", range(1, len(out) + 1))
    return out
