"""The l1/l_inf convolution bound: |K * X|_inf <= G(K) |X|_inf for any stride and zero padding, and tight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from strongticket.errors import InputError
from strongticket.construct.conv_bound import conv_output_bound, linf_gain, linf_network_bound


@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 5), stride=st.integers(1, 3), padding=st.integers(0, 4),
       size=st.integers(1, 10))
def test_conv_output_is_within_the_l1_linf_bound(seed, k, stride, padding, size):
    if size + 2 * padding < k:
        return
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(3, 2, k, k))
    x = rng.uniform(-1, 1, (4, 2, size, size)) * rng.uniform(0.1, 3)
    x[0] = np.sign(x[0]) * np.abs(x).max()  # an extreme input among the samples
    out = F.conv2d(torch.from_numpy(x), torch.from_numpy(kernel), stride=stride, padding=padding)
    assert float(out.abs().max()) <= conv_output_bound(kernel, float(np.abs(x).max()))
    assert float(out.abs().max()) <= np.abs(kernel).sum() * np.abs(x).max() * (1 + 1e-12)  # the paper's |K|_1


def test_gain_is_attained_by_the_sign_pattern_of_the_worst_filter():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(4, 3, 3, 3))
    t = int(np.abs(kernel).reshape(4, -1).sum(1).argmax())
    x = torch.from_numpy(np.sign(kernel[t])[None])  # |x|_inf = 1, one output position
    out = F.conv2d(x, torch.from_numpy(kernel))
    assert float(out.abs().max()) == pytest.approx(linf_gain(kernel), rel=1e-11)  # the gain is inflated by 1e-12


def test_linear_gain_is_the_largest_row_l1_norm():
    w = np.array([[1.0, -2.0], [0.5, 0.5]])
    assert linf_gain(w) == pytest.approx(3.0)


def test_network_bound_recurrence():
    k1, k2 = np.full((1, 1, 2, 2), 0.25), np.array([[2.0]])
    e1, e2 = np.full((1, 1, 2, 2), 0.01), np.array([[0.1]])
    b = linf_network_bound([k1, k2], [e1, e2], radius=2.0)
    # e1 = 0.04 * 2; B1 = 2; e2 = 2 * e1 + 0.1 * (2 + e1)
    assert b.layers[0]["error"] == pytest.approx(0.08)
    assert b.bound == pytest.approx(2 * 0.08 + 0.1 * 2.08)


def test_network_bound_refuses_mismatched_or_negative_errors():
    with pytest.raises(InputError, match="same length"):
        linf_network_bound([np.ones((1, 1))], [], 1.0)
    with pytest.raises(InputError, match=">= 0"):
        linf_network_bound([np.ones((1, 1))], [-np.ones((1, 1))], 1.0)
    with pytest.raises(InputError, match="radius"):
        linf_network_bound([np.ones((1, 1))], [np.ones((1, 1))], float("nan"))
