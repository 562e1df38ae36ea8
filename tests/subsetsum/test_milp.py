"""CP-SAT (milp, mrss_milp) against the brute-force oracle; statuses and bounds are honest."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.problem import Status
from tests.subsetsum.strategies import float_instances, integer_instances

TOL = 1e-9
FAST = settings(max_examples=15)


@FAST
@given(float_instances(max_n=12, max_t=3))
def test_milp_min_error_equals_brute_force_and_is_optimal(inst):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "milp"), solve(p, "brute")
    assert np.all(a.status == Status.OPTIMAL)
    assert np.all(np.abs(a.errors - b.errors) <= TOL)
    assert np.all(a.lower_bounds <= a.errors) and np.all(a.lower_bounds >= b.errors - TOL)
    assert a.info["scale_rounding_error"] < TOL


@FAST
@given(float_instances(max_n=10, max_t=3), st.sampled_from([0.01, 0.1, 0.5]))
def test_milp_sparsest_has_the_brute_force_minimal_size(inst, eps):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a = solve(p, "milp", objective="sparsest", eps=eps)
    b = solve(p, "brute", objective="sparsest", eps=eps)
    clear = np.abs(solve(p, "brute").errors - eps) > TOL  # away from the scaled tolerance's edge
    np.testing.assert_array_equal(a.status[clear], b.status[clear])
    ok = a.status == Status.OPTIMAL
    assert np.all(a.errors[ok] <= eps)
    np.testing.assert_array_equal(a.num_selected[ok & clear], b.num_selected[ok & clear])


@FAST
@given(integer_instances(max_n=8, max_t=3), st.integers(0, 9))
def test_milp_fixed_size_honours_the_size(inst, size):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a = solve(p, "milp", objective="fixed_size", size=size)
    b = solve(p, "brute", objective="fixed_size", size=size)
    np.testing.assert_array_equal(a.status, b.status)
    ok = a.status == Status.OPTIMAL
    assert np.all(a.num_selected[ok] == size)
    np.testing.assert_array_equal(a.errors[ok], b.errors[ok])
    assert size <= x.shape[1] or np.all(a.status == Status.INFEASIBLE)


@FAST
@given(float_instances(max_n=10, max_t=3), st.sampled_from([1e-3, 0.05]))
def test_milp_min_error_with_eps_proves_infeasibility_like_brute_force(inst, eps):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "milp", eps=eps), solve(p, "brute", eps=eps)
    clear = np.abs(b.errors - eps) > TOL
    np.testing.assert_array_equal(a.status[clear], b.status[clear])


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


@FAST
@given(st.integers(0, 8), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_mrss_milp_equals_mrss_brute_force_in_linf(n, d, seed):
    p = random_problem(2, n, d=d, dist="normal", seed=seed)
    a, b = solve(p, "mrss_milp"), solve(p, "brute")
    assert np.all(a.status == Status.OPTIMAL)
    assert np.all(np.abs(a.errors - b.errors) <= TOL)
    s = solve(p, "mrss_milp", objective="sparsest", eps=0.5)
    t = solve(p, "brute", objective="sparsest", eps=0.5)
    clear = np.abs(b.errors - 0.5) > TOL
    np.testing.assert_array_equal(s.num_selected[clear & (t.status == 0)], t.num_selected[clear & (t.status == 0)])


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


def test_solutions_do_not_depend_on_batch_order():
    p = random_problem(4, 10, seed=7)
    perm = np.array([2, 0, 3, 1])
    a = solve(p, "milp", num_workers=1)
    b = solve(p.subset(perm), "milp", num_workers=1)
    np.testing.assert_array_equal(a.errors[perm], b.errors)
