"""``mrss_search``: scale-ordered rounding as a beam, ℓ2 pair descent and exact group re-solves for MRSS
with hundreds of candidates.

Multidimensional random subset sum (Becchetti et al. 2022, "On the Multidimensional Random Subset Sum
Problem", arXiv 2207.13944): approximate ``z`` in R^d by a subset sum of ``n`` random vectors, error in
ℓ∞ or ℓ2. The exact meet-in-the-middle of :mod:`strongticket.subsetsum.multidim` stops at n ≈ 30; the
structured tickets of da Cunha, d'Amore, Natale (NeurIPS 2023) need d = k² ... k²·c_out and n in the
hundreds, where flip/swap descents on the ℓ∞ error stall on the plateaus of the max norm. This module
searches there. Per target (compiled with numba, parallel over targets), ``restarts`` runs of:

1. **Scale-ordered rounding with compensation, as a beam.** Start from the fractional subset b = 1/2 moved
   to the least-norm b with ``X^T b = z`` (X the (n, d) candidates). Visit the candidates from the largest
   norm to the smallest; round b_i to 0 or 1 and move the not yet visited candidates' b by the least-norm
   change that puts ``X^T b = z`` back, while more than d + 4 remain. The Gram matrix carries a ridge of a
   tenth of the squared norm of the (d+1)-th smallest candidate, so near the end (few unvisited candidates,
   a nearly singular Gram matrix) the change is a damped least-squares fit rather than an exact one that
   would push the last b far outside [0, 1]. The error left at the end is the rounding of the last few,
   *smallest* candidates, so it shrinks with the scale of the d-th smallest candidate (normally-scaled
   normal candidates, the samples of structured pruning, come at every scale). The compensation is lazy:
   every unvisited b_i moves by ``x_i · w`` for the same w, so only ``W = Σ w`` is kept (b_i = 1/2 +
   x_i·W when i is reached) and the inverse Gram matrix of the unvisited candidates is downdated by
   Sherman–Morrison: O(n d²) per run, shared by every state of the beam. Over the last ``4·d``
   compensated visits each partial rounding branches into b_i -> 0 and b_i -> 1 and the ``beam``
   children of least *energy* ``c^T (G_u + ridge)^-1 c`` are kept (c the sum the unvisited candidates
   must still make, G_u their Gram matrix): the squared size of the compensation still owed, relative to
   what the unvisited candidates can make; with ``beam = 1`` this is the nearer rounding. The branching
   costs O(beam·d) per visit; the 4 final states of least residual go on to step 2. Run 0 visits in
   exact norm order; later runs multiply each norm by ``exp(0.1·N(0, 1))`` first.
2. **ℓ2 descent** from each final state of the beam: the best single flip or pair of flips (add two,
   remove two, swap) of the smooth objective ``||r||²`` (r = z - Σ_S x), while it drops: flip gain
   ``p_i - |x_i|²`` with ``p_i = ±2 x_i·r``, pair gain ``p_i + p_j - |x_i|² - |x_j|² ∓ 2 x_i·x_j``, pruned
   by the Cauchy–Schwarz bound ``p_i + p_j - (|x_i| - |x_j|)²``. Pairs are drawn among the candidates of norm
   at most 3·||r||₂ (a larger vector pair rarely cancels to within ||r|| in d >= 9; measured: the same
   errors as all pairs, 4x faster at n = 1024). The ℓ2 objective has no plateaus; at d = 25 its ℓ∞
   error is far below that of a descent on the ℓ∞ error itself.
3. The best run (in the problem's norm) is **polished** by ``steps`` large-neighbourhood steps: a group
   of ``group`` candidates whose norms are near ``c``·error (c log-uniform in [1/2, 4]) is re-solved
   exactly against the residual by meet-in-the-middle (both halves' sums sorted by one coordinate,
   paired inside a window as wide as the best error), kept when strictly better.

Measured against the plain best-flip/best-swap ℓ∞ descent (:mod:`strongticket.subsetsum.mrss_descent`):
``docs/solvers.md``. It proves nothing (lower bound 0). Every random draw comes from a SplitMix64 stream
seeded by ``seed`` and a key computed from the instance's own values, so an instance's selection depends
neither on its place in the batch, nor on the other instances, nor on the number of threads.

The arrays-in, arrays-out entry point :func:`mrss_search` takes any ``n`` (selections are bool
``(T, n)`` arrays); :func:`solve_mrss_search` adapts it to the registry's ``fn(problem, options)`` form.
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

#: Polish: candidates re-solved exactly per step (2^(group/2) half sums) and its bound.
DEFAULT_GROUP = 12
MAX_GROUP = 30
#: Polish steps on the best run (default).
DEFAULT_STEPS = 20
#: Partial roundings a run keeps (the beam), default and bound.
DEFAULT_BEAM = 32
MAX_BEAM = 1024
#: ``restarts=None`` picks the runs from the cost of one, measured as about proportional to n·d + d³/6 (the
#: descent's n·d per step, the rounding's d x d inverse): AUTO_WORK / (n·d + d³/6), rounded down to a
#: power of two, in [1, AUTO_MAX_RESTARTS]. Calibrated with the default beam for >= 200 targets/s on 2 cores
#: at d = 9 and 25, n = 64 ... 1024 (docs/solvers.md).
AUTO_WORK = 5 << 13
AUTO_MAX_RESTARTS = 8
_LINF, _L2 = 0, 1
# Compensation stops once at most d + _MARGIN candidates are left unvisited (their Gram matrix nears
# singular); measured: 4 beats 0 and d.
_MARGIN = 4
# The beam branches over the last _BEAM_SPAN·d compensated visits (earlier ones: the nearer rounding) and the
# _FINISHES final states of least residual get the l2 descent. Measured at d = 9 and 25, n = 64 ... 1024 against
# branching over every visit: the same errors within noise at a fraction of the time for n >> d.
_BEAM_SPAN = 4
_FINISHES = 4
# Norm noise of the visiting order in runs after the first (measured: 0.1 beats 0.2 and 0.3).
_ORDER_NOISE = 0.1
# Pair flips are looked for among candidates of norm <= _PAIR_REACH · ||r||_2.
_PAIR_REACH = 3.0
# A flip must lower ||r||² by more than this fraction of it (no cycling on rounding noise).
_MIN_GAIN = 1e-12
# Ridge of the Gram matrix (relative to its mean diagonal), so that it is always invertible.
_RIDGE = 1e-10
# Plus this fraction of the squared norm of the (d+1)-th smallest candidate: the compensation becomes a ridge
# least-squares fit that damps instead of blowing up as the unvisited candidates near rank d. Measured against
# no endgame ridge, same process and instances: errors equal within noise at d = 9 and 25, n = 64 ... 1024;
# 1.2-1.3x the targets/s at d = 25, n = 256 and 512, 0.98-1.07x at d = 9; 0.03 and 0.3 within noise of 0.1.
_ENDGAME_RIDGE = 0.1
# Scan windows are widened by a few ulps so that floating rounding never hides a pair.
_WIDEN = 1.0 + 1e-12
# Polish groups are drawn among the _WINDOW·k candidates whose norm is nearest c·error, c = 2^U(lo, lo + span).
_WINDOW = 4
_SCALE_LO = -1.0
_SCALE_SPAN = 3.0
#: Targets per compiled call when a time limit is checked between calls.
_CHUNK = 64


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


@njit(cache=True)
def _normal(state):
    """A standard normal draw (Box–Muller)."""
    return math.sqrt(-2.0 * math.log(1.0 - _uniform(state))) * math.cos(2.0 * math.pi * _uniform(state))


# ----- dense linear algebra in plain loops: BLAS/LAPACK called from the parallel kernel's threads would start
# threads of its own inside them (OpenBLAS warns "Detect OpenMP Loop and this application may hang") ---------
@njit(cache=True)
def _gram(x):
    """``x^T x`` for ``x`` (n, d), shape (d, d)."""
    n, d = x.shape
    G = np.zeros((d, d))
    for i in range(n):
        for k in range(d):
            v = x[i, k]
            if v != 0.0:
                for m in range(k, d):
                    G[k, m] += v * x[i, m]
    for k in range(d):
        for m in range(k):
            G[k, m] = G[m, k]
    return G


@njit(cache=True)
def _invert(A, out):
    """The inverse of the square matrix ``A`` into ``out`` by Gauss–Jordan elimination with partial pivoting
    (``A`` is overwritten). The caller's matrices carry a positive ridge, so no pivot is zero."""
    d = A.shape[0]
    for k in range(d):
        for m in range(d):
            out[k, m] = 1.0 if k == m else 0.0
    for c in range(d):
        p = c
        for r in range(c + 1, d):
            if abs(A[r, c]) > abs(A[p, c]):
                p = r
        if p != c:
            for m in range(d):
                A[c, m], A[p, m] = A[p, m], A[c, m]
                out[c, m], out[p, m] = out[p, m], out[c, m]
        f = 1.0 / A[c, c]
        for m in range(d):
            A[c, m] *= f
            out[c, m] *= f
        for r in range(d):
            if r != c:
                g = A[r, c]
                if g != 0.0:
                    for m in range(d):
                        A[r, m] -= g * A[c, m]
                        out[r, m] -= g * out[c, m]


