"""Tests of rhlh.nbglm (vectorised NB GLM solvers) against pydeseq2 0.5.4 and simulated truth.

Data: negative-binomial counts with known means and dispersions (fixed numpy seeds) for
12 patients x 5 visits and 300 genes, designed with ``build_design(samples, "~ patient_id +
visit")`` (11 disjoint patient indicators), and a plain dense design (intercept, visit dummies,
one continuous covariate; 100 genes). Checked against:

- ``trigamma``: ``scipy.special.polygamma(1, x)``.
- ``VectorInference.irls`` and ``lin_reg_mu``: ``pydeseq2.utils.irls_solver`` and ``fit_lin_mu``
  per gene (coefficients, means, hat diagonals); the fallback genes get ``irls_solver``'s answer.
- ``_dispersion_objective``: pydeseq2's ``fit_alpha_mle`` loss (value), central differences of
  it (gradient) and of the checked gradient (second derivative).
- ``VectorInference.alpha_mle`` (genewise, MAP, no Cox-Reid): ``pydeseq2.utils.fit_alpha_mle``
  per gene: never a worse optimum of pydeseq2's own loss, same log-dispersion (not required
  without Cox-Reid, where pydeseq2 stops at worse points); the flat start at ``min_disp``; the
  median estimate of genes simulated at one known dispersion.
- ``wald`` / ``VectorInference.wald_test``: ``pydeseq2.utils.wald_test`` per gene.
- ``shrink_coefficient``: ``pydeseq2.utils.nbinomGLM`` per gene. pydeseq2's L-BFGS-B stops early
  on this 16-coefficient design (ftol 1e-8 on the objective divided by its value at 0: loose
  for high counts; up to 6e-3 off in coefficient k), so its answer is polished by Newton's
  method (scipy trust-exact) on its own objective ``nbinomFn`` with the exact Hessian; the
  vectorised coefficient must match that, and its posterior value (the minimum over the other
  coefficients with k held at the vectorised answer) never be above pydeseq2's. Its SE is
  compared with the exact inverse Hessian: pydeseq2's ``inv_hessian`` is not that (its ``ddf``
  adds the prior curvatures to every row of ``X^T W X`` via ``np.diag`` of a matrix, not to the
  diagonal). Known truth: null effects shrink towards 0, large effects keep their size.
- ``apeglm_prior_var``: pydeseq2's ``DeseqStats._fit_prior_var`` and simulated prior variances.
- DESeq2 rules (``deseq2=True``): Wald SEs are pydeseq2's formula on means floored at 0.5;
  the gene-wise estimator (DESeq2's line search, start kept without a gain of 1e-6 of the
  objective's size, grid for one-step or non-converged searches) against Newton's maximum
  and its own search; the objective and its slope against the NB log-likelihood.
  ``gamma_identity_glm``: statsmodels' Gamma GLM (identity link); ``parametric_dispersion_fit``:
  a known trend, and the failure of a trend with no positive fit; ``nb_glm_optim``: a group
  of zeros (the likelihood at its supremum).
- ``blockwise`` / ``gene_blocks``: blocks cover every gene once, in order; ``fit_glm``,
  ``fit_dispersions``, ``wald`` and ``shrink_coefficient`` give the same results (1e-12) with
  1 block on 1 thread and 2 blocks on 2 threads.
"""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pydeseq2 import utils as pu
from pydeseq2.ds import DeseqStats
from scipy.optimize import minimize
from scipy.special import expit, gammaln, polygamma
from threadpoolctl import threadpool_limits

from rhlh import nbglm
from rhlh.design import build_design

VISITS = ["V0", "V1", "V2", "V3", "V4"]
MIN_DISP = 1e-8
S0 = 15.0  # apeGLM prior scale of the unshrunk coefficients (pydeseq2's default)


def simulate(X, n_genes, seed, k):
    """NB counts for design X: coefficient k is +-log(3) for ~20% of genes ('de'), else 0."""
    rng = np.random.default_rng(seed)
    n, p = X.shape
    base = np.exp(rng.uniform(np.log(0.5), np.log(5000), n_genes))
    disp = (0.05 + 1.5 / base) * np.exp(rng.normal(0.0, 0.5, n_genes))
    beta = np.column_stack([np.log(base), rng.normal(0.0, 0.3, (n_genes, p - 1))])
    de = rng.random(n_genes) < 0.2
    beta[:, k] = np.where(de, rng.choice([-1.0, 1.0], n_genes) * np.log(3.0), 0.0)
    sf = np.exp(rng.normal(0.0, 0.2, n))
    mu = sf[:, None] * np.exp(X @ beta.T)
    y = rng.negative_binomial(1.0 / disp, 1.0 / (1.0 + mu * disp)).astype(float)
    y[0, y.sum(axis=0) == 0] = 1.0  # pydeseq2 drops all-zero genes before fitting
    return SimpleNamespace(X=X, y=y, sf=sf, disp=disp, beta=beta, de=de, base=base, k=k)


