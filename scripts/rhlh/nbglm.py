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
- ``VectorInference(deseq2=True)``: DESeq2 1.38's floor of the means in the Wald weights and
  the dispersion fits, and its gene-wise dispersion estimator (``deseq2_genewise_dispersions``:
  its first-order line search, which stops short of the maximum where the likelihood is
  flat, its rule keeping a start without a real gain, its grid search), which reproduces
  R's gene-wise estimates to 1e-6 for 98-99.9% of genes on real data.

``parametric_dispersion_fit`` is DESeq2's parametric dispersion trend (pydeseq2's own fit
lands 19-30% away from R's on real data given the same gene-wise estimates);
``nb_glm_optim`` is DESeq2's bounded-optimiser fallback for a GLM fit that diverges.

``shrink_coefficient`` gives apeGLM-shrunken coefficients (Cauchy prior on one coefficient,
normal prior of sd 15 on the others, as ``pydeseq2.utils.nbinomGLM``) by a Newton /
minorise-maximise iteration that is monotone on the true posterior.

Genes are processed in blocks whose arrays fit in ``CHUNK_BYTES`` so that memory does not grow
with the number of genes beyond the outputs.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from pydeseq2.default_inference import DefaultInference
from scipy.optimize import root_scalar
from scipy.special import digamma, expit, gammaln
from scipy.stats import norm

from rhlh.logs import Progress

CHUNK_BYTES = 128 * 2**20
LN2 = np.log(2.0)


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


