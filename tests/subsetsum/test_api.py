"""``solve``'s dispatch and the contracts every registered method shares (determinism, soundness)."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.subsetsum import registry, selection_sums, solve
from strongticket.subsetsum.api import choose_method
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.method import SolveOptions


@pytest.mark.parametrize("name", registry.names(one_dim=True))
def test_every_one_dim_method_is_deterministic_given_the_seed_and_sound(name):
    p = random_problem(6, 10, seed=11)
    extra = {"time_limit": 2.0} if name in ("milp",) else {}
    a = solve(p, name, seed=5, **extra)
    b = solve(p, name, seed=5, **extra)
    np.testing.assert_array_equal(a.selection, b.selection)
    sums = selection_sums(p.candidates, a.selection)
    np.testing.assert_array_equal(a.errors, np.abs(p.targets - sums))
    best = solve(p, "brute").errors
    assert np.all(a.errors >= best - 1e-12)  # nobody beats the optimum


@pytest.mark.parametrize("name", registry.names(multidim=True))
def test_every_mrss_method_never_beats_brute_force(name):
    p = random_problem(5, 9, d=2, dist="normal", seed=12)
    extra = {"time_limit": 2.0} if name == "mrss_milp" else {}
    r = solve(p, name, **extra)
    assert np.all(r.errors >= solve(p, "brute").errors - 1e-12)


def test_auto_dispatch_follows_problem_size():
    assert choose_method(random_problem(2, 30, seed=0), SolveOptions()) == "exact"
    assert choose_method(random_problem(2, 50, seed=0), SolveOptions()) == "local_search"
    assert choose_method(random_problem(2, 50, seed=0), SolveOptions(time_limit=1.0)) == "milp"
    assert choose_method(random_problem(2, 12, d=2, seed=0), SolveOptions()) == "mrss_exact"
    assert choose_method(random_problem(2, 10, seed=0), SolveOptions(objective="fixed_size", size=3)) == "milp"
