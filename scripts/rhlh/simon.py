"""Simon's (1989) two-stage phase II designs: exact search for the optimal and minimax designs.

A design (n1, r1, n, r): enrol n1 patients; stop for futility if at most r1 respond; otherwise
enrol up to n in total and declare the treatment not promising if at most r respond in all n.
Type I error and power are computed exactly from binomial distributions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

# floating-point slack when comparing error rates and expected sizes
_TOL = 1e-12


@dataclass(frozen=True)
class SimonDesign:
    """One two-stage design with its exact operating characteristics."""

    kind: str
    p0: float
    p1: float
    alpha: float
    beta: float
    n1: int
    r1: int
    n: int
    r: int
    en0: float
    pet0: float
    type1: float
    power: float

    def as_dict(self) -> dict:
        """The design as a plain dict (for a table row)."""
        return asdict(self)


@lru_cache(maxsize=4096)
def _pmf(n: int, p: float) -> np.ndarray:
    return stats.binom.pmf(np.arange(n + 1), n, p)


@lru_cache(maxsize=4096)
def _sf_padded(n2: int, p: float, pad: int) -> np.ndarray:
    # entry k + pad holds P(X2 > k) for k in [-pad, pad]; 1 below 0, 0 from n2 on
    k = np.arange(-pad, pad + 1)
    return np.where(k < 0, 1.0, stats.binom.sf(k, n2, p))


def operating_characteristics(n1: int, r1: int, n: int, r: int, p: float) -> tuple[float, float]:
    """Exact (probability of declaring the treatment promising, of early termination) at p."""
    b1 = _pmf(n1, p)
    x1 = np.arange(n1 + 1)
    tail2 = stats.binom.sf(r - x1, n - n1, p)
    promising = float(np.sum(b1[x1 > r1] * tail2[x1 > r1]))
    pet = float(np.sum(b1[: r1 + 1]))
    return promising, pet


def _reject_matrix(n1: int, n: int, p: float, pad: int) -> np.ndarray:
    """R[r1, r] = P(X1 > r1 and X1 + X2 > r) for r1 in 0..n1-1, r in 0..n-1."""
    x1 = np.arange(n1 + 1)
    r = np.arange(n)
    sf = _sf_padded(n - n1, p, pad)
    m = _pmf(n1, p)[:, None] * sf[r[None, :] - x1[:, None] + pad]
    # tail sums over x1 from the top: row j = sum over x1 >= j
    tail = np.cumsum(m[::-1], axis=0)[::-1]
    return tail[1:]


def _search(p0, p1, alpha, beta, nmax, nmin=2):
    """Best design for each n (min EN0 over n1, r1, r); yields one candidate per n."""
    if not (0 < p0 < p1 < 1):
        raise ValueError(f"need 0 < p0 < p1 < 1, got p0={p0}, p1={p1}")
    if not (0 < alpha < 1 and 0 < beta < 1):
        raise ValueError("alpha and beta must lie in (0, 1)")
    pad = nmax + 1
    for n in range(nmin, nmax + 1):
        best = None
        for n1 in range(1, n):
            rej0 = _reject_matrix(n1, n, p0, pad)
            rej1 = _reject_matrix(n1, n, p1, pad)
            r1_grid = np.arange(n1)[:, None]
            r_grid = np.arange(n)[None, :]
            ok = (rej0 <= alpha + _TOL) & (rej1 >= 1 - beta - _TOL) & (r_grid >= r1_grid)
            rows = np.flatnonzero(ok.any(axis=1))
            if rows.size == 0:
                continue
            # EN0 falls as PET0 rises, and PET0 rises with r1: the largest feasible r1 is best
            r1 = int(rows[-1])
            # among equally good r, take the smallest (the most powerful design)
            r = int(np.flatnonzero(ok[r1])[0])
            pet0 = float(np.sum(_pmf(n1, p0)[: r1 + 1]))
            en0 = n1 + (1 - pet0) * (n - n1)
            cand = (en0, n1, r1, r, pet0, float(rej0[r1, r]), float(rej1[r1, r]))
            if best is None or en0 < best[0] - _TOL:
                best = cand
        if best is not None:
            yield n, best


def simon_designs(
    p0: float, p1: float, alpha: float = 0.05, beta: float = 0.20, nmax: int = 100
) -> dict[str, SimonDesign]:
    """Simon's optimal (min EN0) and minimax (min n, then min EN0) designs, searched to nmax."""
    optimal = minimax = None
    for n, (en0, n1, r1, r, pet0, t1, pw) in _search(p0, p1, alpha, beta, nmax):
        design = SimonDesign("optimal", p0, p1, alpha, beta, n1, r1, n, r, en0, pet0, t1, pw)
        if minimax is None:
            minimax = replace(design, kind="minimax")
        # ties in EN0 keep the smaller n (found first)
        if optimal is None or en0 < optimal.en0 - _TOL:
            optimal = design
    if optimal is None:
        raise ValueError(
            f"no two-stage design with n <= {nmax} meets alpha={alpha}, power={1 - beta}; "
            "raise nmax"
        )
    return {"optimal": optimal, "minimax": minimax}


