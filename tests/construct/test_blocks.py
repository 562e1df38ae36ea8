"""Block size of the 2L construction: binomial tail, union bound, short blocks, exactly n candidates."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongticket.construct.blocks import assemble_block, block_size_for, short_inputs, shortfall_probability
from strongticket.errors import InputError
from strongticket.nets.distributions import WeightDistribution


def exact_shortfall(H: int, n: int, p: Fraction) -> Fraction:
    return sum((comb(H, k) * p ** k * (1 - p) ** (H - k) for k in range(min(n, H + 1))), Fraction(0))


@given(H=st.integers(0, 120), n=st.integers(1, 40), p=st.sampled_from([Fraction(1, 2), Fraction(9, 20),
                                                                        Fraction(1, 10), Fraction(4, 5)]))
@settings(max_examples=60, deadline=None)
def test_shortfall_probability_equals_the_exact_binomial_tail(H, n, p):
    exact = float(exact_shortfall(H, n, p))
    assert shortfall_probability(H, n, float(p)) == pytest.approx(exact, rel=1e-9, abs=1e-300)


@given(n=st.integers(1, 40), blocks=st.integers(1, 5000), delta=st.sampled_from([0.1, 0.01, 1e-4]),
       p=st.sampled_from([0.5, 0.44, 0.2]))
@settings(max_examples=60, deadline=None)
def test_block_size_is_the_smallest_meeting_the_union_bound(n, blocks, delta, p):
    H = block_size_for(n, delta, [(blocks, p)])
    assert H >= n
    assert blocks * shortfall_probability(H, n, p) <= delta
    if H > n:
        assert blocks * shortfall_probability(H - 1, n, p) > delta


def test_block_size_for_pensia_experiment_one():
    # FC2 784-500-10 on non-negative pixels: 784 + 500 blocks, one sign each, n = 21, delta = 0.01
    H = block_size_for(21, 0.01, [(784, 0.5), (500, 0.5)])
    assert 2 * 21 < H < 4 * 21
    assert block_size_for(21, 0.01, [(784, 0.5), (500, 0.5), (784, 0.5)]) >= H  # both signs of block 1
    assert block_size_for(21, 0.01, [(1284, 0.44)]) > H  # a law with fewer positives needs more


def test_block_size_union_bound_holds_by_simulation():
    rng = np.random.default_rng(0)
    n, blocks, delta = 5, 50, 0.2
    H = block_size_for(n, delta, [(blocks, 0.5)])
    trials = 4000
    short = (rng.binomial(H, 0.5, size=(trials, blocks)) < n).any(axis=1).mean()
    assert short <= delta + 3 * np.sqrt(delta / trials)


@pytest.mark.parametrize("args, message", [
    ((0, 0.01, [(3, 0.5)]), "samples must be a positive integer"),
    ((3, 1.0, [(3, 0.5)]), r"delta must be in \(0, 1\)"),
    ((3, 0.01, [(3, 0.0)]), "never gives a sign"),
])
def test_block_size_bad_arguments_are_named(args, message):
    with pytest.raises(InputError, match=message):
        block_size_for(*args)


def test_sign_probabilities_of_the_laws():
    assert WeightDistribution.uniform(-1, 1).sign_probabilities() == (0.5, 0.5)
    pos, neg = WeightDistribution.uniform(-0.4, 0.6).sign_probabilities()
    assert pos == pytest.approx(0.6) and neg == pytest.approx(0.4)
    assert WeightDistribution.uniform(0.1, 1).sign_probabilities() == (1.0, 0.0)
    pos, _ = WeightDistribution.normal(1.0, 1.0).sign_probabilities()
    assert pos == pytest.approx(0.8413447, abs=1e-6)
    assert WeightDistribution.signed_constant().sign_probabilities() == (0.5, 0.5)


def test_short_inputs_lists_blocks_lacking_a_needed_sign():
    u = np.array([[0.5, -0.2, 0.3, 0.1], [-0.5, -0.2, -0.3, 0.1]], dtype=np.float32)
    assert short_inputs(u, 1) == []
    assert short_inputs(u, 2) == [(0, "-", 1), (1, "+", 1)]
    assert short_inputs(u, 2, negative_side=False) == [(1, "+", 1)]
    assert short_inputs(u, 4) == [(0, "+", 3), (0, "-", 1), (1, "+", 1), (1, "-", 3)]


def test_every_instance_gets_the_first_n_neurons_of_its_sign():
    rng = np.random.default_rng(1)
    d_out, d_in, H, n = 3, 4, 12, 3
    u = rng.uniform(-1, 1, (d_in, H)).astype(np.float32)
    v = rng.uniform(-1, 1, (d_out, d_in * H)).astype(np.float32)
    w = rng.uniform(-0.5, 0.5, (d_out, d_in))
    seen = []

    def choose_all(targets, cand):
        seen.append(cand.shape[1])
        return np.ones(cand.shape, dtype=bool), np.zeros(len(targets), dtype=np.int8), {}

    block = assemble_block(w, u, v, choose_all, samples=n)
    assert set(seen) == {n} and np.all(block.counts_pos == n) and np.all(block.counts_neg == n)
    mask2 = block.mask2.numpy().reshape(d_out, d_in, H)
    for j in range(d_in):
        first = np.concatenate([np.nonzero(u[j] > 0)[0][:n], np.nonzero(u[j] < 0)[0][:n]])
        expect = np.zeros(H, dtype=bool)
        expect[first] = True
        assert np.array_equal(mask2[:, j], np.broadcast_to(expect, (d_out, H)))


def _one_weight_block(weight: float):
    """One target weight, one input whose block has 6 neurons, all with u = 1: the products are the v's."""
    u = np.ones((1, 6), dtype=np.float32)
    v = np.array([[0.01, 0.02, 0.5, 0.3, 0.15, 0.07]], dtype=np.float32)
    return np.array([[weight]]), u, v


