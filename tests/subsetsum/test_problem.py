"""Bad input is refused with a one-line error naming the argument, the expectation and the value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

from strongticket.errors import InputError
from strongticket.subsetsum import SubsetSumProblem, selection_sums, solve


@pytest.mark.parametrize("targets, candidates, message", [
    (np.array([np.nan]), np.zeros((1, 3)), r"targets must be finite, got nan at index \(0,\)"),
    (np.zeros(1), np.array([[0.0, np.inf]]), r"candidates must be finite, got inf at index \(0, 1\)"),
    (np.zeros(2), np.zeros((3, 4)), r"same batch size T, got 3 candidate rows and 2 targets"),
    (np.zeros(2), np.zeros(4), r"candidates must have shape \(T, n\)"),
    (np.zeros((2, 3)), np.zeros((2, 5, 2)), r"dimension d=3, got 2"),
    (np.zeros(0), np.zeros((0, 4)), r"batch is empty"),
    (np.zeros((1, 1, 1)), np.zeros((1, 1, 1, 1)), r"targets must have shape \(T,\) or \(T, d\)"),
    (np.array(["a"]), np.zeros((1, 2)), r"targets must be a real-valued array, got dtype <U1"),
])
def test_bad_problems_are_refused_with_a_clear_message(targets, candidates, message):
    with pytest.raises(InputError, match=message):
        SubsetSumProblem(targets, candidates)


def test_unknown_norm_is_refused():
    with pytest.raises(InputError, match=r"norm must be one of \('linf', 'l2'\), got 'l3'"):
        SubsetSumProblem(np.zeros((1, 2)), np.zeros((1, 3, 2)), norm="l3")


def test_mixed_numpy_and_torch_is_refused():
    with pytest.raises(InputError, match="must both be numpy arrays or both torch tensors, got ndarray and Tensor"):
        SubsetSumProblem(np.zeros(1), torch.zeros(1, 3))


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": 0.0}, r"eps must be a finite number > 0, got 0.0"),
    ({"eps": -1.0}, r"eps must be a finite number > 0, got -1.0"),
    ({"objective": "sparsest"}, r"'sparsest' needs eps"),
    ({"objective": "best"}, r"objective must be one of"),
    ({"method": "nope"}, r"method must be 'auto' or one of \[.*'exact'.*\], got 'nope'"),
    ({"time_limit": 0}, r"time_limit must be a number of seconds > 0"),
    ({"objective": "fixed_size"}, r"'fixed_size' needs size >= 0"),
    ({"objective": "fixed_size", "size": 4}, r"size must be <= n, the 3 candidates per instance, got 4"),
    ({"size": 2}, r"size is used only by objective 'fixed_size', got size=2 with objective 'min_error'"),
])
def test_bad_solve_options_are_refused(kwargs, message):
    p = SubsetSumProblem(np.zeros(1), np.ones((1, 3)))
    with pytest.raises(InputError, match=message):
        solve(p, **kwargs)


def test_solve_accepts_integer_arrays_and_reports_float64():
    r = solve(SubsetSumProblem(np.array([3]), np.array([[1, 2, 5]])), "exact")
    assert r.sums.dtype == np.float64
    assert r.errors[0] == 0.0
    assert r.selection.tolist() == [[True, True, False]]


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 14), t=st.integers(1, 4))
def test_product_instances_sum_exactly_the_regenerated_products(seed, n, t):
    """The reported sum is the float64 sum, in candidate order, of v_i·u_i over the kept pairs, bit for bit
    from a regenerated generator (what a Pensia block's products give when drawn again)."""
    def draw():
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, (t, n)), rng.uniform(-1, 1, (t, n)), rng.uniform(-1, 1, t)

    u, v, z = draw()
    res = solve(SubsetSumProblem(z, v * u), "exact")
    u2, v2, _ = draw()
    np.testing.assert_array_equal(res.sums, selection_sums(v2 * u2, res.selection))
    for k in range(t):
        s = 0.0
        for i in np.flatnonzero(res.selection[k]):
            s += v2[k, i] * u2[k, i]
        assert res.sums[k] == s


def test_more_candidates_than_a_bitmask_holds_are_solved_by_the_methods_that_take_any_n():
    """n = 70 (beyond 64-bit masks): the problem is valid, `exact` says which method to use instead, and the
    heuristics return a bool selection whose reported error is the recomputed one."""
    from strongticket.errors import MethodUnavailableError
    from strongticket.subsetsum import solve

    rng = np.random.default_rng(0)
    one = SubsetSumProblem(rng.uniform(-1, 1, 4), rng.uniform(-1, 1, (4, 70)))
    with pytest.raises(MethodUnavailableError, match=r"takes n <= 44, got n=70"):
        solve(one, "exact")
    res = solve(one)  # auto: beyond exact, a heuristic
    assert res.selection.shape == (4, 70) and res.selection.dtype == bool
    np.testing.assert_array_equal(res.errors, np.abs(one.targets - (one.candidates * res.selection).sum(axis=1)))
    multi = SubsetSumProblem(rng.uniform(-1, 1, (3, 9)), rng.normal(size=(3, 100, 1)) * rng.normal(size=(3, 100, 9)))
    res = solve(multi)
    assert res.method == "mrss_search" and res.selection.shape == (3, 100)
    sums = (multi.candidates * res.selection[:, :, None]).sum(axis=1)
    np.testing.assert_allclose(res.errors, np.abs(multi.targets - sums).max(axis=1), rtol=0, atol=1e-12)
