"""Becchetti, da Cunha, Clementi, d'Amore, Lesfari, Natale, Trevisan, "On the Multidimensional
Random Subset Sum Problem" (arXiv 2207.13944): the counting lower bound for MRSS (item
D23) and its gap to the d³ upper bound (the slow check of item C15 measures where reality lies).
"""

from __future__ import annotations

import math

import numpy as np
import sympy as sp

from proofs_check.core import FAILED, NUMERIC, Outcome, Proof, check

PAPER = "Becchetti et al. 2022 (MRSS)"


@check(item="D23", paper=PAPER)
def mrss_counting_bound(seed: int) -> Outcome:
    """If the 2^n subset sums of n vectors ε-cover [−1, 1]^d in ℓ∞ then n ≥ d·log2(1/ε); the ratio of
    the upper bound C·d³·L·(L + ln d) (L = ln(1/ε)) to it is C·ln2·d²·(L + ln d): polynomial in d.

    Becchetti et al. (MRSS) lower bound by counting. Proof: each ℓ∞ ball is a cube of side
    2ε, so 2^n(2ε)^d ≥ 2^d; sympy reduces log2 of the ratio to n − d·log2(1/ε) and simplifies the gap.
    """
    n, d, eps, C = sp.symbols("n d epsilon C", positive=True)
    L = sp.log(1 / eps)
    pr = Proof()
    pr.zero(sp.expand_log(sp.log(2 ** n * (2 * eps) ** d / 2 ** d, 2), force=True)
            - sp.expand_log(n - d * sp.log(1 / eps, 2), force=True), "log2(2^n(2ε)^d/2^d) = n − d log2(1/ε)")
    lower = d * L / sp.log(2)
    pr.zero(sp.simplify(C * d ** 3 * L * (L + sp.log(d)) / lower - C * sp.log(2) * d ** 2 * (L + sp.log(d))),
            "upper/lower = C ln2 d²(L + ln d)")
    return pr.outcome("2^n cubes of side 2ε cover side 2 ⇔ n ≥ d log2(1/ε); gap C ln2 d²(L + ln d)")


@check(item="D23", paper=PAPER)
def mrss_below_counting_bound_never_covers(seed: int) -> Outcome:
    """For n < d·log2(1/ε) Gaussian vectors, some point of a grid of [−1, 1]^d with spacing 2.1ε is
    farther than ε (ℓ∞) from every subset sum: the grid has more points than there are sums, and one
    ℓ∞ ball of radius ε holds at most one grid point (pigeonhole, as in mrss_counting_bound).

    50 samples for each (d, ε) ∈ {(2, 0.1), (3, 0.2)}; distances in float64 with a margin of 0.05ε,
    far above rounding.
    """
    rng = np.random.default_rng(seed)
    margins = []
    for d, eps in ((2, 0.1), (3, 0.2)):
        n = math.ceil(d * math.log2(1 / eps)) - 1
        axis = np.arange(-1, 1 + 1e-12, 2.1 * eps)
        grid = np.stack(np.meshgrid(*([axis] * d)), -1).reshape(-1, d)
        if len(grid) <= 2 ** n:
            return Outcome(FAILED, f"grid of {len(grid)} points not larger than 2^{n}: the pigeonhole set-up is wrong")
        bits = (np.arange(2 ** n)[:, None] >> np.arange(n)) & 1
        for _ in range(50):
            sums = bits @ rng.standard_normal((n, d))
            dist = np.abs(grid[:, None, :] - sums[None]).max(-1).min(-1)
            worst = float(dist.max())
            if worst <= eps * 1.05:
                return Outcome(FAILED, f"d={d}, ε={eps}: {n} vectors cover the grid within {worst:.4g}")
            margins.append(worst / eps)
    return Outcome(NUMERIC, f"100 samples below the bound: none covers the grid; worst distance / ε ≥ {min(margins):.3g}",
                   {"min_worst_over_eps": min(margins)})


CHECKS = (mrss_counting_bound, mrss_below_counting_bound_never_covers)