def gene_blocks(n_genes: int, bytes_per_gene: int, max_genes: int = 1024):
    """Slices of at most ``max_genes`` genes whose arrays take at most about ``CHUNK_BYTES``.

    The blocks do not depend on the number of threads, so that results do not either.
    """
    size = max(32, min(CHUNK_BYTES // max(int(bytes_per_gene), 1), max_genes))
    return [slice(a, min(a + size, n_genes)) for a in range(0, n_genes, size)]


def blockwise(fn, n_genes: int, bytes_per_gene: int, n_cpus: int = 1, step: str = "") -> list:
    """``fn(block)`` for every block of genes, ``n_cpus`` blocks at a time; results in order.

    Blocks run in threads (numpy and scipy release the GIL) with BLAS held to one thread, so
    that the declared cores are used once, not n_cpus x BLAS threads, and each block's
    arithmetic is the same whatever n_cpus is: results are identical for any thread count.
    With ``step``, a throttled progress line (``rhlh.logs.Progress``: genes done, elapsed,
    time left) is logged as blocks finish; it does not touch the results.
    """
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    blocks = gene_blocks(n_genes, bytes_per_gene)
    run = fn
    if step:
        progress = Progress(step, n_genes, "genes")

        def run(blk):
            out = fn(blk)
            progress.update(blk.stop - blk.start)
            return out

    with threadpool_limits(1):
        if n_cpus <= 1 or len(blocks) == 1:
            return [run(b) for b in blocks]
        with ThreadPoolExecutor(n_cpus) as pool:
            return list(pool.map(run, blocks))


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
        tri = np.zeros((self.p, self.p), dtype=int)
        tri[self.iu] = np.arange(self.iu[0].size)
        tri[self.iu[1], self.iu[0]] = np.arange(self.iu[0].size)
        self.tri = tri.ravel()  # position of each (i, j) in the upper-triangle products

    def __call__(self, w, ridge=None):
        """Stack of ``X^T diag(w[:, g]) X`` (+ ridge), shape genes x p x p."""
        a = (w.T @ self.xx)[:, self.tri].reshape(w.shape[1], self.p, self.p)
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


def _diag_add(a, diag):
    """a (genes x m x m) + diag on the diagonal; diag is (m,) or (genes, m)."""
    idx = np.arange(a.shape[1])
    a[:, idx, idx] += diag
    return a


class DenseOps:
    """Weighted normal equations ``X^T W X (+ diag)`` of a design, as dense p x p matrices."""

    def __init__(self, X):
        self.gram = Gram(X)
        self.X = self.gram.X
        self.p = self.gram.p

    def bytes_per_gene(self) -> int:
        return 8 * (12 * self.X.shape[0] + 6 * self.p * self.p)

    def factor(self, w, diag=None):
        return _DenseFactor(self, w, diag)


class _DenseFactor:
    def __init__(self, ops, w, diag):
        self.ops = ops
        self.a = ops.gram(w)
        if diag is not None:
            _diag_add(self.a, diag)

    @cached_property
    def inv(self):
        return _inv(self.a)

    def solve(self, rhs):
        return _solve(self.a, rhs)

    def lev(self):
        """x_i^T A^-1 x_i, samples x genes."""
        return self.ops.gram.quad(self.inv)

    def logdet(self):
        return np.linalg.slogdet(self.a)[1]

    def trace_sq(self, w1):
        """tr((A^-1 B)^2) with B = X^T diag(w1) X."""
        m = self.inv @ self.ops.gram(w1)
        return (m * m.transpose(0, 2, 1)).sum(axis=(1, 2))

    def inv_diag(self, j):
        return self.inv[:, j, j]


def indicator_columns(X, min_columns=6):
    """Columns of X that are 0/1 indicators with disjoint supports (a factor's dummies).

    Chosen greedily from the smallest support up (a patient factor's dummies before visit
    dummies); returns [] when fewer than ``min_columns`` are found.
    """
    X = np.asarray(X, dtype=float)
    binary = [
        j for j in range(X.shape[1]) if np.isin(X[:, j], (0.0, 1.0)).all() and 0 < X[:, j].sum()
    ]
    used = np.zeros(X.shape[0], dtype=bool)
    chosen = []
    for j in sorted(binary, key=lambda j: (X[:, j].sum(), j)):
        col = X[:, j] == 1.0
        if not (col & used).any():
            chosen.append(j)
            used |= col
    return sorted(chosen) if len(chosen) >= min_columns else []


class BlockOps:
    """``X^T W X`` of a design with many disjoint indicator columns (patient dummies).

    With X = [Z, V], Z the indicators (each sample in at most one), the normal matrix is
    [[D, C], [C^T, E]] with D diagonal. Everything is done through the Schur complement
    S = E - C^T D^-1 C (k x k, k = columns of V), so the cost per gene grows with
    n k^2 instead of n p^2: a design with one coefficient per patient stays linear in the
    number of patients. Same results as ``DenseOps`` to rounding.
    """

    def __init__(self, X, z_cols):
        self.X = np.asarray(X, dtype=float)
        n, self.p = self.X.shape
        self.z = np.asarray(z_cols, dtype=int)
        self.v = np.setdiff1d(np.arange(self.p), self.z)
        self.V = self.X[:, self.v]
        self.vgram = Gram(self.V)
        group = np.full(n, -1)
        for a, j in enumerate(self.z):
            group[self.X[:, j] == 1.0] = a
        self.group = group
        self.in_group = np.flatnonzero(group >= 0)
        # samples of the indicators, ordered by indicator, and where each one starts
        self.order = self.in_group[np.argsort(group[self.in_group], kind="stable")]
        self.starts = np.searchsorted(group[self.order], np.arange(self.z.size))
        self.V1 = np.column_stack([np.ones(n), self.V])

    def bytes_per_gene(self) -> int:
        n, k, m = self.X.shape[0], self.v.size, self.z.size
        return 8 * (12 * n + 4 * n * k + 4 * m * k + 6 * k * k)

    def factor(self, w, diag=None):
        return _BlockFactor(self, w, diag)

    def group_sums_v(self, w):
        """Sums over each indicator's samples of w and of w v_i.

        Returns (genes x indicators, genes x indicators x k).
        """
        wo = w[self.order].T  # genes x ordered samples
        v = self.V1[self.order]
        s = np.stack(
            [np.add.reduceat(wo * v[:, j], self.starts, axis=1) for j in range(v.shape[1])], axis=2
        )
        return s[:, :, 0], s[:, :, 1:]


class _BlockFactor:
    def __init__(self, ops, w, diag):
        self.ops = ops
        d, c = ops.group_sums_v(w)
        e = ops.vgram(w)
        if diag is not None:
            dg = np.broadcast_to(np.asarray(diag, dtype=float), (w.shape[1], ops.p))
            d = d + dg[:, ops.z]
            _diag_add(e, dg[:, ops.v])
        self.d, self.c = d, c
        self.dinv = 1.0 / d
        self.cd = c * self.dinv[:, :, None]  # C_j / D_j
        self.s = e - self.cd.transpose(0, 2, 1) @ c

    @cached_property
    def sinv(self):
        return _inv(self.s)

    def solve(self, rhs):
        o = self.ops
        b1, b2 = rhs[:, o.z], rhs[:, o.v]
        y2 = _solve(self.s, b2 - (self.cd.transpose(0, 2, 1) @ b1[:, :, None])[:, :, 0])
        y1 = (b1 - (self.c @ y2[:, :, None])[:, :, 0]) * self.dinv
        out = np.empty_like(rhs, dtype=float)
        out[:, o.z], out[:, o.v] = y1, y2
        return out

    def _t(self):
        """t_i = v_i - C_g(i) / D_g(i) per gene (genes x n x k)."""
        o = self.ops
        t = np.broadcast_to(o.V, (self.d.shape[0], *o.V.shape)).copy()
        t[:, o.in_group, :] -= self.cd[:, o.group[o.in_group], :]
        return t

    def lev(self):
        o = self.ops
        t = self._t()
        q = ((t @ self.sinv) * t).sum(axis=2)
        q[:, o.in_group] += self.dinv[:, o.group[o.in_group]]
        return q.T

    def logdet(self):
        return np.log(self.d).sum(axis=1) + np.linalg.slogdet(self.s)[1]

    def trace_sq(self, w1):
        """tr((A^-1 B)^2) with B = X^T diag(w1) X, from x_i^T A^-1 x_l = [same group]/D +
        t_i^T S^-1 t_l."""
        o = self.ops
        t = self._t()
        wt = w1.T[:, :, None] * t
        # group sums of w1 and of w1 t_i (t_i = v_i - C_g / D_g)
        s0, s1 = o.group_sums_v(w1)
        term1 = (s0**2 * self.dinv**2).sum(axis=1)
        sj = s1 - s0[:, :, None] * self.cd
        term2 = 2.0 * (self.dinv * ((sj @ self.sinv) * sj).sum(axis=2)).sum(axis=1)
        m = self.sinv @ (wt.transpose(0, 2, 1) @ t)
        return term1 + term2 + (m * m.transpose(0, 2, 1)).sum(axis=(1, 2))

    def inv_diag(self, j):
        o = self.ops
        pos = np.flatnonzero(o.v == j)
        if pos.size:
            return self.sinv[:, pos[0], pos[0]]
        a = int(np.flatnonzero(o.z == j)[0])
        u = self.cd[:, a, :]
        return self.dinv[:, a] + ((u[:, None, :] @ self.sinv)[:, 0, :] * u).sum(axis=1)


def design_ops(X):
    """``BlockOps`` when X has >= 6 disjoint indicator columns, else ``DenseOps``."""
    z = indicator_columns(X)
    return BlockOps(X, z) if z else DenseOps(X)


def _start(y, size_factors, X):
    """Least-squares start on log(y / s + 0.1), as pydeseq2's and DESeq2's IRLS."""
    logy = np.log(y / size_factors[:, None] + 0.1)
    if np.linalg.matrix_rank(X) == X.shape[1]:
        return (np.linalg.pinv(X) @ logy).T  # one pseudo-inverse for all genes
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
    ops=None,
    beta_init=None,
    with_hat=True,
):
    """IRLS fits of one NB GLM per gene (columns of y) with known dispersions (one block).

    Returns (beta genes x p, unthresholded mu n x genes, hat diagonals n x genes, converged,
    needs_fallback): genes whose iteration diverged or hit ``maxiter`` are flagged in
    ``needs_fallback`` with their last iterate. ``beta_init`` (genes x p) replaces the
    least-squares start (a warm start from a related fit). ``with_hat=False`` skips the
    hat diagonals (None), one more factorisation that only Cook's distances need.
    """
    y = np.asarray(y, dtype=float)
    sf = np.asarray(size_factors, dtype=float)
    disp = np.asarray(disp, dtype=float)
    ops = ops or design_ops(X)
    X = ops.X
    n_genes, p = y.shape[1], X.shape[1]
    ridge_d = np.full(p, ridge)
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
        new = ops.factor(w, ridge_d).solve((w * z).T @ X)
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
    hat = hat_diagonals(beta, sf, X, disp, min_mu, ridge, ops) if with_hat else None
    return beta, sf[:, None] * np.exp(X @ beta.T), hat, ~fallback, fallback


def fit_glm(
    y,
    size_factors,
    X,
    disp,
    min_mu=0.5,
    beta_tol=1e-8,
    n_cpus=1,
    beta_init=None,
    step="GLM fit (IRLS)",
    **kw,
):
    """``irls`` over all genes in blocks, ``n_cpus`` blocks at a time (same outputs); ``step``
    names the progress lines ("" for none)."""
    y = np.asarray(y, dtype=float)
    disp = np.asarray(disp, dtype=float)
    ops = design_ops(X)

    def run(blk):
        init = None if beta_init is None else beta_init[blk]
        return irls(
            y[:, blk], size_factors, X, disp[blk], min_mu, beta_tol, ops=ops, beta_init=init, **kw
        )

    parts = blockwise(run, y.shape[1], ops.bytes_per_gene(), n_cpus, step=step)
    beta, mu, hat, conv, fallback = zip(*parts, strict=True)
    return (
        np.concatenate(beta),
        np.concatenate(mu, axis=1),
        np.concatenate(hat, axis=1) if hat[0] is not None else None,
        np.concatenate(conv),
        np.concatenate(fallback),
    )


def hat_diagonals(beta, size_factors, X, disp, min_mu=0.5, ridge=1e-6, ops=None):
    """Diagonal of ``W^1/2 X (X^T W X + ridge)^-1 X^T W^1/2`` per gene (n x genes)."""
    ops = ops or design_ops(X)
    mu = np.maximum(size_factors[:, None] * np.exp(ops.X @ beta.T), min_mu)
    w = mu / (1.0 + mu * disp[None, :])
    return w * ops.factor(w, np.full(ops.p, ridge)).lev()


def _dispersion_objective(y, lgy1, mu, ops, theta, target, prior_var, cr_reg, derivs, weights=None):
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
        fac = ops.factor(w)
        f = f + 0.5 * fac.logdet()
        if derivs:
            lev = fac.lev()  # x_i^T A^-1 x_i
            w1 = -a * w * w  # dW / dtheta
            w2 = w1 + 2.0 * a * a * w**3  # d2W / dtheta2
            g = g + 0.5 * (w1 * lev).sum(axis=0)
            h = h + 0.5 * ((w2 * lev).sum(axis=0) - fac.trace_sq(w1))
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
    ops=None,
    weights=None,
):
    """Dispersion per gene maximising the (CR-adjusted, optionally MAP) NB likelihood.

    Newton's method in log dispersion from ``alpha_hat`` (the prior's centre when
    ``prior_reg``), with a backtracking line search (one block), until the step is below
    ``tol`` or the gradient below ``gtol``; returns (dispersions, converged). ``weights``
    (n x genes) weight the counts' log-likelihoods (not the Cox-Reid term).
    """
    y = np.asarray(y, dtype=float)
    mu = np.asarray(mu, dtype=float)
    lgy1 = gammaln(y + 1.0)
    ops = ops or design_ops(X)
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
            ops,
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


