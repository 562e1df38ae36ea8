"""Lanczos on Hessian-vector products against the dense eigendecomposition of a tiny model's full Hessian,
and the spectral-gap rank on synthetic spectra."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from strongticket.errors import InputError
from strongticket.train.lanczos import gap_rank, hessian_vector_product, lanczos


def tiny_net_and_batches() -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A float64 tanh MLP 1x4x4 -> 12 -> 3 (243 parameters) and two batches of 16 random images."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.7)
    batches = [(torch.randn(16, 1, 4, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g))
               for _ in range(2)]
    return net, batches


def full_hessian(net: nn.Module, names: list[str], batches) -> torch.Tensor:
    """The dense Hessian of the mean per-batch loss, by ``torch.func.hessian`` (independent of the HVP code)."""
    params = dict(net.named_parameters())
    sizes = [params[n].numel() for n in names]
    point = torch.cat([params[n].detach().reshape(-1) for n in names])

    def loss(flat):
        parts = {n: t.view(params[n].shape) for n, t in zip(names, torch.split(flat, sizes))}
        return sum(nn.functional.cross_entropy(functional_call(net, parts, (x,)), y) for x, y in batches) / len(batches)

    return torch.func.hessian(loss)(point)


def test_hvp_equals_the_full_hessian_times_a_vector() -> None:
    net, batches = tiny_net_and_batches()
    names = [n for n, _ in net.named_parameters()]
    hvp, dim = hessian_vector_product(net, names, batches)
    h = full_hessian(net, names, batches)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert dim == 243
    torch.testing.assert_close(hvp(v), h @ v, rtol=1e-10, atol=1e-12)
    with torch.no_grad():  # training on afterwards neither changes nor breaks the product
        for p in net.parameters():
            p.mul_(2.0)
    torch.testing.assert_close(hvp(v), h @ v, rtol=1e-10, atol=1e-12)


def test_hvp_over_some_tensors_holds_the_others_fixed() -> None:
    net, batches = tiny_net_and_batches()
    names = ["1.weight", "3.bias"]
    hvp, dim = hessian_vector_product(net, names, batches)
    h = full_hessian(net, names, batches)
    v = torch.randn(dim, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert dim == 16 * 12 + 3
    with torch.no_grad():
        net[3].weight.mul_(-1.0)  # an in-place change of a tensor held fixed
    torch.testing.assert_close(hvp(v), h @ v, rtol=1e-10, atol=1e-12)


def test_lanczos_top_eigenvalues_match_eigh_of_the_full_hessian() -> None:
    """40 steps on a 243-dimensional Hessian: the 5 largest Ritz values agree with ``eigh`` to 1e-8 relative,
    and every Ritz pair's true residual ``||H y - theta y||`` is below its reported bound (plus rounding)."""
    net, batches = tiny_net_and_batches()
    names = [n for n, _ in net.named_parameters()]
    hvp, dim = hessian_vector_product(net, names, batches)
    h = full_hessian(net, names, batches)
    exact = torch.linalg.eigvalsh(h).flip(0)
    res = lanczos(hvp, dim, 40, torch.Generator().manual_seed(2))
    assert res.eigenvalues.shape == (40,) and res.eigenvectors.shape == (dim, 40)
    torch.testing.assert_close(res.eigenvalues[:5], exact[:5], rtol=1e-8, atol=1e-10)
    true_res = (h @ res.eigenvectors - res.eigenvectors * res.eigenvalues).norm(dim=0)
    assert bool((true_res <= res.residuals + 1e-8).all())
    # the basis stayed orthonormal (full reorthogonalisation): Ritz vectors are orthonormal too
    gram = res.eigenvectors.T @ res.eigenvectors
    torch.testing.assert_close(gram, torch.eye(40, dtype=torch.float64), atol=1e-10, rtol=0)


