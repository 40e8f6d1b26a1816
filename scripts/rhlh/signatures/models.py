"""Signature scores over time: change from baseline, mean change per response group, and the
mixed model score ~ visit * responder + (1|patient_id) (delegated to rhlh.longitudinal)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from rhlh.longitudinal import change_from_baseline, fit_visit_by_response
from rhlh.signatures.scoring import PRIMARY_METHOD
from rhlh.tables import as_responders, response_label

log = logging.getLogger("rhlh")


def _with_responders(scores, responders, methods):
    sc = scores[scores["method"].isin(methods)].copy()
    sc["feature"] = sc["signature"] + "__" + sc["method"]
    resp = as_responders(responders)[["patient_id", "responder"]]
    sc = sc.merge(resp, on="patient_id", how="left")
    unknown = sorted(sc.loc[sc["responder"].isna(), "patient_id"].astype(str).unique())
    if unknown:
        # they still count in the group "all" rows of the longitudinal models
        log.warning(
            "%d patient(s) without a responder status (not in either response group): %s",
            len(unknown),
            ", ".join(unknown),
        )
    sc["responder"] = sc["responder"].astype(object).where(sc["responder"].notna(), None)
    return sc


def _split_feature(df, method_col="method"):
    if df.empty:
        # nothing could be fitted (too few patients): the columns, no rows
        df = df.copy()
        for k, col in enumerate(("signature", method_col)):
            if col not in df.columns:
                df.insert(k, col, pd.Series(dtype=object))
        return df
    parts = df["feature"].str.rsplit("__", n=1, expand=True)
    df.insert(0, "signature", parts[0])
    df.insert(1, method_col, parts[1])
    return df


def signature_change_from_baseline(
    scores: pd.DataFrame, responders: pd.DataFrame, methods=(PRIMARY_METHOD,), baseline="D0"
) -> pd.DataFrame:
    """Each sample's score minus its patient's baseline score (via rhlh.longitudinal)."""
    sc = _with_responders(scores, responders, methods)
    out = change_from_baseline(sc, value_col="score", feature_col="feature", baseline=baseline)
    return _split_feature(out.drop(columns=["signature", "method"], errors="ignore"))


def fit_signature_models(
    scores: pd.DataFrame,
    responders: pd.DataFrame,
    visits,
    methods=(PRIMARY_METHOD,),
    baseline="D0",
    seed=0,
    n_boot=200,
    min_patients=3,
    interaction_test="permutation",
    n_perm=1999,
) -> pd.DataFrame:
    """Mixed model score ~ visit * responder + (1|patient_id) per signature and method.

    Fitted by ``rhlh.longitudinal.fit_visit_by_response``; returns its table (whose ``method``
    column describes the model) with ``signature`` and ``score_method`` columns in front.
    """
    sc = _with_responders(scores, responders, methods)
    res = fit_visit_by_response(
        sc,
        value_col="score",
        feature_col="feature",
        visits=list(visits),
        baseline=baseline,
        seed=seed,
        n_boot=n_boot,
        min_patients=min_patients,
        interaction_test=interaction_test,
        n_perm=n_perm,
    )
    if res.empty:
        log.warning(
            "no mixed model fitted: no visit has %d patients (signatures.min_patients) in each "
            "response group; the table is left empty",
            min_patients,
        )
    return _split_feature(res, method_col="score_method")


def group_means(df: pd.DataFrame, value_col: str, by=("signature", "group", "visit")):
    """Mean, n and t-based 95% CI of a value per group (patients as the unit)."""
    rows = []
    for key, sub in df.groupby(list(by), sort=False, observed=True):
        x = sub[value_col].dropna().to_numpy(float)
        n = len(x)
        mean = float(x.mean()) if n else np.nan
        half = np.nan
        if n > 1:
            half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n))
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "n": n,
                "mean": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
            }
        )
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "ci_low", "ci_high"])


def mean_change_table(change: pd.DataFrame, visits, baseline="D0") -> pd.DataFrame:
    """Mean change from baseline per signature, method, response group and later visit."""
    d = change.dropna(subset=["change"]).copy()
    d = d[(d["visit"] != baseline) & d["visit"].isin(list(visits))]
    d["group"] = [response_label(f) for f in d["responder"]]
    by = ("signature", "method", "group", "visit")
    out = group_means(d, "change", by=by)
    order = {v: i for i, v in enumerate(visits)}
    gorder = {"responder": 0, "non-responder": 1, "unknown": 2}
    return out.sort_values(
        list(by),
        key=lambda s: (
            s.map(order) if s.name == "visit" else s.map(gorder) if s.name == "group" else s
        ),
        ignore_index=True,
    )
