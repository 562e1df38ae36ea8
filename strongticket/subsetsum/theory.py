"""Sample-size bounds of the random subset-sum theorems, as functions of ε, δ and the shapes.

Sources (each construction's theorem and how the code uses it: ``docs/constructions.md``):

* Lueker 1998, "Exponentially small bounds on the expected optimum of the partition and subset sum
  problems", Random Structures & Algorithms 12:51-62, Corollary 2.5 (RSS tail bound);
* Pensia, Rajput, Nagle, Vishwakarma, Papailiopoulos 2020, "Optimal Lottery Tickets via SubsetSum:
  Logarithmic Over-Parameterization is Sufficient", arXiv 2006.07990, Theorem 1 (widths);
* Becchetti, da Cunha, Clementi, d'Amore, Lesfari, Natale, Trevisan 2022, "On the Multidimensional
  Random Subset Sum Problem", arXiv 2207.13944 (MRSS sample size);
* Malach, Yehudai, Shalev-Shwartz, Shamir 2020, "Proving the Lottery Ticket Hypothesis: Pruning is All
  You Need", arXiv 2002.00585 ("find one" baseline: ~ln(1/δ)/ε samples per weight by the count of
  :func:`malach_samples_per_weight`, ~1/ε² as quoted in the literature).

**The constants are unknown.** None of these papers states a numeric value for its universal
constant C (Lueker's Corollary 2.5 included), so every function takes ``C`` as a parameter
(default 1). The results are *shapes*: they scale correctly in ε, δ, d and the network sizes, and must
be calibrated against measurements before being read as absolute numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from strongticket.validation import check_int, check_positive, check_unit_open


def lueker_failure_bound(n: int, eps: float, C: float = 1.0) -> float:
    """Upper bound on P(some x in [-1/2, 1/2] has no subset sum within ``eps``), n samples U[-1, 1].

    Lueker 1998, Corollary 2.5: for ``eps >= exp(-n / (2C))`` the failure probability is at most
    ``exp(-(n/2 - C·log(1/eps))² / (2n))``. Outside that range the corollary says nothing and this
    function returns the trivial bound 1.0, so the result is non-increasing in ``n``.

    Parameters
    ----------
    n : int
        Number of samples (>= 1).
    eps : float
        Approximation error, in (0, 1).
    C : float
        Lueker's universal constant (> 0); its value is not known, hence a parameter.

    Returns
    -------
    float
        The bound, in (0, 1].
    """
    n = check_int("n", n)
    eps = check_unit_open("eps", eps)
    C = check_positive("C", C)
    margin = n / 2.0 - C * math.log(1.0 / eps)
    if margin <= 0.0:
        return 1.0
    return math.exp(-(margin * margin) / (2.0 * n))


def lueker_sample_size(eps: float, delta: float, C: float = 1.0) -> int:
    """Smallest n for which :func:`lueker_failure_bound` ``(n, eps, C) <= delta``.

    Rearranging Lueker 1998, Corollary 2.5: the bound is <= δ iff
    ``n >= 2C·log(1/ε) + 2·sqrt(2n·log(1/δ))``. With ``u = sqrt(n)`` this is the quadratic
    ``u² - 2·sqrt(2L)·u - 2a >= 0`` (``L = log(1/δ)``, ``a = C·log(1/ε)``), whose positive root gives
    ``n = ceil((sqrt(2L) + sqrt(2L + 2a))²)``; the result is then checked against the bound itself so
    that floating rounding never returns a size one too small. C is unknown (see the module docstring).

    Returns
    -------
    int
        Samples needed for every x in [-1/2, 1/2] to be ε-approximable with probability >= 1 - δ.
    """
    eps = check_unit_open("eps", eps)
    delta = check_unit_open("delta", delta)
    C = check_positive("C", C)
    L = math.log(1.0 / delta)
    a = C * math.log(1.0 / eps)
    root = math.sqrt(2.0 * L) + math.sqrt(2.0 * L + 2.0 * a)
    n = max(1, math.ceil(root * root))
    while lueker_failure_bound(n, eps, C) > delta:
        n += 1
    while n > 1 and lueker_failure_bound(n - 1, eps, C) <= delta:
        n -= 1
    return n


def rss_sample_size(eps: float, delta: float, num_instances: int = 1, C: float = 1.0,
                    interval: float = 1.0) -> int:
    """Samples per RSS instance so that ``num_instances`` instances all succeed with probability >= 1 - δ.

    Built on :func:`lueker_sample_size` (Lueker 1998, Corollary 2.5), which covers [-1/2, 1/2]:

    * union bound: each instance may fail with probability ``δ / num_instances`` (the
      log(d_in·d_out·l/δ) factor of Pensia et al. 2020, Theorem 1);
    * covering [-interval, interval]: ``k = ceil(2·interval)`` independent groups, each
      ``ε/k``-good on [-1/2, 1/2] with failure ``δ'/k``, approximate ``z = k·(z/k)`` (for interval 1:
      two groups of ε/2, i.e. "doubling n", as Pensia et al. 2020 do to cover [-1, 1]).

    Returns
    -------
    int
        ``k · lueker_sample_size(ε/k, δ/(num_instances·k), C)``.
    """
    eps = check_unit_open("eps", eps)
    delta = check_unit_open("delta", delta)
    num_instances = check_int("num_instances", num_instances)
    C = check_positive("C", C)
    interval = check_positive("interval", interval)
    groups = max(1, math.ceil(2.0 * interval - 1e-12))
    return groups * lueker_sample_size(eps / groups, delta / (num_instances * groups), C)


@dataclass(frozen=True)
class PensiaWidth:
    """Width of one random 2-layer block in Pensia et al. 2020's construction.

    Attributes
    ----------
    samples_per_weight : int
        n, the candidates of one RSS instance (one sign of the ± split of Pensia et al. 2020's 2-layer block):
        ``ceil(C·log2(d_in·d_out·L / min(ε, δ)))``.
    hidden_width : int
        ``2·n·d_in``: every input feeds 2n univariate hidden ReLUs (n for σ(x), n for σ(-x)), shared by
        all ``d_out`` outputs ("m = 2n·d_in").
    """

    samples_per_weight: int
    hidden_width: int

    @property
    def samples_per_weight_both_signs(self) -> int:
        """2n: the hidden neurons one input contributes (both signs of the ± split)."""
        return 2 * self.samples_per_weight


def pensia_width(d_in: int, d_out: int, num_layers: int, eps: float, delta: float,
                 C: float = 1.0) -> PensiaWidth:
    """Samples per weight and hidden width per target layer, Pensia et al. 2020, Theorem 1 (form [R]).

    The random layer ``M_{2i-1}`` has ``C·d_{i-1}·log(d_{i-1}·d_i·L / min(ε, δ))`` rows, realised as
    ``2n·d_in`` univariate hidden neurons with ``n = ceil(C·log2(d_in·d_out·L / min(ε, δ)))`` samples per
    weight and sign (the log2 follows the paper's experiment, ``n = c·log2(1/ε)``; see
    ``docs/constructions.md``). The universal constant C is **not known** in the literature (the theorem
    is recalled, not quoted): the result is a shape, to be calibrated against measured success rates.

    Parameters
    ----------
    d_in, d_out : int
        The target layer's input and output widths (>= 1).
    num_layers : int
        Depth L of the target network (the union bound runs over all its weights).
    eps, delta : float
        Network error and failure probability, in (0, 1).
    C : float
        The unknown constant (> 0).

    Returns
    -------
    PensiaWidth
        ``samples_per_weight`` n and ``hidden_width`` 2n·d_in.
    """
    d_in = check_int("d_in", d_in)
    d_out = check_int("d_out", d_out)
    num_layers = check_int("num_layers", num_layers)
    eps = check_unit_open("eps", eps)
    delta = check_unit_open("delta", delta)
    C = check_positive("C", C)
    per_weight = max(1, math.ceil(C * math.log2(d_in * d_out * num_layers / min(eps, delta)) - 1e-12))
    return PensiaWidth(samples_per_weight=per_weight, hidden_width=2 * per_weight * d_in)


def pensia_per_weight_eps(eps: float, num_layers: int, d_in: int, d_out: int) -> float:
    """Per-weight error ε' = ε / (2·L·sqrt(d_in·d_out)) that keeps a depth-L network within ε.

    Derived for Pensia et al. 2020's spectral-norm setting (``docs/constructions.md``): with every
    layer's operator error η_i <= ε'·sqrt(d_in·d_out) = ε/(2L), the output error is
    <= exp(ε/2) - 1 <= ε for ε <= 1. Use the largest layer's ``d_in·d_out`` for a whole network.
    """
    eps = check_unit_open("eps", eps)
    num_layers = check_int("num_layers", num_layers)
    d_in = check_int("d_in", d_in)
    d_out = check_int("d_out", d_out)
    return eps / (2.0 * num_layers * math.sqrt(d_in * d_out))


def mrss_sample_size_shape(d: int, eps: float, C: float = 1.0) -> float:
    """``C·d³·log(1/ε)·(log(1/ε) + log d)``: the MRSS upper bound's shape.

    Becchetti et al. 2022 (arXiv 2207.13944, abstract): n = O(d³·log(1/ε)·(log(1/ε) + log d)) i.i.d.
    d-dimensional (Gaussian) samples approximate every z in [-1, 1]^d within ε with high probability.
    Only the shape is known to us; the constant C is not, so the value is a float, not a sample size.
    """
    d = check_int("d", d)
    eps = check_unit_open("eps", eps)
    C = check_positive("C", C)
    log_inv = math.log(1.0 / eps)
    return C * d ** 3 * log_inv * (log_inv + math.log(d))


def counting_lower_bound(eps: float, d: int = 1) -> float:
    """``d·log2(1/ε)``: fewer samples cannot ε-approximate every point of [-1, 1]^d (ℓ∞).

    Counting argument (after Pensia et al. 2020's lower bound):
    the 2^n subset sums are the centres of ℓ∞ balls of side 2ε, which must cover the cube of side 2,
    i.e. (1/ε)^d cells, so 2^n >= ε^-d. Holds for every sample law and is exact (no unknown constant).
    """
    eps = check_unit_open("eps", eps)
    d = check_int("d", d)
    return d * math.log2(1.0 / eps)


#: Lower bound of the density of a product u·v of two U[-1, 1] draws on [-1/2, 1/2]: ½·ln 2
#: (the density of the product is ½·ln(1/|z|)).
PRODUCT_DENSITY_HALF = 0.5 * math.log(2.0)


def malach_samples_per_weight(eps: float, delta: float = 0.01, density: float = PRODUCT_DENSITY_HALF) -> int:
    """Pool size for the "find one" baseline: samples per target weight so that, with probability at
    least 1 - δ, one single random product lands within ``eps`` of the weight.

    Malach et al. 2020 (arXiv 2002.00585) approximate each target weight by
    one random product v·u. Where the product's density is at least ``density`` = c, one draw lands in
    [w - ε, w + ε] with probability p >= 2ε·c, so n draws all miss with probability (1 - p)^n and

        n = ceil(ln(1/δ) / -ln(1 - p))  ≈  ln(1/δ) / (2ε·c),

    i.e. ~1/ε per weight for a fixed δ (derived here). The literature quotes ~1/ε² sampled neurons per
    weight (Orseau et al. 2020's summary of Malach et al.; :func:`malach_samples_per_weight_literature`);
    the papers' full texts were not available to reconcile the two. Both are far above the
    O(log(1/ε)) samples of subset sums.

    Parameters
    ----------
    eps, delta : float
        Per-weight error and failure probability, in (0, 1).
    density : float
        Lower bound c on the density of one product near the weight (> 0); default ½·ln 2, the
        U[-1, 1]·U[-1, 1] product on [-1/2, 1/2].

    Returns
    -------
    int
        The pool size n (>= 1).
    """
    eps = check_unit_open("eps", eps)
    delta = check_unit_open("delta", delta)
    density = check_positive("density", density)
    p = min(1.0, 2.0 * eps * density)
    if p >= 1.0:
        return 1
    return max(1, math.ceil(math.log(1.0 / delta) / -math.log1p(-p) * (1.0 - 1e-12)))


def malach_samples_per_weight_literature(eps: float, C: float = 1.0) -> float:
    """``C / ε²``: the per-weight count quoted for Malach et al. 2020 (shape only, C unknown).

    As quoted in Orseau, Hutter, Rivasplata 2020 ("Logarithmic Pruning is All You Need"), summarising
    Malach et al. 2020.
    """
    eps = check_unit_open("eps", eps)
    C = check_positive("C", C)
    return C / (eps * eps)
