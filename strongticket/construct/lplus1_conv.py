"""Burkholz (2022), convolutional targets: a depth-(L+1) random CNN pruned into a sequential CNN target.

R. Burkholz, "Most Activation Functions Can Win the Lottery Without Excessive Depth", NeurIPS 2022
(arXiv 2205.02321), and its convolutional case, Burkholz, "Convolutional and Residual Networks Provably
Contain Lottery Tickets", ICML 2022 (Algorithm 2). The fully connected case, the activations and the
certified bound's recurrence are in :mod:`strongticket.construct.lplus1`; this module lays the same
construction out over channels and kernel taps (``docs/constructions.md``, section "Burkholz 2022").

Target: a ``Conv2d`` first, then ``Conv2d``, ``MaxPool2d``/``AvgPool2d`` (no activation of their own), one
``Flatten`` and ``Linear`` layers, each ``Conv2d``/``Linear`` with any activation of the registry.

Random network (no biases; a constant input channel of ones, ``NetSpec.input_constant_channel``):

* **copying layer**: a random ``1x1`` convolution with the first layer's activation; channel ``j*first_rho + r``
  keeps only its weight ``u[j, r]`` from input channel ``j``, and a constant block of ``const_rho *
  const_groups`` channels reads only the constant channel (output ``phi(u_c)`` at every pixel: a 1x1
  convolution has no padding, so these channels are constant up to the image's border);
* **random layer k + 1** for target ``Conv2d`` layer k (kernel ``k x k``, the target's stride and zero
  padding): ``rho`` copies of every target channel (``rows = rho (c_k + 1)``; the last layer has multiplicity 1
  and no constant channels). Kernel entry ``(j, p, q)`` of copy ``(i, m)`` is a subset sum over the previous
  layer's copies of channel ``j`` at the same tap (products ``phi'(0) v u`` or ``|u| v`` over the copying
  layer in layer 2, plain ``v`` after), exactly the fully connected instances with one input per
  ``(channel, tap)``;
* ``Pool`` and ``Flatten`` are copied (both act per channel: a copy of channel j stays a copy of channel j,
  and pooling a constant channel keeps it constant);
* a ``Linear`` after the ``Flatten`` of a ``C x H x W`` image reads ``C S`` target inputs (``S = H W``):
  copy ``(o, m)``'s weight from input ``(j, s)`` is a subset sum over the ``rho`` copies of channel ``j`` at
  position ``s``; later ``Linear`` layers are the fully connected case.

**Zero padding and the constant channels.** A constant channel is 1 (or ``phi(z)``) inside the image and,
being padded with zeros like every channel, 0 outside it: a bias spread over every kernel tap (the
reference code uses ``rho k^2`` candidates) is smaller at the image's border. Here every bias and every new
constant channel reads the constant channels through one tap only, the tap ``(padding, padding)`` that
reads inside the image at every output position (:func:`strongticket.construct.conv.bias_tap`; it exists
whenever ``padding <= (kernel_size - 1) / 2``, and a target with more padding is refused). The constant
channels are then exactly constant at every position, borders included, and the biases exact. When
``phi(0) != 0`` in the linear regime (sigmoid, softplus) a kept copying channel contributes ``phi(0) v`` where
its tap reads inside the image and 0 in the padding: that offset is cancelled tap by tap, by the constant
channels read through the same tap, which the padding switches off at the same positions; so it is exact
at the border as well.

Certified bound (:func:`certified_bound`): the fully connected recurrence with one term per (input channel,
tap) and per (constant channel, tap), an l_inf bound over ``|x|_inf <= R`` at every output position (a
position near the border drops terms, so it is bounded by the same sum).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket.construct import cnn_target
from strongticket.construct import conv as conv_kind
from strongticket.construct import lplus1_parts as parts
from strongticket.construct.lplus1_parts import (
    CHUNK_ELEMENTS,
    CONSTANT_TARGET,
    InstanceStats,
    Layout,
    LPlus1Bound,
    bias_selection,
    copy_selection,
    finish_ticket,
    first_block_terms,
    first_layer_distribution,
    first_selection,
    first_view,
    phi64,
    reference_constants,
    rows_to_targets,
)
from strongticket.errors import InputError
from strongticket.nets.activations import ACTIVATIONS, activation
from strongticket.nets.distributions import WeightDistribution
from strongticket.nets.spec import Conv2d, Flatten, Linear, NetSpec, Pool
from strongticket.nets.trace import TracedNet, trace_module
from strongticket.ticket import Ticket, recorded_target

#: ``provenance["lplus1"]["target_kind"]`` of a ticket built here.
KIND = "conv"

SUPPORTED = ("a sequential target of Conv2d first (square kernel, any stride, zero padding <= (kernel_size - 1) / "
             "2, groups=1, dilation=1), then Conv2d, MaxPool2d/AvgPool2d (no padding, no activation of their own), "
             f"one Flatten and Linear layers, with activations {ACTIVATIONS}")

# ----- target --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Stage:
    """One ``Conv2d`` or ``Linear`` target layer in the matrix view: one input per (channel, position).

    Attributes
    ----------
    index : int
        Position in the target's spec.
    layer : Conv2d or Linear
    weight : float64 array, shape (n_out, in_channels * positions)
        Column ``j * positions + t``: input channel ``j`` at kernel tap ``t = p k + q`` (Conv2d) or at flattened
        position ``t`` (a Linear after a Flatten); ``positions`` is 1 for a Linear after a Linear.
    bias : float64 array, shape (n_out,)
        Zeros for a layer without bias.
    in_channels, positions : int
    tap : int
        The position through which constant channels are read (Conv2d: the tap ``(padding, padding)``;
        Linear: position 0, every position of a constant channel holds the same value).
    per_tap : bool
        Conv2d: constants may be read through every tap (to cancel ``phi(0)`` offsets tap by tap).
    name : str
        The target's parameter name (for messages).
    """

    index: int
    layer: Conv2d | Linear
    weight: np.ndarray
    bias: np.ndarray
    in_channels: int
    positions: int
    tap: int
    per_tap: bool
    name: str

    @property
    def activation(self) -> str:
        return self.layer.activation


@dataclass(frozen=True, eq=False)
class ConvTarget:
    """A sequential CNN target read for the L+1 construction."""

    traced: TracedNet
    stages: tuple[Stage, ...]
    input_shape: tuple[int, ...]

    @property
    def widths(self) -> tuple[int, ...]:
        """``(c_0, c_1, ..., n_L)``: input channels, then every layer's output channels or features."""
        return (self.stages[0].in_channels,) + tuple(s.weight.shape[0] for s in self.stages)

    @property
    def num_params(self) -> int:
        return sum(int(t.numel()) for t in self.traced.state.values())


