"""The compiled exact solver against the brute-force oracle, and its contracts (constructions.md §9 B)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import SubsetSumProblem, solve, selection_sums
from strongticket.subsetsum.problem import Status
from tests.subsetsum.strategies import float_instances, integer_instances

ROUNDING = 1e-12  # a few ulps of sums of <= 16 numbers in [-4, 4]


@given(integer_instances())
def test_min_error_selection_equals_brute_force_when_arithmetic_is_exact(inst):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "exact"), solve(p, "brute")
    np.testing.assert_array_equal(a.selection, b.selection)
    np.testing.assert_array_equal(a.errors, b.errors)


@given(float_instances())
def test_min_error_is_optimal_up_to_rounding(inst):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "exact"), solve(p, "brute")
    assert np.all(np.abs(a.errors - b.errors) <= ROUNDING)
    assert np.all(a.status == Status.OPTIMAL)


@given(integer_instances(), st.sampled_from([0.5, 1.0, 2.5]))
def test_sparsest_is_the_fewest_candidates_within_eps(inst, eps):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "exact", objective="sparsest", eps=eps), solve(p, "brute", objective="sparsest", eps=eps)
    np.testing.assert_array_equal(a.selection, b.selection)
    np.testing.assert_array_equal(a.status, b.status)
    feasible = a.status == Status.OPTIMAL
    assert np.all(a.errors[feasible] <= eps)
    # infeasible instances are proven so: the best error of all exceeds eps
    best = solve(p, "brute").errors
    assert np.all(best[~feasible] > eps)


@given(float_instances(max_n=12), st.sampled_from([1e-3, 1e-2, 0.1]))
def test_sparsest_size_matches_brute_force_on_floats(inst, eps):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "exact", objective="sparsest", eps=eps), solve(p, "brute", objective="sparsest", eps=eps)
    ok = b.status == Status.OPTIMAL
    # away from the eps boundary the minimal size is a property of real numbers, not of rounding
    clear = np.abs(b.errors - eps) > ROUNDING
    np.testing.assert_array_equal(a.num_selected[ok & clear], b.num_selected[ok & clear])


@given(float_instances())
def test_reported_error_is_the_recomputed_error_of_the_selection(inst):
    z, x = inst
    r = solve(SubsetSumProblem(z, x), "exact")
    sums = selection_sums(x, r.selection)
    np.testing.assert_array_equal(r.sums, sums)
    np.testing.assert_array_equal(r.errors, np.abs(z - sums))


@given(float_instances(min_n=1, max_n=13))
def test_error_never_increases_when_a_candidate_is_added(inst):
    z, x = inst
    fewer = solve(SubsetSumProblem(z, x[:, :-1]), "exact").errors
    more = solve(SubsetSumProblem(z, x), "exact").errors
    assert np.all(more <= fewer + ROUNDING)


@given(float_instances(), st.floats(1e-3, 0.5))
def test_empty_subset_when_target_is_within_eps(inst, eps):
    z, x = inst
    z = np.clip(z, -eps, eps) * 0.999
    r = solve(SubsetSumProblem(z, x), "exact", objective="sparsest", eps=eps)
    assert not r.selection.any()
    assert np.all(r.status == Status.OPTIMAL)


@given(float_instances(max_t=12), st.integers(0, 2**32 - 1), st.sampled_from(["min_error", "sparsest"]))
def test_results_do_not_depend_on_batch_order(inst, seed, objective):
    z, x = inst
    perm = np.random.default_rng(seed).permutation(len(z))
    p, q = SubsetSumProblem(z, x), SubsetSumProblem(z[perm], x[perm])
    a, b = solve(p, "exact", objective=objective, eps=0.05), solve(q, "exact", objective=objective, eps=0.05)
    np.testing.assert_array_equal(a.selection[perm], b.selection)
    np.testing.assert_array_equal(a.status[perm], b.status)


def test_large_batches_use_every_chunk_and_thread_count_does_not_change_the_answer():
    rng = np.random.default_rng(7)
    x, z = rng.uniform(-1, 1, (5003, 15)), rng.uniform(-1, 1, 5003)
    p = SubsetSumProblem(z, x)
    a = solve(p, "exact", num_threads=1)
    b = solve(p, "exact", num_threads=2)
    np.testing.assert_array_equal(a.selection, b.selection)
    sample = rng.choice(5003, 40, replace=False)
    c = solve(p.subset(sample), "brute")
    assert np.all(np.abs(a.errors[sample] - c.errors) <= ROUNDING)


def test_min_error_with_eps_reports_proven_infeasibility():
    x = np.array([[0.5, 0.25]])
    r = solve(SubsetSumProblem(np.array([0.1]), x), "exact", eps=0.01)
    assert r.status[0] == Status.INFEASIBLE
    assert r.errors[0] == pytest.approx(0.1)


def test_exact_refuses_too_many_candidates_and_names_alternatives():
    p = SubsetSumProblem(np.zeros(1), np.zeros((1, 50)))
    with pytest.raises(MethodUnavailableError, match=r"n <= 44.*milp.*local_search"):
        solve(p, "exact")
