"""The top of a network's Hessian spectrum from Hessian-vector products: Lanczos and a spectral-gap rank.

Pure functions, no run state. :func:`hessian_vector_product` builds the product ``v -> H v`` of the
training loss of a network (reverse-over-reverse with ``torch.func``, so the Hessian is never formed);
:func:`lanczos` runs the symmetric Lanczos iteration on such a product with full reorthogonalisation (every
new Krylov vector is orthogonalised, twice, against all earlier ones, the remedy for the loss of orthogonality
that makes plain Lanczos report ghost copies of converged eigenvalues; Golub & Van Loan, "Matrix
Computations", 4th ed., §10.3); :func:`gap_rank` picks the size of a dominant eigenspace at the largest
spectral gap. The inertial-manifold reconstruction (:mod:`strongticket.train.methods.inertial`) uses all three.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp

from strongticket.errors import InputError

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LanczosResult:
    """Ritz pairs of a symmetric operator, largest eigenvalue first.

    Attributes
    ----------
    eigenvalues : torch.Tensor
        ``(m,)`` float64 Ritz values, in decreasing order (``m`` <= the iterations asked for: fewer when the
        Krylov space became invariant, i.e. exhausted the operator's range seen from the start vector).
    eigenvectors : torch.Tensor
        ``(dim, m)`` float64 Ritz vectors of unit norm, column ``j`` paired with ``eigenvalues[j]``.
    residuals : torch.Tensor
        ``(m,)`` float64 Lanczos residual bounds ``|beta_m s_{m,j}|`` = ``||A y_j - theta_j y_j||`` in exact
        arithmetic: how converged each pair is.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor


def lanczos(matvec: MatVec, dim: int, iters: int, generator: torch.Generator, *,
            device: str | torch.device = "cpu") -> LanczosResult:
    """Extreme eigenpairs of the symmetric operator ``matvec`` by ``iters`` Lanczos steps.

    Parameters
    ----------
    matvec : callable
        ``v (dim,) float64 -> A v (dim,)``; ``A`` must be symmetric (a Hessian). Its result may have any
        floating dtype: it is cast to float64.
    dim : int
        Dimension of the operator, >= 1.
    iters : int
        Lanczos steps (size of the Krylov space), >= 1; capped at ``dim``.
    generator : torch.Generator
        CPU generator of the Gaussian start vector (the only random draw).
    device : str or torch.device
        Where the Krylov basis ``(iters, dim)`` float64 lives.

    Returns
    -------
    LanczosResult
        The Ritz pairs, largest eigenvalue first. The largest (and smallest) few converge first; with
        ``iters == dim`` (and no breakdown) they are all of ``A``'s eigenpairs up to rounding.

    Raises
    ------
    InputError
        ``dim`` or ``iters`` below 1.
    """
    if dim < 1:
        raise InputError(f"lanczos dim must be >= 1, got {dim}")
    if iters < 1:
        raise InputError(f"lanczos iters must be >= 1, got {iters}")
    m = min(iters, dim)
    q = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    q /= q.norm()
    basis = torch.zeros(m, dim, dtype=torch.float64, device=device)
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(m):
        basis[j] = q
        w = matvec(q).to(device=device, dtype=torch.float64).reshape(-1)
        alpha = float(q @ w)
        alphas.append(alpha)
        # full reorthogonalisation against every basis vector so far (classical Gram-Schmidt, twice: "twice is
        # enough", Giraud et al. 2005), which also removes the alpha q_j and beta q_{j-1} components
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        # an invariant Krylov space: the pairs found so far are exact; a new vector would be noise
        scale = max(abs(a) for a in alphas) + (betas[-1] if betas else 0.0)
        if j == m - 1 or beta <= 1e-12 * max(scale, 1e-300):
            betas.append(beta)
            break
        betas.append(beta)
        q = w / beta
    k = len(alphas)
    t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if k > 1:
        off = torch.tensor(betas[: k - 1], dtype=torch.float64)
        t += torch.diag(off, 1) + torch.diag(off, -1)
    theta, s = torch.linalg.eigh(t)
    order = torch.argsort(theta, descending=True)
    theta, s = theta[order], s[:, order]
    vectors = basis[:k].T @ s.to(device)
    residuals = (betas[k - 1] * s[k - 1]).abs()
    return LanczosResult(theta, vectors, residuals)


GAP_FLOOR = 0.05  # the shift of gap_rank's ratios, as a fraction of the top eigenvalue


def gap_rank(eigenvalues: Sequence[float] | torch.Tensor, max_rank: int, floor: float = GAP_FLOOR) -> int:
    """Size ``k`` of the dominant eigenspace: the position of the largest relative gap at the top of a spectrum.

    With ``l_1 >= l_2 >= ...`` the eigenvalues and ``c = floor * l_1``, ``k`` (1 <= k <= ``max_rank``)
    maximises the shifted log-ratio ``log((l_k + c) / (l_{k+1} + c))``; the first non-positive eigenvalue is an
    infinite gap (the curvature changes sign there), so ``k`` is at most the number of positive ones. Ties go
    to the smallest ``k``.

    Why relative: a network Hessian's top eigenvalue usually stands far above the next few outliers, so the
    absolute gap ``l_k - l_{k+1}`` would nearly always pick ``k = 1`` and never the boundary between the
    outliers and the bulk (about one outlier per class, Sagun et al. 2017; Papyan 2019), which is the boundary
    a dominant subspace is meant to find. Why shifted: without ``c`` the ratio blows up where the bulk
    approaches zero, which is also where Lanczos' Ritz values have not converged, so the tail would win (on
    LeNet-300-100 / MNIST the unshifted ratio picked the 20th of 30 Ritz values, residual 0.1, over the
    boundary after the 9th, residual 1e-13). With ``c`` the criterion is relative well above ``c`` and absolute
    (in units of ``c``) below it. The default fraction 0.05 was set after that observation.

    Parameters
    ----------
    eigenvalues : sequence of float, or tensor
        The top of the spectrum (any order; sorted here).
    max_rank : int
        Largest ``k`` considered, >= 1. The gap after the ``max_rank``-th eigenvalue counts when the
        ``max_rank + 1``-th is given.
    floor : float
        The shift ``c`` as a fraction of the top eigenvalue, >= 0 (0: the plain log-ratio).

    Returns
    -------
    int
        ``k``; 1 when only one eigenvalue is given or the top one is not positive.

    Raises
    ------
    InputError
        No eigenvalues, a non-finite one, ``max_rank`` below 1 or a negative ``floor``.
    """
    if max_rank < 1:
        raise InputError(f"max_rank must be >= 1, got {max_rank}")
    if not floor >= 0:
        raise InputError(f"floor must be >= 0, got {floor}")
    lam = sorted((float(x) for x in (eigenvalues.tolist() if torch.is_tensor(eigenvalues) else eigenvalues)),
                 reverse=True)
    if not lam:
        raise InputError("gap_rank needs at least one eigenvalue, got none")
    if not all(math.isfinite(x) for x in lam):
        raise InputError(f"eigenvalues must be finite, got {lam[:5]}...")
    if lam[0] <= 0:
        return 1
    c = floor * lam[0]
    best_k, best_gap = 1, -math.inf
    for k in range(1, min(max_rank, len(lam) - 1) + 1):
        hi, lo = lam[k - 1], lam[k]
        gap = math.inf if lo <= 0 else math.log((hi + c) / (lo + c))
        if gap > best_gap:
            best_k, best_gap = k, gap
        if lo <= 0:
            break
    return best_k


def hessian_vector_product(net: nn.Module, names: Sequence[str],
                           batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[MatVec, int]:
    """``v -> H v`` for the Hessian of the mean cross-entropy of ``net`` over ``batches``, in the tensors ``names``.

    The loss is the average over the batches of each batch's mean cross-entropy, at ``net``'s current
    parameter values; the tensors not in ``names`` (and the buffers) are held fixed. The network is evaluated
    in eval mode, so BatchNorm uses its running statistics and no buffer is updated (the product is a pure
    function of the weights). The second-order graph of each batch (``torch.func.vjp`` of ``torch.func.grad``)
    is built once, at the current weights, and kept by the returned closure (memory: about two forward-backward
    graphs per batch); each product then costs one backward pass per batch. Changing the weights afterwards does
    not change the product.

    Parameters
    ----------
    net : nn.Module
        Network mapping ``(B, C, H, W)`` images to ``(B, classes)`` logits.
    names : sequence of str
        Parameter names (``named_parameters`` keys) spanning the Hessian, in the order of the flat vector.
    batches : sequence of (x, y)
        Images ``(B, C, H, W)`` and labels ``(B,)`` on ``net``'s device.

    Returns
    -------
    (callable, int)
        The product on flat vectors ``(dim,)`` (any float dtype in; the parameters' dtype out) and ``dim``.

    Raises
    ------
    InputError
        No batches, or a name that is not a parameter of ``net``.
    """
    if not batches:
        raise InputError("hessian_vector_product needs at least one batch, got none")
    params = dict(net.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise InputError(f"{missing[0]!r} is not a parameter of the network; valid: {', '.join(params)}")
    spanned = set(names)
    # copies: the closure must not see (or be broken by) later in-place updates of the network
    fixed = {k: v.detach().clone() for k, v in params.items() if k not in spanned}
    fixed |= {k: b.detach().clone() for k, b in net.named_buffers()}
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    dtype = params[names[0]].dtype
    point = torch.cat([params[n].detach().reshape(-1) for n in names])

    def unflatten(flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}

    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(net, fixed | unflatten(flat), (x,), strict=False)
        return F.cross_entropy(out.to(torch.promote_types(out.dtype, torch.float32)), y)

    # reverse-over-reverse: one vjp of the gradient per batch, built once at this point and applied to every v
    # (the graphs stay in memory; about twice as fast here as a forward-over-reverse jvp per product)
    was_training = net.training
    net.eval()
    try:
        pullbacks = [vjp(lambda p, x=x, y=y: grad(loss)(p, x, y), point)[1] for x, y in batches]
    finally:
        net.train(was_training)

    def product(v: torch.Tensor) -> torch.Tensor:
        v = v.to(device=point.device, dtype=dtype)
        total = torch.zeros_like(point)
        for pull in pullbacks:
            total += pull(v)[0]
        return total / len(pullbacks)

    return product, int(point.numel())
