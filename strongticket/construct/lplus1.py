"""Burkholz (2022): a depth-(L+1) random network pruned into a depth-L target, most activations.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022
(arXiv 2205.02321), Theorems 2.5 and 2.6. For ReLU it was known that a random network of depth 2L and a
logarithmic width factor contains every depth-L target up to error eps (Pensia et al. 2020); Burkholz shows
that depth L+1 suffices, for a large class of activation functions: with probability at least ``1 - delta`` a
random network of depth L+1 whose hidden layers are ``rho = O(log(N / min(eps, delta)))`` times wider than the
target's (N target parameters) contains a subnetwork within eps of the target. The construction, how this
module realises it and where it departs from the reference code are in ``docs/constructions.md``, section
"Burkholz 2022". This module is the fully connected case and the pieces both cases share (activations, the
batched instances, the certified bound's terms); :func:`construct` sends a target with a ``Conv2d`` layer to
:mod:`strongticket.construct.lplus1_conv`, which lays the same construction out over channels and kernel taps.

Layout of the random network (no biases; a constant input coordinate, ``NetSpec.input_constant``):

* **copying layer** (random layer 1, activation phi of the target's first layer): ``first_rho`` univariate
  neurons per input ``j`` (neuron ``j*first_rho + r`` keeps only its weight ``u[j, r]`` from input ``j``) and a
  *constant block* of ``const_groups`` groups of ``const_rho`` neurons reading only the constant coordinate
  (outputs ``phi(u_c)``; one group unless ``phi(0) != 0``, see "first layer" below);
* **random layer 2** represents target layer 1: ``rho`` copies of every target neuron (row ``i*rho + m``) plus
  ``rho`` constant neurons (rows ``n_1*rho + m``). Copy ``(i, m)`` keeps, for each input ``j``, a subset of the
  block of ``j`` whose products ``v*u`` sum to the target weight (see "first layer" below); its bias is a subset
  sum over the constant block's ``v*phi(u_c)``; the constant neurons' pre-activations are subset sums to 1;
* **random layer l+1** (``2 <= l <= L``) represents target layer l: copy ``(i, m)`` keeps, per target input
  ``j``, a subset of the plain weights from the ``rho`` copies of ``j`` summing to ``w_ij`` (each copy has its
  own independent weights), its bias from the previous constant neurons, and ``rho`` new constant neurons;
* the **output layer** (l = L) has multiplicity 1 and no constant neurons.

Every subset-sum instance of a layer is built with numpy and solved in batched calls of
:func:`strongticket.subsetsum.solve` (one per side and chunk of rows, the chunks bounding memory). Target
weights that are exactly zero (a pruned, sparse target) get no instance: their random weights stay pruned.

First layer, per activation (from the registry :mod:`strongticket.nets.activations`):

* ``split`` (positively homogeneous with a split identity ``phi(x) - phi(-x) = s x``: ReLU, LeakyReLU):
  a neuron with ``u > 0`` outputs ``u phi(x)``, one with ``u < 0`` outputs ``|u| phi(-x)``; the ``u > 0`` side
  targets ``w / s`` and the ``u < 0`` side ``-w / s``, so the sum is exactly ``w x`` (``s = 1 + alpha`` for
  LeakyReLU: the ``1/(1+alpha)`` rescale the reference code omits). For inputs known to be ``>= 0`` only the
  ``u > 0`` side is built, with target ``w / phi(1)``.
* ``linear`` (differentiable at 0 with a remainder bound: tanh, sigmoid, GELU, SiLU, ELU, softplus, identity):
  the small-weight regime ``phi(u x) = phi(0) + phi'(0) u x + R``, ``|R| <= c (u x)^2``: one instance over the
  whole block, candidates ``phi'(0) v u`` against the target weight ``w`` (so eps bounds the pre-activation
  error per weight, as for ReLU); the constant ``phi(0) sum v`` of the kept neurons is subtracted from the
  copy's bias target (cancelled by the constant block), and the remainder ``c sum |v| u^2 x^2`` enters the
  certified bound. A **per-layer weight scale** resolves the trade-off one law would face between a small
  remainder (small ``u``) and the products' reach (large ``v u``): the copying layer's draws are multiplied
  by ``lambda_1 = eps phi'(0) / (c b^3 R^2)`` (capped at 1; ``b`` the law's bound, ``R`` the input radius)
  and random layer 2's by ``lambda_2 = 1 / (lambda_1 phi'(0))`` (:func:`first_layer_scales`): the products
  ``phi'(0) v u`` are then products of two plain draws, as for ReLU, and one kept neuron's remainder is at
  most eps. The scales are per-tensor factors of the ticket's law (``WeightDistribution.tensor_scales``),
  applied after the draw, so the ticket still regenerates bit for bit from its seed. For ``phi(0) != 0``
  (sigmoid, softplus) the offset ``phi(0) sum v`` grows like the square root of the copy's kept neurons while
  one group of ``const_rho`` candidates moves a sum by about ``const_rho phi(0) b' / 4``: the constant block
  then has reserve groups (:func:`constant_groups`) that cancel the offset greedily before the first group's
  subset sum meets the rest within eps.

Certified bound (:func:`certified_bound`): an l_inf bound on ``sup_{|x|_inf <= R} |f(x) - g(x)|_inf`` from the
ticket's actual weights: per copy, the pre-activation error is at most
``sum_j |A_ij - w_ij| B_j + sum_j sum_{k in S_ij} |v| e_{j,k} + |bias error|`` (plus the first layer's
remainder), where ``B`` bounds the target's activations and ``e`` the previous copies' errors; the activation
multiplies it by its Lipschitz constant. Constant neurons only read constants, so their values are exact and
their use as bias sources adds no propagated error. Subset sizes therefore multiply the propagated error,
which is why ``objective="sparsest"`` (the default, like the reference code's first-found search) matters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket.construct.lplus1_parts import (  # the pieces the CNN case shares (lplus1_conv)
    CHUNK_ELEMENTS,
    first_layer_distribution,
    finish_ticket,
    CONSTANT_TARGET,
    FirstView,
    InstanceStats,
    LPLUS1_C,
    LPlus1Bound,
    Layout,
    METHOD,
    PAPER,
    bias_selection,
    constant_groups,
    copy_selection,
    first_block_terms,
    first_layer_mode,
    first_layer_scales,
    first_selection,
    first_view,
    layout_of,
    phi64,
    reference_constants,
    rows_to_targets,
)
from strongticket.errors import InputError
from strongticket.nets.activations import Activation, activation
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.spec import Conv2d, Flatten, Linear, NetSpec
from strongticket.nets.trace import TracedNet, trace_module
from strongticket.ticket import Ticket, recorded_target
from strongticket.validation import check_int, check_unit_open


#: Most candidates one subset-sum instance may have (the solvers keep a subset as a 64-bit mask).
MAX_CANDIDATES = 62

# ----- target -------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LPlus1Target:
    """A fully connected target read for the L+1 construction.

    Attributes
    ----------
    traced : TracedNet
        Spec and weights under the spec's parameter names.
    weights : tuple of float64 arrays
        ``W_l``, shape ``(n_l, n_{l-1})``.
    biases : tuple of float64 arrays
        ``b_l``, shape ``(n_l,)`` (zeros for a layer without bias).
    activations : tuple of str
        Activation after each target layer.
    flatten : bool
        The target starts with ``Flatten`` (image inputs).
    input_shape : tuple of int
        Shape of one input sample.
    """

    traced: TracedNet
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    flatten: bool
    input_shape: tuple[int, ...]

    @property
    def num_layers(self) -> int:
        """L."""
        return len(self.weights)

    @property
    def widths(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L)``."""
        return (self.weights[0].shape[1],) + tuple(w.shape[0] for w in self.weights)

    @property
    def num_params(self) -> int:
        """Target parameters (weights and biases)."""
        return sum(int(t.numel()) for t in self.traced.state.values())


