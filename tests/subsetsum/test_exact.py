"""The compiled exact solver: tie-breaking identical to brute force, monotonicity, chunking, refusals.

Optimality, soundness and batch-order invariance are checked for every method in test_contract.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import SubsetSumProblem, solve
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


@given(integer_instances(), st.sampled_from([0.5, 1.0, 2.5]))
def test_sparsest_selection_equals_brute_force_when_arithmetic_is_exact(inst, eps):
    z, x = inst
    p = SubsetSumProblem(z, x)
    a, b = solve(p, "exact", objective="sparsest", eps=eps), solve(p, "brute", objective="sparsest", eps=eps)
    np.testing.assert_array_equal(a.selection, b.selection)  # same subset among ties: smallest key
    np.testing.assert_array_equal(a.status, b.status)


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
