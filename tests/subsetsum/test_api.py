"""``solve``'s ``auto`` dispatch (the contracts every method keeps are in test_contract.py)."""

from __future__ import annotations

from strongticket.subsetsum.api import choose_method
from strongticket.subsetsum.instances import random_problem
from strongticket.subsetsum.method import SolveOptions


def test_auto_dispatch_follows_problem_size():
    assert choose_method(random_problem(2, 30, seed=0), SolveOptions()) == "exact"
    assert choose_method(random_problem(2, 50, seed=0), SolveOptions()) == "local_search"
    assert choose_method(random_problem(2, 50, seed=0), SolveOptions(time_limit=1.0)) == "milp"
    assert choose_method(random_problem(2, 12, d=2, seed=0), SolveOptions()) == "mrss_exact"
    assert choose_method(random_problem(2, 10, seed=0), SolveOptions(objective="fixed_size", size=3)) == "milp"
