"""Exact binomial intervals, Kaplan-Meier and Aalen-Johansen estimators (own implementations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

KM_COLUMNS = [
    "time",
    "n_at_risk",
    "n_event",
    "n_censored",
    "survival",
    "std_err",
    "ci_low",
    "ci_high",
]
CIF_COLUMNS = ["time", "n_at_risk", "n_event", "n_competing", "n_censored", "survival", "cuminc"]


def clopper_pearson(x, n, level: float = 0.95):
    """Exact (Clopper-Pearson) two-sided interval for x successes in n trials; NaN when n == 0."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    a = (1 - level) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, stats.beta.ppf(a, x, n - x + 1), 0.0)
        high = np.where(x < n, stats.beta.ppf(1 - a, x + 1, n - x), 1.0)
    bad = (n <= 0) | (x < 0) | (x > n)
    low = np.where(bad, np.nan, low)
    high = np.where(bad, np.nan, high)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def proportion(x: int, n: int, level: float = 0.95) -> dict:
    """A proportion with its exact CI: dict x, n, estimate, ci_low, ci_high."""
    low, high = clopper_pearson(x, n, level)
    est = x / n if n > 0 else np.nan
    return {"x": int(x), "n": int(n), "estimate": est, "ci_low": low, "ci_high": high}


def _clean(time, *others):
    time = np.asarray(time, dtype=float)
    if np.isnan(time).any():
        raise ValueError("time contains missing values")
    if (time < 0).any():
        raise ValueError("time contains negative values")
    return (time, *[np.asarray(o) for o in others])


def kaplan_meier(time, event, level: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier estimate with Greenwood SE and log-log CI (as R survfit), one row per time."""
    time, event = _clean(time, event)
    event = event.astype(bool)
    times = np.unique(time)
    at_risk = np.array([(time >= t).sum() for t in times])
    d = np.array([(event & (time == t)).sum() for t in times])
    c = np.array([(~event & (time == t)).sum() for t in times])
    surv = np.cumprod(1 - d / at_risk)
    # Greenwood: sum d / (n (n - d)); infinite once the curve reaches zero
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.cumsum(np.where(d > 0, d / (at_risk * (at_risk - d)), 0.0))
        se = surv * np.sqrt(g)
        z = stats.norm.ppf(1 - (1 - level) / 2)
        # log-log interval: symmetric on log(-log S)
        se_ll = np.sqrt(g) / np.abs(np.log(surv))
        low = np.exp(-np.exp(np.log(-np.log(surv)) + z * se_ll))
        high = np.exp(-np.exp(np.log(-np.log(surv)) - z * se_ll))
    low = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, low))
    high = np.where(surv >= 1, 1.0, np.where(surv <= 0, 0.0, high))
    se = np.where(surv <= 0, 0.0, se)
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": at_risk,
            "n_event": d,
            "n_censored": c,
            "survival": surv,
            "std_err": se,
            "ci_low": low,
            "ci_high": high,
        },
        columns=KM_COLUMNS,
    )


def step_value(table: pd.DataFrame, column: str, t: float, start: float) -> float:
    """Value of a right-continuous step curve at time t (``start`` before the first row)."""
    rows = table[table["time"] <= t]
    return float(rows[column].iloc[-1]) if len(rows) else float(start)


def numbers_at_risk(time, at_times) -> np.ndarray:
    """How many subjects are still under observation (time >= t) at each t."""
    time = np.asarray(time, dtype=float)
    return np.array([(time >= t).sum() for t in np.asarray(at_times, dtype=float)], dtype=int)


def median_time(table: pd.DataFrame, column: str = "survival") -> float:
    """First time the survival curve falls to 0.5 or below (or a cumulative incidence reaches
    0.5 or above); NaN when not reached."""
    if column == "survival":
        hit = table[table[column] <= 0.5 + 1e-12]
    else:
        hit = table[table[column] >= 0.5 - 1e-12]
    return float(hit["time"].iloc[0]) if len(hit) else float("nan")


def aalen_johansen(time, status, cause=1) -> pd.DataFrame:
    """Cumulative incidence of ``cause`` with competing events (status 0 = censored, other
    non-zero codes compete), Aalen-Johansen estimator; one row per distinct time."""
    time, status = _clean(time, status)
    times = np.unique(time)
    at_risk = np.array([(time >= t).sum() for t in times])
    d1 = np.array([((status == cause) & (time == t)).sum() for t in times])
    dall = np.array([((status != 0) & (time == t)).sum() for t in times])
    c = np.array([((status == 0) & (time == t)).sum() for t in times])
    surv = np.cumprod(1 - dall / at_risk)
    surv_before = np.concatenate([[1.0], surv[:-1]])
    cif = np.cumsum(surv_before * d1 / at_risk)
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": at_risk,
            "n_event": d1,
            "n_competing": dall - d1,
            "n_censored": c,
            "survival": surv,
            "cuminc": cif,
        },
        columns=CIF_COLUMNS,
    )