def test_an_instance_missing_with_its_first_n_is_solved_over_the_whole_pool():
    from strongticket.construct.pensia import subset_sum_chooser

    w, u, v = _one_weight_block(0.8)  # the first n = 2 products reach at most 0.03; only 0.5 + 0.3 hits it
    chooser = subset_sum_chooser("exact", "min_error", 1e-3, None)
    first_only = assemble_block(w, u, v, chooser, samples=2, negative_side=False, eps=1e-3, wider_pool=False)
    assert first_only.errors_pos[0, 0] == pytest.approx(0.77) and len(first_only.retried) == 0
    (miss,) = first_only.misses  # within the pool's reach; its first 2 candidates were all that was searched
    assert miss["reason"] == "not_found" and not miss["searched_pool"] and not miss["proved"]
    block = assemble_block(w, u, v, chooser, samples=2, negative_side=False, eps=1e-3)
    assert block.errors_pos[0, 0] <= 1e-6
    assert block.retried.tolist() == [[0, 0, 0]] and block.recovered == 1
    assert block.misses == [] and block.miss_reasons == {}
    assert np.nonzero(block.mask2.numpy()[0])[0].tolist() == [2, 3]
    assert block.mask1.numpy()[:, 0].tolist() == [False, False, True, True, False, False]
    assert [i["pass"] for i in block.info] == ["first", "wider_pool"]


def test_a_weight_outside_the_reachable_range_is_reported_as_such():
    from strongticket.construct.pensia import subset_sum_chooser

    w, u, v = _one_weight_block(5.0)  # all six products sum to 1.05 < 5
    block = assemble_block(w, u, v, subset_sum_chooser("exact", "min_error", 1e-3, None), samples=2,
                           negative_side=False, eps=1e-3)
    assert block.retried.tolist() == [[0, 0, 0]] and block.recovered == 0
    assert block.miss_reasons == {"outside_range": 1}
    (miss,) = block.misses
    assert miss["reason"] == "outside_range" and miss["pool"] == 6
    assert miss["reach"] == pytest.approx([0.0, 1.05]) and miss["error"] == pytest.approx(3.95)
    assert miss["law_scale"] == pytest.approx(np.sqrt((5.0 - 1e-3) / 1.05))  # products scale with the square


def test_a_weight_within_reach_but_between_the_sums_is_not_found_and_proved_so():
    from strongticket.construct.pensia import subset_sum_chooser

    w, u, v = _one_weight_block(0.925)  # within [0, 1.05]; the nearest sums are 0.90 and 0.95
    block = assemble_block(w, u, v, subset_sum_chooser("exact", "min_error", 1e-3, None), samples=2,
                           negative_side=False, eps=1e-3)
    (miss,) = block.misses
    assert miss["reason"] == "not_found" and miss["proved"] is True


def test_the_wider_pool_beyond_the_exact_limit_is_split_explicitly(monkeypatch):
    from strongticket.construct import pensia
    from strongticket.subsetsum.exact import EXACT_MAX_N

    assert pensia.WIDE_EXACT_LIMIT == EXACT_MAX_N
    limit = 12  # the logic at a size that solves in milliseconds
    monkeypatch.setattr(pensia, "WIDE_EXACT_LIMIT", limit)
    rng = np.random.default_rng(0)
    c = limit + 2
    cand = rng.uniform(-1, 1, (2, c)) * rng.uniform(0, 1, (2, c))
    cand[:, limit:] = 3.0  # 6.0 is only reachable through the two candidates beyond the exact part
    targets = np.array([6.0, cand[1, :3].sum()])  # the second is met by the exact part alone
    sel, status, info = pensia.subset_sum_chooser("auto", "min_error", 1e-2, None).choose_wide(targets, cand)
    assert sel.shape == (2, c) and info["method"] == f"exact on the first {limit} of {c}, then local_search on all {c}"
    assert info["local_search_instances"] == 1
    assert abs(cand[0][sel[0]].sum() - 6.0) <= 1e-2 and sel[0, limit:].all()
    assert abs(cand[1][sel[1]].sum() - targets[1]) <= 1e-2 and not sel[1, limit:].any()
    assert status.tolist() == [1, 1]  # feasible: within eps, but nothing proved about the whole pool