def read_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None) -> LPlus1Target:
    """Check that ``target`` is an optional ``Flatten`` then chained ``Linear`` layers; read its weights.

    Raises
    ------
    InputError
        One line naming the first layer that is not ``Linear``, layers that do not chain, non-finite weights.
        Non-sequential targets (residual additions, concatenations) are refused by the tracer.
    """
    traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    layers = list(traced.spec.layers)
    flatten = bool(layers) and isinstance(layers[0], Flatten)
    if flatten:
        if layers[0].activation != "identity":
            raise InputError(f"lplus1: unsupported activation {layers[0].activation!r} after Flatten")
        layers = layers[1:]
    offset = int(flatten)
    what = "the lplus1 construction takes fully connected targets: an optional leading Flatten, then Linear layers"
    if not layers:
        raise InputError(f"target has no Linear layer; {what}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Linear):
            raise InputError(f"unsupported layer {type(layer).__name__} at position {i + offset} of the target; "
                             f"{what}")
    for a, b in zip(layers, layers[1:]):
        if a.out_features != b.in_features:
            raise InputError(f"target layers do not chain: {a.out_features} outputs feed {b.in_features} inputs")
    weights, biases = [], []
    for i, layer in enumerate(layers):
        idx = i + offset
        w = traced.state[f"layers.{idx}.weight"].detach().to(torch.float64).cpu().numpy()
        b = traced.state.get(f"layers.{idx}.bias")
        b = np.zeros(w.shape[0]) if b is None else b.detach().to(torch.float64).cpu().numpy()
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise InputError(f"target layer {idx} has non-finite weights")
        weights.append(np.ascontiguousarray(w))
        biases.append(np.ascontiguousarray(b))
    shape = traced.spec.input_shape or (layers[0].in_features,)
    return LPlus1Target(traced=traced, weights=tuple(weights), biases=tuple(biases),
                        activations=tuple(layer.activation for layer in layers), flatten=flatten,
                        input_shape=tuple(shape))


def random_spec(target: LPlus1Target, layout: Layout) -> NetSpec:
    """The depth-(L+1) random network: bias-free ``Linear`` layers, the constant input coordinate.

    Random layer ``k + 1`` carries the activation of target layer ``k`` (``k >= 1``); the copying layer carries
    that of target layer 1.
    """
    n0 = layout.widths[0]
    layers: list = [Flatten()] if target.flatten else []
    layers.append(Linear(n0 + 1, layout.rows(0), bias=False, activation=target.activations[0]))
    for k in range(1, layout.num_layers + 1):
        layers.append(Linear(layout.rows(k - 1), layout.rows(k), bias=False, activation=target.activations[k - 1]))
    return NetSpec(tuple(layers), input_shape=target.input_shape, input_constant=True)


def layer_names(spec: NetSpec) -> list[str]:
    """Weight names of the random layers, copying layer first."""
    return [f"layers.{i}.weight" for i in spec.linear_layers]


def theory_rho(num_params: int, eps: float, delta: float, C: float = LPLUS1_C) -> int:
    """``rho = ceil(C log2(N / min(eps, delta)))``: the theorem's logarithmic multiplicity (its form; C unknown).

    Burkholz 2022, Thm. 2.5/2.6: ``rho = O(log(N / min(eps, delta)))`` with ``N`` the target's parameters (the
    union bound over one subset-sum instance per parameter and copy). ``C`` is :data:`LPLUS1_C`.
    """
    return max(1, math.ceil(C * math.log2(num_params / min(eps, delta))))


def counting_rho(eps: float, reach: float = 1.0) -> int:
    """The fewest candidates whose ``2^rho`` subset sums can cover ``[-reach, reach]`` within ``eps``."""
    return max(1, math.ceil(math.log2(reach / eps)))


def iter_rows(dist: WeightDistribution, name: str, shape: tuple[int, int], seed: int
               ) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, float32 chunk)`` of a random layer, regenerated bit for bit in bounded memory."""
    q0 = 0
    for chunk in dist.iter_rows(name, shape, seed, fan_in=shape[1],
                                chunk_elements=max(shape[1], CHUNK_ELEMENTS)):
        c = chunk.numpy()
        yield q0, c
        q0 += c.shape[0]


# ----- construction --------------------------------------------------------------------------------------------
def construct(
    target: nn.Module | TracedNet,
    *,
    eps: float = 0.01,
    delta: float = 0.01,
    rho: int | None = None,
    first_rho: int | None = None,
    const_rho: int | None = None,
    const_groups: int | None = None,
    seed: int = 0,
    distribution: WeightDistribution | None = None,
    first_scale: float | str | None = "theory",
    solver: str = "auto",
    objective: str = "sparsest",
    time_limit: float | None = None,
    strict: bool = False,
    nonneg_input: bool = False,
    radius: float = 1.0,
    input_shape: tuple[int, ...] | None = None,
    record_target: bool = True,
    reference_first_layer: bool = False,
    log: Callable[[str], None] | None = None,
) -> Ticket:
    """Prune a depth-(L+1) random network into an approximation of ``target``.

    Parameters
    ----------
    target : nn.Module or TracedNet
        ``Linear`` layers (optionally after ``Flatten``), or a CNN (``Conv2d`` first, then ``Conv2d``, pooling,
        one ``Flatten`` and ``Linear`` layers: :mod:`strongticket.construct.lplus1_conv`), with any
        activations of the registry; the first layer's must be supported by :func:`first_layer_mode`.
    eps : float in (0, 1)
        Tolerance of every subset-sum instance (the per-parameter error of Burkholz's experiments).
    delta : float in (0, 1)
        Failure probability in the theorem's ``rho`` (:func:`theory_rho`).
    rho : int, optional
        Copies per target neuron; default :func:`theory_rho`. Refused below :func:`counting_rho` (``eps``).
    first_rho : int, optional
        Copying-layer neurons per input; default ``2 rho`` for the +- split (each side gets about ``rho``),
        ``rho`` otherwise (as the reference code).
    const_rho : int, optional
        Neurons of one group of the constant block (the candidates of every layer-2 bias instance); default
        ``first_rho``.
    const_groups : int, optional
        Groups of ``const_rho`` constant neurons; default :func:`constant_groups` (1, or more for activations
        with ``phi(0) != 0``, sigmoid and softplus, whose block must also cancel ``phi(0) sum v`` of every copy).
    seed : int
        Seed of the random network.
    distribution : WeightDistribution, optional
        Law of every random weight; default U[-1, 1]. The ``linear`` first layer multiplies the copying
        layer's and random layer 2's draws by per-tensor scales (``first_scale``), recorded in the ticket's
        distribution (``tensor_scales``).
    first_scale : "theory", float or None
        ``lambda_1`` of the copying layer for a ``linear`` first layer, with ``lambda_2 = 1 / (lambda_1
        phi'(0))`` on random layer 2 (:func:`first_layer_scales`): ``"theory"`` (default) picks
        ``lambda_1 = eps phi'(0) / (c b^3 R^2)``, a number gives ``lambda_1``, ``None`` keeps one law for
        every layer (no tensor scales; then a ``distribution`` with ``tensor_scales`` is used as given).
        Ignored by the exact +- split (ReLU, LeakyReLU), which needs no scale.
    solver, objective, time_limit
        Passed to :func:`strongticket.subsetsum.solve`; ``objective`` ``sparsest`` (default: small subsets
        keep the propagated error small) or ``min_error``.
    strict : bool
        Raise :class:`InfeasibleError` when an instance misses ``eps`` (default: record the count and go on;
        the certified bound uses the actual errors either way).
    nonneg_input : bool
        Inputs are ``>= 0`` (images in [0, 1]): the split first layer needs only its ``u > 0`` side.
    radius : float
        The certified bound recorded in the provenance is over ``|x|_inf <= radius``.
    input_shape : tuple of int, optional
        Shape of one input, for tracing a target that starts with ``Flatten``.
    record_target : bool
        Store the target's weights in the ticket (``arrays["target.*"]``).
    reference_first_layer : bool
        Build the first layer with the reference code's choices instead of ours, to measure the difference
        (``docs/constructions.md``): the +- split on both sides with targets ``+-w`` (no ``1 / (1 + alpha)``
        rescale for LeakyReLU, and the ``u < 0`` side even for non-negative inputs); for the linear regime no
        per-layer scale, candidates ``v u`` against ``w`` (no ``phi'(0)``), no cancellation of ``phi(0) sum v``,
        one constant group, and the constant neurons assumed to output ``u_c`` (1 for ``phi(0) != 0``, whose
        constant neurons then have no input). The certified bound is computed from the ticket as built, so it
        includes what these choices cost. ReLU tickets are the same either way on signed inputs.
    log : callable, optional
        Progress lines.

    Returns
    -------
    Ticket
        Random spec of L+1 ``Linear`` layers (a CNN target: a 1x1 ``Conv2d``, then ``Conv2d``/``Linear``
        layers with the target's pooling and ``Flatten`` between them) with the right activation per layer,
        masks, and provenance: ``lplus1`` (layout and mode; ``target_kind`` ``"conv"`` for a CNN), per-layer
        instance records and ``certified_bound``.

    Raises
    ------
    InputError
        Bad option, unsupported target or activation, ``rho`` below the counting bound.
    InfeasibleError
        With ``strict``, when some instance misses ``eps``.
    """
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    seed = check_seed(seed)
    eps = check_unit_open("eps", eps)
    delta = check_unit_open("delta", delta)
    if objective not in ("min_error", "sparsest"):
        raise InputError(f"objective must be 'min_error' or 'sparsest', got {objective!r}")
    if not (isinstance(radius, (int, float)) and not isinstance(radius, bool) and math.isfinite(radius)
            and radius > 0):
        raise InputError(f"radius must be a finite number > 0, got {radius!r}")
    traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    cnn = None
    if any(isinstance(layer, Conv2d) for layer in traced.spec.layers):
        from strongticket.construct import lplus1_conv  # the CNN case, laid out on this module's pieces

        cnn = lplus1_conv.read_target(traced)
        act0, num_params = activation(cnn.stages[0].activation), cnn.num_params
    else:
        tgt = read_target(traced)
        act0, num_params = activation(tgt.activations[0]), tgt.num_params
    mode = first_layer_mode(act0)
    theory = theory_rho(num_params, eps, delta)
    need = counting_rho(eps)
    rho = theory if rho is None else check_int("rho", rho)
    if rho < need:
        raise InputError(f"rho = {rho} is too small for eps = {eps:g}: the 2^rho subset sums cannot cover "
                         f"[-1, 1] within eps (counting bound rho >= {need}; the theorem's rho for delta = "
                         f"{delta:g} is {theory})")
    first_rho = (2 * rho if mode == "split" else rho) if first_rho is None else check_int("first_rho", first_rho)
    if not isinstance(reference_first_layer, bool):
        raise InputError(f"reference_first_layer must be True or False, got {reference_first_layer!r}")
    two_sides = mode == "split" and (not nonneg_input or reference_first_layer)
    per_side = first_rho // 2 if two_sides else first_rho
    if per_side < need:
        raise InputError(f"first_rho = {first_rho} gives about {per_side} candidates per instance, too few for "
                         f"eps = {eps:g} (counting bound {need}; default 2 rho for the +- split)")
    const_rho = first_rho if const_rho is None else check_int("const_rho", const_rho)
    if reference_first_layer and mode == "linear":
        first_scale = None  # the reference code draws one law for every layer
        const_groups = 1 if const_groups is None else const_groups  # and cancels no phi(0) offset
    if const_groups is not None:
        const_groups = check_int("const_groups", const_groups)
    for what, n in (("rho", rho), ("first_rho", per_side), ("const_rho", const_rho)):
        if n > MAX_CANDIDATES:
            raise InputError(f"{what} = {n} gives more than {MAX_CANDIDATES} candidates per subset-sum instance, "
                             f"more than the solvers take")
    base = distribution or WeightDistribution.uniform(-1.0, 1.0)
    if not isinstance(base, WeightDistribution):
        raise InputError(f"distribution must be a WeightDistribution, got {type(base).__name__}")
    if first_scale is not None and first_scale != "theory":
        if isinstance(first_scale, bool) or not isinstance(first_scale, (int, float)) \
                or not (math.isfinite(first_scale) and first_scale > 0):
            raise InputError(f"first_scale must be 'theory', a finite number > 0 or None, got {first_scale!r}")
        first_scale = float(first_scale)
    if base.tensor_scales and first_scale is not None and mode == "linear":
        raise InputError(f"first_scale={first_scale!r} would replace the distribution's tensor_scales "
                         f"{dict(base.tensor_scales)}; pass first_scale=None to use them as given")
    if cnn is not None:
        return lplus1_conv.construct(
            cnn, eps=eps, delta=delta, rho=rho, first_rho=first_rho, const_rho=const_rho, const_groups=const_groups,
            seed=seed, base=base, first_scale=first_scale, solver=solver, objective=objective, time_limit=time_limit,
            strict=strict, nonneg_input=nonneg_input, radius=radius, record_target=record_target,
            reference_first_layer=reference_first_layer, log=say, theory=theory, need=need)
    if const_groups is None:
        nnz_max = int(max((np.count_nonzero(tgt.weights[0], axis=1)).max(initial=0), 1))
        const_groups = constant_groups(act0, mode, nnz_max, const_rho)
    layout = Layout(tgt.widths, rho, first_rho, const_rho, const_groups)
    spec = random_spec(tgt, layout)
    names = layer_names(spec)
    dist, lam1, lam2, scale_rule, law_bound = first_layer_distribution(base, act0, mode, first_scale, eps, radius,
                                                                       names)
    shapes = spec.parameter_shapes()
    L = layout.num_layers
    opts = {"solver": solver, "objective": objective, "eps": eps, "time_limit": time_limit}

    # copying layer: every weight is a candidate; its mask is decided by the next layer's choices
    t0 = time.perf_counter()
    w1 = dist.tensor(names[0], shapes[names[0]], seed, fan_in=spec.fan_in(names[0])).numpy()
    n0, fr = layout.widths[0], first_rho
    full_keep = np.zeros((layout.rows(0), n0 + 1), dtype=bool)
    full_keep[np.arange(n0 * fr), np.arange(n0 * fr) // fr] = True
    full_keep[n0 * fr:, n0] = True
    first = first_view(layout, act0, w1, full_keep)
    kappa_assumed, kappa_true = reference_constants(first.kappa, w1[n0 * fr:, n0], act0, mode,
                                                    reference_first_layer)
    gen_seconds = time.perf_counter() - t0
    masks: dict[str, torch.Tensor] = {}
    records: list[dict[str, Any]] = []
    used = np.zeros(layout.rows(0), dtype=bool)
    kappa_prev = None
    for k in range(1, L + 1):
        name = names[k]
        shape = tuple(int(s) for s in shapes[name])
        act = activation(tgt.activations[k - 1])
        w, b = tgt.weights[k - 1], tgt.biases[k - 1]
        mask = np.zeros(shape, dtype=bool)
        z_const = np.zeros(shape[0])
        wstats, bstats, cstats = InstanceStats(), InstanceStats(), InstanceStats()
        offsets_seen, reserve_rows = 0.0, 0
        say(f"layer {k + 1}/{L + 1}: {shape[0]} neurons from {shape[1]}, target layer {k} {w.shape[1]} -> "
            f"{w.shape[0]}")
        tg = time.perf_counter()
        for q0, v in iter_rows(dist, name, shape, seed):
            gen_seconds += time.perf_counter() - tg
            q = np.arange(q0, q0 + v.shape[0])
            i, is_copy = rows_to_targets(k, layout, q)
            w_rows = np.where(is_copy[:, None], w[np.maximum(i, 0)], 0.0)
            if k == 1:
                v3 = v[:, :n0 * fr].reshape(len(q), n0, fr)
                sel = first_selection(v3, w_rows, first.u, act0, mode, nonneg_input, wstats, opts,
                                      reference=reference_first_layer)
                mask[q0:q0 + len(q), :n0 * fr] = sel.reshape(len(q), n0 * fr)
                offset = np.zeros(len(q))
                if mode == "linear" and act0.phi0 != 0 and not reference_first_layer:
                    offset = act0.phi0 * np.where(sel.reshape(len(q), -1), v[:, :n0 * fr],
                                                  0.0).astype(np.float64).sum(axis=1)
                bias_cand = v[:, n0 * fr:].astype(np.float64) * kappa_assumed[None, n0 * fr:]
                bias_true = v[:, n0 * fr:].astype(np.float64) * kappa_true[None, n0 * fr:]
                bias_cols = np.arange(n0 * fr, shape[1])
            else:
                nc, n_prev = layout.copies(k - 1), layout.widths[k - 1]
                sel = copy_selection(v[:, :nc].reshape(len(q), n_prev, rho), w_rows, wstats, opts)
                mask[q0:q0 + len(q), :nc] = sel.reshape(len(q), nc)
                offset = np.zeros(len(q))
                bias_cand = bias_true = v[:, nc:].astype(np.float64) * kappa_prev[None]
                bias_cols = np.arange(nc, shape[1])
            bt = np.where(is_copy, b[np.maximum(i, 0)] - offset, CONSTANT_TARGET)
            rss = layout.const_rho if k == 1 else bias_cand.shape[1]  # the subset-sum group's columns
            reserve = k == 1 and layout.const_groups > 1
            if reserve:
                offsets_seen = max(offsets_seen, float(np.abs(offset[is_copy]).max(initial=0.0)))
            sel, used_reserve = bias_selection(bt, bias_cand, is_copy, ~is_copy, rss, bstats, cstats, opts,
                                               reserve=reserve)
            mask[q0:q0 + len(q), bias_cols] |= sel
            reserve_rows += used_reserve
            z_const[q] = (np.where(mask[q0:q0 + len(q)][:, bias_cols], bias_true, 0.0)).sum(axis=1)
            tg = time.perf_counter()
        if k == 1:
            used = mask.any(axis=0)
        kappa_prev = phi64(act, z_const[layout.copies(k):]) if k < L else None
        masks[name] = torch.from_numpy(mask)
        records.append({"random_layer": k + 1, "name": name, "shape": list(shape), "activation": act.name,
                        "target_layer": k, "multiplicity": layout.multiplicity(k),
                        "weights": wstats.record(), "biases": bstats.record(), "constants": cstats.record(),
                        "kept": int(mask.sum())})
        if k == 1 and layout.const_groups > 1:
            records[-1]["constant_offsets"] = {"max_abs": offsets_seen, "rows_using_reserve": reserve_rows}
    keep1 = np.zeros((layout.rows(0), n0 + 1), dtype=bool)
    keep1[full_keep] = used[np.nonzero(full_keep)[0]]
    if reference_first_layer and mode == "linear" and act0.phi0 != 0:
        keep1[n0 * fr:, n0] = False  # the reference's constant neurons have no input: they output phi(0)
    masks[names[0]] = torch.from_numpy(keep1)
    masks = {n: masks[n] for n in names}
    info = {**layout.to_dict(), "first_layer_mode": mode, "copy_activation": act0.name,
            "reference_first_layer": reference_first_layer,
            "first_scale": {"rule": scale_rule, "lambda1": lam1, "lambda2": lam2, "law_bound": law_bound},
            "constant_target": CONSTANT_TARGET, "theory_rho": theory, "theory_C": LPLUS1_C, "counting_rho": need}
    return finish_ticket(spec, dist, seed, masks, records, info, tgt.traced, widths=tgt.widths,
                         num_params=tgt.num_params, eps=eps, delta=delta, rho=rho, theory=theory, objective=objective,
                         solver=solver, nonneg_input=nonneg_input, record_target=record_target,
                         certify=lambda t: certified_bound(t, tgt, radius=radius, nonneg_input=nonneg_input),
                         radius=radius, gen_seconds=gen_seconds, start=start, strict=strict, say=say)


def _target_of(ticket: Ticket) -> LPlus1Target:
    return read_target(recorded_target(ticket))


def _is_conv(ticket: Ticket) -> bool:
    """The ticket was built for a convolutional target (:mod:`strongticket.construct.lplus1_conv`)."""
    info = ticket.provenance.get("lplus1")
    return isinstance(info, dict) and info.get("target_kind") == "conv"


def certified_bound(ticket: Ticket, target: nn.Module | TracedNet | LPlus1Target | None = None, *,
                    radius: float = 1.0, nonneg_input: bool | None = None) -> LPlus1Bound:
    """Certified l_inf error bound of an L+1 ticket, recomputed from its regenerated weights and masks.

    See the module docstring for the recurrence. ``nonneg_input`` defaults to the ticket's; with it the
    bound is over ``0 <= x <= radius``. The bound is for exact arithmetic (a float32 network adds rounding).

    Raises
    ------
    InputError
        Not an L+1 ticket, a copying layer that is not univariate, a constant neuron that reads a copy.
    """
    if _is_conv(ticket):
        from strongticket.construct import lplus1_conv

        return lplus1_conv.certified_bound(ticket, target, radius=radius, nonneg_input=nonneg_input)
    layout, mode = layout_of(ticket)
    tgt = target if isinstance(target, LPlus1Target) else (_target_of(ticket) if target is None
                                                          else read_target(target))
    if tgt.widths != layout.widths:
        raise InputError(f"the ticket was built for widths {layout.widths}, the target has {tgt.widths}")
    nonneg = bool(ticket.provenance.get("nonneg_input", False)) if nonneg_input is None else nonneg_input
    names = layer_names(ticket.spec)
    shapes = ticket.spec.parameter_shapes()
    dist, seed = ticket.distribution, ticket.seed
    act0 = activation(tgt.activations[0])
    m1 = ticket.masks[names[0]].numpy()
    n0, fr = layout.widths[0], layout.first_rho
    univariate = np.ones(m1.shape, dtype=bool)
    univariate[np.arange(n0 * fr), np.arange(n0 * fr) // fr] = False
    univariate[n0 * fr:, n0] = False
    if (m1 & univariate).any():
        raise InputError("the copying layer keeps a weight outside its univariate pattern: not an L+1 ticket")
    first = first_view(layout, act0, dist.tensor(names[0], shapes[names[0]], seed).numpy(), m1)
    if mode == "linear" and act0.remainder_radius < math.inf and np.abs(first.u[first.keep]).max(initial=0) * \
            radius > act0.remainder_radius:
        raise InputError(f"|u x| exceeds the remainder radius {act0.remainder_radius} of {act0.name}")
    B = np.full(n0, float(radius))
    e_prev = kappa = None
    rows_out = []
    for k in range(1, layout.num_layers + 1):
        name = names[k]
        shape = tuple(int(s) for s in shapes[name])
        act = activation(tgt.activations[k - 1])
        w, b = tgt.weights[k - 1], tgt.biases[k - 1]
        mask = ticket.masks[name].numpy()
        pre = np.zeros(shape[0])
        z_const = np.zeros(shape[0])
        rem_max = amp_max = 0.0
        for q0, v in iter_rows(dist, name, shape, seed):
            sl = slice(q0, q0 + v.shape[0])
            q = np.arange(sl.start, sl.stop)
            i, is_copy = rows_to_targets(k, layout, q)
            vm = np.where(mask[sl], v, 0.0).astype(np.float64)
            w_rows = np.where(is_copy[:, None], w[np.maximum(i, 0)], 0.0)
            b_rows = np.where(is_copy, b[np.maximum(i, 0)], 0.0)
            if k == 1:
                coef, rem, const, xdep = _first_terms(vm, first, layout, act0, mode, nonneg, radius, w_rows)
                rem_max = max(rem_max, float(rem.max(initial=0.0)))
                prop = 0.0
            else:
                nc = layout.copies(k - 1)
                copies = vm[:, :nc].reshape(len(q), -1, layout.rho)
                coef = np.abs(copies.sum(axis=2) - w_rows) @ B
                prop = np.abs(vm[:, :nc]) @ e_prev
                amp_max = max(amp_max, float(np.abs(copies).sum(axis=(1, 2)).max(initial=0.0)))
                const = vm[:, nc:] @ kappa
                xdep = np.abs(vm[:, :nc]).sum(axis=1) > 0
                rem = 0.0
            if (xdep & ~is_copy).any():
                raise InputError(f"constant neuron {int(q[xdep & ~is_copy][0])} of random layer {k + 1} reads an "
                                 f"input-dependent neuron: not an L+1 ticket")
            pre[sl] = coef + rem + prop + np.abs(const - b_rows)
            z_const[sl] = const
        nc = layout.copies(k)
        e = act.lipschitz * pre[:nc]
        B_next = abs(act.phi0) + act.lipschitz * (np.abs(w) @ B + np.abs(b))
        rows_out.append({"random_layer": k + 1, "max_pre_error": float(pre[:nc].max()), "max_error": float(e.max()),
                         "remainder": rem_max, "amplification": amp_max, "activation_bound": float(B_next.max())})
        B = B_next
        e_prev = e
        kappa = phi64(act, z_const[nc:])
    return LPlus1Bound(bound=float(e_prev.max()), radius=float(radius), layers=tuple(rows_out))


def _first_terms(vm: np.ndarray, first: FirstView, layout: Layout, act: Activation, mode: str, nonneg: bool,
                 radius: float, w_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per layer-2 row: coefficient error term, remainder term, constant pre-activation, reads-an-input flag."""
    n0, fr = layout.widths[0], layout.first_rho
    R = vm.shape[0]
    blk = vm[:, :n0 * fr].reshape(R, n0, fr)
    coef, rem, kept = first_block_terms(blk, first.u, first.keep, act, mode, nonneg, radius, w_rows)
    const = vm @ first.kappa
    xdep = (kept != 0).any(axis=(1, 2))
    if mode == "linear":
        const = const + act.phi0 * kept.sum(axis=(1, 2))  # phi(u x) = phi(0) + ...: the constant part of each input
    return coef, rem, const, xdep


# ----- structure -----------------------------------------------------------------------------------------------
def structure(ticket: Ticket) -> dict[str, Any]:
    """The L+1 structural invariants, read from the masks (Burkholz 2022, the construction's shape).

    Returns
    -------
    dict
        ``depth`` (random Linear layers) and ``target_depth``; ``univariate_first_layer`` (every copying
        neuron keeps at most one weight, from its own input or the constant coordinate); ``widths`` and
        ``expected_widths`` (``first_rho n_0 + const_rho const_groups``, ``rho (n_l + 1)``, ``n_L``);
        ``output_multiplicity`` (1 when the output layer has exactly ``n_L`` neurons); ``biases`` (random
        layers with a bias: none);
        ``copies_read_own_inputs`` (every kept weight of a copy of target neuron i comes from a copy of an input
        j with ``w_ij != 0`` or from a constant neuron; constant neurons read only constants).
    """
    if _is_conv(ticket):
        from strongticket.construct import lplus1_conv

        return lplus1_conv.structure(ticket)
    layout, _ = layout_of(ticket)
    tgt = _target_of(ticket)
    names = layer_names(ticket.spec)
    n0, fr = layout.widths[0], layout.first_rho
    m1 = ticket.masks[names[0]].numpy()
    allowed = np.zeros(m1.shape, dtype=bool)
    allowed[np.arange(n0 * fr), np.arange(n0 * fr) // fr] = True
    allowed[n0 * fr:, n0] = True
    own = True
    for k in range(1, layout.num_layers + 1):
        m = ticket.masks[names[k]].numpy()
        w = tgt.weights[k - 1]
        i, is_copy = rows_to_targets(k, layout, np.arange(m.shape[0]))
        group = fr if k == 1 else layout.rho
        n_in = m.shape[1] - (layout.const_total if k == 1 else layout.rho)
        blk = m[:, :n_in].reshape(m.shape[0], -1, group).any(axis=2)  # (rows, target inputs)
        ok_w = np.where(is_copy[:, None], w[np.maximum(i, 0)] != 0, False)
        own &= bool(not (blk & ~ok_w).any())
    return {
        "depth": len(names), "target_depth": layout.num_layers,
        "univariate_first_layer": bool(not (m1 & ~allowed).any() and (m1.sum(axis=1) <= 1).all()),
        "widths": [int(ticket.spec.parameter_shapes()[n][0]) for n in names],
        "expected_widths": [layout.rows(k) for k in range(layout.num_layers + 1)],
        "output_multiplicity": int(ticket.spec.parameter_shapes()[names[-1]][0] // layout.widths[-1]),
        "biases": [n for n in ticket.spec.parameter_shapes() if n.endswith(".bias")],
        "copies_read_own_inputs": own,
    }


__all__ = ["CONSTANT_TARGET", "LPLUS1_C", "LPlus1Bound", "LPlus1Target", "Layout", "MAX_CANDIDATES", "METHOD", "PAPER",
           "certified_bound", "construct", "counting_rho", "first_layer_mode", "first_layer_scales", "layer_names",
           "layout_of", "random_spec", "read_target", "structure", "theory_rho"]
