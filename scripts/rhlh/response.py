"""Association of biomarker features with clinical response (issue 8).

Question: does the fall of JAK-STAT / IFN-gamma activity (signature scores, cytokines, genes
selected by the likelihood-ratio tests) go with response to ruxolitinib, and does an early
change (D7, D14) predict response at the endpoint?

Inputs
------
* A long table per family (``signature``, ``cytokine``, ``gene``): one row per sample and
  feature with ``patient_id``, ``visit``, ``day``, ``feature``, ``value`` (analysis scale:
  signature score, log10 concentration after censoring substitution, VST or log2-CPM).
  :func:`signature_long`, :func:`cytokine_long` and :func:`gene_long` build them.
* Responders (``results/clinical/responders.tsv``, from ``rhlh.clinical.define_responders``):
  ``responder`` True/False (empty = unknown, left out) and ``response_class`` NR/PR/CR/NE.

Measures (one value per patient and feature, :func:`patient_measures`)
-----------------------------------------------------------------------
* ``baseline``: the value at the baseline visit (D0).
* ``change_<V>`` for each early visit V (default D7, D14): value at V minus value at D0.
  Missing if either draw is missing (no imputation).
* ``auc_<E>`` (default E = D28): time-averaged area under the curve from D0 to E, by the
  trapezoid rule over the visits that are available, on the actual sample days, divided by
  (day of E - day of D0); by default of the change from baseline (``auc_of="change"``: the mean
  change over the window, 0 for a flat course), or of the raw value (``auc_of="value"``).
  Missing visits: the baseline and the end visit E are required (a patient without either
  gets no value: the window is never truncated or extrapolated); a missing visit strictly
  inside the window is bridged by linear interpolation between its neighbours, which is what
  the trapezoid over the available visits does. Patients who leave the schedule before E
  (death, HSCT) therefore drop out of this measure: ``n`` says how many are left.

Tests (per family x feature x measure; endpoint ``responder`` unless stated)
---------------------------------------------------------------------------
* ``mann_whitney``: two-sided Mann-Whitney U of responders vs non-responders. ``effect`` =
  ``auc`` = U_nr / (n_r n_nr) = P(responder value < non-responder value) + P(tie) / 2, i.e.
  the AUC of the feature as a predictor of response **when lower values predict response**
  (the hypothesis: larger fall / lower level in responders). AUC > 0.5: responders lower;
  AUC < 0.5: responders higher. ``ci_low/ci_high``: percentile interval of a patient-level
  bootstrap (patients resampled with replacement within each response group, so both groups
  are always present; seeded per family x feature x measure). p-value: exact null
  distribution when there are no ties; with ties the exact permutation distribution of the
  mid-rank sum over every one of the C(n, n_responders) group arrangements (15,504 for 20
  patients split 5/15) when there are at most ``exact_max`` of them (default
  ``rhlh.stats.EXACT_MAX_ARRANGEMENTS`` = 1,000,000; config
  ``response.exact_max_arrangements``), else ``n_perm`` seeded random arrangements; the
  ``note`` says which and how many.
* ``logistic``: ``responder ~ z`` with z the feature standardised to SD 1 (statsmodels Logit,
  Newton). ``effect`` = odds ratio of response per 1 SD higher value, Wald 95% CI,
  p-value from the likelihood-ratio test (better than the Wald test at n = 20). Complete or
  quasi-complete separation (groups split by a threshold) means the maximum-likelihood
  estimate does not exist: the row gets ``converged`` False, no effect, CI or p-value, and
  a note (the Mann-Whitney row carries the evidence: AUC 0 or 1). A fit that does not
  converge keeps its numbers with ``converged`` False and is left out of the BH correction.
* ``spearman``: Spearman rho between the feature and the ordinal response class NR < PR < CR
  (endpoint ``response_class``; NE and unknown left out). Percentile bootstrap CI over
  patients; p-value from a permutation test (the response classes have many ties, so the
  t approximation is not used).
* ``mixed_model_interaction`` (measure ``trajectory``): the visit x response interaction rows
  of the signature / cytokine mixed models (``rhlh.longitudinal``), copied with their
  estimate (mean responder minus non-responder change from baseline, negative when responders
  fall more), model-based CI, p-value and ``converged``; the bootstrap CI and the model are in
  ``note``.

Table layout: long, one row per feature x measure x test (columns :data:`ASSOC_COLUMNS`);
``effect_type`` names what ``effect`` is. ``padj``: Benjamini-Hochberg across features within
each family x measure x endpoint x test, over rows with a p-value and ``converged`` True.
``n`` = patients with a value and a known response in that test; ``n_responders`` among them.
Fewer than ``min_per_group`` patients in either group: no test, a note says so.

Genes are chosen by the LRTs on the same samples, so their p-values are post-selection and
optimistic: read them as descriptive (their rows say so in ``note``).
"""

