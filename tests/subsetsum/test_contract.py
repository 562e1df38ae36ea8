"""The contract every registered subset-sum method keeps, checked against an enumeration of all subsets.

One parametrised property test per (method, instance kind, objective), generated from
:data:`strongticket.subsetsum.registry.METHODS`: a new method is covered as soon as it is registered,
and a solver module that fails to import makes this module fail to collect (an error, not a skip).
For every method:

* soundness: sums and errors are those of the selection (recomputed here), statuses are true of them;
* never better than the optimum (enumerated here), and lower bounds are below it;
* exact methods reach it: the optimum error (``min_error``), the fewest candidates within eps
  (``sparsest``), the best subset of the asked size (``fixed_size``), and prove infeasibility only when
  no subset qualifies;
* the answer does not depend on the order of the instances in the batch, nor on the run (same seed).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from strongticket.errors import MethodUnavailableError
from strongticket.subsetsum import SubsetSumProblem, registry, solve
from strongticket.subsetsum.method import SolveOptions
from strongticket.subsetsum.problem import Status, approximation_errors, selection_sums

MAX_N = 10
ROUNDING = 1e-12  # a few ulps of sums of <= 10 numbers of magnitude <= 4
FOUND = (Status.OPTIMAL, Status.FEASIBLE)

CASES = [
    pytest.param(name, kind, objective, id=f"{name}-{kind}-{objective}")
    for name, info in registry.METHODS.items()
    for kind in ("rss", "mrss") if (info.one_dim if kind == "rss" else info.multidim)
    for objective in info.objectives
]


@st.composite
def contract_cases(draw, kind: str, objective: str):
    """(problem, eps, size): float or small-integer instances (integers make ties real), n <= MAX_N."""
    n = draw(st.integers(0, MAX_N))
    T = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    d = draw(st.integers(1, 3)) if kind == "mrss" else None
    xs = (T, n) if d is None else (T, n, d)
    zs = (T,) if d is None else (T, d)
    integers = draw(st.booleans())
    if integers:
        x, z = rng.integers(-4, 5, xs).astype(float), rng.integers(-8, 9, zs).astype(float)
        eps_choices = [0.5, 1.5, 2.5]
    else:
        x = rng.standard_normal(xs) * 0.5 if d else rng.uniform(-1, 1, xs) * rng.uniform(-1, 1, xs) ** draw(
            st.sampled_from([0, 1]))  # uniform, or products of two uniforms
        z = rng.uniform(-1.5, 1.5, zs)
        eps_choices = [0.01, 0.1, 0.5]
    norm = draw(st.sampled_from(["linf", "l2"])) if d else "linf"
    eps = draw(st.sampled_from(eps_choices)) if objective == "sparsest" else draw(
        st.sampled_from([None, *eps_choices]))
    size = draw(st.integers(0, n)) if objective == "fixed_size" else None
    return SubsetSumProblem(z, x, norm), eps, size


def enumerate_errors(problem: SubsetSumProblem) -> tuple[np.ndarray, np.ndarray]:
    """Errors of all 2^n subsets of every instance, (T, 2^n), with the same arithmetic as ``solve``,
    and the subsets' sizes (2^n,)."""
    T, n = problem.num_instances, problem.num_candidates
    masks = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)
    errors = np.empty((T, 1 << n))
    for t in range(T):
        x = np.broadcast_to(problem.candidates[t], (1 << n,) + problem.candidates.shape[1:])
        z = np.broadcast_to(problem.targets[t], (1 << n,) + problem.targets.shape[1:])
        errors[t] = approximation_errors(z, selection_sums(x, masks), problem.norm)
    return errors, masks.sum(axis=1)


def _solve(problem: SubsetSumProblem, name: str, objective: str, eps: float | None, size: int | None):
    return solve(problem, name, objective=objective, eps=eps, size=size, seed=3)


