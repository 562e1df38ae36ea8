"""Lueker (1998), "Exponentially small bounds on the expected optimum of the partition and subset sum
problems", Corollary 2.5 as used by the SLTH papers, and the product density that lets RSS run over
products of two random weights (item A5).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from proofs_check.core import FAILED, NUMERIC, Outcome, Proof, check

PAPER = "Lueker 1998"


@check(item="A5", paper="Pensia et al. 2020; Burkholz 2022 (products)")
def product_density(seed: int) -> Outcome:
    """For X ~ U[0,1], Y ~ U[−1,1] (and for X, Y ~ U[−1,1]) the product Z = XY has density
    f(z) = ½·ln(1/|z|) on [−1, 1]; ∫f = 1; f ≥ ½·ln 2 on [−½, ½], so the law of Z contains
    U[−½, ½] with mass ½·ln 2 ≈ 0.347.

    (the RSS-over-products step of Pensia et al. 2020 and Burkholz 2022).
    Proof: f(z) = ∫ f_X(x) f_Y(z/x) / |x| dx; the integrand is nonzero for |x| ≥ |z|, and sympy
    evaluates ∫_{|z|}^1 1/(2x) dx (and 2·∫_{|z|}^1 1/(4x) dx) to −ln|z|/2; f is even, ∫_0^1 −ln z dz = 1;
    f′(z) = −1/(2z) < 0 on (0, 1] so min over [−½, ½] is f(½) = ½ ln 2. Monte-Carlo cross-check:
    10⁵ products, mass of [0, ½] against (1 + ln 2)/4 within 5 standard errors.
    """
    z, t = sp.Symbol("z", positive=True), sp.Symbol("t", positive=True)
    f = -sp.log(z) / 2
    pr = Proof()
    pr.zero(sp.integrate(sp.Rational(1, 2) / t, (t, z, 1)) - f, "U[0,1]·U[−1,1]: ∫_{|z|}^1 (1·½)/x dx = ½ ln(1/|z|)")
    pr.zero(2 * sp.integrate(sp.Rational(1, 4) / t, (t, z, 1)) - f, "U[−1,1]²: 2∫_{|z|}^1 (½·½)/x dx = ½ ln(1/|z|)")
    pr.zero(2 * sp.integrate(f, (z, 0, 1)) - 1, "∫_{−1}^1 f = 1")
    pr.true(bool((sp.diff(f, z)).is_negative), "f′(z) = −1/(2z) < 0 on (0, 1]")
    pr.zero(f.subs(z, sp.Rational(1, 2)) - sp.log(2) / 2, "f(½) = ½ ln 2")
    mass_half = sp.integrate(f, (z, 0, sp.Rational(1, 2)))
    pr.zero(mass_half - (1 + sp.log(2)) / 4, "P(0 ≤ Z ≤ ½) = (1 + ln 2)/4")
    rng = np.random.default_rng(seed)
    n = 100_000
    prod = rng.uniform(0, 1, n) * rng.uniform(-1, 1, n)
    p_hat, p = float(np.mean((prod >= 0) & (prod <= 0.5))), float(mass_half)
    se = math.sqrt(p * (1 - p) / n)
    if abs(p_hat - p) > 5 * se:
        return Outcome(FAILED, f"Monte-Carlo mass of [0, ½] {p_hat:.4f} vs {p:.4f} (> 5 s.e.)")
    return pr.outcome(f"density by sympy integration, ∫f = 1, f decreasing so f ≥ f(½) = ½ln2 on [−½,½]; "
                      f"MC mass of [0,½] {p_hat:.4f} vs {p:.4f}")


@check(item="A5", paper=f"{PAPER} Cor. 2.5")
def lueker_sample_size_rearrangement(seed: int) -> Outcome:
    """Lueker's bound P(fail) ≤ exp(−(n/2 − C·L)²/(2n)), L = ln(1/ε), valid for n ≥ 2CL, is ≤ δ as
    soon as n ≥ 2CL + 2√(2n·ln(1/δ)), i.e. n ≥ n* = (√(2D) + √(2D + 2CL))² with D = ln(1/δ); and
    n* ≤ 4CL + 8D, so n = O(log(1/ε) + log(1/δ)).

    Lueker (1998) Cor. 2.5, rearranged by us. Proof (sympy): with s = √n the
    condition is the quadratic s² − 2√(2D)s − 2CL ≥ 0 whose positive root gives n*; at n = n* the
    exponent (n/2 − CL)²/(2n) equals D exactly; the exponent is nondecreasing in n for n ≥ 2CL
    (derivative (n/2 − CL)(n/2 + CL)/(2n²)); (a + b)² ≤ 2a² + 2b² gives n* ≤ 4CL + 8D.
    """
    C, L, D, n = sp.symbols("C L D n", positive=True)
    expo = (n / 2 - C * L) ** 2 / (2 * n)
    n_star = (sp.sqrt(2 * D) + sp.sqrt(2 * D + 2 * C * L)) ** 2
    pr = Proof()
    s = sp.sqrt(n_star)
    pr.zero(sp.expand(s ** 2 - 2 * sp.sqrt(2 * D) * s - 2 * C * L), "√n* is a root of s² − 2√(2D)s − 2CL")
    pr.zero(sp.sqrt(n_star) - (sp.sqrt(2 * D) + sp.sqrt(2 * D + 2 * C * L)), "n* is the square of the positive root")
    pr.zero(sp.factor(expo.subs(n, n_star) - D), "exponent at n* equals ln(1/δ)")
    pr.zero(sp.diff(expo, n) - (n / 2 - C * L) * (n / 2 + C * L) / (2 * n ** 2), "exponent′(n) = (n/2−CL)(n/2+CL)/(2n²)")
    pr.true(bool(sp.expand(n_star - 2 * C * L).is_nonnegative), "n* ≥ 2CL (so ε ≥ e^{−n/(2C)} holds at n*)")
    a, b = sp.sqrt(2 * D), sp.sqrt(2 * D + 2 * C * L)
    pr.zero(sp.expand(2 * a ** 2 + 2 * b ** 2 - (a + b) ** 2 - (a - b) ** 2), "2a² + 2b² − (a+b)² = (a−b)² ≥ 0")
    pr.zero(sp.expand(2 * a ** 2 + 2 * b ** 2) - (4 * C * L + 8 * D), "2a² + 2b² = 4CL + 8D")
    if not pr.ok:
        # The root-at-n* step is where simplification is fragile; verify it on a rational grid.
        def grid() -> Outcome:
            worst = 0.0
            for c in (sp.Rational(1, 2), 1, 3):
                for lv in (1, 5, 20):
                    for dv in (sp.Rational(1, 10), 1, 10):
                        v = (expo.subs(n, n_star) - D).subs({C: c, L: lv, D: dv})
                        worst = max(worst, abs(float(sp.N(v, 50))))
            ok = worst < 1e-40
            return Outcome(NUMERIC if ok else FAILED, f"27-point grid at 50 digits: |exponent(n*) − D| ≤ {worst:.1e}")
        return pr.outcome("", grid)
    return pr.outcome("n* = (√(2D)+√(2D+2CL))² solves the quadratic; exponent(n*) = D; exponent increasing for "
                      "n ≥ 2CL; n* ≤ 4CL + 8D")


@check(item="A5", paper=f"{PAPER} Cor. 2.5 (covering [−1, 1])")
def two_group_covering(seed: int) -> Outcome:
    """Two independent groups, each ε/2-good for [−½, ½], make one sample ε-good for [−1, 1]:
    z = z/2 + z/2 and |z − s₁ − s₂| ≤ |z/2 − s₁| + |z/2 − s₂| ≤ ε (Lueker 1998; doubles n).

    Proof: sympy shows z − s₁ − s₂ = (z/2 − s₁) + (z/2 − s₂) and z/2 ∈ [−½, ½] for z ∈ [−1, 1]; the
    triangle inequality finishes.
    """
    z, s1, s2 = sp.symbols("z s1 s2", real=True)
    pr = Proof()
    pr.zero(z - s1 - s2 - ((z / 2 - s1) + (z / 2 - s2)), "z − s₁ − s₂ = (z/2 − s₁) + (z/2 − s₂)")
    return pr.outcome("split identity by sympy; triangle inequality gives ε/2 + ε/2")


@check(item="A5", paper=f"{PAPER} Cor. 2.5 vs strongticket.subsetsum.theory")
def theory_lueker_sample_size(seed: int) -> Outcome:
    """``theory.lueker_sample_size(eps, delta, C)`` returns an n with n ≥ 2C·ln(1/ε) + 2√(2n·ln(1/δ)),
    i.e. at least the n* of lueker_sample_size_rearrangement, so Lueker's failure bound is ≤ δ.
    """
    from strongticket.subsetsum.theory import lueker_sample_size as fn
    excess = []
    for eps in (0.5, 0.1, 0.01, 1e-4, 1e-8):
        for delta in (0.5, 0.1, 0.01, 1e-6):
            for C in (0.5, 1.0, 4.0):
                n = float(fn(eps, delta, C))
                L, D = math.log(1 / eps), math.log(1 / delta)
                n_star = (math.sqrt(2 * D) + math.sqrt(2 * D + 2 * C * L)) ** 2
                if n < n_star * (1 - 1e-12) or n < 2 * C * L + 2 * math.sqrt(2 * n * D) - 1e-9:
                    return Outcome(FAILED, f"lueker_sample_size({eps}, {delta}, {C}) = {n:g} < n* = {n_star:.4g}: "
                                           "Lueker's bound is then above δ")
                excess.append(n - n_star)
    return Outcome(NUMERIC, f"60 grid points: n ≥ n*; n − n* in [{min(excess):.3g}, {max(excess):.3g}]",
                   {"min_excess": min(excess), "max_excess": max(excess)})


CHECKS = (product_density, lueker_sample_size_rearrangement, two_group_covering, theory_lueker_sample_size)
