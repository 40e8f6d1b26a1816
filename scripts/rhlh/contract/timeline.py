"""Timeline of the clinical tables (patients, responses): day columns read as numbers, and
the consistency check that validation runs on them (InputError with file, row, column)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rhlh.errors import InputError

RESPONSES = ("CR", "PR", "NR", "NE")
PATIENT_DAY_COLUMNS = (
    "last_followup_day",
    "hsct_day",
    "death_day",
    "conditioning_day",
    "reactivation_day",
)


# --- small helpers --------------------------------------------------------------------------


def day_values(df: pd.DataFrame, col: str) -> pd.Series:
    """A day column as float (NaN for empty; all NaN when the column is absent)."""
    if col not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float)


def patient_days(patients: pd.DataFrame) -> pd.DataFrame:
    """patient_id and every day column of patients.tsv as float."""
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype(str)}, index=patients.index)
    for col in PATIENT_DAY_COLUMNS:
        out[col] = day_values(patients, col)
    return out


def response_rows(responses: pd.DataFrame) -> pd.DataFrame:
    """patient_id, visit, day (float) and response (upper case) of responses.tsv."""
    out = pd.DataFrame(
        {
            "patient_id": responses["patient_id"].astype(str),
            "visit": responses["visit"].astype(str),
            "day": day_values(responses, "day"),
            "response": responses["response"].astype(str).str.strip().str.upper(),
        },
        index=responses.index,
    )
    return out


def fmt_day(x) -> str:
    """A day as written in messages: 28, not 28.0."""
    return str(int(x)) if pd.notna(x) and float(x).is_integer() else str(x)


def min_day(*values) -> float:
    """The earliest of the days given that are not missing (NaN if none)."""
    vals = [v for v in values if pd.notna(v)]
    return float(min(vals)) if vals else float("nan")


# --- consistency ----------------------------------------------------------------------------


def check_clinical_consistency(
    patients: pd.DataFrame, responses: pd.DataFrame, file_names: dict
) -> None:
    """Raise InputError (file, row, column) on clinically impossible timelines; else None."""
    pfile = file_names.get("patients", "patients.tsv")
    rfile = file_names.get("responses", "responses.tsv")
    p = patient_days(patients)
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
            raise InputError(pfile, msg, row=_row, column=col, value=fmt_day(_r[col]))

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
                fail(f"HSCT after death (death_day {fmt_day(r['death_day'])})", "hsct_day")
            if pd.notna(r["conditioning_day"]) and r["conditioning_day"] > r["death_day"]:
                fail(
                    f"conditioning after death (death_day {fmt_day(r['death_day'])})",
                    "conditioning_day",
                )
            if pd.notna(r["reactivation_day"]) and r["reactivation_day"] > r["death_day"]:
                fail(
                    f"reactivation after death (death_day {fmt_day(r['death_day'])})",
                    "reactivation_day",
                )
            if r["last_followup_day"] > r["death_day"]:
                fail(
                    f"last follow-up after death (death_day {fmt_day(r['death_day'])})",
                    "last_followup_day",
                )
        if (
            pd.notna(r["conditioning_day"])
            and pd.notna(r["hsct_day"])
            and r["conditioning_day"] > r["hsct_day"]
        ):
            fail(
                f"conditioning starts after HSCT (hsct_day {fmt_day(r['hsct_day'])})",
                "conditioning_day",
            )
        for col in ("hsct_day", "conditioning_day", "reactivation_day"):
            if pd.notna(r[col]) and r[col] > r["last_followup_day"]:
                fail(f"{col} after the last follow-up day ({fmt_day(r['last_followup_day'])})", col)

    resp = response_rows(responses)
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
                rfile, "response assessed before D0", row=row, column="day", value=fmt_day(r["day"])
            )
        if pd.notna(k["death_day"]) and r["day"] > k["death_day"]:
            raise InputError(
                rfile,
                f"response assessed after death (death_day {fmt_day(k['death_day'])} in {pfile})",
                row=row,
                column="day",
                value=fmt_day(r["day"]),
            )
        if r["day"] > k["last_followup_day"]:
            raise InputError(
                rfile,
                f"response assessed after the last follow-up day "
                f"({fmt_day(k['last_followup_day'])} in {pfile})",
                row=row,
                column="day",
                value=fmt_day(r["day"]),
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
                value=fmt_day(r["reactivation_day"]),
            )


# --- plausibility ---------------------------------------------------------------------------

# each check: its config key, and what a finding says; severity per check in the config's
# ``plausibility`` section: "error" stops validation, "warn" lists it in inputs/warnings.tsv
# and the validation log, "off" skips it
PLAUSIBILITY_CHECKS = (
    "visit_day",
    "after_hsct",
    "event_before_d0",
    "event_after_followup",
    "cytokine_range",
)
SEVERITIES = ("error", "warn", "off")
FINDING_COLUMNS = ["check", "severity", "file", "row", "column", "value", "message"]


def protocol_day(visit: str, conditioning_day=None) -> float:
    """The planned day of a visit label: D<n> -> n, W<n> -> 7 n, PRECOND<n> -> n days before
    conditioning (when it is known); NaN when the label has no planned day."""
    v = str(visit).strip().upper()
    for prefix, scale in (("D", 1), ("W", 7)):
        if v.startswith(prefix) and v[1:].lstrip("-").isdigit():
            return float(int(v[1:]) * scale)
    if v.startswith("PRECOND") and v[7:].isdigit() and pd.notna(conditioning_day):
        return float(conditioning_day) - int(v[7:])
    return float("nan")


def plausibility_findings(
    tables: dict, patients: pd.DataFrame, settings: dict | None = None
) -> list[dict]:
    """Implausible but possible timelines of samples, responses and PK rows.

    ``tables``: {name: (file, frame with patient_id, visit, day)}; ``settings``: the config's
    ``plausibility`` section (severity per check, ``visit_day_tolerance`` in days). Returns one
    dict per finding (FINDING_COLUMNS), in file and row order; checks set to "off" give none.
    """
    settings = settings or {}
    tolerance = settings.get("visit_day_tolerance", 3)
    p = patient_days(patients).set_index("patient_id")
    out = []
    for name, (file, df) in tables.items():
        if df is None or not len(df):
            continue
        what = {"samples": "sample", "responses": "response", "pk": "PK draw"}.get(name, name)
        for row, r in df.iterrows():
            k = p.loc[r["patient_id"]] if r["patient_id"] in p.index else None
            day = float(r["day"]) if pd.notna(r["day"]) else float("nan")
            if np.isnan(day) or k is None:
                continue
            cond = k["conditioning_day"]
            planned = protocol_day(r["visit"], cond)
            if pd.notna(planned) and abs(day - planned) > tolerance:
                out.append(
                    {
                        "check": "visit_day",
                        "file": str(file),
                        "row": int(row),
                        "column": "day",
                        "value": fmt_day(day),
                        "message": f"{what} labelled {r['visit']} is dated day {fmt_day(day)}, "
                        f"{fmt_day(abs(day - planned))} days from its planned day "
                        f"{fmt_day(planned)} (tolerance {tolerance} days: "
                        "plausibility.visit_day_tolerance)",
                    }
                )
            if pd.notna(k["hsct_day"]) and day > k["hsct_day"]:
                out.append(
                    {
                        "check": "after_hsct",
                        "file": str(file),
                        "row": int(row),
                        "column": "day",
                        "value": fmt_day(day),
                        "message": f"{what} after the patient's HSCT (hsct_day "
                        f"{fmt_day(k['hsct_day'])}): not on ruxolitinib treatment any more",
                    }
                )
    return with_severity(out, settings)


def with_severity(findings: list[dict], settings: dict | None) -> list[dict]:
    """Each finding with the severity its check has in ``settings`` (default warn), the ones
    whose check is "off" left out."""
    settings = settings or {}
    for f in findings:
        f["severity"] = settings.get(f["check"], "warn")
    return [f for f in findings if f["severity"] != "off"]


def event_findings(file, events: pd.DataFrame, patients: pd.DataFrame, settings=None) -> list:
    """Safety events dated outside the patient's time on study: before D0 (the first
    ruxolitinib dose, day 0; ``event_before_d0``) or after the last follow-up or the death
    (``event_after_followup``). ``events``: patient_id, day, term, file row numbers as index."""
    if events is None or not len(events):
        return []
    p = patient_days(patients).set_index("patient_id")
    out = []
    for row, r in events.iterrows():
        day = pd.to_numeric(pd.Series([r["day"]]), errors="coerce").iloc[0]
        if pd.isna(day) or r["patient_id"] not in p.index:
            continue
        k = p.loc[r["patient_id"]]
        term = str(r.get("term", "")).strip() or "event"
        found = None
        if day < 0:
            found = (
                "event_before_d0",
                f"event {term!r} dated day {fmt_day(day)}, before D0 (day 0, the first "
                "ruxolitinib dose): an event before treatment is not a treatment-emergent event",
            )
        elif pd.notna(k["death_day"]) and day > k["death_day"]:
            found = (
                "event_after_followup",
                f"event {term!r} dated day {fmt_day(day)}, after the patient's death "
                f"(death_day {fmt_day(k['death_day'])})",
            )
        elif pd.notna(k["last_followup_day"]) and day > k["last_followup_day"]:
            found = (
                "event_after_followup",
                f"event {term!r} dated day {fmt_day(day)}, after the patient's last follow-up "
                f"(last_followup_day {fmt_day(k['last_followup_day'])})",
            )
        if found:
            out.append(
                {
                    "check": found[0],
                    "file": str(file),
                    "row": int(row),
                    "column": "day",
                    "value": fmt_day(day),
                    "message": found[1],
                }
            )
    return with_severity(out, settings)


def apply_severity(findings: list[dict]) -> list[str]:
    """Raise InputError on the first finding whose severity is "error"; the warnings as text."""
    for f in findings:
        if f["severity"] == "error":
            raise InputError(
                f["file"],
                f["message"] + f" (plausibility.{f['check']}: error)",
                row=f["row"],
                column=f["column"],
                value=f["value"],
            )
    return [
        f"{f['file']}, row {f['row']}, column '{f['column']}': {f['message']}" for f in findings
    ]
