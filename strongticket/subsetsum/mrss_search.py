"""``mrss_search``: multi-scale large-neighbourhood search for MRSS with hundreds of candidates.

Multidimensional random subset sum (Becchetti et al. 2022, "On the Multidimensional Random Subset Sum
Problem", arXiv 2207.13944): approximate ``z`` in R^d by a subset sum of ``n`` random vectors, error in
ℓ∞ or ℓ2. The exact meet-in-the-middle of :mod:`strongticket.subsetsum.multidim` stops at n ≈ 30; the
structured tickets of da Cunha, d'Amore, Natale (NeurIPS 2023) need d = k² ... k²·c_out (9 to a few
hundred) and n in the hundreds, where the 1/2-flip descents stall (the counting argument says far
smaller errors exist). This module searches there.

Algorithm (per target, compiled with numba, parallel over targets):

1. **Start**: greedy single flips from the empty set while the error drops.
2. **Large-neighbourhood search**: repeatedly free a *group* of ``k`` candidates (all others fixed),
   and re-solve the group exactly against the residual by meet-in-the-middle: both halves' 2^(k/2)
   subset sums are built sorted by one coordinate (merge of the list with itself shifted), and a
   two-pointer sweep pairs them inside a window as wide as the best error so far (any norm is at least
   one coordinate's gap). The group's current configuration is among the 2^k, so a step never makes
   the error worse; it is kept when strictly better.
3. **Groups matched to the residual's scale**: a group of k vectors can correct a residual only if
   its subset sums spread about as far as the residual, and the best of its 2^k sums lies a factor
   ~2^(k/d) inside that spread. Normally-scaled normal candidates (a scalar normal times a normal
   vector, the samples of structured pruning) come at every scale (|u| has a density > 0 at 0), so
   the search sorts the candidates by norm and draws each group among the 4k whose norm is nearest
   ``c·error``, ``c`` drawn log-uniformly in [1/2, 4]: the error shrinks scale by scale, as in the
   multi-stage proofs of Lueker (1998) and Becchetti et al. (2022). It stalls once the finest
   candidates are used up (measured: after ~60 steps at d = 9, n = 256), so the search is run
   ``restarts`` times with fresh draws and the best run kept.

It proves nothing (lower bound 0); its figures against the plain 1/2-flip descent are in
``docs/solvers.md``. Every random draw comes from a SplitMix64 stream seeded by ``seed`` and a key computed from
the instance's own values, so an instance's selection depends neither on its place in the batch, nor on
the other instances, nor on the number of threads.

The arrays-in, arrays-out entry point :func:`mrss_search` takes any ``n`` (selections are bool
``(T, n)`` arrays, not bitmasks); :func:`solve_mrss_search` adapts it to the registry's
``fn(problem, options)`` form.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from strongticket.errors import InputError
from strongticket.subsetsum.heuristics import residual_cost
from strongticket.subsetsum.method import MethodOption, SolveOptions, SolverOutput, is_int_at_least
from strongticket.subsetsum.problem import Status, SubsetSumProblem
from strongticket.validation import check_int, check_positive

#: Default group size (candidates re-solved exactly per step) and its bound: 2^(k/2) half sums.
DEFAULT_GROUP = 12
MAX_GROUP = 30
#: Default search steps per run and independent runs per target (measured in experiments/bench_mrss.py:
#: at d = 9, n = 256 the error stops improving after ~60 steps; four runs of 60 beat one of 240).
DEFAULT_STEPS = 60
DEFAULT_RESTARTS = 4
_LINF, _L2 = 0, 1
# Scan windows are widened by a few ulps so that floating rounding never hides a pair.
_WIDEN = 1.0 + 1e-12
# Groups are drawn among the _WINDOW·k candidates whose norm is nearest c·error, c = 2^U(lo, lo + span).
_WINDOW = 4
_SCALE_LO = -1.0
_SCALE_SPAN = 3.0
#: Targets per compiled call when a time limit is checked between calls.
_CHUNK = 256


# ----- a small counter-based generator (deterministic per target, independent of threads) -----------
@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def _next(state):
    """SplitMix64: the next 64-bit draw of ``state`` (a uint64 array of length 1)."""
    state[0] += np.uint64(0x9E3779B97F4A7C15)
    return _mix(state[0])


@njit(cache=True, inline="always")
def _uniform(state):
    """A float in [0, 1) with 53 random bits."""
    return float(_next(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def _below(state, m):
    """An integer in [0, m)."""
    return np.int64(_next(state) % np.uint64(m))


# ----- costs ---------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def _pair_cost(q, lv, rv, norm, bound):
    """Cost of q - lv - rv, stopping early (returning a value > bound) once above ``bound``."""
    c = 0.0
    if norm == _LINF:
        for k in range(q.shape[0]):
            a = abs(q[k] - lv[k] - rv[k])
            if a > c:
                c = a
                if c > bound:
                    return c
    else:
        for k in range(q.shape[0]):
            v = q[k] - lv[k] - rv[k]
            c += v * v
            if c > bound:
                return c
    return c


@njit(cache=True, inline="always")
def _gap(cost, norm):
    """The largest one-coordinate gap a pair of this cost can have."""
    return (cost if norm == _LINF else math.sqrt(cost)) * _WIDEN


# ----- start: greedy single flips ------------------------------------------------------------------
@njit(cache=True)
def _greedy_flips(x, sel, r, norm, stop):
    """Best single flip (add or remove) while it lowers the cost; r = z - sum updated in place."""
    n, d = x.shape
    c = residual_cost(r, norm)
    tmp = np.empty(d)
    while c > stop:
        best = c
        bi = -1
        for i in range(n):
            s = -1.0 if sel[i] else 1.0
            for k in range(d):
                tmp[k] = r[k] - s * x[i, k]
            ci = residual_cost(tmp, norm)
            if ci < best:
                best = ci
                bi = i
        if bi < 0:
            break
        s = -1.0 if sel[bi] else 1.0
        for k in range(d):
            r[k] -= s * x[bi, k]
        sel[bi] = not sel[bi]
        c = best
    return c


# ----- exact re-solve of one group -----------------------------------------------------------------
@njit(cache=True)
def _sorted_half(e, lo, h, vals, masks, bvals, bmasks):
    """All 2^h subset sums of the effect vectors e[lo:lo+h] into vals[:2^h], sorted by coordinate 0;
    masks[i] has bit lo + j set when effect lo + j is in sum i. bvals/bmasks: scratch of the same size."""
    d = e.shape[1]
    for k in range(d):
        vals[0, k] = 0.0
    masks[0] = 0
    size = 1
    for j in range(h):
        xj = e[lo + j]
        bit = np.int64(1) << (lo + j)
        a = 0
        b = 0
        o = 0
        while a < size and b < size:
            if vals[a, 0] <= vals[b, 0] + xj[0]:
                for k in range(d):
                    bvals[o, k] = vals[a, k]
                bmasks[o] = masks[a]
                a += 1
            else:
                for k in range(d):
                    bvals[o, k] = vals[b, k] + xj[k]
                bmasks[o] = masks[b] | bit
                b += 1
            o += 1
        while a < size:
            for k in range(d):
                bvals[o, k] = vals[a, k]
            bmasks[o] = masks[a]
            a += 1
            o += 1
        while b < size:
            for k in range(d):
                bvals[o, k] = vals[b, k] + xj[k]
            bmasks[o] = masks[b] | bit
            b += 1
            o += 1
        size *= 2
        for i in range(size):
            for k in range(d):
                vals[i, k] = bvals[i, k]
            masks[i] = bmasks[i]
    return size


@njit(cache=True)
def _best_subset(e, k, q, norm, best, Lv, Lm, Rv, Rm, Bv, Bm):
    """The subset of the effects e[:k] whose sum is nearest to q, if strictly better than ``best``.

    Meet in the middle: both halves sorted by coordinate 0, a monotone pointer into the right half and
    a scan within the best error so far on that coordinate. Returns ``(cost, mask)``; mask -1 when
    nothing beats ``best``.
    """
    h1 = k // 2
    h2 = k - h1
    nL = _sorted_half(e, 0, h1, Lv, Lm, Bv, Bm)
    nR = _sorted_half(e, h1, h2, Rv, Rm, Bv, Bm)
    best_mask = np.int64(-1)
    gap = _gap(best, norm)
    q0 = q[0]
    p = 0
    for i in range(nL - 1, -1, -1):  # t0 = q0 - L0 increasing
        t0 = q0 - Lv[i, 0]
        while p < nR and Rv[p, 0] < t0:
            p += 1
        lv = Lv[i]
        j = p
        while j < nR and Rv[j, 0] - t0 <= gap:
            c = _pair_cost(q, lv, Rv[j], norm, best)
            if c < best:
                best = c
                best_mask = Lm[i] | Rm[j]
                gap = _gap(best, norm)
            j += 1
        j = p - 1
        while j >= 0 and t0 - Rv[j, 0] <= gap:
            c = _pair_cost(q, lv, Rv[j], norm, best)
            if c < best:
                best = c
                best_mask = Lm[i] | Rm[j]
                gap = _gap(best, norm)
            j -= 1
    return best, best_mask


@njit(cache=True)
def _vec_norm(v, norm):
    c = residual_cost(v, norm)
    return c if norm == _LINF else math.sqrt(c)


@njit(cache=True)
def _draw_members(state, x, sel, order, sorted_norm, scale, k, stamp, tag, e, members):
    """Draw k distinct candidates among the ``_WINDOW·k`` whose norm is nearest ``scale``.

    Fills ``members`` and ``e`` (the effect of toggling each: +x_i if out of the subset, -x_i if in)."""
    n, d = x.shape
    width = min(n, _WINDOW * k)
    pos = np.searchsorted(sorted_norm, scale)
    lo = max(0, pos - width // 2)
    hi = min(n, lo + width)
    lo = max(0, hi - width)
    got = 0
    while got < k:
        i = order[lo + _below(state, hi - lo)]
        if stamp[i] == tag:
            continue
        stamp[i] = tag
        si = -1.0 if sel[i] else 1.0
        for a in range(d):
            e[got, a] = si * x[i, a]
        members[got] = i
        got += 1


@njit(cache=True)
def _search_one(xt, zt, norm, k, steps, stop, state, order, sorted_norm, sel, r, buffers):
    """One greedy start + ``steps`` search steps; ``sel``/``r`` receive the selection and residual."""
    n, d = xt.shape
    e, members, stamp, Lv, Rv, Bv, Lm, Rm, Bm = buffers
    sel[:] = False
    r[:] = zt
    c = _greedy_flips(xt, sel, r, norm, stop)
    stamp[:] = -1
    for step in range(steps):
        if c <= stop or c == 0.0:
            break
        err = c if norm == _LINF else math.sqrt(c)
        scale = err * math.exp2(_SCALE_LO + _SCALE_SPAN * _uniform(state))
        _draw_members(state, xt, sel, order, sorted_norm, scale, k, stamp, step, e, members)
        cost, mask = _best_subset(e, k, r, norm, c, Lv, Lm, Rv, Rm, Bv, Bm)
        if mask < 0:
            continue
        for j in range(k):
            if (mask >> j) & 1 == 1:
                sel[members[j]] = not sel[members[j]]
                for a in range(d):
                    r[a] -= e[j, a]
        c = residual_cost(r, norm)
    return c


@njit(cache=True, parallel=True)
def search_kernel(x, z, norm, group, steps, restarts, stop, seed, keys, out_sel, out_cost):
    """Greedy start + multi-scale large-neighbourhood search for every target (parallel over targets).

    Parameters
    ----------
    x : float64 (T, n, d)
    z : float64 (T, d)
    norm : int
        0 for ℓ∞, 1 for ℓ2 (costs are then squared norms).
    group : int
        Candidates re-solved exactly per step (at most n).
    steps : int
        Search steps per run.
    restarts : int
        Independent runs per target (different draws); the best is kept.
    stop : float
        Stop a target once its cost is <= stop (-1: never).
    seed : int
        Seed of the draws; target t uses the stream of (seed, keys[t]).
    keys : uint64 (T,)
        A key per instance computed from its own values (:func:`instance_keys`), so that an instance's draws
        depend neither on its place in the batch nor on the other instances.
    out_sel : bool (T, n)
    out_cost : float64 (T,)
    """
    T, n, d = x.shape
    k = min(group, n)
    size = 1 << (k - k // 2)
    for t in prange(T):
        xt = x[t]
        state = np.zeros(1, dtype=np.uint64)
        state[0] = _mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + keys[t])
        norms = np.empty(n)
        for i in range(n):
            norms[i] = _vec_norm(xt[i], norm)
        order = np.argsort(norms)
        sorted_norm = norms[order]
        buffers = (np.empty((k, d)), np.empty(k, dtype=np.int64), np.empty(n, dtype=np.int64),
                   np.empty((size, d)), np.empty((size, d)), np.empty((size, d)),
                   np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64))
        sel = np.zeros(n, dtype=np.bool_)
        r = np.empty(d)
        best = np.inf
        for _ in range(max(1, restarts)):
            c = _search_one(xt, z[t], norm, k, steps, stop, state, order, sorted_norm, sel, r, buffers)
            if c < best:
                best = c
                out_sel[t] = sel
            if best <= stop:
                break
        out_cost[t] = best


@dataclass(frozen=True)
class SearchResult:
    """What :func:`mrss_search` found.

    Attributes
    ----------
    selection : bool array, shape (T, n)
    errors : float64 array, shape (T,)
        ``||z - sum_S x||`` recomputed from the selection (candidate order, float64).
    seconds : float
    timed_out : bool array, shape (T,)
        Targets that got only the greedy start because the time limit was spent.
    """

    selection: np.ndarray
    errors: np.ndarray
    seconds: float
    timed_out: np.ndarray


def selection_errors(candidates: np.ndarray, targets: np.ndarray, selection: np.ndarray, norm: str) -> np.ndarray:
    """``||z - sum_S x||`` per instance, the sum taken in candidate order in float64, shape (T,).

    The same arithmetic as :func:`strongticket.subsetsum.problem.selection_sums` followed by
    :func:`strongticket.subsetsum.problem.approximation_errors`, for any ``n``.
    """
    x = np.asarray(candidates, dtype=np.float64)
    sel = np.asarray(selection, dtype=bool)
    sums = np.zeros((x.shape[0], x.shape[2]))
    for i in range(x.shape[1]):
        sums += np.where(sel[:, i, None], x[:, i], 0.0)
    diff = np.abs(np.asarray(targets, dtype=np.float64) - sums)
    return diff.max(axis=1) if norm == "linf" else np.sqrt((diff * diff).sum(axis=1))


def instance_keys(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A 64-bit key per instance from the bits of its own target and candidates, shape (T,) uint64.

    The search seeds instance ``t``'s draws with ``(seed, key[t])``: the same instance gets the same
    selection wherever it stands in a batch and whatever else the batch holds.
    """
    T = x.shape[0]
    bits = np.concatenate([z.reshape(T, -1), x.reshape(T, -1)], axis=1).view(np.uint64)
    weights = (np.arange(1, bits.shape[1] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    with np.errstate(over="ignore"):
        return (bits * weights).sum(axis=1, dtype=np.uint64)


def mrss_search(candidates: np.ndarray, targets: np.ndarray, norm: str = "linf", *, seed: int = 0,
                group: int = DEFAULT_GROUP, steps: int = DEFAULT_STEPS, restarts: int = DEFAULT_RESTARTS,
                eps: float | None = None, time_limit: float | None = None) -> SearchResult:
    """Search every MRSS instance; any number of candidates.

    Parameters
    ----------
    candidates : float array, shape (T, n, d)
    targets : float array, shape (T, d)
    norm : {"linf", "l2"}
    seed : int
        Seed of the group draws (instance t's stream depends on ``seed`` and its own values only).
    group : int in [2, 30]
        Candidates re-solved exactly per step: 2^(group/2) half sums per step; larger finds more per
        step and costs more.
    steps : int >= 0
        Search steps per run (0: the greedy start only).
    restarts : int >= 1
        Independent runs per target; the best is kept (a run that reaches ``eps`` ends the target).
    eps : float, optional
        Stop a target once its error is <= eps (the search is otherwise run for all ``steps``).
    time_limit : float, optional
        Seconds; targets are searched in chunks and, once the time is spent, the remaining ones get the
        greedy start only (``timed_out``).

    Returns
    -------
    SearchResult

    Raises
    ------
    InputError
        Bad shapes, non-finite values or options out of range (one line naming the argument).
    """
    x = np.asarray(candidates)
    z = np.asarray(targets)
    if x.ndim != 3 or z.ndim != 2 or x.shape[0] != z.shape[0] or x.shape[2] != z.shape[1]:
        raise InputError(f"candidates must have shape (T, n, d) and targets (T, d), got {x.shape} and {z.shape}")
    if x.shape[0] == 0 or x.shape[2] == 0:
        raise InputError(f"candidates must have T, d >= 1, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(z.dtype, np.number)):
        raise InputError(f"candidates and targets must be real arrays, got {x.dtype} and {z.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(z))):
        raise InputError("candidates and targets must be finite")
    if norm not in ("linf", "l2"):
        raise InputError(f"norm must be 'linf' or 'l2', got {norm!r}")
    seed = check_int("seed", seed, lo=0, hi=(1 << 63) - 1)
    group = check_int("group", group, lo=2, hi=MAX_GROUP)
    steps = check_int("steps", steps, lo=0)
    restarts = check_int("restarts", restarts, lo=1)
    if eps is not None:
        check_positive("eps", eps)
    if time_limit is not None:
        check_positive("time_limit (seconds)", time_limit)
    code = _LINF if norm == "linf" else _L2
    stop = -1.0 if eps is None else (float(eps) if code == _LINF else float(eps) ** 2)
    T, n, _ = x.shape
    sel = np.zeros((T, n), dtype=bool)
    cost = np.zeros(T)
    timed_out = np.zeros(T, dtype=bool)
    start = time.perf_counter()
    if n == 0:  # nothing to choose: the empty subset
        return SearchResult(selection=sel, errors=selection_errors(x, z, sel, norm), seconds=0.0,
                            timed_out=timed_out)
    keys = instance_keys(x, z)
    chunk = T if time_limit is None else _CHUNK
    for a in range(0, T, chunk):
        b = min(T, a + chunk)
        late = time_limit is not None and time.perf_counter() - start > time_limit
        search_kernel(x[a:b], z[a:b], code, group, 0 if late else steps, 1 if late else restarts, stop, seed,
                      keys[a:b], sel[a:b], cost[a:b])
        timed_out[a:b] = late and steps > 0
    seconds = time.perf_counter() - start
    return SearchResult(selection=sel, errors=selection_errors(x, z, sel, norm), seconds=seconds,
                        timed_out=timed_out)


#: The method-specific options of ``solve(problem, "mrss_search", ...)``.
MRSS_SEARCH_OPTIONS = (
    MethodOption("group", f"candidates re-solved exactly per step (default {DEFAULT_GROUP})",
                 f"an integer in [2, {MAX_GROUP}]", lambda v: is_int_at_least(2)(v) and v <= MAX_GROUP),
    MethodOption("steps", f"search steps per run (default {DEFAULT_STEPS})", "an integer >= 0", is_int_at_least(0)),
    MethodOption("restarts", f"independent runs per target, best kept (default {DEFAULT_RESTARTS})",
                 "an integer >= 1", is_int_at_least(1)),
)


def solve_mrss_search(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    """The registry form ``fn(problem, options) -> SolverOutput`` (options ``group``, ``steps``, ``restarts``;
    ``eps``, ``time_limit`` and ``seed`` from :class:`strongticket.subsetsum.method.SolveOptions`)."""
    extra = {k: options.extra[k] for k in ("group", "steps", "restarts") if k in options.extra}
    res = mrss_search(problem.candidates, problem.targets, problem.norm, seed=options.seed, eps=options.eps,
                      time_limit=options.time_limit, **extra)
    status = np.where(res.timed_out, np.int8(Status.TIMEOUT), np.int8(Status.FEASIBLE)).astype(np.int8)
    return SolverOutput(selection=res.selection, status=status, lower_bounds=np.zeros(problem.num_instances),
                        info={"lower_bound": "0: a heuristic proves no lower bound"})


__all__ = ["DEFAULT_GROUP", "DEFAULT_RESTARTS", "DEFAULT_STEPS", "MAX_GROUP", "MRSS_SEARCH_OPTIONS", "SearchResult",
           "instance_keys", "mrss_search", "search_kernel", "selection_errors", "solve_mrss_search"]