def is_conv_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None) -> bool:
    """True when ``target`` traces to a spec with a ``Conv2d`` layer (a CNN target, this module's case)."""
    traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    return any(isinstance(layer, Conv2d) for layer in traced.spec.layers)


def read_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None) -> ConvTarget:
    """Check a CNN target and read its layers in the matrix view.

    The checks every CNN construction makes (modules, trace, input shape, chaining, finite parameters, layer
    names) are :func:`strongticket.construct.cnn_target.read_layers`'s; this construction's own follow.

    Raises
    ------
    InputError
        One line: an unsupported module (named), no image input shape, a first layer that is not ``Conv2d``, an
        activation on a pooling or flattening layer, a convolution after the ``Flatten``, zero padding with no
        tap inside the image at every output position, non-finite weights or biases. Non-sequential targets
        are refused by the tracer.
    """
    read = cnn_target.read_layers(target, input_shape, who="lplus1", supported=SUPPORTED)
    traced, spec, shapes = read.traced, read.spec, read.shapes
    if len(spec.input_shape) != 3:
        raise InputError(f"lplus1: a convolutional target needs the shape of one input image (C, H, W), got "
                         f"{spec.input_shape}")
    layers = spec.layers
    if not isinstance(layers[0], Conv2d):
        raise InputError(f"lplus1: a convolutional target must start with Conv2d (its copying layer is a 1x1 "
                         f"convolution), got {type(layers[0]).__name__}")
    params = {p.index: p for p in read.params}
    stages: list[Stage] = []
    flat: tuple[int, int] | None = None  # (C, S) of the image the last Flatten flattened, for the next Linear
    seen_flatten = False
    for i, layer in enumerate(layers):
        where = read.names[i]
        if isinstance(layer, (Pool, Flatten)):
            if layer.activation != "identity":
                raise InputError(f"lplus1: activation {layer.activation!r} after {type(layer).__name__} layer {i} is "
                                 f"not supported; apply it before the pooling/flattening (ReLU commutes with max "
                                 f"pooling)")
            if isinstance(layer, Flatten):
                c, h, w = shapes[i]
                flat, seen_flatten = (c, h * w), True
            continue
        w = params[i].weight
        b = np.zeros(w.shape[0]) if params[i].bias is None else params[i].bias
        if isinstance(layer, Conv2d):
            if seen_flatten:
                raise InputError(f"lplus1: Conv2d layer {i} ({where}) after the Flatten is not supported")
            k = layer.kernel_size
            a = conv_kind.bias_tap(k, layer.stride, layer.padding, shapes[i][1:],
                                   where=f"lplus1: Conv2d layer {i} ({where})")
            stages.append(Stage(i, layer, np.ascontiguousarray(w.reshape(w.shape[0], -1)), b, layer.in_channels,
                                k * k, a * k + a, True, where))
        else:
            c, s = flat if flat is not None else (layer.in_features, 1)
            stages.append(Stage(i, layer, np.ascontiguousarray(w), b, c, s, 0, False, where))
            flat = None
    return ConvTarget(traced=traced, stages=tuple(stages), input_shape=tuple(spec.input_shape))