def fit_dispersions(
    y, X, mu, alpha_hat, min_disp, max_disp, n_cpus=1, weights=None, step="dispersions", **kw
):
    """``alpha_mle`` over all genes in blocks, ``n_cpus`` blocks at a time; ``step`` names the
    progress lines ("" for none)."""
    y = np.asarray(y, dtype=float)
    alpha_hat = np.asarray(alpha_hat, dtype=float)
    ops = design_ops(X)

    def run(blk):
        wt = None if weights is None else weights[:, blk]
        return alpha_mle(
            y[:, blk],
            X,
            mu[:, blk],
            alpha_hat[blk],
            min_disp,
            max_disp,
            ops=ops,
            weights=wt,
            **kw,
        )

    parts = blockwise(run, y.shape[1], ops.bytes_per_gene(), n_cpus, step=step)
    disp, conv = zip(*parts, strict=True)
    return np.concatenate(disp), np.concatenate(conv)


def wald(X, disp, lfc, mu, ridge, contrast, lfc_null=0.0, n_cpus=1):
    """Wald p-values, statistics and standard errors of ``contrast`` for every gene.

    ``ridge`` is the diagonal added to ``X^T W X`` (DESeq2's 1e-6, or 1 / prior variances);
    the SE is sqrt(c^T H M H c) with M = X^T W X and H = (M + ridge)^-1, as DESeq2's.
    """
    ops = design_ops(X)
    X = ops.X
    stats = np.full(lfc.shape[0], np.nan)
    se = np.full(lfc.shape[0], np.nan)
    ok = np.flatnonzero(np.isfinite(mu).all(axis=0) & np.isfinite(lfc).all(axis=1))

    def run(blk):
        idx = ok[blk]
        m = mu[:, idx]
        w = m / (1.0 + m * disp[idx][None, :])
        hc = ops.factor(w, ridge).solve(np.tile(contrast, (idx.size, 1)))
        se[idx] = np.sqrt(((X @ hc.T) ** 2 * w).sum(axis=0))
        stats[idx] = (lfc[idx] - lfc_null) @ contrast / se[idx]

    blockwise(run, len(ok), ops.bytes_per_gene(), n_cpus, step="Wald tests")
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


