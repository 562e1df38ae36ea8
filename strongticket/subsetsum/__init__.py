"""Random subset sum (RSS) and its multidimensional version (MRSS): problems, solvers, theory.

Knows nothing of networks. ``solve(SubsetSumProblem(targets, candidates), method="auto")`` is the
entry point; see :mod:`strongticket.subsetsum.api` for the methods and how ``auto`` picks one.
"""

from strongticket.subsetsum.api import choose_method, load_methods, solve
from strongticket.subsetsum.problem import (
    NORMS,
    OBJECTIVES,
    Status,
    SubsetSumProblem,
    SubsetSumResult,
    approximation_errors,
    selection_sums,
)

__all__ = [
    "NORMS",
    "OBJECTIVES",
    "Status",
    "SubsetSumProblem",
    "SubsetSumResult",
    "approximation_errors",
    "choose_method",
    "load_methods",
    "selection_sums",
    "solve",
]