from __future__ import annotations

import logging
import math
import zlib

import numpy as np
import pandas as pd

from rhlh.logs import Progress
from rhlh.stats import (
    EXACT_MAX_ARRANGEMENTS,
    auc_lower,
    bh_adjust,
    bootstrap_auc_ci,
    logistic_per_sd,
    mann_whitney,
    spearman_ordinal,
    trapezoid_auc,
)
from rhlh.tables import as_responders

log = logging.getLogger("rhlh")

ASSOC_COLUMNS = [
    "feature",
    "family",
    "measure",
    "endpoint",
    "test",
    "effect_type",
    "n",
    "n_responders",
    "effect",
    "ci_low",
    "ci_high",
    "auc",
    "pvalue",
    "padj",
    "converged",
    "note",
]
FAMILIES = ("signature", "cytokine", "gene")
TESTS = ("mann_whitney", "logistic", "spearman", "mixed_model_interaction")
EFFECT_TYPES = {
    "mann_whitney": "AUC: P(responder value < non-responder value)",
    "logistic": "odds ratio of response per SD higher value",
    "spearman": "Spearman rho with NR<PR<CR",
    "mixed_model_interaction": "mean change responder minus non-responder",
}
RESPONSE_RANK = {"NR": 0, "PR": 1, "CR": 2}
_TRUE = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


# --------------------------------------------------------------------------------------------
# Inputs as long tables
# --------------------------------------------------------------------------------------------


def _long(df, feature, value, cols=("sample_id", "patient_id", "visit", "day")):
    out = pd.DataFrame({c: df[c].to_numpy() for c in cols if c in df.columns})
    out["feature"] = df[feature].astype(str).to_numpy()
    out["value"] = pd.to_numeric(df[value], errors="coerce").astype(float).to_numpy()
    out["patient_id"] = out["patient_id"].astype(str)
    out["visit"] = out["visit"].astype(str)
    out["day"] = pd.to_numeric(out["day"], errors="coerce").astype(float)
    return out


def signature_long(scores: pd.DataFrame, method: str = "ulm") -> pd.DataFrame:
    """Signature scores of one scoring method as a long table (feature = signature)."""
    sub = scores[scores["method"].astype(str) == method]
    if sub.empty:
        raise ValueError(f"no signature score computed with method {method!r}")
    return _long(sub, "signature", "score")


def cytokine_long(
    values: pd.DataFrame, samples: pd.DataFrame | None = None, skip_uninformative: bool = False
) -> pd.DataFrame:
    """Cytokine log10 values (after censoring substitution) as a long table (feature=analyte);
    ``skip_uninformative`` drops analytes the cytokine stage flagged as mostly censored."""
    d = values
    if skip_uninformative and "uninformative" in d.columns:
        flag = d["uninformative"].map(lambda v: _TRUE.get(str(v).strip().lower(), False))
        dropped = sorted(d.loc[flag, "analyte" if "analyte" in d.columns else "feature"].unique())
        if dropped:
            log.info("cytokines flagged uninformative, left out: %s", ", ".join(dropped))
        d = d[~flag]
    if not {"patient_id", "visit", "day"} <= set(d.columns):
        if samples is None:
            raise ValueError("cytokine values lack patient_id/visit/day and no samples given")
        keep = [c for c in ("patient_id", "visit", "day") if c not in d.columns]
        d = d.merge(samples[["sample_id", *keep]], on="sample_id", how="inner")
    feature = "analyte" if "analyte" in d.columns else "feature"
    value = "log10_value" if "log10_value" in d.columns else "value"
    return _long(d, feature, value)


