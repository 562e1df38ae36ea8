"""Random subset sum (RSS) and its multidimensional version (MRSS): problems, solvers, theory.

Knows nothing of networks. ``solve(SubsetSumProblem(targets, candidates), method="auto")`` is the
entry point; the methods are listed in :mod:`strongticket.subsetsum.registry`, and
:func:`~strongticket.subsetsum.api.choose_method` says how ``auto`` picks one.
"""

from strongticket.subsetsum.api import choose_method, solve
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
    "selection_sums",
    "solve",
]