def with_fit(d):
    """Adds the vectorised MLE fit at the true dispersions (beta, mu, thresholded mu)."""
    d.b, d.mu_raw, d.hat, d.conv = nbglm.VectorInference(n_cpus=1).irls(
        d.y, d.sf, d.X, d.disp, 0.5, 1e-8
    )
    d.mu = np.maximum(d.mu_raw, 0.5)
    return d


@pytest.fixture(scope="module")
def patient():
    samples = pd.DataFrame(
        {
            "patient_id": np.repeat([f"P{i:02d}" for i in range(1, 13)], len(VISITS)),
            "visit": np.tile(VISITS, 12),
        }
    )
    design = build_design(samples, "~ patient_id + visit", levels={"visit": VISITS})
    X = design.matrix.to_numpy(dtype=float)
    assert X.shape == (60, 16)
    return with_fit(simulate(X, 300, 20240611, list(design.matrix.columns).index("visitV2")))


@pytest.fixture(scope="module")
def dense():
    rng = np.random.default_rng(5)
    visit = np.tile(np.arange(5), 12)
    X = np.column_stack([np.ones(60), np.eye(5)[visit][:, 1:], rng.normal(0.0, 1.0, 60)])
    return with_fit(simulate(X, 100, 99, 2))


DATASETS = ["patient", "dense"]


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """BLAS on one thread: the per-gene reference loops use tiny matrices, and a threaded
    BLAS on a busy machine makes them 10-50x slower (spinning threads)."""
    with threadpool_limits(1):
        yield


def test_trigamma_matches_scipy_polygamma():
    x = np.concatenate([np.logspace(-3, 6, 4001), np.linspace(5.9, 6.1, 201)])
    np.testing.assert_allclose(nbglm.trigamma(x), polygamma(1, x), rtol=1e-8, atol=0)