def top_lrt_genes(tables: dict, n_top: int = 25) -> pd.DataFrame:
    """The ``n_top`` genes with the smallest padj (then p-value) of each LRT table, unique."""
    rows = []
    for source, t in tables.items():
        t = t.copy()
        t["padj"] = pd.to_numeric(t["padj"], errors="coerce")
        t["pvalue"] = pd.to_numeric(t["pvalue"], errors="coerce")
        t = t[t["pvalue"].notna()].sort_values(
            ["padj", "pvalue", "gene_id"], kind="mergesort", na_position="last"
        )
        for r in t.head(n_top).itertuples(index=False):
            name = getattr(r, "gene_name", None)
            name = str(r.gene_id) if name is None or pd.isna(name) or not str(name) else str(name)
            rows.append({"gene_id": str(r.gene_id), "gene_name": name, "source": source})
    out = pd.DataFrame(rows, columns=["gene_id", "gene_name", "source"])
    out = out.groupby(["gene_id", "gene_name"], sort=False, as_index=False)["source"].agg(
        lambda s: ";".join(s)
    )
    # a symbol shared by two gene ids keeps both, told apart by the id
    dup = out["gene_name"].duplicated(keep=False)
    out["feature"] = np.where(dup, out["gene_name"] + " (" + out["gene_id"] + ")", out["gene_name"])
    return out


