"""Structured strong tickets (da Cunha, d'Amore, Natale 2023): whole kernel slices or filters kept or removed.

A. da Cunha, F. d'Amore, E. Natale, "Polynomially Over-Parameterized Convolutional Neural Networks Contain
Structured Strong Winning Lottery Tickets", NeurIPS 2023 (arXiv 2311.09858). See ``docs/constructions.md``.

Theorem (as recalled; the full text was not available to us): random CNNs with normally distributed weights
contain, with high probability, *structured* subnetworks (whole kernels and filters removed, never single
kernel entries) that approximate every sufficiently smaller CNN, with a polynomial over-parameterisation; the
proof rests on a multidimensional random subset sum (MRSS, Becchetti et al. 2022) for "normally-scaled normal"
samples, a scalar normal times a normal vector, whose coordinates are dependent.

Construction, per target layer, on the random pair of the 2L CNN construction (da Cunha, Natale, Viennot 2022,
:mod:`strongticket.construct.cnn2l`: the same random network layout), all weights N(0, 1). Every layer kind is
read as a **slice view** ``K[t, j, :]``: output ``t``, input channel ``j``, a slice of ``D0`` entries that the
intermediate channels of ``j`` reach through one shared weight ``u``:

* ``Conv2d`` (``c_out x c_in x k x k``): a 1x1 conv ``U`` to ``H c_in`` channels + ReLU, then a kxk conv ``V``;
  the slice is a kxk kernel, ``D0 = k^2``.
* ``Linear`` after a ``Flatten`` of a ``C x S`` map: the layout of :mod:`strongticket.construct.flatten_linear`
  (a random 1x1 conv + ReLU *before* the Flatten, a random Linear after it), i.e. a convolution whose kernel
  covers the whole map: the slice of (output ``o``, channel ``j``) is its ``S`` positions, ``D0 = S``. Chosen
  because it is exact (derivation in that module), reuses the CNN reading of the theorem unchanged (the
  Linear *is* a ``H_s x W_s`` convolution on an ``H_s x W_s`` map), and its first layer has ``H C^2`` weights
  where a fully connected block would need ``H (C S)^2``.
* any other ``Linear`` (``d_out x d_in``): a 1x1 conv on a 1x1 map: a univariate random ``Linear(d_in, H d_in)``
  + ReLU, then ``Linear(H d_in, d_out)``; the slice is one weight, ``D0 = 1`` (kernel granularity is then the
  scalar random subset sum; a group or filter keeps a whole hidden neuron for several outputs).

``U`` is pruned to univariate channels: intermediate channel ``h = j H + r`` keeps ``u[j, r] = U[h, j]`` only
(whole 1x1 kernels removed). By positive homogeneity of ReLU it carries ``u relu(X_j)`` (u > 0) or
``|u| relu(-X_j)`` (u < 0); since ``X = relu(X) - relu(-X)``, the channels with ``u > 0`` must sum to ``K``
and those with ``u < 0`` to ``-K`` (one side only for inputs known to be >= 0: images in [0, 1], maps
after a ReLU, the constant channel).

**Granularity by one parameter, the group size g** (outputs that share one subset): for input channel ``j``,
output group ``G`` and side, one subset ``S`` of the side's channels keeps the whole slices ``V[t, jH + r, :]``
for ``t in G``, ``r in S``: an MRSS instance in dimension ``D0 |G|`` over the samples
``|u[j, r]| V[G, jH + r, :]`` with target ``+-K[G, j, :]``. ``g = 1`` is **kernel** granularity (dimension
``D0``), ``g = c_out`` is **filter** granularity (dimension ``D0 c_out'``: an intermediate channel is kept for
every output or for none, so pruned channels disappear and :meth:`strongticket.ticket.Ticket.compact` yields a
smaller dense network), and groups of ``g`` consecutive outputs lie in between (``g`` must divide every
layer's ``c_out``).

**Biases** ride on a constant channel, as in :mod:`strongticket.construct.cnn2l` (same reading of the target,
:func:`strongticket.construct.cnn2l.read_cnn_target`): a channel of ones beside the input image is input
channel ``c_in`` of the first layer; a conv bias sits on the one tap that every output position reads inside
the image (tap ``(p, p)``, exact at the zero-padding borders, :func:`strongticket.construct.conv.bias_tap`); a
non-final layer gets one more output that reproduces the constant for the layers after; after a Flatten the
constant channel is one more channel of the 1x1 conv (bias on its first position), and a Linear's constant
is its last input. The constant input channel is >= 0, so only its ``u > 0`` side is built. Its slices are
ordinary instances (the bias on one entry, zeros on the others), so the bias error is bounded by ``eps``
like any entry. Groups: the constant output has its own group at kernel and group granularity, and joins the
one filter at filter granularity (so a filter ticket still keeps every intermediate channel for all outputs
or none).

Instances are solved by :func:`strongticket.subsetsum.mrss_search.mrss_search` (any number of candidates), in
the l_inf norm over the slice entries: ``eps`` is the error allowed per weight, as for the unstructured
constructions. Every instance's error is reported, with the counting lower bound: ``2^n`` subset sums cover
``[-1, 1]^D`` at l_inf error ``eps`` only if ``n >= D log2(1/eps)``.

Scope: the sequential targets of :mod:`strongticket.construct.cnn2l` (Conv2d with square kernels and zero
padding, pooling, Flatten, Linear, biases), with ReLU or identity activations.
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

from strongticket import __version__
from strongticket.construct import cnn2l
from strongticket.construct.blocks import first_layer_diagonal
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.spec import Conv2d
from strongticket.nets.trace import TracedNet
from strongticket.subsetsum import mrss_search as search
from strongticket.ticket import Ticket, fingerprint

METHOD = "structured2023"
PAPER = "da Cunha, d'Amore, Natale, NeurIPS 2023"
GRANULARITIES = ("kernel", "group", "filter")
SEARCH_OPTIONS = ("group", "steps", "restarts", "beam", "time_limit")


def group_size(granularity: str, c_out: int, group: int | None) -> int:
    """Outputs per shared subset: 1 (kernel), ``c_out`` (filter) or ``group`` (must divide ``c_out``).

    Raises
    ------
    InputError
        Unknown granularity, a missing or bad ``group``, or a ``group`` that does not divide ``c_out``.
    """
    if granularity not in GRANULARITIES:
        raise InputError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    if granularity == "kernel":
        return 1
    if granularity == "filter":
        return c_out
    if isinstance(group, bool) or not isinstance(group, (int, np.integer)) or group < 1:
        raise InputError(f"granularity 'group' needs group (outputs per shared subset) >= 1, got {group!r}")
    if c_out % int(group):
        raise InputError(f"group must divide the layer's {c_out} output channels, got group={group} "
                         f"(divisors: {[g for g in range(1, c_out + 1) if c_out % g == 0]})")
    return int(group)


def output_groups(c_out: int, granularity: str, group: int | None, *, constant_out: bool) -> list[np.ndarray]:
    """The output indices that share one subset, as a list of int arrays covering ``range(c_out')``.

    ``c_out`` counts the target's own outputs; with ``constant_out`` output ``c_out`` (the constant channel for
    the layers after) is added: its own group at kernel and group granularity, part of the one filter at
    filter granularity.
    """
    g = group_size(granularity, c_out, group)
    if granularity == "filter":
        return [np.arange(c_out + int(constant_out))]
    groups = [np.arange(a, a + g) for a in range(0, c_out, g)]
    if constant_out:
        groups.append(np.array([c_out]))
    return groups


def counting_bound(dim: int, eps: float) -> float:
    """Candidates needed by counting: ``2^n`` sums cover ``[-1, 1]^dim`` within ``eps`` (l_inf) only if
    ``n >= dim log2(1/eps)``."""
    return dim * math.log2(1.0 / eps)


@dataclass(frozen=True, eq=False)
class SliceView:
    """One target layer as structured instances see it.

    Attributes
    ----------
    kind : str
        ``"conv2d"``, ``"flatten_linear"`` (a Linear after a Flatten, realised by a 1x1 conv before it) or
        ``"linear"``.
    kernel : float64 array, shape (c_out', c_in', D0)
        What the pair must realise, per (output, input channel) slice; constant channel included.
    c_out : int
        The target's own outputs (without the constant output).
    constant_in, constant_out : bool
        The last input channel is the constant one; the last output reproduces it for the layers after.
    negative_side : bool
        The layer's input may be negative (both sides built, except for the constant channel).
    """

    kind: str
    kernel: np.ndarray
    c_out: int
    constant_in: bool
    constant_out: bool
    negative_side: bool

    @property
    def slice_size(self) -> int:
        """``D0``: entries per slice (``k^2``, ``S`` or 1)."""
        return int(self.kernel.shape[2])

    def slices_mask(self, keep: np.ndarray, second_shape: tuple[int, ...]) -> np.ndarray:
        """Slice choices ``(c_out', c_in', H)`` -> the second random layer's mask, every kept slice whole."""
        c_out, c_in, H = keep.shape
        return np.repeat(keep.reshape(c_out, c_in * H, 1), self.slice_size, axis=2).reshape(second_shape)