# ----- 1. scale-ordered rounding with lazy compensation, as a beam -----------------------------------
@njit(cache=True)
def _beam_round(x, a, z, state, noise, beam, span, key, H, hx, W, C, W2, C2, E2, par, dec, ppar, pdec, out):
    """Round the least-norm fractional subset, largest candidates first, compensating on the rest; keep the
    ``beam`` lowest-energy partial roundings over the last ``span`` compensated visits.

    ``x`` (n, d) with norms ``a``. State s holds ``W[s]`` (b_i = 1/2 + x_i·W for the unvisited i) and
    ``C[s]`` = z - Σ_{visited, kept} x - Σ_{unvisited} x / 2, the sum the unvisited must still make; its
    energy is ``C·W`` (= c^T (G_u + ridge)^-1 c, G_u the unvisited Gram matrix). Each visit branches
    every state into b_i -> 0 and b_i -> 1 and keeps the ``beam`` children of least energy (outside the
    last ``span`` compensated visits: the one child of least energy, the nearer rounding). Once at most
    d + _MARGIN candidates are unvisited nothing is compensated and every state rounds as it stands.

    Scratch: ``key`` (n,), ``H`` (d, d), ``hx`` (d,), ``W``/``C`` (beam, d), ``W2``/``C2`` (2 beam, d),
    ``E2``/``ppar``/``pdec`` (2 beam,), ``par``/``dec`` (n, beam). ``out`` (rows >= 1, n) receives the
    final states' selections, least ``||C||₂`` (the residual) first. Returns the number of rows written
    (at most ``min(beam, out.shape[0])``). Needs n > d + _MARGIN (the caller checks).
    """
    n, d = x.shape
    for i in range(n):
        key[i] = -a[i] * (math.exp(noise * _normal(state)) if noise > 0.0 else 1.0)
    order = np.argsort(key)
    G = _gram(x)
    ridge = 0.0
    for k in range(d):
        ridge += G[k, k]
    ridge = _RIDGE * ridge / d + 1e-300 + _ENDGAME_RIDGE * a[min(n - 1, d)] ** 2
    for k in range(d):
        G[k, k] += ridge
    _invert(G, H)
    C[0] = z - 0.5 * x.sum(axis=0)
    for k in range(d):
        t = 0.0
        for m in range(d):
            t += H[k, m] * C[0, m]
        W[0, k] = t
    states = 1
    branch_from = n - d - _MARGIN - 1 - span  # the last ``span`` compensated visits branch
    compensate = True
    for step in range(n):
        i = order[step]
        xi = x[i]
        comp = compensate and n - step - 1 > d + _MARGIN
        den = 1.0
        if comp:
            q = 0.0
            for k in range(d):
                t = 0.0
                for m in range(d):
                    t += H[k, m] * xi[m]
                hx[k] = t
                q += xi[k] * t
            den = 1.0 - q
            if not den > 1e-9:  # the rest no longer spans R^d: round them as they stand
                compensate = False
                comp = False
        children = 0
        for s in range(states):
            b = 0.5
            for k in range(d):
                b += xi[k] * W[s, k]
            near = 1.0 if b >= 0.5 else 0.0
            for v in (near, 1.0 - near):
                if v != near and not (comp and step >= branch_from):
                    continue
                # the rounding moved X^T b by (v - b) x_i; the rest cancel it: W += H_new (-(v - b) x_i),
                # and H_new x_i = H x_i / den
                f = -(v - b) / den if comp else 0.0
                e = 0.0
                for k in range(d):
                    w = W[s, k] + f * hx[k]
                    c = C[s, k] - (v - 0.5) * xi[k]
                    W2[children, k] = w
                    C2[children, k] = c
                    e += c * w
                E2[children] = e
                ppar[children] = s
                pdec[children] = v > 0.0
                children += 1
        if comp:  # H <- (G - x x^T)^-1 = H + (H x)(H x)^T / (1 - x^T H x)
            for k in range(d):
                f = hx[k] / den
                for m in range(d):
                    H[k, m] += f * hx[m]
        keep = min(children, beam) if comp else children
        if comp and children > 1:
            rank = np.argsort(E2[:children], kind="mergesort")
        else:
            rank = np.arange(children)
        for t in range(keep):
            j = rank[t]
            W[t] = W2[j]
            C[t] = C2[j]
            par[step, t] = ppar[j]
            dec[step, t] = pdec[j]
        states = keep
    # every candidate is visited: C[s] is the residual of state s
    res = np.empty(states)
    for s in range(states):
        t = 0.0
        for k in range(d):
            t += C[s, k] * C[s, k]
        res[s] = t
    rank = np.argsort(res, kind="mergesort")
    rows = min(states, out.shape[0])
    for t in range(rows):
        s = rank[t]
        for step in range(n - 1, -1, -1):
            out[t, order[step]] = dec[step, s]
            s = par[step, s]
    return rows


