"""Every subset-sum method, by name: one literal table, built here and nowhere else.

Adding a method means writing its module (a ``fn(problem, options) -> SolverOutput``, see
:mod:`strongticket.subsetsum.method`) and adding one :class:`MethodInfo` below. The solver modules are
imported directly, so a module that fails to import makes ``strongticket.subsetsum`` fail to import,
with that module's error: no method silently goes missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum import brute, exact, exact_torch, heuristics, milp, mrss_descent, mrss_search, multidim
from strongticket.subsetsum.method import MethodInfo, SolveOptions
from strongticket.subsetsum.problem import SubsetSumProblem

_ALL_OBJECTIVES = ("min_error", "sparsest", "fixed_size")

METHODS: Mapping[str, MethodInfo] = MappingProxyType({m.name: m for m in (
    MethodInfo(
        name="exact", fn=exact.solve_exact, check=exact.check_exact, options=exact.EXACT_OPTIONS,
        exact=True, one_dim=True, multidim=False, objectives=("min_error", "sparsest"),
        description=f"compiled meet-in-the-middle, parallel over targets (n <= {exact.EXACT_MAX_N})"),
    MethodInfo(
        name="torch", fn=exact_torch.solve_torch, check=exact_torch.check_torch, options=exact_torch.TORCH_OPTIONS,
        exact=True, one_dim=True, multidim=False, objectives=("min_error",),
        description="torch sort + searchsorted meet-in-the-middle, batched on the tensors' device "
                    f"(n <= {exact_torch.TORCH_MAX_N})"),
    MethodInfo(
        name="brute", fn=brute.solve_brute, check=brute.check_brute,
        exact=True, one_dim=True, multidim=True, objectives=_ALL_OBJECTIVES,
        description=f"all 2^n subsets (n <= {brute.BRUTE_MAX_N}); the test oracle"),
    MethodInfo(
        name="milp", fn=milp.solve_rss_milp, check=milp.check_rss_milp, options=milp.MILP_OPTIONS,
        exact=True, one_dim=True, multidim=False, objectives=_ALL_OBJECTIVES,
        stops_early=True,
        description="OR-Tools CP-SAT on integer-scaled values, one model per instance (time_limit each)"),
    MethodInfo(
        name="greedy", fn=heuristics.solve_greedy, options=heuristics.GREEDY_OPTIONS,
        exact=False, one_dim=True, multidim=False, objectives=("min_error", "sparsest"),
        stops_early=True,
        description="greedy additions while the error drops (fast, poor; no proof)"),
    MethodInfo(
        name="local_search", fn=heuristics.solve_local_search, options=heuristics.LOCAL_SEARCH_OPTIONS,
        exact=False, one_dim=True, multidim=False, objectives=("min_error", "sparsest"),
        stops_early=True,
        description="greedy then 1/2-flip steepest descent, optional seeded random restarts (no proof)"),
    MethodInfo(
        name="mrss_exact", fn=multidim.solve_mrss_exact, check=multidim.check_mrss_exact,
        options=multidim.MRSS_EXACT_OPTIONS,
        exact=True, one_dim=False, multidim=True, objectives=("min_error", "sparsest"),
        description=f"MRSS meet-in-the-middle over sorted half-sums (n <= {multidim.MRSS_EXACT_MAX_N}, "
                    "d·2^(n/2) <= 2^23)"),
    MethodInfo(
        name="mrss_milp", fn=milp.solve_mrss_milp, check=milp.check_mrss_milp, options=milp.MILP_OPTIONS,
        exact=True, one_dim=False, multidim=True, objectives=_ALL_OBJECTIVES,
        stops_early=True,
        description="OR-Tools CP-SAT for MRSS in the ℓ∞ norm, integer-scaled, one model per instance"),
    MethodInfo(
        name="mrss_greedy", fn=multidim.solve_mrss_greedy, options=heuristics.GREEDY_OPTIONS,
        exact=False, one_dim=False, multidim=True, objectives=("min_error", "sparsest"),
        stops_early=True,
        description="MRSS greedy additions while the error drops (no proof)"),
    MethodInfo(
        name="mrss_local_search", fn=multidim.solve_mrss_local_search, options=heuristics.LOCAL_SEARCH_OPTIONS,
        exact=False, one_dim=False, multidim=True, objectives=("min_error", "sparsest"),
        stops_early=True,
        description="MRSS greedy then 1/2-flip descent, optional seeded random restarts (no proof)"),
    MethodInfo(
        name="mrss_search", fn=mrss_search.solve_mrss_search, options=mrss_search.MRSS_SEARCH_OPTIONS,
        exact=False, one_dim=False, multidim=True, objectives=("min_error",),
        stops_early=True,
        description="MRSS search: scale-ordered rounding with compensation as a beam of partial roundings, ℓ2 "
                    "single/pair-flip descent, best run polished by exact group re-solves (any n; no proof)"),
    MethodInfo(
        name="mrss_descent", fn=mrss_descent.solve_mrss_descent,
        exact=False, one_dim=False, multidim=True, objectives=("min_error",),
        description="MRSS best-flip/best-swap descent on the error from the empty set (any n; the baseline "
                    "mrss_search is measured against; no proof)"),
)})


def get(name: str) -> MethodInfo:
    """The method called ``name``; an :class:`InputError` listing the valid names otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"method must be 'auto' or one of {sorted(METHODS)}, got {name!r}") from None


