"""The Conv2d layer kind of the 2L constructions: one target convolution as a random 1x1 + kxk pair.

da Cunha, Natale, Viennot, "Proving the Lottery Ticket Hypothesis for Convolutional Neural Networks",
ICLR 2022 (construction in ``docs/constructions.md``, section "da Cunha, Natale, Viennot 2022").

Layout of the pair for a target kernel ``K`` (``c_out x c_in x k x k``, stride ``s``, zero padding ``p``)
with ``H`` intermediate channels per input channel (the *block size*, as for the fully connected block of
:mod:`strongticket.construct.blocks`):

* random ``Conv2d(c_in, H*c_in, 1)`` + ReLU, weight ``U`` (``H*c_in x c_in x 1 x 1``): intermediate channel
  ``h = j*H + r`` (``r < H``) belongs to input channel ``j``; its mask keeps at most ``U[h, j] = u[j, r]``
  (univariate channels);
* random ``Conv2d(H*c_in, c_out, k, stride=s, padding=p)`` + the target's activation, weight ``V``
  (``c_out x H*c_in x k x k``): every entry is pruned on its own (unstructured).

By positive homogeneity of ReLU (``relu(u X) = u relu(X)`` for ``u > 0``, ``|u| relu(-X)`` for ``u < 0``) and
because the kxk convolution pads ``relu(u X_j)`` with the zeros that ``relu(u * 0)`` would give, the pruned
pair computes, exactly, ``A+ * relu(X) + A- * relu(-X)`` with, per kernel entry ``(t, j, p, q)``,
``A+[t, j, p, q] = sum_{r in S+} u[j, r] V[t, jH + r, p, q]`` over the kept channels with ``u > 0`` and
``A-[t, j, p, q] = sum_{r in S-} |u[j, r]| V[t, jH + r, p, q]`` over those with ``u < 0``. Since
``X = relu(X) - relu(-X)``, every kernel entry is two subset-sum instances over the products
``u[j, r] V[t, jH + r, p, q]`` (the +- split of Pensia et al. 2020), and one instance when the input is known
to be >= 0 (images in [0, 1], post-ReLU maps): the ``relu(-X)`` side is then never active.

These instances are those of the fully connected block with rows ``(t, p, q)``: reading ``K`` as the matrix
``K[(t, p, q), j]`` (:func:`kernel_as_matrix`) and ``V`` as ``V[(t, p, q), jH + r]`` (:func:`second_as_matrix`),
instance ``((t, p, q), j)`` of :func:`strongticket.construct.blocks.assemble_block` is kernel entry
``(t, j, p, q)`` with the candidates above. So the conv kind supplies the shapes and these two views, and
the block engine builds, solves (batched, the wider-pool retry included) and masks; :func:`assemble_pair`
maps the masks and errors back to kernel shapes.

Biases: a constant input channel (value 1 inside the image) carries them, as in the fully connected case.
Zero padding makes a constant channel's kxk sum smaller at the borders, so the bias ``b_t`` goes on a single
tap ``(a, a)`` that every output position reads inside the image (:func:`bias_tap`): tap ``(p, p)``, which
qualifies when ``(H_out - 1) s <= H - 1`` for both spatial sizes, in particular whenever ``p <= (k - 1) / 2``.
The augmented kernel (:func:`augment_kernel`) then equals the target convolution with bias at every output
position, borders included. A layer whose padding leaves no such tap is refused (:class:`InputError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from strongticket.construct.blocks import BlockResult, Chooser, ChooseFn, assemble_block, block_coefficients
from strongticket.errors import InputError
from strongticket.nets.spec import Conv2d


def random_pair(target: Conv2d, in_channels: int, out_channels: int, block_size: int) -> tuple[Conv2d, Conv2d]:
    """The random pair's layers for ``target``: ``Conv2d(c_in, H c_in, 1)`` + ReLU, ``Conv2d(H c_in, c_out, k)``.

    Parameters
    ----------
    target : Conv2d
        The target layer (its kernel size, stride, padding and activation are kept).
    in_channels, out_channels : int
        ``c_in`` and ``c_out`` including the constant channel where there is one.
    block_size : int
        ``H``, intermediate channels per input channel.

    Returns
    -------
    (Conv2d, Conv2d)
        Bias-free spec layers; the first has ReLU, the second the target's activation.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size (intermediate channels per input channel) must be >= 1, got {block_size!r}")
    m = int(block_size) * in_channels
    first = Conv2d(in_channels, m, 1, bias=False, activation="relu")
    second = Conv2d(m, out_channels, target.kernel_size, stride=target.stride, padding=target.padding, bias=False,
                    activation=target.activation)
    return first, second