def simon_design(
    p0: float,
    p1: float,
    alpha: float = 0.05,
    beta: float = 0.20,
    kind: str = "optimal",
    nmax: int = 100,
) -> SimonDesign:
    """One of Simon's designs: kind 'optimal' or 'minimax'."""
    if kind not in ("optimal", "minimax"):
        raise ValueError(f"kind must be 'optimal' or 'minimax', got {kind!r}")
    return simon_designs(p0, p1, alpha, beta, nmax)[kind]


def simon_decision(
    design: SimonDesign,
    stage1_successes: int | None,
    stage1_n: int | None,
    total_successes: int | None,
    total_n: int | None,
) -> pd.DataFrame:
    """Stage-1 and final decisions from observed successes; columns stage, n_planned, n_observed,
    successes, threshold, decision, note."""
    rows = []
    if stage1_successes is None or stage1_n is None:
        dec1, note1 = "not available", "stage 1 not yet observed"
    else:
        note1 = (
            "" if stage1_n == design.n1 else f"{stage1_n} patients observed, {design.n1} planned"
        )
        if stage1_successes > design.r1:
            dec1 = "continue to stage 2"
        elif stage1_n >= design.n1 or stage1_successes + (design.n1 - stage1_n) <= design.r1:
            dec1 = "stop for futility"
        else:
            dec1 = "pending"
    rows.append(("stage 1", design.n1, stage1_n, stage1_successes, design.r1, dec1, note1))
    if total_successes is None or total_n is None or dec1 == "stop for futility":
        dec2 = "not reached" if dec1 == "stop for futility" else "not available"
        note2 = ""
        if dec1 == "stop for futility" and total_n is not None and total_n > design.n1:
            # data beyond stage 1 exist (e.g. a fixed-size cohort): say what they would give
            side = ">" if total_successes > design.r else "<="
            note2 = (
                f"the design stops after stage 1; {total_successes}/{total_n} observed "
                f"({side} {design.r}) is reported only for information"
            )
        rows.append(("final", design.n, total_n, total_successes, design.r, dec2, note2))
    else:
        note2 = "" if total_n == design.n else f"{total_n} patients observed, {design.n} planned"
        if total_successes > design.r:
            dec2 = "promising: reject H0 (p <= p0)"
        elif total_n >= design.n or total_successes + (design.n - total_n) <= design.r:
            dec2 = "not promising: H0 not rejected"
        else:
            dec2 = "pending"
        rows.append(("final", design.n, total_n, total_successes, design.r, dec2, note2))
    return pd.DataFrame(
        rows,
        columns=["stage", "n_planned", "n_observed", "successes", "threshold", "decision", "note"],
    )
