"""The Flatten -> Linear layer kind of the 2L constructions: a random 1x1 conv before the Flatten, a Linear after.

A target ``Linear(C S -> d_out)`` that reads a flattened image ``X`` (``C`` channels, ``S = H_s W_s``
positions, flatten order ``j S + s``) computes ``y_o = sum_{j, s} W[o, j S + s] X[j, s]``. Realising it as a
fully connected 2L block (Pensia et al. 2020) needs a random first layer ``Linear(C S -> H C S)``, a dense
matrix of ``H (C S)^2`` weights: about 9 G for Conv-2 on 28x28 images (``C S = 12544``, ``H = 60``), out of
reach. The natural CNN realisation (da Cunha, Natale, Viennot, ICLR 2022, whose 2L pair for a kxk convolution
this is, with a kernel as large as the image) puts the univariate layer *before* the Flatten:

* random ``Conv2d(C, H C, 1)`` + ReLU, weight ``U``: intermediate channel ``(j, r)`` (index ``j H + r``) keeps
  at most ``U[j H + r, j] = u[j, r]``, so it reads channel ``j`` only, with the same ``u[j, r]`` at every
  position;
* Flatten (order ``(j H + r) S + s``), then random ``Linear(H C S -> d_out)`` + the target's activation, weight
  ``V``, every entry pruned on its own.

**Exactness.** ReLU is positively homogeneous: ``relu(u x) = u relu(x)`` for ``u > 0`` and
``relu(u x) = |u| relu(-x)`` for ``u < 0``. So the pruned pair computes, exactly,

    y_o = sum_{j, s} A+[o, j, s] relu(X[j, s]) + A-[o, j, s] relu(-X[j, s]),
    A+[o, j, s] = sum_{r in S+} u[j, r] V[o, (j H + r) S + s]     (kept channels with u > 0),
    A-[o, j, s] = sum_{r in S-} |u[j, r]| V[o, (j H + r) S + s]   (kept channels with u < 0).

Since ``X = relu(X) - relu(-X)``, the pair equals the target when ``A+ = W`` and ``A- = -W``: every target
weight ``W[o, j S + s]`` is one subset-sum instance over the products ``{u[j, r] V[o, (j H + r) S + s] : r}``
of the channels with ``u > 0`` and one over those with ``u < 0`` (``sum_{S-} u V = -sum_{S-} |u| V ~ W``), the
+- split of Pensia et al. 2020. When the input is known to be >= 0 (a ReLU or a max pool of a ReLU map before
the Flatten, or non-negative data), ``relu(-X) = 0`` and the ``u > 0`` side alone is exact. Each instance has
``n`` independent products (its own ``V`` entries), as in the fully connected block where ``u[j, r]`` is
shared by the outputs; here it is also shared by the positions, which changes no single instance's law.

These are the instances of the fully connected block with rows ``(o, s)`` and inputs ``j``: reading ``W`` as
``M[o S + s, j]`` (:func:`flat_as_matrix`) and ``V`` as ``M[o S + s, j H + r]`` (the same function),
instance ``(o S + s, j)`` of :func:`strongticket.construct.blocks.assemble_block` is target weight
``W[o, j S + s]`` with the candidates above; :func:`matrix_as_flat` maps masks and errors back.

**Biases** ride on a constant channel (ones at every position, the last of the ``C`` channels), as for the
convolutions before it: the bias ``b_o`` is the target weight on position 0 of that channel (no padding
here, so every position of the channel is 1 and any would do); a non-final layer gets one more output, the
constant 1 for the layers after.

**Size.** Per such layer the random network has ``H C^2`` 1x1 weights (``H C`` of them usable, one per
univariate channel) and ``d_out H C S`` Linear weights, against ``H (C S)^2 + d_out H C S`` for the dense
block: the first layer shrinks by ``S^2``, the second is the same (:func:`random_sizes`).
"""

from __future__ import annotations

import numpy as np
import torch

from strongticket.errors import InputError
from strongticket.nets.spec import Conv2d, Linear


