"""The input contract: typed checks of every table and the cross-table checks.

Every violation raises :class:`rhlh.errors.InputError` naming file, row and column. Nothing
here is ever evaluated as code: values and column names are only compared as strings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rhlh.errors import InputError
from rhlh.io import check_file, read_table

log = logging.getLogger("rhlh")

ID_RE = re.compile(r"^[A-Za-z0-9._-]+$")
INT_RE = re.compile(r"^[+-]?\d+$")
RESPONSES = ("CR", "PR", "NR", "NE")
RESPONSE_VISITS = ("D7", "D14", "D21", "D28", "W8", "PRECOND1")
PK_MATRICES = ("plasma", "csf")
EVENT_CATEGORIES = ("viral_infection", "adverse_event")
EVENT_STATUS = ("new", "worsening")

# nf-core/rnaseq writes its merged gene counts several ways: the length-scaled table (no
# offsets needed, the workflow's choice) is taken when it is there
NFCORE_COUNTS = [
    "salmon.merged.gene_counts_length_scaled.tsv",
    "salmon.merged.gene_counts.tsv",
    "salmon.merged.gene_counts_scaled.tsv",
    "rsem.merged.gene_counts.tsv",
]
# contract file names inside a cohort folder; the first existing candidate wins
COHORT_FILES = {
    "samples": ["samples.tsv", "samples.csv", "samples.tsv.gz"],
    "patients": ["patients.tsv", "patients.csv", "patients.tsv.gz"],
    "responses": ["responses.tsv", "responses.csv", "responses.tsv.gz"],
    "cytokines": ["cytokines.tsv", "cytokines.csv", "cytokines.tsv.gz"],
    "counts": [
        "counts.tsv.gz",
        "counts.tsv",
        "counts.csv",
        "counts.csv.gz",
        "counts.featurecounts.tsv",
        "counts.featurecounts.tsv.gz",
        "counts.h5ad",
        # nf-core/rnaseq's merged gene tables, and a folder of per-sample quantifications
        *NFCORE_COUNTS,
        "quant",
    ],
    "pk": ["pk.tsv", "pk.csv", "pk.tsv.gz"],
    "events": ["events.tsv", "events.csv", "events.tsv.gz"],
}
REQUIRED_INPUTS = ("samples", "patients", "responses", "cytokines", "counts")


def resolve_inputs(config: dict, base: Path | str = ".") -> dict[str, str | None]:
    """Input paths: an explicit ``inputs.<table>`` wins, else the contract name in ``cohort``."""
    base = Path(base)
    cohort = config.get("cohort")
    explicit = config.get("inputs") or {}
    paths = {}
    if cohort and not all(explicit.get(t) for t in REQUIRED_INPUTS):
        folder = base / cohort
        if not folder.exists():
            raise InputError(
                folder,
                "the cohort folder does not exist (check 'cohort' in the config or "
                "--config cohort=...; a relative path is read from the workflow folder)",
            )
        if not folder.is_dir():
            raise InputError(folder, "'cohort' must name a folder, this is a file")
    for table, names in COHORT_FILES.items():
        path = explicit.get(table)
        if not path and cohort:
            folder = base / cohort
            # a dangling link is found too, so that the message names it
            found = [
                folder / n for n in names if (folder / n).exists() or (folder / n).is_symlink()
            ]
            if len(found) > 1 and all(f.name in NFCORE_COUNTS[:3] for f in found):
                log.info("%s: several nf-core tables, %s is read", folder, found[0].name)
                found = found[:1]
            if len(found) > 1:
                raise InputError(
                    folder,
                    f"several {table} files, which one is meant is not clear: keep one of "
                    + ", ".join(f.name for f in found),
                )
            path = str(found[0]) if found else None
        elif path:
            path = str(base / path) if not Path(path).is_absolute() else path
        paths[table] = path
    missing = [t for t in REQUIRED_INPUTS if not paths[t]]
    if "counts" in missing and cohort and (base / cohort).is_dir():
        from rhlh.contract.counts import NFCORE_RE, estimator_of

        for f in sorted((base / cohort).iterdir()):
            if NFCORE_RE.match(f.name.removesuffix(".gz")):
                estimator_of(f)  # a TPM table is named as such
    if missing:
        where = f"cohort folder {cohort}" if cohort else "config 'inputs'"
        raise InputError(
            where,
            f"no {missing[0]} table found (expected one of {', '.join(COHORT_FILES[missing[0]])},"
            f" or set inputs.{missing[0]} in the config)",
        )
    for table, path in paths.items():
        if not path:
            continue
        p = Path(path)
        if p.is_symlink() and not p.exists():
            check_file(p)
        if not p.exists():
            raise InputError(path, f"{table} file does not exist")
        if table != "counts" and p.is_dir():
            check_file(p)
    return paths


# --- column checks ---------------------------------------------------------------------------


def _check_ids(path, df, col, unique=False):
    for row, v in df[col].items():
        if v == "":
            raise InputError(path, "empty value: an identifier is required", row=row, column=col)
        if not ID_RE.match(v):
            raise InputError(
                path,
                "identifier may contain only letters, digits, '.', '_' and '-'",
                row=row,
                column=col,
                value=v,
            )
    if unique:
        dup = df[col].duplicated()
        if dup.any():
            row = int(dup[dup].index[0])
            raise InputError(
                path, "duplicated identifier", row=row, column=col, value=df.at[row, col]
            )


def _to_int(path, df, col, required=True) -> pd.Series:
    out = []
    for row, v in df[col].items():
        if v == "" and not required:
            out.append(pd.NA)
            continue
        if not INT_RE.match(v):
            raise InputError(
                path,
                "expected a whole number of days" if "day" in col else "expected an integer",
                row=row,
                column=col,
                value=v,
            )
        out.append(int(v))
    return pd.Series(out, index=df.index, dtype="Int64")


def _to_number(path, df, col, required=False, positive=False) -> pd.Series:
    out = []
    for row, v in df[col].items():
        if v == "":
            if required:
                raise InputError(path, "empty value: a number is required", row=row, column=col)
            out.append(np.nan)
            continue
        try:
            x = float(v.replace(",", ".")) if v.count(",") == 1 and "." not in v else float(v)
        except ValueError:
            raise InputError(path, "expected a number", row=row, column=col, value=v) from None
        if not np.isfinite(x) or (positive and x < 0):
            raise InputError(
                path, "expected a finite non-negative number", row=row, column=col, value=v
            )
        out.append(x)
    return pd.Series(out, index=df.index, dtype="float64")


def _check_enum(path, df, col, allowed, what):
    for row, v in df[col].items():
        if v not in allowed:
            raise InputError(
                path,
                f"unknown {what}: expected one of {', '.join(allowed)}",
                row=row,
                column=col,
                value=v,
            )


def _check_known(path, df, col, known, what, known_file):
    for row, v in df[col].items():
        if v not in known:
            raise InputError(
                path, f"{what} not found in {known_file}", row=row, column=col, value=v
            )


def _no_rows(path, df):
    if df.empty:
        raise InputError(path, "table has a header but no rows")


# --- tables ----------------------------------------------------------------------------------


def read_samples(path, visits) -> pd.DataFrame:
    """samples.tsv: one row per blood draw."""
    df = read_table(path, required=["sample_id", "patient_id", "visit", "day", "batch"])
    _no_rows(path, df)
    _check_ids(path, df, "sample_id", unique=True)
    _check_ids(path, df, "patient_id")
    _check_enum(path, df, "visit", list(visits), "visit (not in the config's visits)")
    df["day"] = _to_int(path, df, "day")
    for row, v in df["batch"].items():
        if v == "":
            raise InputError(path, "empty batch", row=row, column="batch")
    dup = df.duplicated(["patient_id", "visit"])
    if dup.any():
        row = int(dup[dup].index[0])
        raise InputError(
            path,
            "two samples for the same patient and visit",
            row=row,
            column="visit",
            value=f"{df.at[row, 'patient_id']} {df.at[row, 'visit']}",
        )
    return df


PATIENT_DAYS = ["hsct_day", "death_day", "conditioning_day", "reactivation_day"]


def read_patients(path) -> pd.DataFrame:
    """patients.tsv: one row per enrolled patient."""
    df = read_table(path, required=["patient_id", "last_followup_day"])
    _no_rows(path, df)
    _check_ids(path, df, "patient_id", unique=True)
    df["last_followup_day"] = _to_int(path, df, "last_followup_day")
    for col in PATIENT_DAYS:
        if col in df.columns:
            df[col] = _to_int(path, df, col, required=False)
        else:
            df[col] = pd.Series(pd.NA, index=df.index, dtype="Int64")
    if "age_months" in df.columns:
        df["age_months"] = _to_number(path, df, "age_months", positive=True)
    for row, r in df.iterrows():
        for col in ("hsct_day", "death_day", "conditioning_day"):
            if pd.notna(r[col]) and r[col] < 0:
                raise InputError(
                    path,
                    f"{col} before D0 (first ruxolitinib dose)",
                    row=row,
                    column=col,
                    value=int(r[col]),
                )
        if pd.notna(r["death_day"]) and pd.notna(r["hsct_day"]) and r["death_day"] < r["hsct_day"]:
            raise InputError(
                path, "HSCT after death", row=row, column="hsct_day", value=int(r["hsct_day"])
            )
        if (
            pd.notna(r["conditioning_day"])
            and pd.notna(r["hsct_day"])
            and r["conditioning_day"] > r["hsct_day"]
        ):
            raise InputError(
                path,
                "conditioning starts after HSCT",
                row=row,
                column="conditioning_day",
                value=int(r["conditioning_day"]),
            )
    return df


def read_responses(path, patients: pd.DataFrame, patients_path) -> pd.DataFrame:
    """responses.tsv: one row per patient x assessment."""
    df = read_table(path, required=["patient_id", "visit", "day", "response"])
    _no_rows(path, df)
    _check_ids(path, df, "patient_id")
    _check_known(
        path, df, "patient_id", set(patients["patient_id"]), "patient", Path(patients_path).name
    )
    _check_enum(path, df, "visit", RESPONSE_VISITS, "response visit")
    df["day"] = _to_int(path, df, "day")
    _check_enum(path, df, "response", RESPONSES, "response")
    dup = df.duplicated(["patient_id", "visit"])
    if dup.any():
        row = int(dup[dup].index[0])
        raise InputError(
            path,
            "two assessments for the same patient and visit",
            row=row,
            column="visit",
            value=df.at[row, "visit"],
        )
    death = patients.set_index("patient_id")["death_day"]
    for row, r in df.iterrows():
        d = death.get(r["patient_id"])
        if pd.notna(d) and r["day"] > d:
            raise InputError(
                path,
                f"response assessed after the patient's death (death_day {int(d)} in "
                f"{Path(patients_path).name})",
                row=row,
                column="day",
                value=int(r["day"]),
            )
    return df


PK_UNIT = "ng/mL"
# ruxolitinib free base, C17H18N6: converts a molar concentration to a mass concentration
RUXOLITINIB_G_PER_MOL = 306.37
PK_EXTRA_VISITS = ("PRECOND8", "PRECOND1", "W8")


def pk_unit_factor(unit) -> float:
    """Factor converting a ruxolitinib concentration in ``unit`` to ng/mL; ValueError if the
    unit is unknown. Mass units as for cytokines; nmol/L (nM) and umol/L (uM) through the molar
    mass of ruxolitinib (306.37 g/mol: 1 nmol/L = 0.30637 ng/mL)."""
    from rhlh.contract.lab import _UNIT_FACTORS, _normalise_unit

    key = _normalise_unit(unit)
    molar = {"nmol/l": 1e-3, "nm": 1e-3, "pmol/l": 1e-6, "umol/l": 1.0, "um": 1.0}
    if key in molar:
        return molar[key] * RUXOLITINIB_G_PER_MOL
    if key in _UNIT_FACTORS:
        return _UNIT_FACTORS[key] / 1e3
    raise ValueError(
        "unknown concentration unit: expected ng/mL (or ug/L, ng/L, pg/mL, ug/mL, mg/L, "
        "or nmol/L, converted with the molar mass of ruxolitinib, 306.37 g/mol)"
    )


def _convert_reading(text, factor):
    """A concentration text (number or censored reading) multiplied by ``factor``."""
    from rhlh.contract.lab import parse_value

    value, censor, _bound = parse_value(text)
    if factor == 1.0 or value is None or np.isnan(value):
        return text
    prefix = {"left": "<", "right": ">"}.get(censor, "")
    return prefix + format(value * factor, ".10g")


def read_pk(path, patients, patients_path, visits=None) -> pd.DataFrame:
    """pk.tsv: ruxolitinib concentrations, converted to ng/mL (the ``unit`` column then says
    ng/mL; the lloq too); concentrations keep their text form (censored readings) for parsing."""
    df = read_table(
        path, required=["patient_id", "day", "visit", "matrix", "concentration", "unit"]
    )
    _no_rows(path, df)
    _check_ids(path, df, "patient_id")
    _check_known(
        path, df, "patient_id", set(patients["patient_id"]), "patient", Path(patients_path).name
    )
    df["day"] = _to_int(path, df, "day")
    if visits is not None:
        allowed = list(visits) + [v for v in PK_EXTRA_VISITS if v not in visits]
        _check_enum(path, df, "visit", allowed, "PK visit (not a protocol visit)")
    _check_enum(path, df, "matrix", PK_MATRICES, "matrix")
    if "lloq" in df.columns:
        df["lloq"] = _to_number(path, df, "lloq", positive=True)
    from rhlh.contract.lab import parse_value

    factors = []
    for row, u in df["unit"].items():
        if u == "":
            raise InputError(
                path,
                f"empty unit: the concentration unit is required ({PK_UNIT})",
                row=row,
                column="unit",
            )
        try:
            factors.append(pk_unit_factor(u))
        except ValueError as exc:
            raise InputError(path, str(exc), row=row, column="unit", value=u) from None

    for row, v in df["concentration"].items():
        try:
            value, _censor, _bound = parse_value(v)
        except ValueError as exc:
            raise InputError(
                path, f"unparseable concentration ({exc})", row=row, column="concentration", value=v
            ) from None
        if value is not None and not np.isnan(value) and value < 0:
            raise InputError(
                path, "negative concentration", row=row, column="concentration", value=v
            )
    factor = pd.Series(factors, index=df.index)
    convert = factor != 1.0
    if convert.any():
        df.loc[convert, "concentration"] = [
            _convert_reading(v, f)
            for v, f in zip(df.loc[convert, "concentration"], factor[convert], strict=True)
        ]
        if "lloq" in df.columns:
            df["lloq"] = df["lloq"] * factor
        units = sorted(set(df.loc[convert, "unit"]))
        log.info(
            "%s: %d concentrations converted to %s from %s",
            Path(path).name,
            int(convert.sum()),
            PK_UNIT,
            ", ".join(units),
        )
    df["unit"] = PK_UNIT
    return df


def read_events(path, patients, patients_path) -> pd.DataFrame:
    """events.tsv: safety events."""
    df = read_table(path, required=["patient_id", "day", "category", "term", "grade", "status"])
    _check_known(
        path, df, "patient_id", set(patients["patient_id"]), "patient", Path(patients_path).name
    )
    df["day"] = _to_int(path, df, "day")
    _check_enum(path, df, "category", EVENT_CATEGORIES, "event category")
    _check_enum(path, df, "status", EVENT_STATUS, "event status")
    df["grade"] = _to_int(path, df, "grade")
    for row, g in df["grade"].items():
        if not 1 <= g <= 5:
            raise InputError(path, "grade must be 1 to 5", row=row, column="grade", value=int(g))
    return df


# --- the whole cohort -------------------------------------------------------------------------


@dataclass
class Cohort:
    """The validated cohort: typed tables plus notes for the summary."""

    paths: dict
    samples: pd.DataFrame
    patients: pd.DataFrame
    responses: pd.DataFrame
    cytokines: pd.DataFrame
    pk: pd.DataFrame | None
    events: pd.DataFrame | None
    count_samples: list
    n_genes: int
    dropped_samples: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


def check_sample_match(counts_path, samples_path, count_samples, samples, on_mismatch="fail"):
    """Every sample in the counts is in samples.tsv and the reverse; returns ids dropped."""
    sheet = list(samples["sample_id"])
    extra_counts = [s for s in count_samples if s not in set(sheet)]
    extra_sheet = [s for s in sheet if s not in set(count_samples)]
    if on_mismatch == "fail":
        if extra_counts:
            raise InputError(
                counts_path,
                f"sample in the counts but not in {Path(samples_path).name}",
                row=f"sample {extra_counts[0]}",
                column="sample_id",
                value=extra_counts[0],
            )
        if extra_sheet:
            row = int(samples.index[samples["sample_id"] == extra_sheet[0]][0])
            raise InputError(
                samples_path,
                f"sample has no column in the counts file {Path(counts_path).name}",
                row=row,
                column="sample_id",
                value=extra_sheet[0],
            )
    return extra_counts, extra_sheet


def validate_cohort(config: dict, base=".", read_counts_fn=None) -> Cohort:
    """Check every input table and the cross-table rules; raise InputError on the first defect."""
    from rhlh.contract.counts import read_counts
    from rhlh.contract.lab import parse_cytokines

    paths = resolve_inputs(config, base)
    visits = config["visits"]
    baseline = config.get("baseline_visit", "D0")
    if baseline not in visits:
        raise InputError(
            "config",
            f"baseline_visit {baseline!r} is not one of the visits ({', '.join(visits)})",
            column="baseline_visit",
            value=baseline,
        )
    samples = read_samples(paths["samples"], visits)
    patients = read_patients(paths["patients"])
    _check_known(
        paths["samples"],
        samples,
        "patient_id",
        set(patients["patient_id"]),
        "patient",
        Path(paths["patients"]).name,
    )
    responses = read_responses(paths["responses"], patients, paths["patients"])
    from rhlh.contract.timeline import check_clinical_consistency

    check_clinical_consistency(
        patients, responses, {"patients": paths["patients"], "responses": paths["responses"]}
    )
    for row, r in samples.iterrows():
        p = patients.loc[patients["patient_id"] == r["patient_id"]].iloc[0]
        if pd.notna(p["death_day"]) and r["day"] > p["death_day"]:
            raise InputError(
                paths["samples"],
                "blood draw after the patient's death",
                row=row,
                column="day",
                value=int(r["day"]),
            )
    pk = read_pk(paths["pk"], patients, paths["patients"], visits) if paths["pk"] else None
    events = read_events(paths["events"], patients, paths["patients"]) if paths["events"] else None
    from rhlh.contract.timeline import apply_severity

    timeline_warnings = apply_severity(
        plausibility(paths, config, samples, patients, responses, pk, events)
    )

    counts = (read_counts_fn or read_counts)(
        paths["counts"], sample_ids=list(samples["sample_id"]), **(config.get("counts") or {})
    )
    mismatch = config.get("sample_mismatch", "fail")
    extra_counts, extra_sheet = check_sample_match(
        paths["counts"], paths["samples"], counts["samples"], samples, mismatch
    )
    _check_count_samples(paths["counts"], counts, config)
    _check_baseline_patients(paths["samples"], samples, counts["samples"], config, baseline)
    warnings = list(counts.get("notes") or []) + timeline_warnings
    if extra_counts or extra_sheet:
        warnings.append(
            f"dropped {len(extra_counts)} count samples missing from the sheet "
            f"({', '.join(extra_counts[:5])}) and {len(extra_sheet)} sheet samples without counts "
            f"({', '.join(extra_sheet[:5])})"
        )
    cyto_raw = read_table(paths["cytokines"], required=["sample_id", "analyte", "value", "unit"])
    _no_rows(paths["cytokines"], cyto_raw)
    _check_known(
        paths["cytokines"],
        cyto_raw,
        "sample_id",
        set(samples["sample_id"]),
        "sample",
        Path(paths["samples"]).name,
    )
    cytokines = parse_cytokines(
        cyto_raw, file=paths["cytokines"], duplicates=_cytokine_duplicates(config)
    )
    from rhlh.contract.lab import range_findings

    warnings += apply_severity(
        range_findings(cytokines, paths["cytokines"], config.get("plausibility") or {})
    )
    no_base = sorted(
        set(samples["patient_id"]) - set(samples.loc[samples["visit"] == baseline, "patient_id"])
    )
    if no_base:
        warnings.append(f"no {baseline} sample for patients {', '.join(no_base)}")
    for w in warnings:
        log.warning(w)
    return Cohort(
        paths=paths,
        samples=samples,
        patients=patients,
        responses=responses,
        cytokines=cytokines,
        pk=pk,
        events=events,
        count_samples=counts["samples"],
        n_genes=counts["counts"].shape[1],
        dropped_samples=extra_counts + extra_sheet,
        warnings=warnings,
    )


def plausibility(
    paths, config, samples, patients, responses, pk, events=None, cytokines=None
) -> list[dict]:
    """Findings of the plausibility checks, with the severity the config's ``plausibility``
    section gives each check: the timeline of samples, responses and PK draws and the dates of
    safety events (rhlh.contract.timeline), and cytokine readings outside their range of
    quantification (rhlh.contract.lab; when ``cytokines``, parsed, is given)."""
    from rhlh.contract.lab import range_findings
    from rhlh.contract.timeline import event_findings, plausibility_findings

    settings = config.get("plausibility") or {}
    tables = {
        "samples": (paths["samples"], samples),
        "responses": (paths["responses"], responses),
        "pk": (paths.get("pk"), pk),
    }
    found = plausibility_findings(tables, patients, settings)
    found += event_findings(paths.get("events"), events, patients, settings)
    if cytokines is not None:
        found += range_findings(cytokines, paths["cytokines"], settings)
    return found


def plausibility_table(paths: dict, config: dict) -> pd.DataFrame:
    """The warnings of the plausibility checks as a table (inputs/warnings.tsv): one row per
    finding, columns FINDING_COLUMNS; the inputs are read as validation reads them."""
    from rhlh.contract.timeline import FINDING_COLUMNS

    samples = read_samples(paths["samples"], config["visits"])
    patients = read_patients(paths["patients"])
    responses = read_responses(paths["responses"], patients, paths["patients"])
    pk = (
        read_pk(paths["pk"], patients, paths["patients"], config["visits"])
        if paths.get("pk")
        else None
    )
    events = (
        read_events(paths["events"], patients, paths["patients"]) if paths.get("events") else None
    )
    cytokines = clean_table("cytokines", paths, config)
    findings = plausibility(paths, config, samples, patients, responses, pk, events, cytokines)
    df = pd.DataFrame(findings, columns=FINDING_COLUMNS)
    df["file"] = [Path(f).name for f in df["file"]]
    return df


def _check_baseline_patients(path, samples, count_samples, config, baseline) -> None:
    """The DE designs compare every visit with the baseline: too few patients with a baseline
    sample that has counts (a one-patient cohort) stops validation, not the DE job."""
    need = (config.get("de") or {}).get("min_patients_per_visit")
    if not need:
        return
    excluded = {str(s) for s in ((config.get("expression") or {}).get("exclude_samples") or [])}
    have = {str(s) for s in count_samples} - excluded
    base = samples[(samples["visit"] == baseline) & samples["sample_id"].isin(have)]
    n = base["patient_id"].nunique()
    if n < need:
        rows = samples.index[samples["visit"] == baseline]
        raise InputError(
            path,
            f"the baseline visit {baseline} has samples with counts of only {n} patient(s); "
            f"the DE designs need at least {need} (de.min_patients_per_visit): deliver more "
            "patients, or lower de.min_patients_per_visit",
            row=int(rows[0]) if len(rows) else None,
            column="visit",
            value=baseline,
        )


def _check_count_samples(path, counts: dict, config: dict) -> None:
    """Up-front checks of the count matrix: not empty, no sample without any count (unless it
    is excluded in the config), every excluded sample known."""
    matrix = counts["counts"]
    samples = [str(s) for s in counts["samples"]]
    if matrix.size == 0 or not matrix.any():
        raise InputError(path, "the count matrix holds no count at all (every value is 0)")
    excluded = [str(s) for s in ((config.get("expression") or {}).get("exclude_samples") or [])]
    unknown = [s for s in excluded if s not in set(samples)]
    if unknown:
        raise InputError(
            "config",
            f"sample to exclude is not in the counts file {Path(path).name}",
            column="expression.exclude_samples",
            value=unknown[0],
        )
    empty = [s for s, total in zip(samples, matrix.sum(axis=1), strict=True) if total == 0]
    empty = [s for s in empty if s not in set(excluded)]
    if empty:
        raise InputError(
            path,
            f"sample has no count at all ({len(empty)} such sample(s)): a failed library; "
            "leave it out with expression.exclude_samples in the config",
            column=f"sample {empty[0]}",
        )


def _cytokine_duplicates(config) -> str:
    choice = (config.get("cytokines") or {}).get("duplicates", "mean")
    return "error" if choice == "fail" else choice


def input_fingerprint(paths: dict, config: dict, code_version: str) -> str:
    """A key over input files' size and mtime, the config and the code version."""
    from rhlh.contract.counts import count_input_files

    h = hashlib.sha256()
    files = [(t, paths[t]) for t in sorted(paths) if paths[t]]
    if paths.get("counts"):
        files += [
            ("counts", f) for f in count_input_files(paths["counts"], **config.get("counts") or {})
        ]
    for table, p in files:
        st = Path(p).stat()
        h.update(f"{table}:{Path(p).resolve()}:{st.st_size}:{st.st_mtime_ns};".encode())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    h.update(code_version.encode())
    return h.hexdigest()[:20]


