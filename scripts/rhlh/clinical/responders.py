"""Responders: each patient's status at a response visit, the primary-endpoint status (alive at
HSCT or week 8) and the responder definitions of clinical.responder_definition
(results/clinical/responders.tsv)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.contract.timeline import fmt_day, min_day, patient_days, response_rows
from rhlh.tables import RESPONDER_COLUMNS

RANK = {"NR": 0, "PR": 1, "CR": 2}
RESPONSE_VISIT_DAYS = {"D7": 7, "D14": 14, "D21": 21, "D28": 28, "W8": 56}
DEFINITIONS = ("cr_pr_d28", "cr_d28", "best_by_w8", "alive_at_hsct")
# the protocol's "W8, and day -1 of conditioning": W8, or PRECOND1 for a patient whose
# conditioning (or HSCT) starts on or before the W8 day, whichever comes first
W8_OR_PRECOND = "W8 or PRECOND1"


def visit_status(
    patients: pd.DataFrame, responses: pd.DataFrame, visit: str, visit_days: dict | None = None
) -> pd.DataFrame:
    """Each patient's status at one response visit: patient_id, status (assessed, ne, dead,
    hsct, missing, not_due), response, day, reason."""
    visit_days = RESPONSE_VISIT_DAYS if visit_days is None else visit_days
    if visit == W8_OR_PRECOND:
        return _w8_or_precond_status(patients, responses, visit_days)
    p = patient_days(patients)
    resp = response_rows(responses)
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
                    f"{a['response']} at {visit} (day {fmt_day(a['day'])})",
                )
            )
            continue
        left = min_day(r.conditioning_day, r.hsct_day)
        if visit == "PRECOND1":
            if pd.notna(left):
                rows.append(
                    (
                        pid,
                        "missing",
                        None,
                        np.nan,
                        f"no PRECOND1 assessment (conditioning on day {fmt_day(left)})",
                    )
                )
            elif pd.notna(r.death_day):
                rows.append(
                    (
                        pid,
                        "dead",
                        None,
                        np.nan,
                        f"died on day {fmt_day(r.death_day)} before conditioning",
                    )
                )
            else:
                rows.append((pid, "not_due", None, np.nan, "no HSCT conditioning yet"))
            continue
        t = visit_days[visit]
        if pd.notna(r.death_day) and r.death_day <= t:
            rows.append(
                (pid, "dead", None, np.nan, f"died on day {fmt_day(r.death_day)}, before {visit}")
            )
        elif pd.notna(left) and left <= t:
            rows.append(
                (
                    pid,
                    "hsct",
                    None,
                    np.nan,
                    f"left for HSCT (conditioning/HSCT day {fmt_day(left)}) before {visit}",
                )
            )
        elif r.last_followup_day < t:
            rows.append(
                (
                    pid,
                    "missing",
                    None,
                    np.nan,
                    f"lost to follow-up on day {fmt_day(r.last_followup_day)}, before {visit}",
                )
            )
        else:
            rows.append((pid, "missing", None, np.nan, f"no {visit} assessment"))
    return pd.DataFrame(rows, columns=["patient_id", "status", "response", "day", "reason"])


def _w8_or_precond_status(patients, responses, visit_days) -> pd.DataFrame:
    """Status at 'W8 or PRECOND1': the PRECOND1 assessment for patients who started
    conditioning (or were transplanted) on or before the W8 day, else the W8 status."""
    w8 = visit_status(patients, responses, "W8", visit_days)
    pre = visit_status(patients, responses, "PRECOND1", visit_days)
    p = patient_days(patients)
    left = [min_day(c, h) for c, h in zip(p["conditioning_day"], p["hsct_day"], strict=True)]
    early = pd.Series([pd.notna(x) and x <= visit_days["W8"] for x in left], index=w8.index)
    out = w8.copy()
    out.loc[early] = pre.loc[early]
    out.loc[early, "reason"] = "conditioning before W8: " + pre.loc[early, "reason"]
    return out


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
    p = patient_days(patients)
    resp = response_rows(responses)
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
                    why += f" (died on day {fmt_day(r.death_day)})"
                rows.append((r.patient_id, False, "NE", why + "; non-responder (ITT)"))
            else:
                cls, day, visit = best
                rows.append(
                    (
                        r.patient_id,
                        cls in ("PR", "CR"),
                        cls,
                        f"best response by W8: {cls} (first at {visit}, day {fmt_day(day)})",
                    )
                )
    else:
        prim = primary_endpoint_status(patients, horizon=horizon)
        for r, s in zip(p.itertuples(index=False), prim.itertuples(index=False), strict=True):
            end = min_day(r.hsct_day, horizon)
            best = _best_by(resp, r.patient_id, end)
            cls = best[0] if best is not None else "NE"
            rows.append((r.patient_id, bool(s.success), cls, s.reason))
    out = pd.DataFrame(rows, columns=RESPONDER_COLUMNS)
    out["responder"] = out["responder"].astype(bool)
    return out


def primary_endpoint_status(patients: pd.DataFrame, horizon: float = 56) -> pd.DataFrame:
    """Per patient: alive at HSCT or at week 8 (success) and the KM time/event for death
    censored at HSCT, the horizon or last follow-up; columns patient_id, status, success,
    time, event, reason."""
    p = patient_days(patients)
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
                    f"died on day {fmt_day(r.death_day)} before HSCT and week 8",
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
                    f"alive at HSCT on day {fmt_day(r.hsct_day)}",
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
                    f"alive at day {fmt_day(horizon)} without HSCT",
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
                    f"last seen alive on day {fmt_day(r.last_followup_day)}, before "
                    f"day {fmt_day(horizon)}; status at week 8 unknown",
                )
            )
    out = pd.DataFrame(rows, columns=["patient_id", "status", "success", "time", "event", "reason"])
    out["time"] = out["time"].astype(float)
    out["event"] = out["event"].astype(bool)
    return out
