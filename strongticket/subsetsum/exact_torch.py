"""Exact 1-D subset sum in torch, batched over targets: meet in the middle with sort + searchsorted.

The same algorithm and tie-breaking as :mod:`strongticket.subsetsum.exact`, expressed as whole-batch
tensor operations so that it runs on a GPU (it also runs on CPU tensors, slowly, which the tests use):

1. each half's 2^h subset sums by doubling, ``S(m | 1<<k) = S(m) + x_k`` (the same additions, in
   the same order, as the CPU merge, hence bit-identical sums);
2. sort every row by (sum, key), where the key orders subsets by size then bitmask;
3. for every left sum ``l``: ``q = z - l``, the right neighbours are the last ``r <= q`` (moved to
   the first of its run of equal sums, which has the smallest key) and the first ``r > q``;
4. the best pair minimises ``|(l + r) - z|``, ties broken by the combined key.

Rows are processed in chunks sized to ``memory_budget`` bytes, so memory does not grow with T.
"""

from __future__ import annotations

from typing import Any


from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum.keys import MASK_BITS, PC_SHIFT, half_keys, masks_to_selection
from strongticket.subsetsum.problem import Status, SubsetSumProblem
from strongticket.subsetsum.method import MethodOption, SolveOptions, SolverOutput, is_int_at_least

TORCH_MAX_N = 40
DEFAULT_MEMORY_BUDGET = 1 << 30
_BYTES_PER_SUM = 96  # sums, keys, sort indices, queries and candidate errors per half-sum, generously

#: Method-specific options of ``torch``.
TORCH_OPTIONS = (
    MethodOption("memory_budget", f"bytes of device memory per chunk of rows (default {DEFAULT_MEMORY_BUDGET})",
                 "an integer >= 1", is_int_at_least(1)),
)


def _sorted_half(x: Any, keys: Any) -> tuple[Any, Any]:
    """Rows of subset sums of ``x`` (Tc, h) sorted by (sum, key): (sums (Tc, 2^h), keys (Tc, 2^h))."""
    import torch

    sums = torch.zeros((x.shape[0], 1), dtype=torch.float64, device=x.device)
    for k in range(x.shape[1]):
        sums = torch.cat([sums, sums + x[:, k:k + 1]], dim=1)
    by_key = torch.argsort(keys)
    sums = sums[:, by_key]
    sorted_sums, order = torch.sort(sums, dim=1, stable=True)
    return sorted_sums, keys[by_key][order]


def _solve_chunk(x: Any, z: Any, hl: int, keys_l: Any, keys_r: Any) -> tuple[Any, Any]:
    """Best combined key and internal error per row of the chunk."""
    import torch

    ls, lk = _sorted_half(x[:, :hl], keys_l)
    rs, rk = _sorted_half(x[:, hl:], keys_r)
    nr = rs.shape[1]
    q = z[:, None] - ls
    hi = torch.searchsorted(rs, q, right=True)            # first r > q
    lo = (hi - 1).clamp_min(0)                            # last r <= q (or 0 when none)
    lo = torch.searchsorted(rs, torch.gather(rs, 1, lo), right=False)  # first of its run of equal sums
    hi_c = hi.clamp_max(nr - 1)
    r_lo = torch.gather(rs, 1, lo)
    r_hi = torch.gather(rs, 1, hi_c)
    e_lo = ((ls + r_lo) - z[:, None]).abs()
    e_hi = torch.where(hi < nr, ((ls + r_hi) - z[:, None]).abs(), torch.full_like(r_hi, float("inf")))
    k_lo = torch.gather(rk, 1, lo)
    k_hi = torch.gather(rk, 1, hi_c)
    err = torch.cat([e_lo, e_hi], dim=1)
    kr = torch.cat([k_lo, k_hi], dim=1)
    kl = torch.cat([lk, lk], dim=1)
    key = (((kl >> PC_SHIFT) + (kr >> PC_SHIFT)) << PC_SHIFT) | (kl & int(MASK_BITS)) | ((kr & int(MASK_BITS)) << hl)
    best_err = err.min(dim=1).values
    big = torch.iinfo(torch.int64).max
    best_key = torch.where(err == best_err[:, None], key, torch.full_like(key, big)).min(dim=1).values
    return best_key, best_err


def solve_torch_keys(candidates: Any, targets: Any, *, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> tuple[Any, Any]:
    """Best subset key (T,) int64 and internal error (T,) for float64 tensors on any device."""
    import torch

    T, n = candidates.shape
    hl = n // 2
    dev = candidates.device
    keys_l = torch.from_numpy(half_keys(hl)).to(dev)
    keys_r = torch.from_numpy(half_keys(n - hl)).to(dev)
    per_row = _BYTES_PER_SUM * ((1 << hl) + (1 << (n - hl)))
    chunk = max(1, min(T, memory_budget // per_row))
    out_keys = torch.empty(T, dtype=torch.int64, device=dev)
    out_err = torch.empty(T, dtype=torch.float64, device=dev)
    for s in range(0, T, chunk):
        k, e = _solve_chunk(candidates[s:s + chunk], targets[s:s + chunk], hl, keys_l, keys_r)
        out_keys[s:s + chunk] = k
        out_err[s:s + chunk] = e
    return out_keys, out_err


def check_torch(problem: SubsetSumProblem, options: SolveOptions) -> None:
    if problem.num_candidates > TORCH_MAX_N:
        raise MethodUnavailableError(
            f"method 'torch' keeps 2^(n/2) sums per row on the device and takes n <= {TORCH_MAX_N}, got "
            f"n={problem.num_candidates}; use 'milp' with a time_limit or 'local_search'")


def solve_torch(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    import torch

    x, z = problem.candidates, problem.targets
    if not problem.is_torch:
        x, z = torch.from_numpy(x), torch.from_numpy(z)
    budget = int(options.extra.get("memory_budget", DEFAULT_MEMORY_BUDGET))
    keys, err = solve_torch_keys(x, z, memory_budget=budget)
    status = torch.full(keys.shape, int(Status.OPTIMAL), dtype=torch.int8, device=keys.device)
    if options.eps is not None:
        status[err > options.eps] = int(Status.INFEASIBLE)
    sel = masks_to_selection(keys & int(MASK_BITS), problem.num_candidates)
    if not problem.is_torch:
        sel, status = sel.numpy(), status.numpy()
    return SolverOutput(selection=sel, status=status, info={"device": str(x.device), "memory_budget": budget})
