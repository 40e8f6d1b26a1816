"""Simon's two-stage designs: published table rows, brute-force optimality, exact error rates."""

import time
from math import comb

import pytest

from rhlh.simon import operating_characteristics, simon_decision, simon_design, simon_designs

# Simon R. Optimal two-stage designs for phase II clinical trials. Control Clin Trials
# 1989;10:1-10, Tables 1 and 2: (p0, p1, alpha, beta, kind, r1, n1, r, n, EN0, PET0);
# EN0 and PET0 as printed (1 and 2 decimals)
PUBLISHED = [
    (0.05, 0.25, 0.05, 0.20, "optimal", 0, 9, 2, 17, 12.0, 0.63),
    (0.05, 0.25, 0.05, 0.20, "minimax", 0, 12, 2, 16, 13.8, 0.54),
    (0.10, 0.30, 0.05, 0.20, "optimal", 1, 10, 5, 29, 15.0, 0.74),
    (0.10, 0.30, 0.05, 0.20, "minimax", 1, 15, 5, 25, 19.5, 0.55),
    (0.20, 0.40, 0.05, 0.20, "optimal", 3, 13, 12, 43, 20.6, 0.75),
    (0.20, 0.40, 0.05, 0.20, "minimax", 4, 18, 10, 33, 22.3, 0.72),
    (0.30, 0.50, 0.05, 0.20, "optimal", 5, 15, 18, 46, 23.6, 0.72),
    (0.30, 0.50, 0.05, 0.20, "minimax", 6, 19, 16, 39, 25.7, 0.67),
    (0.50, 0.70, 0.05, 0.20, "optimal", 8, 15, 26, 43, 23.5, 0.70),
    (0.60, 0.80, 0.05, 0.20, "optimal", 7, 11, 30, 43, 20.5, 0.70),
    (0.70, 0.90, 0.05, 0.20, "optimal", 4, 6, 22, 27, 14.8, 0.58),
    (0.10, 0.30, 0.05, 0.10, "optimal", 2, 18, 6, 35, 22.5, 0.73),
    (0.10, 0.30, 0.05, 0.10, "minimax", 2, 22, 6, 33, 26.2, 0.62),
    (0.20, 0.40, 0.05, 0.10, "optimal", 4, 19, 15, 54, 30.4, 0.67),
    (0.20, 0.40, 0.05, 0.10, "minimax", 5, 24, 13, 45, 31.2, 0.66),
    (0.30, 0.50, 0.05, 0.10, "optimal", 8, 24, 24, 63, 34.7, 0.73),
    (0.30, 0.50, 0.05, 0.10, "minimax", 7, 24, 21, 53, 36.6, 0.56),
    (0.40, 0.60, 0.10, 0.10, "optimal", 7, 18, 22, 46, 30.2, 0.56),
    (0.40, 0.60, 0.10, 0.10, "minimax", 11, 28, 20, 41, 33.8, 0.55),
]


@pytest.mark.parametrize("p0,p1,alpha,beta,kind,r1,n1,r,n,en0,pet0", PUBLISHED)
def test_published_rows(p0, p1, alpha, beta, kind, r1, n1, r, n, en0, pet0):
    d = simon_designs(p0, p1, alpha, beta, nmax=70)[kind]
    assert (d.r1, d.n1, d.r, d.n) == (r1, n1, r, n)
    assert round(d.en0, 1) == pytest.approx(en0)
    assert round(d.pet0, 2) == pytest.approx(pet0)
    assert d.type1 <= alpha and d.power >= 1 - beta


def _exact_by_enumeration(n1, r1, n, r, p):
    """P(declare promising) by summing the joint binomial over every (x1, x2)."""
    n2 = n - n1
    total = 0.0
    for x1 in range(r1 + 1, n1 + 1):
        for x2 in range(n2 + 1):
            if x1 + x2 > r:
                total += (
                    comb(n1, x1)
                    * p**x1
                    * (1 - p) ** (n1 - x1)
                    * comb(n2, x2)
                    * p**x2
                    * (1 - p) ** (n2 - x2)
                )
    return total


def test_operating_characteristics_by_enumeration():
    for design in [(10, 1, 29, 5), (13, 3, 43, 12), (6, 4, 27, 22)]:
        for p in (0.1, 0.3, 0.7):
            promising, pet = operating_characteristics(*design, p)
            assert promising == pytest.approx(_exact_by_enumeration(*design, p), abs=1e-12)
            n1, r1 = design[0], design[1]
            want_pet = sum(comb(n1, k) * p**k * (1 - p) ** (n1 - k) for k in range(r1 + 1))
            assert pet == pytest.approx(want_pet, abs=1e-12)


def test_search_matches_brute_force():
    # independent scalar search over every design with n <= 18 (p0=0.05, p1=0.25)
    p0, p1, alpha, beta = 0.05, 0.25, 0.05, 0.20
    best_en0, best_n = None, None
    for n in range(2, 19):
        for n1 in range(1, n):
            for r1 in range(0, n1):
                for r in range(r1, n):
                    a, pet = operating_characteristics(n1, r1, n, r, p0)
                    if a > alpha:
                        continue
                    pw, _ = operating_characteristics(n1, r1, n, r, p1)
                    if pw < 1 - beta:
                        continue
                    en0 = n1 + (1 - pet) * (n - n1)
                    if best_en0 is None or en0 < best_en0 - 1e-12:
                        best_en0 = en0
                    if best_n is None or n < best_n:
                        best_n = n
    d = simon_designs(p0, p1, alpha, beta, nmax=18)
    assert d["optimal"].en0 == pytest.approx(best_en0, abs=1e-12)
    assert d["minimax"].n == best_n


def test_fast_enough():
    t0 = time.perf_counter()
    simon_design(0.2, 0.4, 0.05, 0.2, nmax=100)
    assert time.perf_counter() - t0 < 10


def test_no_design_within_nmax():
    with pytest.raises(ValueError, match="raise nmax"):
        simon_design(0.2, 0.4, 0.05, 0.2, nmax=20)
    with pytest.raises(ValueError):
        simon_design(0.4, 0.2)


def _decisions(x1, n1, x, n):
    d = simon_design(0.10, 0.30, 0.05, 0.20, nmax=40)  # 1/10, 5/29
    return simon_decision(d, x1, n1, x, n)["decision"].tolist()


def test_decisions():
    assert _decisions(1, 10, None, None) == ["stop for futility", "not reached"]
    assert _decisions(2, 10, 5, 29) == ["continue to stage 2", "not promising: H0 not rejected"]
    assert _decisions(2, 10, 6, 29) == ["continue to stage 2", "promising: reject H0 (p <= p0)"]
    # incomplete stages: futility is certain only when the remaining patients cannot help
    assert _decisions(0, 8, None, None) == ["pending", "not available"]
    assert _decisions(0, 9, None, None) == ["stop for futility", "not reached"]
    assert _decisions(3, 10, 4, 20)[1] == "pending"
    assert _decisions(3, 10, 6, 20)[1] == "promising: reject H0 (p <= p0)"