def slice_view(p: cnn2l.TargetLayer, constant: bool) -> SliceView:
    """The slice view of one layer read by :func:`strongticket.construct.cnn2l.read_cnn_target`."""
    k = p.kernel
    if isinstance(p.layer, Conv2d):
        kind, kern = "conv2d", k.reshape(k.shape[0], k.shape[1], -1)
    elif p.flat_input is not None:
        c = p.flat_input[0]
        kind, kern = "flatten_linear", k.reshape(k.shape[0], c, -1)
    else:
        kind, kern = "linear", k.reshape(k.shape[0], k.shape[1], 1)
    return SliceView(kind=kind, kernel=np.ascontiguousarray(kern, dtype=np.float64), c_out=int(p.weight.shape[0]),
                     constant_in=bool(constant), constant_out=bool(p.constant_out),
                     negative_side=bool(p.negative_side))


def second_as_slices(v: np.ndarray, c_in: int, H: int, slice_size: int) -> np.ndarray:
    """The second random layer (any of the three kinds) as ``(c_out', c_in', H, D0)``: slice of channel ``jH + r``.

    Conv ``(c_out, H c_in, k, k)``, flattened Linear ``(d_out, H C S)`` (order ``(jH + r) S + s``) and Linear
    ``(d_out, H d_in)`` all store channel ``jH + r``'s slice contiguously, so one reshape does.
    """
    return np.asarray(v).reshape(v.shape[0], c_in, H, slice_size)


