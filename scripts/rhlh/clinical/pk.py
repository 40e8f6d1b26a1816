"""Pharmacokinetics of ruxolitinib: concentrations with their censoring, summaries by matrix
and visit, CSF / plasma ratios."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from rhlh.contract.lab import parse_value
from rhlh.contract.timeline import day_values


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
    lloq = day_values(pk, "lloq")
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


def median_order_ci(n: int, level: float = 0.95) -> tuple[int, int, float]:
    """Distribution-free CI of a median from order statistics: (l, u, coverage) such that
    [x_(l), x_(u)] (1-based, u = n + 1 - l) covers the population median with probability
    1 - 2 P(B <= l - 1), B ~ Binomial(n, 1/2), the largest l whose coverage is at least
    ``level`` (Hahn & Meeker; n = 20 gives the 6th and 15th values, 95.9%). (0, 0, nan) when
    n is too small for that coverage (n <= 5 at 95%)."""
    alpha = 1.0 - level
    lower = 0
    while lower + 1 <= (n + 1) // 2 and 2.0 * stats.binom.cdf(lower, n, 0.5) <= alpha:
        lower += 1
    if lower == 0:
        return 0, 0, np.nan
    return lower, n + 1 - lower, float(1.0 - 2.0 * stats.binom.cdf(lower - 1, n, 0.5))


def median_ci(
    quantified, n_censored: int = 0, censored_lowest: bool = True, level: float = 0.95
) -> dict:
    """Order-statistic CI of the median (:func:`median_order_ci`) of ``quantified`` values and
    ``n_censored`` readings known only to be below their LLOQ, never using a substituted value.

    ``censored_lowest``: the censored readings lie below every quantified one (concentrations:
    below the LLOQ); a limit that falls on one of them is below the LLOQ and left NaN (the
    note says so; for the upper limit the LLOQ itself would be a valid, wider bound). Without
    it (CSF / plasma ratios, where a censored CSF value's rank is unknown) the interval is
    widened to hold wherever they lie: censored readings are put lowest for the lower limit
    and highest for the upper one. Returns ci_low, ci_high, coverage, n and a note."""
    x = np.sort(np.asarray(quantified, dtype=float))
    x = x[np.isfinite(x)]
    k = int(n_censored)
    n = len(x) + k
    lo, u, cover = median_order_ci(n, level)
    out = {"ci_low": np.nan, "ci_high": np.nan, "coverage": cover, "n": n, "note": ""}
    if lo == 0:
        out["note"] = f"too few readings ({n}) for a {level:.0%} order-statistic CI"
        return out
    below = []
    # lower limit: censored readings first in both cases
    if lo > k:
        out["ci_low"] = float(x[lo - k - 1])
    else:
        below.append("lower")
    if censored_lowest:
        if u > k:
            out["ci_high"] = float(x[u - k - 1])
        else:
            below.append("upper")
    elif u <= len(x):  # censored readings put last
        out["ci_high"] = float(x[u - 1])
    else:
        below.append("upper")
    note = f"order statistics {lo} and {u} of {n} ({cover:.1%} coverage, distribution-free)"
    if below:
        where = "below the LLOQ" if censored_lowest else "not bounded (censored readings)"
        note += f"; {' and '.join(below)} limit {where}: left empty"
    out["note"] = note
    return out


PK_SUMMARY_COLUMNS = [
    "matrix",
    "visit",
    "n",
    "n_below_lloq",
    "median",
    "median_ci_low",
    "median_ci_high",
    "q1",
    "q3",
    "min",
    "max",
    "geo_mean",
    "lloq",
    "summary",
]


def pk_summary(values: pd.DataFrame, visits=None) -> pd.DataFrame:
    """Per matrix and visit: n, n_below_lloq, median with its distribution-free 95% CI
    (``median_ci_low/high``, :func:`median_ci`: order statistics, below-LLOQ readings ranked
    lowest, a limit below the LLOQ left empty), q1, q3, min, max, geo_mean (values > 0), lloq
    (largest limit of the censored readings) and a printable ``summary``.

    A quantile is never a substituted value: the median, a quartile or the minimum whose lower
    order statistic is a below-LLOQ reading is left empty; when more than half the readings
    are below the LLOQ the geometric mean is left empty too and the summary reads "< LLOQ".
    With fewer censored readings the geometric mean uses the substituted values (the summary
    gives the count below LLOQ)."""
    rows = []
    for (matrix, visit), g in values.groupby(["matrix", "visit"], sort=False):
        v = g["value"].dropna()
        pos = v[v > 0]
        n, k = len(g), int((g["censor"] == "<").sum())
        lims = g.loc[g["censor"] == "<", "bound"].dropna()
        lloq = float(lims.max()) if len(lims) else np.nan
        med = v.median() if len(v) else np.nan
        q1 = v.quantile(0.25) if len(v) else np.nan
        q3 = v.quantile(0.75) if len(v) else np.nan
        lo = v.min() if len(v) else np.nan
        gm = float(np.exp(np.log(pos).mean())) if len(pos) else np.nan

        # a quantile (linear interpolation between order statistics) whose lower order
        # statistic is a censored reading (censored readings sort first) is below the LLOQ
        def censored_at(q, n=n, k=k):
            return k > 0 and int(np.floor(q * (n - 1))) < k

        lo = np.nan if censored_at(0.0) else lo
        q1 = np.nan if censored_at(0.25) else q1
        q3 = np.nan if censored_at(0.75) else q3
        hi = v.max() if len(v) and not censored_at(1.0) else np.nan
        ci = median_ci(g.loc[g["censor"] != "<", "value"], k)
        if censored_at(0.5):
            med = np.nan
        if n and k > n / 2:
            gm = np.nan
            text = f"< LLOQ ({k}/{n} below {lloq:g})" if pd.notna(lloq) else f"< LLOQ ({k}/{n})"
        elif len(v) and pd.isna(med):
            text = f"median at the LLOQ ({k}/{n} below LLOQ)"
        elif len(v):
            text = f"median {med:.3g}" + (
                f" (IQR {q1:.3g}-{q3:.3g})" if pd.notna(q1) and pd.notna(q3) else ""
            )
            if k:
                text += f"; {k}/{n} below LLOQ"
        else:
            text = "no readings"
        rows.append(
            (matrix, visit, n, k, med, ci["ci_low"], ci["ci_high"], q1, q3, lo, hi, gm, lloq, text)
        )
    out = pd.DataFrame(rows, columns=PK_SUMMARY_COLUMNS)
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
