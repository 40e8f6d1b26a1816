"""Lab readings as exported by analysers: analyte names and aliases, units, values with
censoring words (<LLOQ, OOR >...), and the parsed, checked cytokines table."""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import warnings

import pandas as pd

from rhlh.errors import InputError
from rhlh.io import read_table

log = logging.getLogger("rhlh")

CANONICAL_ANALYTES = ["IFNG", "TNFA", "IL6", "IL2", "IL10", "IL18", "IL1B", "CXCL9"]
CANONICAL_UNIT = "pg/mL"
REQUIRED = ["sample_id", "analyte", "value", "unit"]

# keys are normalised spellings (see _analyte_key)
_ALIASES = {
    "IFNG": "IFNG",
    "IFNGAMMA": "IFNG",
    "INTERFERONGAMMA": "IFNG",
    "TNFA": "TNFA",
    "TNFALPHA": "TNFA",
    "TNF": "TNFA",
    "IL6": "IL6",
    "INTERLEUKIN6": "IL6",
    "IL2": "IL2",
    "INTERLEUKIN2": "IL2",
    "IL10": "IL10",
    "INTERLEUKIN10": "IL10",
    "IL18": "IL18",
    "INTERLEUKIN18": "IL18",
    "IL1B": "IL1B",
    "IL1BETA": "IL1B",
    "INTERLEUKIN1B": "IL1B",
    "INTERLEUKIN1BETA": "IL1B",
    "CXCL9": "CXCL9",
    "MIG": "CXCL9",
}
_GREEK = {"γ": "G", "Γ": "G", "α": "A", "Α": "A", "β": "B", "Β": "B"}

# factor that converts a concentration in the given unit to pg/mL; keys are normalised units
_UNIT_FACTORS = {
    "pg/ml": 1.0,
    "ng/l": 1.0,
    "pg/dl": 0.01,
    "ng/dl": 10.0,
    "ng/ml": 1e3,
    "ug/l": 1e3,
    "mcg/l": 1e3,
    "ug/ml": 1e6,
    "mg/l": 1e6,
    "mcg/ml": 1e6,
    "pg/ul": 1e3,
    "fg/ml": 1e-3,
}

_MISSING = {"", "na", "n/a", "nan", "null"}
_LEFT_WORDS = {"oor<", "<lloq", "<loq", "<lod", "blq", "<llod", "belowlloq", "<ll"}
_RIGHT_WORDS = {"oor>", ">uloq", ">loq", "alq", ">ul", "aboveuloq"}
_NUMBER = re.compile(r"^[0-9]*[.,]?[0-9]+(?:[eE][-+]?[0-9]+)?$")


def _analyte_key(name: str) -> str:
    text = unicodedata.normalize("NFC", str(name)).strip()
    text = "".join(_GREEK.get(ch, ch) for ch in text).upper()
    return re.sub(r"[\s\-_./]", "", text)


def canonical_analyte(name):
    """Map a lab spelling (``IFN-γ``, ``MIG``, ``IL-1β``) to (canonical name, known flag)."""
    key = _analyte_key(name)
    if key in _ALIASES:
        return _ALIASES[key], True
    return str(name).strip(), False


def _normalise_unit(unit: str) -> str:
    text = unicodedata.normalize("NFKC", str(unit)).strip().lower()
    text = text.replace("µ", "u").replace("μ", "u")
    return re.sub(r"\s", "", text)


def unit_factor(unit) -> float:
    """Factor converting a concentration in ``unit`` to pg/mL; ValueError if unknown."""
    key = _normalise_unit(unit)
    if key not in _UNIT_FACTORS:
        raise ValueError("unknown unit (expected one of pg/mL, ng/L, ng/mL, µg/L, ...)")
    return _UNIT_FACTORS[key]


