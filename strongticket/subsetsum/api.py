"""``solve``: one entry point for every subset-sum method, with ``method="auto"`` dispatch."""

from __future__ import annotations

import math
import numbers
import time
from typing import Any

import numpy as np

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum import registry
from strongticket.subsetsum.method import SolveOptions
from strongticket.validation import check_generator_seed
from strongticket.subsetsum.problem import (
    OBJECTIVES,
    Status,
    SubsetSumProblem,
    SubsetSumResult,
    approximation_errors,
    selection_sums,
)


def _check_options(objective: str, eps: float | None, time_limit: float | None, size: int | None) -> None:
    if objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise InputError(f"eps must be a finite number > 0, got {eps!r}")
    if objective == "sparsest" and eps is None:
        raise InputError("objective 'sparsest' needs eps (the error every kept subset must meet), got eps=None")
    if objective == "fixed_size" and (isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 0):
        raise InputError(f"objective 'fixed_size' needs size >= 0 (the number of candidates to keep), got {size!r}")
    if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
        raise InputError(f"time_limit must be a number of seconds > 0, got {time_limit!r}")


def choose_method(problem: SubsetSumProblem, options: SolveOptions) -> str:
    """The method ``auto`` picks for ``problem``.

    1-D: ``torch`` for CUDA tensors (``min_error``), ``exact`` (compiled meet-in-the-middle) up to
    n = 44, else ``milp`` with a time limit when one was given, else ``local_search``. ``fixed_size``
    always goes to ``milp``. MRSS: ``mrss_exact`` while 2^(n/2)·d stays small, else ``mrss_search`` for
    ``min_error`` (with or without a time limit: at d = 9, n = 256 it reaches a median l_inf error ten times
    below CP-SAT's after 10 s, in about a millisecond; ``docs/solvers.md``), else ``mrss_milp`` with a time
    limit when one was given, else ``mrss_local_search``.
    ``brute`` (n <= 20) is the last resort.
    """
    n, d = problem.num_candidates, problem.dim
    if options.objective == "fixed_size":
        order = ["milp"]
    elif not problem.multidim:
        order = []
        if problem.is_torch and problem.device.startswith("cuda") and options.objective == "min_error":
            order.append("torch")
        order += ["exact", "milp" if options.time_limit else "local_search", "local_search"]
    else:
        order = ["mrss_exact", "mrss_search"]
        if options.time_limit:
            order.append("mrss_milp")
        order.append("mrss_local_search")
    order.append("brute")  # the oracle, for small n, when nothing better applies
    reasons = []
    for name in order:
        try:
            registry.ensure_supports(registry.get(name), problem, options)
            return name
        except MethodUnavailableError as exc:
            reasons.append(str(exc))
    raise MethodUnavailableError(
        f"no method solves n={n}, d={d} with objective {options.objective!r}: " + "; ".join(reasons))


def solve(
    problem: SubsetSumProblem,
    method: str = "auto",
    objective: str = "min_error",
    eps: float | None = None,
    time_limit: float | None = None,
    *,
    size: int | None = None,
    seed: int = 0,
    **extra: Any,
) -> SubsetSumResult:
    """Solve every instance of ``problem`` and return one :class:`SubsetSumResult`.

    Parameters
    ----------
    problem : SubsetSumProblem
        T instances (RSS or MRSS); numpy arrays, or torch tensors solved on their device.
    method : str
        ``"auto"`` or a registered name (``registry.names()``): ``exact``, ``torch``, ``brute``, ``milp``,
        ``greedy``, ``local_search``, ``mrss_exact``, ...
    objective : {"min_error", "sparsest", "fixed_size"}
        See :data:`strongticket.subsetsum.problem.OBJECTIVES`.
    eps : float, optional
        Error tolerance (> 0). Required for ``sparsest``; with ``min_error`` an exact method reports
        instances whose best error exceeds it as ``infeasible``.
    time_limit : float, optional
        Seconds, for the methods that stop early (``registry.stopping_early()``; per instance for ``milp`` and
        ``mrss_milp``, per call for the others); every other method ignores it (``rss solve`` refuses it for
        them: :func:`strongticket.subsetsum.registry.check_time_limit`).
    size : int, optional
        Subset size for ``fixed_size`` (0 to n; only with that objective).
    seed : int
        Seed for methods with random restarts.
    **extra
        Method-specific options, each declared by the method (``registry.METHODS[name].options``);
        an option the method does not declare raises :class:`InputError`.

    Returns
    -------
    SubsetSumResult
        Sums and errors recomputed from the selection by :func:`selection_sums` and
        :func:`approximation_errors`; statuses as the method proved them.
    """
    if not isinstance(problem, SubsetSumProblem):
        raise InputError(f"problem must be a SubsetSumProblem, got {type(problem).__name__}")
    _check_options(objective, eps, time_limit, size)
    seed = check_generator_seed("seed", seed)
    if size is not None and objective != "fixed_size":
        raise InputError(f"size is used only by objective 'fixed_size', got size={size!r} with objective {objective!r}")
    if objective == "fixed_size" and size > problem.num_candidates:
        raise InputError(f"size must be <= n, the {problem.num_candidates} candidates per instance, got {size}")
    options = SolveOptions(objective=objective, eps=eps, time_limit=time_limit, size=size, seed=seed, extra=extra)
    name = choose_method(problem, options) if method == "auto" else method
    info = registry.get(name)
    registry.check_options(info, extra)
    registry.ensure_supports(info, problem, options)
    if problem.is_torch and name != "torch":
        problem = problem.to_numpy()
    start = time.perf_counter()
    out = info.fn(problem, options)
    seconds = time.perf_counter() - start
    sums = selection_sums(problem.candidates, out.selection)
    errors = approximation_errors(problem.targets, sums, problem.norm)
    selection, status = out.selection, out.status
    if problem.is_torch:
        selection, status = selection.cpu().numpy(), status.cpu().numpy()
        sums, errors = sums.cpu().numpy(), errors.cpu().numpy()
    status = np.asarray(status, dtype=np.int8)
    if not info.exact and eps is not None:
        # A heuristic proves nothing: within eps it is feasible, otherwise unknown (unless it timed out).
        within = errors <= eps
        status = np.where(within, np.int8(Status.FEASIBLE),
                          np.where(status == Status.TIMEOUT, np.int8(Status.TIMEOUT), np.int8(Status.UNKNOWN)))
    lower = out.lower_bounds
    if info.exact and lower is None and objective == "min_error":
        lower = errors.copy()
    return SubsetSumResult(selection=np.asarray(selection, dtype=bool), sums=sums, errors=errors,
                           status=status.astype(np.int8), seconds=seconds, method=name,
                           lower_bounds=lower, info={"objective": objective, "eps": eps, **out.info})
