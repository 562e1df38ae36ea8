"""Subset sum as an integer program, solved by OR-Tools CP-SAT (methods ``milp`` and ``mrss_milp``).

The slow reference and the tool for side constraints (``docs/solvers.md``: CP-SAT proves optimality at
n <= 16 in milliseconds and stops proving it around n = 24; use ``exact`` for plain nearest sums).
The model follows the Gurobi experiment of Pensia et al. 2020 (arXiv 2006.07990): binary x_i and an
error variable e with ``±(z - Σ a_i x_i) <= e`` (one pair per coordinate for MRSS, so e is the ℓ∞
error), in the OR-Tools sample style (model, solve, read status).

**Integer scaling.** CP-SAT needs integers: every value of instance t is multiplied by
``s_t = 2^floor(log2(2^40 / max|value|))`` (or the ``scale`` extra option) and rounded. For any subset S the scaled
error differs from the float error by at most ``ρ_t`` = the target's rounding plus the sum of all candidates'
roundings (each <= 1/(2 s_t); zero for values on the 1/s_t grid, e.g. small integers) plus float summation slop,
reported as ``info["scale_rounding_error"]`` (the largest over the batch). Consequences:

* ``sparsest`` uses the tolerance ``eps - ρ``, so every returned subset is within ``eps`` in float
  arithmetic; OPTIMAL and INFEASIBLE are proofs for that tightened tolerance (a subset whose error lies
  in the last ρ below ``eps`` may be missed);
* ``min_error``/``fixed_size`` OPTIMAL means optimal for the scaled values, i.e. within 2ρ of the float
  optimum; ``lower_bounds`` are CP-SAT's objective bound / s minus ρ, hence true lower bounds.

Statuses are honest: OPTIMAL only when CP-SAT proved it, FEASIBLE for a solution without proof
(``info["timed_out"]`` counts instances that hit ``time_limit``), INFEASIBLE when proven, TIMEOUT with an
empty selection when nothing was found. With ``eps`` and ``min_error``/``fixed_size``, an instance
whose error exceeds eps is INFEASIBLE only if its lower bound exceeds eps too.
"""

from __future__ import annotations

import math
import time

import numpy as np
from ortools.sat.python import cp_model

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum.problem import Status, SubsetSumProblem, approximation_errors, selection_sums
from strongticket.subsetsum.method import (
    MethodOption,
    SolveOptions,
    SolverOutput,
    is_bool,
    is_int_at_least,
    is_positive_number,
)

#: Default integer magnitude of the largest value of an instance.
DEFAULT_MAGNITUDE = 2.0 ** 40
#: Method-specific options of ``milp`` and ``mrss_milp``.
MILP_OPTIONS = (
    MethodOption("scale", "the integer scale s (default 2^40 / max|value| per instance)", "a finite number > 0",
                 is_positive_number),
    MethodOption("num_workers", "CP-SAT threads (default 1: deterministic; more may pick another of equally "
                 "good subsets from run to run)", "an integer >= 1", is_int_at_least(1)),
    MethodOption("presolve", "run CP-SAT's presolve (default False)", "True or False", is_bool),
)


def _extras(options: SolveOptions) -> tuple[float | None, int]:
    """``scale`` (None: per instance) and ``num_workers``, as checked against :data:`MILP_OPTIONS`.

    ``auto`` dispatch calls the method's check before ``solve`` validates the options of the method it
    picked, so an invalid scale reads as the default here and is refused by that validation.
    """
    scale = options.extra.get("scale")
    return (float(scale) if is_positive_number(scale) else None), int(options.extra.get("num_workers", 1))


