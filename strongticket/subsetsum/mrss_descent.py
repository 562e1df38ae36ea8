"""``mrss_descent``: the plain best-flip/best-swap descent on the MRSS error, the baseline of ``mrss_search``.

From the empty subset, apply the best single flip (add or remove one candidate) or swap (one in, one
out) while the error (ℓ∞ or ℓ2) strictly drops. No randomness, any n; compiled with numba, parallel over
targets. It is what ``mrss_search`` is measured against (``rss bench --dims``,
``experiments/bench_mrss.py``): on the ℓ∞ error it stalls on the plateaus of the max norm (a flip that
lowers every coordinate but the largest does not count).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from strongticket.errors import InputError
from strongticket.subsetsum.method import SolveOptions, SolverOutput
from strongticket.subsetsum.problem import Status, SubsetSumProblem

_LINF = 0


@njit(cache=True, inline="always")
def _shift_cost(r, a, sa, b, sb, norm, bound):
    """Cost of r - sa·a - sb·b (ℓ∞, or squared ℓ2), stopping once it reaches ``bound``."""
    c = 0.0
    for k in range(r.shape[0]):
        v = r[k] - sa * a[k] - sb * b[k]
        if norm == _LINF:
            v = abs(v)
            if v > c:
                c = v
        else:
            c += v * v
        if c >= bound:
            return c
    return c


@njit(cache=True, parallel=True)
def descent_kernel(x, z, norm, out_sel, out_cost):
    """Best single flip or swap while the cost strictly drops, from the empty set, for every target.

    Parameters
    ----------
    x : float64 (T, n, d)
    z : float64 (T, d)
    norm : int
        0 for ℓ∞, 1 for ℓ2 (costs are then squared norms).
    out_sel : bool (T, n)
    out_cost : float64 (T,)
    """
    T, n, d = x.shape
    zero = np.zeros(d)
    for t in prange(T):
        xt = x[t]
        sel = np.zeros(n, dtype=np.bool_)
        r = z[t].copy()
        c = _shift_cost(r, zero, 0.0, zero, 0.0, norm, np.inf)
        while True:
            best = c
            bi = -1
            bj = -1
            for i in range(n):
                ci = _shift_cost(r, xt[i], -1.0 if sel[i] else 1.0, zero, 0.0, norm, best)
                if ci < best:
                    best, bi, bj = ci, i, -1
            for i in range(n):
                if not sel[i]:
                    continue
                for j in range(n):
                    if sel[j]:
                        continue
                    cij = _shift_cost(r, xt[i], -1.0, xt[j], 1.0, norm, best)
                    if cij < best:
                        best, bi, bj = cij, i, j
            if bi < 0:
                break
            s = -1.0 if sel[bi] else 1.0
            for k in range(d):
                r[k] -= s * xt[bi, k]
            sel[bi] = not sel[bi]
            if bj >= 0:
                for k in range(d):
                    r[k] -= xt[bj, k]
                sel[bj] = True
            c = best
        out_sel[t] = sel
        out_cost[t] = c


def mrss_descent(candidates: np.ndarray, targets: np.ndarray, norm: str = "linf") -> np.ndarray:
    """The descent's selection for every instance, bool (T, n).

    Parameters
    ----------
    candidates : float array, shape (T, n, d)
    targets : float array, shape (T, d)
    norm : {"linf", "l2"}

    Raises
    ------
    InputError
        Bad shapes, non-finite values or an unknown norm.
    """
    x = np.asarray(candidates)
    z = np.asarray(targets)
    if x.ndim != 3 or z.ndim != 2 or x.shape[0] != z.shape[0] or x.shape[2] != z.shape[1]:
        raise InputError(f"candidates must have shape (T, n, d) and targets (T, d), got {x.shape} and {z.shape}")
    if norm not in ("linf", "l2"):
        raise InputError(f"norm must be 'linf' or 'l2', got {norm!r}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        raise InputError("candidates and targets must be finite")
    sel = np.zeros(x.shape[:2], dtype=bool)
    descent_kernel(x, z, 0 if norm == "linf" else 1, sel, np.zeros(x.shape[0]))
    return sel


def solve_mrss_descent(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    """The registry form ``fn(problem, options) -> SolverOutput`` (no method-specific options)."""
    sel = mrss_descent(problem.candidates, problem.targets, problem.norm)
    return SolverOutput(selection=sel, status=np.full(problem.num_instances, Status.FEASIBLE, dtype=np.int8),
                        lower_bounds=np.zeros(problem.num_instances),
                        info={"lower_bound": "0: a heuristic proves no lower bound"})


__all__ = ["descent_kernel", "mrss_descent", "solve_mrss_descent"]