def test_lanczos_over_the_whole_space_recovers_the_whole_spectrum() -> None:
    a = torch.randn(30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = a + a.T
    res = lanczos(lambda v: a @ v, 30, 50, torch.Generator().manual_seed(4))
    torch.testing.assert_close(res.eigenvalues, torch.linalg.eigvalsh(a).flip(0), rtol=1e-9, atol=1e-9)


def test_lanczos_stops_at_an_invariant_krylov_space() -> None:
    """A rank-2 operator: the Krylov space of any start vector has dimension <= 3, so Lanczos stops early
    with the two nonzero eigenvalues exact (no ghost copies, no division by a zero beta)."""
    u = torch.zeros(20, dtype=torch.float64)
    u[0] = 1.0
    w = torch.zeros(20, dtype=torch.float64)
    w[1] = 1.0
    a = 5 * torch.outer(u, u) + 2 * torch.outer(w, w)
    res = lanczos(lambda v: a @ v, 20, 10, torch.Generator().manual_seed(5))
    assert len(res.eigenvalues) <= 3
    torch.testing.assert_close(res.eigenvalues[:2], torch.tensor([5.0, 2.0], dtype=torch.float64))
    assert all(math.isfinite(x) for x in res.eigenvectors.flatten().tolist())


@pytest.mark.parametrize("spectrum,max_rank,k", [
    ([100.0, 40, 30, 20, 12, 1.0, 0.9, 0.8, 0.7], 8, 5),  # 4 outliers below a dominant top: the outlier/bulk gap
    ([100.0, 40, 30, 20, 12, 1.0, 0.9, 0.8, 0.7], 3, 1),  # the boundary lies beyond max_rank: best gap within it
    ([5.0, 4.0, 3.0, -0.5, -1.0], 10, 3),  # curvature changes sign after the third: an infinite gap
    ([2.0], 5, 1),  # one eigenvalue
    ([-1.0, -2.0], 5, 1),  # nothing positive
    ([8.0, 4.0, 2.0, 1.0], 5, 1),  # equal plain ratios: the shift favours the top
    # 3 outliers, then a bulk decaying towards zero: the plain ratio picks the tail (k = 6, ratio 10), the
    # shifted one the outlier boundary
    ([9.0, 8.0, 6.0, 1.0, 0.9, 0.2, 0.02], 6, 3),
])
def test_gap_rank_finds_the_largest_relative_gap(spectrum: list[float], max_rank: int, k: int) -> None:
    assert gap_rank(spectrum, max_rank) == k
    assert gap_rank(torch.tensor(spectrum[::-1]), max_rank) == k  # order of the input does not matter


@given(st.integers(1, 6), st.integers(1, 6), st.floats(2.0, 50.0))
def test_gap_rank_is_the_planted_cluster_size(k: int, bulk: int, ratio: float) -> None:
    """k eigenvalues near ``ratio`` above a bulk near 1 (spread within a factor 1.1): the rank is k."""
    top = [ratio * 1.1 ** (-i / max(1, k)) for i in range(k)]
    low = [1.0 * 1.1 ** (-i / max(1, bulk)) for i in range(bulk)]
    if ratio / 1.1 <= 1.1:
        return
    assert gap_rank(top + low, max_rank=12) == k


def test_gap_rank_and_lanczos_refuse_bad_arguments() -> None:
    with pytest.raises(InputError, match="max_rank must be >= 1, got 0"):
        gap_rank([1.0], 0)
    assert gap_rank([9.0, 8.0, 6.0, 1.0, 0.9, 0.2, 0.02], 6, floor=0.0) == 6  # the unshifted log-ratio
    with pytest.raises(InputError, match="floor must be >= 0, got -0.1"):
        gap_rank([1.0], 3, floor=-0.1)
    with pytest.raises(InputError, match="at least one eigenvalue"):
        gap_rank([], 3)
    with pytest.raises(InputError, match="must be finite"):
        gap_rank([1.0, float("nan")], 3)
    with pytest.raises(InputError, match="iters must be >= 1, got 0"):
        lanczos(lambda v: v, 3, 0, torch.Generator())
    net, batches = tiny_net_and_batches()
    with pytest.raises(InputError, match="'nope' is not a parameter"):
        hessian_vector_product(net, ["nope"], batches)
