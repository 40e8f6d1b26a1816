"""Random-intercept linear mixed model y = X b + u_patient + e by profiled REML or ML, from
per-patient sufficient statistics: one fit (bounded Brent search of the variance ratio) or
many patient weightings at once (bootstrap refits: batched Cholesky factorisations). Used by
:mod:`rhlh.longitudinal`, which builds the designs and the result tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

# search range of log(lam), lam = patient variance / residual variance, and the golden-section
# golden-section steps of the bootstrap refits (bracket 30 x 0.618^28, about 4e-5 wide,
# before a parabolic step)
_THETA_LOW, _THETA_HIGH = -18.0, 12.0
_GOLDEN_STEPS = 28


class PatientStats:
    """Per-patient sufficient statistics of a random-intercept model (X, y grouped by patient).

    With V_i = s2 (I + lam J) the GLS cross-products only need, per patient, X_i'X_i, X_i'y_i,
    y_i'y_i, the column sums s_i = X_i'1, the sum t_i = 1'y_i and n_i; a patient-level
    bootstrap then just reweights patients (a patient drawn twice counts twice).
    """

    def __init__(self, y, X, groups):
        codes, _ = pd.factorize(pd.Series(groups), sort=False)
        g = codes.max() + 1
        self.n = np.bincount(codes, minlength=g).astype(float)
        onehot = np.zeros((g, len(y)))
        onehot[codes, np.arange(len(y))] = 1.0
        self.S = onehot @ X  # g x p column sums
        self.t = onehot @ y  # g
        self.XtX_g = np.stack([X[codes == k].T @ X[codes == k] for k in range(g)])
        self.Xty_g = np.stack([X[codes == k].T @ y[codes == k] for k in range(g)])
        self.yty_g = np.array([y[codes == k] @ y[codes == k] for k in range(g)])
        self.p = X.shape[1]

    def fit(self, weights=None, reml=True):
        """REML/ML estimates; returns (params, cov, llf, converged)."""
        c = np.ones(len(self.n)) if weights is None else np.asarray(weights, float)
        XtX = np.tensordot(c, self.XtX_g, axes=1)
        Xty = c @ self.Xty_g
        yty = c @ self.yty_g
        N = c @ self.n
        p = self.p
        dof = N - p if reml else N
        if dof <= 0:
            return None, None, np.nan, False

        def parts(lam):
            w = c * lam / (1.0 + self.n * lam)
            A = XtX - (self.S * w[:, None]).T @ self.S
            b = Xty - (self.S * w[:, None]).T @ self.t
            rss = yty - (w * self.t) @ self.t
            try:
                L = np.linalg.cholesky(A)
            except np.linalg.LinAlgError:
                return None
            beta = np.linalg.solve(A, b)
            rss = rss - b @ beta
            logdet_v = c @ np.log1p(self.n * lam)
            return A, beta, max(rss, 1e-300), logdet_v, 2.0 * np.log(np.diag(L)).sum()

        def neg_ll(theta):
            out = parts(np.exp(theta))
            if out is None:
                return np.inf
            _, _, rss, logdet_v, logdet_a = out
            val = dof * np.log(rss / dof) + logdet_v + (logdet_a if reml else 0.0)
            return 0.5 * val

        from scipy.optimize import minimize_scalar

        opt = minimize_scalar(
            neg_ll, bounds=(_THETA_LOW, _THETA_HIGH), method="bounded", options={"xatol": 1e-10}
        )
        theta = float(opt.x)
        # the variance of the random intercept may sit on its boundary (lam -> 0)
        if neg_ll(_THETA_LOW) <= opt.fun:
            theta = _THETA_LOW
        out = parts(np.exp(theta))
        if out is None:
            return None, None, np.nan, False
        A, beta, rss, logdet_v, logdet_a = out
        s2 = rss / dof
        cov = s2 * np.linalg.inv(A)
        llf = -0.5 * (dof * np.log(2 * np.pi * s2) + logdet_v + dof + (logdet_a if reml else 0.0))
        diag = np.diag(cov)
        ok = (
            bool(opt.success or theta == _THETA_LOW)
            and np.all(np.isfinite(beta))
            and np.all(diag > 0)
        )
        return beta, cov, float(llf), ok

    def fit_many(self, weights, reml=True, iterations=_GOLDEN_STEPS, with_cov=False):
        """REML/ML fixed effects for many patient weightings at once (bootstrap resamples).

        ``weights`` is B x patients; returns (params B x p, ok B), and with ``with_cov`` also
        the covariances of the fixed effects (B x p x p, s2 (X'V^-1 X)^-1 as :meth:`fit`).
        The same profiled likelihood as :meth:`fit`, minimised over log(lam) in [-18, 12]
        for all rows together: ``iterations`` golden-section steps (bracket 30 x 0.618^steps),
        then one parabolic step through the two inner points and the bracket's midpoint; the
        boundary lam -> 0 is kept when it is no worse. Each evaluation is one batched Cholesky
        factorisation of the GLS cross-product of [X y], M(lam) = Z'Z - sum_i c_i w_i(lam)
        z_i z_i' with w_i = lam / (1 + n_i lam) and z_i patient i's column sums: its first p
        diagonal entries give log det(X'V^-1 X), the last one squared the residual sum of
        squares.
        Patients with the same number of observations share w_i, so the per-resample sums
        over them are formed once, before the search. Rows whose cross-product is not
        positive definite (a resample that makes the design rank-deficient) get ok False.
        """
        C = np.atleast_2d(np.asarray(weights, float))
        B, p = C.shape[0], self.p
        q = p + 1
        g = len(self.n)
        Sa = np.column_stack([self.S, self.t])  # g x (p+1): column sums of [X y]
        ZtZ_g = np.zeros((g, q, q))
        ZtZ_g[:, :p, :p] = self.XtX_g
        ZtZ_g[:, :p, p] = ZtZ_g[:, p, :p] = self.Xty_g
        ZtZ_g[:, p, p] = self.yty_g
        ZtZ = (C @ ZtZ_g.reshape(g, q * q)).reshape(B, q, q)
        SS = np.einsum("gp,gq->gpq", Sa, Sa).reshape(g, q * q)
        sizes, size_of = np.unique(self.n, return_inverse=True)
        # per resample and patient size: summed weights and summed z_i z_i'
        Cm = np.stack([C[:, size_of == m].sum(axis=1) for m in range(len(sizes))], axis=1)
        G = np.stack([C[:, size_of == m] @ SS[size_of == m] for m in range(len(sizes))], axis=1)
        N = C @ self.n
        dof = N - p if reml else N
        eye = np.eye(q)

        def factor(M, good):
            """Batched Cholesky; rows that are not positive definite get good False."""
            M = np.where(good[:, None, None], M, eye)
            L, good = np.empty_like(M), good.copy()
            cholesky_rows(M, L, good, np.arange(len(M)))
            return L, good

        # X'V^-1 X is positive definite for every lam exactly when X'X (lam = 0) is: a
        # rank-deficient resample is found once, before the search
        xtx = ZtZ.copy()
        xtx[:, p, :] = xtx[:, :, p] = 0.0
        xtx[:, p, p] = 1.0
        _, ok = factor(xtx, dof > 0)
        dof = np.where(ok, dof, 1.0)

        def chol(theta):
            lam = np.exp(theta)[:, None]
            w = lam / (1.0 + sizes[None, :] * lam)  # B x sizes
            M = ZtZ - np.einsum("bm,bmk->bk", w, G).reshape(B, q, q)
            L, good = factor(M, ok)
            return lam, M, L, good

        def neg_ll(theta):
            lam, _, L, good = chol(theta)
            diag = np.abs(np.diagonal(L, axis1=1, axis2=2))
            with np.errstate(divide="ignore", invalid="ignore"):
                rss = np.maximum(diag[:, p] ** 2, 1e-300)
                logdet_v = (Cm * np.log1p(sizes[None, :] * lam)).sum(axis=1)
                logdet_a = 2.0 * np.log(diag[:, :p]).sum(axis=1) if reml else 0.0
                val = 0.5 * (dof * np.log(rss / dof) + logdet_v + logdet_a)
            return np.where(good & np.isfinite(val), val, np.inf)

        lo, hi = np.full(B, _THETA_LOW), np.full(B, _THETA_HIGH)
        r = (np.sqrt(5.0) - 1.0) / 2.0
        x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
        f1, f2 = neg_ll(x1), neg_ll(x2)
        for _ in range(iterations):
            left = f1 <= f2  # the minimum is in [lo, x2], else in [x1, hi]
            hi = np.where(left, x2, hi)
            lo = np.where(left, lo, x1)
            x1_new = np.where(left, hi - r * (hi - lo), x2)
            x2_new = np.where(left, x1, lo + r * (hi - lo))
            f_new = neg_ll(np.where(left, x1_new, x2_new))
            f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
            x1, x2 = x1_new, x2_new
        # parabola through x1 < mid < x2 (inside the final bracket); its vertex if better
        mid = (x1 + x2) / 2.0
        fm = neg_ll(mid)
        with np.errstate(divide="ignore", invalid="ignore"):
            num = (mid - x1) ** 2 * (fm - f2) - (mid - x2) ** 2 * (fm - f1)
            den = (mid - x1) * (fm - f2) - (mid - x2) * (fm - f1)
            vertex = np.clip(mid - 0.5 * num / den, lo, hi)
        vertex = np.where(np.isfinite(vertex), vertex, mid)
        fv = neg_ll(vertex)
        cand = np.stack([x1, mid, x2, vertex], axis=1)
        fval = np.stack([f1, fm, f2, fv], axis=1)
        best = np.argmin(fval, axis=1)
        theta, fbest = cand[np.arange(B), best], fval[np.arange(B), best]
        theta = np.where(neg_ll(np.full(B, _THETA_LOW)) <= fbest, _THETA_LOW, theta)
        _, M, _, good = chol(theta)
        A = np.where(good[:, None, None], M[:, :p, :p], np.eye(p))
        beta = np.linalg.solve(A, M[:, :p, p:])[:, :, 0]
        good = good & np.all(np.isfinite(beta), axis=1)
        if not with_cov:
            return beta, good
        # residual sum of squares: M's Schur complement of its first p rows and columns
        rss = M[:, p, p] - np.einsum("bp,bp->b", M[:, p, :p], beta)
        s2 = np.maximum(rss, 1e-300) / dof
        cov = s2[:, None, None] * np.linalg.inv(A)
        return beta, good, cov


def cholesky_rows(M, L, good, rows):
    """Cholesky factors of M[rows] into L[rows]; a batch that fails is split in halves until
    the matrices that are not positive definite are found (good False, L the identity)."""
    try:
        L[rows] = np.linalg.cholesky(M[rows])
    except np.linalg.LinAlgError:
        if len(rows) == 1:
            L[rows] = np.eye(M.shape[1])
            good[rows] = False
            return
        half = len(rows) // 2
        cholesky_rows(M, L, good, rows[:half])
        cholesky_rows(M, L, good, rows[half:])


def fit(y, X, groups, reml):
    """Fit one random-intercept linear mixed model; returns (params, cov, llf, converged).

    Exact REML (or ML) by profiling the variance ratio lam = s2_patient / s2_residual in one
    dimension (bounded Brent search), which gives statsmodels MixedLM's optimum at a fraction
    of its cost and never fails on the boundary lam = 0.
    """
    return PatientStats(np.asarray(y, float), np.asarray(X, float), groups).fit(reml=reml)
