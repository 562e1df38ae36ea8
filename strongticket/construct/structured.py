"""Structured strong tickets (da Cunha, d'Amore, Natale 2023): whole kernel slices or filters kept or removed.

A. da Cunha, F. d'Amore, E. Natale, "Polynomially Over-Parameterized Convolutional Neural Networks Contain
Structured Strong Winning Lottery Tickets", NeurIPS 2023 (arXiv 2311.09858). See ``docs/constructions.md``.

Theorem (as recalled; the full text was not available to us): random CNNs with normally distributed weights
contain, with high probability, *structured* subnetworks (whole kernels and filters removed, never single
kernel entries) that approximate every sufficiently smaller CNN, with a polynomial over-parameterisation; the
proof rests on a multidimensional random subset sum (MRSS, Becchetti et al. 2022) for "normally-scaled normal"
samples, a scalar normal times a normal vector, whose coordinates are dependent.

Construction, per target ``Conv2d`` ``K`` (``c_out x c_in x k x k``), on the random pair of
:mod:`strongticket.construct.conv` (a ``1x1`` conv ``U`` to ``H c_in`` channels + ReLU, then a ``kxk`` conv
``V``), all weights N(0, 1):

* ``U`` is pruned to univariate channels: intermediate channel ``h = j H + r`` keeps ``u[j, r] = U[h, j]``
  only (whole 1x1 kernels removed). By positive homogeneity of ReLU it carries ``u relu(X_j)`` (u > 0) or
  ``|u| relu(-X_j)`` (u < 0); since ``X = relu(X) - relu(-X)``, the channels with ``u > 0`` must sum to ``K``
  and those with ``u < 0`` to ``-K`` (one side only for inputs known to be >= 0: images in [0, 1], maps
  after a ReLU).
* **Granularity by one parameter, the group size g** (outputs that share one subset): for input channel
  ``j``, output group ``G`` (g consecutive outputs) and side, one subset ``S`` of the side's channels keeps
  the whole slices ``V[t, jH + r]`` for ``t in G``, ``r in S``: an MRSS instance in dimension ``k^2 g`` over
  the samples ``|u[j, r]| V[G, jH + r]`` with target ``+-K[G, j]``. ``g = 1`` is **kernel** granularity
  (dimension ``k^2``), ``g = c_out`` is **filter** granularity (dimension ``k^2 c_out``: an intermediate
  channel is kept for every output or for none, so pruned channels disappear from the network and
  :meth:`strongticket.ticket.Ticket.compact` yields a smaller dense CNN).
* Instances are solved by :func:`strongticket.subsetsum.mrss_search.mrss_search` (any number of candidates),
  in the l_inf norm over the slice entries: ``eps`` is the error allowed per kernel entry, as for the
  unstructured constructions. Every instance's error is reported, with the counting lower bound: ``2^n``
  subset sums cover ``[-1, 1]^D`` at l_inf error ``eps`` only if ``n >= D log2(1/eps)``.

Scope: sequential targets of bias-free ``Conv2d`` layers (square kernels, zero padding), pooling and
Flatten, with ReLU or identity activations; a ``Linear`` layer or a bias is refused (named).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from strongticket import __version__
from strongticket.construct import conv as conv_kind
from strongticket.construct.blocks import first_layer_diagonal
from strongticket.errors import InfeasibleError, InputError
from strongticket.nets.distributions import WeightDistribution, check_seed
from strongticket.nets.spec import Conv2d, Linear, NetSpec
from strongticket.nets.trace import TracedNet, trace_module
from strongticket.subsetsum import mrss_search as search
from strongticket.ticket import Ticket, fingerprint

METHOD = "structured2023"
PAPER = "da Cunha, d'Amore, Natale, NeurIPS 2023"
GRANULARITIES = ("kernel", "group", "filter")
_ACTIVATIONS = ("relu", "identity")


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


def counting_bound(dim: int, eps: float) -> float:
    """Candidates needed by counting: ``2^n`` sums cover ``[-1, 1]^dim`` within ``eps`` (l_inf) only if
    ``n >= dim log2(1/eps)``."""
    return dim * math.log2(1.0 / eps)


def _read_target(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None) -> TracedNet:
    try:
        traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    except InputError as exc:
        raise InputError(f"structured: target: {exc}") from None
    spec = traced.spec
    if spec.input_shape is None or len(spec.input_shape) != 3:
        raise InputError(f"structured: input_shape must be (C, H, W) of one image, got {spec.input_shape}")
    if not any(isinstance(layer, Conv2d) for layer in spec.layers):
        raise InputError("structured: the target has no Conv2d layer")
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, Linear):
            raise InputError(f"structured: layer {i} is Linear; structured tickets are built for Conv2d layers "
                             "(with Pool and Flatten between); use --method cnn2l for Linear layers")
        if getattr(layer, "bias", False):
            raise InputError(f"structured: Conv2d layer {i} has a bias; supported: bias-free Conv2d layers")
        if layer.activation not in _ACTIVATIONS:
            raise InputError(f"structured: activation {layer.activation!r} after layer {i}; supported: "
                             f"{list(_ACTIVATIONS)}")
    return traced


def random_spec(spec: NetSpec, block_size: int) -> tuple[NetSpec, dict[int, tuple[str, str]]]:
    """The random network (a 1x1 + kxk pair per Conv2d, pooling and Flatten copied) and each pair's names."""
    layers: list = []
    names: dict[int, tuple[str, str]] = {}
    for i, layer in enumerate(spec.layers):
        if isinstance(layer, Conv2d):
            names[i] = (f"layers.{len(layers)}.weight", f"layers.{len(layers) + 1}.weight")
            layers += list(conv_kind.random_pair(layer, layer.in_channels, layer.out_channels, block_size))
        else:
            layers.append(layer)
    return NetSpec(tuple(layers), input_shape=spec.input_shape), names


