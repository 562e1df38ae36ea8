"""The Conv2d layer kind: a pruned random 1x1 + kxk pair computes the selected subset sums, borders included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from strongticket.construct import conv
from strongticket.construct.pensia import subset_sum_chooser
from strongticket.errors import InputError


def _random_pair(rng: np.random.Generator, c_in: int, c_out: int, k: int, H: int):
    """A random 1x1 weight ``(H c_in, c_in, 1, 1)``, its diagonal ``(c_in, H)`` and a kxk weight, float32."""
    first = rng.uniform(-1, 1, (c_in * H, c_in, 1, 1)).astype(np.float32)
    u = first.reshape(c_in * H, c_in)[np.arange(c_in * H), np.repeat(np.arange(c_in), H)].reshape(c_in, H)
    second = rng.uniform(-1, 1, (c_out, c_in * H, k, k)).astype(np.float32)
    return first, u, second


def _selected_sums(first, mask1, second, mask2, H):
    """Per kernel entry, the sums of the kept products on each side, written out independently of the code."""
    m, c_in = first.shape[:2]
    c_out, _, k, _ = second.shape
    owner = np.arange(m) // H
    u = first.reshape(m, c_in)[np.arange(m), owner].astype(np.float64)
    kept1 = mask1.reshape(m, c_in)[np.arange(m), owner]
    prod = second.astype(np.float64) * mask2 * (kept1 * np.abs(u))[None, :, None, None]  # (c_out, m, k, k)
    prod = prod.reshape(c_out, c_in, H, k, k)
    sign = np.sign(u).reshape(c_in, H)[None, :, :, None, None]
    return (prod * (sign > 0)).sum(axis=2), (prod * (sign < 0)).sum(axis=2)


def _pair_output(x, first, mask1, second, mask2, stride, padding):
    """The pruned pair as the random network computes it (float64)."""
    w1 = torch.from_numpy(first).double() * torch.as_tensor(mask1)
    w2 = torch.from_numpy(second).double() * torch.as_tensor(mask2)
    return F.conv2d(F.relu(F.conv2d(x, w1)), w2, stride=stride, padding=padding)


@given(seed=st.integers(0, 2**32 - 1), c_in=st.integers(1, 3), c_out=st.integers(1, 3), k=st.integers(1, 4),
       stride=st.integers(1, 3), padding=st.integers(0, 3), signed=st.booleans())
def test_pruned_pair_equals_conv_with_selected_subset_sums(seed, c_in, c_out, k, stride, padding, signed):
    rng = np.random.default_rng(seed)
    H, n = 16, 6
    first, u, second = _random_pair(rng, c_in, c_out, k, H)
    kernel = rng.uniform(-0.8, 0.8, (c_out, c_in, k, k))
    if np.any((u > 0).sum(1) < n) or signed and np.any((u < 0).sum(1) < n):
        return  # a block short of a sign: the construction's own check (short_inputs) covers that case
    res = conv.assemble_pair(kernel, u, second, subset_sum_chooser("exact", "min_error", 0.05, None), samples=n,
                             negative_side=signed, eps=0.05)
    mask1, mask2 = res.mask1.numpy(), res.mask2.numpy()
    # every kept first-layer weight is the one of its channel's own input (univariate channels)
    rows, cols = np.nonzero(mask1.reshape(c_in * H, c_in))
    assert np.array_equal(cols, rows // H)
    s_pos, s_neg = _selected_sums(first, mask1, second, mask2, H)
    # the reported per-entry errors are those of the kept products, entry by entry (no tap transposed)
    np.testing.assert_allclose(np.abs(s_pos - kernel), res.errors_pos, rtol=0, atol=1e-12)
    if signed:
        np.testing.assert_allclose(np.abs(s_neg + kernel), res.errors_neg, rtol=0, atol=1e-12)
    size = int(rng.integers(max(1, k - 2 * padding), 9))
    x = torch.from_numpy(rng.uniform(-1 if signed else 0, 1, (2, c_in, size, size + 1)))
    got = _pair_output(x, first, mask1, second, mask2, stride, padding)
    want = F.conv2d(F.relu(x), torch.from_numpy(s_pos), stride=stride, padding=padding) \
        + F.conv2d(F.relu(-x), torch.from_numpy(s_neg), stride=stride, padding=padding)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12)
    # the library's own reading of the masks agrees
    a_pos, a_neg = conv.pair_coefficients(first, mask1, second, mask2)
    np.testing.assert_allclose(a_pos, s_pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a_neg, s_neg, rtol=0, atol=1e-12)


def test_instances_are_products_of_the_two_random_layers():
    rng = np.random.default_rng(3)
    c_in, c_out, k, H, n = 2, 3, 3, 24, 4
    first, u, second = _random_pair(rng, c_in, c_out, k, H)
    kernel = rng.uniform(-1, 1, (c_out, c_in, k, k))
    for sign in (0, 1):
        targets, cand, channels = conv.conv_instances(kernel, u, second, n, sign)
        for j in range(c_in):
            rs = [r for r in range(H) if (u[j, r] > 0 if sign == 0 else u[j, r] < 0)][:n]
            assert list(channels[j]) == rs
            for t in range(c_out):
                for p in range(k):
                    for q in range(k):
                        want = [float(u[j, r]) * float(second[t, j * H + r, p, q]) for r in rs]
                        assert list(cand[t, j, p, q]) == want  # exact: products of two float32 in float64
        assert np.array_equal(targets, kernel)


def test_matrix_views_round_trip():
    rng = np.random.default_rng(0)
    k4 = rng.normal(size=(3, 5, 4, 4))
    m = conv.kernel_as_matrix(k4)
    assert m.shape == (3 * 16, 5)
    assert m[1 * 16 + 2 * 4 + 3, 4] == k4[1, 4, 2, 3]
    assert np.array_equal(conv.matrix_as_kernel(m, 4), k4)


@given(k=st.integers(1, 6), stride=st.integers(1, 4), padding=st.integers(0, 6), size=st.integers(1, 12))
def test_bias_tap_reads_inside_the_image_at_every_output_position(k, stride, padding, size):
    out = (size + 2 * padding - k) // stride + 1
    if out < 1:
        return
    inside = [a for a in range(k) if all(0 <= y * stride - padding + a <= size - 1 for y in range(out))]
    try:
        a = conv.bias_tap(k, stride, padding, (size, size))
    except InputError:
        assert not inside  # refused only when no tap would do
        return
    assert a in inside
    if 2 * padding <= k - 1:
        assert a == padding


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5), stride=st.integers(1, 3), size=st.integers(5, 10),
       constant_out=st.booleans())
def test_augmented_kernel_is_the_biased_conv_at_the_borders(seed, k, stride, size, constant_out):
    rng = np.random.default_rng(seed)
    padding = (k - 1) // 2
    kernel, bias = rng.normal(size=(3, 2, k, k)), rng.normal(size=3)
    tap = conv.bias_tap(k, stride, padding, (size, size))
    aug = conv.augment_kernel(kernel, bias, constant_in=True, constant_out=constant_out, tap=tap)
    x = torch.from_numpy(rng.uniform(-1, 1, (2, 2, size, size)))
    xc = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    got = F.conv2d(xc, torch.from_numpy(aug), stride=stride, padding=padding)
    want = F.conv2d(x, torch.from_numpy(kernel), torch.from_numpy(bias), stride=stride, padding=padding)
    np.testing.assert_allclose(got[:, :3].numpy(), want.numpy(), rtol=0, atol=1e-12)
    if constant_out:
        assert torch.equal(got[:, 3], torch.ones_like(got[:, 3]))


def test_pruned_pair_with_constant_channel_is_exact_at_the_borders():
    """Bias and padding: the pair's output is the conv with the selected kernel *and* bias at every position."""
    rng = np.random.default_rng(7)
    c_in, c_out, k, stride, padding, H, n = 2, 3, 3, 1, 1, 40, 10
    kernel, bias = rng.uniform(-0.5, 0.5, (c_out, c_in, k, k)), rng.uniform(-0.5, 0.5, c_out)
    tap = conv.bias_tap(k, stride, padding, (6, 6))
    aug = conv.augment_kernel(kernel, bias, constant_in=True, constant_out=False, tap=tap)
    first, u, second = _random_pair(rng, c_in + 1, c_out, k, H)
    res = conv.assemble_pair(aug, u, second, subset_sum_chooser("exact", "min_error", 1e-3, None), samples=n,
                             negative_side=False, eps=1e-3)
    a_pos, _ = conv.pair_coefficients(first, res.mask1.numpy(), second, res.mask2.numpy())
    assert np.abs(a_pos - aug).max() <= 1e-3
    x = torch.from_numpy(rng.uniform(0, 1, (2, c_in, 6, 6)))
    xc = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    got = _pair_output(xc, first, res.mask1.numpy(), second, res.mask2.numpy(), stride, padding)
    want = F.conv2d(x, torch.from_numpy(a_pos[:, :c_in]), torch.from_numpy(a_pos[:, c_in, tap, tap]),
                    stride=stride, padding=padding)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-12)
    target = F.conv2d(x, torch.from_numpy(kernel), torch.from_numpy(bias), stride=stride, padding=padding)
    border = torch.ones_like(target, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    # within the per-entry budget at the borders as well as inside (fan-in c_in k^2 + 1 entries, |x| <= 1)
    assert float((got - target).abs()[border].max()) <= 1e-3 * (c_in * k * k + 1)


def test_random_pair_shapes():
    from strongticket.nets.spec import Conv2d

    first, second = conv.random_pair(Conv2d(3, 5, 3, stride=2, padding=1, activation="relu"), 4, 6, 7)
    assert (first.in_channels, first.out_channels, first.kernel_size, first.activation) == (4, 28, 1, "relu")
    assert (second.in_channels, second.out_channels, second.kernel_size, second.stride, second.padding,
            second.activation, second.bias) == (28, 6, 3, 2, 1, "relu", False)
    with pytest.raises(InputError, match="block_size"):
        conv.random_pair(Conv2d(3, 5, 3), 3, 5, 0)