def _scales(problem: SubsetSumProblem, scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance scale s_t and worst-case float error of a scaled error, ρ_t (shape (T,) each)."""
    T, n = problem.num_instances, problem.num_candidates
    z = np.abs(problem.targets).reshape(T, -1)
    a = np.abs(problem.candidates).reshape(T, -1)
    biggest = np.maximum(z.max(axis=1), a.max(axis=1, initial=0.0))
    if scale is None:
        # a power of two: scaling is then exact in binary, and values that are multiples of 1/s
        # (small integers, dyadic grids) round with no error at all
        s = 2.0 ** np.floor(np.log2(DEFAULT_MAGNITUDE / np.where(biggest > 0, biggest, 1.0)))
    else:
        s = np.full(T, scale)
        if np.any(biggest * s > 2.0 ** 52):
            raise InputError(f"scale={scale} maps values beyond 2^52, where integers stop being exact; use a smaller scale")
    # the actual rounding of every scaled value (<= 0.5/s each); a subset's scaled error moves by at most
    # the target's rounding plus the sum of all its candidates' roundings
    zs = problem.targets.reshape(T, -1) * s[:, None]
    xs = problem.candidates.reshape(T, n, problem.dim) * s[:, None, None]
    rz = np.abs(np.round(zs) - zs).max(axis=1)
    rx = np.abs(np.round(xs) - xs).sum(axis=1).max(axis=1) if n else np.zeros(T)
    rounding = (rz + rx) / s
    # float summation of up to n+1 terms, as selection_sums and approximation_errors do it
    per_coord = np.abs(problem.candidates).reshape(T, n, problem.dim).sum(axis=1)
    total = z.max(axis=1) + per_coord.max(axis=1)
    slop = 2.0 * (n + 2) * np.finfo(np.float64).eps * total
    return s, rounding + slop


def _check(name: str, multidim: bool):
    def check(problem: SubsetSumProblem, options: SolveOptions) -> None:
        if multidim and problem.norm != "linf":
            raise MethodUnavailableError(
                f"method {name!r} models the ℓ∞ error only (linear constraints), got norm={problem.norm!r}; "
                "use 'mrss_exact' (n <= 34) or 'mrss_local_search' for ℓ2")
        scale, _ = _extras(options)
        if options.objective == "sparsest":
            _, rho = _scales(problem, scale)
            if np.any(rho >= options.eps):
                raise MethodUnavailableError(
                    f"method {name!r} cannot certify eps={options.eps}: the integer scaling's rounding error is "
                    f"up to {rho.max():.3g}; pass a larger scale= or use an exact method")
    return check


def _run(model: cp_model.CpModel, options: SolveOptions, workers: int,
         time_limit: float | None) -> tuple[int, cp_model.CpSolver]:
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = int(options.seed) % (2 ** 31)
    # CP-SAT 9.15's presolve returned wrong "optimal" answers on these ~2^40 coefficients (a subset of
    # size 4 "proven" best while the empty subset was feasible); solving without it was always right.
    solver.parameters.cp_model_presolve = bool(options.extra.get("presolve", False))
    if time_limit is not None:
        solver.parameters.max_time_in_seconds = float(time_limit)
    return solver.solve(model), solver


def _solve_one(a: np.ndarray, z: np.ndarray, s: float, rho: float, options: SolveOptions,
               workers: int) -> tuple[np.ndarray, int, float, bool]:
    """One CP-SAT model for values a (n, d) and target z (d,).

    Returns ``(selection (n,), status, objective bound, timed_out)``; the bound is on the scaled
    error (for sparsest: on the subset size, from the first of two stages).
    """
    n, d = a.shape
    A = [[int(v) for v in row] for row in np.rint(a * s).astype(np.int64)]
    Z = [int(v) for v in np.rint(z * s).astype(np.int64)]
    upper = max(abs(Z[k]) + sum(abs(A[i][k]) for i in range(n)) for k in range(d))
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{i}") for i in range(n)]
    size = sum(x) if n else 0
    # sparsest: tolerance eps - rho, so that the float error of any feasible subset is <= eps
    top = math.floor((options.eps - rho) * s) if options.objective == "sparsest" else upper
    e = model.new_int_var(0, top, "e")
    for k in range(d):
        expr = sum(A[i][k] * x[i] for i in range(n)) if n else 0
        model.add(Z[k] - expr <= e)
        model.add(expr - Z[k] <= e)
    if options.objective == "fixed_size":
        model.add(size == options.size)
    if options.objective == "sparsest":
        model.minimize(size)
    else:
        model.minimize(e)
    start = time.perf_counter()
    code, solver = _run(model, options, workers, options.time_limit)
    selection = np.zeros(n, dtype=bool)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        selection[:] = [solver.value(v) for v in x]
    bound = solver.best_objective_bound if code != cp_model.INFEASIBLE else math.inf
    timed_out = code in (cp_model.FEASIBLE, cp_model.UNKNOWN)
    if options.objective == "sparsest" and code == cp_model.OPTIMAL:
        # second stage: the fewest candidates proven, now the smallest error among subsets of that size
        # (one weighted objective would need coefficients ~2^40 on the size, which CP-SAT mis-solved)
        model.add(size == int(selection.sum()))
        model.minimize(e)
        for v, val in zip(x, selection):
            model.add_hint(v, bool(val))
        left = None
        if options.time_limit is not None:
            left = max(options.time_limit - (time.perf_counter() - start), 0.1 * options.time_limit)
        code2, solver2 = _run(model, options, workers, left)
        if code2 in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            selection[:] = [solver2.value(v) for v in x]
        if code2 != cp_model.OPTIMAL:
            code, timed_out = cp_model.FEASIBLE, True
    status = {cp_model.OPTIMAL: Status.OPTIMAL, cp_model.FEASIBLE: Status.FEASIBLE,
              cp_model.INFEASIBLE: Status.INFEASIBLE}.get(code, Status.TIMEOUT)
    return selection, int(status), float(bound), timed_out


def solve_milp(problem: SubsetSumProblem, options: SolveOptions, name: str) -> SolverOutput:
    """One CP-SAT model per instance (``time_limit`` seconds each), scalar RSS or MRSS in ℓ∞.

    Extra options: ``scale`` (the integer scale, default 2^40 / max|value| per instance),
    ``num_workers`` (CP-SAT threads, default 1, the one setting whose answers repeat exactly:
    parallel workers race, and among equally good subsets the winner varies from run to run) and
    ``presolve`` (CP-SAT presolve, default False: it mis-solved instances with such large coefficients).

    Returns
    -------
    SolverOutput
        ``selection (T, n)``, ``status (T,)``, ``lower_bounds (T,)`` (true lower bounds on the best
        error; None for sparsest, whose bounds on the subset size are in ``info["size_lower_bounds"]``).
    """
    scale, workers = _extras(options)
    T, n = problem.num_instances, problem.num_candidates
    s, rho = _scales(problem, scale)
    x = problem.candidates.reshape(T, n, problem.dim)
    z = problem.targets.reshape(T, problem.dim)
    selection = np.zeros((T, n), dtype=bool)
    status = np.zeros(T, dtype=np.int8)
    bounds = np.zeros(T)
    timed_out = 0
    for t in range(T):
        selection[t], status[t], bounds[t], late = _solve_one(x[t], z[t], s[t], rho[t], options, workers)
        timed_out += late
    info = {"scale_rounding_error": float(rho.max()), "scale": float(s.min()), "timed_out": timed_out,
            "num_workers": workers}
    if options.objective == "sparsest":
        info["size_lower_bounds"] = np.where(np.isfinite(bounds), np.ceil(bounds - 1e-9), np.nan).tolist()
        infeasible = np.flatnonzero(status == Status.INFEASIBLE)
        if infeasible.size:  # the selection of a proven-infeasible instance is the best approximation
            best = solve_milp(problem.subset(infeasible),
                              SolveOptions("min_error", None, options.time_limit, None, options.seed,
                                           options.extra), name)
            selection[infeasible] = best.selection
        return SolverOutput(selection=selection, status=status, lower_bounds=None, info=info)
    lower = np.where(np.isfinite(bounds), np.maximum(bounds / s - rho, 0.0), np.nan)
    if options.eps is not None:
        errors = approximation_errors(problem.targets, selection_sums(problem.candidates, selection), problem.norm)
        found = (status == Status.OPTIMAL) | (status == Status.FEASIBLE)
        over = found & (errors > options.eps)
        proven = over & (lower > options.eps)
        status[proven] = Status.INFEASIBLE
        status[over & ~proven] = np.where(status[over & ~proven] == Status.OPTIMAL, Status.UNKNOWN, Status.TIMEOUT)
    return SolverOutput(selection=selection, status=status, lower_bounds=lower, info=info)


def solve_rss_milp(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    """Method ``milp``: :func:`solve_milp` on scalar instances."""
    return solve_milp(problem, options, "milp")


def solve_mrss_milp(problem: SubsetSumProblem, options: SolveOptions) -> SolverOutput:
    """Method ``mrss_milp``: :func:`solve_milp` on MRSS instances (ℓ∞ only)."""
    return solve_milp(problem, options, "mrss_milp")


check_rss_milp = _check("milp", False)
check_mrss_milp = _check("mrss_milp", True)