def _shrink_block(y, offset, ops, r, k, s0, s, beta, tol, maxiter):
    X, p = ops.X, ops.p
    base = np.full(p, 1.0 / s0**2)
    base[k] = 0.0
    f, eta = _shrink_objective(beta, y, X, offset, r, k, s0, s)
    active = np.arange(y.shape[1])
    done = np.zeros(y.shape[1], dtype=bool)
    for _ in range(maxiter):
        if active.size == 0:
            break
        ya, ra, ba, ea = y[:, active], r[active], beta[active], eta[:, active]
        prob = expit(ea - np.log(ra)[None, :])  # mu / (mu + r)
        grad = ba * base - (ya - (ya + ra[None, :]) * prob).T @ X
        bk = ba[:, k]
        grad[:, k] += 2.0 * bk / (s**2 + bk**2)
        diag = np.broadcast_to(base, ba.shape).copy()
        # the Cauchy log-density's exact curvature where it is positive (|b| <= s: Newton,
        # quadratic convergence), else the curvature of its quadratic minoriser (MM)
        diag[:, k] = np.where(
            np.abs(bk) <= s, 2.0 * (s**2 - bk**2) / (s**2 + bk**2) ** 2, 2.0 / (s**2 + bk**2)
        )
        step = -ops.factor((ya + ra[None, :]) * prob * (1.0 - prob), diag).solve(grad)
        decrement = -(grad * step).sum(axis=1)  # ~ 2 x (f - min f) near the optimum
        t = np.ones(active.size)
        new = ba + step
        f_new, e_new = _shrink_objective(new, ya, X, offset, ra, k, s0, s)
        # near the optimum the full step is taken: the decrease is below rounding there,
        # and a line search would stop at a rounding-dependent point
        near = decrement < 1e-10
        for _ in range(30):
            bad = ~near & ~(f_new <= f[active] - 1e-4 * t * decrement)
            if not bad.any():
                break
            t[bad] *= 0.5
            new[bad] = ba[bad] + t[bad, None] * step[bad]
            f_new[bad], e_new[:, bad] = _shrink_objective(
                new[bad], ya[:, bad], X, offset, ra[bad], k, s0, s
            )
        else:
            # no decrease found: the current point is kept (and is as good as it gets)
            new[bad], f_new[bad], e_new[:, bad] = ba[bad], f[active][bad], ea[:, bad]
            t[bad] = 0.0
        beta[active], f[active], eta[:, active] = new, f_new, e_new
        small = np.abs(t[:, None] * step).max(axis=1) < tol
        done[active[small]] = True
        active = active[~small]
    # posterior SE from the true Hessian (the Cauchy term's exact curvature)
    prob = expit(eta - np.log(r)[None, :])
    bk = beta[:, k]
    diag = np.broadcast_to(base, beta.shape).copy()
    diag[:, k] = 2.0 * (s**2 - bk**2) / (s**2 + bk**2) ** 2
    inv_k = ops.factor((y + r[None, :]) * prob * (1.0 - prob), diag).inv_diag(k)
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
    tol=1e-9,
    maxiter=200,
    n_cpus=1,
    step="apeGLM shrinkage",
):
    """apeGLM MAP of coefficient ``k`` for every gene: (coefficient, posterior SE, converged).

    The posterior is the NB likelihood with known dispersion, a Cauchy(0, ``prior_scale``)
    prior on coefficient k and N(0, ``prior_no_shrink_scale``^2) priors on the others, as in
    ``pydeseq2.utils.nbinomGLM``. Each step solves the Newton system of the likelihood plus
    the quadratic minoriser of the Cauchy log-density at the current value (always positive
    definite) and is accepted by a backtracking line search on the true posterior. ``init``
    (genes x p, e.g. the MLEs) replaces the least-squares start. The SE is the square root
    of the inverse Hessian's k-th diagonal element (the Hessian with the priors on its
    diagonal; pydeseq2 0.5.4's ``nbinomGLM`` adds them to every row, so its SEs differ).
    """
    y = np.asarray(y, dtype=float)
    sf = np.asarray(size_factors, dtype=float)
    r_all = 1.0 / np.asarray(disp, dtype=float)
    ops = design_ops(X)
    offset = np.log(sf)

    def run(blk):
        yb = y[:, blk]
        start = _start(yb, sf, ops.X) if init is None else np.array(init[blk], dtype=float)
        start = np.clip(np.nan_to_num(start), -30, 30)
        return _shrink_block(
            yb,
            offset,
            ops,
            r_all[blk],
            k,
            prior_no_shrink_scale,
            prior_scale,
            start,
            tol,
            maxiter,
        )

    parts = blockwise(run, y.shape[1], ops.bytes_per_gene(), n_cpus, step=step)
    lfc, se, conv = zip(*parts, strict=True)
    return np.concatenate(lfc), np.concatenate(se), np.concatenate(conv)


