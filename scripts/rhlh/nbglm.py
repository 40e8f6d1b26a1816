"""Negative-binomial GLM solvers vectorised over genes: a pydeseq2 inference backend.

pydeseq2 0.5.4 fits every gene on its own (one scipy optimiser call per gene, spread over
joblib workers). The models are the same for every gene but the counts, so the same work can
be written as array operations over a block of genes: one matrix product builds every gene's
``X^T W X``, one batched LAPACK call solves them. ``VectorInference`` plugs these solvers into
pydeseq2 (``DeseqDataSet(..., inference=VectorInference())``), so pydeseq2 keeps its pipeline
(size factors, trend, prior, Cook's distances, refits) and only the per-gene solvers change:

- ``irls``: DESeq2's IRLS (ridge 1e-6, relative-deviance stop), same start and stop rule as
  ``pydeseq2.utils.irls_solver``; genes that diverge (|beta| > 30) or hit ``maxiter`` go to
  pydeseq2's own per-gene solver, as in pydeseq2.
- ``alpha_mle``: the Cox-Reid adjusted (and, for MAP, log-normal prior) dispersion likelihood
  maximised by Newton's method in log dispersion with exact first and second derivatives and
  an Armijo backtracking line search, within [min_disp, max_disp]; genes that do not converge
  go to pydeseq2's grid search.
- ``lin_reg_mu`` and ``wald_test``: closed forms, vectorised.

``shrink_coefficient`` gives apeGLM-shrunken coefficients (Cauchy prior on one coefficient,
normal prior of sd 15 on the others, as ``pydeseq2.utils.nbinomGLM``) by a Newton /
minorise-maximise iteration that is monotone on the true posterior.

Genes are processed in blocks whose arrays fit in ``CHUNK_BYTES`` so that memory does not grow
with the number of genes beyond the outputs.
"""

from __future__ import annotations

import numpy as np
from pydeseq2.default_inference import DefaultInference
from scipy.optimize import root_scalar
from scipy.special import digamma, expit, gammaln
from scipy.stats import norm

CHUNK_BYTES = 128 * 2**20


def nb_loglik(y, mu, disp):
    """Negative-binomial log-likelihood of each count (mean mu, variance mu + disp mu^2)."""
    r = 1.0 / disp
    return (
        gammaln(y + r)
        - gammaln(r)
        - gammaln(y + 1.0)
        + r * np.log(r / (r + mu))
        + y * np.log(mu / (r + mu))
    )


def gene_blocks(n_genes: int, n_samples: int, n_coef: int, n_cpus: int = 1):
    """Slices of genes whose working arrays take about ``CHUNK_BYTES``, >= n_cpus of them."""
    per_gene = 8 * (12 * n_samples + 6 * n_coef * n_coef)
    size = min(CHUNK_BYTES // per_gene, -(-n_genes // max(n_cpus, 1)))
    size = max(32, int(size))
    return [slice(a, min(a + size, n_genes)) for a in range(0, n_genes, size)]


def blockwise(fn, n_genes: int, n_samples: int, n_coef: int, n_cpus: int = 1) -> list:
    """``fn(block)`` for every block of genes, ``n_cpus`` blocks at a time; results in order.

    Blocks run in threads (numpy and scipy release the GIL) with BLAS held to one thread
    each, so that the declared cores are used once, not n_cpus x BLAS threads.
    """
    blocks = gene_blocks(n_genes, n_samples, n_coef, n_cpus)
    if n_cpus <= 1 or len(blocks) == 1:
        return [fn(b) for b in blocks]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), ThreadPoolExecutor(n_cpus) as pool:
        return list(pool.map(fn, blocks))


def trigamma(x):
    """psi'(x) for x > 0: recurrence up to x >= 6, then the asymptotic series (rel. err < 1e-9).

    scipy's ``polygamma(1, x)`` goes through the Hurwitz zeta function and is ~20x slower.
    """
    x = np.asarray(x, dtype=float)
    small = x < 6.0
    acc = np.zeros_like(x)
    if small.any():
        xs = x[small]
        acc[small] = sum(1.0 / (xs + k) ** 2 for k in range(6))
    z = np.where(small, x + 6.0, x)
    iz = 1.0 / z
    iz2 = iz * iz
    series = 1.0 / 6 + iz2 * (-1.0 / 30 + iz2 * (1.0 / 42 + iz2 * (-1.0 / 30)))
    return acc + iz + iz2 * (0.5 + iz * series)


