"""da Cunha, Natale, Viennot (2022): a random CNN twice as deep, pruned into any sequential CNN target.

A. da Cunha, E. Natale, L. Viennot, "Proving the Lottery Ticket Hypothesis for Convolutional Neural Networks",
ICLR 2022 (OpenReview Vjki79-619-). See ``docs/constructions.md``, section "da Cunha, Natale, Viennot 2022".

Theorem (as recalled; the full text was not available to us). With high probability, every CNN
``f = K_L * relu(K_{L-1} * ... relu(K_1 * X))`` with kernels normalised in entrywise l1 (``|K_i|_1 <= 1``) is
approximated within ``eps`` in l_inf, for every input with ``|X|_inf <= 1``, by pruning a random CNN of depth
``2L`` whose layers are wider by a logarithmic factor, ``O(log(k^2 c_in c_out L / min(eps, delta)))``
intermediate channels per input channel, all weights i.i.d. U[-1, 1]: the analysis follows Malach et al.
(two layers approximate one) and the subset-sum argument of Pensia et al. 2020.

Construction (:mod:`strongticket.construct.conv` for one layer): target ``Conv2d`` layer ``K_i`` becomes a
random ``1x1`` convolution pruned to univariate channels (intermediate channel ``(j, r)`` reads input channel
``j`` only), a ReLU, and a random ``kxk`` convolution with the target's stride and zero padding; every
kernel entry ``K[t, j, p, q]`` is a subset-sum instance over the products ``u[j, r] V[t, (j, r), p, q]``
(two with the +- split for signed inputs, one for inputs known to be >= 0: images in [0, 1], maps after a
ReLU). Pooling and Flatten layers pass through unchanged (pooling of the constant channel keeps it 1). A
``Linear`` layer right after the Flatten of an image (``C`` channels, ``S`` positions) is realised by a random
1x1 convolution + ReLU placed *before* the Flatten (univariate channels, as for a convolution) and a random
Linear after it: the pair for a convolution whose kernel covers the whole image, with ``H C^2 + d_out H C S``
random weights instead of the ``H (C S)^2 + d_out H C S`` of a fully connected block
(:mod:`strongticket.construct.flatten_linear`, where the exactness is derived). Every other ``Linear`` layer,
the classifier included, is the fully connected 2L block of Pensia et al. 2020
(:mod:`strongticket.construct.blocks`), so the whole target is pruned from the random network, no layer copied
from the target. All layers run on the one 2L engine (:func:`strongticket.construct.engine.run`, one job per
layer: :func:`~strongticket.construct.engine.conv_job`, :func:`~strongticket.construct.engine.flatten_linear_job`,
:func:`~strongticket.construct.engine.linear_job`); the subsets are chosen by
:func:`strongticket.construct.pensia.subset_sum_chooser` (:func:`strongticket.subsetsum.solve`, batched per
layer, with the wider-pool retry), one chooser per per-layer tolerance.

Biases (a design choice; the theorem has none): a constant input channel (1 inside the image) carries them,
through every layer (each non-final layer gets one more output channel that approximates the constant). Zero
padding lowers a constant channel's kxk sum at the borders, so the bias sits on the one tap every output
position reads inside the image, tap ``(padding, padding)``: exact at the borders whenever
``padding <= (kernel_size - 1) / 2`` (``strongticket.construct.conv.bias_tap``); layers with more padding are
refused when the target has biases. After a Flatten the constant channel is one more channel of the 1x1
convolution before it; the bias goes on its first position (every position of that channel is 1). A target
whose input is a vector gets one constant coordinate instead.

Differences from the paper, recorded so a reader can check them: weight laws other than U[-1, 1] are allowed;
samples per weight default to Pensia et al.'s form with its calibrated constant
(:data:`strongticket.construct.pensia.PENSIA_C`) at ``d_in = c_in k^2``; each block has the binomial
union-bound block size of :func:`strongticket.construct.blocks.block_size_for` (over the univariate blocks:
input channels of a convolution or of a Flatten -> Linear pair, inputs of another Linear); the per-weight tolerance
``eps'`` for a network ``eps`` is the l1/l_inf rule ``eps / (2 L d_max)`` (``d_max`` the largest fan-in,
``c_in k^2``), see :mod:`strongticket.construct.conv_bound`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket import __version__
from strongticket.construct import cnn_target
from strongticket.construct import conv as conv_kind
from strongticket.construct import engine
from strongticket.construct import flatten_linear as fl_kind
from strongticket.construct import pensia
from strongticket.construct.blocks import (
    BLOCK_ACTIVATIONS,
    MAX_LISTED,
    Chooser,
    block_coefficients,
    block_size_for,
    shortfall_probability,
)
from strongticket.construct.conv_bound import LinfBound, linf_network_bound
from strongticket.errors import InputError
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.spec import Conv2d, Flatten, Linear, NetSpec
from strongticket.nets.trace import TracedNet
from strongticket.ticket import Ticket, fingerprint
from strongticket.validation import check_unit_open

METHOD = "dacunha2022"
PAPER = "da Cunha, Natale, Viennot, ICLR 2022"

SUPPORTED = ("a sequential target of Conv2d (square kernel, any stride, zero padding, groups=1, dilation=1), "
             f"MaxPool2d/AvgPool2d (no padding), Flatten and Linear layers, with activations {BLOCK_ACTIVATIONS}")


@dataclass(frozen=True, eq=False)
class TargetLayer:
    """One parametrised target layer, ready for its pair.

    Attributes
    ----------
    index : int
        Position in the target's spec (and of the pair's first layer in the random spec's bookkeeping).
    layer : Conv2d or Linear
        The target's spec layer.
    kernel : float64 array
        What the pair approximates: ``(c_out', c_in', k, k)`` or ``(d_out', d_in')``, constant channel included.
    weight : float64 array
        The target's own weight (no bias, no constant channel).
    bias : float64 array or None
    tap : int or None
        Conv: the bias tap ``(tap, tap)`` of the constant channel; Linear: the input index carrying the bias.
    constant_out : bool
        The layer has one more output, the constant channel, for the layers after.
    negative_side : bool
        The layer's input may be negative: both sides of the +- split are built.
    name : str
        The target module's parameter name (for messages).
    flat_input : (int, int, int) or None
        For a Linear right after a Flatten of an image: ``(C', H_s, W_s)`` of that image, constant channel
        included (the layer is then realised by a 1x1 conv before the Flatten,
        :mod:`strongticket.construct.flatten_linear`); None otherwise.
    """

    index: int
    layer: Conv2d | Linear
    kernel: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    tap: int | None
    constant_out: bool
    negative_side: bool
    name: str
    flat_input: tuple[int, int, int] | None = None

    @property
    def kind(self) -> str:
        """``"conv2d"`` or ``"linear"``."""
        return self.layer.kind

    @property
    def fan_in(self) -> int:
        """Inputs per output entry of the augmented kernel: ``c_in' k^2`` or ``d_in'``."""
        return int(math.prod(self.kernel.shape[1:]))

    @property
    def blocks(self) -> int:
        """Univariate blocks of the pair's first layer: input channels ``c_in'`` (Conv2d, Flatten -> Linear) or
        inputs ``d_in'`` (Linear)."""
        if self.flat_input is not None:
            return int(self.flat_input[0])
        return int(self.kernel.shape[1])


@dataclass(frozen=True, eq=False)
class CNNTarget:
    """A sequential CNN target read for the construction.

    Attributes
    ----------
    traced : TracedNet
    params : tuple of TargetLayer
        The Conv2d and Linear layers, in order.
    constant : bool
        Biases are carried by a constant input channel.
    constant_kind : str or None
        ``"channel"`` (a channel of ones beside an image input), ``"flat"`` (one coordinate appended to the
        flattened input) or None.
    input_shape : tuple of int
        One input sample, without the constant channel.
    """

    traced: TracedNet
    params: tuple[TargetLayer, ...]
    constant: bool
    constant_kind: str | None
    input_shape: tuple[int, ...]


def read_cnn_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None, *,
                    nonneg_input: bool = False) -> CNNTarget:
    """Check ``target`` and build, per Conv2d/Linear layer, the (augmented) kernel its pair must approximate.

    The checks every CNN construction makes (modules, trace, input shape, chaining, finite parameters, layer
    names) are :func:`strongticket.construct.cnn_target.read_layers`'s; this construction's own follow (ReLU or
    identity activations, the bias tap).

    Raises
    ------
    InputError
        Unsupported modules or activations (named), layers that do not chain (where), a missing input shape,
        a bias that zero padding makes inexact at the borders, or non-finite weights.
    """
    read = cnn_target.read_layers(target, input_shape, who="cnn2l", supported=SUPPORTED)
    traced, spec, shapes = read.traced, read.spec, read.shapes
    constant = any(getattr(layer, "bias", False) for layer in spec.layers)
    where = read.names
    for i, layer in enumerate(spec.layers):
        if layer.activation not in BLOCK_ACTIVATIONS:
            raise InputError(f"cnn2l: unsupported activation {layer.activation!r} after layer {i} "
                             f"({type(layer).__name__}); supported: {SUPPORTED}")
    param_idx = [i for i, layer in enumerate(spec.layers) if isinstance(layer, (Conv2d, Linear))]
    if not param_idx:
        raise InputError(f"cnn2l: the target has no Conv2d or Linear layer; supported: {SUPPORTED}")
    # Where the constant channel sits in the current tensor: ("channel",) for an image (the last channel) or
    # ("flat", first, count) for a vector (its last `count` entries, from index `first`).
    layout: tuple | None = None
    constant_kind = None
    if constant:
        # an image input keeps the constant as a channel up to its Flatten, whose Linear reads it through the
        # 1x1 conv before the Flatten like any other channel; a vector input gets one more coordinate
        if len(spec.input_shape) == 3:
            layout, constant_kind = ("channel",), "channel"
        else:
            layout, constant_kind = ("flat", int(math.prod(spec.input_shape)), 1), "flat"
    nonneg = bool(nonneg_input)
    read_params = {p.index: p for p in read.params}
    params = []
    for i, layer in enumerate(spec.layers):
        in_shape = shapes[i]  # target's own input shape of layer i (NetSpec without the constant)
        flat_input = None
        if isinstance(layer, Linear) and i > 0 and isinstance(spec.layers[i - 1], Flatten) \
                and len(shapes[i - 1]) == 3:
            c, h, wd = shapes[i - 1]
            flat_input = (c + int(constant), h, wd)
        last = i == param_idx[-1]
        if isinstance(layer, (Conv2d, Linear)):
            w, b = read_params[i].weight, read_params[i].bias
            tap = None
            if isinstance(layer, Conv2d):
                if constant:
                    if layout != ("channel",):
                        raise InputError(f"cnn2l: Conv2d layer {i} ({where[i]}) reads a flattened input")
                    tap = conv_kind.bias_tap(layer.kernel_size, layer.stride, layer.padding, in_shape[1:],
                                             where=f"cnn2l: Conv2d layer {i} ({where[i]})")
                kernel = conv_kind.augment_kernel(w, b, constant_in=constant, constant_out=constant and not last,
                                                  tap=tap)
            else:
                kernel = w
                if constant:
                    _, first, count = layout
                    tap = first
                    d_out = w.shape[0]
                    kernel = np.zeros((d_out + int(not last), w.shape[1] + count))
                    kernel[:d_out, :w.shape[1]] = w
                    if b is not None:
                        kernel[:d_out, first] = b
                    if not last:
                        kernel[d_out, first] = 1.0
                    layout = ("flat", d_out, 1)
            params.append(TargetLayer(index=i, layer=layer, kernel=np.ascontiguousarray(kernel), weight=w, bias=b,
                                      tap=tap, constant_out=constant and not last, negative_side=not nonneg,
                                      name=where[i], flat_input=flat_input))
            nonneg = layer.activation == "relu"
        else:
            if isinstance(layer, Flatten) and constant and layout == ("channel",):
                c, h, wd = in_shape
                layout = ("flat", c * h * wd, h * wd)
            nonneg = nonneg or layer.activation == "relu"  # pooling and flattening keep signs
    return CNNTarget(traced=traced, params=tuple(params), constant=constant, constant_kind=constant_kind,
                     input_shape=tuple(spec.input_shape))


