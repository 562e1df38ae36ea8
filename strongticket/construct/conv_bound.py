"""The l1/l_inf certified bound for networks of convolutions and linear layers (pure functions on arrays).

For a convolution with kernel ``K`` (``c_out x c_in x k x k``), any stride and zero padding, every output
entry is ``sum_{j, p, q} K[t, j, p, q] X_j[...]`` over at most ``c_in k^2`` input entries (padding entries are
0), so ``|K * X|_inf <= G(K) |X|_inf`` with ``G(K) = max_t sum_{j, p, q} |K[t, j, p, q]|`` (the l_inf operator
norm of the layer; G(K) is at most the entrywise l1 norm |K|_1 of da Cunha, Natale, Viennot 2022, who
normalise |K|_1 <= 1). A linear layer is the case ``k = 1`` on a ``1 x 1`` image (``G`` is the largest row l1
norm). Max and average pooling (no padding), Flatten, ReLU and the identity are 1-Lipschitz in l_inf and
map 0 to 0, so they never enlarge a bound.

A 2L ticket layer computes ``A+ * relu(X) + A- * relu(-X)`` (see ``strongticket.construct.conv``) with
``E+ = A+ - K`` and ``E- = A- + K``; at every input entry only one of ``relu(X)``, ``relu(-X)`` is non-zero, so
its deviation from ``K * X`` is at most ``G(Ebar) |X|_inf`` with ``Ebar = max(|E+|, |E-|)`` entrywise
(``|E+|`` alone where the input is known to be >= 0). With ``B_i`` a bound on the target's activations and
``e_i`` on the ticket's deviation after layer ``i``:

    B_0 = R,    B_i = G(K_i) B_{i-1},    e_0 = 0,    e_i = G(K_i) e_{i-1} + G(Ebar_i) (B_{i-1} + e_{i-1}),

a bound on ``|f(x) - g(x)|_inf`` over ``|x|_inf <= R``. With ``G(K_i) <= 1`` and every per-weight error at
most eps' this is the ``e_L <= (1 + d eps')^L - 1`` of ``docs/constructions.md`` (``d`` the largest fan-in).
Biases are part of ``K`` through the constant channel (then ``R >= 1``, the constant's value). Exact
arithmetic; float evaluation adds its own rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from strongticket.errors import InputError


def linf_gain(kernel: np.ndarray) -> float:
    """``G(K) = max_t sum |K[t, ...]|``: the l_inf -> l_inf norm of a convolution (any stride, zero padding).

    ``kernel`` is ``(c_out, c_in, k, k)`` or a linear layer's ``(d_out, d_in)``; float64 sum, inflated by
    1e-12 relative to cover its rounding.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim not in (2, 4):
        raise InputError(f"a kernel has shape (c_out, c_in, k, k) or (d_out, d_in), got {k.shape}")
    if k.size == 0:
        return 0.0
    g = float(np.abs(k).reshape(k.shape[0], -1).sum(axis=1).max())
    return g * (1 + 1e-12) if math.isfinite(g) else g


def conv_output_bound(kernel: np.ndarray, x_inf: float) -> float:
    """``G(K) |X|_inf``: a bound on ``|K * X|_inf`` for every input with ``|X|_inf <= x_inf``."""
    if not (math.isfinite(x_inf) and x_inf >= 0):
        raise InputError(f"x_inf must be a finite number >= 0, got {x_inf!r}")
    return linf_gain(kernel) * x_inf


@dataclass(frozen=True)
class LinfBound:
    """The l_inf bound and its ingredients.

    Attributes
    ----------
    bound : float
        Upper bound on ``|f(x) - g(x)|_inf`` over ``|x|_inf <= radius``.
    radius : float
    layers : tuple of dict
        Per parametrised layer: ``gain`` G(K_i), ``error_gain`` G(Ebar_i), ``max_weight_error`` max Ebar_i,
        ``activation_bound`` B_i and ``error`` e_i.
    """

    bound: float
    radius: float
    layers: tuple[dict, ...]


def linf_network_bound(kernels: Sequence[np.ndarray], errors: Sequence[np.ndarray], radius: float) -> LinfBound:
    """The recurrence of the module docstring over the parametrised layers, in order.

    Parameters
    ----------
    kernels : sequence of arrays
        Target kernel (or matrix) of each layer, constant channel included where biases are carried by it.
    errors : sequence of arrays
        ``Ebar_i``, same shapes: the per-weight error that acts on that layer's inputs (>= 0).
    radius : float
        ``R``: a bound on ``|x|_inf`` of the (augmented) input.
    """
    if len(kernels) != len(errors):
        raise InputError(f"kernels and errors must have the same length, got {len(kernels)} and {len(errors)}")
    if not (math.isfinite(radius) and radius > 0):
        raise InputError(f"radius must be a finite number > 0, got {radius!r}")
    b, e = float(radius), 0.0
    rows = []
    for i, (k, err) in enumerate(zip(kernels, errors)):
        err = np.asarray(err, dtype=np.float64)
        if err.shape != np.shape(k):
            raise InputError(f"layer {i}: errors have shape {err.shape}, the kernel {np.shape(k)}")
        if np.any(err < 0):
            raise InputError(f"layer {i}: per-weight errors must be >= 0 (absolute values)")
        g, ge = linf_gain(k), linf_gain(err)
        e = g * e + ge * (b + e)
        b = g * b
        rows.append({"layer": i, "gain": g, "error_gain": ge, "max_weight_error": float(err.max(initial=0.0)),
                     "activation_bound": b, "error": e})
    return LinfBound(bound=e, radius=float(radius), layers=tuple(rows))


__all__ = ["LinfBound", "conv_output_bound", "linf_gain", "linf_network_bound"]