def rough_dispersions(normed_counts, design_matrix):
    """pydeseq2's ``fit_rough_dispersions`` with one pseudo-inverse instead of sklearn."""
    x = np.asarray(design_matrix, dtype=float)
    n, p = x.shape
    if n == p:
        raise ValueError("as many samples as design columns: no replicates for the dispersion")
    y_hat = np.maximum(x @ (np.linalg.pinv(x) @ normed_counts), 1.0)
    alpha = (((normed_counts - y_hat) ** 2 - y_hat) / ((n - p) * y_hat**2)).sum(axis=0)
    return np.maximum(alpha, 0.0)


def nb_glm_optim(y, size_factors, X, disp, start, ridge=1e-6 / LN2**2, max_beta=30.0 * LN2):
    """One gene's NB GLM by L-BFGS-B within bounds, for the genes IRLS cannot fit.

    DESeq2's fallback (``fitNbinomGLMsOptim``) for a fit that diverges, e.g. a group whose
    counts are all zero, where the maximum is at an infinite coefficient: the log-likelihood
    of the unthresholded means plus a normal log-prior of precision ``ridge`` (DESeq2's 1e-6 on
    the log2 scale), maximised with every coefficient within +-30 on the log2 scale.
    Returns (beta, unthresholded mu, converged).
    """
    from scipy.optimize import minimize

    y = np.asarray(y, dtype=float)
    offset = np.log(np.asarray(size_factors, dtype=float))
    r = 1.0 / float(disp)
    lgy = gammaln(y + r) - gammaln(r) - gammaln(y + 1.0)

    def objective(b):
        eta = X @ b + offset
        # log(mu / (r + mu)) and log(r / (r + mu)) without overflow
        log_rm = np.logaddexp(eta, np.log(r))
        ll = lgy + r * (np.log(r) - log_rm) + y * (eta - log_rm)
        mu = np.exp(eta)
        grad = -X.T @ ((y - mu) * r / (r + mu)) + ridge * b
        return -ll.sum() + 0.5 * ridge * (b @ b), grad

    b0 = np.clip(np.nan_to_num(np.asarray(start, dtype=float)), -max_beta, max_beta)
    res = minimize(
        objective, b0, jac=True, method="L-BFGS-B", bounds=[(-max_beta, max_beta)] * X.shape[1]
    )
    return res.x, np.exp(X @ res.x + offset), bool(res.success)