@pytest.mark.parametrize("name, kind, objective", CASES)
def test_method_keeps_the_solver_contract(name, kind, objective):
    info = registry.get(name)

    @given(case=contract_cases(kind, objective), perm_seed=st.integers(0, 2**32 - 1))
    def check(case, perm_seed):
        problem, eps, size = case
        try:
            registry.ensure_supports(info, problem, SolveOptions(objective=objective, eps=eps, size=size))
        except MethodUnavailableError:
            assume(False)  # e.g. CP-SAT and the l2 norm; a method that refuses everything fails as unsatisfiable
        res = _solve(problem, name, objective, eps, size)
        T, n = problem.num_instances, problem.num_candidates

        # soundness: what is reported is what the selection gives
        assert res.method == name
        assert res.selection.shape == (T, n) and res.selection.dtype == bool and res.status.dtype == np.int8
        sums = selection_sums(problem.candidates, res.selection)
        np.testing.assert_array_equal(res.sums, sums)
        np.testing.assert_array_equal(res.errors, approximation_errors(problem.targets, sums, problem.norm))
        assert set(res.status.tolist()) <= {int(s) for s in Status}
        found = np.isin(res.status, FOUND)
        tol = max(ROUNDING, 2 * res.info.get("scale_rounding_error", 0.0))  # CP-SAT's integer scaling
        if eps is not None:
            assert np.all(res.errors[found] <= eps + tol)
        if not info.exact and eps is not None:
            np.testing.assert_array_equal(res.status == Status.FEASIBLE, res.errors <= eps)
        if objective == "fixed_size":
            assert np.all(res.num_selected[found] == size)

        # the optimum, by enumeration
        all_err, sizes = enumerate_errors(problem)
        best = all_err.min(axis=1)
        of_size = np.where(sizes == size, all_err, np.inf).min(axis=1) if objective == "fixed_size" else best
        if res.lower_bounds is not None:  # a bound on the objective's optimum (of the asked size for fixed_size)
            lb = np.asarray(res.lower_bounds, dtype=float)
            known = np.isfinite(lb) & np.isfinite(of_size)
            assert np.all(lb[known] <= of_size[known] + tol)
        near_eps = np.zeros(T, bool) if eps is None else np.any(np.abs(all_err - eps) <= tol, axis=1)
        clear = ~near_eps
        if objective == "min_error":
            assert np.all(res.errors >= best - tol)
        elif objective == "sparsest":
            within = all_err <= eps
            fewest = np.where(within, sizes, n + 1).min(axis=1)  # n + 1: no subset within eps
            ok = res.errors <= eps
            assert np.all(res.num_selected[ok] >= fewest[ok])
        else:
            assert np.all(res.errors[found] >= of_size[found] - tol)

        if info.exact:
            infeasible = res.status == Status.INFEASIBLE
            if objective == "min_error":
                assert np.all(np.abs(res.errors - best) <= tol)
                assert np.all(np.isin(res.status[clear], (Status.OPTIMAL, Status.INFEASIBLE)))
                if eps is not None:
                    np.testing.assert_array_equal(infeasible[clear], best[clear] > eps)
            elif objective == "sparsest":
                np.testing.assert_array_equal(infeasible[clear], fewest[clear] > n)
                sel = clear & ~infeasible
                np.testing.assert_array_equal(res.num_selected[sel], fewest[sel])
                smallest = np.where(within & (sizes == fewest[:, None]), all_err, np.inf).min(axis=1)
                assert np.all(res.errors[sel] <= smallest[sel] + tol)
                assert np.all(np.abs(res.errors[clear & infeasible] - best[clear & infeasible]) <= tol)
            else:
                expected = np.zeros(T, bool) if eps is None else of_size > eps
                np.testing.assert_array_equal(infeasible[clear], expected[clear])
                sel = clear & ~infeasible
                assert np.all(res.status[sel] == Status.OPTIMAL)
                assert np.all(np.abs(res.errors[sel] - of_size[sel]) <= tol)

        # batch order and repetition change nothing
        perm = np.random.default_rng(perm_seed).permutation(T)
        shuffled = _solve(problem.subset(perm), name, objective, eps, size)
        np.testing.assert_array_equal(shuffled.selection, res.selection[perm])
        np.testing.assert_array_equal(shuffled.status, res.status[perm])
        again = _solve(problem, name, objective, eps, size)
        np.testing.assert_array_equal(again.selection, res.selection)
        np.testing.assert_array_equal(again.status, res.status)

    check()