# ----- random network ------------------------------------------------------------------------------------------
def random_spec(target: ConvTarget, layout: Layout) -> tuple[NetSpec, list[str]]:
    """The depth-(L+1) random CNN and its weight names (copying layer first).

    A 1x1 ``Conv2d`` copying layer (the first layer's activation), then per target layer its random layer
    (``Conv2d`` with the target's kernel, stride and padding, or ``Linear``), ``Pool``/``Flatten`` copied; no
    biases; the constant channel of ones appended to the input.
    """
    by_index = {s.index: (k, s) for k, s in enumerate(target.stages, start=1)}
    c0 = layout.widths[0]
    layers: list = [Conv2d(c0 + 1, layout.rows(0), 1, activation=target.stages[0].activation)]
    names = ["layers.0.weight"]
    for i, layer in enumerate(target.traced.spec.layers):
        if i not in by_index:
            layers.append(layer)
            continue
        k, s = by_index[i]
        names.append(f"layers.{len(layers)}.weight")
        if isinstance(s.layer, Conv2d):
            layers.append(Conv2d(layout.rows(k - 1), layout.rows(k), s.layer.kernel_size, stride=s.layer.stride,
                                 padding=s.layer.padding, activation=s.activation))
        else:
            layers.append(Linear(layout.rows(k - 1) * s.positions, layout.rows(k), activation=s.activation))
    return NetSpec(tuple(layers), input_shape=target.input_shape, input_constant_channel=True), names


@dataclass(frozen=True, eq=False)
class ColumnMap:
    """Where random layer ``k + 1`` reads each target input's copies and the constant channels.

    A row of the random weight, flattened, has column ``channel * positions + t`` (a Conv2d kernel
    ``(channel, p, q)`` with ``t = p k + q``; a Linear after a Flatten ``channel * S + s``).

    Attributes
    ----------
    copies : int array, shape (J, m)
        Column of copy ``r`` of target input ``J = j * positions + t``.
    copy_channel : int array, shape (J, m)
        Previous-layer channel of that copy (``j m + r``).
    constants : int array, shape (T, c)
        Per constant group (a tap of a Conv2d; one group for a Linear), the column of each constant channel.
    safe : int
        The group of biases and new constant channels.
    """

    copies: np.ndarray
    copy_channel: np.ndarray
    constants: np.ndarray
    safe: int