def parse_number(text) -> float:
    """A non-negative number, decimal point or comma (``3,5``); ValueError otherwise."""
    s = str(text).strip().replace(" ", "")
    if not _NUMBER.match(s):
        raise ValueError("not a number")
    if "," in s:
        # "3,500" is 3.5 in one lab and 3500 in another: refuse rather than guess 1000-fold
        if re.match(r"^[0-9]{1,3},[0-9]{3}$", s):
            raise ValueError("ambiguous number: comma could be a decimal or thousands separator")
        s = s.replace(",", ".")
    value = float(s)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def parse_value(text):
    """Parse one reading into (value, censor, bound); censor is 'none', 'left' or 'right'.

    ``3.5`` / ``3,5`` -> (3.5, 'none', nan); ``<3.2`` / ``< 3.2`` -> (3.2, 'left', 3.2);
    ``>10000`` -> (10000, 'right', 10000); ``OOR <``, ``<LLOQ`` -> (nan, 'left', nan) and
    ``OOR >``, ``>ULOQ`` -> (nan, 'right', nan): the limit must come from the lloq/uloq
    columns; ``0`` is read as below detection -> (nan, 'left', nan); empty / NA ->
    (nan, 'none', nan). Negative or unreadable -> ValueError.
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return math.nan, "none", math.nan
    s = unicodedata.normalize("NFKC", str(text)).strip()
    if s.lower() in _MISSING:
        return math.nan, "none", math.nan
    compact = re.sub(r"\s", "", s).lower()
    if compact in _LEFT_WORDS:
        return math.nan, "left", math.nan
    if compact in _RIGHT_WORDS:
        return math.nan, "right", math.nan
    censor = "none"
    if compact[0] in "<>≤≥":
        censor = "left" if compact[0] in "<≤" else "right"
        compact = compact[1:].lstrip("=")
    if compact.startswith("-"):
        raise ValueError("negative concentration")
    value = parse_number(compact)
    if censor == "none" and value == 0:
        # assay software writes 0 for "below the curve"; log10 needs a limit instead
        return math.nan, "left", math.nan
    if censor != "none":
        return value, censor, value
    return value, "none", math.nan


def _plate_limits(df, col):
    """Per (plate, analyte) limit from rows that give one; the largest if rows disagree."""
    have = df[df[col].notna()]
    if have.empty:
        return {}
    agg = have.groupby(["plate", "analyte"])[col].agg(["min", "max"])
    for (plate, analyte), r in agg[agg["min"] != agg["max"]].iterrows():
        log.warning(
            "cytokines: plate %s, %s: several %s values (%g..%g); using %g",
            plate,
            analyte,
            col,
            r["min"],
            r["max"],
            r["max"],
        )
    return agg["max"].to_dict()


def parse_cytokines(table, file="cytokines.tsv", duplicates="mean"):
    """Validate and tidy cytokines.tsv (path or read_table DataFrame) into pg/mL readings.

    Returns one row per sample x analyte x plate with columns sample_id, analyte,
    analyte_raw, value (pg/mL; the limit for a censored reading; NaN if missing), censor
    (none/left/right), lloq, uloq (pg/mL), unit ('pg/mL'), plate, row (file row), plus the
    file's extra columns. ``duplicates`` ('mean' or 'error') decides what happens to a sample
    measured twice for an analyte on the same plate; the same sample on two plates is a bridging
    sample and is kept (see :func:`plate_effects`, :func:`collapse_plates`).
    """
    if duplicates not in ("mean", "error"):
        raise ValueError("duplicates must be 'mean' or 'error'")
    if isinstance(table, pd.DataFrame):
        raw = table.copy()
        missing = [c for c in REQUIRED if c not in raw.columns]
        if missing:
            raise InputError(file, "required column missing", column=missing[0])
    else:
        file = str(table)
        raw = read_table(table, required=REQUIRED)
    raw = raw.fillna("").astype(str).apply(lambda s: s.str.strip())
    if raw.empty:
        raise InputError(file, "no data rows")
    extra = [c for c in raw.columns if c not in REQUIRED + ["lloq", "uloq", "plate"]]
    records = []
    unknown = set()
    for row, r in raw.iterrows():
        if not r["sample_id"]:
            raise InputError(file, "empty sample_id", row=row, column="sample_id")
        if not r["analyte"]:
            raise InputError(file, "empty analyte name", row=row, column="analyte")
        analyte, known = canonical_analyte(r["analyte"])
        if not known:
            unknown.add(analyte)
        try:
            value, censor, bound = parse_value(r["value"])
        except ValueError as exc:
            raise InputError(
                file,
                f"unreadable concentration: {exc}; expected a non-negative number or a "
                "censored reading such as <3.2, >10000, OOR <, <LLOQ",
                row=row,
                column="value",
                value=r["value"],
            ) from None
        is_missing = math.isnan(value) and censor == "none"
        factor = 1.0
        if r["unit"] or not is_missing:
            try:
                factor = unit_factor(r["unit"])
            except ValueError as exc:
                raise InputError(file, str(exc), row=row, column="unit", value=r["unit"]) from None
        limits = {}
        for col in ("lloq", "uloq"):
            text = r.get(col, "")
            if text == "":
                limits[col] = math.nan
                continue
            try:
                limits[col] = parse_number(text) * factor
            except ValueError as exc:
                raise InputError(
                    file,
                    f"{col} must be a non-negative number: {exc}",
                    row=row,
                    column=col,
                    value=text,
                ) from None
        if limits["lloq"] > limits["uloq"]:
            raise InputError(
                file,
                f"lower limit of quantification above the upper one (uloq {r.get('uloq')})",
                row=row,
                column="lloq",
                value=r.get("lloq"),
            )
        rec = {
            "sample_id": r["sample_id"],
            "analyte": analyte,
            "analyte_raw": r["analyte"],
            "value": value * factor,
            "censor": censor,
            "bound": bound * factor,
            "lloq": limits["lloq"],
            "uloq": limits["uloq"],
            "unit": CANONICAL_UNIT,
            "plate": r.get("plate", "") or "plate1",
            "row": int(row),
        }
        for c in extra:
            rec[c] = r[c]
        records.append(rec)
    for name in sorted(unknown):
        warnings.warn(
            f"{file}: analyte {name!r} is not one of {', '.join(CANONICAL_ANALYTES)}; "
            "kept under its own name",
            stacklevel=2,
        )
        log.warning("cytokines: unknown analyte %r kept under its own name", name)
    df = pd.DataFrame.from_records(records)
    df = _fill_limits(df, file)
    df = _dedupe(df, file, duplicates)
    return df.drop(columns=["bound"]).reset_index(drop=True)


def _fill_limits(df, file):
    """Give every censored reading a limit: its own, else the row's, else the plate's."""
    plate_lloq = _plate_limits(df, "lloq")
    plate_uloq = _plate_limits(df, "uloq")
    for col, table in (("lloq", plate_lloq), ("uloq", plate_uloq)):
        gap = df[col].isna()
        if gap.any():
            keys = list(zip(df.loc[gap, "plate"], df.loc[gap, "analyte"], strict=True))
            df.loc[gap, col] = [table.get(k, math.nan) for k in keys]
    for side, col, word in (("left", "lloq", "LLOQ"), ("right", "uloq", "ULOQ")):
        need = (df["censor"] == side) & df["value"].isna()
        df.loc[need, "value"] = df.loc[need, col]
        still = need & df["value"].isna()
        if still.any():
            r = df[still].iloc[0]
            raise InputError(
                file,
                f"censored reading without a limit: give the {word} in the "
                f"'{col}' column (this row or another row of plate {r['plate']})",
                row=int(r["row"]),
                column="value",
            )
    return df


def _dedupe(df, file, duplicates):
    """Same sample, analyte and plate more than once: average, or stop."""
    key = ["sample_id", "analyte", "plate"]
    dup = df.duplicated(key, keep=False)
    if not dup.any():
        return df
    if duplicates == "error":
        rows = df.loc[dup].sort_values("row")
        first = rows.iloc[0]
        other = rows[(rows[key] == first[key]).all(axis=1)]["row"].tolist()
        raise InputError(
            file,
            f"sample {first['sample_id']} measured more than once for "
            f"{first['analyte']} on plate {first['plate']} (rows "
            f"{', '.join(map(str, other))})",
            row=int(other[1]),
            column="sample_id",
        )
    keep = df[~dup]
    merged = [keep]
    for _, g in df[dup].groupby(key, sort=False):
        merged.append(_merge_replicates(g).to_frame().T)
    out = pd.concat(merged, ignore_index=True)
    log.info("cytokines: averaged %d duplicated readings", int(dup.sum()))
    for c in ("value", "lloq", "uloq", "bound"):
        out[c] = out[c].astype(float)
    out["row"] = out["row"].astype(int)
    return out.sort_values("row", kind="mergesort")


def _merge_replicates(g):
    """One reading from replicate readings of one sample (observed readings win)."""
    first = g.iloc[0].copy()
    obs = g[(g["censor"] == "none") & g["value"].notna()]
    if len(obs):
        first["value"] = obs["value"].mean()
        first["censor"] = "none"
    elif g["value"].notna().any():
        # all censored: the tightest limit is the one that holds for every replicate
        left = g[g["censor"] == "left"]
        right = g[g["censor"] == "right"]
        if len(left) and not len(right):
            first["value"], first["censor"] = left["value"].min(), "left"
        elif len(right) and not len(left):
            first["value"], first["censor"] = right["value"].max(), "right"
        else:
            first["value"], first["censor"] = math.nan, "none"
    first["lloq"] = g["lloq"].max()
    first["uloq"] = g["uloq"].min()
    return first


def range_findings(cytokines: pd.DataFrame, file, settings=None) -> list[dict]:
    """Plausibility (``cytokine_range``): a reading given as a plain number below its LLOQ or
    above its ULOQ, i.e. outside the range the assay quantifies but not marked censored (``<``
    / ``>``); it is analysed as measured. ``cytokines``: parse_cytokines' output (pg/mL)."""
    from rhlh.contract.timeline import with_severity

    out = []
    if cytokines is None or not len(cytokines):
        return out
    plain = cytokines[(cytokines["censor"] == "none") & cytokines["value"].notna()]
    for _, r in plain.iterrows():
        for side, limit, word in (("below", "lloq", "LLOQ"), ("above", "uloq", "ULOQ")):
            lim = r[limit]
            if pd.isna(lim) or not (r["value"] < lim if side == "below" else r["value"] > lim):
                continue
            out.append(
                {
                    "check": "cytokine_range",
                    "file": str(file),
                    "row": int(r["row"]),
                    "column": "value",
                    "value": f"{r['value']:g}",
                    "message": f"{r['analyte_raw']} reading {r['value']:g} pg/mL of sample "
                    f"{r['sample_id']} is {side} its {word} ({lim:g} pg/mL) but not marked "
                    f"censored ('{'<' if side == 'below' else '>'}'): it is analysed as measured",
                }
            )
    return with_severity(out, settings)
