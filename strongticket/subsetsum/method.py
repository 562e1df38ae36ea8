"""The types a subset-sum method is made of: what it is asked, what it answers, how it is described.

A method is a function ``fn(problem, options) -> SolverOutput``. It returns only a selection and a
status per instance (plus a lower bound where it has one); :func:`strongticket.subsetsum.solve`
recomputes sums and errors from the selection, times the call and wraps it in a ``SubsetSumResult``,
so that every method's numbers are computed the same way. The methods themselves are listed in
:mod:`strongticket.subsetsum.registry`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from strongticket.subsetsum.problem import SubsetSumProblem

#: The options every method takes (``solve``'s own keyword arguments).
COMMON_OPTIONS: tuple[str, ...] = ("objective", "eps", "time_limit", "size", "seed")


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
        Method-specific options, already checked against the method's :attr:`MethodInfo.options`.
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
class MethodOption:
    """A method-specific option (an ``**extra`` keyword of ``solve``).

    ``valid(value)`` says whether a value is acceptable; ``expected`` says in words what is (for the
    error message: ``"an integer >= 1"``).
    """

    name: str
    description: str
    expected: str
    valid: Callable[[Any], bool]


def is_int_at_least(low: int) -> Callable[[Any], bool]:
    """A ``valid`` predicate: an integer (not a bool) >= ``low``."""
    def valid(value: Any) -> bool:
        return not isinstance(value, bool) and isinstance(value, numbers.Integral) and int(value) >= low
    return valid


def is_positive_number(value: Any) -> bool:
    """A ``valid`` predicate: a finite real number > 0 (not a bool)."""
    return (not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
            and value > 0)


def is_bool(value: Any) -> bool:
    """A ``valid`` predicate: True or False."""
    return isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class MethodInfo:
    """A registered method.

    ``check(problem, options)`` raises :class:`~strongticket.errors.MethodUnavailableError` (saying which
    method to use instead) when the method cannot take the problem; ``auto`` dispatch skips such
    methods. ``options`` lists the method-specific keywords it takes; any other keyword is refused.
    ``stops_early`` says whether ``fn`` honours ``options.time_limit`` (stops when it is spent and marks the
    instances it did not finish); every other method runs to its end whatever the limit.
    """

    name: str
    fn: Callable[[SubsetSumProblem, SolveOptions], SolverOutput]
    description: str
    exact: bool
    one_dim: bool
    multidim: bool
    objectives: tuple[str, ...]
    check: Callable[[SubsetSumProblem, SolveOptions], None] | None = None
    options: tuple[MethodOption, ...] = ()
    stops_early: bool = False

    def option_names(self) -> tuple[str, ...]:
        """Every keyword this method takes: :data:`COMMON_OPTIONS`, then its own."""
        return COMMON_OPTIONS + tuple(o.name for o in self.options)
