"""§9 B solver contracts not covered by tests/subsetsum: soundness of every reported status (B7),
heuristics never beat the exact solver (B8), monotonicity over prefixes (B9), and product instances
summed bit-for-bit from the seeded generator (B11). Brute force is the oracle (n ≤ 14)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from strongticket.subsetsum import SubsetSumProblem, selection_sums, solve
from strongticket.subsetsum.problem import Status
from strongticket.subsetsum.registry import all_methods

ROUNDING = 1e-12


@st.composite
def rss_instances(draw, max_n: int = 14, max_t: int = 5):
    """Random RSS instances: candidates U[−1, 1] or products of two U[−1, 1], targets U[−1, 1]."""
    n, t = draw(st.integers(0, max_n)), draw(st.integers(1, max_t))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.uniform(-1, 1, (t, n))
    if draw(st.booleans()):
        x = x * rng.uniform(-1, 1, (t, n))
    return rng.uniform(-1, 1, t), x


def _methods(*names: str) -> list[str]:
    return [m for m in names if m in all_methods()]


@pytest.mark.parametrize("method", _methods("exact", "brute"))
@given(inst=rss_instances(), eps=st.sampled_from([1e-3, 1e-2, 0.1, 0.5]),
       objective=st.sampled_from(["min_error", "sparsest"]))
def test_every_status_is_true_of_the_stored_values(method, inst, eps, objective):
    """B7: OPTIMAL/FEASIBLE means within eps (recomputed from the candidates); otherwise INFEASIBLE."""
    z, x = inst
    res = solve(SubsetSumProblem(z, x), method, objective=objective, eps=eps)
    recomputed = np.abs(z - (x * res.selection).sum(axis=1))
    np.testing.assert_allclose(res.errors, recomputed, atol=ROUNDING)
    ok = (res.status == Status.OPTIMAL) | (res.status == Status.FEASIBLE)
    assert np.all(res.errors[ok] <= eps + ROUNDING)
    assert np.all(res.status[~ok] == Status.INFEASIBLE)
    brute = solve(SubsetSumProblem(z, x), "brute")
    assert np.all((brute.errors > eps) == ~ok)  # infeasible exactly when no subset is within eps


@pytest.mark.parametrize("method", _methods("greedy", "local_search", "milp"))
@given(inst=rss_instances(max_n=12))
def test_no_heuristic_beats_the_exact_optimum(method, inst):
    """B8: any method's error is ≥ the brute-force optimum (up to rounding)."""
    z, x = inst
    p = SubsetSumProblem(z, x)
    assert np.all(solve(p, method).errors >= solve(p, "brute").errors - ROUNDING)


@given(inst=rss_instances(max_n=12))
def test_best_error_is_nonincreasing_over_prefixes(inst):
    """B9: the sums of the first n candidates are among the sums of the first n + 1."""
    z, x = inst
    errs = [solve(SubsetSumProblem(z, x[:, :n]), "exact").errors for n in range(x.shape[1] + 1)]
    for a, b in zip(errs, errs[1:]):
        assert np.all(b <= a + ROUNDING)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 14), t=st.integers(1, 4))
def test_product_instances_sum_exactly_the_regenerated_products(seed, n, t):
    """B11: the reported sum is Σ v_i·u_i over the kept pairs, bit-for-bit from a regenerated generator."""
    def draw():
        rng = np.random.default_rng(seed)
        return rng.uniform(-1, 1, (t, n)), rng.uniform(-1, 1, (t, n)), rng.uniform(-1, 1, t)

    u, v, z = draw()
    res = solve(SubsetSumProblem(z, v * u), "exact")
    u2, v2, _ = draw()
    again = selection_sums(v2 * u2, res.selection)
    np.testing.assert_array_equal(res.sums, again)
    for k in range(t):  # the same value as a float64 sum in candidate order
        s = 0.0
        for i in np.flatnonzero(res.selection[k]):
            s += v2[k, i] * u2[k, i]
        assert res.sums[k] == pytest.approx(s, abs=ROUNDING)
