"""Quasi-likelihood F-tests for the NB GLM: the calibrated mode of the DE stage.

The NB part of the model keeps DESeq2's mean-dispersion trend (the fitted dispersions, one
value per abundance); what each gene varies beyond it — gene-wise dispersion off the trend,
extra sample-level noise, patient-specific trajectories left in the residuals — is carried
by a quasi-likelihood dispersion per gene: the residual deviance over its residual degrees
of freedom. Those are squeezed towards an abundance trend by empirical Bayes (limma's
``fitFDist`` / ``squeezeVar``: a scaled F distribution fitted to them by moments on the log
scale), and the tests use F references with the prior and residual degrees of freedom, as
edgeR's ``glmQLFit`` / ``glmQLFTest``: an uncertain dispersion widens the reference instead
of being taken as known. Pure numpy / scipy; the fits come from ``rhlh.nbglm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, polygamma
from scipy.stats import f as f_dist

ZERO_MU = 1e-4  # fitted means below this count as exact zeros (edgeR's residual df rule)
# floor of the fitted means in the QL fits' IRLS weights: none in effect (edgeR's fits have
# none; DESeq2's 0.5 would keep an all-zero group's means at 0.5 and inflate its deviance)
MIN_MU = 1e-8


def nb_deviance(y, mu, disp) -> np.ndarray:
    """Residual deviance of NB fits per gene (y, mu: n x genes; disp: genes)."""
    y = np.asarray(y, dtype=float)
    mu = np.maximum(np.asarray(mu, dtype=float), 1e-300)
    d = np.asarray(disp, dtype=float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ylog = np.where(y > 0, y * np.log(y / mu), 0.0)
        unit = 2.0 * (ylog - (y + 1.0 / d) * np.log((1.0 + d * y) / (1.0 + d * mu)))
    return np.maximum(unit, 0.0).sum(axis=0)


def residual_df(y, mu, X) -> np.ndarray:
    """Residual degrees of freedom per gene, less the samples fitted exactly at zero.

    A sample whose fitted mean is zero (a group of all zeros) carries no information on the
    dispersion: the gene's df is the number of other samples minus the rank of the design
    on them (edgeR's rule). Genes sharing a zero pattern share one rank computation.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    zero = (np.asarray(mu) < ZERO_MU) & (np.asarray(y) < ZERO_MU)
    df = np.full(zero.shape[1], float(n - np.linalg.matrix_rank(X)))
    has = np.flatnonzero(zero.any(axis=0))
    if has.size:
        patterns, inverse = np.unique(zero[:, has].T, axis=0, return_inverse=True)
        for k, pat in enumerate(patterns):
            keep = ~pat
            rank = np.linalg.matrix_rank(X[keep]) if keep.any() else 0
            df[has[inverse.ravel() == k]] = max(float(keep.sum() - rank), 0.0)
    return df


def trigamma_inverse(y) -> np.ndarray:
    """x with trigamma(x) = y (Newton's method on 1 / trigamma, as limma)."""
    y = np.atleast_1d(np.asarray(y, dtype=float))
    x = np.where(y > 1e7, 1.0 / np.sqrt(y), np.where(y < 1e-6, 1.0 / y, 0.5 + 1.0 / y))
    mid = (y <= 1e7) & (y >= 1e-6)
    for _ in range(50):
        if not mid.any():
            break
        tri = polygamma(1, x[mid])
        dif = tri * (1.0 - tri / y[mid]) / polygamma(2, x[mid])
        x[mid] += dif
        if np.max(-dif / x[mid]) < 1e-8:
            break
    return x


def natural_spline_basis(x, df: int) -> np.ndarray:
    """A natural cubic spline basis of x with ``df`` columns, intercept included (df - 2
    interior knots at quantiles, linear beyond the range): the column space of R's
    ``ns(x, df = df, intercept = TRUE)``, which limma's ``fitFDist`` uses for its trend."""
    x = np.asarray(x, dtype=float)
    if df <= 2:
        return np.column_stack([np.ones_like(x), x])[:, :df]
    knots = np.quantile(x, np.linspace(0, 1, df))
    lo, hi = knots[0], knots[-1]
    span = hi - lo if hi > lo else 1.0

    def d(k):
        return (np.maximum(x - k, 0) ** 3 - np.maximum(x - hi, 0) ** 3) / (hi - k)

    cols = [np.ones_like(x), (x - lo) / span]
    last = d(knots[-2])
    for k in knots[:-2]:
        cols.append((d(k) - last) / span**2)
    return np.column_stack(cols)


@dataclass
class FPrior:
    """The scaled-F prior of the QL dispersions: s2 ~ s2_prior * F(df, df_prior)."""

    s2_prior: np.ndarray  # per gene (a trend in abundance)
    df_prior: float  # np.inf when the dispersions vary no more than sampling would make them


def fit_f_prior(s2, df, covariate=None, spline_df: int = 4) -> FPrior:
    """Moment estimates of the prior of the QL dispersions on the log scale (limma's
    ``fitFDist``), with a natural-spline trend on ``covariate`` (log abundance) when given."""
    s2 = np.asarray(s2, dtype=float)
    df = np.broadcast_to(np.asarray(df, dtype=float), s2.shape)
    ok = np.isfinite(s2) & (df > 1e-15) & (s2 > -1e-15)
    s2_ok = np.maximum(s2[ok], 0.0)
    med = np.median(s2_ok)
    s2_ok = np.maximum(s2_ok, 1e-5 * (med if med > 0 else 1.0))  # limma's floor
    half = df[ok] / 2.0
    e = np.log(s2_ok) - digamma(half) + np.log(half)
    n = e.size
    n_df = 1 if covariate is None else 1 + (n >= 3) + (n >= 6) + (n >= 30)  # limma's rule
    if covariate is not None:
        n_df = min(n_df, spline_df, len(np.unique(np.asarray(covariate)[ok])))
    if n_df < 2:
        emean = np.full(n, e.mean())
        rank = 1
    else:
        cov = np.asarray(covariate, dtype=float)[ok]
        basis = natural_spline_basis(cov, n_df)
        coef, *_ = np.linalg.lstsq(basis, e, rcond=None)
        emean = basis @ coef
        rank = np.linalg.matrix_rank(basis)
    evar = np.sum((e - emean) ** 2) / max(n - rank, 1) - np.mean(polygamma(1, half))
    prior = np.full(s2.shape, np.nan)
    if evar > 0:
        df0 = float(2.0 * trigamma_inverse(evar)[0])
        level = np.exp(emean + digamma(df0 / 2.0) - np.log(df0 / 2.0))
    else:
        df0, level = np.inf, np.exp(emean)
    prior[ok] = level
    if (~ok).any():  # genes without a usable s2 get the prior of the nearest abundance
        prior[~ok] = np.exp(np.median(np.log(level)))
        if n_df >= 2:
            cov_all = np.asarray(covariate, dtype=float)
            order = np.argsort(cov_all[ok])
            prior[~ok] = np.interp(cov_all[~ok], cov_all[ok][order], level[order])
    return FPrior(s2_prior=prior, df_prior=df0)


@dataclass
class QLFit:
    """QL dispersions of one design's fit (trended NB dispersions), ready for F-tests."""

    deviance: np.ndarray  # genes
    df_residual: np.ndarray  # genes
    s2: np.ndarray  # raw QL dispersions
    s2_post: np.ndarray  # squeezed
    df_prior: float
    df_total: np.ndarray  # genes: residual + prior df, capped at the pooled residual df

    def describe(self) -> str:
        prior = "infinite" if np.isinf(self.df_prior) else f"{self.df_prior:.1f}"
        return (
            f"QL dispersions: prior df {prior}, median raw {np.nanmedian(self.s2):.3f}, "
            f"median squeezed {np.nanmedian(self.s2_post):.3f}"
        )


def ql_fit(y, mu, disp, X, abundance) -> QLFit:
    """QL dispersions from a fit with known NB dispersions (y, mu: n x genes), squeezed
    towards a trend in ``abundance`` (e.g. log mean normalised count)."""
    dev = nb_deviance(y, mu, disp)
    dfr = residual_df(y, mu, X)
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(dfr > 0, dev / dfr, np.nan)
    prior = fit_f_prior(s2, dfr, covariate=abundance)
    df0 = prior.df_prior
    if np.isinf(df0):
        post = prior.s2_prior.copy()
        total = np.full(s2.shape, np.inf)
    else:
        s2_use = np.where(np.isfinite(s2), s2, 0.0)
        post = (df0 * prior.s2_prior + dfr * s2_use) / (df0 + dfr)
        total = dfr + df0
    X = np.asarray(X)
    pooled = float(dfr.size * (X.shape[0] - X.shape[1]))
    total = np.minimum(total, pooled)  # never more information than all genes hold (edgeR)
    return QLFit(dev, dfr, s2, post, df0, total)


def f_test(dev_reduced, ql: QLFit, df_test: int):
    """QL F statistics and p-values of a nested model (its deviance under the same NB
    dispersions) against the fit of ``ql``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.maximum(np.asarray(dev_reduced) - ql.deviance, 0.0) / df_test / ql.s2_post
    return stat, f_dist.sf(stat, df_test, ql.df_total)


def wald_f(z, ql: QLFit):
    """A Wald z statistic (NB fit with the trended dispersions) as a QL test: t = z /
    sqrt(s2_post) against a t reference with the QL's total df (F with 1 df)."""
    from scipy.stats import t as t_dist

    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.asarray(z, dtype=float) / np.sqrt(ql.s2_post)
    return t, 2.0 * t_dist.sf(np.abs(t), ql.df_total)
