"""Throughput of ``objective="sparsest"`` against ``min_error``, and against the reference search of Burkholz 2022.

Part 1: the exact solver's throughput (targets/s) for ``sparsest`` and ``min_error`` at each n, on the
same instances in the same process (numba compiled first; the two objectives are timed alternately and
the best of ``--repeats`` kept), and their ratio. Read the ratio, not the absolute figures, on a shared
machine.

Part 2: the smallest-subset search that the code of Burkholz (2022, "Most activation functions can win
the lottery without excessive depth", github.com/RelationalML/LT-existence, ``main_ssa_stats.py``) runs
for every target weight, re-implemented below as the baseline: for sizes k = 0, 1, ..., up to ``n - 1``,
enumerate the size-k subsets in lexicographic order, keep the best error seen so far (strict
improvements only) and stop at the first subset within eps; if none is, return the best error seen.
On the same instances (n = 15, eps = 0.01 by default) we report whether both find a subset of the same
size and fail on the same instances, and the speed ratio.

Usage::

    python experiments/bench_sparsest.py                        # n = 15, 18, 21; eps = 0.01
    python experiments/bench_sparsest.py --ns 21 --eps 0.001 --reference-targets 0
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations

import numba
import numpy as np

from strongticket.subsetsum import Status, solve
from strongticket.subsetsum.instances import random_problem


def reference_smallest_subset(target: float, numbers: np.ndarray, eps: float, max_size: int) -> tuple[float, int]:
    """The baseline search (a re-implementation of Burkholz 2022's exhaustive search): (error, subset size).

    Sizes k = 0 .. min(max_size, n) - 1 in turn; within a size, combinations in lexicographic order;
    the best error only moves on a strict improvement; the search stops at the first subset within eps.
    """
    n = len(numbers)
    best_err = abs(target)
    best_size = 0
    for k in range(min(max_size, n)):
        for ind in combinations(range(n), k):
            idx = np.array(ind, dtype=int)
            err = abs(target - np.sum(numbers[idx]))
            if err < best_err:
                best_err = err
                best_size = k
            if err <= eps:
                break
        if best_err <= eps:
            break
    return float(best_err), best_size


def throughput(problem, objective: str, eps: float | None, repeats: int) -> float:
    """Best targets/s of ``repeats`` timed runs of the exact solver."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        solve(problem, "exact", objective=objective, eps=eps)
        best = min(best, time.perf_counter() - t0)
    return problem.num_instances / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", default="15,18,21", help="candidate counts, comma-separated")
    parser.add_argument("--eps", type=float, default=0.01, help="tolerance of the sparsest objective")
    parser.add_argument("--targets", type=int, default=20_000, help="instances per n for the exact solver")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per objective (best kept)")
    parser.add_argument("--reference-n", type=int, default=15, help="n of the comparison with the reference search")
    parser.add_argument("--reference-targets", type=int, default=500,
                        help="instances the (slow, pure Python) reference search solves; 0 skips part 2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ns = [int(v) for v in args.ns.split(",") if v.strip()]

    print(f"numba threads: {numba.get_num_threads()}, eps = {args.eps:g}, T = {args.targets}")
    print(f"{'n':>3} {'min_error /s':>13} {'sparsest /s':>12} {'sparsest/min_error':>19} {'mean size':>10}")
    rates = {}
    for n in ns:
        problem = random_problem(args.targets, n, seed=args.seed)
        warm = problem.subset(slice(0, 8))
        solve(warm, "exact")
        solve(warm, "exact", objective="sparsest", eps=args.eps)
        me = sp = 0.0
        for _ in range(args.repeats):  # alternate, so that a busy spell hits both objectives alike
            me = max(me, throughput(problem, "min_error", None, 1))
            sp = max(sp, throughput(problem, "sparsest", args.eps, 1))
        size = solve(problem, "exact", objective="sparsest", eps=args.eps).num_selected.mean()
        rates[n] = sp
        print(f"{n:>3} {me:>13,.0f} {sp:>12,.0f} {sp / me:>19.2f} {size:>10.2f}")

    if args.reference_targets <= 0:
        return
    n, eps = args.reference_n, args.eps
    problem = random_problem(max(args.targets, args.reference_targets), n, seed=args.seed)
    sub = problem.subset(slice(0, args.reference_targets))
    ours = solve(sub, "exact", objective="sparsest", eps=eps)
    # Time the two in alternating slices, best of each, so that a busy spell on a shared machine hits both.
    ref, ref_seconds, ours_rate = [], [], 0.0
    for part in np.array_split(np.arange(sub.num_instances), max(1, args.repeats)):
        ours_rate = max(ours_rate, throughput(problem, "sparsest", eps, 1))
        t0 = time.perf_counter()
        ref += [reference_smallest_subset(float(sub.targets[i]), sub.candidates[i], eps, n) for i in part]
        ref_seconds.append((time.perf_counter() - t0) / max(1, len(part)))
    ref_rate = 1.0 / min(ref_seconds)
    ref_err = np.array([e for e, _ in ref])
    ref_size = np.array([k for _, k in ref])
    ref_fail = ref_err > eps
    our_fail = ours.status == Status.INFEASIBLE
    ok = ~ref_fail & ~our_fail
    print(f"\nreference search (Burkholz 2022, re-implemented) on {sub.num_instances} instances, n = {n}, eps = {eps:g}:")
    print(f"  failure rate: reference {ref_fail.mean():.4f}, ours {our_fail.mean():.4f}; "
          f"same failing instances: {bool(np.array_equal(ref_fail, our_fail))}")
    print(f"  same subset size where both succeed: {np.mean(ours.num_selected[ok] == ref_size[ok]):.4f} "
          f"of {int(ok.sum())} (ours then takes the smallest error of that size, the reference the first found)")
    print(f"  throughput: reference {ref_rate:,.0f} targets/s (one Python thread), ours {ours_rate:,.0f} "
          f"targets/s ({numba.get_num_threads()} threads): {ours_rate / ref_rate:,.0f}x")


if __name__ == "__main__":
    main()