def column_map(stage: Stage, layout: Layout, k: int) -> ColumnMap:
    """The :class:`ColumnMap` of random layer ``k + 1`` (``k >= 1``) for target layer ``stage``."""
    m = layout.first_rho if k == 1 else layout.rho
    C, P = stage.in_channels, stage.positions
    ch = np.arange(C)[:, None] * m + np.arange(m)[None, :]  # (C, m)
    copies = ch[:, None, :] * P + np.arange(P)[None, :, None]  # (C, P, m)
    base = C * m
    const = np.arange(base, layout.rows(k - 1))
    if stage.per_tap:
        constants = const[None, :] * P + np.arange(P)[:, None]  # (P, c)
        safe = stage.tap
    else:
        constants = (const * P + stage.tap)[None, :]
        safe = 0
    return ColumnMap(copies=copies.reshape(C * P, m), copy_channel=np.repeat(ch, P, axis=0),
                     constants=constants, safe=safe)


def _rows(dist: WeightDistribution, name: str, shape: tuple[int, ...], seed: int, fan_in: int):
    """``(first row, float32 chunk (R, cols))`` of a random layer, regenerated bit for bit in bounded memory."""
    cols = math.prod(shape[1:])
    q0 = 0
    for chunk in dist.iter_rows(name, shape, seed, fan_in=fan_in, chunk_elements=max(cols, CHUNK_ELEMENTS)):
        c = chunk.numpy().reshape(-1, cols)
        yield q0, c
        q0 += c.shape[0]


def _first_layer(layout: Layout, act, w1: np.ndarray, mask1: np.ndarray):
    """:func:`strongticket.construct.lplus1.first_view` of the 1x1 copying convolution."""
    return first_view(layout, act, w1.reshape(w1.shape[0], -1), mask1.reshape(mask1.shape[0], -1))


