"""Greedy and 1/2-flip local search for subset sum: fast, no optimality proof (methods ``greedy``,
``local_search``; the MRSS methods in :mod:`strongticket.subsetsum.multidim` use the same kernels).

* **greedy**: start from the empty set and repeatedly add the candidate that most reduces the error;
  stop when no addition reduces it.
* **local search**: greedy, then steepest descent over the 1-flip (add or remove one candidate) and
  2-flip (add two, remove two, or swap one in and one out) neighbourhoods while the error strictly
  decreases; plus ``restarts`` descents from random subsets (seeded by ``options.seed``), keeping the best.

``sparsest`` (heuristic, never proven minimal): greedy stops at the first subset within ``eps``; if it
never gets there, local search minimises the error; a subset within ``eps`` is then thinned by dropping
candidates while the error stays within ``eps``.

The kernels are compiled with numba and parallel over targets; they work in any dimension d (scalar
RSS is d = 1), comparing ℓ∞ norms or squared ℓ2 norms of the residual ``z - sum``. ``docs/solvers.md``
records these heuristics at 10^3-10^6 times the optimal error for n >= 20: use them only where the
exact methods cannot go. The neighbourhoods are those of the measured "ls12" prototype (``docs/solvers.md``).
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

from strongticket.subsetsum.problem import Status, SubsetSumProblem
from strongticket.subsetsum.method import MethodOption, SolveOptions, SolverOutput, is_int_at_least

_LINF, _L2 = 0, 1
#: Targets per compiled call when a time limit is checked between calls.
_CHUNK = 1024


@njit(cache=True, inline="always")
def residual_cost(r, norm):
    """ℓ∞ norm (norm 0) or squared ℓ2 norm (norm 1) of the residual r (d,); compiled, for the MRSS searches."""
    c = 0.0
    if norm == 0:
        for k in range(r.shape[0]):
            a = abs(r[k])
            if a > c:
                c = a
    else:
        for k in range(r.shape[0]):
            c += r[k] * r[k]
    return c


@njit(cache=True, inline="always")
def _cost_step1(r, xi, si, norm, bound):
    """Cost of r - si·xi; stops early (returning a value >= bound) once it exceeds ``bound``."""
    c = 0.0
    if norm == 0:
        for k in range(r.shape[0]):
            a = abs(r[k] - si * xi[k])
            if a > c:
                c = a
                if c > bound:
                    return c
    else:
        for k in range(r.shape[0]):
            v = r[k] - si * xi[k]
            c += v * v
            if c > bound:
                return c
    return c


@njit(cache=True, inline="always")
def _cost_step2(r, xi, si, xj, sj, norm, bound):
    """Cost of r - si·xi - sj·xj, with the same early stop as :func:`_cost_step1`."""
    c = 0.0
    if norm == 0:
        for k in range(r.shape[0]):
            a = abs(r[k] - si * xi[k] - sj * xj[k])
            if a > c:
                c = a
                if c > bound:
                    return c
    else:
        for k in range(r.shape[0]):
            v = r[k] - si * xi[k] - sj * xj[k]
            c += v * v
            if c > bound:
                return c
    return c


@njit(cache=True)
def _greedy(x, sel, r, norm, stop):
    """Add the best candidate while it lowers the cost (and, if stop >= 0, until cost <= stop)."""
    n = x.shape[0]
    cur = residual_cost(r, norm)
    while not (stop >= 0.0 and cur <= stop):
        best = cur
        bi = -1
        for i in range(n):
            if not sel[i]:
                c = _cost_step1(r, x[i], 1.0, norm, best)
                if c < best:
                    best = c
                    bi = i
        if bi < 0:
            break
        sel[bi] = True
        r -= x[bi]
        cur = best
    return cur


@njit(cache=True)
def _descend(x, sel, r, norm, max_iter):
    """Steepest descent over 1-flips, then 2-flips, while the cost strictly decreases."""
    n = x.shape[0]
    cur = residual_cost(r, norm)
    for _ in range(max_iter):
        best = cur
        bi = -1
        for i in range(n):
            si = -1.0 if sel[i] else 1.0
            c = _cost_step1(r, x[i], si, norm, best)
            if c < best:
                best = c
                bi = i
        if bi >= 0:
            r -= (-1.0 if sel[bi] else 1.0) * x[bi]
            sel[bi] = not sel[bi]
            cur = best
            continue
        bj = -1
        for i in range(n):
            si = -1.0 if sel[i] else 1.0
            for j in range(i + 1, n):
                sj = -1.0 if sel[j] else 1.0
                c = _cost_step2(r, x[i], si, x[j], sj, norm, best)
                if c < best:
                    best = c
                    bi = i
                    bj = j
        if bi < 0:
            break
        r -= (-1.0 if sel[bi] else 1.0) * x[bi]
        r -= (-1.0 if sel[bj] else 1.0) * x[bj]
        sel[bi] = not sel[bi]
        sel[bj] = not sel[bj]
        cur = best
    return cur


@njit(cache=True)
def _thin(x, sel, r, norm, stop):
    """Drop candidates, the one leaving the smallest cost first, while the cost stays <= stop."""
    n = x.shape[0]
    cur = residual_cost(r, norm)
    while True:
        best = np.inf
        bi = -1
        for i in range(n):
            if sel[i]:
                c = _cost_step1(r, x[i], -1.0, norm, stop)
                if c <= stop and c < best:
                    best = c
                    bi = i
        if bi < 0:
            return cur
        sel[bi] = False
        r += x[bi]
        cur = best


@njit(cache=True, inline="always")
def _better(c1, k1, c2, k2, stop):
    """Is (cost c1, size k1) better than (c2, k2)? min_error (stop < 0): cost, then size;
    sparsest: within stop first, then size, then cost."""
    if stop >= 0.0:
        f1 = c1 <= stop
        f2 = c2 <= stop
        if f1 != f2:
            return f1
        if f1 and k1 != k2:
            return k1 < k2
        return c1 < c2 or (c1 == c2 and k1 < k2)
    return c1 < c2 or (c1 == c2 and k1 < k2)


@njit(cache=True, parallel=True)
def heuristic_kernel(x, z, norm, local, stop, starts, max_iter, out):
    """Greedy (``local`` False) or greedy + local search + random restarts, for every target.

    Parameters
    ----------
    x : float64 (T, n, d)
    z : float64 (T, d)
    norm : int
        0 for ℓ∞, 1 for ℓ2 (costs are then squared norms).
    local : bool
        Run the 1/2-flip descent after greedy and from each random start.
    stop : float
        -1 for min_error; else the cost a subset must reach (sparsest: eps, or eps² for ℓ2).
    starts : bool (R, T, n)
        Random initial subsets of the R restarts.
    max_iter : int
        Cap on descent steps per start.
    out : bool (T, n)
        Receives the selections.
    """
    T, n, d = x.shape
    R = starts.shape[0]
    for t in prange(T):
        xt = x[t]
        sel = np.zeros(n, dtype=np.bool_)
        r = z[t].copy()
        c = _greedy(xt, sel, r, norm, stop)
        if local and not (stop >= 0.0 and c <= stop):
            c = _descend(xt, sel, r, norm, max_iter)
        if stop >= 0.0 and c <= stop:
            c = _thin(xt, sel, r, norm, stop)
        best_sel = sel.copy()
        best_c = c
        best_k = sel.sum()
        for q in range(R):
            s2 = starts[q, t].copy()
            r2 = z[t].copy()
            for i in range(n):
                if s2[i]:
                    r2 -= xt[i]
            c2 = _descend(xt, s2, r2, norm, max_iter)
            if stop >= 0.0 and c2 <= stop:
                c2 = _thin(xt, s2, r2, norm, stop)
            k2 = s2.sum()
            if _better(c2, k2, best_c, best_k, stop):
                best_sel[:] = s2
                best_c = c2
                best_k = k2
        out[t] = best_sel


_MAX_ITER = MethodOption("max_iter", "descent steps per start (default 50·n)", "an integer >= 0",
                         is_int_at_least(0))
#: Method-specific options of the greedy methods and of the local-search methods (1-D and MRSS).
GREEDY_OPTIONS = (_MAX_ITER,)
LOCAL_SEARCH_OPTIONS = (
    MethodOption("restarts", "random starting subsets per target, seeded by ``seed`` (default 0)",
                 "an integer >= 0", is_int_at_least(0)),
    _MAX_ITER,
)


def run_heuristic(problem: SubsetSumProblem, options: SolveOptions, *, local: bool, name: str) -> SolverOutput:
    """Greedy or local search on every instance of ``problem`` (scalar or MRSS).

    Extra options: ``restarts`` (local search only, default 0: random starts per target, drawn from
    ``np.random.default_rng(options.seed)``) and ``max_iter`` (descent steps per start, default
    ``50·n``). With ``options.time_limit`` the targets are processed in chunks and, once the time is
    spent, the remaining targets get only the greedy pass and status TIMEOUT.

    Returns
    -------
    SolverOutput
        ``selection (T, n)`` bool, ``status (T,)``: FEASIBLE (TIMEOUT for targets cut short), no
        lower bounds (the callers add the trivial 0 for MRSS).
    """
    restarts = int(options.extra.get("restarts", 0)) if local else 0
    n = problem.num_candidates
    max_iter = int(options.extra.get("max_iter", 50 * max(n, 1)))
    T = problem.num_instances
    x = problem.candidates if problem.multidim else problem.candidates[:, :, None]
    z = problem.targets if problem.multidim else problem.targets[:, None]
    x = np.ascontiguousarray(x, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    norm = _L2 if (problem.multidim and problem.norm == "l2") else _LINF
    stop = -1.0
    if options.objective == "sparsest":
        stop = float(options.eps) ** 2 if norm == _L2 else float(options.eps)
    rng = np.random.default_rng(options.seed)
    starts = rng.random((restarts, T, n)) < 0.5
    selection = np.zeros((T, n), dtype=bool)
    status = np.full(T, Status.FEASIBLE, dtype=np.int8)
    if T == 0 or n == 0:
        return SolverOutput(selection=selection, status=status, info={"restarts": restarts})
    deadline = None if options.time_limit is None else time.perf_counter() + options.time_limit
    chunk = T if deadline is None else _CHUNK
    done = 0
    while done < T and (deadline is None or time.perf_counter() < deadline):
        sl = slice(done, min(T, done + chunk))
        heuristic_kernel(x[sl], z[sl], norm, local, stop, np.ascontiguousarray(starts[:, sl]),
                         max_iter, selection[sl])
        done = sl.stop
    if done < T:
        rest = slice(done, T)
        heuristic_kernel(x[rest], z[rest], norm, False, stop, np.ascontiguousarray(starts[:0, rest]), max_iter, selection[rest])
        status[rest] = Status.TIMEOUT
    info = {"restarts": restarts, "timed_out": int(T - done)}
    return SolverOutput(selection=selection, status=status, info=info)


def solve_greedy(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    return run_heuristic(problem, options, local=False, name="greedy")


def solve_local_search(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    return run_heuristic(problem, options, local=True, name="local_search")