def clean_table(table: str, paths: dict, config: dict) -> pd.DataFrame:
    """The typed, checked version of one input table (as written to inputs/validated/)."""
    if table == "samples":
        return read_samples(paths["samples"], config["visits"])
    patients = read_patients(paths["patients"])
    if table == "patients":
        return patients
    if table == "responses":
        return read_responses(paths["responses"], patients, paths["patients"])
    if table == "pk":
        return read_pk(paths["pk"], patients, paths["patients"], config["visits"])
    if table == "events":
        return read_events(paths["events"], patients, paths["patients"])
    if table == "cytokines":
        from rhlh.contract.lab import parse_cytokines

        raw = read_table(paths["cytokines"], required=["sample_id", "analyte", "value", "unit"])
        return parse_cytokines(
            raw, file=paths["cytokines"], duplicates=_cytokine_duplicates(config)
        )
    raise ValueError(f"unknown table {table}")


def summarize(
    samples: pd.DataFrame,
    counts_obs: pd.DataFrame,
    n_genes: int,
    cytokines: pd.DataFrame | None,
    visits,
    baseline,
) -> pd.DataFrame:
    """Cohort summary rows (section, item, value): patients, samples per visit, genes, analytes."""
    rows = [
        ("cohort", "patients", samples["patient_id"].nunique()),
        ("cohort", "samples", len(samples)),
        ("cohort", "samples_with_counts", len(counts_obs)),
        ("cohort", "batches", samples["batch"].nunique()),
        ("expression", "genes", n_genes),
    ]
    for v in visits:
        rows.append(("samples_per_visit", v, int((samples["visit"] == v).sum())))
    for b, n in samples["batch"].value_counts().sort_index().items():
        rows.append(("samples_per_batch", b, int(n)))
    base_pat = set(samples.loc[samples["visit"] == baseline, "patient_id"])
    rows.append(
        ("cohort", f"patients_without_{baseline}", len(set(samples["patient_id"]) - base_pat))
    )
    if cytokines is not None and len(cytokines):
        rows.append(("cytokines", "analytes", cytokines["analyte"].nunique()))
        rows.append(("cytokines", "readings", len(cytokines)))
        if "censor" in cytokines.columns:
            cens = cytokines["censor"].astype(str)
            rows.append(("cytokines", "left_censored", int((cens == "left").sum())))
            rows.append(("cytokines", "right_censored", int((cens == "right").sum())))
        if "plate" in cytokines.columns:
            rows.append(("cytokines", "plates", cytokines["plate"].nunique()))
    return pd.DataFrame(rows, columns=["section", "item", "value"])