class TrendFitError(RuntimeError):
    """The parametric dispersion trend a0 + a1 / mean does not fit the gene-wise estimates."""


def _gamma_deviance(y, mu):
    with np.errstate(invalid="ignore", divide="ignore"):
        return -2.0 * np.sum(np.log(y / mu) - (y - mu) / mu)


def gamma_identity_glm(x, y, start, epsilon=1e-8, maxit=25):
    """Fit y ~ a + b x in the Gamma family with identity link by IRLS (Fisher scoring).

    The iteration R's ``glm.fit`` runs for this family: weights 1 / mu^2 (the working
    response is y itself), from ``start``, until the deviance changes by less than
    ``epsilon`` relative to (deviance + 0.1); a step that leaves a fitted mean not positive or
    the deviance not finite is halved back towards the previous iterate.
    Returns ((a, b), converged).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    X = np.column_stack([np.ones_like(x), x])
    coef_old = np.asarray(start, dtype=float)
    mu = X @ coef_old
    if not (np.isfinite(mu).all() and (mu > 0).all()):
        raise TrendFitError("the start of the dispersion trend fit gives a mean <= 0")
    dev_old = _gamma_deviance(y, mu)
    coef = coef_old
    for _ in range(maxit):
        w = 1.0 / mu
        coef = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)[0]
        mu = X @ coef
        dev = _gamma_deviance(y, mu)
        for _ in range(maxit):
            if np.isfinite(dev) and np.isfinite(mu).all() and (mu > 0).all():
                break
            coef = 0.5 * (coef + coef_old)
            mu = X @ coef
            dev = _gamma_deviance(y, mu)
        else:
            raise TrendFitError("the dispersion trend fit cannot correct its step size")
        if abs(dev - dev_old) / (abs(dev) + 0.1) < epsilon:
            return coef, True
        coef_old, dev_old = coef, dev
    return coef, False


def parametric_dispersion_fit(means, disps, max_iter=10):
    """DESeq2's parametric dispersion trend a0 + a1 / mean, fitted to gene-wise estimates.

    As ``DESeq2::parametricDispersionFit``: from (a0, a1) = (0.1, 1), the genes whose
    estimate is within (1e-4, 15) times the current curve are refitted by a Gamma GLM with
    identity link on 1 / mean, started at the current coefficients; this repeats until the
    coefficients move by less than 1e-6 in summed squared log ratio and the GLM converged.
    ``means`` and ``disps`` are the genes DESeq2 uses (not all zero, gene-wise estimate above
    100 x the minimum dispersion). Raises ``TrendFitError`` where DESeq2 gives up on the
    parametric form (a coefficient <= 0, or no convergence within ``max_iter`` refits).
    """
    means = np.asarray(means, dtype=float)
    disps = np.asarray(disps, dtype=float)
    coefs = np.array([0.1, 1.0])
    for _ in range(max_iter + 1):
        resid = disps / (coefs[0] + coefs[1] / means)
        good = (resid > 1e-4) & (resid < 15)
        if good.sum() < 2:
            raise TrendFitError("fewer than two genes near the dispersion trend")
        old = coefs
        coefs, converged = gamma_identity_glm(1.0 / means[good], disps[good], old)
        if not (coefs > 0).all():
            raise TrendFitError("parametric dispersion fit failed (a coefficient <= 0)")
        if np.sum(np.log(coefs / old) ** 2) < 1e-6 and converged:
            return coefs
    raise TrendFitError("parametric dispersion fit did not converge")


def deseq2_log_posterior(y, mu, X, disp, n_cpus=1):
    """DESeq2's gene-wise dispersion objective at ``disp`` (one value per gene).

    The form DESeq2's line search evaluates (its C++ ``log_posterior`` without prior): the
    NB log-likelihood without the terms in y alone (log y! and y log mu are left out, which
    moves its size, not its maximum) minus half the log-determinant of X^T W X (Cox-Reid).
    """
    y = np.asarray(y, dtype=float)
    mu = np.asarray(mu, dtype=float)
    disp = np.asarray(disp, dtype=float)
    ops = design_ops(X)
    out = np.empty(y.shape[1])

    def run(blk):
        a = disp[blk][None, :]
        r = 1.0 / a
        yb, mb = y[:, blk], mu[:, blk]
        ll = gammaln(yb + r) - gammaln(r) - yb * np.log(mb + r) - r * np.log1p(mb * a)
        out[blk] = ll.sum(axis=0) - 0.5 * ops.factor(mb / (1.0 + mb * a)).logdet()

    blockwise(run, y.shape[1], ops.bytes_per_gene(), n_cpus, step="dispersion log posterior")
    return out


def _deseq2_lp(y, mu, ops, log_alpha, prior_mean=None, prior_var=None, deriv=False):
    """DESeq2's dispersion log posterior in log alpha (and its derivative), per gene."""
    a = np.exp(log_alpha)[None, :]
    r = 1.0 / a
    ma = mu * a
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ll = (gammaln(y + r) - gammaln(r) - y * np.log(mu + r) - r * np.log1p(ma)).sum(axis=0)
        w = mu / (1.0 + ma)
        fac = ops.factor(w)
        lp = ll - 0.5 * fac.logdet()
        if prior_var is not None:
            lp = lp - 0.5 * (log_alpha - prior_mean) ** 2 / prior_var
        if not deriv:
            return lp
        dll = (digamma(r) + np.log1p(ma) - ma / (1.0 + ma) - digamma(y + r) + y / (mu + r)).sum(
            axis=0
        ) * r[0] ** 2
        dcr = 0.5 * (w * w * fac.lev()).sum(axis=0)
        dlp = (dll + dcr) * a[0]
        if prior_var is not None:
            dlp = dlp - (log_alpha - prior_mean) / prior_var
    return lp, dlp


