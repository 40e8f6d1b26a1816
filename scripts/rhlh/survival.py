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
CIF_COLUMNS = [
    "time",
    "n_at_risk",
    "n_event",
    "n_competing",
    "n_censored",
    "survival",
    "cuminc",
    "variance",
    "ci_low",
    "ci_high",
]


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


def aalen_johansen(time, status, cause=1, level: float = 0.95) -> pd.DataFrame:
    """Cumulative incidence of ``cause`` with competing events (status 0 = censored, other
    non-zero codes compete), Aalen-Johansen estimator; one row per distinct time.

    ``variance`` is Gray's delta-method variance as cmprsk::cuminc reports it: it is updated
    at the times of an event of ``cause`` only (a competing event changes it from the next
    event of ``cause`` on), with the tie factor 1 - (d - 1) / (n - 1) for d events among n at
    risk. ``ci_low``/``ci_high`` are the log(-log) interval F ** exp(+-z sd / (F log F)) (the
    transform of cmprsk-based reporting, e.g. tidycmprsk); NaN where F is 0 or 1."""
    time, status = _clean(time, status)
    times = np.unique(time)
    at_risk = np.array([(time >= t).sum() for t in times])
    d1 = np.array([((status == cause) & (time == t)).sum() for t in times])
    dall = np.array([((status != 0) & (time == t)).sum() for t in times])
    c = np.array([((status == 0) & (time == t)).sum() for t in times])
    surv = np.cumprod(1 - dall / at_risk)
    surv_before = np.concatenate([[1.0], surv[:-1]])
    cif = np.cumsum(surv_before * d1 / at_risk)
    var = _gray_variance(at_risk, d1, dall - d1, surv_before, surv, cif)
    low, high = cuminc_ci(cif, var, level)
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": at_risk,
            "n_event": d1,
            "n_competing": dall - d1,
            "n_censored": c,
            "survival": surv,
            "cuminc": cif,
            "variance": var,
            "ci_low": low,
            "ci_high": high,
        },
        columns=CIF_COLUMNS,
    )


def _gray_variance(n, d1, d2, s_before, s_after, cif) -> np.ndarray:
    """Delta-method variance of the cumulative incidence (Gray's form used by cmprsk): three
    running sums a, b, c over event times give V(t) = a + F(t)^2 c - 2 F(t) b."""
    a = b = cc = 0.0
    out = np.zeros(len(n))
    v = 0.0
    for k in range(len(n)):
        nk, f = float(n[k]), cif[k]
        inv = 1.0 / s_after[k] if s_after[k] > 0 else 0.0
        for dk, own in ((d2[k], False), (d1[k], True)):
            if dk == 0 or (not own and s_after[k] <= 0):
                continue
            tie = 1.0 - (dk - 1.0) / (nk - 1.0) if dk > 1 else 1.0
            w = s_before[k] ** 2 * tie * dk / nk**2
            g = 1.0 + inv * f if own else f * inv
            a += g * g * w
            b += inv * g * w
            cc += inv * inv * w
        if d1[k] > 0:
            v = a + f * f * cc - 2.0 * f * b
        out[k] = v
    return out


def cuminc_ci(cif, variance, level: float = 0.95):
    """log(-log) interval of a cumulative incidence: F ** exp(-+ z sd / (F log F))."""
    cif = np.asarray(cif, dtype=float)
    sd = np.sqrt(np.maximum(np.asarray(variance, dtype=float), 0.0))
    z = stats.norm.ppf(1 - (1 - level) / 2)
    ok = (cif > 0) & (cif < 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = z * sd / (cif * np.log(cif))
        low = np.where(ok, cif ** np.exp(-e), np.nan)
        high = np.where(ok, cif ** np.exp(e), np.nan)
    return low, high


def cuminc_at(table: pd.DataFrame, t: float) -> dict:
    """Cumulative incidence, variance and CI at time t as cmprsk::timepoints gives them (step
    function, 0 before the first time); after the last time cmprsk gives NA: kept as NaN when
    someone is censored at the last time, while the final value is carried forward when every
    subject had an event (the curve cannot move any more). Dict time, cuminc, variance,
    ci_low, ci_high, n_at_risk (subjects with time >= t)."""
    nan = float("nan")
    if len(table) == 0:
        return dict(time=float(t), cuminc=nan, variance=nan, ci_low=nan, ci_high=nan, n_at_risk=0)
    rows = table[table["time"] <= t]
    last = table.iloc[-1]
    if t > last["time"] and last["n_censored"] > 0:
        f = v = lo = hi = nan
    elif len(rows):
        r = rows.iloc[-1]
        f, v, lo, hi = r["cuminc"], r["variance"], r["ci_low"], r["ci_high"]
    else:
        f, v, lo, hi = 0.0, 0.0, nan, nan
    later = table[table["time"] >= t]
    n = int(later["n_at_risk"].iloc[0]) if len(later) else 0
    return {
        "time": float(t),
        "cuminc": float(f),
        "variance": float(v),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_at_risk": n,
    }


def _survfit_quantile(times, y, p: float = 0.5, tol: float = 1.5e-8) -> float:
    """Time a decreasing step curve y reaches p as survival::survfit's quantile gives it: the
    first time y <= p; when y equals p there (a flat stretch at p), the midpoint between that
    time and the time the curve next drops below p (or the last time when it never does)."""
    times = np.asarray(times, dtype=float)
    y = np.asarray(y, dtype=float)
    hit = np.flatnonzero(~np.isnan(y) & (y <= p + tol))
    if len(hit) == 0:
        return float("nan")
    i = hit[0]
    if abs(y[i] - p) >= tol:
        return float(times[i])
    below = np.flatnonzero(~np.isnan(y) & (y < p - tol))
    below = below[below > i]
    return float((times[i] + (times[below[0]] if len(below) else times[-1])) / 2)


def median_ci(table: pd.DataFrame, column: str = "cuminc") -> tuple[float, float, float]:
    """Median time and its 95% CI by inverting the pointwise CI band (Brookmeyer-Crowley).

    Survival curve (``column='survival'``, a kaplan_meier table): as survival::survfit's
    quantile (median where the curve reaches 0.5, lower limit where the lower band does,
    upper limit where the upper band does; a flat stretch at exactly 0.5 gives its midpoint).
    Cumulative incidence (``'cuminc'``): the first time the curve reaches 0.5, the lower limit
    the first time the upper band does, the upper limit the first time the lower band does.
    NaN: not reached."""
    if column == "survival":
        t = table["time"]
        # survfit has no band where the curve is 0
        band = table[["ci_low", "ci_high"]].where(table["survival"] > 0)
        return (
            _survfit_quantile(t, table["survival"]),
            _survfit_quantile(t, band["ci_low"]),
            _survfit_quantile(t, band["ci_high"]),
        )
    med = median_time(table, column)
    first_high = table[table["ci_high"] >= 0.5 - 1e-12]
    first_low = table[table["ci_low"] >= 0.5 - 1e-12]
    lo = float(first_high["time"].iloc[0]) if len(first_high) else np.nan
    hi = float(first_low["time"].iloc[0]) if len(first_low) else np.nan
    return med, lo, hi