def gene_long(
    adata, genes: pd.DataFrame, layer: str | None = "vst", samples: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Expression of the chosen genes as a long table: ``layer`` of the AnnData, or, with
    ``layer=None``, log2-CPM of the raw counts (all genes as library size)."""
    from rhlh.expression import log_cpm, raw_counts

    var = adata.var
    ids = var["gene_id"].astype(str) if "gene_id" in var.columns else pd.Series(adata.var_names)
    pos = {g: i for i, g in enumerate(ids.to_numpy())}
    present = genes[genes["gene_id"].isin(pos)]
    lost = len(genes) - len(present)
    if lost:
        log.warning("%d selected gene(s) not in the expression matrix: left out", lost)
    if layer is None:
        mat = log_cpm(raw_counts(adata))
    else:
        mat = adata.layers[layer] if layer in adata.layers else adata.X
        mat = mat.toarray() if hasattr(mat, "toarray") else np.asarray(mat, dtype=float)
    cols = [pos[g] for g in present["gene_id"]]
    sub = np.asarray(mat[:, cols], dtype=float)
    obs = adata.obs.copy()
    obs["sample_id"] = [str(s) for s in adata.obs_names]
    if samples is not None:
        obs = obs[["sample_id"]].merge(
            samples[["sample_id", "patient_id", "visit", "day"]], on="sample_id", how="left"
        )
    wide = pd.DataFrame(sub, columns=present["feature"].to_numpy())
    wide["sample_id"] = obs["sample_id"].to_numpy()
    long = wide.melt(id_vars="sample_id", var_name="feature", value_name="value")
    long = long.merge(obs[["sample_id", "patient_id", "visit", "day"]], on="sample_id")
    return _long(long, "feature", "value")


# --------------------------------------------------------------------------------------------
# Per-patient measures
# --------------------------------------------------------------------------------------------


def measure_names(early_visits=("D7", "D14"), auc_end="D28") -> list[str]:
    """The per-patient measures in table order."""
    return ["baseline", *[f"change_{v}" for v in early_visits], f"auc_{auc_end}"]


def patient_measures(
    long: pd.DataFrame,
    visits,
    baseline: str = "D0",
    early_visits=("D7", "D14"),
    auc_end: str = "D28",
    auc_of: str = "change",
) -> pd.DataFrame:
    """Per patient x feature: baseline, change to each early visit, time-averaged AUC to
    ``auc_end`` (see module docstring). Columns patient_id, feature, measure, value."""
    if auc_of not in ("change", "value"):
        raise ValueError("auc_of must be 'change' or 'value'")
    visits = [str(v) for v in visits]
    for v in (baseline, auc_end, *early_visits):
        if v not in visits:
            raise ValueError(f"visit {v!r} is not among the configured visits")
    window = visits[visits.index(baseline) : visits.index(auc_end) + 1]
    d = long[np.isfinite(long["value"]) & long["visit"].isin(visits)]
    d = d.groupby(["feature", "patient_id", "visit"], sort=False, as_index=False).agg(
        value=("value", "mean"), day=("day", "mean")
    )
    val = d.pivot_table(
        index=["feature", "patient_id"], columns="visit", values="value", aggfunc="first"
    )
    day = d.pivot_table(
        index=["feature", "patient_id"], columns="visit", values="day", aggfunc="first"
    )
    val = val.reindex(columns=visits)
    day = day.reindex(columns=visits)
    out = {"baseline": val[baseline]}
    for v in early_visits:
        out[f"change_{v}"] = val[v] - val[baseline]
    y = val[window].to_numpy(float)
    t = day[window].to_numpy(float)
    if auc_of == "change":
        y = y - y[:, [0]]
    aucs = np.full(len(val), np.nan)
    for i in range(len(val)):
        ok = np.isfinite(y[i]) & np.isfinite(t[i])
        # both ends are needed: no truncated or extrapolated windows
        if ok[0] and ok[-1]:
            aucs[i] = trapezoid_auc(t[i][ok], y[i][ok])
    out[f"auc_{auc_end}"] = pd.Series(aucs, index=val.index)
    wide = pd.DataFrame(out)
    res = wide.reset_index().melt(
        id_vars=["feature", "patient_id"], var_name="measure", value_name="value"
    )
    res = res[np.isfinite(res["value"].astype(float))]
    order = {m: i for i, m in enumerate(measure_names(early_visits, auc_end))}
    res = (
        res.assign(_m=res["measure"].map(order))
        .sort_values(["feature", "_m", "patient_id"], kind="mergesort")
        .drop(columns="_m")
    )
    return res.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def _rng_for(seed, *keys):
    # one stream per feature x measure, so results do not depend on which others are run
    return np.random.default_rng([int(seed), zlib.crc32("|".join(map(str, keys)).encode())])


def _row(feature, family, measure, endpoint, test, **kw):
    row = dict.fromkeys(ASSOC_COLUMNS, math.nan)
    row.update(
        feature=feature,
        family=family,
        measure=measure,
        endpoint=endpoint,
        test=test,
        effect_type=EFFECT_TYPES[test],
        converged=True,
        note="",
    )
    row.update(kw)
    return row


def associate(
    measures: pd.DataFrame,
    responders: pd.DataFrame,
    family: str,
    seed: int = 0,
    n_boot: int = 2000,
    n_perm: int = 9999,
    level: float = 0.95,
    min_per_group: int = 3,
    note: str = "",
    exact_max: int = EXACT_MAX_ARRANGEMENTS,
) -> pd.DataFrame:
    """Mann-Whitney/AUC, logistic and Spearman rows for each feature x measure (no padj)."""
    resp = as_responders(responders)
    d = measures.merge(resp, on="patient_id", how="inner")
    rows = []
    groups = d.groupby(["feature", "measure"], sort=False)
    # tests, bootstrap CIs (n_boot resamples each) and permutations per feature x measure
    progress = Progress(f"response associations ({family})", groups.ngroups, "feature x measures")
    for (feature, measure), g in groups:
        rng = _rng_for(seed, family, feature, measure)
        known = g[g["responder"].notna()]
        yb = known["responder"].astype(bool).to_numpy()
        x = known["value"].to_numpy(float)
        n, n1 = len(known), int(yb.sum())
        base = dict(n=n, n_responders=n1)
        if min(n1, n - n1) < min_per_group:
            msg = f"fewer than {min_per_group} patients in a response group: not tested"
            for test in ("mann_whitney", "logistic"):
                rows.append(
                    _row(
                        feature,
                        family,
                        measure,
                        "responder",
                        test,
                        **base,
                        converged=False,
                        note=msg,
                    )
                )
        else:
            auc = auc_lower(x[yb], x[~yb])
            p, how = mann_whitney(x[yb], x[~yb], rng=rng, n_perm=n_perm, exact_max=exact_max)
            lo, hi = bootstrap_auc_ci(x[yb], x[~yb], rng, n_boot=n_boot, level=level)
            rows.append(
                _row(
                    feature,
                    family,
                    measure,
                    "responder",
                    "mann_whitney",
                    **base,
                    effect=auc,
                    auc=auc,
                    ci_low=lo,
                    ci_high=hi,
                    pvalue=p,
                    note=_join(f"{how} p; stratified bootstrap CI", note),
                )
            )
            lg = logistic_per_sd(x, yb, level=level)
            rows.append(
                _row(
                    feature,
                    family,
                    measure,
                    "responder",
                    "logistic",
                    **base,
                    auc=auc,
                    **{**lg, "note": _join(lg["note"], note)},
                )
            )
        ordinal = g[g["response_class"].isin(list(RESPONSE_RANK))]
        rank = ordinal["response_class"].map(RESPONSE_RANK).to_numpy(float)
        nb = dict(n=len(ordinal), n_responders=int((ordinal["responder"] == True).sum()))  # noqa: E712
        if len(ordinal) < 2 * min_per_group:
            rows.append(
                _row(
                    feature,
                    family,
                    measure,
                    "response_class",
                    "spearman",
                    **nb,
                    converged=False,
                    note=f"fewer than {2 * min_per_group} patients: not tested",
                )
            )
        else:
            sp = spearman_ordinal(
                ordinal["value"].to_numpy(float),
                rank,
                rng,
                n_perm=n_perm,
                n_boot=n_boot,
                level=level,
            )
            rows.append(
                _row(
                    feature,
                    family,
                    measure,
                    "response_class",
                    "spearman",
                    **nb,
                    **{**sp, "note": _join(sp["note"], note)},
                    converged=np.isfinite(sp["pvalue"]),
                )
            )
        progress.update()
    return pd.DataFrame(rows, columns=ASSOC_COLUMNS)


def _join(*parts):
    return "; ".join(p for p in parts if p)


def trajectory_rows(
    models: pd.DataFrame,
    family: str,
    score_method: str | None = None,
    long: pd.DataFrame | None = None,
    responders: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The visit x response interaction rows of a mixed-model table, as association rows
    (feature named by its ``signature``, ``analyte`` or ``feature`` column)."""
    m = models[models["term"].astype(str) == "interaction"].copy()
    if score_method is not None and "score_method" in m.columns:
        m = m[m["score_method"].astype(str) == score_method]
    col = next(c for c in ("signature", "analyte", "feature") if c in m.columns)
    name = m[col].astype(str)
    if long is not None:
        # features left out of the per-patient analysis (e.g. uninformative) stay out here too
        keep = name.isin(set(long["feature"]))
        m, name = m[keep], name[keep]
    n_resp = {}
    if long is not None and responders is not None:
        resp = as_responders(responders)
        d = long[["feature", "patient_id"]].drop_duplicates().merge(resp, on="patient_id")
        n_resp = d[d["responder"] == True].groupby("feature")["patient_id"].nunique()  # noqa: E712
        n_resp = n_resp.to_dict()
    rows = []
    for feat, r in zip(name.astype(str), m.itertuples(index=False), strict=True):
        conv = str(r.converged).strip().lower() in ("true", "1")
        boot = ""
        if pd.notna(getattr(r, "boot_ci_low", np.nan)):
            boot = f"bootstrap CI {r.boot_ci_low:.3g} to {r.boot_ci_high:.3g}"
        rows.append(
            _row(
                feat,
                family,
                "trajectory",
                "responder",
                "mixed_model_interaction",
                n=int(r.n_patients),
                n_responders=n_resp.get(feat, math.nan),
                effect=float(r.estimate),
                ci_low=float(r.ci_low),
                ci_high=float(r.ci_high),
                pvalue=float(r.pvalue),
                converged=conv,
                note=_join(str(r.method), boot),
            )
        )
    return pd.DataFrame(rows, columns=ASSOC_COLUMNS)


def adjust(table: pd.DataFrame) -> pd.DataFrame:
    """BH padj across features within family x measure x endpoint x test (converged rows)."""
    out = table.copy()
    out["padj"] = np.nan
    conv = out["converged"].astype(str).str.lower().isin(["true", "1"])
    ok = conv & np.isfinite(out["pvalue"].astype(float))
    for _, idx in out[ok].groupby(["family", "measure", "endpoint", "test"]).groups.items():
        out.loc[idx, "padj"] = bh_adjust(out.loc[idx, "pvalue"].to_numpy(float))
    return out


def sort_table(table: pd.DataFrame, measures) -> pd.DataFrame:
    """Rows ordered by family, feature, measure (protocol order), test."""
    fam = {f: i for i, f in enumerate(FAMILIES)}
    mea = {m: i for i, m in enumerate([*measures, "trajectory"])}
    tst = {t: i for i, t in enumerate(TESTS)}
    t = table.assign(
        _f=table["family"].map(fam), _m=table["measure"].map(mea), _t=table["test"].map(tst)
    )
    t = t.sort_values(["_f", "feature", "_m", "_t"], kind="mergesort")
    return t.drop(columns=["_f", "_m", "_t"]).reset_index(drop=True)[ASSOC_COLUMNS]


def response_associations(
    features: dict,
    responders: pd.DataFrame,
    visits,
    baseline: str = "D0",
    early_visits=("D7", "D14"),
    auc_end: str = "D28",
    auc_of: str = "change",
    models: dict | None = None,
    score_method: str | None = None,
    seed: int = 0,
    n_boot: int = 2000,
    n_perm: int = 9999,
    level: float = 0.95,
    min_per_group: int = 3,
    exact_max: int = EXACT_MAX_ARRANGEMENTS,
) -> pd.DataFrame:
    """The whole association table: ``features`` maps family -> long table, ``models``
    family -> mixed-model table (trajectory rows); BH-adjusted, sorted."""
    parts = []
    for family, long in features.items():
        if long is None or long.empty:
            continue
        meas = patient_measures(long, visits, baseline, early_visits, auc_end, auc_of)
        note = "gene chosen by LRT on these samples: p descriptive" if family == "gene" else ""
        log.info("response: %s: %d features", family, long["feature"].nunique())
        parts.append(
            associate(
                meas,
                responders,
                family,
                seed=seed,
                n_boot=n_boot,
                n_perm=n_perm,
                level=level,
                min_per_group=min_per_group,
                note=note,
                exact_max=exact_max,
            )
        )
    for family, m in (models or {}).items():
        if m is None or m.empty:
            continue
        parts.append(
            trajectory_rows(
                m,
                family,
                score_method if family == "signature" else None,
                features.get(family),
                responders,
            )
        )
    parts = [p for p in parts if not p.empty]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ASSOC_COLUMNS)
    table = adjust(table)
    return sort_table(table, measure_names(early_visits, auc_end))


def top_features(table: pd.DataFrame, k: int = 20, measures=None) -> pd.DataFrame:
    """Mann-Whitney rows with the smallest p-values (ties: AUC farthest from 0.5)."""
    t = table[(table["test"] == "mann_whitney") & np.isfinite(table["pvalue"].astype(float))]
    if measures is not None:
        t = t[t["measure"].isin(list(measures))]
    t = t.assign(_d=-(t["auc"].astype(float) - 0.5).abs())
    t = t.sort_values(["pvalue", "_d", "family", "feature", "measure"], kind="mergesort")
    return t.drop(columns="_d").head(k).reset_index(drop=True)