def random_spec(target: CNNTarget, block_size: int, *, flatten_1x1: bool = True
                ) -> tuple[NetSpec, dict[int, tuple[str, str]]]:
    """The depth-2L random network and, per target layer index, its pair's two parameter names.

    Conv2d: :func:`strongticket.construct.conv.random_pair`; a Linear right after a Flatten of an image:
    ``Conv2d(C', H C', 1)`` + ReLU placed before the Flatten, then ``Linear(H C' S, d_out, act)``
    (:func:`strongticket.construct.flatten_linear.random_pair`); any other Linear: ``Linear(d_in, H d_in, relu)``,
    ``Linear(H d_in, d_out, act)``; Pool and Flatten copied. No random layer has a bias. ``flatten_1x1=False``
    gives the layout of tickets built before the 1x1 realisation existed (every Linear a fully connected
    block; their provenance has no ``flatten_linear`` key), for reading them.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size must be a positive integer, got {block_size!r}")
    H = int(block_size)
    by_index = {p.index: p for p in target.params}
    spec_layers = target.traced.spec.layers
    layers: list = []
    names: dict[int, tuple[str, str]] = {}
    first_of: dict[int, str] = {}  # target index of a flattened Linear -> its 1x1 conv's parameter name
    for i, layer in enumerate(spec_layers):
        p = by_index.get(i)
        nxt = by_index.get(i + 1)
        if isinstance(layer, Flatten) and flatten_1x1 and nxt is not None and nxt.flat_input is not None:
            c = nxt.flat_input[0]
            first_of[i + 1] = f"layers.{len(layers)}.weight"
            layers += [fl_kind.random_pair(c, 1, 1, H, "identity")[0], layer]
            continue
        if p is None:
            layers.append(layer)
            continue
        if i in first_of:
            c, h, w = p.flat_input
            names[i] = (first_of[i], f"layers.{len(layers)}.weight")
            layers.append(fl_kind.random_pair(c, h * w, p.kernel.shape[0], H, layer.activation)[1])
            continue
        names[i] = (f"layers.{len(layers)}.weight", f"layers.{len(layers) + 1}.weight")
        if isinstance(layer, Conv2d):
            c_out, c_in = p.kernel.shape[:2]
            layers += list(conv_kind.random_pair(layer, c_in, c_out, H))
        else:
            d_out, d_in = p.kernel.shape
            layers += [Linear(d_in, H * d_in, bias=False, activation="relu"),
                       Linear(H * d_in, d_out, bias=False, activation=layer.activation)]
    if target.constant_kind == "channel":
        spec = NetSpec(tuple(layers), input_shape=target.input_shape, input_constant_channel=True)
    else:
        spec = NetSpec(tuple(layers), input_shape=target.input_shape, input_constant=target.constant)
    return spec, names


def theory_per_weight_eps(target: CNNTarget, eps: float) -> float:
    """``eps'`` for network error ``eps``: the l1/l_inf rule ``eps / (2 L d_max)``, ``d_max`` the largest fan-in.

    With ``G(K_i) <= 1`` and ``|X|_inf <= 1``, ``e_L <= (1 + d_max eps')^L - 1 <= eps`` for ``eps <= 1``
    (:mod:`strongticket.construct.conv_bound`).
    """
    return eps / (2 * len(target.params) * max(p.fan_in for p in target.params))


def theory_samples(target: CNNTarget, per_weight_eps: float, delta: float) -> int:
    """Samples per weight ``n = ceil(C log2(k^2 c_in c_out L / min(eps', delta)))``, the largest over layers.

    The logarithmic width of da Cunha et al. 2022 in the form of Pensia et al. 2020 (union bound over the
    ``k^2 c_in c_out`` entries of every layer), with its calibrated ``C``
    (:data:`strongticket.construct.pensia.PENSIA_C`).
    """
    from strongticket.subsetsum import theory

    return max(theory.pensia_width(p.fan_in, p.kernel.shape[0], len(target.params), per_weight_eps, delta,
                                   C=pensia.PENSIA_C).samples_per_weight for p in target.params)


def construct(
    target: nn.Module | TracedNet,
    *,
    per_weight_eps: float | Sequence[float] | None = None,
    eps: float | None = None,
    samples: int | None = None,
    delta: float = 0.01,
    seed: int = 0,
    distribution: WeightDistribution | None = None,
    solver: str = "auto",
    objective: str = "min_error",
    strict: bool = True,
    log: Callable[[str], None] | None = None,
    input_shape: tuple[int, ...] | None = None,
    nonneg_input: bool = False,
    block_size: int | None = None,
    time_limit: float | None = None,
    wider_pool: bool = True,
    record_target: bool = True,
    _chooser: Chooser | None = None,
) -> Ticket:
    """Prune a depth-2L random CNN into an approximation of the sequential CNN ``target``.

    Parameters
    ----------
    target : nn.Module or TracedNet
        Conv2d, MaxPool2d/AvgPool2d, Flatten and Linear layers with ReLU or identity activations.
    per_weight_eps : float in (0, 1) or sequence of them, optional
        Error allowed per kernel entry and per linear weight (the subset-sum tolerance); a sequence gives one
        per Conv2d/Linear layer, in order (e.g. proportional to each layer's weight scale).
    eps : float in (0, 1), optional
        Network error in l_inf over ``|x|_inf <= 1`` (for ``|K_i|`` l_inf gains <= 1): gives ``per_weight_eps``
        (:func:`theory_per_weight_eps`) when that is not given, and the theorem's sample count.
    samples : int, optional
        ``n``, candidates per instance; default :func:`theory_samples`.
    delta : float in (0, 1)
        Failure probability for the theorem's width and for the default ``block_size``.
    seed : int
        Seed of the random network.
    distribution : WeightDistribution, optional
        Law of every random weight; default U[-1, 1] as in the theorem.
    solver, objective, time_limit
        Passed to :func:`strongticket.subsetsum.solve` (``objective`` ``min_error`` or ``sparsest``).
    strict : bool
        Raise :class:`InfeasibleError` when some weight misses ``per_weight_eps`` (or a block is short of a sign);
        when False the ticket is returned and the misses are in its provenance.
    log : callable, optional
        Receives one progress line per layer.
    input_shape : tuple of int, optional
        One input sample, ``(C, H, W)``; needed for an ``nn.Module`` that starts with a convolution.
    nonneg_input : bool
        Inputs are >= 0 (images in [0, 1]): the first layer builds the ``relu(x)`` side only, and the ticket
        approximates the target on non-negative inputs (recorded in the provenance).
    block_size : int, optional
        ``H``, intermediate channels (hidden neurons) per input channel; default from ``samples`` and ``delta``
        (:func:`strongticket.construct.blocks.block_size_for`).
    wider_pool : bool
        Retry instances that miss with their first ``n`` candidates over every channel of their sign.
    record_target : bool
        Store the target's weights in the ticket (``arrays["target.*"]``).

    Returns
    -------
    Ticket
        Random spec (a 1x1 + kxk pair per Conv2d, a 1x1 conv before the Flatten + a Linear for a Linear after
        a Flatten, two Linear layers per other Linear, pooling and Flatten as in the target), masks and
        provenance with per-layer errors (``layers[i]["relative_error"]``: the Frobenius ``|K^ - K| / |K|``
        over the target's weights), times, sizes (``random_params``, per layer and in all, and
        ``random_params_dense_flatten``, the size had every Linear after a Flatten been a fully connected
        block), and an l_inf certified bound; per-entry errors in ``arrays["errors.layer{i}.pos"/".neg"]``, in
        the augmented kernel's shape (``(d_out', C' S)`` for a Linear after a Flatten).

    Raises
    ------
    InputError
        Bad arguments or an unsupported target (named).
    InfeasibleError
        ``strict`` and some weight above ``per_weight_eps`` or a block short of a sign.
    """
    return prepare(target, per_weight_eps=per_weight_eps, eps=eps, samples=samples, delta=delta, seed=seed,
                   distribution=distribution, solver=solver, objective=objective, strict=strict, log=log,
                   input_shape=input_shape, nonneg_input=nonneg_input, block_size=block_size,
                   time_limit=time_limit, wider_pool=wider_pool, record_target=record_target,
                   _chooser=_chooser).build()


def prepare(
    target: nn.Module | TracedNet,
    *,
    per_weight_eps: float | Sequence[float] | None = None,
    eps: float | None = None,
    samples: int | None = None,
    delta: float = 0.01,
    seed: int = 0,
    distribution: WeightDistribution | None = None,
    solver: str = "auto",
    objective: str = "min_error",
    strict: bool = True,
    log: Callable[[str], None] | None = None,
    input_shape: tuple[int, ...] | None = None,
    nonneg_input: bool = False,
    block_size: int | None = None,
    time_limit: float | None = None,
    wider_pool: bool = True,
    record_target: bool = True,
    _chooser: Chooser | None = None,
) -> engine.Prepared:
    """Check the arguments, read ``target`` and plan the construction of :func:`construct`, solving nothing.

    Same arguments as :func:`construct`; :meth:`strongticket.construct.engine.Prepared.build` gives its ticket,
    and :mod:`strongticket.construct.shard` runs it in slices.
    """
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    seed = check_seed(seed)
    if eps is None and per_weight_eps is None:
        raise InputError("give eps (network error) or per_weight_eps (error per target weight), both in (0, 1)")
    if eps is not None:
        eps = check_unit_open("eps", eps)
    layer_eps: list[float] | None = None
    if per_weight_eps is not None and not isinstance(per_weight_eps, (int, float)):
        if isinstance(per_weight_eps, (str, bytes)) or not isinstance(per_weight_eps, Sequence) or not per_weight_eps:
            raise InputError(f"per_weight_eps must be a number in (0, 1) or a non-empty sequence of them, "
                             f"got {per_weight_eps!r}")
        layer_eps = [check_unit_open(f"per_weight_eps[{i}]", e) for i, e in enumerate(per_weight_eps)]
        per_weight_eps = min(layer_eps)
    elif per_weight_eps is not None:
        per_weight_eps = check_unit_open("per_weight_eps", per_weight_eps)
    delta = check_unit_open("delta", delta)
    engine.check_common_options(objective, samples, distribution)
    cnn = read_cnn_target(target, input_shape, nonneg_input=nonneg_input)
    if layer_eps is not None and len(layer_eps) != len(cnn.params):
        raise InputError(f"per_weight_eps must give one value per Conv2d/Linear layer of the target "
                         f"({len(cnn.params)}), got {len(layer_eps)}")
    dist = distribution or WeightDistribution.uniform(-1.0, 1.0)
    theory_eps = theory_per_weight_eps(cnn, eps) if eps is not None else None
    if per_weight_eps is None:
        per_weight_eps = theory_eps
    layer_eps = layer_eps or [per_weight_eps] * len(cnn.params)
    theory_n = theory_samples(cnn, per_weight_eps, delta)
    if samples is None:
        samples = theory_n
    if _chooser is None and samples > 62:
        raise InputError(f"samples per weight must be <= 62 for the subset-sum construction, got {samples}")
    p_pos, p_neg = dist.sign_probabilities()
    needs = [(p.blocks, p_pos) for p in cnn.params]
    needs += [(p.blocks, p_neg) for p in cnn.params if p.negative_side]
    needed_H, H = engine.choose_block_size(samples, delta, needs, block_size)
    spec, names = random_spec(cnn, H)
    shapes = spec.parameter_shapes()
    choosers = {e: _chooser or pensia.subset_sum_chooser(solver, objective, e, time_limit) for e in set(layer_eps)}
    choose = choosers[layer_eps[0]]

    def short_fix() -> str:
        if needed_H > H:
            return f"block_size {needed_H} makes this happen with probability <= delta = {delta:g}"
        return (f"at block_size {H} this happens with probability <= delta = {delta:g}: use another seed or a "
                f"smaller delta (delta/10 gives block_size {block_size_for(samples, delta / 10, needs)})")

    jobs = [_job(p, names[p.index], shapes, spec, eps_l, choosers[eps_l], li)
            for li, (p, eps_l) in enumerate(zip(cnn.params, layer_eps))]
    settings = engine.Settings(distribution=dist, seed=seed, block_size=H, samples=samples,
                               per_weight_eps=per_weight_eps, strict=strict, wider_pool=wider_pool,
                               short_fix=short_fix, log=say)

    def finish(out: engine.EngineResult) -> Ticket:
        masks: dict[str, torch.Tensor] = dict(out.masks)
        arrays: dict[str, torch.Tensor] = {}
        layers_info: list[dict] = []
        warnings: list[str] = list(out.warnings)
        ebars: list[np.ndarray] = []
        listed: list[dict] = []
        reasons: dict[str, int] = {}
        for li, (p, eps_l, rec) in enumerate(zip(cnn.params, layer_eps, out.layers)):
            n1, n2 = names[p.index]
            e_pos, e_neg = out.arrays[f"errors.block{li}.pos"], out.arrays[f"errors.block{li}.neg"]
            arrays[f"errors.layer{li}.pos"] = torch.from_numpy(np.ascontiguousarray(e_pos))
            arrays[f"errors.layer{li}.neg"] = torch.from_numpy(np.ascontiguousarray(e_neg))
            ebars.append(_acting_errors(p, e_pos, e_neg))
            for key, k in rec["misses"]["reasons"].items():
                reasons[key] = reasons.get(key, 0) + k
            listed += [{"layer": li, **miss} for miss in rec["misses"]["listed"]][:max(0, MAX_LISTED - len(listed))]
            layers_info.append({
                "layer": li, "kind": p.kind, "target_index": p.index, "target_name": p.name,
                "target_shape": list(p.weight.shape), "kernel_shape": list(p.kernel.shape),
                "bias": p.bias is not None, "bias_tap": p.tap, "constant_out": p.constant_out,
                "negative_side": p.negative_side,
                "flatten_input": None if p.flat_input is None else list(p.flat_input),
                "random_layers": [n1, n2], "random_shapes": [list(shapes[n1]), list(shapes[n2])],
                "random_params": int(math.prod(shapes[n1]) + math.prod(shapes[n2])),
                "instances": rec["instances"], "short_inputs": rec["short_inputs"], "per_weight_eps": eps_l,
                "errors": rec["errors"],
                "relative_error": relative_error(p, e_pos, e_neg),
                "bias_max_error": _bias_error(p, e_pos, e_neg),
                "status": rec["status"], "mean_subset_size": rec["mean_subset_size"],
                "wider_pool": {"instances": rec["wider_pool"]["instances"],
                               "recovered": rec["wider_pool"]["recovered"]},
                "misses": {"count": rec["misses"]["count"], "reasons": rec["misses"]["reasons"]},
                "kept": rec["kept"],
                "seconds": rec["seconds"],
            })
        total_err = max(li["errors"]["max"] for li in layers_info)
        above = sum(li["errors"]["above_eps"] for li in layers_info)
        message = None
        if above:
            message = pensia.miss_message(above, reasons, listed, samples=samples, block_size=H,
                                          per_weight_eps=per_weight_eps, max_error=total_err, theory_n=theory_n,
                                          wider_pool=wider_pool)
            if not strict:
                warnings.append(message)
                say("warning: " + message)
        radius = 1.0
        bound = linf_network_bound([p.kernel for p in cnn.params], ebars, radius)
        provenance = {
            "method": METHOD, "paper": PAPER,
            "eps": eps, "per_weight_eps": per_weight_eps, "per_weight_eps_by_layer": layer_eps, "delta": delta,
            "objective": objective if _chooser is None else choose.name, "solver": solver if _chooser is None else None,
            "chooser": choose.name, "samples_per_weight": samples, "block_size": H,
            "block_size_rule": {
                "needed": needed_H, "given": block_size, "delta": delta, "p_pos": p_pos, "p_neg": p_neg,
                "union_bound": sum(c * shortfall_probability(H, samples, q) for c, q in needs),
                "rule": "smallest H with sum over (layer, needed sign) of P(Binomial(H, p) < n) <= delta",
            },
            "warnings": warnings,
            "theory_samples_per_weight": theory_n, "theory_per_weight_eps": theory_eps, "theory_C": pensia.PENSIA_C,
            "theory_form": "n = ceil(C log2(k^2 c_in c_out L / min(eps', delta))); eps' = eps / (2 L d_max)",
            "constant_input_channel": cnn.constant, "nonneg_input": bool(nonneg_input),
            "target": {"spec": cnn.traced.spec.to_dict(), "fingerprint": fingerprint(cnn.traced.state),
                       "num_weights": int(sum(t.numel() for t in cnn.traced.state.values())),
                       "source_names": cnn.traced.source_names},
            "layers": layers_info,
            "max_error": total_err, "weights_above_eps": above, "miss_reasons": reasons, "misses": listed,
            "misses_format": "conv rows are t*k*k + p*k + q of kernel entry (t, j, p, q), col the input channel j; "
                             "a Linear after a Flatten has rows o*S + s of weight (o, j*S + s), col the channel j; "
                             "another Linear has rows o, col the input",
            "flatten_linear": "conv1x1",
            "random_params": int(spec.num_params),
            "random_params_dense_flatten": int(spec.num_params) + sum(
                _dense_extra(p, H) for p in cnn.params if p.flat_input is not None),
            "certified_linf": {"radius": radius, "bound": bound.bound,
                               "rule": "|f(x) - g(x)|_inf over |x|_inf <= radius (strongticket.construct.conv_bound)"},
            "seconds": {"total": round(time.perf_counter() - start, 3)},
            "strongticket": __version__,
        }
        return engine.finish_ticket(spec, dist, seed, masks, provenance, arrays, cnn.traced.state,
                                    record_target=record_target, strict=strict, miss_message=message if above else None)

    return engine.Prepared(jobs=tuple(jobs), chooser=choose, settings=settings, finish=finish, traced=cnn.traced)


def _dense_extra(p: TargetLayer, block_size: int) -> int:
    """Random weights a fully connected block would add over the 1x1 realisation of a Linear after a Flatten."""
    c, h, w = p.flat_input
    sizes = fl_kind.random_sizes(c, h * w, p.kernel.shape[0], block_size)
    return sizes["dense_total"] - sizes["total"]


def _job(p: TargetLayer, names: tuple[str, str], shapes: dict[str, tuple[int, ...]], spec: NetSpec, eps: float,
         chooser: Chooser, li: int) -> engine.LayerJob:
    """The engine's job for target layer ``p``: its layer kind (Conv2d, Flatten -> Linear or Linear)."""
    n1, n2 = names
    pair = (shapes[n1], shapes[n2])
    kw = dict(negative_side=p.negative_side, fan_in=spec.fan_in(n2), per_weight_eps=eps, chooser=chooser,
              label=f"layer {li + 1} ({p.kind} {p.name})")
    if isinstance(p.layer, Conv2d):
        return engine.conv_job(names, pair, p.kernel, **kw)
    if p.flat_input is not None:
        return engine.flatten_linear_job(names, pair, p.kernel, p.flat_input[0], **kw)
    return engine.linear_job(names, pair, p.kernel, **kw)


def certified_linf(ticket: Ticket, radius: float = 1.0, target: nn.Module | TracedNet | None = None) -> LinfBound:
    """Certified bound on ``sup |f(x) - g(x)|_inf`` over inputs with ``|x|_inf <= radius`` for a cnn2l ticket.

    The recurrence of :mod:`strongticket.construct.conv_bound` over the target's (augmented) kernels and the
    per-weight errors the ticket recorded (``errors.layer{i}.pos/neg``), of which only those that can act count
    (:func:`_acting_errors`). A constant channel of ones is part of the augmented input, so the bound is taken
    over ``|x|_inf <= max(radius, 1)`` when biases are carried by it.
    """
    from strongticket.verify.measure import target_module

    if ticket.provenance.get("method") != METHOD:
        raise InputError(f"certified_linf needs a {METHOD} ticket, got method {ticket.provenance.get('method')!r}")
    f = target_module(ticket) if target is None else target
    cnn = read_cnn_target(f, ticket.spec.input_shape, nonneg_input=bool(ticket.provenance.get("nonneg_input")))
    errors = []
    for i, p in enumerate(cnn.params):
        e_pos = ticket.arrays[f"errors.layer{i}.pos"].numpy()
        e_neg = ticket.arrays[f"errors.layer{i}.neg"].numpy()
        errors.append(_acting_errors(p, e_pos, e_neg))
    return linf_network_bound([p.kernel for p in cnn.params], errors, max(radius, 1.0) if cnn.constant else radius)


def _acting_errors(p: TargetLayer, e_pos: np.ndarray, e_neg: np.ndarray) -> np.ndarray:
    """``Ebar``: the per-weight error that can act, ``|E+|`` only on inputs known >= 0 (and the constant)."""
    if not p.negative_side:
        return np.abs(e_pos)
    out = np.maximum(np.abs(e_pos), np.abs(e_neg))
    if p.tap is not None:  # the constant channel is +1: its relu(-x) side never acts
        if p.kind == "conv2d":
            out[:, -1] = np.abs(e_pos[:, -1])
        else:
            out[:, p.tap:] = np.abs(e_pos[:, p.tap:])
    return out


def relative_error(p: TargetLayer, e_pos: np.ndarray, e_neg: np.ndarray) -> float:
    """``|K^ - K|_F / |K|_F`` over the target's own weights (the worse side when both are built)."""
    sl = (slice(0, p.weight.shape[0]), slice(0, p.weight.shape[1]))
    norm = float(np.linalg.norm(p.weight))
    worst = float(np.linalg.norm(e_pos[sl]))
    if p.negative_side:
        worst = max(worst, float(np.linalg.norm(e_neg[sl])))
    return worst / norm if norm > 0 else worst


def _bias_error(p: TargetLayer, e_pos: np.ndarray, e_neg: np.ndarray) -> float | None:
    """Largest error of the bias entries (on the constant channel, whose relu(-x) side never acts)."""
    if p.bias is None:
        return None
    rows = slice(0, p.weight.shape[0])
    if p.kind == "conv2d":
        return float(e_pos[rows, -1, p.tap, p.tap].max())
    return float(e_pos[rows, p.tap].max())


def pair_kernels(ticket: Ticket, target: nn.Module | TracedNet | None = None,
                 weights: dict[str, torch.Tensor] | None = None) -> list[dict[str, Any]]:
    """Per target layer, the kernel the ticket realises, recomputed from the regenerated weights and masks.

    Returns, per Conv2d/Linear layer, ``{"kind", "kernel" K (augmented), "pos" A+, "neg" A-,
    "negative_side"}``, float64 arrays of the kernel's shape: the pair computes exactly
    ``A+ * relu(X) + A- * relu(-X)``.
    """
    from strongticket.verify.measure import target_module

    f = target_module(ticket) if target is None else target
    shape = ticket.spec.input_shape
    cnn = read_cnn_target(f, shape, nonneg_input=bool(ticket.provenance.get("nonneg_input", False)))
    flatten_1x1 = ticket.provenance.get("flatten_linear") == "conv1x1"  # absent: a ticket from before it
    _, names = random_spec(cnn, int(ticket.provenance.get("block_size", 1)), flatten_1x1=flatten_1x1)
    weights = ticket.random_weights() if weights is None else weights
    out = []
    for p in cnn.params:
        n1, n2 = names[p.index]
        w1, w2 = weights[n1].numpy(), weights[n2].numpy()
        m1, m2 = ticket.masks[n1].numpy(), ticket.masks[n2].numpy()
        if p.kind == "conv2d":
            a_pos, a_neg = conv_kind.pair_coefficients(w1, m1, w2, m2)
        elif p.flat_input is not None and flatten_1x1:
            a_pos, a_neg = fl_kind.pair_coefficients(w1, m1, w2, m2)
        else:
            a_pos, a_neg = block_coefficients(w1, m1, w2, m2)
        if a_pos.shape != p.kernel.shape:
            raise InputError(f"ticket layer {n1}/{n2} realises shape {a_pos.shape}, the target needs {p.kernel.shape}")
        out.append({"kind": p.kind, "kernel": p.kernel, "pos": a_pos, "neg": a_neg, "negative_side": p.negative_side,
                    "weight_shape": p.weight.shape})
    return out


__all__ = ["CNNTarget", "METHOD", "PAPER", "SUPPORTED", "TargetLayer", "certified_linf",
           "construct", "pair_kernels", "prepare", "random_spec", "read_cnn_target", "relative_error",
           "theory_per_weight_eps", "theory_samples"]