# ----- 2. l2 descent over single and pair flips -----------------------------------------------------
@njit(cache=True)
def _l2_descent(x, nrm, a, sel, r, p, sg, max_steps):
    """Best single or pair flip of ||r||² while it drops; ``x`` sorted by norm ``a`` ascending.

    ``sel``/``r`` (r = z - Σ_S x) are updated in place; ``p``, ``sg`` are (n,) scratch.
    """
    n, d = x.shape
    for _ in range(max_steps):
        rr = 0.0
        for k in range(d):
            rr += r[k] * r[k]
        best = _MIN_GAIN * rr
        bi = -1
        bj = -1
        for i in range(n):
            g = 0.0
            for k in range(d):
                g += x[i, k] * r[k]
            s = -1.0 if sel[i] else 1.0
            sg[i] = s
            p[i] = 2.0 * s * g
            gi = p[i] - nrm[i]
            if gi > best:
                best, bi = gi, i
        m = np.searchsorted(a, _PAIR_REACH * math.sqrt(rr), side="right")
        for i in range(m - 1):
            pi = p[i]
            ai = a[i]
            for j in range(i + 1, m):
                da = ai - a[j]
                if pi + p[j] - da * da <= best:  # Cauchy–Schwarz: no dot product can make it a gain
                    continue
                dot = 0.0
                for k in range(d):
                    dot += x[i, k] * x[j, k]
                gij = pi + p[j] - nrm[i] - nrm[j] - 2.0 * sg[i] * sg[j] * dot
                if gij > best:
                    best, bi, bj = gij, i, j
        if bi < 0:
            return
        for q in (bi, bj):
            if q >= 0:
                for k in range(d):
                    r[k] -= sg[q] * x[q, k]
                sel[q] = not sel[q]


