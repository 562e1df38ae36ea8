"""Benchmark: mrss_search against the plain best-flip/best-swap descent, same instances, same process.

Instances: normally-scaled normal candidates (a scalar N(0, 1) times an N(0, I_d) vector: the samples of
structured pruning, da Cunha, d'Amore, Natale 2023), targets U[-1, 1]^d, error in l_inf. For each (d, n):
median and max error of both methods and their throughput. CPU time is reported beside wall time because
the machine may be shared: ``targets/s (2 cores, from CPU time)`` = 2 / (CPU seconds per target), the
throughput two otherwise idle cores would give.

    python experiments/bench_mrss.py --targets 64 --dims 9 25 --ns 64 128 256 512 1024 --out results.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from numba import njit, prange

from strongticket.subsetsum.mrss_search import mrss_search


@njit(cache=True, inline="always")
def _linf_shift(r, a, sa, b, sb, bound):
    c = 0.0
    for k in range(r.shape[0]):
        v = abs(r[k] - sa * a[k] - sb * b[k])
        if v > c:
            c = v
            if c >= bound:
                return c
    return c


@njit(cache=True, parallel=True)
def descent_kernel(x, z, out_sel, out_err):
    """The baseline: from the empty set, apply the best single flip or swap (one in, one out) while the
    l_inf error strictly drops."""
    T, n, d = x.shape
    zero = np.zeros(d)
    for t in prange(T):
        xt = x[t]
        sel = np.zeros(n, dtype=np.bool_)
        r = z[t].copy()
        c = np.max(np.abs(r))
        while True:
            best = c
            bi = -1
            bj = -1
            for i in range(n):
                ci = _linf_shift(r, xt[i], -1.0 if sel[i] else 1.0, zero, 0.0, best)
                if ci < best:
                    best, bi, bj = ci, i, -1
            for i in range(n):
                if not sel[i]:
                    continue
                for j in range(n):
                    if sel[j]:
                        continue
                    cij = _linf_shift(r, xt[i], -1.0, xt[j], 1.0, best)
                    if cij < best:
                        best, bi, bj = cij, i, j
            if bi < 0:
                break
            for k in range(d):
                r[k] -= (-1.0 if sel[bi] else 1.0) * xt[bi, k]
            sel[bi] = not sel[bi]
            if bj >= 0:
                for k in range(d):
                    r[k] -= xt[bj, k]
                sel[bj] = True
            c = best
        out_sel[t] = sel
        out_err[t] = c


def instances(T: int, n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Normally-scaled normal candidates (T, n, d) and targets U[-1, 1]^d (T, d)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, n, 1)) * rng.standard_normal((T, n, d)), rng.uniform(-1.0, 1.0, (T, d))


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=64)
    ap.add_argument("--dims", type=int, nargs="+", default=[9, 25])
    ap.add_argument("--ns", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    x0, z0 = instances(2, 16, 3, 0)  # compile both before timing
    descent_kernel(x0, z0, np.zeros((2, 16), bool), np.zeros(2))
    mrss_search(x0, z0, steps=1)
    rows = []
    print("| d | n | descent median | descent max | search median | search max | ratio (median) | "
          "descent targets/s (2 cores) | search targets/s (2 cores) | search wall targets/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for d in a.dims:
        for n in a.ns:
            x, z = instances(a.targets, n, d, a.seed + 1000 * d + n)
            sel, err = np.zeros((a.targets, n), bool), np.zeros(a.targets)
            _, _, c_desc = timed(lambda: descent_kernel(x, z, sel, err))
            res, w_s, c_s = timed(lambda: mrss_search(x, z, seed=a.seed))
            row = {"d": d, "n": n, "targets": a.targets,
                   "descent_median": float(np.median(err)), "descent_max": float(err.max()),
                   "search_median": float(np.median(res.errors)), "search_max": float(res.errors.max()),
                   "descent_tps_2cores": 2 * a.targets / c_desc, "search_tps_2cores": 2 * a.targets / c_s,
                   "search_wall_tps": a.targets / w_s}
            rows.append(row)
            print(f"| {d} | {n} | {row['descent_median']:.4f} | {row['descent_max']:.4f} | {row['search_median']:.4f} "
                  f"| {row['search_max']:.4f} | {row['descent_median'] / max(row['search_median'], 1e-300):.2f} | "
                  f"{row['descent_tps_2cores']:.0f} | {row['search_tps_2cores']:.0f} | {row['search_wall_tps']:.0f} |",
                  flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
