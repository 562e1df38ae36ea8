"""§9 D network-level inequalities as property tests on random targets (no construction needed):
Pensia's block with per-weight errors ε′ propagates as e_i ≤ η_i(1 + e_{i−1}) + e_{i−1} (D17, ℓ2 and
ℓ∞ versions, D18), and the convolution bound ‖K * X‖_∞ ≤ ‖K‖₁‖X‖_∞ that the CNN version uses (A6)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, strategies as st

from proofs_check.dacunha_cnn import conv2d_int

TOL = 1e-12


@st.composite
def random_targets(draw, norm: str = "spectral"):
    """A random bias-free ReLU target (depth 1–4, widths 1–8) with ‖W_i‖₂ ≤ 1 or row ℓ1-norms ≤ 1,
    per-weight errors for the σ(x) and σ(−x) halves of each block, within ε′ of the budget, and inputs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    L = draw(st.integers(1, 4))
    dims = draw(st.lists(st.integers(1, 8), min_size=L + 1, max_size=L + 1))
    eps = draw(st.floats(0.01, 1.0))
    Ws = []
    for i in range(L):
        W = rng.standard_normal((dims[i + 1], dims[i]))
        if norm == "spectral":
            W /= np.linalg.norm(W, 2) * (1 + 1e-12)
        else:
            W /= np.maximum(np.abs(W).sum(axis=1, keepdims=True), 1.0) * (1 + 1e-12)
        Ws.append(W)
    if norm == "spectral":
        eps_w = eps / (2 * L * max(math.sqrt(dims[i] * dims[i + 1]) for i in range(L)))
        x = rng.standard_normal((200, dims[0]))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    else:
        eps_w = eps / (2 * L * max(dims))
        x = rng.choice([-1.0, 1.0], size=(200, dims[0]))
    errs = [(eps_w * rng.choice([-1.0, 1.0], W.shape), eps_w * rng.uniform(-1, 1, W.shape)) for W in Ws]
    return Ws, errs, x, eps, eps_w, dims


def _run(Ws, errs, x):
    """Target activations and the ticket's (Pensia's ± block per layer), both bias-free, ReLU between layers."""
    xs, xh = [], []
    t, h = x, x
    for i, (W, (Ep, Em)) in enumerate(zip(Ws, errs)):
        t = t @ W.T
        h = np.maximum(h, 0) @ (W + Ep).T - np.maximum(-h, 0) @ (W + Em).T
        if i < len(Ws) - 1:
            t, h = np.maximum(t, 0), np.maximum(h, 0)
        xs.append(t)
        xh.append(h)
    return xs, xh


@given(random_targets("spectral"))
def test_spectral_error_obeys_the_recurrence_and_the_budget(net):
    Ws, errs, x, eps, eps_w, dims = net
    xs, xh = _run(Ws, errs, x)
    e_prev = np.zeros(len(x))
    for i in range(len(Ws)):
        eta = eps_w * math.sqrt(dims[i] * dims[i + 1])
        e = np.linalg.norm(xh[i] - xs[i], axis=1)
        assert np.all(e <= eta * (1 + e_prev) + e_prev + TOL)
        e_prev = e
    assert e_prev.max() <= eps + TOL


@given(random_targets("linf"))
def test_linf_error_obeys_the_entrywise_bound(net):
    Ws, errs, x, eps, eps_w, dims = net
    xs, xh = _run(Ws, errs, x)
    e_L = np.abs(xh[-1] - xs[-1]).max()
    assert e_L <= (1 + max(dims) * eps_w) ** len(Ws) - 1 + TOL
    assert e_L <= eps + TOL


@given(u=st.lists(st.floats(-1, 1).filter(lambda t: t != 0), min_size=1, max_size=12),
       seed=st.integers(0, 2**32 - 1), w=st.floats(-1, 1))
def test_pruned_block_error_is_at_most_the_worse_half_times_x(u, seed, w):
    """A2: |block(x) − w x| ≤ max(|A − w|, |B − w|)·|x| for any masks and inputs."""
    rng = np.random.default_rng(seed)
    u = np.array(u)
    v = rng.uniform(-1, 1, len(u))
    keep = rng.random(len(u)) < 0.6
    A, B = (v * u)[keep & (u > 0)].sum(), (v * u)[keep & (u < 0)].sum()
    x = rng.uniform(-3, 3, 50)
    block = (v[keep][:, None] * np.maximum(u[keep][:, None] * x[None, :], 0)).sum(axis=0)
    assert np.all(np.abs(block - w * x) <= max(abs(A - w), abs(B - w)) * np.abs(x) + 1e-9)


@given(k=st.sampled_from([1, 2, 3, 5]), c_in=st.integers(1, 3), c_out=st.integers(1, 3), stride=st.integers(1, 3),
       padding=st.integers(0, 2), size=st.integers(5, 9), seed=st.integers(0, 2**32 - 1))
def test_convolution_is_bounded_by_kernel_l1_times_input_max(k, c_in, c_out, stride, padding, size, seed):
    rng = np.random.default_rng(seed)
    K = rng.integers(-20, 21, (c_out, c_in, k, k))
    X = rng.integers(-20, 21, (c_in, size, size))
    out = conv2d_int(X, K, stride, padding)
    l1 = np.abs(K).reshape(c_out, -1).sum(axis=1)
    assert np.all(np.abs(out) <= l1[:, None, None] * np.abs(X).max())
