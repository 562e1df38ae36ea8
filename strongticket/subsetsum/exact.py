"""Exact 1-D subset sum by meet in the middle, compiled with numba and parallel over targets.

Horowitz & Sahni (1974) meet-in-the-middle (the algorithm and its measured figures: ``docs/solvers.md``):

1. split the n candidates into a left half (``n // 2``) and a right half;
2. build each half's 2^h subset sums **already sorted**, adding one candidate at a time by merging the
   sorted list with a shifted copy of itself (O(2^h), no sort); equal sums keep only the smallest
   subset key (size, then bitmask; see :mod:`strongticket.subsetsum.keys`);
3. for every left sum ``l`` the best right partners are the neighbours of ``q = z - l`` in the right
   list: the last ``r <= q`` and the first ``r > q``; the best such pair is the optimum.

Cost O(2^(n/2)) time per target and O(2^(n/2)) memory per thread, independent of the batch size T.

How it is fast (``min_error``): a merge is a chain of dependent compare-and-load steps, so one target
alone leaves the CPU idle between steps. The kernel runs four targets' merges in one loop
(:func:`_build4`), finds every left sum's neighbour by one branchless merge of the ``q`` values with
the right list (:func:`_rank4`), and scans the candidate errors in vectorisable passes
(:func:`_best_pair`). Subsets are recovered afterwards by enumerating each half once. When a target
meets equal sums or equal errors (ties, as in integer data), it is solved again by the keyed path
(:func:`_build_sorted_sums` + :func:`_sweep`), which carries subset keys and breaks ties exactly; both
paths use the same neighbour rule, so the answer does not depend on which one ran.

How it stays small (``min_error``): four targets' tables are 24 x 8 x 2^(n/2) bytes per thread (768 MB at
n = 44), and interleaving pays only while they stay near the caches. Above :data:`FOUR_TARGET_MAX_BYTES`
(n >= 37) targets are solved one at a time (:func:`_min_error_one`) in three sum tables that the two halves'
builds, the errors and the mask recovery share, with int32 ranks and ``q = z - l`` formed on the fly:
28 x 2^(n/2) bytes (112 MB at n = 44), as fast there, and the same answers (the same merges and comparisons).

Objectives
----------
``min_error``
    the subset minimising ``|z - sum|``; ties toward the smaller key (smaller subset, then bitmask).
``sparsest``
    the fewest candidates with error <= eps, then the smallest error. Each half's sums are built by
    subset size, one size at a time and only as far as needed (:func:`_size_round`), and pairs of sizes
    (a, k - a) are swept for k = 0, 1, ... until one is within eps (:func:`_sparsest`). A small answer
    thus costs a small fraction of the 2^(n/2) sums per half: at n = 21 and eps = 0.01 (answers of ~2
    candidates) sparsest runs faster than min_error. Instances with no subset within eps are
    ``infeasible`` and return the min-error subset (all sizes built: the cost of one full list per half).

Errors are compared as ``|(l + r) - z|`` with ``l`` and ``r`` the halves' left-to-right sums; the
reported error is recomputed by ``solve`` from the selection (left to right over all n), which can
differ from the internal one by a few ulps.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum.keys import MASK_BITS, PC_SHIFT, PC_UNIT, masks_to_selection
from strongticket.subsetsum.problem import SubsetSumProblem
from strongticket.subsetsum.method import MethodOption, SolveOptions, SolverOutput, is_int_at_least

EXACT_MAX_N = 44
_INT64_MAX = np.iinfo(np.int64).max
_OBJ_MIN_ERROR = 0
_OBJ_SPARSEST = 1

#: Method-specific options of ``exact``.
EXACT_OPTIONS = (
    MethodOption("num_threads", "numba threads for this call (default: numba's setting)", "an integer >= 1",
                 is_int_at_least(1)),
)


@nb.njit(cache=True, nogil=True)
def _build_sorted_sums(x, lo, h, sums, keys, tmp_sums, tmp_keys, dedup):
    """Sorted subset sums of ``x[lo:lo+h]`` with their keys; returns (sums, keys, count).

    ``sums``/``keys``/``tmp_*`` are scratch buffers of length >= 2^h; the result lives in one of the
    two pairs (returned). With ``dedup`` equal sums keep only the smallest key.
    """
    sums[0] = 0.0
    keys[0] = 0
    size = 1
    for k in range(h):
        v = x[lo + k]
        add = PC_UNIT + (np.int64(1) << k)
        i = 0
        j = 0
        o = 0
        while i < size or j < size:
            if j >= size:
                s = sums[i]
                kk = keys[i]
                i += 1
            elif i >= size:
                s = sums[j] + v
                kk = keys[j] + add
                j += 1
            else:
                a = sums[i]
                b = sums[j] + v
                if a < b:
                    s = a
                    kk = keys[i]
                    i += 1
                elif b < a:
                    s = b
                    kk = keys[j] + add
                    j += 1
                else:
                    ka = keys[i]
                    kb = keys[j] + add
                    if ka <= kb:
                        s = a
                        kk = ka
                        i += 1
                    else:
                        s = b
                        kk = kb
                        j += 1
            if dedup and o > 0 and tmp_sums[o - 1] == s:
                if kk < tmp_keys[o - 1]:
                    tmp_keys[o - 1] = kk
            else:
                tmp_sums[o] = s
                tmp_keys[o] = kk
                o += 1
        sums, tmp_sums = tmp_sums, sums
        keys, tmp_keys = tmp_keys, keys
        size = o
    return sums, keys, size


@nb.njit(cache=True, nogil=True, inline="always")
def _combine(kl, kr, hl):
    pc = (kl >> PC_SHIFT) + (kr >> PC_SHIFT)
    return (pc << PC_SHIFT) | (kl & MASK_BITS) | ((kr & MASK_BITS) << hl)


@nb.njit(cache=True, nogil=True, inline="always")
def _sweep(ls, lk, l0, l1, rs, rk, r0, r1, z, hl, best_err, best_key):
    """Best (error, key) over pairs of ``ls[l0:l1]`` and ``rs[r0:r1]`` (both sorted), improving on the input."""
    if l1 <= l0 or r1 <= r0:
        return best_err, best_key
    j = r1 - 1
    for i in range(l0, l1):
        lv = ls[i]
        q = z - lv
        while j >= r0 and rs[j] > q:
            j -= 1
        if j >= r0:
            e = abs((lv + rs[j]) - z)
            if e <= best_err:
                key = _combine(lk[i], rk[j], hl)
                if e < best_err or key < best_key:
                    best_err = e
                    best_key = key
        if j + 1 < r1:
            e = abs((lv + rs[j + 1]) - z)
            if e <= best_err:
                key = _combine(lk[i], rk[j + 1], hl)
                if e < best_err or key < best_key:
                    best_err = e
                    best_key = key
    return best_err, best_key


@nb.njit(cache=True, nogil=True)
def _probe(ls, lk, l0, l1, rs, rk, r0, r1, z, hl, best_err, best_key):
    """:func:`_sweep` by binary search: the same pairs (each left sum with the last right sum <= z - l and
    the next one), compared the same way, hence the same answer; O(|L| log |R|) instead of O(|L| + |R|),
    the cheaper when the left class is much the smaller."""
    for i in range(l0, l1):
        lv = ls[i]
        q = z - lv
        lo = r0
        hi = r1
        while lo < hi:  # first index with rs > q
            mid = (lo + hi) >> 1
            if rs[mid] > q:
                hi = mid
            else:
                lo = mid + 1
        j = lo - 1
        if j >= r0:
            e = abs((lv + rs[j]) - z)
            if e <= best_err:
                key = _combine(lk[i], rk[j], hl)
                if e < best_err or key < best_key:
                    best_err = e
                    best_key = key
        if j + 1 < r1:
            e = abs((lv + rs[j + 1]) - z)
            if e <= best_err:
                key = _combine(lk[i], rk[j + 1], hl)
                if e < best_err or key < best_key:
                    best_err = e
                    best_key = key
    return best_err, best_key


@nb.njit(cache=True, nogil=True, inline="always")
def _pair_classes(ls, lk, l0, l1, rs, rk, r0, r1, z, hl, best_err, best_key):
    """Best pair of two sorted classes: a sweep, or binary searches when the left class is far smaller."""
    nl = l1 - l0
    nr = r1 - r0
    if nl <= 0 or nr <= 0:
        return best_err, best_key
    depth = 1
    while (1 << depth) < nr:
        depth += 1
    if nl * depth < nr:
        return _probe(ls, lk, l0, l1, rs, rk, r0, r1, z, hl, best_err, best_key)
    return _sweep(ls, lk, l0, l1, rs, rk, r0, r1, z, hl, best_err, best_key)


@nb.njit(cache=True, nogil=True, inline="always")
def _merge_shifted(buf, key, crow, a0, na, prow, b0, nb_, v, add, o0):
    """Merge ``buf[crow, a0:a0+na]`` with ``buf[prow, b0:b0+nb_] + v`` (keys + ``add``) by (sum, key) into
    ``buf[crow, o0:]``, then a +inf sentinel; returns the count merged (``na + nb_``).

    Both inputs must end in a +inf sentinel: the loop then needs no bounds test and no branch (a
    comparison picks the side), so it does not stall on mispredictions. Equal sums are all kept. Rows
    are passed by index, not as views: a view per call costs more than a small merge.
    """
    i = a0
    j = b0
    for o in range(o0, o0 + na + nb_):
        sa = buf[crow, i]
        sb = buf[prow, j] + v
        ka = key[crow, i]
        kb = key[prow, j] + add
        take = (sa < sb) | ((sa == sb) & (ka <= kb))
        buf[crow, o] = sa if take else sb
        key[crow, o] = ka if take else kb
        i += take
        j += 1 - take
    buf[crow, o0 + na + nb_] = np.inf
    key[crow, o0 + na + nb_] = 0
    return na + nb_


@nb.njit(cache=True, nogil=True, inline="always")
def _size_round(x, lo, h, a, buf, key, offs, prow, crow, orow):
    """Subset sums of size ``a`` of every prefix of ``x[lo:lo+h]``, from those of size ``a - 1``.

    ``C_a(j)``, the sums of the size-``a`` subsets of the first ``j`` candidates sorted by (sum, key), is
    ``merge(C_a(j - 1), C_{a-1}(j - 1) + x_{j-1})``: the prefix lists of size ``a - 1`` (row ``prow`` of
    ``buf``/``key``, each followed by a +inf sentinel; offsets and lengths in rows ``orow + prow`` and
    ``orow + 2 + prow`` of ``offs``) give those of size ``a`` (row ``crow``) in ``C(h + 1, a + 1)``
    merge steps, at most 2^h + h + 2 entries with the sentinels. Every sum is added left to right, as
    :func:`_build_sorted_sums` adds it.
    """
    coff = orow + crow
    clen = orow + 2 + crow
    if a == 0:
        for j in range(h + 1):
            buf[crow, 2 * j] = 0.0
            key[crow, 2 * j] = 0
            buf[crow, 2 * j + 1] = np.inf
            key[crow, 2 * j + 1] = 0
            offs[coff, j] = 2 * j
            offs[clen, j] = 1
        return
    poff = orow + prow
    plen = orow + 2 + prow
    buf[crow, 0] = np.inf  # C_a(a - 1) is empty: only its sentinel
    key[crow, 0] = 0
    start = 0
    count = 0
    pos = 1
    for j in range(a, h + 1):
        k = j - 1
        got = _merge_shifted(buf, key, crow, start, count, prow, offs[poff, k], offs[plen, k], x[lo + k],
                             PC_UNIT + (np.int64(1) << k), pos)
        offs[coff, j] = pos
        offs[clen, j] = got
        start = pos
        count = got
        pos += got + 1


@nb.njit(cache=True, nogil=True, inline="always")
def _copy_class(buf, key, row, s0, m, dst_s, dst_k, d0):
    """Copy the sorted list ``buf[row, s0:s0+m]`` to ``dst[d0:]`` keeping equal sums once (the first, whose
    key is the smallest); returns the new end: the size class of the full sorted list, de-duplicated."""
    d = d0
    for i in range(s0, s0 + m):
        v = buf[row, i]
        if d > d0 and dst_s[d - 1] == v:
            continue
        dst_s[d] = v
        dst_k[d] = key[row, i]
        d += 1
    return d


@nb.njit(cache=True, nogil=True)
def _sparsest(x, z, hl, hr, eps, lbuf, lkey, rbuf, rkey, offs, ls, lk, rs, rk, lstart, lend, rstart, rend):
    """Fewest candidates within ``eps``: (found, key, internal error); the min-error subset if none is.

    For k = 0, 1, ... the size-k classes of both halves are built as they are first needed
    (:func:`_size_round`: C(h + 1, k + 1) merge steps, so a small answer costs a fraction of the 2^h
    sums) and the pairs of classes (a, k - a) are swept; the first k with a pair within ``eps`` is the
    answer (then the smallest error, then the smallest key). Where no size qualifies, every class has
    been built, at the cost of one full sorted list per half, and the best pair over all sizes is
    returned. ``lbuf``/``rbuf`` (2, >= 2^h + h + 2) float64 and ``lkey``/``rkey`` (2, >= 2^h + h + 2) int64
    hold the prefix lists of two consecutive rounds; ``offs`` (8, h + 2) int64 their offsets and lengths.
    """
    g_err = np.inf
    g_key = _INT64_MAX
    lcur = 0
    rcur = 0
    lpos = 0
    rpos = 0
    for k in range(hl + hr + 1):
        if k <= hl:
            _size_round(x, 0, hl, k, lbuf, lkey, offs, lcur, 1 - lcur, 0)
            lcur = 1 - lcur
            lstart[k] = lpos
            lpos = _copy_class(lbuf, lkey, lcur, offs[lcur, hl], offs[2 + lcur, hl], ls, lk, lpos)
            lend[k] = lpos
        if k <= hr:
            _size_round(x, hl, hr, k, rbuf, rkey, offs, rcur, 1 - rcur, 4)
            rcur = 1 - rcur
            rstart[k] = rpos
            rpos = _copy_class(rbuf, rkey, rcur, offs[4 + rcur, hr], offs[6 + rcur, hr], rs, rk, rpos)
            rend[k] = rpos
        k_err = np.inf
        k_key = _INT64_MAX
        for a in range(max(0, k - hr), min(k, hl) + 1):
            b = k - a
            k_err, k_key = _pair_classes(ls, lk, lstart[a], lend[a], rs, rk, rstart[b], rend[b], z, hl, k_err, k_key)
        if k_err <= eps:
            return True, k_key, k_err
        if k_err < g_err or (k_err == g_err and k_key < g_key):
            g_err = k_err
            g_key = k_key
    return False, g_key, g_err


@nb.njit(cache=True, nogil=True)
def _mask_of_sum(x, lo, h, value, enum):
    """Bitmask of the subset of ``x[lo:lo+h]`` whose left-to-right sum equals ``value`` (smallest key if several)."""
    enum[0] = 0.0
    size = 1
    for k in range(h):
        v = x[lo + k]
        for m in range(size):
            enum[size + m] = enum[m] + v
        size *= 2
    best = _INT64_MAX
    best_mask = -1
    for m in range(size):
        if enum[m] == value:
            pc = 0
            mm = m
            while mm:
                mm &= mm - 1
                pc += 1
            key = (np.int64(pc) << PC_SHIFT) | m
            if key < best:
                best = key
                best_mask = m
    return best_mask


@nb.njit(cache=True, nogil=True, inline="always")
def _merge_step(src, dst, o, i, j, v, prev, dup):
    a = src[i]
    b = src[j] + v
    take = a <= b
    s = a if take else b
    dst[o] = s
    return i + take, j + (1 - take), s, dup | (s == prev)


@nb.njit(cache=True, nogil=True)
def _build4(x0, x1, x2, x3, lo, h, buf, tmp, dups):
    """Sorted subset sums of four targets' ``x[lo:lo+h]`` at once (rows of ``buf``), +inf sentinel.

    Four independent merges in one loop let the CPU overlap their dependency chains. Returns the
    (4, 2^h + 1) array holding the result; ``dups[g]`` is set when target g met equal sums.
    """
    for g in range(4):
        buf[g, 0] = 0.0
        buf[g, 1] = np.inf
    size = 1
    d0 = d1 = d2 = d3 = False
    for k in range(h):
        v0 = x0[lo + k]
        v1 = x1[lo + k]
        v2 = x2[lo + k]
        v3 = x3[lo + k]
        s0 = buf[0]
        s1 = buf[1]
        s2 = buf[2]
        s3 = buf[3]
        t0 = tmp[0]
        t1 = tmp[1]
        t2 = tmp[2]
        t3 = tmp[3]
        i0 = j0 = i1 = j1 = i2 = j2 = i3 = j3 = 0
        p0 = p1 = p2 = p3 = -np.inf
        for o in range(2 * size):
            i0, j0, p0, d0 = _merge_step(s0, t0, o, i0, j0, v0, p0, d0)
            i1, j1, p1, d1 = _merge_step(s1, t1, o, i1, j1, v1, p1, d1)
            i2, j2, p2, d2 = _merge_step(s2, t2, o, i2, j2, v2, p2, d2)
            i3, j3, p3, d3 = _merge_step(s3, t3, o, i3, j3, v3, p3, d3)
        size *= 2
        for g in range(4):
            tmp[g, size] = np.inf
        buf, tmp = tmp, buf
    dups[0] = d0
    dups[1] = d1
    dups[2] = d2
    dups[3] = d3
    return buf


@nb.njit(cache=True, nogil=True, inline="always")
def _rank_step(r, q, rank, ir, iq):
    take_r = r[ir] <= q[iq]
    rank[iq] = ir - 1
    return ir + take_r, iq + (1 - take_r)


@nb.njit(cache=True, nogil=True)
def _rank4(ls, rs, z, nl, nr, qs, ranks):
    """For each left sum l (ascending), the largest j with rs[j] <= z - l (-1 if none), four targets at once.

    ``qs`` (4, nl + 1) receives z - l in ascending order (l descending); ``ranks`` (4, nl + 1) the ranks
    in that order. Computed by one branchless merge of q with the right list.
    """
    for g in range(4):
        for i in range(nl):
            qs[g, i] = z[g] - ls[g, nl - 1 - i]
        qs[g, nl] = np.inf
    r0 = rs[0]
    r1 = rs[1]
    r2 = rs[2]
    r3 = rs[3]
    q0 = qs[0]
    q1 = qs[1]
    q2 = qs[2]
    q3 = qs[3]
    k0 = ranks[0]
    k1 = ranks[1]
    k2 = ranks[2]
    k3 = ranks[3]
    a0 = b0 = a1 = b1 = a2 = b2 = a3 = b3 = 0
    for _ in range(nl + nr):
        a0, b0 = _rank_step(r0, q0, k0, a0, b0)
        a1, b1 = _rank_step(r1, q1, k1, a1, b1)
        a2, b2 = _rank_step(r2, q2, k2, a2, b2)
        a3, b3 = _rank_step(r3, q3, k3, a3, b3)


@nb.njit(cache=True, nogil=True)
def _best_pair(ls, rs, rank, z, nl, errs):
    """(err, i, j, tie) of the best (left i, right j) pair given the ranks; ``tie`` flags equal errors.

    Three simple passes (errors, minimum, arg-minimum) that the compiler can vectorise; ``errs`` is
    scratch of length >= nl.
    """
    for i in range(nl):
        lv = ls[i]
        j = rank[nl - 1 - i]
        jl = max(j, 0)
        errs[i] = min(abs((lv + rs[jl]) - z), abs((lv + rs[j + 1]) - z))
    best = np.inf
    for i in range(nl):
        best = min(best, errs[i])
    count = 0
    bi = 0
    for i in range(nl):
        if errs[i] == best:
            count += 1
            bi = i
    lv = ls[bi]
    j = rank[nl - 1 - bi]
    jl = max(j, 0)
    e1 = abs((lv + rs[jl]) - z)
    e2 = abs((lv + rs[j + 1]) - z)
    tie = count > 1 or (e1 == e2 and jl != j + 1)
    return best, bi, (jl if e1 <= e2 else j + 1), tie


@nb.njit(cache=True, nogil=True)
def _build1(x, lo, h, buf, tmp):
    """Sorted subset sums of one target's ``x[lo:lo+h]``, +inf sentinel: :func:`_build4`'s merges for one row.

    ``buf`` and ``tmp`` (length >= 2^h + 1) alternate as source and result, so the result is in ``buf`` when
    ``h`` is even and in ``tmp`` when it is odd. Returns True when equal sums were met.
    """
    buf[0] = 0.0
    buf[1] = np.inf
    size = 1
    d = False
    for k in range(h):
        v = x[lo + k]
        i = j = 0
        p = -np.inf
        for o in range(2 * size):
            i, j, p, d = _merge_step(buf, tmp, o, i, j, v, p, d)
        size *= 2
        tmp[size] = np.inf
        buf, tmp = tmp, buf
    return d


@nb.njit(cache=True, nogil=True)
def _rank1(ls, rs, z, nl, nr, rank):
    """:func:`_rank4` for one target, without the ``q`` array: ``q = z - l`` is formed as the merge reads it
    (the same subtraction, hence the same values); ``rank`` (>= nl + 1) receives the ranks in q order."""
    ir = 0
    iq = 0
    for _ in range(nl + nr):
        q = z - ls[max(nl - 1 - iq, 0)]
        q = q if iq < nl else np.inf
        take_r = rs[ir] <= q
        rank[iq] = ir - 1
        ir += take_r
        iq += 1 - take_r


@nb.njit(cache=True, nogil=True)
def _min_error_one(x, z, hl, hr, tables, keys, rank):
    """(key, internal error) of one target's ``min_error`` optimum in three sum tables: the one-target path.

    The same answer as the four-target path (:func:`_build4`, :func:`_rank4`, :func:`_best_pair`, the keyed
    path on equal sums or errors): the same merges, neighbour rule and comparisons, one target at a time.
    ``tables`` (3, >= 2^max(hl, hr) + 1) float64 hold the left sums, the right sums and a scratch table (the
    build's other half, then the errors, then the enumeration that recovers the masks); ``rank``
    (>= 2^hl + 1) int32. ``keys`` (3, >= 2^max(hl, hr)) int64 are written only by the keyed path (ties), so
    they cost no resident memory otherwise. Tables are rows picked by the parity of ``h``
    (:func:`_build1` and :func:`_build_sorted_sums` leave the result in their first buffer when ``h`` is even).
    """
    nl = 1 << hl
    nr = 1 << hr
    li = 0 if hl % 2 == 0 else 1
    lf = 1 - li
    ri = 2 if hr % 2 == 0 else lf
    fi = 3 - li - ri
    dup = _build1(x, 0, hl, tables[0], tables[1])
    dup |= _build1(x, hl, hr, tables[2], tables[lf])
    if not dup:
        ls = tables[li]
        rs = tables[ri]
        _rank1(ls, rs, z, nl, nr, rank)
        err, bi, bj, tie = _best_pair(ls, rs, rank, z, nl, tables[fi])
        if not tie:
            lv = ls[bi]
            rv = rs[bj]
            ml = _mask_of_sum(x, 0, hl, lv, tables[fi])
            mr = _mask_of_sum(x, hl, hr, rv, tables[fi])
            return np.int64(ml) | (np.int64(mr) << hl), err
    ls, lk, nl = _build_sorted_sums(x, 0, hl, tables[0], keys[0], tables[1], keys[1], True)
    rs, rk, nr = _build_sorted_sums(x, hl, hr, tables[2], keys[2], tables[lf], keys[lf], True)
    err, key = _sweep(ls, lk, 0, nl, rs, rk, 0, nr, z, hl, np.inf, _INT64_MAX)
    return key, err


@nb.njit(cache=True, parallel=True)
def _solve_batch(cands, targets, objective, eps, out_keys, out_err, out_status, nchunks, one_target):
    T, n = cands.shape
    hl = n // 2
    hr = n - hl
    cap = 1 << hr
    for c in nb.prange(nchunks):
        start = c * T // nchunks
        stop = (c + 1) * T // nchunks
        # Each path allocates only its own buffers (size 1 for the others', which keeps numba's types the
        # same on every branch): at n = 44 a 2^22-entry buffer is 32 MB per thread.
        me = objective == _OBJ_MIN_ERROR
        one = me and one_target
        m_cap = cap if (me and not one) else 1
        s_cap = 1 if me else cap
        o_cap = cap if one else 1
        o_tables = np.empty((3, o_cap + 1), np.float64)
        o_keys = np.empty((3, o_cap), np.int64)
        o_rank = np.empty(o_cap + 1, np.int32)
        b0 = np.empty(m_cap + 1, np.float64)
        b1 = np.empty(m_cap + 1, np.float64)
        b2 = np.empty(m_cap + 1, np.float64)
        b3 = np.empty(m_cap + 1, np.float64)
        k0 = np.empty(m_cap, np.int64)
        k1 = np.empty(m_cap, np.int64)
        k2 = np.empty(m_cap, np.int64)
        k3 = np.empty(m_cap, np.int64)
        g_l0 = np.empty((4, m_cap + 1), np.float64)
        g_l1 = np.empty((4, m_cap + 1), np.float64)
        g_r0 = np.empty((4, m_cap + 1), np.float64)
        g_r1 = np.empty((4, m_cap + 1), np.float64)
        g_q = np.empty((4, m_cap + 1), np.float64)
        g_rank = np.empty((4, m_cap + 1), np.int64)
        g_z = np.empty(4, np.float64)
        dl = np.zeros(4, np.bool_)
        dr = np.zeros(4, np.bool_)
        redo = np.zeros(stop - start, np.bool_)
        s0 = np.empty(s_cap, np.float64)
        s1 = np.empty(s_cap, np.float64)
        q0 = np.empty(s_cap, np.int64)
        q1 = np.empty(s_cap, np.int64)
        lstart = np.empty(hl + 2, np.int64)
        rstart = np.empty(hr + 2, np.int64)
        lend = np.empty(hl + 2, np.int64)
        rend = np.empty(hr + 2, np.int64)
        sp_lbuf = np.empty((2, 1 if me else (1 << hl) + hl + 2), np.float64)
        sp_lkey = np.empty((2, 1 if me else (1 << hl) + hl + 2), np.int64)
        sp_rbuf = np.empty((2, s_cap + hr + 2), np.float64)
        sp_rkey = np.empty((2, s_cap + hr + 2), np.int64)
        sp_offs = np.empty((8, hr + 2), np.int64)
        if one:
            for t in range(start, stop):
                key, err = _min_error_one(cands[t], targets[t], hl, hr, o_tables, o_keys, o_rank)
                out_keys[t] = key
                out_err[t] = err
                out_status[t] = 0 if (eps <= 0.0 or err <= eps) else 2
        elif objective == _OBJ_MIN_ERROR:
            nl = 1 << hl
            nr = 1 << hr
            for t0 in range(start, stop, 4):
                ta = t0
                tb = min(t0 + 1, stop - 1)
                tc = min(t0 + 2, stop - 1)
                td = min(t0 + 3, stop - 1)
                g_z[0] = targets[ta]
                g_z[1] = targets[tb]
                g_z[2] = targets[tc]
                g_z[3] = targets[td]
                ls4 = _build4(cands[ta], cands[tb], cands[tc], cands[td], 0, hl, g_l0, g_l1, dl)
                rs4 = _build4(cands[ta], cands[tb], cands[tc], cands[td], hl, hr, g_r0, g_r1, dr)
                _rank4(ls4, rs4, g_z, nl, nr, g_q, g_rank)
                for g in range(4):
                    t = min(t0 + g, stop - 1)
                    if dl[g] or dr[g]:
                        redo[t - start] = True
                        continue
                    err, bi, bj, tie = _best_pair(ls4[g], rs4[g], g_rank[g], g_z[g], nl, g_q[g])
                    if tie:
                        redo[t - start] = True
                        continue
                    x = cands[t]
                    lfree = g_l1[g] if ls4 is g_l0 else g_l0[g]
                    rfree = g_r1[g] if rs4 is g_r0 else g_r0[g]
                    ml = _mask_of_sum(x, 0, hl, ls4[g, bi], lfree)
                    mr = _mask_of_sum(x, hl, hr, rs4[g, bj], rfree)
                    out_keys[t] = np.int64(ml) | (np.int64(mr) << hl)
                    out_err[t] = err
                    out_status[t] = 0 if (eps <= 0.0 or err <= eps) else 2
        else:
            redo[:] = True
        for t in range(start, stop):
            if not redo[t - start]:
                continue
            x = cands[t]
            z = targets[t]
            if objective == _OBJ_MIN_ERROR:  # the keyed path: breaks ties by key
                ls, lk, nl = _build_sorted_sums(x, 0, hl, b0, k0, b1, k1, True)
                rs, rk, nr = _build_sorted_sums(x, hl, hr, b2, k2, b3, k3, True)
                err, key = _sweep(ls, lk, 0, nl, rs, rk, 0, nr, z, hl, np.inf, _INT64_MAX)
                out_keys[t] = key
                out_err[t] = err
                out_status[t] = 0 if (eps <= 0.0 or err <= eps) else 2
                continue
            found, key, err = _sparsest(x, z, hl, hr, eps, sp_lbuf, sp_lkey, sp_rbuf, sp_rkey, sp_offs,
                                        s0, q0, s1, q1, lstart, lend, rstart, rend)
            out_keys[t] = key
            out_err[t] = err
            out_status[t] = 0 if found else 2


def four_target_bytes(n: int) -> int:
    """Bytes per thread the four-target ``min_error`` path writes at ``n`` candidates: six (4, 2^hr + 1) tables
    of 8-byte entries (two builds per half, the ``q`` values, the ranks), ``hr = n - n // 2``."""
    return 6 * 4 * 8 * ((1 << (n - n // 2)) + 1)


def one_target_bytes(n: int, keyed: bool = False) -> int:
    """Bytes per thread the one-target ``min_error`` path writes at ``n`` candidates: three float64 sum tables
    and int32 ranks of 2^hr + 1 entries; with ``keyed`` (an instance with equal sums or errors), also the keyed
    path's three int64 key tables of 2^hr entries."""
    m = 1 << (n - n // 2)
    return (3 * 8 + 4) * (m + 1) + (3 * 8 * m if keyed else 0)


#: Largest per-thread working memory of the four-target ``min_error`` path (:func:`four_target_bytes`: 48 MB
#: at n = 36). Above it (n >= 37) targets are solved one at a time (:func:`one_target_bytes`: 28 MB at n = 40,
#: 112 MB at n = 44, where the four-target path writes 192 and 768 MB), with the same answers. Interleaving four
#: targets pays while their tables stay near the caches (2.3x faster at n = 21-26, 1.3x at n = 33-35, one
#: thread); from n = 36 on, the one-target path is as fast (measured: ``experiments/exact_memory_bench.py``).
FOUR_TARGET_MAX_BYTES = 64 << 20


def solve_exact_keys(candidates: np.ndarray, targets: np.ndarray, objective: str = "min_error",
                     eps: float | None = None, num_threads: int | None = None,
                     one_target: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the compiled kernel; returns (keys (T,) int64, internal errors (T,), status (T,) int8).

    ``candidates`` (T, n) and ``targets`` (T,) must be C-contiguous float64 and finite (see
    :class:`SubsetSumProblem`). Bitmask of the selection: ``keys & MASK_BITS``. ``one_target`` picks the
    ``min_error`` path (the answers do not depend on it): None, the four-target one while
    :func:`four_target_bytes` is at most :data:`FOUR_TARGET_MAX_BYTES`, else the one-target one.
    """
    T, n = candidates.shape
    if one_target is None:
        one_target = four_target_bytes(n) > FOUR_TARGET_MAX_BYTES
    keys = np.empty(T, dtype=np.int64)
    err = np.empty(T, dtype=np.float64)
    status = np.empty(T, dtype=np.int8)
    threads = num_threads or nb.get_num_threads()
    # Enough chunks to balance uneven work (sparsest), few enough that buffer allocation is negligible.
    nchunks = int(min(T, max(threads * 8, T // 4096)))
    obj = _OBJ_MIN_ERROR if objective == "min_error" else _OBJ_SPARSEST
    e = float(eps) if eps is not None else -1.0
    if num_threads is not None:
        prev = nb.get_num_threads()
        nb.set_num_threads(num_threads)
        try:
            _solve_batch(candidates, targets, obj, e, keys, err, status, nchunks, bool(one_target))
        finally:
            nb.set_num_threads(prev)
    else:
        _solve_batch(candidates, targets, obj, e, keys, err, status, nchunks, bool(one_target))
    return keys, err, status


def check_exact(problem: SubsetSumProblem, options: SolveOptions) -> None:
    n = problem.num_candidates
    if n > EXACT_MAX_N:
        raise MethodUnavailableError(
            f"method 'exact' needs 2^(n/2) sums per half in memory and takes n <= {EXACT_MAX_N}, got n={n}; "
            "use method 'milp' with a time_limit or 'local_search' (heuristic) instead")


def solve_exact(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    threads = options.extra.get("num_threads")
    keys, _, status = solve_exact_keys(problem.candidates, problem.targets, options.objective, options.eps, threads)
    sel = masks_to_selection(keys & MASK_BITS, problem.num_candidates)
    return SolverOutput(selection=sel, status=status, info={"threads": threads or nb.get_num_threads()})
