"""MRSS solvers: tie-breaking identical to brute force, the grid and sweep indexes, refusals, calibration.

Soundness, optimality and batch-order invariance are checked for every method in test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import Status

ROUNDING = 1e-12  # a few ulps of sums of <= 12 vectors with entries in [-4, 4]


@st.composite
def mrss_integer_instances(draw, max_n: int = 10, max_t: int = 4):
    """Small-integer MRSS instances: sums are exact in float64, so ties are real ties."""
    n = draw(st.integers(0, max_n))
    t = draw(st.integers(1, max_t))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.integers(-4, 5, (t, n, d)).astype(np.float64)
    z = rng.integers(-8, 9, (t, d)).astype(np.float64)
    return z, x, draw(st.sampled_from(["linf", "l2"]))


@st.composite
def mrss_float_instances(draw, min_n: int = 0, max_n: int = 12, max_t: int = 4):
    """Gaussian candidate vectors, targets in [-1, 1]^d, d in {1, 2, 3}, either norm."""
    n = draw(st.integers(min_n, max_n))
    t = draw(st.integers(1, max_t))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t, n, d)) * 0.5
    z = rng.uniform(-1, 1, (t, d))
    return z, x, draw(st.sampled_from(["linf", "l2"]))


@settings(max_examples=60)
@given(mrss_integer_instances())
def test_exact_selection_equals_brute_force_when_arithmetic_is_exact(inst):
    z, x, norm = inst
    p = SubsetSumProblem(z, x, norm)
    a, b = solve(p, "mrss_exact"), solve(p, "brute")
    np.testing.assert_array_equal(a.selection, b.selection)
    np.testing.assert_array_equal(a.errors, b.errors)
    assert np.all(a.status == Status.OPTIMAL)
    np.testing.assert_array_equal(a.lower_bounds, a.errors)


@settings(max_examples=60)
@given(st.one_of(mrss_integer_instances(max_n=12), mrss_float_instances()))
def test_grid_and_sweep_indexes_return_the_same_selection(inst):
    z, x, norm = inst
    p = SubsetSumProblem(z, x, norm)
    sweep, grid = solve(p, "mrss_exact", index="sweep"), solve(p, "mrss_exact", index="grid")
    np.testing.assert_array_equal(sweep.selection, grid.selection)
    np.testing.assert_array_equal(grid.selection, solve(p, "brute").selection)


def test_auto_index_uses_the_grid_at_d3_n16_and_agrees_with_the_sweep():
    p = random_problem(6, 16, d=3, seed=5, dist="normal")
    auto, sweep = solve(p, "mrss_exact"), solve(p, "mrss_exact", index="sweep")
    np.testing.assert_array_equal(auto.selection, sweep.selection)


@given(mrss_integer_instances(), st.sampled_from([0.5, 1.0, 2.5, 4.0]))
def test_sparsest_selection_equals_brute_force_when_arithmetic_is_exact(inst, eps):
    z, x, norm = inst
    p = SubsetSumProblem(z, x, norm)
    a = solve(p, "mrss_exact", objective="sparsest", eps=eps)
    b = solve(p, "brute", objective="sparsest", eps=eps)
    np.testing.assert_array_equal(a.selection, b.selection)  # same subset among ties: smallest key
    np.testing.assert_array_equal(a.status, b.status)


@given(mrss_float_instances())
def test_local_search_is_no_worse_than_greedy_which_is_no_worse_than_the_empty_subset(inst):
    z, x, norm = inst
    p = SubsetSumProblem(z, x, norm)
    g = solve(p, "mrss_greedy").errors
    ls = solve(p, "mrss_local_search").errors
    z_norm = np.abs(z).max(axis=1) if norm == "linf" else np.sqrt((z * z).sum(axis=1))
    assert np.all(g <= z_norm + ROUNDING)
    assert np.all(ls <= g + ROUNDING)


@given(mrss_float_instances(min_n=1), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_local_search_with_restarts_is_deterministic_given_the_seed(inst, seed):
    z, x, norm = inst
    p = SubsetSumProblem(z, x, norm)
    a = solve(p, "mrss_local_search", seed=seed, restarts=4)
    b = solve(p, "mrss_local_search", seed=seed, restarts=4)
    np.testing.assert_array_equal(a.selection, b.selection)


def test_min_error_with_eps_reports_proven_infeasibility():
    p = SubsetSumProblem(np.array([[0.1, 0.1]]), np.array([[[0.5, 0.5], [0.25, -0.25]]]))
    r = solve(p, "mrss_exact", eps=0.01)
    assert r.status[0] == Status.INFEASIBLE
    assert r.errors[0] == pytest.approx(0.1)


def test_exact_refuses_large_instances_and_names_alternatives():
    p = SubsetSumProblem(np.zeros((1, 2)), np.zeros((1, 36, 2)))
    with pytest.raises(MethodUnavailableError, match=r"mrss_local_search.*mrss_milp"):
        solve(p, "mrss_exact")
    wide = SubsetSumProblem(np.zeros((1, 64)), np.zeros((1, 30, 64)))
    with pytest.raises(MethodUnavailableError, match=r"n=30, d=64.*mrss_local_search"):
        solve(wide, "mrss_exact")


def test_auto_picks_exact_for_small_and_the_searches_for_large_mrss():
    small = random_problem(2, 10, d=2, seed=0, dist="normal")
    assert solve(small).method == "mrss_exact"
    large = random_problem(2, 40, d=8, seed=0, dist="normal")
    assert solve(large).method == "mrss_search"
    assert solve(large, objective="sparsest", eps=0.5).method == "mrss_local_search"  # mrss_search: min_error
    # a time limit does not send min_error to CP-SAT, which the search beats (docs/solvers.md); sparsest goes there
    assert solve(large, time_limit=5.0).method == "mrss_search"
    assert solve(large, objective="sparsest", eps=0.5, time_limit=5.0).method == "mrss_milp"


def test_exact_at_d2_n24_reaches_the_calibrated_error():
    """Measured: median optimal l_inf error ~ 9e-4 at d = 2, n = 24 (Gaussian vectors, z ~ U[-1,1]^2)."""
    p = random_problem(40, 24, d=2, seed=3, dist="normal")
    r = solve(p, "mrss_exact")
    assert 2e-4 < np.median(r.errors) < 4e-3
    assert np.all(r.status == Status.OPTIMAL)
