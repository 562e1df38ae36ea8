"""One reading of a sequential CNN target, shared by the constructions that prune a random CNN into it.

:func:`read_layers` does what every CNN construction checks first: the modules it cannot take (named before
tracing, BatchNorm with the folding formula), the trace into a :class:`~strongticket.nets.spec.NetSpec`
(sequential targets only), the shape of one input sample (with which the spec checks that the layers chain),
finite weights and biases, and each layer's name in the target module. What a construction needs beyond that
(the 2L construction of da Cunha et al. 2022: ReLU or identity activations for the +- split; the depth-(L+1)
construction of Burkholz 2022: an activation of the registry, a ``Conv2d`` first, zero padding that keeps a
tap inside the image) stays with it (:mod:`strongticket.construct.cnn2l`,
:mod:`strongticket.construct.lplus1_conv`). Error messages start with the construction's name (``who``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import Conv2d, Layer, Linear, NetSpec
from strongticket.nets.trace import TracedNet, trace_module


def check_target_modules(module: nn.Module, *, who: str, supported: str) -> None:
    """Refuse, by name, the modules a CNN construction cannot take, before tracing.

    BatchNorm (folding it into the preceding layer is the user's step: the message gives the formula),
    transposed and non-2-D convolutions, and ``Conv2d`` with dilation, groups, a padding mode other than zeros,
    string padding or a non-square kernel, stride or padding.

    Parameters
    ----------
    module : nn.Module
    who : str
        The construction's name, first in every message (``"cnn2l"``).
    supported : str
        What the construction supports, quoted at the end of every message.

    Raises
    ------
    InputError
        Naming the module, what it has and what is supported.
    """
    for name, m in module.named_modules():
        what = f"{type(m).__name__} {name!r}"
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise InputError(f"{who}: {what} in the target is not supported: fold it into the preceding layer "
                             f"first (weight * gamma / sqrt(var + eps) per output channel, bias (bias - mean) * "
                             f"gamma / sqrt(var + eps) + beta); supported: {supported}")
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            raise InputError(f"{who}: transposed convolution {what} is not supported; supported: {supported}")
        if isinstance(m, nn.modules.conv._ConvNd) and not isinstance(m, nn.Conv2d):
            raise InputError(f"{who}: {what} is not supported (2-D convolutions only); supported: {supported}")
        if isinstance(m, nn.Conv2d):
            bad = []
            if tuple(m.dilation) != (1, 1):
                bad.append(f"dilation={tuple(m.dilation)}")
            if m.groups != 1:
                bad.append(f"groups={m.groups}")
            if m.padding_mode != "zeros":
                bad.append(f"padding_mode={m.padding_mode!r}")
            if isinstance(m.padding, str):
                bad.append(f"padding={m.padding!r}")
            for attr in ("kernel_size", "stride", "padding"):
                v = getattr(m, attr)
                if isinstance(v, tuple) and len(set(v)) != 1:
                    bad.append(f"non-square {attr}={v}")
            if bad:
                raise InputError(f"{who}: {what} has {', '.join(bad)}; supported: {supported}")


@dataclass(frozen=True, eq=False)
class ParamLayer:
    """One ``Conv2d`` or ``Linear`` layer of the target, its parameters in float64.

    Attributes
    ----------
    index : int
        Position in the target's spec.
    layer : Conv2d or Linear
    weight : float64 array
        ``(c_out, c_in, k, k)`` or ``(d_out, d_in)``, finite.
    bias : float64 array, shape (c_out,) or (d_out,), or None
        Finite; None for a layer without bias.
    name : str
        The weight's name in the target module (``"0.weight"``), for messages.
    """

    index: int
    layer: Conv2d | Linear
    weight: np.ndarray
    bias: np.ndarray | None
    name: str


@dataclass(frozen=True, eq=False)
class TargetLayers:
    """A CNN target as :func:`read_layers` reads it.

    Attributes
    ----------
    traced : TracedNet
    shapes : tuple of tuple of int
        Input shape of every layer of ``traced.spec`` (one sample, no batch dimension), then the output's.
    params : tuple of ParamLayer
        The ``Conv2d`` and ``Linear`` layers, in order.
    names : tuple of str
        Per layer of the spec, its weight's name in the target module (``"layers.<i>"`` for a layer without
        parameters).
    """

    traced: TracedNet
    shapes: tuple[tuple[int, ...], ...]
    params: tuple[ParamLayer, ...]
    names: tuple[str, ...]

    @property
    def spec(self) -> NetSpec:
        return self.traced.spec

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.traced.spec.layers

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input sample, without the batch dimension (and without any constant channel)."""
        return tuple(self.traced.spec.input_shape)


def _float64(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def read_layers(target: nn.Module | TracedNet, input_shape: tuple[int, ...] | None = None, *, who: str,
                supported: str) -> TargetLayers:
    """Check ``target`` (modules, trace, input shape, finite parameters) and read its layers in float64.

    Parameters
    ----------
    target : nn.Module or TracedNet
        A module is checked by :func:`check_target_modules` and traced; a ``TracedNet`` is read as it is.
    input_shape : tuple of int, optional
        One input sample (``(C, H, W)`` for an image); needed unless ``target`` is a ``TracedNet`` that
        records it. The spec checks with it that the layers chain.
    who, supported : str
        The construction's name, first in every message, and what it supports.

    Raises
    ------
    InputError
        One line: an unsupported module (named), a target the tracer refuses (non-sequential, unknown
        layers), layers that do not chain (where), no input shape, non-finite weights or biases (which layer).
    """
    if isinstance(target, nn.Module):
        check_target_modules(target, who=who, supported=supported)
    try:
        traced = target if isinstance(target, TracedNet) else trace_module(target, input_shape)
    except InputError as exc:
        raise InputError(f"{who}: target: {exc}") from None
    spec = traced.spec
    if spec.input_shape is None:
        raise InputError(f"{who}: input_shape is needed (the shape of one input sample, e.g. (1, 28, 28))")
    names = tuple(traced.source_names.get(f"layers.{i}.weight", f"layers.{i}") for i in range(len(spec.layers)))
    params = []
    for i, layer in enumerate(spec.layers):
        if not isinstance(layer, (Conv2d, Linear)):
            continue
        w = _float64(traced.state[f"layers.{i}.weight"])
        if not np.all(np.isfinite(w)):
            raise InputError(f"{who}: target layer {i} ({names[i]}) has non-finite weights")
        b = traced.state.get(f"layers.{i}.bias")
        b = None if b is None else _float64(b)
        if b is not None and not np.all(np.isfinite(b)):
            raise InputError(f"{who}: target layer {i} ({names[i]}) has a non-finite bias")
        params.append(ParamLayer(index=i, layer=layer, weight=w, bias=b, name=names[i]))
    return TargetLayers(traced=traced, shapes=tuple(tuple(s) for s in spec.layer_shapes()), params=tuple(params),
                        names=names)


__all__ = ["ParamLayer", "TargetLayers", "check_target_modules", "read_layers"]