def random_pair(channels: int, positions: int, out_features: int, block_size: int,
                activation: str) -> tuple[Conv2d, Linear]:
    """The random pair's layers: ``Conv2d(C, H C, 1)`` + ReLU (before the Flatten), ``Linear(H C S, d_out)``.

    Parameters
    ----------
    channels : int
        ``C``, channels of the image the Flatten reads (constant channel included).
    positions : int
        ``S = H_s W_s``.
    out_features : int
        ``d_out`` (constant output included).
    block_size : int
        ``H``, intermediate channels per input channel.
    activation : str
        The target layer's activation, applied after the Linear.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size (intermediate channels per input channel) must be >= 1, got {block_size!r}")
    m = int(block_size) * int(channels)
    return (Conv2d(int(channels), m, 1, bias=False, activation="relu"),
            Linear(m * int(positions), int(out_features), bias=False, activation=activation))


def random_sizes(channels: int, positions: int, out_features: int, block_size: int) -> dict[str, int]:
    """Random weights of the layer: this pair's and the dense fully connected block's (same ``H``).

    Returns
    -------
    dict
        ``conv1x1`` ``H C^2``, ``linear`` ``d_out H C S``, ``total`` their sum, ``dense_first``
        ``H (C S)^2`` and ``dense_total`` ``H (C S)^2 + d_out H C S`` (the Linear-after-Flatten realised as
        a fully connected block).
    """
    C, S, d, H = (int(a) for a in (channels, positions, out_features, block_size))
    first, second = H * C * C, d * H * C * S
    dense_first = H * (C * S) ** 2
    return {"conv1x1": first, "linear": second, "total": first + second, "dense_first": dense_first,
            "dense_total": dense_first + second}


def flat_as_matrix(weight: np.ndarray | torch.Tensor, channels: int) -> np.ndarray:
    """A Linear-after-Flatten weight ``W[o, c S + s]`` as ``M[o S + s, c]``, shape ``(d_out S, channels)``.

    ``channels`` is the number of flattened channels (``C`` for the target, ``H C`` for the random Linear);
    same dtype, a copy.
    """
    w = weight.numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    d_out, width = w.shape
    c = int(channels)
    if c < 1 or width % c:
        raise InputError(f"a Linear after Flatten of {c} channels has a multiple of {c} inputs, got {width}")
    s = width // c
    return np.ascontiguousarray(np.swapaxes(w.reshape(d_out, c, s), 1, 2).reshape(d_out * s, c))


def matrix_as_flat(matrix: np.ndarray, out_features: int) -> np.ndarray:
    """Inverse of :func:`flat_as_matrix`: ``(d_out S, c) -> (d_out, c S)``."""
    rows, c = matrix.shape
    d = int(out_features)
    if d < 1 or rows % d:
        raise InputError(f"a matrix view of a Linear with {d} outputs has a multiple of {d} rows, got {rows}")
    s = rows // d
    return np.ascontiguousarray(np.swapaxes(np.asarray(matrix).reshape(d, s, c), 1, 2).reshape(d, c * s))


def pair_coefficients(first: np.ndarray, mask1: np.ndarray, second: np.ndarray, mask2: np.ndarray,
                      chunk_rows: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(A+, A-)`` of a pruned pair, float64 ``(d_out, C S)`` in the target weight's layout.

    ``first``/``mask1``: the 1x1 weight ``(H C, C, 1, 1)``; ``second``/``mask2``: the Linear ``(d_out, H C S)``.
    The pruned pair computes exactly ``A+ relu(x) + A- relu(-x)`` on the flattened input ``x`` provided every kept
    intermediate channel reads one input channel; raises :class:`InputError` otherwise. ``chunk_rows`` outputs
    at a time, so a layer of hundreds of millions of weights is read in bounded memory (float64 copies of
    ``chunk_rows`` rows, not of the layer).
    """
    m, c = first.shape[:2]
    f2 = np.asarray(first).reshape(m, c)
    k1 = np.asarray(mask1, dtype=bool).reshape(m, c)
    per_row = k1.sum(axis=1)
    if np.any(per_row > 1):
        raise InputError(f"{int((per_row > 1).sum())} intermediate channels keep more than one input weight: "
                         "the pair is not univariate and has no (A+, A-) form")
    rows = np.nonzero(per_row == 1)[0]
    cols = k1[rows].argmax(axis=1)
    u = f2[rows, cols].astype(np.float64)
    # (m, C) maps: kept channel (j, r) -> |u| in column j, one per sign
    to_pos, to_neg = np.zeros((m, c)), np.zeros((m, c))
    to_pos[rows[u > 0], cols[u > 0]] = u[u > 0]
    to_neg[rows[u < 0], cols[u < 0]] = -u[u < 0]
    d_out, width = second.shape
    if width % m:
        raise InputError(f"the Linear after a 1x1 conv of {m} channels has a multiple of {m} inputs, got {width}")
    s = width // m
    a_pos, a_neg = np.zeros((d_out, c, s)), np.zeros((d_out, c, s))
    for lo in range(0, d_out, max(1, int(chunk_rows))):
        hi = min(d_out, lo + max(1, int(chunk_rows)))
        v = np.where(np.asarray(mask2[lo:hi], dtype=bool), second[lo:hi], 0).astype(np.float64)
        v = np.swapaxes(v.reshape(hi - lo, m, s), 1, 2)  # (rows, S, m)
        a_pos[lo:hi] = np.swapaxes(v @ to_pos, 1, 2)
        a_neg[lo:hi] = np.swapaxes(v @ to_neg, 1, 2)
    return a_pos.reshape(d_out, c * s), a_neg.reshape(d_out, c * s)


__all__ = ["flat_as_matrix", "matrix_as_flat", "pair_coefficients", "random_pair", "random_sizes"]