def solve_pair(kernel: np.ndarray, u: np.ndarray, second: np.ndarray, groups: list[np.ndarray], eps: float, *,
               negative: np.ndarray, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Choose, per (input channel, output group, side), the intermediate channels whose whole slices are kept.

    Parameters
    ----------
    kernel : float64 (c_out, c_in, D0)
        Target slices.
    u : float (c_in, H)
        ``u[j, r] = U[jH + r, j]``.
    second : float (c_out, c_in, H, D0)
        ``V`` as slices (:func:`second_as_slices`).
    groups : list of int arrays
        Output groups covering ``range(c_out)`` (:func:`output_groups`).
    eps : float
        Error allowed per entry.
    negative : bool array (c_in,)
        Build the ``u < 0`` side for input channel ``j`` (its input may be negative).
    seed : int
        Seed of the search.
    options : dict
        ``group``, ``steps``, ``restarts``, ``beam``, ``time_limit`` of
        :func:`strongticket.subsetsum.mrss_search.mrss_search`.

    Returns
    -------
    dict
        ``mask1`` bool (H c_in, c_in), ``keep`` bool (c_out, c_in, H) (slice of channel ``jH + r`` kept for
        output ``t``), ``errors_pos``/``errors_neg`` float64 (c_out, c_in): the l_inf error of the instance
        each slice belongs to (0 where a side is not built), ``instances`` (list of per-instance dicts:
        input, group, side, n, error).
    """
    c_out, c_in, d0 = kernel.shape
    H = u.shape[1]
    mask1 = np.zeros((H * c_in, c_in), dtype=bool)
    keep = np.zeros((c_out, c_in, H), dtype=bool)
    errors = [np.zeros((c_out, c_in)), np.zeros((c_out, c_in))]
    records = []
    by_size: dict[int, list[int]] = {}
    for gi, g in enumerate(groups):
        by_size.setdefault(len(g), []).append(gi)
    for j in range(c_in):
        for side in ((0, 1) if negative[j] else (0,)):
            chan = np.flatnonzero(u[j] > 0 if side == 0 else u[j] < 0)
            sign = 1.0 if side == 0 else -1.0
            scale = np.abs(u[j, chan]).astype(np.float64)
            for size, members in by_size.items():
                outs = np.stack([groups[gi] for gi in members])  # (G, size)
                target = sign * kernel[outs, j].reshape(len(members), size * d0)
                if chan.size == 0:
                    err = np.abs(target).max(axis=1)
                    sel = np.zeros((len(members), 0), dtype=bool)
                else:
                    # sample r of a group: |u[j, r]| V[group, jH + r, :], flattened output-major
                    v = second[outs, j][:, :, chan].astype(np.float64)  # (G, size, n, D0)
                    cand = scale[None, :, None] * np.transpose(v, (0, 2, 1, 3)).reshape(len(members), chan.size,
                                                                                         size * d0)
                    res = search.mrss_search(cand, target, "linf", seed=seed + 7919 * j + side + 104723 * size,
                                             eps=eps, **options)
                    sel, err = res.selection, res.errors
                for row, gi in enumerate(members):
                    kept = chan[sel[row]] if chan.size else chan
                    outs_g = groups[gi]
                    keep[np.ix_(outs_g, [j], kept)] = True
                    mask1[j * H + kept, j] = True
                    errors[side][outs_g, j] = err[row]
                    records.append({"input": j, "group": gi, "side": "+-"[side], "n": int(chan.size),
                                    "dimension": int(size * d0), "error": float(err[row])})
    return {"mask1": mask1, "keep": keep, "errors_pos": errors[0], "errors_neg": errors[1], "instances": records}


def read_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None, nonneg_input: bool
                ) -> cnn2l.CNNTarget:
    """The target as :func:`strongticket.construct.cnn2l.read_cnn_target` reads it, errors named ``structured``."""
    try:
        return cnn2l.read_cnn_target(target, input_shape, nonneg_input=nonneg_input)
    except InputError as exc:
        msg = str(exc)
        raise InputError("structured: " + (msg[len("cnn2l: "):] if msg.startswith("cnn2l: ") else msg)) from None


def construct(
    target: nn.Module | TracedNet,
    *,
    per_weight_eps: float,
    block_size: int,
    granularity: str = "kernel",
    group: int | None = None,
    seed: int = 0,
    strict: bool = True,
    nonneg_input: bool = False,
    input_shape: tuple[int, ...] | None = None,
    search_options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
    record_target: bool = True,
) -> Ticket:
    """Prune a normal random network of depth 2L into a structured approximation of the sequential ``target``.

    Parameters
    ----------
    target : nn.Module or TracedNet
        Conv2d, pooling, Flatten and Linear layers (biases allowed), ReLU or identity activations.
    per_weight_eps : float in (0, 1)
        Error allowed per weight (l_inf over each instance's slices).
    block_size : int
        ``H``, intermediate channels (hidden neurons) per input channel, both signs of ``u`` together.
    granularity : {"kernel", "group", "filter"}
        Which slices share one subset: one output (kernel), ``group`` outputs, or all outputs (filter).
    group : int, optional
        Outputs per subset for ``granularity="group"``; must divide every layer's ``c_out``.
    seed : int
        Seed of the random network and of the search.
    strict : bool
        Raise :class:`InfeasibleError` when some instance misses ``per_weight_eps``; otherwise the misses
        are reported per layer in the provenance (with the best error found) and as warnings.
    nonneg_input : bool
        Inputs are >= 0: the first layer builds the ``u > 0`` side only.
    input_shape : tuple of int, optional
        Shape of one input, for an ``nn.Module`` (``(C, H, W)`` or ``(d,)``).
    search_options : dict, optional
        ``group``, ``steps``, ``restarts``, ``beam``, ``time_limit`` (seconds per layer side) for the MRSS search.
    log : callable, optional
        Receives one progress line per layer.
    record_target : bool
        Store the target's weights in the ticket (``arrays["target.*"]``).

    Returns
    -------
    Ticket
        Masks that keep whole slices (and whole univariate 1x1 kernels / hidden neurons); provenance with, per
        layer, its kind, slice size, the dimension of its instances, the candidates per instance, the counting
        lower bound and gap, the error summary, the instances above ``eps`` with the best error, and the kept
        intermediate channels; per-slice errors in ``arrays["errors.layer{i}.pos"/".neg"]``,
        ``(c_out', c_in')``.

    Raises
    ------
    InputError
        Bad arguments or an unsupported target (one line, named).
    InfeasibleError
        ``strict`` and some instance above ``per_weight_eps``.
    """
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    seed = check_seed(seed)
    if isinstance(per_weight_eps, bool) or not isinstance(per_weight_eps, (int, float)) or not (
            0 < per_weight_eps < 1):
        raise InputError(f"per_weight_eps must be a number in (0, 1), got {per_weight_eps!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size (intermediate channels per input channel) must be >= 1, got {block_size!r}")
    if granularity not in GRANULARITIES:
        raise InputError(f"granularity must be one of {list(GRANULARITIES)}, got {granularity!r}")
    options = dict(search_options or {})
    unknown = sorted(set(options) - set(SEARCH_OPTIONS))
    if unknown:
        raise InputError(f"search_options takes {', '.join(SEARCH_OPTIONS)}; got {unknown[0]!r}")
    cnn = read_target(target, input_shape, bool(nonneg_input))
    views = [slice_view(p, cnn.constant) for p in cnn.params]
    groups = []
    for li, v in enumerate(views):  # every layer checked before any work
        try:
            groups.append(output_groups(v.c_out, granularity, group, constant_out=v.constant_out))
        except InputError as exc:
            raise InputError(f"structured: layer {li + 1} ({v.kind}): {exc}") from None
    H = int(block_size)
    dist = WeightDistribution.normal()
    rspec, names = cnn2l.random_spec(cnn, H)
    shapes = rspec.parameter_shapes()
    masks = {n: torch.zeros(s, dtype=torch.bool) for n, s in shapes.items()}
    arrays: dict[str, torch.Tensor] = {}
    layers_info: list[dict] = []
    warnings: list[str] = []
    eps = float(per_weight_eps)
    for li, (p, view, grp) in enumerate(zip(cnn.params, views, groups)):
        t0 = time.perf_counter()
        n1, n2 = names[p.index]
        c_out, c_in, d0 = view.kernel.shape
        u = first_layer_diagonal(dist, n1, (H * c_in, c_in), seed, H)
        v = dist.tensor(n2, shapes[n2], seed, fan_in=rspec.fan_in(n2)).numpy()
        negative = np.full(c_in, view.negative_side)
        if view.constant_in:
            negative[-1] = False  # the constant channel is +1: its relu(-x) side is never active
        dims = sorted({len(g) * d0 for g in grp})
        what = f"{p.kind} {tuple(p.weight.shape)}"
        say(f"layer {li + 1}/{len(views)} ({what}, {view.kind}): granularity {granularity}, dimension "
            f"{'/'.join(map(str, dims))}, {len(grp) * int(c_in + negative.sum())} instances")
        out = solve_pair(view.kernel, u, second_as_slices(v, c_in, H, d0), grp, eps, negative=negative,
                         seed=seed + 104729 * li, options=options)
        del v
        masks[n1] = torch.from_numpy(out["mask1"].reshape(shapes[n1]))
        masks[n2] = torch.from_numpy(view.slices_mask(out["keep"], shapes[n2]))
        errs = np.array([r["error"] for r in out["instances"]])
        ns = np.array([r["n"] for r in out["instances"]])
        above = [r for r in out["instances"] if r["error"] > eps]
        dim = max(dims)  # the dimension of the target's own groups (the constant output's is smaller)
        bound = counting_bound(dim, eps)
        g = len(grp[0])
        info = {
            "layer": li, "target_index": p.index, "kind": view.kind, "target_shape": list(p.weight.shape),
            "kernel_shape": list(p.kernel.shape), "slice_size": d0, "bias": p.bias is not None,
            "constant_out": view.constant_out, "random_layers": [n1, n2],
            "granularity": granularity, "group": g, "dimension": dim, "dimensions": dims,
            "negative_side": view.negative_side,
            "instances": len(errs), "candidates": {"min": int(ns.min()), "mean": float(ns.mean()),
                                                   "max": int(ns.max())},
            "counting_lower_bound": bound, "gap_to_counting_bound": float(ns.mean() - bound),
            "errors": {"max": float(errs.max()), "median": float(np.median(errs)), "mean": float(errs.mean())},
            "above_eps": len(above),
            "best_error_of_misses": float(min(r["error"] for r in above)) if above else None,
            "kept_channels": int(out["mask1"].sum()), "channels": H * c_in,
            "kept_slices": int(out["keep"].sum()), "slices": c_out * H * c_in,
            "random_params": int(math.prod(shapes[n1]) + math.prod(shapes[n2])),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        layers_info.append(info)
        arrays[f"errors.layer{li}.pos"] = torch.from_numpy(out["errors_pos"])
        arrays[f"errors.layer{li}.neg"] = torch.from_numpy(out["errors_neg"])
        say(f"layer {li + 1}/{len(views)} done: max error {errs.max():.3g}, median {np.median(errs):.3g}, "
            f"{info['kept_channels']} of {H * c_in} channels kept, {info['seconds']:.1f} s")
        if above:
            warnings.append(f"layer {li + 1} ({what}): {len(above)} of {len(errs)} instances above eps {eps:g} "
                            f"(dimension {dim}, {ns.mean():.0f} candidates each, counting bound {bound:.0f}); "
                            f"worst error {errs.max():.4g}")
            say("warning: " + warnings[-1])
    provenance = {
        "method": METHOD, "paper": PAPER, "per_weight_eps": eps, "block_size": H,
        "structure": {"granularity": granularity, "group": group if granularity == "group" else None},
        "nonneg_input": bool(nonneg_input), "constant_input_channel": cnn.constant,
        "flatten_linear": "conv1x1", "solver": "mrss_search", "search_options": options,
        "layers": layers_info, "warnings": warnings,
        "max_error": max(li_["errors"]["max"] for li_ in layers_info),
        "instances_above_eps": sum(li_["above_eps"] for li_ in layers_info),
        "random_params": int(rspec.num_params),
        "target": {"spec": cnn.traced.spec.to_dict(), "fingerprint": fingerprint(cnn.traced.state),
                   "num_weights": int(sum(t.numel() for t in cnn.traced.state.values()))},
        "seconds": {"total": round(time.perf_counter() - start, 3)},
        "strongticket": __version__,
    }
    if strict and provenance["instances_above_eps"]:
        raise InfeasibleError("structured: " + "; ".join(warnings) + "; raise block_size, or pass strict=False "
                              "(CLI: --no-strict) to keep the ticket with the misses reported")
    if record_target:
        for name, t in cnn.traced.state.items():
            arrays[f"target.{name}"] = t.detach().cpu()
    return Ticket(rspec, dist, seed, masks, provenance, arrays)


def realised_slices(ticket: Ticket, target: nn.Module | TracedNet | None = None) -> list[dict[str, Any]]:
    """Per target layer, the slices the ticket realises, recomputed from the regenerated weights and masks.

    Returns, per layer, ``{"kind", "kernel" K, "pos" A+, "neg" A-, "negative_side"}``, float64 arrays
    ``(c_out', c_in', D0)``: the pair computes exactly ``A+ relu(X) + A- relu(-X)`` slice by slice
    (:func:`strongticket.construct.cnn2l.pair_kernels`, reshaped to the slice view).
    """
    cnn = read_target(_target_of(ticket, target), ticket.spec.input_shape,
                      bool(ticket.provenance.get("nonneg_input", False)))
    out = []
    for p, rec in zip(cnn.params, cnn2l.pair_kernels(ticket, target)):
        view = slice_view(p, cnn.constant)
        shape = view.kernel.shape
        out.append({"kind": view.kind, "kernel": view.kernel, "pos": rec["pos"].reshape(shape),
                    "neg": rec["neg"].reshape(shape), "negative_side": view.negative_side,
                    "constant_in": view.constant_in})
    return out


def _target_of(ticket: Ticket, target: nn.Module | TracedNet | None) -> nn.Module | TracedNet:
    from strongticket.verify.measure import target_module

    return target_module(ticket) if target is None else target


__all__ = ["GRANULARITIES", "METHOD", "PAPER", "SEARCH_OPTIONS", "SliceView", "construct", "counting_bound",
           "group_size", "output_groups", "read_target", "realised_slices", "second_as_slices", "slice_view",
           "solve_pair"]