# ----- construction --------------------------------------------------------------------------------------------
def construct(tgt: ConvTarget, *, eps: float, delta: float, rho: int, first_rho: int, const_rho: int,
              const_groups: int | None, seed: int, base: WeightDistribution, first_scale: float | str | None,
              solver: str, objective: str, time_limit: float | None, strict: bool, nonneg_input: bool,
              radius: float, record_target: bool,
              reference_first_layer: bool, log: Callable[[str], None], theory: int, need: int) -> Ticket:
    """The CNN case of :func:`strongticket.construct.lplus1.construct` (which checks the options and calls it).

    Returns a :class:`~strongticket.ticket.Ticket` with the provenance of the fully connected case plus
    ``lplus1.target_kind = "conv"``; see the module docstring for the layout.
    """
    start = time.perf_counter()
    act0 = activation(tgt.stages[0].activation)
    mode = parts.first_layer_mode(act0)
    s0 = tgt.stages[0]
    if reference_first_layer and mode == "linear":
        first_scale = None  # the reference code draws one law for every layer
        const_groups = 1 if const_groups is None else const_groups  # and cancels no phi(0) offset
    # the offset phi(0) sum v of one tap sums over the copy's kept neurons of every input channel at that tap
    nnz_max = int(max(np.count_nonzero(s0.weight.reshape(s0.weight.shape[0], s0.in_channels, s0.positions),
                                       axis=1).max(initial=0), 1))
    const_groups = parts.constant_groups(act0, mode, nnz_max, const_rho) if const_groups is None else const_groups
    layout = Layout(tgt.widths, rho, first_rho, const_rho, const_groups)
    spec, names = random_spec(tgt, layout)
    shapes = spec.parameter_shapes()
    dist, lam1, lam2, scale_rule, law_bound = first_layer_distribution(base, act0, mode, first_scale, eps, radius,
                                                                       names)
    opts = {"solver": solver, "objective": objective, "eps": eps, "time_limit": time_limit}
    L = layout.num_layers
    c0, fr = layout.widths[0], first_rho

    t0 = time.perf_counter()
    w1 = dist.tensor(names[0], shapes[names[0]], seed, fan_in=spec.fan_in(names[0])).numpy()
    full_keep = _copying_pattern(layout)
    first = _first_layer(layout, act0, w1, full_keep)
    kappa_assumed, kappa_true = reference_constants(first.kappa, w1[c0 * fr:, c0, 0, 0], act0, mode,
                                                    reference_first_layer)
    gen_seconds = time.perf_counter() - t0
    masks: dict[str, torch.Tensor] = {}
    records: list[dict[str, Any]] = []
    used = np.zeros(layout.rows(0), dtype=bool)
    kappa_prev = None
    for k, stage in enumerate(tgt.stages, start=1):
        name = names[k]
        shape = tuple(int(s) for s in shapes[name])
        act = activation(stage.activation)
        cmap = column_map(stage, layout, k)
        mask = np.zeros((shape[0], math.prod(shape[1:])), dtype=bool)
        z_const = np.zeros(shape[0])
        wstats, bstats, cstats = InstanceStats(), InstanceStats(), InstanceStats()
        offsets_seen, reserve_rows = 0.0, 0
        u_cols = np.repeat(first.u, stage.positions, axis=0) if k == 1 else None
        kappa_c = (kappa_assumed if k == 1 else None, kappa_true if k == 1 else None)
        log(f"layer {k + 1}/{L + 1}: {type(stage.layer).__name__} {shape} for target layer {k} "
            f"({stage.weight.shape[1]} inputs -> {stage.weight.shape[0]})")
        tg = time.perf_counter()
        for q0, v in _rows(dist, name, shape, seed, spec.fan_in(name)):
            gen_seconds += time.perf_counter() - tg
            R = v.shape[0]
            q = np.arange(q0, q0 + R)
            i, is_copy = rows_to_targets(k, layout, q)
            w_rows = np.where(is_copy[:, None], stage.weight[np.maximum(i, 0)], 0.0)
            v3 = v[:, cmap.copies]  # (R, J, m)
            if k == 1:
                sel = first_selection(v3, w_rows, u_cols, act0, mode, nonneg_input, wstats, opts,
                                      reference=reference_first_layer)
            else:
                sel = copy_selection(v3, w_rows, wstats, opts)
            chunk = mask[q0:q0 + R]
            chunk[:, cmap.copies] = sel
            groups = cmap.constants.shape[0]
            offset = np.zeros((R, groups))
            if k == 1 and mode == "linear" and act0.phi0 != 0 and not reference_first_layer:
                per = np.where(sel, v3, 0.0).astype(np.float64).reshape(R, stage.in_channels, stage.positions, -1)
                offset = act0.phi0 * per.sum(axis=(1, 3))  # per tap: the padding switches it off with the tap
            if k == 1:
                assumed, true = kappa_c[0][c0 * fr:], kappa_c[1][c0 * fr:]
            else:
                assumed = true = kappa_prev
            rss = layout.const_rho if k == 1 else len(assumed)
            reserve = k == 1 and layout.const_groups > 1
            for t in range(groups):
                safe = t == cmap.safe
                bt = np.where(is_copy, (stage.bias[np.maximum(i, 0)] if safe else 0.0) - offset[:, t],
                              CONSTANT_TARGET if safe else 0.0)
                if not safe and not np.any(bt[is_copy] != 0):
                    continue  # no offset through this tap: nothing to build
                cand = v[:, cmap.constants[t]].astype(np.float64) * assumed[None]
                if reserve:
                    offsets_seen = max(offsets_seen, float(np.abs(offset[is_copy, t]).max(initial=0.0)))
                bsel, used_reserve = bias_selection(bt, cand, is_copy, ~is_copy if safe else np.zeros(R, bool),
                                                    rss, bstats, cstats, opts, reserve=reserve)
                chunk[:, cmap.constants[t]] |= bsel
                reserve_rows += used_reserve
                if safe:
                    true_cand = v[:, cmap.constants[t]].astype(np.float64) * true[None]
                    z_const[q] = np.where(bsel, true_cand, 0.0).sum(axis=1)
            tg = time.perf_counter()
        if k == 1:
            used = mask.reshape(shape[0], shape[1], -1).any(axis=(0, 2))
        kappa_prev = phi64(act, z_const[layout.copies(k):]) if k < L else None
        masks[name] = torch.from_numpy(mask.reshape(shape))
        records.append({"random_layer": k + 1, "name": name, "shape": list(shape), "activation": act.name,
                        "target_layer": k, "kind": type(stage.layer).__name__, "multiplicity": layout.multiplicity(k),
                        "positions": stage.positions, "constant_tap": stage.tap,
                        "weights": wstats.record(), "biases": bstats.record(), "constants": cstats.record(),
                        "kept": int(mask.sum())})
        if k == 1 and layout.const_groups > 1:
            records[-1]["constant_offsets"] = {"max_abs": offsets_seen, "rows_using_reserve": reserve_rows}
    keep1 = full_keep & used[:, None]
    if reference_first_layer and mode == "linear" and act0.phi0 != 0:
        keep1[c0 * fr:, c0] = False  # the reference's constant neurons have no input: they output phi(0)
    masks[names[0]] = torch.from_numpy(keep1.reshape(shapes[names[0]]))
    masks = {n: masks[n] for n in names}
    info = {**layout.to_dict(), "target_kind": KIND, "first_layer_mode": mode, "copy_activation": act0.name,
            "reference_first_layer": reference_first_layer,
            "first_scale": {"rule": scale_rule, "lambda1": lam1, "lambda2": lam2, "law_bound": law_bound},
            "constant_target": CONSTANT_TARGET, "theory_rho": theory, "theory_C": parts.LPLUS1_C,
            "counting_rho": need, "constant_taps": [s.tap for s in tgt.stages]}
    return finish_ticket(spec, dist, seed, masks, records, info, tgt.traced, widths=tgt.widths,
                         num_params=tgt.num_params, eps=eps, delta=delta, rho=rho, theory=theory, objective=objective,
                         solver=solver, nonneg_input=nonneg_input, record_target=record_target,
                         certify=lambda t: certified_bound(t, tgt, radius=radius, nonneg_input=nonneg_input),
                         radius=radius, gen_seconds=gen_seconds, start=start, strict=strict, say=log)