def names(*, one_dim: bool | None = None, multidim: bool | None = None, objective: str | None = None) -> list[str]:
    """Method names (sorted), optionally only those that solve 1-D / MRSS instances or ``objective``."""
    out = []
    for m in METHODS.values():
        if one_dim and not m.one_dim:
            continue
        if multidim and not m.multidim:
            continue
        if objective is not None and objective not in m.objectives:
            continue
        out.append(m.name)
    return sorted(out)


def all_methods() -> Mapping[str, MethodInfo]:
    """Every method by name (read-only)."""
    return METHODS


def check_options(info: MethodInfo, extra: Mapping[str, Any]) -> None:
    """Raise :class:`InputError` for a keyword ``info`` does not take, or a value it cannot use.

    The message names the option, the method and the options it takes (``solve(p, time_limt=5)``
    is refused, not ignored).
    """
    declared = {o.name: o for o in info.options}
    for key, value in extra.items():
        option = declared.get(key)
        if option is None:
            raise InputError(f"unknown option {key!r} for method {info.name!r}; its options are "
                             f"{', '.join(info.option_names())}")
        if not option.valid(value):
            raise InputError(f"option {key!r} of method {info.name!r} must be {option.expected}, got {value!r}")


def stopping_early() -> list[str]:
    """The methods that honour a time limit (:attr:`MethodInfo.stops_early`), sorted."""
    return sorted(m.name for m in METHODS.values() if m.stops_early)


def check_time_limit(method: str, time_limit: float | None) -> None:
    """Refuse, before any work, a time limit for a method that would ignore it.

    ``auto`` is accepted: the exact methods it picks first where they apply (``exact`` up to n = 44, ``torch``
    on a GPU, ``mrss_exact`` for small MRSS instances) ignore the limit and run to the proven optimum; beyond
    them the limit makes it pick ``milp`` over ``local_search`` (1-D) and ``mrss_milp`` over
    ``mrss_local_search`` (MRSS, where ``mrss_search`` does not apply; see
    :func:`strongticket.subsetsum.api.choose_method`).

    Raises
    ------
    InputError
        One line naming ``method`` and the methods that take a time limit, when ``method`` is not ``auto``,
        ``time_limit`` is given and the method does not stop early.
    """
    if time_limit is None or method == "auto":
        return
    if not get(method).stops_early:
        raise InputError(f"method {method!r} runs to its end and would ignore the time limit ({time_limit!r} s): "
                         f"drop it, or choose a method that stops early ({', '.join(stopping_early())})")


def ensure_supports(info: MethodInfo, problem: SubsetSumProblem, options: SolveOptions) -> None:
    """Raise :class:`MethodUnavailableError`, naming the methods to use instead, if ``info`` cannot
    solve ``problem`` as asked (dimension, objective, or the method's own ``check``)."""
    if problem.multidim and not info.multidim:
        raise MethodUnavailableError(
            f"method {info.name!r} solves only scalar (1-D) instances, got MRSS targets of dimension "
            f"{problem.dim}; use one of {names(multidim=True)}")
    if not problem.multidim and not info.one_dim:
        raise MethodUnavailableError(
            f"method {info.name!r} solves only MRSS instances, got scalar targets; use one of {names(one_dim=True)}")
    if options.objective not in info.objectives:
        raise MethodUnavailableError(
            f"method {info.name!r} supports objectives {info.objectives}, got {options.objective!r}; "
            f"use one of {names(objective=options.objective, multidim=problem.multidim or None)}")
    if info.check is not None:
        info.check(problem, options)
