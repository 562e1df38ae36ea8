"""The registry of subset-sum methods: each solver module registers one :class:`MethodInfo`.

A method is a function ``fn(problem, options) -> SolverOutput``. It returns only a selection and a
status per instance (plus a lower bound where it has one); :func:`strongticket.subsetsum.solve`
recomputes sums and errors from the selection, times the call and wraps it in a ``SubsetSumResult``,
so that every method's numbers are computed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strongticket.errors import InputError, MethodUnavailableError
from strongticket.subsetsum.problem import SubsetSumProblem


@dataclass(frozen=True)
class SolveOptions:
    """What the caller asked for, passed unchanged to the method.

    Attributes
    ----------
    objective : str
        One of :data:`strongticket.subsetsum.problem.OBJECTIVES`.
    eps : float or None
        Error tolerance (required by ``sparsest``; optional elsewhere, where it decides feasibility).
    time_limit : float or None
        Seconds per solve call for methods that can stop early (MILP, local search).
    size : int or None
        Subset size for ``fixed_size``.
    seed : int
        Seed of any random choice a method makes (restarts).
    extra : mapping
        Method-specific settings (documented by each method).
    """

    objective: str = "min_error"
    eps: float | None = None
    time_limit: float | None = None
    size: int | None = None
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SolverOutput:
    """What a method returns: ``selection (T, n)`` bool and ``status (T,)`` int8 (numpy, or torch on
    the problem's device), optional ``lower_bounds (T,)`` and an ``info`` dict."""

    selection: Any
    status: Any
    lower_bounds: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method.

    ``check(problem, options)`` raises :class:`MethodUnavailableError` (saying which method to use
    instead) when the method cannot take the problem; ``auto`` dispatch skips such methods.
    """

    name: str
    fn: Callable[[SubsetSumProblem, SolveOptions], SolverOutput]
    description: str
    exact: bool
    one_dim: bool
    multidim: bool
    objectives: tuple[str, ...]
    check: Callable[[SubsetSumProblem, SolveOptions], None] | None = None

    def ensure_supports(self, problem: SubsetSumProblem, options: SolveOptions) -> None:
        """Raise :class:`MethodUnavailableError` if this method cannot solve ``problem`` as asked."""
        if problem.multidim and not self.multidim:
            raise MethodUnavailableError(
                f"method {self.name!r} solves only scalar (1-D) instances, got MRSS targets of dimension "
                f"{problem.dim}; use one of {names(multidim=True)}")
        if not problem.multidim and not self.one_dim:
            raise MethodUnavailableError(
                f"method {self.name!r} solves only MRSS instances, got scalar targets; use one of {names(one_dim=True)}")
        if options.objective not in self.objectives:
            raise MethodUnavailableError(
                f"method {self.name!r} supports objectives {self.objectives}, got {options.objective!r}; "
                f"use one of {names(objective=options.objective, multidim=problem.multidim or None)}")
        if self.check is not None:
            self.check(problem, options)


_REGISTRY: dict[str, MethodInfo] = {}


def register(info: MethodInfo) -> MethodInfo:
    """Add ``info`` to the registry (a name may be registered once)."""
    if info.name in _REGISTRY and _REGISTRY[info.name] is not info:
        raise RuntimeError(f"subset-sum method {info.name!r} registered twice")
    _REGISTRY[info.name] = info
    return info


def get(name: str) -> MethodInfo:
    """The method called ``name``; an :class:`InputError` listing the valid names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"method must be 'auto' or one of {sorted(_REGISTRY)}, got {name!r}") from None


def names(*, one_dim: bool | None = None, multidim: bool | None = None, objective: str | None = None) -> list[str]:
    """Registered method names, optionally filtered by what they support."""
    out = []
    for m in _REGISTRY.values():
        if one_dim and not m.one_dim:
            continue
        if multidim and not m.multidim:
            continue
        if objective is not None and objective not in m.objectives:
            continue
        out.append(m.name)
    return sorted(out)


def all_methods() -> Mapping[str, MethodInfo]:
    """Every registered method by name."""
    return dict(_REGISTRY)