class Gram:
    """``X^T diag(w) X`` for many weight vectors at once, and the matching quadratic forms."""

    def __init__(self, X):
        self.X = np.asarray(X, dtype=float)
        self.p = self.X.shape[1]
        self.iu = np.triu_indices(self.p)
        self.xx = self.X[:, self.iu[0]] * self.X[:, self.iu[1]]  # n x p(p+1)/2
        self.mult = np.where(self.iu[0] == self.iu[1], 1.0, 2.0)

    def __call__(self, w, ridge=None):
        """Stack of ``X^T diag(w[:, g]) X`` (+ ridge), shape genes x p x p."""
        q = w.T @ self.xx
        a = np.empty((w.shape[1], self.p, self.p))
        a[:, self.iu[0], self.iu[1]] = q
        a[:, self.iu[1], self.iu[0]] = q
        if ridge is not None:
            a += ridge
        return a

    def quad(self, m):
        """``x_i^T m[g] x_i`` for every sample i and gene g (m symmetric), shape n x genes."""
        return ((m[:, self.iu[0], self.iu[1]] * self.mult) @ self.xx.T).T


def _inv(a):
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(a, hermitian=True)


def _solve(a, b):
    try:
        return np.linalg.solve(a, b[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.einsum("gij,gj->gi", np.linalg.pinv(a, hermitian=True), b)


def _start(y, size_factors, X):
    """Least-squares start on log(y / s + 0.1), as pydeseq2's and DESeq2's IRLS."""
    logy = np.log(y / size_factors[:, None] + 0.1)
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return np.linalg.lstsq(X, logy, rcond=None)[0].T
    beta = np.zeros((y.shape[1], X.shape[1]))
    beta[:, 0] = logy.mean(axis=0)
    return beta


def irls(
    y,
    size_factors,
    X,
    disp,
    min_mu=0.5,
    beta_tol=1e-8,
    max_beta=30.0,
    maxiter=250,
    ridge=1e-6,
    gram=None,
    beta_init=None,
):
    """IRLS fits of one NB GLM per gene (columns of y) with known dispersions (one block).

    Returns (beta genes x p, unthresholded mu n x genes, hat diagonals n x genes, converged,
    needs_fallback): genes whose iteration diverged or hit ``maxiter`` are flagged in
    ``needs_fallback`` with their last iterate. ``beta_init`` (genes x p) replaces the
    least-squares start (a warm start from a related fit).
    """
    y = np.asarray(y, dtype=float)
    sf = np.asarray(size_factors, dtype=float)
    disp = np.asarray(disp, dtype=float)
    gram = gram or Gram(X)
    X = gram.X
    n_genes, p = y.shape[1], X.shape[1]
    ridge_m = ridge * np.eye(p)
    beta = _start(y, sf, X) if beta_init is None else np.array(beta_init, dtype=float)
    mu = np.maximum(sf[:, None] * np.exp(X @ beta.T), min_mu)
    dev = np.full(n_genes, 1000.0)
    fallback = np.zeros(n_genes, dtype=bool)
    active = np.arange(n_genes)
    for _ in range(maxiter):
        if active.size == 0:
            break
        ya, ma, da = y[:, active], mu[:, active], disp[active]
        w = ma / (1.0 + ma * da[None, :])
        z = np.log(ma / sf[:, None]) + (ya - ma) / ma
        new = _solve(gram(w, ridge_m), (w * z).T @ X)
        bad = ~np.isfinite(new).all(axis=1) | (np.abs(new) > max_beta).any(axis=1)
        fallback[active[bad]] = True
        act, new = active[~bad], new[~bad]
        mu_new = np.maximum(sf[:, None] * np.exp(X @ new.T), min_mu)
        dev_new = -2.0 * nb_loglik(y[:, act], mu_new, disp[act][None, :]).sum(axis=0)
        beta[act], mu[:, act] = new, mu_new
        done = np.abs(dev_new - dev[act]) / (np.abs(dev_new) + 0.1) < beta_tol
        dev[act] = dev_new
        active = act[~done]
    fallback[active] = True
    hat = hat_diagonals(beta, sf, X, disp, min_mu, ridge, gram)
    return beta, sf[:, None] * np.exp(X @ beta.T), hat, ~fallback, fallback


def fit_glm(y, size_factors, X, disp, min_mu=0.5, beta_tol=1e-8, n_cpus=1, beta_init=None, **kw):
    """``irls`` over all genes in blocks, ``n_cpus`` blocks at a time (same outputs)."""
    y = np.asarray(y, dtype=float)
    disp = np.asarray(disp, dtype=float)
    gram = Gram(X)

    def run(blk):
        init = None if beta_init is None else beta_init[blk]
        return irls(
            y[:, blk], size_factors, X, disp[blk], min_mu, beta_tol, gram=gram, beta_init=init, **kw
        )

    parts = blockwise(run, y.shape[1], y.shape[0], gram.p, n_cpus)
    beta, mu, hat, conv, fallback = zip(*parts, strict=True)
    return (
        np.concatenate(beta),
        np.concatenate(mu, axis=1),
        np.concatenate(hat, axis=1),
        np.concatenate(conv),
        np.concatenate(fallback),
    )


def hat_diagonals(beta, size_factors, X, disp, min_mu=0.5, ridge=1e-6, gram=None):
    """Diagonal of ``W^1/2 X (X^T W X + ridge)^-1 X^T W^1/2`` per gene (n x genes)."""
    gram = gram or Gram(X)
    mu = np.maximum(size_factors[:, None] * np.exp(gram.X @ beta.T), min_mu)
    w = mu / (1.0 + mu * disp[None, :])
    return w * gram.quad(_inv(gram(w, ridge * np.eye(gram.p))))


def _dispersion_objective(
    y, lgy1, mu, gram, theta, target, prior_var, cr_reg, derivs, weights=None
):
    """Negative (CR-adjusted, prior-penalised) log-likelihood in theta = log(dispersion).

    ``lgy1`` is gammaln(y + 1); ``weights`` (n x genes, optional) weight each count's
    log-likelihood. Returns f, or (f, gradient, second derivative) per gene.
    """

    def total(terms):
        return (terms if weights is None else weights * terms).sum(axis=0)

    a = np.exp(theta)[None, :]
    r = 1.0 / a
    log1p_am = np.log1p(a * mu)
    f = -total(gammaln(y + r) - gammaln(r) - lgy1 - r * log1p_am + y * (np.log(a * mu) - log1p_am))
    if derivs:
        rm = r + mu
        dl_dr = total(digamma(y + r) - digamma(r) - log1p_am + (mu - y) / rm)
        d2l_dr2 = total(trigamma(y + r) - trigamma(r) + mu / (r * rm) - (mu - y) / rm**2)
        r1 = r[0]
        g = r1 * dl_dr
        h = -(r1 * r1 * d2l_dr2 + r1 * dl_dr)
    if cr_reg:
        w = mu / (1.0 + a * mu)
        gm = gram(w)
        f = f + 0.5 * np.linalg.slogdet(gm)[1]
        if derivs:
            inv = _inv(gm)
            lev = gram.quad(inv)  # x_i^T A^-1 x_i
            w1 = -a * w * w  # dW / dtheta
            w2 = w1 + 2.0 * a * a * w**3  # d2W / dtheta2
            m = inv @ gram(w1)
            g = g + 0.5 * (w1 * lev).sum(axis=0)
            h = h + 0.5 * ((w2 * lev).sum(axis=0) - (m * m.transpose(0, 2, 1)).sum(axis=(1, 2)))
    if prior_var is not None:
        f = f + (theta - target) ** 2 / (2.0 * prior_var)
        if derivs:
            g = g + (theta - target) / prior_var
            h = h + 1.0 / prior_var
    return (f, g, h) if derivs else f


def alpha_mle(
    y,
    X,
    mu,
    alpha_hat,
    min_disp,
    max_disp,
    prior_disp_var=None,
    cr_reg=True,
    prior_reg=False,
    tol=1e-7,
    gtol=1e-5,
    maxiter=100,
    gram=None,
    weights=None,
):
    """Dispersion per gene maximising the (CR-adjusted, optionally MAP) NB likelihood.

    Newton's method in log dispersion from ``alpha_hat`` (the prior's centre when
    ``prior_reg``), with a backtracking line search (one block), until the step is below
    ``tol`` or the gradient below ``gtol``; returns (dispersions, converged). ``weights`` (n x genes) weight the counts' log-likelihoods (not the
    Cox-Reid term).
    """
    y = np.asarray(y, dtype=float)
    mu = np.asarray(mu, dtype=float)
    lgy1 = gammaln(y + 1.0)
    gram = gram or Gram(X)
    lo, hi = np.log(min_disp), np.log(max_disp)
    target = np.log(np.asarray(alpha_hat, dtype=float))
    theta = np.clip(target, lo, hi)
    prior_var = prior_disp_var if prior_reg else None
    converged = np.zeros(y.shape[1], dtype=bool)

    def objective(idx, th, derivs):
        wt = None if weights is None else weights[:, idx]
        return _dispersion_objective(
            y[:, idx],
            lgy1[:, idx],
            mu[:, idx],
            gram,
            th,
            target[idx],
            prior_var,
            cr_reg,
            derivs,
            wt,
        )

    active = np.arange(y.shape[1])
    f, g, h = objective(active, theta, True)
    for _ in range(maxiter):
        # a flat likelihood stops the search where it is, as L-BFGS-B's projected-gradient
        # test does in pydeseq2 (and DESeq2's line search): e.g. a start at min_disp for
        # a gene of a few reads in many samples stays there
        flat = np.abs(g) < gtol
        converged[active[flat]] = True
        active, f, g, h = active[~flat], f[~flat], g[~flat], h[~flat]
        if active.size == 0:
            break
        step = np.where(h > 0, -g / np.where(h > 0, h, 1.0), -np.sign(g))
        step = np.clip(step, -3.0, 3.0)
        new = np.clip(theta[active] + step, lo, hi)
        step = new - theta[active]
        f_new = objective(active, new, False)
        for _ in range(50):
            # Armijo condition; a NaN objective counts as a failed step
            bad = ~(f_new <= f + 1e-4 * g * step) & (np.abs(step) > 1e-12)
            if not bad.any():
                break
            step[bad] *= 0.5
            new[bad] = theta[active[bad]] + step[bad]
            f_new[bad] = objective(active[bad], new[bad], False)
        theta[active] = new
        small = np.abs(step) < tol
        converged[active[small]] = True
        active = active[~small]
        if active.size == 0:
            break
        f, g, h = objective(active, theta[active], True)
    return np.exp(theta), converged


def fit_dispersions(y, X, mu, alpha_hat, min_disp, max_disp, n_cpus=1, weights=None, **kw):
    """``alpha_mle`` over all genes in blocks, ``n_cpus`` blocks at a time."""
    y = np.asarray(y, dtype=float)
    alpha_hat = np.asarray(alpha_hat, dtype=float)
    gram = Gram(X)

    def run(blk):
        wt = None if weights is None else weights[:, blk]
        return alpha_mle(
            y[:, blk],
            X,
            mu[:, blk],
            alpha_hat[blk],
            min_disp,
            max_disp,
            gram=gram,
            weights=wt,
            **kw,
        )

    parts = blockwise(run, y.shape[1], y.shape[0], gram.p, n_cpus)
    disp, conv = zip(*parts, strict=True)
    return np.concatenate(disp), np.concatenate(conv)


def wald(X, disp, lfc, mu, ridge_factor, contrast, lfc_null=0.0, n_cpus=1):
    """Wald p-values, statistics and standard errors of ``contrast`` for every gene."""
    gram = Gram(X)
    stats = np.full(lfc.shape[0], np.nan)
    se = np.full(lfc.shape[0], np.nan)
    ok = np.flatnonzero(np.isfinite(mu).all(axis=0) & np.isfinite(lfc).all(axis=1))

    def run(blk):
        idx = ok[blk]
        m = mu[:, idx]
        w = m / (1.0 + m * disp[idx][None, :])
        gm = gram(w)
        hc = _inv(gm + ridge_factor) @ contrast
        se[idx] = np.sqrt(np.einsum("gi,gij,gj->g", hc, gm, hc))
        stats[idx] = (lfc[idx] - lfc_null) @ contrast / se[idx]

    blockwise(run, len(ok), X.shape[0], gram.p, n_cpus)
    return 2.0 * norm.sf(np.abs(stats)), stats, se


def apeglm_prior_var(lfc, se, min_var=1e-6, max_var=400.0):
    """apeGLM prior variance of a coefficient from its MLEs and SEs (natural log scale)."""
    keep = np.isfinite(lfc) & np.isfinite(se)
    s2, d2 = np.asarray(lfc)[keep] ** 2, np.asarray(se)[keep] ** 2

    def objective(a):
        c = 1.0 / (2.0 * (a + d2) ** 2)
        return ((s2 - d2) * c).sum() / c.sum() - a

    if objective(min_var) < 0:
        return min_var
    return root_scalar(objective, bracket=(min_var, max_var)).root


def _shrink_objective(beta, y, X, offset, r, k, s0, s):
    eta = X @ beta.T + offset[:, None]
    lik = (y * eta - (y + r[None, :]) * np.logaddexp(eta, np.log(r)[None, :])).sum(axis=0)
    mask = np.ones(X.shape[1], dtype=bool)
    mask[k] = False
    prior = (beta[:, mask] ** 2).sum(axis=1) / (2.0 * s0**2) + np.log1p((beta[:, k] / s) ** 2)
    return prior - lik, eta


def _shrink_block(y, offset, gram, r, k, s0, s, beta, tol, maxiter):
    X, p = gram.X, gram.p
    base = np.full(p, 1.0 / s0**2)
    base[k] = 0.0
    diag_idx = np.arange(p)
    f, eta = _shrink_objective(beta, y, X, offset, r, k, s0, s)
    active = np.arange(y.shape[1])
    done = np.zeros(y.shape[1], dtype=bool)
    for _ in range(maxiter):
        if active.size == 0:
            break
        ya, ra, ba, ea = y[:, active], r[active], beta[active], eta[:, active]
        prob = expit(ea - np.log(ra)[None, :])  # mu / (mu + r)
        grad = ba * base - (ya - (ya + ra[None, :]) * prob).T @ X
        grad[:, k] += 2.0 * ba[:, k] / (s**2 + ba[:, k] ** 2)
        hess = gram((ya + ra[None, :]) * prob * (1.0 - prob))
        diag = np.broadcast_to(base, ba.shape).copy()
        diag[:, k] = 2.0 / (s**2 + ba[:, k] ** 2)  # curvature of the Cauchy minoriser
        hess[:, diag_idx, diag_idx] += diag
        step = -_solve(hess, grad)
        t = np.ones(active.size)
        new = ba + step
        f_new, e_new = _shrink_objective(new, ya, X, offset, ra, k, s0, s)
        for _ in range(40):
            bad = ~(f_new <= f[active] + 1e-4 * t * (grad * step).sum(axis=1))
            if not bad.any():
                break
            t[bad] *= 0.5
            new[bad] = ba[bad] + t[bad, None] * step[bad]
            f_new[bad], e_new[:, bad] = _shrink_objective(
                new[bad], ya[:, bad], X, offset, ra[bad], k, s0, s
            )
        beta[active], f[active], eta[:, active] = new, f_new, e_new
        small = np.abs(t[:, None] * step).max(axis=1) < tol
        done[active[small]] = True
        active = active[~small]
    # posterior SE from the true Hessian (the Cauchy term's exact curvature)
    prob = expit(eta - np.log(r)[None, :])
    hess = gram((y + r[None, :]) * prob * (1.0 - prob))
    bk = beta[:, k]
    diag = np.broadcast_to(base, beta.shape).copy()
    diag[:, k] = 2.0 * (s**2 - bk**2) / (s**2 + bk**2) ** 2
    hess[:, diag_idx, diag_idx] += diag
    unit = np.zeros(beta.shape)
    unit[:, k] = 1.0
    inv_k = _solve(hess, unit)[:, k]
    return bk, np.sqrt(np.abs(inv_k)), done


def shrink_coefficient(
    y,
    size_factors,
    X,
    disp,
    k,
    prior_scale,
    prior_no_shrink_scale=15.0,
    init=None,
    tol=1e-7,
    maxiter=200,
    n_cpus=1,
):
    """apeGLM MAP of coefficient ``k`` for every gene: (coefficient, posterior SE, converged).

    The posterior is the NB likelihood with known dispersion, a Cauchy(0, ``prior_scale``)
    prior on coefficient k and N(0, ``prior_no_shrink_scale``^2) priors on the others, as in
    ``pydeseq2.utils.nbinomGLM``. Each step solves the Newton system of the likelihood plus
    the quadratic minoriser of the Cauchy log-density at the current value (always positive
    definite) and is accepted by a backtracking line search on the true posterior. ``init``
    (genes x p, e.g. the MLEs) replaces the least-squares start. The SE is the square root
    of the inverse Hessian's k-th diagonal element, as pydeseq2 reports it.
    """
    y = np.asarray(y, dtype=float)
    sf = np.asarray(size_factors, dtype=float)
    r_all = 1.0 / np.asarray(disp, dtype=float)
    gram = Gram(X)
    offset = np.log(sf)

    def run(blk):
        yb = y[:, blk]
        start = _start(yb, sf, gram.X) if init is None else np.array(init[blk], dtype=float)
        start = np.clip(np.nan_to_num(start), -30, 30)
        return _shrink_block(
            yb,
            offset,
            gram,
            r_all[blk],
            k,
            prior_no_shrink_scale,
            prior_scale,
            start,
            tol,
            maxiter,
        )

    parts = blockwise(run, y.shape[1], y.shape[0], gram.p, n_cpus)
    lfc, se, conv = zip(*parts, strict=True)
    return np.concatenate(lfc), np.concatenate(se), np.concatenate(conv)


class VectorInference(DefaultInference):
    """pydeseq2 inference whose per-gene solvers run vectorised over blocks of genes."""

    def lin_reg_mu(self, counts, size_factors, design_matrix, min_mu):  # noqa: D102
        coef = np.linalg.lstsq(design_matrix, counts / size_factors[:, None], rcond=None)[0]
        return np.maximum(size_factors[:, None] * (design_matrix @ coef), min_mu)

    def irls(  # noqa: D102
        self,
        counts,
        size_factors,
        design_matrix,
        disp,
        min_mu,
        beta_tol,
        min_beta=-30,
        max_beta=30,
        optimizer="L-BFGS-B",
        maxiter=250,
    ):
        from pydeseq2.utils import irls_solver

        counts = np.asarray(counts, dtype=float)
        beta, mu, hat, conv, fallback = fit_glm(
            counts,
            size_factors,
            design_matrix,
            disp,
            min_mu,
            beta_tol,
            n_cpus=self.n_cpus,
            max_beta=max_beta,
            maxiter=maxiter,
        )
        for j in np.flatnonzero(fallback):
            # pydeseq2's own solver (L-BFGS-B within bounds) for the rare diverging gene
            beta[j], mu[:, j], hat[:, j], conv[j] = irls_solver(
                counts[:, j],
                size_factors,
                design_matrix,
                disp[j],
                min_mu,
                beta_tol,
                min_beta,
                max_beta,
                optimizer,
                maxiter,
            )
        return beta, mu, hat, conv

    def alpha_mle(  # noqa: D102
        self,
        counts,
        design_matrix,
        mu,
        alpha_hat,
        min_disp,
        max_disp,
        prior_disp_var=None,
        cr_reg=True,
        prior_reg=False,
        optimizer="L-BFGS-B",
    ):
        from pydeseq2.utils import fit_alpha_mle

        counts = np.asarray(counts, dtype=float)
        disp, conv = fit_dispersions(
            counts,
            design_matrix,
            mu,
            alpha_hat,
            min_disp,
            max_disp,
            n_cpus=self.n_cpus,
            prior_disp_var=prior_disp_var,
            cr_reg=cr_reg,
            prior_reg=prior_reg,
        )
        for j in np.flatnonzero(~conv):
            # pydeseq2's own optimiser, then its grid search, for the rare hard gene
            disp[j], conv[j] = fit_alpha_mle(
                counts[:, j],
                design_matrix,
                mu[:, j],
                alpha_hat[j],
                min_disp,
                max_disp,
                prior_disp_var,
                cr_reg,
                prior_reg,
                optimizer,
            )
        return disp, conv

    def wald_test(  # noqa: D102
        self,
        design_matrix,
        disp,
        lfc,
        mu,
        ridge_factor,
        contrast,
        lfc_null,
        alt_hypothesis=None,
    ):
        if alt_hypothesis is not None:
            return super().wald_test(
                design_matrix, disp, lfc, mu, ridge_factor, contrast, lfc_null, alt_hypothesis
            )
        return wald(design_matrix, disp, lfc, mu, ridge_factor, contrast, lfc_null, self.n_cpus)
