"""Multidimensional random subset sum (MRSS): exact meet-in-the-middle and heuristics.

MRSS (Becchetti et al. 2022, "On the Multidimensional Random Subset Sum Problem", arXiv 2207.13944):
approximate a target z in R^d by a subset sum of n vectors, error in ℓ∞ or ℓ2. Methods:

* ``mrss_exact`` (exact, ``min_error`` and ``sparsest``): split the candidates into halves, enumerate
  each half's 2^(n/2) subset sums, and pair them. Both lists are built already sorted by their first
  coordinate (each candidate merges the list with itself shifted: O(2^(n/2)·d), no sort). The smaller
  half's sums are visited in order of ``z0 - L0``, a pointer into the larger half moves monotonically to
  the nearest first coordinate, and the scan fans out from it only while the first-coordinate gap is
  within the best error so far (any norm is at least the gap of one coordinate), so it is exact and,
  for small d, visits a handful of pairs per half-sum. This is the sorted projection index of a
  nearest-neighbour search (a k-d tree prototype (``docs/solvers.md``) was slower; the projection sweep is compiled, needs no
  tree build and was several times faster at d = 2). From d = 3 (and n >= 16) min_error pairs the
  halves through a grid on the first two coordinates instead, with cells as wide as a radius guessed
  from the sums' spread and grown until it holds the optimum (18x faster than the sweep at d = 4,
  n = 32; the extra option ``index="sweep"|"grid"|"auto"`` forces one). ``sparsest`` groups both halves by subset size and,
  for k = 0, 1, ..., pairs sizes (a, k - a) with an ε window on the first coordinate: the ε-decision
  query, measured much cheaper than full minimisation. Ties go to the smaller subset,
  then the smaller bitmask (:mod:`strongticket.subsetsum.keys`).
* ``mrss_greedy`` and ``mrss_local_search``: the kernels of :mod:`strongticket.subsetsum.heuristics` with
  vector residuals. They prove nothing: their lower bound is the trivial 0.

Exact search is practical for d <= 4 and n <= 32 (measured: ``docs/solvers.md``); beyond, use the heuristics or
``mrss_milp`` with a time limit and compare with the counting lower bound n >= d·log2(1/ε)
(:func:`strongticket.subsetsum.theory.counting_lower_bound`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum.heuristics import run_heuristic
from strongticket.subsetsum.keys import masks_to_selection
from strongticket.subsetsum.problem import Status, SubsetSumProblem, approximation_errors, selection_sums
from strongticket.subsetsum.method import MethodOption, SolveOptions, SolverOutput

#: Largest n the exact MRSS solver accepts, and the largest d·2^ceil(n/2) (floats per half-sum list).
MRSS_EXACT_MAX_N = 34
MRSS_EXACT_MAX_CELLS = 1 << 23
#: Above d = 4 the first-coordinate window prunes little and the scan nears all 2^n pairs: refuse
#: when d·2^n exceeds MRSS_EXACT_MAX_PAIR_WORK (d = 16 allows n <= 26; measured here: d = 16, n = 24
#: ~80 ms/target; d = 16, n = 32 was measured at ~10 s/target).
MRSS_EXACT_SWEEP_MAX_D = 4
MRSS_EXACT_MAX_PAIR_WORK = 1 << 30
_PC_SHIFT = 56
_MASK = (1 << _PC_SHIFT) - 1
# Scan windows are widened by a few ulps so that floating rounding never hides a tie.
_WIDEN = 1.0 + 1e-12
# Grid index (d >= 3, n >= 16 by default): cell side over the radius, so that floor() rounding never
# puts two points within the radius two cells apart; the largest cells-per-side; "no pair yet".
_GRID_MIN_D = 3
_GRID_MIN_N = 16
_GRID_MARGIN = 1.0 + 1e-6
_GRID_MAX_SIDE = float(1 << 26)
_NO_KEY = np.iinfo(np.int64).max


@njit(cache=True)
def _sorted_half(x, lo, h):
    """All 2^h subset sums of candidates lo..lo+h-1 of x (n, d), sorted by the first coordinate.

    Returns ``(vals (2^h, d), keys (2^h,))`` with ``key = popcount << 56 | global bitmask``.
    """
    d = x.shape[1]
    m = 1 << h
    vals = np.zeros((m, d))
    keys = np.zeros(m, dtype=np.int64)
    bvals = np.zeros((m, d))
    bkeys = np.zeros(m, dtype=np.int64)
    size = 1
    for j in range(h):
        xj = x[lo + j]
        add = (np.int64(1) << _PC_SHIFT) | (np.int64(1) << (lo + j))
        a = 0
        b = 0
        o = 0
        # merge vals[:size] with vals[:size] + xj, both sorted by coordinate 0
        while a < size and b < size:
            vb0 = vals[b, 0] + xj[0]
            if vals[a, 0] <= vb0:
                bvals[o] = vals[a]
                bkeys[o] = keys[a]
                a += 1
            else:
                for k in range(d):
                    bvals[o, k] = vals[b, k] + xj[k]
                bkeys[o] = keys[b] + add
                b += 1
            o += 1
        while a < size:
            bvals[o] = vals[a]
            bkeys[o] = keys[a]
            a += 1
            o += 1
        while b < size:
            for k in range(d):
                bvals[o, k] = vals[b, k] + xj[k]
            bkeys[o] = keys[b] + add
            b += 1
            o += 1
        size *= 2
        vals, bvals = bvals, vals
        keys, bkeys = bkeys, keys
    return vals, keys


@njit(cache=True, inline="always")
def _pair_cost(q, rv, norm, bound):
    """Cost of q - rv (ℓ∞, or squared ℓ2), stopping early once above ``bound``."""
    c = 0.0
    if norm == 0:
        for k in range(q.shape[0]):
            a = abs(q[k] - rv[k])
            if a > c:
                c = a
                if c > bound:
                    return c
    else:
        for k in range(q.shape[0]):
            v = q[k] - rv[k]
            c += v * v
            if c > bound:
                return c
    return c


@njit(cache=True)
def _min_error_one(z, Lv, Lk, Rv, Rk, norm):
    """Key of the best pair L_i + R_j for target z; visits pairs within the first-coordinate bound."""
    d = z.shape[0]
    q = np.empty(d)
    best = 0.0
    for k in range(d):
        best = max(best, abs(z[k])) if norm == 0 else best + z[k] * z[k]
    best_key = np.int64(0)
    gap = (best if norm == 0 else math.sqrt(best)) * _WIDEN
    m2 = Rv.shape[0]
    p = 0
    for i in range(Lv.shape[0] - 1, -1, -1):  # q0 = z0 - L0 increasing
        for k in range(d):
            q[k] = z[k] - Lv[i, k]
        q0 = q[0]
        while p < m2 and Rv[p, 0] < q0:
            p += 1
        lk = Lk[i]
        j = p
        while j < m2 and Rv[j, 0] - q0 <= gap:
            c = _pair_cost(q, Rv[j], norm, best)
            if c < best or (c == best and lk + Rk[j] < best_key):
                best = c
                best_key = lk + Rk[j]
                gap = (best if norm == 0 else math.sqrt(best)) * _WIDEN
            j += 1
        j = p - 1
        while j >= 0 and q0 - Rv[j, 0] <= gap:
            c = _pair_cost(q, Rv[j], norm, best)
            if c < best or (c == best and lk + Rk[j] < best_key):
                best = c
                best_key = lk + Rk[j]
                gap = (best if norm == 0 else math.sqrt(best)) * _WIDEN
            j -= 1
    return best_key


@njit(cache=True)
def _radius_guess(x, z):
    """An ℓ∞ radius around z expected to hold ~2^d of the 2^n subset sums, or -1 if degenerate.

    Gaussian approximation of the subset sums (coordinate k: mean Σ x_ik / 2, variance Σ x_ik² / 4):
    the ball of radius r0 = ½·(2^n·density(z))^(-1/d) holds one sum on average; twice that, 2^d.
    Only a starting guess: :func:`_min_error_grid` is exact whatever the radius.
    """
    n, d = x.shape
    log_count = n * math.log(2.0)
    for k in range(d):
        mu = 0.0
        var = 0.0
        for i in range(n):
            mu += 0.5 * x[i, k]
            var += 0.25 * x[i, k] * x[i, k]
        if not var > 0.0:
            return -1.0
        u = z[k] - mu
        log_count -= 0.5 * u * u / var + 0.5 * math.log(2.0 * math.pi * var)
    return math.exp(-log_count / d)


@njit(cache=True)
def _min_error_grid(z, Lv, Lk, Rv, Rk, norm, radius, min_side):
    """Best pair among those with cost <= ``radius`` (ℓ∞ or ℓ2 norm), through a grid on coordinates 0, 1.

    The right half's sums are bucketed into square cells of side w = radius·(1 + 1e-6) on their first
    two coordinates (cells sorted by key, looked up by binary search); a pair within ``radius`` in
    norm is within it on those coordinates, so its right sum lies in the 3 x 3 cells around
    z - (left sum). Every such pair is compared exactly as :func:`_min_error_one` compares them (same
    arithmetic, same tie rule), so the result is the same whenever the optimum is within ``radius``.

    Returns
    -------
    int64
        The best key; -1 if no pair has cost <= radius; -2 if the grid would be too coarse (fewer
        than ``min_side`` cells a side: the sweep is then cheaper) or too fine (integer overflow).
    """
    d = z.shape[0]
    m2 = Rv.shape[0]
    w = radius * _GRID_MARGIN
    lo0 = Rv[0, 0]
    hi0 = Rv[0, 0]
    lo1 = Rv[0, 1]
    hi1 = Rv[0, 1]
    for j in range(m2):
        lo0 = min(lo0, Rv[j, 0])
        hi0 = max(hi0, Rv[j, 0])
        lo1 = min(lo1, Rv[j, 1])
        hi1 = max(hi1, Rv[j, 1])
    f0 = (hi0 - lo0) / w
    f1 = (hi1 - lo1) / w
    if f0 < min_side or f1 < min_side or f0 > _GRID_MAX_SIDE or f1 > _GRID_MAX_SIDE:
        return np.int64(-2)
    n0 = np.int64(f0) + 1
    n1 = np.int64(f1) + 1
    M = n1 + 3
    cell = np.empty(m2, dtype=np.int64)
    for j in range(m2):
        c0 = np.int64(math.floor((Rv[j, 0] - lo0) / w))
        c1 = np.int64(math.floor((Rv[j, 1] - lo1) / w))
        cell[j] = c0 * M + c1 + 1
    order = np.argsort(cell, kind="mergesort")
    sk = cell[order]
    gv = np.empty_like(Rv)
    gk = np.empty_like(Rk)
    for j in range(m2):
        gv[j] = Rv[order[j]]
        gk[j] = Rk[order[j]]
    best = radius if norm == 0 else radius * radius
    best_key = _NO_KEY
    q = np.empty(d)
    for i in range(Lv.shape[0]):
        for k in range(d):
            q[k] = z[k] - Lv[i, k]
        g0 = math.floor((q[0] - lo0) / w)
        g1 = math.floor((q[1] - lo1) / w)
        if g0 < -1.0 or g0 > n0 or g1 < -1.0 or g1 > n1:
            continue
        c0 = np.int64(g0)
        c1 = np.int64(g1)
        lk = Lk[i]
        for r in range(max(c0 - 1, 0), min(c0 + 1, n0 - 1) + 1):
            a = np.searchsorted(sk, r * M + c1)
            b = np.searchsorted(sk, r * M + c1 + 3)
            for j in range(a, b):
                c = _pair_cost(q, gv[j], norm, best)
                if c < best or (c == best and lk + gk[j] < best_key):
                    best = c
                    best_key = lk + gk[j]
    if best_key == _NO_KEY:
        return np.int64(-1)
    return best_key


@njit(cache=True)
def _min_error(z, x, Lv, Lk, Rv, Rk, norm, index):
    """Key of the best pair: the grid (``index`` 2, or 0 with d >= 3 and n >= 16) with radii growing
    from :func:`_radius_guess` until one holds the optimum, else the first-coordinate sweep.

    Measured (2 cores, Gaussian vectors, ℓ∞, ms per target, sweep / grid): d = 3, n = 24: 2.2 / 1.0;
    d = 4, n = 24: 9.2 / 1.6; d = 4, n = 28: 49 / 7.8; d = 4, n = 32: 615 / 34; d = 8, n = 24: 52 / 55;
    d = 2, n = 24: 0.47 / 0.69 (hence the sweep below d = 3).
    """
    n, d = x.shape
    if d >= 2 and (index == 2 or (index == 0 and d >= _GRID_MIN_D and n >= _GRID_MIN_N)):
        r = _radius_guess(x, z)
        for _ in range(6):
            if not r > 0.0:
                break
            key = _min_error_grid(z, Lv, Lk, Rv, Rk, norm, r, 0.0 if index == 2 else 8.0)
            if key >= 0:
                return key
            if key == -2:
                break
            r *= 4.0
    return _min_error_one(z, Lv, Lk, Rv, Rk, norm)


@njit(cache=True)
def _group_by_size(vals, keys, h):
    """Stable counting sort by subset size: returns (vals, keys, starts (h + 2,))."""
    m = keys.shape[0]
    starts = np.zeros(h + 2, dtype=np.int64)
    for i in range(m):
        starts[(keys[i] >> _PC_SHIFT) + 1] += 1
    for s in range(h + 1):
        starts[s + 1] += starts[s]
    fill = starts.copy()
    gv = np.empty_like(vals)
    gk = np.empty_like(keys)
    for i in range(m):
        s = keys[i] >> _PC_SHIFT
        gv[fill[s]] = vals[i]
        gk[fill[s]] = keys[i]
        fill[s] += 1
    return gv, gk, starts


@njit(cache=True)
def _sparsest_one(z, Lv, Lk, Ls, Rv, Rk, Rs, h1, h2, norm, eps):
    """Key of the smallest subset within eps (then smallest error, then key), or -1 if none is."""
    d = z.shape[0]
    q = np.empty(d)
    stop = eps if norm == 0 else eps * eps
    w = eps * _WIDEN
    for size in range(h1 + h2 + 1):
        best = np.inf
        best_key = np.int64(-1)
        for a in range(max(0, size - h2), min(size, h1) + 1):
            b = size - a
            r_lo, r_hi = Rs[b], Rs[b + 1]
            p = r_lo
            for i in range(Ls[a + 1] - 1, Ls[a] - 1, -1):  # q0 increasing
                for k in range(d):
                    q[k] = z[k] - Lv[i, k]
                q0 = q[0]
                while p < r_hi and Rv[p, 0] < q0 - w:
                    p += 1
                j = p
                while j < r_hi and Rv[j, 0] - q0 <= w:
                    c = _pair_cost(q, Rv[j], norm, stop)
                    ok = c <= eps if norm == 0 else math.sqrt(c) <= eps
                    key = Lk[i] + Rk[j]
                    if ok and (c < best or (c == best and key < best_key)):
                        best = c
                        best_key = key
                    j += 1
        if best_key >= 0:
            return best_key
    return np.int64(-1)


@njit(cache=True, parallel=True)
def mrss_exact_kernel(x, z, norm, sparsest, eps, out_keys, out_found, index=0):
    """Exact MRSS for every target (parallel over targets).

    Parameters
    ----------
    x : float64 (T, n, d)
    z : float64 (T, d)
    norm : int
        0 for ℓ∞, 1 for ℓ2.
    sparsest : bool
        Find the smallest subset within ``eps`` (falling back to min_error where none is) instead of
        the best approximation.
    out_keys : int64 (T,)
        Receives ``popcount << 56 | bitmask`` of each selection.
    out_found : bool (T,)
        Receives whether a subset within eps exists (sparsest only).
    index : int
        How min_error pairs the halves: 0 auto (grid for d >= 3 and n >= 16, else sweep), 1 the
        first-coordinate sweep, 2 the grid on coordinates 0, 1 (d >= 2). All give the same answer.
    """
    T, n, d = x.shape
    h1 = n // 2
    h2 = n - h1
    for t in prange(T):
        Lv, Lk = _sorted_half(x[t], 0, h1)
        Rv, Rk = _sorted_half(x[t], h1, h2)
        key = np.int64(-1)
        if sparsest:
            gLv, gLk, Ls = _group_by_size(Lv, Lk, h1)
            gRv, gRk, Rs = _group_by_size(Rv, Rk, h2)
            key = _sparsest_one(z[t], gLv, gLk, Ls, gRv, gRk, Rs, h1, h2, norm, eps)
        out_found[t] = key >= 0
        if key < 0:
            key = _min_error(z[t], x[t], Lv, Lk, Rv, Rk, norm, index)
        out_keys[t] = key


#: Extra option ``index`` of mrss_exact: how min_error pairs the halves (same answer, different speed).
_INDEXES = {"auto": 0, "sweep": 1, "grid": 2}
#: Method-specific options of ``mrss_exact``.
MRSS_EXACT_OPTIONS = (
    MethodOption("index", "how min_error pairs the halves: auto, sweep or grid (same answer)",
                 f"one of {tuple(_INDEXES)}", lambda v: isinstance(v, str) and v in _INDEXES),
)


def _norm_code(problem: SubsetSumProblem) -> int:
    return 1 if problem.norm == "l2" else 0


def check_mrss_exact(problem: SubsetSumProblem, options: SolveOptions) -> None:
    n, d = problem.num_candidates, problem.dim
    cells = d * (1 << ((n + 1) // 2))
    if n > MRSS_EXACT_MAX_N or cells > MRSS_EXACT_MAX_CELLS:
        raise MethodUnavailableError(
            f"method 'mrss_exact' enumerates d·2^ceil(n/2) half-sum coordinates and takes n <= {MRSS_EXACT_MAX_N} "
            f"and d·2^ceil(n/2) <= 2^{MRSS_EXACT_MAX_CELLS.bit_length() - 1}, got n={n}, d={d} ({cells} "
            "coordinates); use 'mrss_local_search' or 'mrss_milp' with a time limit")
    if d > MRSS_EXACT_SWEEP_MAX_D and d * (1 << n) > MRSS_EXACT_MAX_PAIR_WORK:
        raise MethodUnavailableError(
            f"method 'mrss_exact' pairs the halves through a window on one coordinate, which for d > "
            f"{MRSS_EXACT_SWEEP_MAX_D} visits nearly all 2^n pairs; it takes d·2^n <= "
            f"2^{MRSS_EXACT_MAX_PAIR_WORK.bit_length() - 1} there, got n={n}, d={d}; use 'mrss_local_search' "
            "or 'mrss_milp' with a time limit")


def solve_mrss_exact(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    index_name = options.extra.get("index", "auto")
    T, n = problem.num_instances, problem.num_candidates
    x = np.ascontiguousarray(problem.candidates, dtype=np.float64)
    z = np.ascontiguousarray(problem.targets, dtype=np.float64)
    sparsest = options.objective == "sparsest"
    eps = float(options.eps) if options.eps is not None else -1.0
    keys = np.zeros(T, dtype=np.int64)
    found = np.zeros(T, dtype=bool)
    mrss_exact_kernel(x, z, _norm_code(problem), sparsest, eps, keys, found, _INDEXES[index_name])
    selection = masks_to_selection(keys & _MASK, n)
    status = np.full(T, Status.OPTIMAL, dtype=np.int8)
    if sparsest:
        status[~found] = Status.INFEASIBLE
        return SolverOutput(selection=selection, status=status)
    errors = approximation_errors(problem.targets, selection_sums(problem.candidates, selection), problem.norm)
    if options.eps is not None:
        status[errors > options.eps] = Status.INFEASIBLE
    return SolverOutput(selection=selection, status=status, lower_bounds=errors)


def _heuristic(local: bool, name: str):
    def fn(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
        out = run_heuristic(problem, options, local=local, name=name)
        info = {**out.info, "lower_bound": "0: a heuristic proves no lower bound; compare with "
                "theory.counting_lower_bound for the sample size uniform coverage needs"}
        return SolverOutput(selection=out.selection, status=out.status,
                            lower_bounds=np.zeros(problem.num_instances), info=info)
    return fn


solve_mrss_greedy = _heuristic(False, "mrss_greedy")
solve_mrss_local_search = _heuristic(True, "mrss_local_search")