def _copying_pattern(layout: Layout) -> np.ndarray:
    """``(rows_0, c_0 + 1)`` bool: the weights a univariate copying layer may keep."""
    c0, fr = layout.widths[0], layout.first_rho
    keep = np.zeros((layout.rows(0), c0 + 1), dtype=bool)
    keep[np.arange(c0 * fr), np.arange(c0 * fr) // fr] = True
    keep[c0 * fr:, c0] = True
    return keep


# ----- certified bound -----------------------------------------------------------------------------------------
def _target_of(ticket: Ticket) -> ConvTarget:
    return read_target(recorded_target(ticket))


def certified_bound(ticket: Ticket, target: nn.Module | TracedNet | ConvTarget | None = None, *,
                    radius: float = 1.0, nonneg_input: bool | None = None) -> LPlus1Bound:
    """Certified l_inf error bound of a CNN L+1 ticket, from its regenerated weights and masks.

    The recurrence of :func:`strongticket.construct.lplus1.certified_bound` with one term per (input channel,
    position) and, for the constant part, one per constant group (tap): the pre-activation error of copy
    ``(i, m)`` at any output position is at most ``sum_(j,t) |A - w| B_j + sum |v| e + sum_t |c_t - b_t|`` with
    ``c_t`` what the constant channels (and, with ``phi(0) != 0``, the copying channels' ``phi(0) v``) add
    through tap ``t`` and ``b_t`` the bias on the constant tap, 0 elsewhere; at the border a tap reading padding
    drops its terms on both sides, so the same sum bounds it.

    Raises
    ------
    InputError
        Not a CNN L+1 ticket; a copying layer that is not univariate; a constant channel that reads a copy or
        a tap other than the one inside the image at every position (it would not be constant at the border).
    """
    layout, mode = parts.layout_of(ticket)
    tgt = target if isinstance(target, ConvTarget) else (_target_of(ticket) if target is None
                                                        else read_target(target, ticket.spec.input_shape))
    if tgt.widths != layout.widths:
        raise InputError(f"the ticket was built for widths {layout.widths}, the target has {tgt.widths}")
    nonneg = bool(ticket.provenance.get("nonneg_input", False)) if nonneg_input is None else nonneg_input
    _, names = random_spec(tgt, layout)
    shapes = ticket.spec.parameter_shapes()
    dist, seed = ticket.distribution, ticket.seed
    act0 = activation(tgt.stages[0].activation)
    m1 = ticket.masks[names[0]].numpy().reshape(layout.rows(0), -1)
    if (m1 & ~_copying_pattern(layout)).any():
        raise InputError("the copying layer keeps a weight outside its univariate pattern: not an L+1 ticket")
    w1 = dist.tensor(names[0], shapes[names[0]], seed).numpy()
    first = _first_layer(layout, act0, w1, m1)
    if mode == "linear" and act0.remainder_radius < math.inf and \
            np.abs(first.u[first.keep]).max(initial=0) * radius > act0.remainder_radius:
        raise InputError(f"|u x| exceeds the remainder radius {act0.remainder_radius} of {act0.name}")
    B = np.full(layout.widths[0], float(radius))
    e_prev = kappa = None
    rows_out = []
    for k, stage in enumerate(tgt.stages, start=1):
        name = names[k]
        shape = tuple(int(s) for s in shapes[name])
        act = activation(stage.activation)
        cmap = column_map(stage, layout, k)
        mask = ticket.masks[name].numpy().reshape(shape[0], -1)
        P = stage.positions
        B_cols = np.repeat(B, P)
        pre = np.zeros(shape[0])
        z_const = np.zeros(shape[0])
        rem_max = amp_max = 0.0
        if k == 1:
            u_cols, keep_cols = np.repeat(first.u, P, axis=0), np.repeat(first.keep, P, axis=0)
            kappa_copies = np.repeat(first.kappa[:layout.widths[0] * layout.first_rho].reshape(-1, layout.first_rho),
                                     P, axis=0)  # phi(0) for a copying channel whose input weight is pruned
            kappa_const = first.kappa[layout.widths[0] * layout.first_rho:]
        else:
            kappa_const = kappa
        for q0, v in _rows(dist, name, shape, seed, ticket.spec.fan_in(name)):
            R = v.shape[0]
            q = np.arange(q0, q0 + R)
            i, is_copy = rows_to_targets(k, layout, q)
            vm = np.where(mask[q0:q0 + R], v, 0.0).astype(np.float64)
            w_rows = np.where(is_copy[:, None], stage.weight[np.maximum(i, 0)], 0.0)
            b_rows = np.where(is_copy, stage.bias[np.maximum(i, 0)], 0.0)
            blk = vm[:, cmap.copies]  # (R, J, m)
            const_t = vm[:, cmap.constants] @ kappa_const  # (R, T)
            if k == 1:
                coef, rem, kept = first_block_terms(blk, u_cols, keep_cols, act0, mode, nonneg, radius, w_rows)
                dead = np.where(keep_cols[None], 0.0, blk) * kappa_copies[None]
                per_tap = dead.reshape(R, stage.in_channels, P, -1).sum(axis=(1, 3))
                if mode == "linear":
                    per_tap = per_tap + act0.phi0 * kept.reshape(R, stage.in_channels, P, -1).sum(axis=(1, 3))
                xdep = (kept != 0).any(axis=(1, 2))
                prop = 0.0
                rem_max = max(rem_max, float(rem.max(initial=0.0)))
            else:
                coef = np.abs(blk.sum(axis=2) - w_rows) @ B_cols
                prop = (np.abs(blk) * e_prev[cmap.copy_channel][None]).sum(axis=(1, 2))
                amp_max = max(amp_max, float(np.abs(blk).sum(axis=(1, 2)).max(initial=0.0)))
                per_tap = np.zeros((R, P))
                xdep = (blk != 0).any(axis=(1, 2))
                rem = 0.0
            if stage.per_tap:
                const_t = const_t + per_tap
            else:
                const_t = const_t + per_tap.sum(axis=1, keepdims=True)
            if (xdep & ~is_copy).any():
                raise InputError(f"constant channel {int(q[xdep & ~is_copy][0])} of random layer {k + 1} reads an "
                                 f"input-dependent channel: not an L+1 ticket")
            off_tap = np.delete(vm[:, cmap.constants], cmap.safe, axis=1)
            if (off_tap[~is_copy] != 0).any():
                raise InputError(f"a constant channel of random layer {k + 1} reads the constant channels through a "
                                 f"tap that reads padding at the border: it is not constant there")
            target_t = np.zeros(const_t.shape)
            target_t[:, cmap.safe] = b_rows
            pre[q] = coef + rem + prop + np.abs(const_t - target_t).sum(axis=1)
            z_const[q] = const_t[:, cmap.safe]
        nc = layout.copies(k)
        e = act.lipschitz * pre[:nc]
        B_next = abs(act.phi0) + act.lipschitz * (np.abs(stage.weight) @ B_cols + np.abs(stage.bias))
        rows_out.append({"random_layer": k + 1, "max_pre_error": float(pre[:nc].max()), "max_error": float(e.max()),
                         "remainder": rem_max, "amplification": amp_max, "activation_bound": float(B_next.max())})
        B = B_next
        e_prev = e
        kappa = phi64(act, z_const[nc:])
    return LPlus1Bound(bound=float(e_prev.max()), radius=float(radius), layers=tuple(rows_out))


# ----- structure -----------------------------------------------------------------------------------------------
def structure(ticket: Ticket) -> dict[str, Any]:
    """The L+1 structural invariants of a CNN ticket, read from the masks.

    The keys of :func:`strongticket.construct.lplus1.structure` plus ``constants_on_inner_tap``: every kept
    weight of a constant channel, and every bias weight, reads the constant channels through the tap that
    reads inside the image at every output position (so the constants are exact at the border).
    """
    layout, mode = parts.layout_of(ticket)
    tgt = _target_of(ticket)
    _, names = random_spec(tgt, layout)
    shapes = ticket.spec.parameter_shapes()
    m1 = ticket.masks[names[0]].numpy().reshape(layout.rows(0), -1)
    own, inner = True, True
    phi0_offsets = mode == "linear" and activation(tgt.stages[0].activation).phi0 != 0 \
        and not ticket.provenance["lplus1"].get("reference_first_layer", False)
    for k, stage in enumerate(tgt.stages, start=1):
        mask = ticket.masks[names[k]].numpy().reshape(shapes[names[k]][0], -1)
        cmap = column_map(stage, layout, k)
        i, is_copy = rows_to_targets(k, layout, np.arange(mask.shape[0]))
        blk = mask[:, cmap.copies].any(axis=2)  # (rows, J)
        ok_w = np.where(is_copy[:, None], stage.weight[np.maximum(i, 0)] != 0, False)
        own &= bool(not (blk & ~ok_w).any())
        counted = np.zeros(mask.shape[1], dtype=bool)
        counted[cmap.copies.reshape(-1)] = True
        counted[cmap.constants.reshape(-1)] = True
        own &= bool(not mask[:, ~counted].any())  # nothing outside the copies and constants
        off = np.delete(mask[:, cmap.constants], cmap.safe, axis=1)
        # copies may read other taps only to cancel phi(0) offsets tap by tap (copying layer, phi(0) != 0)
        inner &= bool(not off[~is_copy].any()) and (bool(not off.any()) or (k == 1 and phi0_offsets))
    return {
        "depth": len(names), "target_depth": layout.num_layers,
        "univariate_first_layer": bool(not (m1 & ~_copying_pattern(layout)).any() and (m1.sum(axis=1) <= 1).all()),
        "widths": [int(shapes[n][0]) for n in names],
        "expected_widths": [layout.rows(k) for k in range(layout.num_layers + 1)],
        "output_multiplicity": int(shapes[names[-1]][0] // layout.widths[-1]),
        "biases": [n for n in shapes if n.endswith(".bias")],
        "copies_read_own_inputs": own,
        "constants_on_inner_tap": inner,
    }


__all__ = ["ColumnMap", "ConvTarget", "KIND", "Stage", "certified_bound", "column_map", "construct",
           "is_conv_target", "random_spec", "read_target", "structure"]
