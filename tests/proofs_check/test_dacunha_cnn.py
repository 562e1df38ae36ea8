"""The integer convolution of proofs_check.dacunha_cnn: torch's convolution, and ||K * X||_inf <= ||K||_1 ||X||_inf."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, strategies as st

from proofs_check.dacunha_cnn import conv2d_int

SHAPES = dict(k=st.sampled_from([1, 2, 3, 5]), c_in=st.integers(1, 3), c_out=st.integers(1, 3),
              stride=st.integers(1, 3), padding=st.integers(0, 2), size=st.integers(5, 9),
              seed=st.integers(0, 2**32 - 1))


@given(**SHAPES)
def test_integer_convolution_equals_torch_conv2d(k, c_in, c_out, stride, padding, size, seed):
    rng = np.random.default_rng(seed)
    K = rng.integers(-20, 21, (c_out, c_in, k, k))
    X = rng.integers(-20, 21, (c_in, size, size))
    ref = F.conv2d(torch.from_numpy(X)[None].double(), torch.from_numpy(K).double(), stride=stride, padding=padding)[0]
    assert np.array_equal(np.asarray(conv2d_int(X, K, stride, padding)), ref.numpy().astype(np.int64))


@given(**SHAPES)
def test_convolution_is_bounded_by_kernel_l1_times_input_max(k, c_in, c_out, stride, padding, size, seed):
    rng = np.random.default_rng(seed)
    K = rng.integers(-20, 21, (c_out, c_in, k, k))
    X = rng.integers(-20, 21, (c_in, size, size))
    out = conv2d_int(X, K, stride, padding)
    l1 = np.abs(K).reshape(c_out, -1).sum(axis=1)
    assert np.all(np.abs(out) <= l1[:, None, None] * np.abs(X).max())
