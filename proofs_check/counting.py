"""Counting lower bounds (Pensia et al. 2020's lower-bound argument; item D23): with n candidates there are
at most 2^n subset sums (2^N tickets with N prunable weights), so ε-covering a set needs at least its
covering number of them.
"""

from __future__ import annotations

import bisect
import math
from fractions import Fraction
from itertools import combinations

import numpy as np
import sympy as sp

from proofs_check.core import FAILED, NUMERIC, Outcome, Proof, check

PAPER = "Pensia et al. 2020 (lower bound)"


@check(item="D23", paper=PAPER)
def rss_counting_bound(seed: int) -> Outcome:
    """If the 2^n subset sums of n reals ε-cover [−1, 1] then n ≥ log2(1/ε).

    Counting (Pensia et al. 2020, lower bound): each sum covers an interval of length
    2ε, so 2^n·2ε ≥ 2. Proof: sympy shows log2(2^n·2ε/2) = n − log2(1/ε), and log2 is increasing.
    """
    n, eps = sp.symbols("n epsilon", positive=True)
    pr = Proof()
    pr.zero(sp.expand_log(sp.log(2 ** n * 2 * eps / 2, 2), force=True) - (n - sp.log(1 / eps, 2)),
            "log2(2^n·2ε/2) = n − log2(1/ε)")
    return pr.outcome("2^n intervals of length 2ε cover length 2 ⇒ 2^n·2ε ≥ 2 ⇔ n ≥ log2(1/ε)")


@check(item="D23", paper=PAPER)
def network_counting_bound(seed: int) -> Outcome:
    """A random network with N prunable weights whose tickets ε-approximate (sup over the unit ball)
    every linear map W ∈ R^{d×d} with ‖W‖₂ ≤ 1 has N ≥ d²·log2(1/(2ε)).

    Pensia et al. (2020) lower-bound argument, made concrete by us: targets that share a ticket are
    within 2ε in operator norm, so 2^N balls of radius 2ε cover the unit ball of R^{d×d}; volumes
    scale as r^{d²}, so 2^N·(2ε)^{d²} ≥ 1. Proof: sympy reduces the logarithm to N − d²·log2(1/(2ε)).
    """
    N, d, eps = sp.symbols("N d epsilon", positive=True)
    pr = Proof()
    pr.zero(sp.expand_log(sp.log(2 ** N * (2 * eps) ** (d ** 2), 2), force=True)
            - sp.expand_log(N - d ** 2 * sp.log(1 / (2 * eps), 2), force=True),
            "log2(2^N (2ε)^{d²}) = N − d² log2(1/(2ε))")
    return pr.outcome("volume argument: 2^N(2ε)^{d²} ≥ 1 ⇔ N ≥ d² log2(1/(2ε))")


def covering_radius(sums: list[Fraction], lo: Fraction, hi: Fraction) -> tuple[Fraction, Fraction]:
    """Exact max over z ∈ [lo, hi] of the distance to the nearest of ``sums``, and a worst z."""
    s = sorted(set(sums))

    def dist(z: Fraction) -> Fraction:
        i = bisect.bisect_left(s, z)
        return min(abs(z - s[j]) for j in (i - 1, i) if 0 <= j < len(s))

    # The distance is a sawtooth with peaks at midpoints of consecutive sums; on [lo, hi] its max is
    # at an interior midpoint or at an end point.
    cands = [lo, hi] + [(a + b) / 2 for a, b in zip(s, s[1:]) if lo <= (a + b) / 2 <= hi]
    return max(((dist(z), z) for z in cands), key=lambda t: t[0])


@check(item="D23", paper=PAPER)
def rss_below_counting_bound_never_covers(seed: int) -> Outcome:
    """Every sample of n < log2(1/ε) reals leaves some z ∈ [−1, 1] farther than ε from all subset
    sums (rss_counting_bound, seen on samples); strongticket's exact solver
    (``strongticket.subsetsum.solve(method="exact")``) must report exactly that distance at the worst z (it
    cannot do better).

    Exact rationals: 200 samples, ε ∈ {1/10, 1/30, 1/100}, n = ⌈log2(1/ε)⌉ − 1, entries U[−1, 1]
    rounded to multiples of 1/1000.
    """
    rng = np.random.default_rng(seed)
    solve = _solver()
    worst_z, radii, checked_solver = [], [], 0
    for trial in range(200):
        eps = Fraction(1, int(rng.choice([10, 30, 100])))
        n = math.ceil(math.log2(1 / eps)) - 1
        xs = [Fraction(int(v), 1000) for v in rng.integers(-1000, 1001, size=n)]
        sums = [sum(c, Fraction(0)) for r in range(n + 1) for c in combinations(xs, r)]
        rad, z = covering_radius(sums, Fraction(-1), Fraction(1))
        if rad <= eps:
            return Outcome(FAILED, f"{n} numbers {xs} cover [−1, 1] within ε = {eps}: counting bound violated")
        radii.append(float(rad / eps))
        worst_z.append((xs, z, rad))
    for xs, z, rad in worst_z[:50]:
        res = solve(np.array([float(z)]), np.array([[float(v) for v in xs]]))
        if abs(res - float(rad)) > 1e-9:
            return Outcome(FAILED, f"exact solver error {res:.6g} ≠ exact distance {float(rad):.6g} at z = {z}")
        checked_solver += 1
    extra = f"; exact solver matched the worst-z distance on {checked_solver} samples"
    return Outcome(NUMERIC, f"200 samples below the bound: none covers; covering radius / ε ≥ {min(radii):.3g}{extra}",
                   {"min_radius_over_eps": min(radii), "solver_checked": checked_solver})


def _solver():  # noqa: ANN202
    """``(targets, candidates) -> error of the first instance`` with strongticket's exact solver.

    Imported here, not at the top, so that a broken solver module fails this check (``run_check`` reports the
    exception as ``failed``) instead of every check; a solver crash is never turned into a skip.
    """
    from strongticket.subsetsum import SubsetSumProblem, solve

    def run(targets: np.ndarray, cands: np.ndarray) -> float:
        return float(solve(SubsetSumProblem(targets=targets, candidates=cands), method="exact").errors[0])

    return run


@check(item="D23", paper=f"{PAPER} vs strongticket.subsetsum.theory")
def theory_counting_lower_bound(seed: int) -> Outcome:
    """``theory.counting_lower_bound(eps, d)`` lies between d·log2(1/(2ε)) and ⌈d·log2(1/ε)⌉: it is a
    valid lower bound (not above what counting proves) and not weaker than the packing form.
    """
    from strongticket.subsetsum.theory import counting_lower_bound as fn
    for eps in (0.5, 0.1, 0.01, 1e-3, 1e-6):
        for d in (1, 2, 3, 9, 25):
            got = float(fn(eps, d))
            lo, hi = d * math.log2(1 / (2 * eps)), math.ceil(d * math.log2(1 / eps) - 1e-12)
            if got > hi + 1e-9:
                return Outcome(FAILED, f"counting_lower_bound({eps}, {d}) = {got:g} exceeds what counting proves "
                                       f"(⌈d log2(1/ε)⌉ = {hi})")
            if got < lo - 1e-9:
                return Outcome(FAILED, f"counting_lower_bound({eps}, {d}) = {got:g} is below d log2(1/(2ε)) = {lo:.4g}")
    return Outcome(NUMERIC, "25 grid points within [d log2(1/(2ε)), ⌈d log2(1/ε)⌉]")


CHECKS = (rss_counting_bound, network_counting_bound, rss_below_counting_bound_never_covers,
          theory_counting_lower_bound)
