"""Success probability of random subset sum against n, and the n it takes, against ε and against d.

Lueker (1998, Cor. 2.5) and da Cunha et al. (2022, "Revisiting the Random Subset Sum Problem") say
that n = O(log(1/ε)) i.i.d. uniform samples ε-approximate any target with high probability; the
product of two uniforms (Pensia et al. 2020, the 2-layer block) needs a constant factor more. For
d-dimensional targets Becchetti et al. (2022) prove n = O(d³ log(1/ε)(log(1/ε) + log d)), while
counting gives n >= d·log2(1/ε). These functions measure the real numbers.

One min-error solve per (law, n) gives every instance's best error, so the success probability
P(error <= ε) follows for every ε at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from strongticket.errors import InputError
from strongticket.subsetsum.api import solve
from strongticket.subsetsum.instances import random_problem
from strongticket.validation import check_generator_seed


@dataclass(frozen=True)
class SuccessCurve:
    """Pointwise success probabilities: ``success[i, k] = P(error <= eps[k])`` with ``n = ns[i]``.

    ``label`` names the law (``uniform``, ``product``, or ``normal d=3`` for MRSS); ``trials`` is
    the number of independent instances per n (each with its own target and candidates).
    """

    label: str
    d: int
    ns: np.ndarray
    eps: np.ndarray
    success: np.ndarray
    trials: int

    def required_n(self, confidence: float) -> np.ndarray:
        """Smallest measured n with success >= ``confidence``, per ε (NaN when none reaches it)."""
        out = np.full(len(self.eps), np.nan)
        for k in range(len(self.eps)):
            hit = np.nonzero(self.success[:, k] >= confidence)[0]
            if hit.size:
                out[k] = self.ns[hit[0]]
        return out


@dataclass(frozen=True)
class LinearFit:
    """``y ≈ intercept + slope·x`` by least squares, with the slope's 95 % interval and R²."""

    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    r2: float
    points: int


def fit_line(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Least-squares line through the finite (x, y) points (at least 2), with a t-based 95 % CI."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return LinearFit(float("nan"), float("nan"), (float("nan"), float("nan")), float("nan"), int(x.size))
    A = np.vstack([x, np.ones_like(x)]).T
    (slope, intercept), *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - (slope * x + intercept)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    if x.size > 2:
        from scipy import stats

        se = np.sqrt((resid**2).sum() / (x.size - 2) / ((x - x.mean()) ** 2).sum())
        half = stats.t.ppf(0.975, x.size - 2) * se
    else:
        half = float("nan")
    return LinearFit(float(slope), float(intercept), (float(slope - half), float(slope + half)), r2, int(x.size))


def success_curve(
    ns: Sequence[int],
    eps: Sequence[float],
    *,
    dist: str = "uniform",
    d: int | None = None,
    norm: str = "linf",
    trials: int = 2000,
    seed: int = 0,
    on_step: Callable[[int], None] | None = None,
) -> SuccessCurve:
    """Measure P(best error <= ε) for every n in ``ns`` and ε in ``eps``.

    Parameters
    ----------
    ns : sequence of int
        Numbers of candidates.
    eps : sequence of float
        Tolerances, each in (0, 1).
    dist : {"uniform", "product", "normal"}
        Candidate law; targets are U[-1, 1] (U[-1, 1]^d for MRSS).
    d : int, optional
        Target dimension for MRSS (``None``: scalar RSS).
    trials : int
        Independent instances per n.
    """
    eps_arr = np.asarray(sorted(eps, reverse=True), dtype=float)
    if eps_arr.size == 0 or not np.all((eps_arr > 0) & (eps_arr < 1)):  # NaN too
        raise InputError(f"eps values must be in (0, 1), got {list(eps)}")
    if not ns or min(ns) < 1:
        raise InputError(f"ns must be positive integers, got {list(ns)}")
    if trials < 1:
        raise InputError(f"trials must be >= 1, got {trials}")
    seed = check_generator_seed("seed", seed)
    success = np.zeros((len(ns), eps_arr.size))
    for i, n in enumerate(ns):
        problem = random_problem(trials, int(n), dist=dist, d=d, seed=seed + 7919 * int(n), norm=norm)
        errors = solve(problem, "auto").errors
        success[i] = (errors[:, None] <= eps_arr[None, :]).mean(axis=0)
        if on_step:
            on_step(int(n))
    label = dist if d is None else f"{dist} d={d}"
    return SuccessCurve(label=label, d=1 if d is None else int(d), ns=np.asarray(ns, dtype=int), eps=eps_arr,
                        success=success, trials=trials)


def fit_required_n_vs_log_eps(curve: SuccessCurve, confidence: float) -> LinearFit:
    """Fit required n against log2(1/ε): the slope is the samples needed per halving of ε."""
    return fit_line(np.log2(1.0 / curve.eps), curve.required_n(confidence))


def fit_required_n_vs_d(curves: Sequence[SuccessCurve], confidence: float, eps_index: int = 0) -> tuple[LinearFit, LinearFit]:
    """Fits of required n against d (linear) and of log n against log d (the exponent of d)."""
    ds = np.array([c.d for c in curves], float)
    req = np.array([c.required_n(confidence)[eps_index] for c in curves])
    return fit_line(ds, req), fit_line(np.log(ds), np.log(req))
