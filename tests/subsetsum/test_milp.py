"""CP-SAT (milp, mrss_milp): time limits, refusals and the integer scaling's tolerance.

Optimality against enumeration, soundness and batch-order invariance are in test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import solve
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import Status

TOL = 1e-9


def test_a_tiny_time_limit_gives_consistent_statuses():
    p = random_problem(3, 36, seed=4)
    r = solve(p, "milp", time_limit=0.02, num_workers=1)
    assert np.all(np.isin(r.status, [Status.OPTIMAL, Status.FEASIBLE, Status.TIMEOUT]))
    assert np.all(r.selection[r.status == Status.TIMEOUT].sum(axis=1) == 0)
    assert r.info["timed_out"] == int(np.sum(r.status != Status.OPTIMAL))
    assert np.all(r.lower_bounds <= r.errors)
    exact = solve(p, "exact")
    opt = r.status == Status.OPTIMAL
    assert np.all(np.abs(r.errors[opt] - exact.errors[opt]) <= TOL)  # OPTIMAL means optimal


def test_mrss_milp_refuses_l2_and_names_alternatives():
    p = random_problem(1, 6, d=2, dist="normal", seed=0, norm="l2")
    with pytest.raises(MethodUnavailableError, match="mrss_exact"):
        solve(p, "mrss_milp")


def test_sparsest_refuses_an_eps_below_the_scale_rounding():
    p = random_problem(1, 6, seed=0)
    with pytest.raises(MethodUnavailableError, match="scale"):
        solve(p, "milp", objective="sparsest", eps=5e-14)
    r = solve(p, "milp", objective="sparsest", eps=5e-14, scale=2.0 ** 50)
    assert r.info["scale_rounding_error"] < 5e-14
