"""Cytokine concentrations: parsing lab exports, censoring, plates, per-analyte summaries.

Conventions. Concentrations are converted to pg/mL. A censored reading keeps its limit as
``value`` with ``censor`` = ``left`` (below LLOQ) or ``right`` (above ULOQ); substitution for
the analysis happens later, in :func:`substitute_censored`, and the analysis scale is log10.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from rhlh.stats import bh_adjust, rmcorr
from rhlh.tables import as_responders

log = logging.getLogger("rhlh")

SUBSTITUTION_RULES = {
    "lloq/sqrt2": lambda lim: lim / math.sqrt(2),
    "lloq/2": lambda lim: lim / 2,
    "lloq": lambda lim: lim,
}


def substitute_censored(df, rule="lloq/sqrt2"):
    """Add value_analysed (left-censored -> rule(LLOQ), right-censored -> ULOQ) and log10_value."""
    if rule not in SUBSTITUTION_RULES and rule != "drop":
        raise ValueError(f"substitution rule must be one of {sorted(SUBSTITUTION_RULES)} or 'drop'")
    out = df.copy()
    v = out["value"].astype(float).copy()
    left = out["censor"] == "left"
    if rule == "drop":
        v[left] = np.nan
    else:
        v[left] = SUBSTITUTION_RULES[rule](v[left])
    out["value_analysed"] = v
    with np.errstate(divide="ignore", invalid="ignore"):
        out["log10_value"] = np.where(v > 0, np.log10(v.where(v > 0, 1.0)), np.nan)
    return out


def censoring_summary(df, samples, visits, uninformative=0.5):
    """Fraction censored per analyte x visit, plus one 'all' row per analyte with a flag.

    Columns: analyte, visit, n_measured, n_left, n_right, n_missing, frac_left, frac_right,
    frac_censored, uninformative (overall censored fraction above ``uninformative``; the same
    value on every row of the analyte).
    """
    d = df.merge(samples[["sample_id", "visit"]], on="sample_id", how="left")
    d["missing"] = d["value"].isna()
    rows = []
    for analyte, g in d.groupby("analyte", sort=True):
        parts = [(v, g[g["visit"] == v]) for v in visits if (g["visit"] == v).any()]
        parts.append(("all", g))
        for visit, gv in parts:
            meas = gv[~gv["missing"]]
            n = len(meas)
            nl = int((meas["censor"] == "left").sum())
            nr = int((meas["censor"] == "right").sum())
            rows.append(
                {
                    "analyte": analyte,
                    "visit": visit,
                    "n_measured": n,
                    "n_left": nl,
                    "n_right": nr,
                    "n_missing": int(gv["missing"].sum()),
                    "frac_left": nl / n if n else np.nan,
                    "frac_right": nr / n if n else np.nan,
                    "frac_censored": (nl + nr) / n if n else np.nan,
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out.assign(uninformative=pd.Series(dtype=bool))
    overall = out[out["visit"] == "all"].set_index("analyte")["frac_censored"]
    flag = (overall > uninformative).to_dict()
    out["uninformative"] = out["analyte"].map(flag).astype(bool)
    return out


def plate_effects(df, reference=None):
    """Per analyte x plate: medians (log10) and offsets against a reference plate.

    Offsets come from bridging samples (the same sample measured on two plates): the median of
    log10(plate) - log10(other plate) over bridging samples, chained through the plate graph
    to the reference plate (default: the plate with the most samples). Plates not bridged to the
    reference get NaN. Needs ``log10_value`` (see :func:`substitute_censored`). Columns: analyte,
    plate, reference_plate, n_samples, n_censored, median_log10, n_bridging, offset_log10.
    """
    rows = []
    for analyte, g in df.groupby("analyte", sort=True):
        plates = sorted(g["plate"].unique(), key=str)
        sizes = g.groupby("plate")["sample_id"].nunique()
        # default reference: the largest plate, ties to the first name
        ref = (
            reference
            if reference in plates
            else max(plates, key=lambda p: (sizes[p], -plates.index(p)))
        )
        offsets, nbridge = _bridge_offsets(g, plates, ref)
        for plate in plates:
            gp = g[g["plate"] == plate]
            rows.append(
                {
                    "analyte": analyte,
                    "plate": plate,
                    "reference_plate": ref,
                    "n_samples": int(gp["sample_id"].nunique()),
                    "n_censored": int((gp["censor"] != "none").sum()),
                    "median_log10": float(gp["log10_value"].median()),
                    "n_bridging": nbridge.get(plate, 0),
                    "offset_log10": offsets.get(plate, np.nan),
                }
            )
    return pd.DataFrame(rows)


def _bridge_offsets(g, plates, ref):
    """Offsets of each plate against ``ref`` via breadth-first search over bridging pairs."""
    # censored readings carry no exact value: they do not bridge
    obs = g[(g["censor"] == "none") & g["log10_value"].notna()]
    wide = obs.pivot_table(index="sample_id", columns="plate", values="log10_value", aggfunc="mean")
    pair = {}
    for a in wide.columns:
        for b in wide.columns:
            if a != b:
                diff = (wide[a] - wide[b]).dropna()
                if len(diff):
                    pair[(a, b)] = (float(diff.median()), len(diff))
    offsets, nbridge = {ref: 0.0}, {}
    frontier = [ref]
    while frontier:
        nxt = []
        for a in frontier:
            for p in plates:
                if p not in offsets and (p, a) in pair:
                    d, n = pair[(p, a)]
                    offsets[p] = offsets[a] + d
                    nbridge[p] = n
                    nxt.append(p)
        frontier = nxt
    nbridge[ref] = int(max((n for (a, b), (_, n) in pair.items() if ref in (a, b)), default=0))
    return offsets, nbridge


def adjust_plates(df, effects, method="bridging"):
    """Subtract plate offsets from log10_value ('bridging' offsets, or 'median' centring)."""
    out = df.copy()
    if method == "none":
        out["plate_offset"] = 0.0
        return out
    eff = effects.set_index(["analyte", "plate"])
    if method == "bridging":
        off = eff["offset_log10"]
    elif method == "median":
        # only valid when plates are not confounded with visit (e.g. randomised layout)
        ref_rows = effects[effects["plate"] == effects["reference_plate"]]
        ref_median = ref_rows.set_index("analyte")["median_log10"]
        ref = pd.Series(
            ref_median.reindex(eff.index.get_level_values("analyte")).to_numpy(), index=eff.index
        )
        off = eff["median_log10"] - ref
    else:
        raise ValueError("plate adjustment must be 'none', 'bridging' or 'median'")
    keys = list(zip(out["analyte"], out["plate"], strict=True))
    shift = np.array([off.get(k, np.nan) for k in keys], dtype=float)
    unbridged = np.isnan(shift)
    if unbridged.any():
        bad = sorted({f"{a}/{p}" for (a, p), u in zip(keys, unbridged, strict=True) if u})
        log.warning("cytokines: no plate offset for %s; left unadjusted", ", ".join(bad))
    shift[unbridged] = 0.0
    out["plate_offset"] = shift
    out["log10_value"] = out["log10_value"] - shift
    return out


def collapse_plates(df):
    """One row per sample x analyte: mean log10 over plates (observed readings preferred)."""
    rows = []
    for _, g in df.groupby(["sample_id", "analyte"], sort=True):
        if len(g) == 1:
            rows.append(g.iloc[0])
            continue
        r = g.iloc[0].copy()
        obs = g[(g["censor"] == "none") & g["log10_value"].notna()]
        use = obs if len(obs) else g[g["log10_value"].notna()]
        if len(use):
            r["log10_value"] = use["log10_value"].mean()
            r["value"] = use["value"].mean()
            r["value_analysed"] = 10 ** r["log10_value"]
            r["censor"] = "none" if len(obs) else use["censor"].iloc[0]
        r["plate"] = ";".join(sorted(g["plate"].astype(str)))
        rows.append(r)
    return pd.DataFrame(rows).reset_index(drop=True)


def model_table(values, samples, responders):
    """Long table for rhlh.longitudinal: patient_id, visit, day, responder, feature, value."""
    d = values.merge(
        samples[["sample_id", "patient_id", "visit", "day"]],
        on="sample_id",
        how="inner",
        validate="many_to_one",
    )
    resp = as_responders(responders)[["patient_id", "responder"]]
    d = d.merge(resp, on="patient_id", how="left")
    d = d.rename(columns={"analyte": "feature"})
    d["value"] = d["log10_value"]
    return d[["sample_id", "patient_id", "visit", "day", "responder", "feature", "value", "censor"]]


def cytokine_signature_rmcorr(model_df, scores, min_patients=3):
    """rmcorr of each analyte with each signature score (per method) across visits.

    ``model_df`` from :func:`model_table`; ``scores`` has sample_id, signature, method, score.
    Columns: analyte, signature, method, r, dof, pvalue, ci_low, ci_high, n, n_subjects, padj
    (BH over all analyte x signature pairs of one method).
    """
    cyto = model_df[["sample_id", "patient_id", "feature", "value"]]
    rows = []
    for (sig, meth), s in scores.groupby(["signature", "method"], sort=True):
        s = s[["sample_id", "score"]]
        for analyte, c in cyto.groupby("feature", sort=True):
            d = c.merge(s, on="sample_id", how="inner")
            res = rmcorr(d, "value", "score")
            if res["n_subjects"] < min_patients:
                res.update(r=np.nan, pvalue=np.nan, ci_low=np.nan, ci_high=np.nan)
            rows.append({"analyte": analyte, "signature": sig, "method": meth, **res})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["padj"] = np.nan
    for _, idx in out.groupby("method").groups.items():
        out.loc[idx, "padj"] = bh_adjust(out.loc[idx, "pvalue"].to_numpy())
    return out


def censored_normal_mean(log_values, censor):
    """Tobit MLE (mean, sd) of log10 readings, left/right-censored at their limits.

    Sensitivity analysis for substitution: ``log_values`` hold the reading or, for a censored
    reading, log10 of its limit. Returns (nan, nan) with fewer than 3 observed readings.
    """
    from scipy import optimize, stats

    y = np.asarray(log_values, dtype=float)
    c = np.asarray(censor, dtype=object)
    ok = np.isfinite(y)
    y, c = y[ok], c[ok]
    obs, left, right = y[c == "none"], y[c == "left"], y[c == "right"]
    if len(obs) < 3:
        return math.nan, math.nan

    def nll(theta):
        mu, sd = theta[0], math.exp(theta[1])
        return -(
            stats.norm.logpdf(obs, mu, sd).sum()
            + stats.norm.logcdf(left, mu, sd).sum()
            + stats.norm.logsf(right, mu, sd).sum()
        )

    start = np.array([y.mean(), math.log(max(y.std(), 1e-3))])
    res = optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000}
    )
    return float(res.x[0]), float(math.exp(res.x[1]))


def tobit_visit_means(model_df, values, visits):
    """Per analyte x visit x response group: substitution mean vs censored-normal (Tobit) mean.

    ``model_df`` from :func:`model_table`; ``values`` the readings with ``value`` (limit of a
    censored reading). Columns: analyte, visit, group, n, n_censored, mean_substituted,
    mean_tobit, sd_tobit (log10 scale).
    """
    d = model_df.merge(
        values[["sample_id", "analyte", "value"]].rename(
            columns={"analyte": "feature", "value": "raw"}
        ),
        on=["sample_id", "feature"],
    )
    d["group"] = d["responder"].map({True: "responder", False: "non-responder"})
    rows = []
    for (analyte, visit, group), g in d.dropna(subset=["group"]).groupby(
        ["feature", "visit", "group"], sort=True
    ):
        if visit not in visits:
            continue
        with np.errstate(divide="ignore"):
            lim = np.log10(g["raw"].astype(float))
        y = np.where(g["censor"] == "none", g["value"], lim)
        mu, sd = censored_normal_mean(y, g["censor"].to_numpy())
        rows.append(
            {
                "analyte": analyte,
                "visit": visit,
                "group": group,
                "n": len(g),
                "n_censored": int((g["censor"] != "none").sum()),
                "mean_substituted": float(g["value"].mean()),
                "mean_tobit": mu,
                "sd_tobit": sd,
            }
        )
    return pd.DataFrame(rows)
