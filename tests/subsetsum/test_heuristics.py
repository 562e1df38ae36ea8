"""1-D greedy and local search: each no worse than the one before, restarts, time limits, thinning.

Soundness and "never better than the optimum" are checked for every method in test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongticket.errors import InputError
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import Status
from tests.subsetsum.strategies import float_instances

ROUNDING = 1e-12


@given(float_instances(max_n=14))
def test_local_search_error_is_at_most_greedy_error_which_is_at_most_the_empty_subsets(inst):
    z, x = inst
    p = SubsetSumProblem(z, x)
    g = solve(p, "greedy").errors
    ls = solve(p, "local_search").errors
    assert np.all(g <= np.abs(z) + ROUNDING)
    assert np.all(ls <= g + ROUNDING)


@given(float_instances(min_n=1, max_n=12), st.integers(0, 2**32 - 1))
def test_restarts_never_make_local_search_worse(inst, seed):
    z, x = inst
    p = SubsetSumProblem(z, x)
    plain = solve(p, "local_search").errors
    more = solve(p, "local_search", restarts=3, seed=seed).errors
    assert np.all(more <= plain + ROUNDING)


@given(float_instances(min_n=1, max_n=12), st.integers(0, 2**32 - 1))
@settings(max_examples=20)
def test_restarts_are_deterministic_given_the_seed(inst, seed):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a = solve(p, "local_search", restarts=4, seed=seed)
    b = solve(p, "local_search", restarts=4, seed=seed)
    np.testing.assert_array_equal(a.selection, b.selection)


def test_sparsest_greedy_stops_at_the_first_subset_within_eps():
    p = SubsetSumProblem(np.array([1.0]), np.array([[0.95, 0.05, 0.5, 0.5]]))
    r = solve(p, "greedy", objective="sparsest", eps=0.1)
    assert r.num_selected[0] == 1 and r.status[0] == Status.FEASIBLE
    assert solve(p, "greedy").errors[0] == pytest.approx(0.0, abs=1e-15)


def test_min_error_without_eps_is_feasible_and_with_eps_is_feasible_or_unknown():
    p = random_problem(50, 16, seed=0)
    assert np.all(solve(p, "local_search").status == Status.FEASIBLE)
    r = solve(p, "local_search", eps=1e-3)
    assert np.all(r.status == np.where(r.errors <= 1e-3, Status.FEASIBLE, Status.UNKNOWN))


def test_local_search_is_far_closer_than_greedy_at_n20():
    """Measured: greedy + 1/2-flip is ~10x closer than greedy at n = 20 (median, uniform; docs/solvers.md)."""
    p = random_problem(400, 20, seed=1)
    assert np.median(solve(p, "local_search").errors) < 0.5 * np.median(solve(p, "greedy").errors)


def test_a_spent_time_limit_leaves_greedy_selections_marked_timeout():
    p = random_problem(3000, 24, seed=2)
    r = solve(p, "local_search", time_limit=1e-9, restarts=2)
    assert r.info["timed_out"] > 0
    assert np.all(r.status[-r.info["timed_out"]:] == Status.TIMEOUT)
    g = solve(p, "greedy")
    np.testing.assert_array_equal(r.selection[r.status == Status.TIMEOUT], g.selection[r.status == Status.TIMEOUT])


def test_unknown_extra_options_are_rejected():
    p = random_problem(2, 5, seed=0)
    with pytest.raises(InputError, match="restart"):
        solve(p, "local_search", restart=3)
    with pytest.raises(InputError, match="restarts"):
        solve(p, "local_search", restarts=-1)