# ----- 3. exact re-solve of one group (polish) -------------------------------------------------------
@njit(cache=True, inline="always")
def _pair_cost(q, lv, rv, norm, bound):
    """Cost of q - lv - rv, stopping early (returning a value > bound) once above ``bound``."""
    c = 0.0
    if norm == _LINF:
        for k in range(q.shape[0]):
            v = abs(q[k] - lv[k] - rv[k])
            if v > c:
                c = v
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
def _polish(x, a, sel, r, norm, k, steps, stop, state):
    """``steps`` exact re-solves of groups of k candidates with norm near c·error; returns the cost.

    ``x`` sorted by norm ``a`` ascending (the groups are windows of that order)."""
    n, d = x.shape
    size = 1 << (k - k // 2)
    e = np.empty((k, d))
    members = np.empty(k, dtype=np.int64)
    stamp = np.full(n, -1, dtype=np.int64)
    Lv, Rv, Bv = np.empty((size, d)), np.empty((size, d)), np.empty((size, d))
    Lm, Rm, Bm = np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64)
    c = residual_cost(r, norm)
    width = min(n, _WINDOW * k)
    for step in range(steps):
        if c <= stop or c == 0.0:
            break
        err = c if norm == _LINF else math.sqrt(c)
        pos = np.searchsorted(a, err * math.exp2(_SCALE_LO + _SCALE_SPAN * _uniform(state)))
        lo = max(0, min(pos - width // 2, n - width))
        got = 0
        while got < k:
            i = lo + _below(state, width)
            if stamp[i] == step:
                continue
            stamp[i] = step
            s = -1.0 if sel[i] else 1.0
            for m in range(d):
                e[got, m] = s * x[i, m]
            members[got] = i
            got += 1
        cost, mask = _best_subset(e, k, r, norm, c, Lv, Lm, Rv, Rm, Bv, Bm)
        if mask < 0:
            continue
        for j in range(k):
            if (mask >> j) & 1 == 1:
                sel[members[j]] = not sel[members[j]]
                for m in range(d):
                    r[m] -= e[j, m]
        c = residual_cost(r, norm)
    return c


# ----- the kernel -----------------------------------------------------------------------------------
@njit(cache=True)
def _search_one(x, z, norm, group, steps, restarts, beam, stop, state, out_sel):
    """All runs and the polish for one target; writes the selection, returns the cost."""
    n, d = x.shape
    a = np.empty(n)
    for i in range(n):
        s = 0.0
        for k in range(d):
            s += x[i, k] * x[i, k]
        a[i] = math.sqrt(s)
    order = np.argsort(a, kind="mergesort")  # stable: equal norms keep candidate order
    xs = np.empty((n, d))
    for i in range(n):
        xs[i] = x[order[i]]
    as_ = a[order]
    nrm = as_ * as_
    finishes = min(beam, _FINISHES)
    ends = np.zeros((finishes, n), dtype=np.bool_)
    sel = np.zeros(n, dtype=np.bool_)
    best_sel = np.zeros(n, dtype=np.bool_)
    r = np.empty(d)
    p, sg, key = np.empty(n), np.empty(n), np.empty(n)
    H, hx = np.empty((d, d)), np.empty(d)
    W, C = np.empty((beam, d)), np.empty((beam, d))
    W2, C2, E2 = np.empty((2 * beam, d)), np.empty((2 * beam, d)), np.empty(2 * beam)
    par, dec = np.zeros((n, beam), dtype=np.int64), np.zeros((n, beam), dtype=np.bool_)
    ppar, pdec = np.empty(2 * beam, dtype=np.int64), np.empty(2 * beam, dtype=np.bool_)
    rounding = n > d + _MARGIN and as_[n - 1] > 0.0
    best = residual_cost(z, norm)  # the empty subset: a run optimises ||r||_2 and may end above it in l_inf
    for run in range(restarts):
        rows = 1
        if rounding:
            rows = _beam_round(xs, as_, z, state, _ORDER_NOISE if run > 0 else 0.0, beam, _BEAM_SPAN * d, key,
                               H, hx, W, C, W2, C2, E2, par, dec, ppar, pdec, ends)
        else:
            ends[0, :] = False
        for e in range(rows):
            sel[:] = ends[e]
            r[:] = z
            for i in range(n):
                if sel[i]:
                    for k in range(d):
                        r[k] -= xs[i, k]
            _l2_descent(xs, nrm, as_, sel, r, p, sg, 50 * n + 1000)
            c = residual_cost(r, norm)
            if c < best:
                best = c
                best_sel[:] = sel
            if best <= stop:
                break
        if best <= stop or not rounding:  # without rounding every run is the same descent
            break
    if steps > 0 and best > stop and best > 0.0:
        sel[:] = best_sel
        r[:] = z
        for i in range(n):
            if sel[i]:
                for k in range(d):
                    r[k] -= xs[i, k]
        best = _polish(xs, as_, sel, r, norm, min(group, n), steps, stop, state)
        best_sel[:] = sel
    for i in range(n):
        out_sel[order[i]] = best_sel[i]
    return best


@njit(cache=True, parallel=True)
def search_kernel(x, z, norm, group, steps, restarts, beam, stop, seed, keys, out_sel, out_cost):
    """Rounding runs, ℓ2 descent and polish for every target (parallel over targets).

    Parameters
    ----------
    x : float64 (T, n, d)
    z : float64 (T, d)
    norm : int
        0 for ℓ∞, 1 for ℓ2 (costs are then squared norms).
    group : int
        Candidates re-solved exactly per polish step (at most n).
    steps : int
        Polish steps on the best run.
    restarts : int
        Rounding runs per target; the best (in ``norm``) is kept.
    beam : int
        Partial roundings kept per run (1: the nearer rounding only).
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
    T = x.shape[0]
    for t in prange(T):
        state = np.zeros(1, dtype=np.uint64)
        state[0] = _mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + keys[t])
        out_cost[t] = _search_one(x[t], z[t], norm, group, steps, restarts, beam, stop, state, out_sel[t])


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
        Targets that got one run and no polish because the time limit was spent.
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


def auto_restarts(n: int, d: int) -> int:
    """The runs ``restarts=None`` makes: AUTO_WORK / (n·d + d³/6) rounded down to a power of two, in [1, 8]."""
    ratio = AUTO_WORK / max(1.0, n * d + d ** 3 / 6)
    return int(min(AUTO_MAX_RESTARTS, 2 ** max(0, math.floor(math.log2(ratio)))))


def mrss_search(candidates: np.ndarray, targets: np.ndarray, norm: str = "linf", *, seed: int = 0,
                group: int = DEFAULT_GROUP, steps: int = DEFAULT_STEPS, restarts: int | None = None,
                beam: int = DEFAULT_BEAM, eps: float | None = None, time_limit: float | None = None) -> SearchResult:
    """Search every MRSS instance; any number of candidates.

    Parameters
    ----------
    candidates : float array, shape (T, n, d)
    targets : float array, shape (T, d)
    norm : {"linf", "l2"}
    seed : int
        Seed of the draws (instance t's stream depends on ``seed`` and its own values only).
    group : int in [2, 30]
        Candidates re-solved exactly per polish step: 2^(group/2) half sums per step.
    steps : int >= 0
        Polish steps on the best run (0: none).
    restarts : int >= 1, optional
        Rounding + descent runs per target, the best kept; None: :func:`auto_restarts` (more runs for
        small n and d, where one run is cheap). A run that reaches ``eps`` ends the target.
    beam : int in [1, 1024]
        Partial roundings a run keeps over its last 4·d compensated visits (1: the nearer rounding only);
        the (at most 4) final ones of least residual each get the ℓ2 descent.
    eps : float, optional
        Stop a target once its error is <= eps.
    time_limit : float, optional
        Seconds; targets are searched in chunks and, once the time is spent, the remaining ones get one
        run and no polish (``timed_out``).

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
    T, n, d = x.shape
    restarts = auto_restarts(n, d) if restarts is None else check_int("restarts", restarts, lo=1)
    beam = check_int("beam", beam, lo=1, hi=MAX_BEAM)
    if eps is not None:
        check_positive("eps", eps)
    if time_limit is not None:
        check_positive("time_limit (seconds)", time_limit)
    code = _LINF if norm == "linf" else _L2
    stop = -1.0 if eps is None else (float(eps) if code == _LINF else float(eps) ** 2)
    sel = np.zeros((T, n), dtype=bool)
    cost = np.zeros(T)
    timed_out = np.zeros(T, dtype=bool)
    start = time.perf_counter()
    if n == 0:  # nothing to choose: the empty subset
        return SearchResult(selection=sel, errors=selection_errors(x, z, sel, norm), seconds=0.0,
                            timed_out=timed_out)
    keys = instance_keys(x, z)
    chunk = T if time_limit is None else _CHUNK
    for lo in range(0, T, chunk):
        hi = min(T, lo + chunk)
        late = time_limit is not None and time.perf_counter() - start > time_limit
        search_kernel(x[lo:hi], z[lo:hi], code, group, 0 if late else steps, 1 if late else restarts, beam, stop, seed,
                      keys[lo:hi], sel[lo:hi], cost[lo:hi])
        timed_out[lo:hi] = late and (steps > 0 or restarts > 1)
    seconds = time.perf_counter() - start
    return SearchResult(selection=sel, errors=selection_errors(x, z, sel, norm), seconds=seconds,
                        timed_out=timed_out)


#: The method-specific options of ``solve(problem, "mrss_search", ...)``.
MRSS_SEARCH_OPTIONS = (
    MethodOption("group", f"candidates re-solved exactly per polish step (default {DEFAULT_GROUP})",
                 f"an integer in [2, {MAX_GROUP}]", lambda v: is_int_at_least(2)(v) and v <= MAX_GROUP),
    MethodOption("steps", f"polish steps on the best run (default {DEFAULT_STEPS})", "an integer >= 0",
                 is_int_at_least(0)),
    MethodOption("restarts", "rounding + descent runs per target, best kept (default: from n and d, 1 to "
                 f"{AUTO_MAX_RESTARTS})", "an integer >= 1", is_int_at_least(1)),
    MethodOption("beam", f"partial roundings kept per run (default {DEFAULT_BEAM}; 1: the nearer rounding only)",
                 f"an integer in [1, {MAX_BEAM}]", lambda v: is_int_at_least(1)(v) and v <= MAX_BEAM),
)


def solve_mrss_search(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    """The registry form ``fn(problem, options) -> SolverOutput`` (options ``group``, ``steps``, ``restarts``, ``beam``;
    ``eps``, ``time_limit`` and ``seed`` from :class:`strongticket.subsetsum.method.SolveOptions`)."""
    extra = {k: options.extra[k] for k in ("group", "steps", "restarts", "beam") if k in options.extra}
    res = mrss_search(problem.candidates, problem.targets, problem.norm, seed=options.seed, eps=options.eps,
                      time_limit=options.time_limit, **extra)
    status = np.where(res.timed_out, np.int8(Status.TIMEOUT), np.int8(Status.FEASIBLE)).astype(np.int8)
    return SolverOutput(selection=res.selection, status=status, lower_bounds=np.zeros(problem.num_instances),
                        info={"lower_bound": "0: a heuristic proves no lower bound"})


__all__ = ["AUTO_MAX_RESTARTS", "AUTO_WORK", "DEFAULT_BEAM", "DEFAULT_GROUP", "DEFAULT_STEPS", "MAX_BEAM", "MAX_GROUP",
           "MRSS_SEARCH_OPTIONS", "SearchResult", "auto_restarts", "instance_keys", "mrss_search", "search_kernel",
           "selection_errors", "solve_mrss_search"]