def _safe_taps(size: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """``(lo, hi)``: taps ``a`` with ``0 <= y s - p + a <= size - 1`` for every output index ``y``."""
    out = (size + 2 * padding - kernel) // stride + 1
    return padding, min(kernel - 1, size - 1 + padding - (out - 1) * stride)


def bias_tap(kernel_size: int, stride: int, padding: int, in_size: Sequence[int], *, where: str = "Conv2d") -> int:
    """The tap ``a`` such that tap ``(a, a)`` reads inside the image at every output position.

    Output position ``(y, x)`` reads input ``(y s - p + a, x s - p + b)`` through tap ``(a, b)``; tap ``a = p``
    is inside for every ``y`` iff ``(H_out - 1) s <= H - 1`` (always true when ``p <= (k - 1) / 2``), and no
    other tap can be (any tap inside at ``y = 0`` is ``>= p``).

    Parameters
    ----------
    kernel_size, stride, padding : int
    in_size : (H, W)
        Spatial size of the layer's input.
    where : str
        Names the layer in the error message.

    Raises
    ------
    InputError
        When some output position reads only padding through every candidate tap: a constant channel cannot
        then give the bias exactly at every position.
    """
    for size in in_size:
        lo, hi = _safe_taps(int(size), kernel_size, stride, padding)
        if lo > hi:
            raise InputError(
                f"{where} (kernel {kernel_size}, stride {stride}, padding {padding}) on a {tuple(in_size)} input: "
                f"no kernel tap reads inside the image at every output position, so a bias (or the constant "
                f"channel that carries biases) cannot be exact at the borders; supported: padding <= "
                f"(kernel_size - 1) / 2 = {(kernel_size - 1) // 2}, or no bias in the whole target")
    return padding


def augment_kernel(kernel: np.ndarray, bias: np.ndarray | None, *, constant_in: bool, constant_out: bool,
                   tap: int | None) -> np.ndarray:
    """The kernel the pair must approximate, with the constant channel: float64 ``(c_out', c_in', k, k)``.

    With ``constant_in``, input channel ``c_in`` is the constant 1 and carries ``bias`` on tap ``(tap, tap)``
    (zeros elsewhere; no bias: zeros); with ``constant_out``, output channel ``c_out`` reproduces the constant
    (weight 1 on that tap of the constant input channel), for the layers after.
    """
    k = np.asarray(kernel, dtype=np.float64)
    c_out, c_in, kh, kw = k.shape
    if kh != kw:
        raise InputError(f"kernels must be square, got {kh}x{kw}")
    if not np.all(np.isfinite(k)):
        raise InputError("the target kernel has non-finite entries")
    if not constant_in:
        if bias is not None or constant_out:
            raise InputError("a bias or a constant output channel needs the constant input channel")
        return np.ascontiguousarray(k)
    if tap is None:
        raise InputError("the constant channel needs a bias tap (see bias_tap)")
    out = np.zeros((c_out + int(constant_out), c_in + 1, kh, kw))
    out[:c_out, :c_in] = k
    if bias is not None:
        b = np.asarray(bias, dtype=np.float64).reshape(-1)
        if b.shape != (c_out,) or not np.all(np.isfinite(b)):
            raise InputError(f"bias must be {c_out} finite values, got shape {b.shape}")
        out[:c_out, c_in, tap, tap] = b
    if constant_out:
        out[c_out, c_in, tap, tap] = 1.0
    return out


def kernel_as_matrix(kernel: np.ndarray) -> np.ndarray:
    """``K[t, j, p, q]`` as the matrix ``M[(t, p, q), j]``, shape ``(c_out k k, c_in)``, row ``t k^2 + p k + q``."""
    c_out, c_in, k, _ = kernel.shape
    return np.ascontiguousarray(np.transpose(kernel, (0, 2, 3, 1)).reshape(c_out * k * k, c_in))


def second_as_matrix(weight: np.ndarray | torch.Tensor) -> np.ndarray:
    """``V[t, h, p, q]`` as ``M[(t, p, q), h]``, shape ``(c_out k k, H c_in)`` (same dtype, a copy)."""
    v = weight.numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
    c_out, m, k, _ = v.shape
    return np.ascontiguousarray(np.transpose(v, (0, 2, 3, 1)).reshape(c_out * k * k, m))


def matrix_as_kernel(matrix: np.ndarray, kernel_size: int) -> np.ndarray:
    """Inverse of :func:`kernel_as_matrix` / :func:`second_as_matrix`: ``(c_out k k, c) -> (c_out, c, k, k)``."""
    rows, c = matrix.shape
    k = int(kernel_size)
    if rows % (k * k):
        raise InputError(f"a matrix view of a {k}x{k} kernel has a multiple of {k * k} rows, got {rows}")
    return np.ascontiguousarray(np.transpose(matrix.reshape(rows // (k * k), k, k, c), (0, 3, 1, 2)))


def conv_instances(kernel: np.ndarray, u: np.ndarray, second: np.ndarray, samples: int, sign: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every kernel entry's instance on one side, vectorised: targets, candidates and the channels used.

    Parameters
    ----------
    kernel : float64 array, shape (c_out, c_in, k, k)
        Kernel to approximate (augmented).
    u : float32 array, shape (c_in, H)
        First-layer diagonal ``u[j, r] = U[jH + r, j]``.
    second : float32 array, shape (c_out, H c_in, k, k)
        ``V``.
    samples : int
        ``n``: the first ``n`` channels of the sign in each input channel's block (all inputs must have them).
    sign : {0, 1}
        0: ``u > 0`` (target ``K``); 1: ``u < 0`` (the products must sum to ``K`` as well).

    Returns
    -------
    targets : float64 array, shape (c_out, c_in, k, k)
    candidates : float64 array, shape (c_out, c_in, k, k, n)
        ``u[j, r] * V[t, jH + r, p, q]`` for the ``n`` chosen ``r`` (exact: a product of two float32).
    channels : int array, shape (c_in, n)
        The chosen ``r`` per input channel.
    """
    c_out, c_in, k, _ = kernel.shape
    H = u.shape[1]
    sel = u > 0 if sign == 0 else u < 0
    if np.any(sel.sum(axis=1) < samples):
        raise InputError(f"every input channel needs {samples} first-layer weights of the sign, some have fewer")
    order = np.argsort(~sel, axis=1, kind="stable")[:, :samples]  # the sign's channels first, in r order
    v = second.reshape(c_out, c_in, H, k, k)
    picked = v[:, np.arange(c_in)[:, None], order]  # (c_out, c_in, n, k, k)
    cand = np.moveaxis(picked, 2, -1).astype(np.float64) * u[np.arange(c_in)[:, None], order].astype(
        np.float64)[None, :, None, None, :]
    return np.asarray(kernel, dtype=np.float64), cand, order


@dataclass(frozen=True, eq=False)
class PairResult:
    """One assembled pair: masks in the layers' shapes, per-entry errors, and the block engine's outcome.

    Attributes
    ----------
    mask1 : bool tensor, shape (H c_in, c_in, 1, 1)
    mask2 : bool tensor, shape (c_out, H c_in, k, k)
    errors_pos, errors_neg : float64 arrays, shape (c_out, c_in, k, k)
        ``|A+ - K|`` and ``|A- + K|`` per kernel entry (``errors_neg`` 0 where the side is not built).
    block : BlockResult
        The engine's outcome on the matrix view (statuses, subset sizes, wider-pool retries, misses; their
        ``row`` indices are ``t k^2 + p k + q``, ``col`` the input channel ``j``).
    """

    mask1: torch.Tensor
    mask2: torch.Tensor
    errors_pos: np.ndarray
    errors_neg: np.ndarray
    block: BlockResult


def assemble_pair(kernel: np.ndarray, u: np.ndarray, second: np.ndarray | torch.Tensor,
                  choose: Chooser | ChooseFn, *, samples: int | None, negative_side: bool, eps: float | None,
                  wider_pool: bool = True) -> PairResult:
    """Build, solve and mask every kernel entry of one pair (through the block engine on the matrix view).

    Parameters
    ----------
    kernel : float64 array, shape (c_out, c_in, k, k)
        Kernel to approximate (augmented with the constant channel if any, :func:`augment_kernel`).
    u : float32 array, shape (c_in, H)
        First-layer diagonal (:func:`strongticket.construct.blocks.first_layer_diagonal` of the 1x1 weight read
        as ``(H c_in, c_in)``: the same elements in the same order).
    second : float32, shape (c_out, H c_in, k, k)
        The kxk random weight ``V``.
    choose, samples, negative_side, eps, wider_pool
        As for :func:`strongticket.construct.blocks.assemble_block`.
    """
    c_out, c_in, k, _ = kernel.shape
    H = u.shape[1]
    v = second_as_matrix(second)
    if v.shape != (c_out * k * k, c_in * H):
        raise InputError(f"second random layer must have shape {(c_out, c_in * H, k, k)}, "
                         f"got {tuple(second.shape)}")
    block = assemble_block(kernel_as_matrix(kernel), u, v, choose, samples=samples, negative_side=negative_side,
                           eps=eps, wider_pool=wider_pool)
    mask2 = matrix_as_kernel(block.mask2.numpy(), k)
    mask1 = block.mask1.numpy().reshape(c_in * H, c_in, 1, 1)
    return PairResult(mask1=torch.from_numpy(np.ascontiguousarray(mask1)), mask2=torch.from_numpy(mask2),
                      errors_pos=matrix_as_kernel(block.errors_pos, k), errors_neg=matrix_as_kernel(block.errors_neg, k),
                      block=block)


def pair_coefficients(first: np.ndarray, mask1: np.ndarray, second: np.ndarray, mask2: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """``(A+, A-)`` of a pruned pair, float64 ``(c_out, c_in, k, k)``, from the random weights and masks.

    The pruned pair computes exactly ``A+ * relu(X) + A- * relu(-X)`` provided every kept intermediate channel
    reads one input channel; raises :class:`InputError` otherwise
    (:func:`strongticket.construct.blocks.block_coefficients` on the matrix views).
    """
    m, c_in = first.shape[:2]
    k = second.shape[-1]
    f2 = np.asarray(first).reshape(m, c_in)
    k1 = np.asarray(mask1, dtype=bool).reshape(m, c_in)
    a_pos, a_neg = block_coefficients(f2, k1, second_as_matrix(second), second_as_matrix(np.asarray(mask2)))
    return matrix_as_kernel(a_pos, k), matrix_as_kernel(a_neg, k)


__all__ = ["PairResult", "assemble_pair", "augment_kernel", "bias_tap", "conv_instances", "kernel_as_matrix",
           "matrix_as_kernel", "pair_coefficients", "random_pair", "second_as_matrix"]
