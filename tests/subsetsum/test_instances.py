"""Seeded instance generators: shapes, laws and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from strongticket.errors import InputError
from strongticket.subsetsum.instances import DISTRIBUTIONS, random_problem


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
@pytest.mark.parametrize("d", [None, 3])
def test_random_problem_has_the_requested_shapes(dist, d):
    p = random_problem(7, 5, dist=dist, d=d, seed=1)
    assert p.targets.shape == ((7,) if d is None else (7, d))
    assert p.candidates.shape == ((7, 5) if d is None else (7, 5, d))
    assert p.multidim == (d is not None)


@pytest.mark.parametrize("dist", DISTRIBUTIONS)
def test_same_seed_gives_identical_problems(dist):
    a = random_problem(4, 6, dist=dist, d=2, seed=123)
    b = random_problem(4, 6, dist=dist, d=2, seed=123)
    c = random_problem(4, 6, dist=dist, d=2, seed=124)
    assert np.array_equal(a.candidates, b.candidates) and np.array_equal(a.targets, b.targets)
    assert not np.array_equal(a.candidates, c.candidates)


def test_generators_do_not_touch_the_global_rng():
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    random_problem(10, 10, seed=0)
    assert np.random.random() == before


def test_laws_have_their_support_and_moments():
    u = random_problem(2000, 20, dist="uniform", seed=0, target_range=0.5)
    assert np.abs(u.candidates).max() <= 1 and np.abs(u.targets).max() <= 0.5
    assert abs(u.candidates.var() - 1 / 3) < 0.01
    prod = random_problem(2000, 20, dist="product", seed=0).candidates
    assert np.abs(prod).max() <= 1 and abs(prod.var() - 1 / 9) < 0.01
    normal = random_problem(2000, 20, dist="normal", seed=0).candidates
    assert abs(normal.var() - 1) < 0.02


@pytest.mark.parametrize("kwargs", [dict(T=0, n=3), dict(T=2, n=3, dist="cauchy"), dict(T=2, n=3, d=0),
                                    dict(T=2, n=3, target_range=0.0)])
def test_bad_arguments_raise_input_errors(kwargs):
    T, n = kwargs.pop("T"), kwargs.pop("n")
    with pytest.raises(InputError):
        random_problem(T, n, seed=0, **kwargs)