def solve_pair(kernel: np.ndarray, u: np.ndarray, second: np.ndarray, g: int, eps: float, *, negative_side: bool,
               seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Choose, per (input channel, output group, side), the intermediate channels whose whole slices are kept.

    Parameters
    ----------
    kernel : float64 (c_out, c_in, k, k)
    u : float (c_in, H)
        ``u[j, r] = U[jH + r, j]``.
    second : float (c_out, H c_in, k, k)
        ``V``.
    g : int
        Outputs per group (divides ``c_out``).
    eps : float
        Error allowed per kernel entry.
    negative_side : bool
        Build the ``u < 0`` side too (inputs may be negative).
    seed : int
        Seed of the search.
    options : dict
        ``group``, ``steps``, ``restarts``, ``time_limit`` of :func:`strongticket.subsetsum.mrss_search.mrss_search`.

    Returns
    -------
    dict
        ``mask1`` bool (H c_in, c_in, 1, 1), ``mask2`` bool (c_out, H c_in, k, k), ``errors_pos``/``errors_neg``
        float64 (c_out, c_in): the l_inf error of the instance each slice belongs to (the largest over its
        output group; 0 where a side is not built),
        ``instances`` (list of per-instance dicts: j, group, side, n, error).
    """
    c_out, c_in, k, _ = kernel.shape
    H = u.shape[1]
    groups = c_out // g
    v = np.asarray(second, dtype=np.float64).reshape(c_out, c_in, H, k * k)
    mask1 = np.zeros((H * c_in, c_in, 1, 1), dtype=bool)
    mask2 = np.zeros((c_out, H * c_in, k, k), dtype=bool)
    errors = [np.zeros((c_out, c_in)), np.zeros((c_out, c_in))]
    records = []
    sides = (0, 1) if negative_side else (0,)
    for j in range(c_in):
        for side in sides:
            chan = np.flatnonzero(u[j] > 0 if side == 0 else u[j] < 0)
            sign = 1.0 if side == 0 else -1.0
            target = (sign * kernel[:, j].reshape(groups, g * k * k))
            if chan.size == 0:
                err = np.abs(target).max(axis=1)
                sel = np.zeros((groups, 0), dtype=bool)
            else:
                # sample r of group G: |u[j, r]| V[G, jH + r] flattened (output-major, then taps)
                cand = np.abs(u[j, chan]).astype(np.float64)[None, :, None] * np.transpose(
                    v[:, j][:, chan].reshape(groups, g, chan.size, k * k), (0, 2, 1, 3)).reshape(groups, chan.size,
                                                                                                g * k * k)
                res = search.mrss_search(cand, target, "linf", seed=seed + 7919 * j + side, eps=eps, **options)
                sel, err = res.selection, res.errors
            for G in range(groups):
                kept = chan[sel[G]] if chan.size else chan
                rows = slice(G * g, (G + 1) * g)
                mask2[rows, j * H + kept] = True
                mask1[j * H + kept, j] = True
                errors[side][rows, j] = err[G]
                records.append({"input": j, "group": G, "side": "+-"[side], "n": int(chan.size),
                                "error": float(err[G])})
    return {"mask1": mask1, "mask2": mask2, "errors_pos": errors[0], "errors_neg": errors[1], "instances": records}


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
    """Prune a normal random CNN of depth 2L into a structured approximation of the CNN ``target``.

    Parameters
    ----------
    target : nn.Module or TracedNet
        Bias-free Conv2d layers, pooling and Flatten, ReLU or identity activations.
    per_weight_eps : float in (0, 1)
        Error allowed per kernel entry (l_inf over each instance's slices).
    block_size : int
        ``H``, intermediate channels per input channel (both signs of ``u`` together).
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
        ``(C, H, W)`` of one input, for an ``nn.Module``.
    search_options : dict, optional
        ``group``, ``steps``, ``restarts``, ``time_limit`` (seconds per layer side) for the MRSS search.
    log : callable, optional
        Receives one progress line per layer.
    record_target : bool
        Store the target's weights in the ticket (``arrays["target.*"]``).

    Returns
    -------
    Ticket
        Masks that keep whole kernel slices (and whole univariate 1x1 kernels); provenance with, per layer,
        the dimension of its instances, the candidates per instance, the counting lower bound and gap, the
        error summary, the instances above ``eps`` with the best error, and the kept intermediate channels.
    """
    start = time.perf_counter()
    say = log or (lambda _msg: None)
    seed = check_seed(seed)
    if isinstance(per_weight_eps, bool) or not isinstance(per_weight_eps, (int, float)) or not (
            0 < per_weight_eps < 1):
        raise InputError(f"per_weight_eps must be a number in (0, 1), got {per_weight_eps!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise InputError(f"block_size (intermediate channels per input channel) must be >= 1, got {block_size!r}")
    options = dict(search_options or {})
    unknown = sorted(set(options) - {"group", "steps", "restarts", "time_limit"})
    if unknown:
        raise InputError(f"search_options takes group, steps, restarts, time_limit; got {unknown[0]!r}")
    traced = _read_target(target, input_shape)
    spec = traced.spec
    convs = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Conv2d)]
    gs = {i: group_size(granularity, spec.layers[i].out_channels, group) for i in convs}  # all checked first
    H = int(block_size)
    dist = WeightDistribution.normal()
    rspec, names = random_spec(spec, H)
    shapes = rspec.parameter_shapes()
    masks = {n: torch.zeros(s, dtype=torch.bool) for n, s in shapes.items()}
    arrays: dict[str, torch.Tensor] = {}
    layers_info: list[dict] = []
    warnings: list[str] = []
    nonneg = bool(nonneg_input)
    li = 0
    for i, layer in enumerate(spec.layers):
        if not isinstance(layer, Conv2d):
            nonneg = nonneg or layer.activation == "relu"
            continue
        t0 = time.perf_counter()
        n1, n2 = names[i]
        kernel = traced.state[f"layers.{i}.weight"].detach().to(torch.float64).cpu().numpy()
        if not np.all(np.isfinite(kernel)):
            raise InputError(f"structured: Conv2d layer {i} has non-finite weights")
        c_out, c_in, k, _ = kernel.shape
        u = first_layer_diagonal(dist, n1, (H * c_in, c_in), seed, H)
        v = dist.tensor(n2, shapes[n2], seed, fan_in=rspec.fan_in(n2)).numpy()
        g = gs[i]
        dim = k * k * g
        say(f"layer {li + 1}/{len(convs)} (Conv2d {tuple(kernel.shape)}): granularity {granularity}, "
            f"dimension {dim}, {c_in * (c_out // g) * (1 if nonneg else 2)} instances")
        out = solve_pair(kernel, u, v, g, float(per_weight_eps), negative_side=not nonneg, seed=seed + 104729 * li,
                         options=options)
        masks[n1] = torch.from_numpy(out["mask1"])
        masks[n2] = torch.from_numpy(out["mask2"])
        errs = np.array([r["error"] for r in out["instances"]])
        ns = np.array([r["n"] for r in out["instances"]])
        above = [r for r in out["instances"] if r["error"] > per_weight_eps]
        bound = counting_bound(dim, float(per_weight_eps))
        info = {
            "layer": li, "target_index": i, "kernel_shape": [c_out, c_in, k, k], "random_layers": [n1, n2],
            "granularity": granularity, "group": g, "dimension": dim, "negative_side": not nonneg,
            "instances": len(errs), "candidates": {"min": int(ns.min()), "mean": float(ns.mean()),
                                                   "max": int(ns.max())},
            "counting_lower_bound": bound, "gap_to_counting_bound": float(ns.mean() - bound),
            "errors": {"max": float(errs.max()), "median": float(np.median(errs)), "mean": float(errs.mean())},
            "above_eps": len(above),
            "best_error_of_misses": float(min(r["error"] for r in above)) if above else None,
            "kept_channels": int(out["mask1"].sum()), "channels": H * c_in,
            "kept_slices": int(out["mask2"].any(axis=(2, 3)).sum()), "slices": c_out * H * c_in,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        layers_info.append(info)
        arrays[f"errors.layer{li}.pos"] = torch.from_numpy(out["errors_pos"])
        arrays[f"errors.layer{li}.neg"] = torch.from_numpy(out["errors_neg"])
        if above:
            warnings.append(f"layer {li + 1} (Conv2d {tuple(kernel.shape)}): {len(above)} of {len(errs)} instances "
                            f"above eps {per_weight_eps:g} (dimension {dim}, {ns.mean():.0f} candidates each, "
                            f"counting bound {bound:.0f}); worst error {errs.max():.4g}")
            say("warning: " + warnings[-1])
        nonneg = layer.activation == "relu"
        li += 1
    provenance = {
        "method": METHOD, "paper": PAPER, "per_weight_eps": float(per_weight_eps), "block_size": H,
        "structure": {"granularity": granularity, "group": group if granularity == "group" else None},
        "nonneg_input": bool(nonneg_input), "solver": "mrss_search", "search_options": options,
        "layers": layers_info, "warnings": warnings,
        "max_error": max(li_["errors"]["max"] for li_ in layers_info),
        "instances_above_eps": sum(li_["above_eps"] for li_ in layers_info),
        "target": {"spec": spec.to_dict(), "fingerprint": fingerprint(traced.state)},
        "seconds": {"total": round(time.perf_counter() - start, 3)},
        "strongticket": __version__,
    }
    if strict and provenance["instances_above_eps"]:
        raise InfeasibleError("structured: " + "; ".join(warnings) + "; raise block_size, or pass strict=False "
                              "(CLI: --no-strict) to keep the ticket with the misses reported")
    if record_target:
        for name, t in traced.state.items():
            arrays[f"target.{name}"] = t.detach().cpu()
    return Ticket(rspec, dist, seed, masks, provenance, arrays)


__all__ = ["GRANULARITIES", "METHOD", "PAPER", "construct", "counting_bound", "group_size", "random_spec",
           "solve_pair"]