def dispersion_line_search(
    y,
    mu,
    ops,
    log_alpha,
    min_log_alpha,
    prior_mean=None,
    prior_var=None,
    kappa_0=1.0,
    tol=1e-6,
    maxit=100,
):
    """DESeq2's dispersion search (its C++ ``fitDisp``), vectorised over the genes of a block.

    Steepest ascent of ``_deseq2_lp`` in log alpha from ``log_alpha``: a step kappa x slope
    (log alpha kept within [-30, 10]) is accepted by the Armijo rule (1e-4) or kappa halved;
    after an accepted step kappa grows by 1.1 (at most ``kappa_0``) and halves every fifth
    accepted step; the search stops when the log posterior rises by less than ``tol`` or log
    alpha falls below ``min_log_alpha``, or after ``maxit`` steps. It stops short of the
    maximum where the likelihood is flat; DESeq2's estimates are those points.
    Returns (log alpha, iterations, initial log posterior, last log posterior).
    """
    n_genes = y.shape[1]
    la = np.array(log_alpha, dtype=float)
    pm = None if prior_mean is None else np.asarray(prior_mean, dtype=float)

    def lp_of(idx, values, deriv=False):
        return _deseq2_lp(
            y[:, idx], mu[:, idx], ops, values, None if pm is None else pm[idx], prior_var, deriv
        )

    everyone = np.arange(n_genes)
    lp, dlp = lp_of(everyone, la, True)
    lp0 = lp.copy()
    kappa = np.full(n_genes, float(kappa_0))
    accepted = np.zeros(n_genes, dtype=int)
    iters = np.zeros(n_genes, dtype=int)
    active = everyone
    for _ in range(maxit):
        if active.size == 0:
            break
        iters[active] += 1
        a, d, k = la[active], dlp[active], kappa[active]
        with np.errstate(divide="ignore", invalid="ignore"):
            prop = a + k * d
            k = np.where(prop < -30.0, (-30.0 - a) / d, k)
            k = np.where(prop > 10.0, (10.0 - a) / d, k)
        # the log posterior and its slope at the proposal in one pass (DESeq2 evaluates the
        # log posterior there twice, the same value, and the slope once more if accepted)
        lp_prop, d_prop = lp_of(active, a + k * d, True)
        ok = -lp_prop <= -lp[active] - k * 1e-4 * d * d
        rejected = active[~ok]
        kappa[rejected] = k[~ok] / 2.0
        go_on = rejected
        acc = active[ok]
        if acc.size:
            kk = k[ok]
            accepted[acc] += 1
            la[acc] = a[ok] + kk * d[ok]
            lp_new = lp_prop[ok]
            small = lp_new - lp[acc] < tol
            low = ~small & (la[acc] < min_log_alpha)
            # DESeq2 keeps the previous log posterior when it stops for a too small alpha
            lp[acc] = np.where(low, lp[acc], lp_new)
            going = ~(small | low)
            cont = acc[going]
            if cont.size:
                dlp[cont] = d_prop[ok][going]
                kc = np.minimum(kk[going] * 1.1, kappa_0)
                kappa[cont] = np.where(accepted[cont] % 5 == 0, kc / 2.0, kc)
            go_on = np.sort(np.concatenate([rejected, cont]))
        active = go_on
    return la, iters, lp0, lp