@pytest.mark.parametrize("which", DATASETS)
def test_irls_matches_pydeseq2_irls_solver(request, which):
    d = request.getfixturevalue(which)
    ref = [pu.irls_solver(d.y[:, j], d.sf, d.X, d.disp[j]) for j in range(d.y.shape[1])]
    beta, mu, hat, conv = (np.array(v) for v in zip(*ref, strict=True))
    assert d.conv.all() and conv.all()
    assert not nbglm.fit_glm(d.y, d.sf, d.X, d.disp)[4].any()  # no gene needed irls_solver
    np.testing.assert_allclose(d.b, beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(d.mu_raw, mu.T, rtol=1e-6, atol=0)
    np.testing.assert_allclose(d.hat, hat.T, rtol=1e-6, atol=1e-9)
    # the fit recovers the simulated coefficient of well-measured genes
    well = d.base > 200
    assert np.median(np.abs(d.b[well, d.k] - d.beta[well, d.k])) < 0.15


def test_irls_fallback_genes_get_pydeseq2_answer(patient):
    """With max_beta = 5, genes of mean > e^5 diverge and go to irls_solver; others do not."""
    d = patient
    sub = np.arange(0, 300, 10)
    y, disp = d.y[:, sub], d.disp[sub]
    beta, mu, hat, conv = nbglm.VectorInference(n_cpus=1).irls(
        y, d.sf, d.X, disp, 0.5, 1e-8, max_beta=5
    )
    for i, j in enumerate(sub):
        rb, rm, rh, rc = pu.irls_solver(y[:, i], d.sf, d.X, disp[i], max_beta=5)
        np.testing.assert_allclose(beta[i], rb, rtol=1e-6, atol=1e-8, err_msg=f"gene {j}")
        np.testing.assert_allclose(mu[:, i], rm, rtol=1e-6, err_msg=f"gene {j}")
        np.testing.assert_allclose(hat[:, i], rh, rtol=1e-6, atol=1e-9, err_msg=f"gene {j}")
        assert conv[i] == rc
    assert (np.abs(beta) > 4.99).any(axis=1).sum() >= 3  # the bound was reached somewhere


@pytest.mark.parametrize("which", DATASETS)
def test_lin_reg_mu_matches_pydeseq2_fit_lin_mu(request, which):
    d = request.getfixturevalue(which)
    mu = nbglm.VectorInference(n_cpus=1).lin_reg_mu(d.y, d.sf, d.X, 0.5)
    ref = np.column_stack([pu.fit_lin_mu(d.y[:, j], d.sf, d.X, 0.5) for j in range(50)])
    np.testing.assert_allclose(mu[:, :50], ref, rtol=1e-8, atol=1e-10)


def pd_alpha_loss(y, X, mu, log_alpha, log_alpha_hat, prior_var=None, cr_reg=True):
    """pydeseq2's ``fit_alpha_mle`` loss of one gene (its closure, rebuilt)."""
    alpha = np.exp(log_alpha)
    reg = 0.0
    if cr_reg:
        w = mu / (1 + mu * alpha)
        reg += 0.5 * np.linalg.slogdet((X.T * w) @ X)[1]
    if prior_var is not None:
        reg += (log_alpha - log_alpha_hat) ** 2 / (2 * prior_var)
    return pu.nb_nll(y, mu, alpha) + reg


@pytest.mark.parametrize("which", DATASETS)
@pytest.mark.parametrize("prior_var,cr_reg", [(None, True), (0.3, True), (None, False)])
def test_dispersion_objective_value_and_derivatives(request, which, prior_var, cr_reg):
    d = request.getfixturevalue(which)
    idx = np.arange(0, d.y.shape[1], 7)
    y, mu = d.y[:, idx], d.mu[:, idx]
    theta = np.log(d.disp[idx]) + 0.3
    target = np.log(d.disp[idx])
    ops = nbglm.design_ops(d.X)
    lgy1 = gammaln(y + 1.0)

    def objective(th):
        return nbglm._dispersion_objective(y, lgy1, mu, ops, th, target, prior_var, cr_reg, True)

    f, g, h = objective(theta)
    # second derivative: central difference of the (checked) gradient
    fd_h = (objective(theta + 1e-5)[1] - objective(theta - 1e-5)[1]) / 2e-5
    np.testing.assert_allclose(h, fd_h, rtol=1e-5, atol=1e-6)
    eps = 1e-4
    for i in range(idx.size):

        def loss(t, i=i):
            return pd_alpha_loss(y[:, i], d.X, mu[:, i], t, target[i], prior_var, cr_reg)

        fd_g = (loss(theta[i] + eps) - loss(theta[i] - eps)) / (2 * eps)
        assert f[i] == pytest.approx(loss(theta[i]), rel=1e-10, abs=1e-8), f"gene {idx[i]}"
        assert g[i] == pytest.approx(fd_g, rel=1e-5, abs=1e-5), f"gene {idx[i]}"


@pytest.mark.parametrize("which", DATASETS)
@pytest.mark.parametrize("mode", ["genewise", "map", "no_cr"])
def test_alpha_mle_never_worse_than_pydeseq2(request, which, mode):
    d = request.getfixturevalue(which)
    sub = np.arange(0, d.y.shape[1], 2 if which == "patient" else 1)  # pydeseq2 is slow
    y, mu, n_genes = d.y[:, sub], d.mu[:, sub], sub.size
    rng = np.random.default_rng(3)
    if mode == "map":
        # prior centred on a trend value, as pydeseq2's MAP step
        start = 0.05 + 1.5 / (y / d.sf[:, None]).mean(axis=0)
        kw = dict(cr_reg=True, prior_reg=True, prior_disp_var=0.3)
    else:
        start = d.disp[sub] * np.exp(rng.normal(0.0, 0.5, n_genes))
        kw = dict(cr_reg=mode == "genewise", prior_reg=False)
    max_disp = max(10.0, d.y.shape[0])
    args = (MIN_DISP, max_disp)
    disp, conv = nbglm.VectorInference(n_cpus=1).alpha_mle(y, d.X, mu, start, *args, **kw)
    # the vectorised Newton itself converged everywhere (no gene went to pydeseq2's solver)
    own, own_conv = nbglm.fit_dispersions(y, d.X, mu, start, *args, **kw)
    assert own_conv.all()
    np.testing.assert_array_equal(own, disp)
    ref = [pu.fit_alpha_mle(y[:, j], d.X, mu[:, j], start[j], *args, **kw) for j in range(n_genes)]
    ref = np.array([a for a, _ in ref])
    assert conv.all()
    assert ((disp >= MIN_DISP * (1 - 1e-12)) & (disp <= max_disp * (1 + 1e-12))).all()
    pvar = kw.get("prior_disp_var")
    for j in range(n_genes):
        args_j = (y[:, j], d.X, mu[:, j])
        ours = pd_alpha_loss(*args_j, np.log(disp[j]), np.log(start[j]), pvar, kw["cr_reg"])
        theirs = pd_alpha_loss(*args_j, np.log(ref[j]), np.log(start[j]), pvar, kw["cr_reg"])
        assert ours <= theirs + 1e-6, (sub[j], disp[j], ref[j], ours, theirs)
    if mode != "no_cr":
        # without the Cox-Reid term pydeseq2's L-BFGS-B stops at clearly worse points for
        # ~3% of genes (e.g. 179: 1e-8 where 0.097 is better by 7.7 log-likelihood units)
        close = np.abs(np.log(disp) - np.log(ref)) < 1e-3
        assert close.mean() >= 0.98, sub[~close]


def test_alpha_mle_flat_start_stays_at_min_disp(patient):
    """A gene of a few 1-2 reads among zeros, started at min_disp, stays there (as pydeseq2)."""
    X = patient.X
    y = np.zeros((X.shape[0], 1))
    y[[3, 17, 40], 0] = [1.0, 2.0, 1.0]
    sf = np.ones(X.shape[0])
    start = np.array([MIN_DISP])
    inf = nbglm.VectorInference(n_cpus=1)
    _, mu, _, _ = inf.irls(y, sf, X, start, 0.5, 1e-8)
    mu = np.maximum(mu, 0.5)
    for kw in (dict(), dict(prior_reg=True, prior_disp_var=0.5)):
        disp, conv = inf.alpha_mle(y, X, mu, start, MIN_DISP, 60.0, **kw)
        ref, _ = pu.fit_alpha_mle(y[:, 0], X, mu[:, 0], MIN_DISP, MIN_DISP, 60.0, **kw)
        assert ref == pytest.approx(MIN_DISP, rel=1e-9)
        assert disp[0] == pytest.approx(MIN_DISP, rel=1e-9) and conv[0]


def test_alpha_mle_recovers_known_dispersion():
    """500 genes at dispersion 0.1, mean 200, 40 samples: median CR estimate within 15%."""
    rng = np.random.default_rng(11)
    n, n_genes, alpha = 40, 500, 0.1
    X = np.column_stack([np.ones(n), np.repeat([0.0, 1.0], n // 2)])
    sf = np.exp(rng.normal(0.0, 0.2, n))
    mu_true = np.broadcast_to(200.0 * sf[:, None], (n, n_genes))
    y = rng.negative_binomial(1.0 / alpha, 1.0 / (1.0 + mu_true * alpha)).astype(float)
    inf = nbglm.VectorInference(n_cpus=1)
    start = np.full(n_genes, 1.0)
    _, mu, _, _ = inf.irls(y, sf, X, start, 0.5, 1e-8)
    disp, conv = inf.alpha_mle(y, X, np.maximum(mu, 0.5), start, MIN_DISP, 10.0)
    assert conv.all()
    assert abs(np.median(disp) / alpha - 1.0) < 0.15, np.median(disp)


@pytest.mark.parametrize("which", DATASETS)
@pytest.mark.parametrize("lfc_null", [0.0, 0.3])
def test_wald_matches_pydeseq2_wald_test(request, which, lfc_null):
    d = request.getfixturevalue(which)
    p = d.X.shape[1]
    ridge = np.diag(np.full(p, 1e-6))
    single = np.eye(p)[d.k]
    diff = np.eye(p)[d.k] - np.eye(p)[d.k - 1]  # e.g. visitV2 - visitV1
    for contrast in (single, diff):
        ours = nbglm.VectorInference(n_cpus=1).wald_test(
            d.X, d.disp, d.b, d.mu_raw, ridge, contrast, lfc_null
        )
        ref = [
            pu.wald_test(d.X, d.disp[j], d.b[j], d.mu_raw[:, j], ridge, contrast, lfc_null, None)
            for j in range(d.y.shape[1])
        ]
        for got, want in zip(ours, zip(*ref, strict=True), strict=True):
            np.testing.assert_allclose(got, np.array(want), rtol=1e-8, atol=0)


def test_wald_non_finite_gene_is_nan(patient):
    d = patient
    lfc = d.b.copy()
    lfc[4, 0] = np.nan
    p = d.X.shape[1]
    pval, stat, se = nbglm.wald(d.X, d.disp, lfc, d.mu_raw, np.full(p, 1e-6), np.eye(p)[d.k])
    assert np.isnan([pval[4], stat[4], se[4]]).all()
    assert np.isfinite(np.delete(stat, 4)).all()


def posterior(X, y, r, offset, k, s):
    """pydeseq2's apeGLM posterior ``nbinomFn`` with its exact gradient and Hessian."""

    def f(b):
        return pu.nbinomFn(b, X, y, r, offset, S0, s, k)

    def grad(b):
        prior = b / S0**2
        prior[k] = 2 * b[k] / (s**2 + b[k] ** 2)
        return prior - (y - (y + r) * expit(X @ b + offset - np.log(r))) @ X

    def hess(b):
        q = expit(X @ b + offset - np.log(r))
        diag = np.full(b.size, 1 / S0**2)
        diag[k] = 2 * (s**2 - b[k] ** 2) / (s**2 + b[k] ** 2) ** 2
        return (X.T * ((y + r) * q * (1 - q))) @ X + np.diag(diag)

    return f, grad, hess


def profile_min(f, grad, hess, b, k):
    """Minimum of f over every coefficient but k (held at b[k]), from b."""
    free = np.arange(b.size) != k

    def full(x):
        out = b.copy()
        out[free] = x
        return out

    res = minimize(
        lambda x: f(full(x)),
        b[free],
        jac=lambda x: grad(full(x))[free],
        hess=lambda x: hess(full(x))[np.ix_(free, free)],
        method="trust-exact",
        options={"gtol": 1e-9},
    )
    return res.fun, full(res.x)


@pytest.fixture(scope="module")
def shrink_ref(patient):
    """pydeseq2's nbinomGLM per gene, its objective, and its answer polished by Newton."""
    d = patient
    p = d.X.shape[1]
    se = nbglm.wald(d.X, d.disp, d.b, d.mu_raw, np.full(p, 1e-6), np.eye(p)[d.k])[2]
    s = min(np.sqrt(nbglm.apeglm_prior_var(d.b[:, d.k], se)), 1.0)
    offset = np.log(d.sf)
    out = SimpleNamespace(scale=s, f_pd=[], f_opt=[], b_opt=[], se_opt=[], posteriors=[])
    for j in range(d.y.shape[1]):
        post = posterior(d.X, d.y[:, j], 1.0 / d.disp[j], offset, d.k, s)
        beta, _, _ = pu.nbinomGLM(d.X, d.y[:, j], 1.0 / d.disp[j], offset, S0, s, shrink_index=d.k)
        f, grad, hess = post
        res = minimize(f, beta, jac=grad, hess=hess, method="trust-exact", options={"gtol": 1e-9})
        out.f_pd.append(f(beta))
        out.f_opt.append(res.fun)
        out.b_opt.append(res.x)
        out.se_opt.append(np.sqrt(abs(np.linalg.inv(hess(res.x))[d.k, d.k])))
        out.posteriors.append(post)
    for name in ("f_pd", "f_opt", "b_opt", "se_opt"):
        setattr(out, name, np.array(getattr(out, name)))
    assert (out.f_opt <= out.f_pd + 1e-9).all()
    return out


@pytest.mark.parametrize("init", ["mle", "default"])
def test_shrink_coefficient_matches_pydeseq2_nbinomglm(patient, shrink_ref, init):
    d, ref = patient, shrink_ref
    lfc, se, conv = nbglm.shrink_coefficient(
        d.y, d.sf, d.X, d.disp, d.k, ref.scale, init=d.b if init == "mle" else None
    )
    assert conv.all()
    close = np.abs(lfc - ref.b_opt[:, d.k]) < 1e-4
    assert close.mean() >= 0.98, [(j, lfc[j], ref.b_opt[j, d.k]) for j in np.flatnonzero(~close)]
    np.testing.assert_allclose(se[close], ref.se_opt[close], rtol=1e-4)
    for j in range(d.y.shape[1]):
        b = ref.b_opt[j].copy()
        b[d.k] = lfc[j]
        ours, _ = profile_min(*ref.posteriors[j], b, d.k)
        assert ours <= ref.f_pd[j] + 1e-6, (j, lfc[j], ref.b_opt[j, d.k], ours, ref.f_pd[j])


def test_shrinkage_known_truth(patient, shrink_ref):
    d = patient
    lfc, _, _ = nbglm.shrink_coefficient(d.y, d.sf, d.X, d.disp, d.k, shrink_ref.scale, init=d.b)
    mle = d.b[:, d.k]
    null = ~d.de
    assert np.abs(lfc[null]).mean() < 0.9 * np.abs(mle[null]).mean()
    assert (np.abs(lfc[null]) <= np.abs(mle[null]) + 1e-8).mean() >= 0.95
    big = d.de & (d.base > 50)
    assert big.sum() >= 20
    assert (np.sign(lfc[big]) == np.sign(d.beta[big, d.k])).all()
    assert np.median(lfc[big] / mle[big]) > 0.9
    assert (lfc[big] / mle[big] > 0.6).all()


def test_apeglm_prior_var_matches_pydeseq2_and_truth():
    rng = np.random.default_rng(17)
    n_genes = 2000
    se = rng.uniform(0.2, 1.0, n_genes)
    # pure noise with |lfc| below its SE: no prior variance left
    noise = 0.9 * se * rng.choice([-1.0, 1.0], n_genes)
    assert nbglm.apeglm_prior_var(noise, se) == 1e-6
    # |lfc| ~ se: a prior variance negligible next to the SEs
    assert nbglm.apeglm_prior_var(se * rng.normal(size=n_genes), se) < 0.02
    # lfc ~ N(0, 0.5^2) plus small noise
    se_small = rng.uniform(0.05, 0.1, n_genes)
    lfc = rng.normal(0.0, 0.5, n_genes) + se_small * rng.normal(size=n_genes)
    lfc[:10] = np.nan
    got = nbglm.apeglm_prior_var(lfc, se_small)
    assert got == pytest.approx(0.25, rel=0.1)
    fake = SimpleNamespace(LFC=pd.DataFrame({"c": lfc}), SE=pd.Series(se_small))
    assert got == pytest.approx(DeseqStats._fit_prior_var(fake, coeff_idx=0), rel=1e-10)


def test_gene_blocks_cover_every_gene_once():
    chunk = nbglm.CHUNK_BYTES
    for n_genes in (1, 31, 32, 33, 300, 1001, 20000):
        for max_genes in (64, 1024):
            for per_gene in (1000, chunk // 40, 10 * chunk):
                blocks = nbglm.gene_blocks(n_genes, per_gene, max_genes)
                got = np.concatenate([np.arange(n_genes)[b] for b in blocks])
                np.testing.assert_array_equal(got, np.arange(n_genes))
                assert all(0 < b.stop - b.start <= max(32, max_genes) for b in blocks)
                # memory bound: a block's arrays stay near CHUNK_BYTES (32 genes at least)
                assert all(
                    (b.stop - b.start) * per_gene <= max(chunk, 32 * per_gene) for b in blocks
                )


def test_blockwise_results_in_order_on_threads():
    """25 blocks on 4 threads: results in block order, at most 4 (and more than 1) at a time."""
    lock, running, peak = threading.Lock(), [0], [0]

    def fn(blk):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
        return np.arange(1000)[blk] * 2

    out = nbglm.blockwise(fn, 1000, nbglm.CHUNK_BYTES // 40, 4)
    assert len(out) == 25
    np.testing.assert_array_equal(np.concatenate(out), np.arange(1000) * 2)
    assert 1 < peak[0] <= 4


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 100 genes, so that 300 genes make 3 blocks."""
    orig = nbglm.gene_blocks
    monkeypatch.setattr(nbglm, "gene_blocks", lambda n, b: orig(n, b, max_genes=100))


def test_two_threads_give_the_same_results(patient, small_blocks):
    """fit_glm, fit_dispersions, wald and deseq2_genewise_dispersions: 3 blocks on 1 thread
    vs 2 threads, bit for bit."""
    d = patient
    p = d.X.shape[1]

    def run(n_cpus):
        fit = nbglm.fit_glm(d.y, d.sf, d.X, d.disp, n_cpus=n_cpus)
        disp = nbglm.fit_dispersions(d.y, d.X, d.mu, d.disp * 2, MIN_DISP, 60.0, n_cpus=n_cpus)
        wald = nbglm.wald(d.X, d.disp, d.b, d.mu_raw, np.full(p, 1e-6), np.eye(p)[d.k], 0, n_cpus)
        gw = nbglm.deseq2_genewise_dispersions(
            d.y, d.X, d.mu, d.disp * 2, MIN_DISP, 60.0, n_cpus=n_cpus
        )
        return [*fit, *disp, *wald, *gw]

    assert len(nbglm.gene_blocks(300, nbglm.design_ops(d.X).bytes_per_gene())) == 3
    for a, b in zip(run(1), run(2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_shrink_two_threads_give_the_same_results(patient, small_blocks):
    d = patient
    args = (d.y, d.sf, d.X, d.disp, d.k, 0.5)
    one = nbglm.shrink_coefficient(*args, init=d.b, n_cpus=1)
    two = nbglm.shrink_coefficient(*args, init=d.b, n_cpus=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_shrink_does_not_depend_on_the_blocks(patient, monkeypatch):
    """Converged to precision, not to a rounding-dependent stop: 3 blocks vs 1 block."""
    d = patient
    args = (d.y, d.sf, d.X, d.disp, d.k, 0.5)
    whole = nbglm.shrink_coefficient(*args, init=d.b)
    orig = nbglm.gene_blocks
    monkeypatch.setattr(nbglm, "gene_blocks", lambda n, b: orig(n, b, max_genes=100))
    split = nbglm.shrink_coefficient(*args, init=d.b)
    np.testing.assert_allclose(whole[0], split[0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(whole[1], split[1], rtol=1e-8)
    assert whole[2].all() and split[2].all()


def test_block_normal_equations_equal_dense():
    """BlockOps (Schur complement over patient dummies) = DenseOps for every operation."""
    rng = np.random.default_rng(1)
    n_pat, n_vis, n_genes = 15, 6, 40
    pat, vis = np.repeat(np.arange(n_pat), n_vis), np.tile(np.arange(n_vis), n_pat)
    X = np.column_stack(
        [np.ones(n_pat * n_vis)]
        + [(pat == j).astype(float) for j in range(1, n_pat)]
        + [(vis == v).astype(float) for v in range(1, n_vis)]
        + [rng.normal(size=n_pat * n_vis)]
    )
    assert nbglm.indicator_columns(X) == list(range(1, n_pat))
    assert isinstance(nbglm.design_ops(X), nbglm.BlockOps)
    assert isinstance(nbglm.design_ops(X[:, [0, *range(n_pat, X.shape[1])]]), nbglm.DenseOps)
    p = X.shape[1]
    w = rng.gamma(2.0, 1.0, (X.shape[0], n_genes))
    w1 = -rng.gamma(2.0, 1.0, (X.shape[0], n_genes))
    diag = rng.gamma(1.0, 1e-3, (n_genes, p))
    rhs = rng.normal(size=(n_genes, p))
    dense = nbglm.DenseOps(X).factor(w, diag)
    block = nbglm.design_ops(X).factor(w, diag)
    pairs = [
        (dense.solve(rhs), block.solve(rhs)),
        (dense.lev(), block.lev()),
        (dense.logdet(), block.logdet()),
        (dense.trace_sq(w1), block.trace_sq(w1)),
        (
            np.stack([dense.inv_diag(j) for j in range(p)]),
            np.stack([block.inv_diag(j) for j in range(p)]),
        ),
    ]
    for a, b in pairs:
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ DESeq2 rules (rhlh.de)


def test_deseq2_wald_floors_the_means(patient):
    """deseq2=True: the SE is pydeseq2's formula on means floored at 0.5 (DESeq2's fitBeta)."""
    d = patient
    p = d.X.shape[1]
    ridge = np.diag(np.full(p, 1e-6))
    contrast = np.eye(p)[d.k]
    inf = nbglm.VectorInference(n_cpus=1, deseq2=True)
    _, _, se = inf.wald_test(d.X, d.disp, d.b, d.mu_raw, ridge, contrast, 0.0)
    ref = [
        pu.wald_test(d.X, d.disp[j], d.b[j], d.mu[:, j], ridge, contrast, 0.0, None)[2]
        for j in range(d.y.shape[1])
    ]
    np.testing.assert_allclose(se, ref, rtol=1e-8)
    plain = nbglm.VectorInference(n_cpus=1).wald_test(
        d.X, d.disp, d.b, d.mu_raw, ridge, contrast, 0.0
    )[2]
    low = (d.mu_raw < 0.5).any(axis=0)
    # larger weights where a mean is floored: smaller SEs (pydeseq2's lose DESeq2's calls)
    assert low.any() and (se[low] < plain[low]).all()
    np.testing.assert_allclose(se[~low], plain[~low], rtol=1e-12)


@pytest.mark.parametrize("which", DATASETS)
def test_deseq2_genewise_dispersions(request, which):
    """DESeq2's gene-wise estimator: its line search stops at or below the maximum (Newton's),
    close to it; a start without a gain of 1e-6 of the objective's size is kept."""
    d = request.getfixturevalue(which)
    y, mu = d.y, d.mu
    rng = np.random.default_rng(12)
    start = np.clip(d.disp * np.exp(rng.normal(0.0, 0.7, d.disp.size)), MIN_DISP, 60.0)
    start[::7] = d.disp[::7] * 1.0005  # next to the optimum: no real gain
    est, conv = nbglm.deseq2_genewise_dispersions(y, d.X, mu, start, MIN_DISP, 60.0)
    same, _ = nbglm.VectorInference(n_cpus=1, deseq2=True).alpha_mle(
        y, d.X, mu, start, MIN_DISP, 60.0
    )
    np.testing.assert_array_equal(est, same)
    best, _ = nbglm.VectorInference(n_cpus=1).alpha_mle(y, d.X, mu, start, MIN_DISP, 60.0)
    lp_est = nbglm.deseq2_log_posterior(y, mu, d.X, est)
    lp_best = nbglm.deseq2_log_posterior(y, mu, d.X, best)
    assert (lp_est <= lp_best + 1e-6 * np.abs(lp_best)).all()
    la, iters, lp0, lp1 = nbglm.dispersion_line_search(
        y, mu, nbglm.design_ops(d.X), np.log(start), np.log(MIN_DISP / 10)
    )
    searched = (iters > 1) & (iters < 100)
    np.testing.assert_array_equal(conv, searched)
    kept = lp1 < lp0 + np.abs(lp0) / 1e6
    assert (kept & searched).any() and (~kept & searched).any()
    np.testing.assert_array_equal(est[kept & searched], start[kept & searched])
    moved = ~kept & searched
    np.testing.assert_allclose(est[moved], np.clip(np.exp(la[moved]), MIN_DISP, 60.0))
    assert np.median(np.abs(np.log(est[moved] / best[moved]))) < 0.01
    # the objective is the NB log-likelihood up to terms free of the dispersion, minus the
    # Cox-Reid half log-determinant
    j = 3
    xtwx = lambda a: (d.X.T * (mu[:, j] / (1 + a * mu[:, j]))) @ d.X  # noqa: E731
    full = lambda a: -pu.nb_nll(y[:, j], mu[:, j], a) - 0.5 * np.linalg.slogdet(xtwx(a))[1]  # noqa: E731
    lp = nbglm.deseq2_log_posterior(y[:, [j, j]], mu[:, [j, j]], d.X, np.array([0.1, 0.3]))
    assert lp[1] - lp[0] == pytest.approx(full(0.3) - full(0.1), rel=1e-9)
    # and its slope in log alpha is the derivative of that
    ops = nbglm.design_ops(d.X)
    _, slope = nbglm._deseq2_lp(y[:, [j]], mu[:, [j]], ops, np.log([0.2]), deriv=True)
    h = 1e-5
    fd = (full(0.2 * np.exp(h)) - full(0.2 * np.exp(-h))) / (2 * h)
    assert slope[0] == pytest.approx(fd, rel=1e-5)


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.DomainWarning")
def test_gamma_identity_glm_matches_statsmodels():
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    mean = np.exp(rng.uniform(0, 8, 2000))
    y = (0.05 + 2.0 / mean) * rng.gamma(2.0, 0.5, mean.size)
    coef, conv = nbglm.gamma_identity_glm(1.0 / mean, y, [0.1, 1.0])
    X = np.column_stack([np.ones_like(mean), 1.0 / mean])
    fam = sm.families.Gamma(link=sm.families.links.Identity())
    ref = sm.GLM(y, X, family=fam).fit(start_params=[0.1, 1.0], tol=1e-12).params
    assert conv
    np.testing.assert_allclose(coef, ref, rtol=1e-6)


def test_parametric_dispersion_fit_known_trend_and_failure():
    rng = np.random.default_rng(8)
    mean = np.exp(rng.uniform(-1, 9, 5000))
    disp = (0.04 + 3.0 / mean) * np.exp(rng.normal(0.0, 0.4, mean.size))
    disp[:50] = 1e-5  # genes near zero dispersion: out of the (1e-4, 15) window
    a0, a1 = nbglm.parametric_dispersion_fit(mean, disp)
    # the Gamma GLM fits the mean of the log-normal scatter: exp(0.4^2 / 2) above the trend
    assert a0 == pytest.approx(0.04 * np.exp(0.08), rel=0.08)
    assert a1 == pytest.approx(3.0 * np.exp(0.08), rel=0.08)
    with pytest.raises(nbglm.TrendFitError):
        nbglm.parametric_dispersion_fit(mean, 0.5 - 0.4 / np.sqrt(mean) + 0 * disp)


def test_nb_glm_optim_all_zero_group():
    """A group of zeros: the coefficient goes to the bound, the likelihood to its supremum."""
    rng = np.random.default_rng(2)
    X = np.column_stack([np.ones(8), np.repeat([0.0, 1.0], 4)])
    sf = np.exp(rng.normal(0, 0.2, 8))
    y = np.array([0, 0, 0, 0, 40, 55, 31, 62], dtype=float)
    disp = 0.05
    beta, mu, conv = nbglm.nb_glm_optim(y, sf, X, disp, start=[0.0, 0.0])
    assert conv
    # L-BFGS-B stops where the gradient (~ the zero group's means) vanishes, as DESeq2's optim
    assert mu[:4].max() < 1e-3
    # the group with counts is at its own one-group MLE, the likelihood at its supremum
    one = minimize(lambda b: pu.nb_nll(y[4:], sf[4:] * np.exp(b[0]), disp), [3.0])
    assert beta.sum() == pytest.approx(one.x[0], abs=1e-4)
    assert pu.nb_nll(y, mu, disp) == pytest.approx(one.fun, abs=1e-3)
