"""The Flatten -> Linear layer kind: a pruned random 1x1 conv + ReLU + Flatten + Linear computes the selected sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from strongticket.construct import engine
from strongticket.construct import flatten_linear as fl
from strongticket.construct.blocks import first_layer_diagonal
from strongticket.construct.pensia import subset_sum_chooser
from strongticket.errors import InputError
from strongticket.nets.distributions import WeightDistribution


def _selected_sums(first, mask1, second, mask2, C, H, S):
    """Per target weight ``(o, j S + s)``, the kept products' sums on each side, written out with loops."""
    d_out = second.shape[0]
    s_pos, s_neg = np.zeros((d_out, C * S)), np.zeros((d_out, C * S))
    for j in range(C):
        for r in range(H):
            h = j * H + r
            if not mask1[h, j, 0, 0]:
                continue
            assert not np.any(np.delete(mask1[h, :, 0, 0], j))  # univariate: channel (j, r) reads j only
            u = float(first[h, j, 0, 0])
            for o in range(d_out):
                for s in range(S):
                    if mask2[o, h * S + s]:
                        side = s_pos if u > 0 else s_neg
                        side[o, j * S + s] += abs(u) * float(second[o, h * S + s])
    return s_pos, s_neg


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), C=st.integers(1, 3), hs=st.integers(1, 3), ws=st.integers(1, 3),
       d_out=st.integers(1, 3), signed=st.booleans())
def test_pruned_pair_computes_the_selected_subset_sums_exactly(seed, C, hs, ws, d_out, signed):
    S, H, n, eps = hs * ws, 14, 6, 0.05
    law = WeightDistribution.uniform()
    names = ("layers.0.weight", "layers.2.weight")
    conv1, lin = fl.random_pair(C, S, d_out, H, "identity")
    shapes = ((conv1.out_channels, C, 1, 1), (d_out, lin.in_features))
    rng = np.random.default_rng(seed)
    target = rng.uniform(-0.6, 0.6, (d_out, C * S))
    u = first_layer_diagonal(law, names[0], (H * C, C), seed % 1000, H)
    if np.any((u > 0).sum(1) < n) or signed and np.any((u < 0).sum(1) < n):
        return  # a block short of a sign: the construction's own check (short_inputs) covers that case
    out = engine.run([engine.flatten_linear_job(names, shapes, target, C, negative_side=signed)],
                     subset_sum_chooser("exact", "min_error", eps, None), distribution=law, seed=seed % 1000,
                     block_size=H, samples=n, per_weight_eps=eps, strict=True, wider_pool=True,
                     short_fix=lambda: "")
    first = law.tensor(names[0], shapes[0], seed % 1000).numpy()
    second = law.tensor(names[1], shapes[1], seed % 1000, fan_in=lin.in_features).numpy()
    mask1, mask2 = out.masks[names[0]].numpy(), out.masks[names[1]].numpy()
    assert mask1.shape == shapes[0] and mask2.shape == shapes[1]
    s_pos, s_neg = _selected_sums(first, mask1, second, mask2, C, H, S)
    # recorded per-weight errors are those of the kept products, weight by weight, in the target's layout
    np.testing.assert_allclose(out.arrays["errors.block0.pos"], np.abs(s_pos - target), rtol=0, atol=1e-12)
    if signed:
        np.testing.assert_allclose(out.arrays["errors.block0.neg"], np.abs(s_neg + target), rtol=0, atol=1e-12)
    # the pruned random layers, as a network computes them, equal A+ relu(x) + A- relu(-x) (float64)
    x = torch.from_numpy(rng.uniform(-1 if signed else 0, 1, (4, C, hs, ws)))
    w1 = torch.from_numpy(first).double() * torch.from_numpy(mask1)
    w2 = torch.from_numpy(second).double() * torch.from_numpy(mask2)
    got = F.linear(F.relu(F.conv2d(x, w1)).flatten(1), w2)
    want = F.relu(x).flatten(1) @ torch.from_numpy(s_pos).T + F.relu(-x).flatten(1) @ torch.from_numpy(s_neg).T
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12)
    a_pos, a_neg = fl.pair_coefficients(first, mask1, second, mask2)
    np.testing.assert_allclose(a_pos, s_pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_neg, s_neg, rtol=0, atol=1e-12)
    # every weight above eps is a recorded miss (the wider pool was tried first)
    above = int((np.abs(s_pos - target) > eps).sum()) + (int((np.abs(s_neg + target) > eps).sum()) if signed else 0)
    assert above == out.layers[0]["misses"]["count"]


def test_instance_candidates_are_one_channel_one_position_products():
    """Instance ``(o S + s, j)`` of the matrix view is weight ``(o, j S + s)`` over ``u[j, r] V[o, (j H + r) S + s]``."""
    rng = np.random.default_rng(1)
    d_out, C, H, S = 2, 3, 4, 5
    w = rng.normal(size=(d_out, C * S))
    v = rng.normal(size=(d_out, C * H * S))
    m, vm = fl.flat_as_matrix(w, C), fl.flat_as_matrix(v, C * H)
    assert m.shape == (d_out * S, C) and vm.shape == (d_out * S, C * H)
    for o in range(d_out):
        for s in range(S):
            for j in range(C):
                assert m[o * S + s, j] == w[o, j * S + s]
                for r in range(H):
                    assert vm[o * S + s, j * H + r] == v[o, (j * H + r) * S + s]
    assert np.array_equal(fl.matrix_as_flat(m, d_out), w)
    assert np.array_equal(fl.matrix_as_flat(vm, d_out), v)
    with pytest.raises(InputError, match="multiple of 4"):
        fl.flat_as_matrix(np.zeros((2, 6)), 4)


def test_random_sizes_count_the_pair_and_the_dense_block():
    conv1, lin = fl.random_pair(64, 196, 256, 60, "relu")
    sizes = fl.random_sizes(64, 196, 256, 60)
    assert sizes["conv1x1"] == conv1.in_channels * conv1.out_channels == 60 * 64 ** 2
    assert sizes["linear"] == lin.in_features * lin.out_features == 256 * 60 * 64 * 196
    assert sizes["dense_first"] == 60 * (64 * 196) ** 2  # Linear(C S -> H C S)
    assert sizes["dense_total"] - sizes["total"] == sizes["dense_first"] - sizes["conv1x1"]
    with pytest.raises(InputError, match="block_size"):
        fl.random_pair(2, 3, 4, 0, "relu")


def test_job_refuses_shapes_that_are_not_a_flatten_pair():
    with pytest.raises(InputError, match="Flatten -> Linear pair"):
        engine.flatten_linear_job(("a", "b"), ((8, 2, 1, 1), (3, 8 * 5)), np.zeros((3, 2 * 4)), 2,
                                  negative_side=False)


def test_coefficients_refuse_a_channel_reading_two_inputs():
    first = np.ones((4, 2, 1, 1), dtype=np.float32)
    mask1 = np.zeros((4, 2, 1, 1), dtype=bool)
    mask1[0, :, 0, 0] = True  # channel 0 keeps both input weights: not univariate
    with pytest.raises(InputError, match="more than one input weight"):
        fl.pair_coefficients(first, mask1, np.ones((3, 4 * 5), dtype=np.float32), np.ones((3, 20), dtype=bool))
