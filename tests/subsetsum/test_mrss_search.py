"""mrss_search: reported errors are the recomputed ones, small instances match the exact optimum, draws are seeded."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.errors import InputError
from strongticket.subsetsum import SubsetSumProblem, solve
from strongticket.subsetsum.mrss_search import mrss_search, selection_errors
from strongticket.subsetsum.problem import approximation_errors, selection_sums


def _nsn(T, n, d, seed):
    """Normally-scaled normal candidates (scalar normal times a normal vector), targets U[-1, 1]^d."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, n, 1)) * rng.standard_normal((T, n, d)), rng.uniform(-1, 1, (T, d))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_reported_error_equals_recomputed(norm):
    x, z = _nsn(6, 80, 9, 0)
    out = mrss_search(x, z, norm, seed=3, steps=10, restarts=2)
    diff = np.abs(z - (x * out.selection[:, :, None]).sum(axis=1))
    expected = diff.max(axis=1) if norm == "linf" else np.sqrt((diff ** 2).sum(axis=1))
    np.testing.assert_allclose(out.errors, expected, rtol=0, atol=1e-12)
    p = SubsetSumProblem(z, x[:, :40], norm)  # the problem module's arithmetic, where n fits it
    sel = out.selection[:, :40]
    assert np.array_equal(selection_errors(x[:, :40], z, sel, norm),
                          approximation_errors(p.targets, selection_sums(p.candidates, sel), norm))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_whole_group_search_matches_exact_optimum(norm):
    # With group = n every step re-solves all candidates exactly: the first step finds the optimum.
    x, z = _nsn(20, 12, 3, 1)
    out = mrss_search(x, z, norm, group=12, steps=1, restarts=1)
    best = solve(SubsetSumProblem(z, x, norm), method="brute")
    np.testing.assert_allclose(out.errors, best.errors, rtol=0, atol=1e-12)


def test_never_worse_than_greedy_start_and_improves_with_steps():
    x, z = _nsn(16, 256, 9, 2)
    start = mrss_search(x, z, steps=0, restarts=1).errors
    searched = mrss_search(x, z, steps=60, restarts=1).errors
    assert np.all(searched <= start)
    assert np.median(searched) < 0.5 * np.median(start)


def test_seeded_and_independent_of_batch():
    x, z = _nsn(8, 100, 9, 3)
    a = mrss_search(x, z, seed=5, steps=20, restarts=2)
    b = mrss_search(x[:3], z[:3], seed=5, steps=20, restarts=2)
    assert np.array_equal(a.selection, mrss_search(x, z, seed=5, steps=20, restarts=2).selection)
    assert np.array_equal(a.selection[:3], b.selection)  # an instance's draws depend on seed and its own values
    perm = np.array([7, 2, 5, 0, 1, 6, 3, 4])
    assert np.array_equal(mrss_search(x[perm], z[perm], seed=5, steps=20, restarts=2).selection, a.selection[perm])
    c = mrss_search(x, z, seed=6, steps=20, restarts=2)
    assert not np.array_equal(a.selection, c.selection)


def test_eps_stops_early_within_eps():
    x, z = _nsn(8, 200, 9, 4)
    out = mrss_search(x, z, eps=0.3, steps=60)
    assert np.all(out.errors <= 0.3)


@pytest.mark.parametrize("kwargs, word", [
    ({"group": 1}, "group"), ({"group": 31}, "group"), ({"steps": -1}, "steps"), ({"restarts": 0}, "restarts"),
    ({"norm": "l1"}, "norm"), ({"eps": 0.0}, "eps"), ({"time_limit": -1.0}, "time_limit"), ({"seed": -2}, "seed"),
])
def test_bad_options_are_one_line_input_errors(kwargs, word):
    x, z = _nsn(2, 20, 3, 0)
    with pytest.raises(InputError, match=word):
        mrss_search(x, z, **kwargs)


def test_bad_shapes_and_values():
    x, z = _nsn(2, 20, 3, 0)
    with pytest.raises(InputError, match="shape"):
        mrss_search(x, z[:, :2])
    x[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        mrss_search(x, z)


def test_registry_adapter_returns_the_search_selection():
    from strongticket.subsetsum.method import SolveOptions
    from strongticket.subsetsum.mrss_search import solve_mrss_search

    x, z = _nsn(4, 40, 9, 5)
    out = solve_mrss_search(SubsetSumProblem(z, x), SolveOptions(objective="min_error", eps=None, time_limit=None,
                                                                 size=None, seed=2, extra={"steps": 5}))
    assert np.array_equal(out.selection, mrss_search(x, z, seed=2, steps=5).selection)