def dispersion_grid(y, mu, ops, max_disp, prior_mean=None, prior_var=None, n_grid=20):
    """DESeq2's grid search for dispersions (``fitDispGrid``): 20 log alphas from log(1e-8)
    to log(max_disp), then 20 around the best; returns the best dispersion per gene."""
    n_genes = y.shape[1]
    grid = np.linspace(np.log(1e-8), np.log(max_disp), n_grid)
    delta = grid[1] - grid[0]
    every = np.arange(n_genes)
    pm = None if prior_mean is None else np.asarray(prior_mean, dtype=float)

    def best(points):  # points: n_grid x genes
        vals = np.stack(
            [_deseq2_lp(y, mu, ops, points[t], pm, prior_var) for t in range(points.shape[0])]
        )
        return points[np.nanargmax(np.where(np.isnan(vals), -np.inf, vals), axis=0), every]

    a_hat = best(np.broadcast_to(grid[:, None], (n_grid, n_genes)))
    fine = a_hat[None, :] + np.linspace(-delta, delta, n_grid)[:, None]
    return np.exp(best(fine))


def deseq2_genewise_dispersions(y, X, mu, alpha_init, min_disp, max_disp, maxit=100, n_cpus=1):
    """Gene-wise dispersions as ``DESeq2::estimateDispersionsGeneEst`` computes them.

    ``dispersion_line_search`` (Cox-Reid adjusted, no prior) from ``alpha_init`` (the
    moments start, within [min_disp, max_disp]); an estimate whose log posterior is not above
    the start's by 1e-6 of its size is replaced by the start; a gene whose search took one
    step or ``maxit`` steps, with an estimate above 10 x ``min_disp``, gets
    ``dispersion_grid``; all within [min_disp, max_disp]. Returns (dispersions, converged).
    """
    y = np.asarray(y, dtype=float)
    mu = np.asarray(mu, dtype=float)
    alpha_init = np.asarray(alpha_init, dtype=float)
    ops = design_ops(X)

    def run(blk):
        yb, mb, a0 = y[:, blk], mu[:, blk], alpha_init[blk]
        la, iters, lp0, lp1 = dispersion_line_search(
            yb, mb, ops, np.log(a0), np.log(min_disp / 10.0), maxit=maxit
        )
        est = np.minimum(np.exp(la), max_disp)
        est = np.where(lp1 < lp0 + np.abs(lp0) / 1e6, a0, est)
        conv = (iters < maxit) & (iters != 1)
        refit = ~conv & (est > 10.0 * min_disp)
        if refit.any():
            est[refit] = dispersion_grid(yb[:, refit], mb[:, refit], ops, max_disp)
        return np.clip(est, min_disp, max_disp), conv

    parts = blockwise(run, y.shape[1], ops.bytes_per_gene(), n_cpus, step="gene-wise dispersions")
    disp, conv = zip(*parts, strict=True)
    return np.concatenate(disp), np.concatenate(conv)


class VectorInference(DefaultInference):
    """pydeseq2 inference whose per-gene solvers run vectorised over blocks of genes.

    With ``deseq2=True`` three rules of DESeq2 1.38 that pydeseq2 0.5.4 does not follow are
    applied (``rhlh.de`` uses them; the default keeps pydeseq2's behaviour):

    - the Wald test's weights mu / (1 + alpha mu) use the fitted means floored at ``min_mu``
      (DESeq2's ``minmu`` 0.5, as in its IRLS); pydeseq2 passes unthresholded means, which
      gives low-count genes standard errors that are too small;
    - the dispersion fits use the means floored at ``min_mu``, as DESeq2 stores them
      (pydeseq2's GLM path passes unthresholded means);
    - gene-wise estimates (Cox-Reid, no prior) are DESeq2's (``deseq2_genewise_dispersions``)
      instead of the maximum found by Newton's method; the MAP fit keeps Newton's method.
    """

    fit_rough_dispersions = staticmethod(rough_dispersions)

    def __init__(self, *args, deseq2: bool = False, min_mu: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.deseq2 = deseq2
        self.min_mu = min_mu

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
        if self.deseq2:
            mu = np.maximum(np.asarray(mu, dtype=float), self.min_mu)
            if cr_reg and not prior_reg:
                return deseq2_genewise_dispersions(
                    counts,
                    design_matrix,
                    mu,
                    np.clip(np.asarray(alpha_hat, dtype=float), min_disp, max_disp),
                    min_disp,
                    max_disp,
                    n_cpus=self.n_cpus,
                )
        disp, conv = fit_dispersions(
            counts,
            design_matrix,
            mu,
            alpha_hat,
            min_disp,
            max_disp,
            n_cpus=self.n_cpus,
            step="MAP dispersions" if prior_reg else "dispersions",
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
        ridge = np.diag(ridge_factor)
        if self.deseq2:
            mu = np.maximum(mu, self.min_mu)
        if alt_hypothesis is not None or np.any(ridge_factor != np.diag(ridge)):
            return super().wald_test(
                design_matrix, disp, lfc, mu, ridge_factor, contrast, lfc_null, alt_hypothesis
            )
        return wald(design_matrix, disp, lfc, mu, ridge, contrast, lfc_null, self.n_cpus)
