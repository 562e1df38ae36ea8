"""The torch batched solver agrees with the compiled CPU solver bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given

from strongticket.subsetsum import SubsetSumProblem, solve
from tests.subsetsum.strategies import float_instances, integer_instances


def _both(z, x, device="cpu", budget=10_000):
    cpu = solve(SubsetSumProblem(z, x), "exact")
    tz, tx = torch.tensor(z, device=device), torch.tensor(x, device=device)
    tor = solve(SubsetSumProblem(tz, tx), "torch", memory_budget=budget)
    return cpu, tor


@given(float_instances(max_t=20))
def test_torch_selection_equals_cpu_selection_on_floats(inst):
    cpu, tor = _both(*inst)
    np.testing.assert_array_equal(cpu.selection, tor.selection)
    np.testing.assert_array_equal(cpu.errors, tor.errors)


@given(integer_instances(max_t=20))
def test_torch_breaks_ties_like_cpu(inst):
    cpu, tor = _both(*inst)
    np.testing.assert_array_equal(cpu.selection, tor.selection)


def test_torch_chunking_does_not_change_the_answer():
    rng = np.random.default_rng(3)
    z, x = rng.uniform(-1, 1, 777), rng.uniform(-1, 1, (777, 13))
    _, small = _both(z, x, budget=1)  # one row per chunk
    _, big = _both(z, x, budget=1 << 30)
    np.testing.assert_array_equal(small.selection, big.selection)


def test_auto_picks_cpu_exact_for_cpu_tensors_and_returns_numpy():
    rng = np.random.default_rng(4)
    p = SubsetSumProblem(torch.tensor(rng.uniform(-1, 1, 5)), torch.tensor(rng.uniform(-1, 1, (5, 8))))
    r = solve(p)
    assert r.method == "exact"
    assert isinstance(r.selection, np.ndarray)


@pytest.mark.gpu
def test_cuda_tensors_are_solved_on_the_gpu_and_agree_with_cpu():
    rng = np.random.default_rng(5)
    z, x = rng.uniform(-1, 1, 2000), rng.uniform(-1, 1, (2000, 18))
    cpu = solve(SubsetSumProblem(z, x), "exact")
    r = solve(SubsetSumProblem(torch.tensor(z, device="cuda"), torch.tensor(x, device="cuda")))
    assert r.method == "torch"
    np.testing.assert_array_equal(cpu.selection, r.selection)
