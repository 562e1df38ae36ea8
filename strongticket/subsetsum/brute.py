"""Brute force over all 2^n subsets: the test oracle (n <= 20), for RSS and MRSS.

Subset sums are built by doubling, ``S(m | 1<<k) = S(m) + x_k``, which adds the selected candidates
left to right exactly as :func:`~strongticket.subsetsum.problem.selection_sums` does, so the errors
seen here are the errors ``solve`` reports. Ties are broken by the subset key (size, then bitmask).
"""

from __future__ import annotations

import numpy as np

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum.keys import PC_SHIFT, half_keys, masks_to_selection
from strongticket.subsetsum.problem import Status, SubsetSumProblem
from strongticket.subsetsum.method import SolveOptions, SolverOutput

BRUTE_MAX_N = 20


def all_subset_sums(x: np.ndarray) -> np.ndarray:
    """Sums of all 2^n subsets of ``x`` (n,) or (n, d), indexed by bitmask: shape (2^n,) or (2^n, d)."""
    sums = np.zeros((1,) + x.shape[1:], dtype=np.float64)
    for k in range(x.shape[0]):
        sums = np.concatenate([sums, sums + x[k]], axis=0)
    return sums


def check_brute(problem: SubsetSumProblem, options: SolveOptions) -> None:
    if problem.num_candidates > BRUTE_MAX_N:
        raise MethodUnavailableError(
            f"method 'brute' enumerates 2^n subsets and takes n <= {BRUTE_MAX_N}, got n={problem.num_candidates}; "
            "use method 'exact' (1-D) or 'mrss_exact' (MRSS)")


def solve_brute(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    n = problem.num_candidates
    keys = half_keys(n)
    pcs = keys >> PC_SHIFT
    T = problem.num_instances
    best = np.zeros(T, dtype=np.int64)
    status = np.full(T, Status.OPTIMAL, dtype=np.int8)
    for t in range(T):
        sums = all_subset_sums(problem.candidates[t])
        diff = np.abs(problem.targets[t] - sums)
        if diff.ndim == 2:
            err = diff.max(axis=1) if problem.norm == "linf" else np.sqrt((diff * diff).sum(axis=1))
        else:
            err = diff
        if options.objective == "min_error":
            cand = err == err.min()
        elif options.objective == "sparsest":
            ok = err <= options.eps
            if not ok.any():
                status[t] = Status.INFEASIBLE
                cand = err == err.min()
            else:
                k = pcs[ok].min()
                in_k = ok & (pcs == k)
                cand = in_k & (err == err[in_k].min())
        else:  # fixed_size
            in_k = pcs == options.size
            if not in_k.any():
                status[t] = Status.INFEASIBLE
                cand = np.zeros_like(in_k)
                cand[0] = True
            else:
                cand = in_k & (err == err[in_k].min())
        best[t] = int(np.argmin(np.where(cand, keys, np.iinfo(np.int64).max)))
        if options.objective != "sparsest" and options.eps is not None and err[best[t]] > options.eps:
            status[t] = Status.INFEASIBLE
    return SolverOutput(selection=masks_to_selection(best, n), status=status)
