"""``NetSpec``: a feed-forward network as data (layers, shapes, one activation per layer), and back.

A spec is what a ticket stores instead of a module: the random network's architecture, from which
:meth:`NetSpec.build` makes an ``nn.Module`` and :mod:`strongticket.nets.distributions` regenerates the
weights. :mod:`strongticket.nets.trace` reads a spec (and the weights, renamed to the spec's parameter names)
out of a supported target module with ``torch.fx`` (:func:`strongticket.nets.trace.spec_from_module`).

Parameter names are ``layers.{i}.weight`` and ``layers.{i}.bias``, ``i`` the index of the layer in
``NetSpec.layers`` (layers without parameters keep their index); they are the ``state_dict`` keys of
:meth:`NetSpec.build` and the names the random weights are seeded by.

Layers: ``Linear``, ``Conv2d`` (groups 1, dilation 1, zero padding), ``Flatten`` (from dim 1), ``Pool`` (max
or average, no padding); each carries the name of an activation of :mod:`strongticket.nets.activations`.
"""

from __future__ import annotations

import dataclasses

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.activations import activation
from strongticket.validation import check_int

def _check_activation(name: str) -> str:
    activation(name)  # an InputError listing the registered names
    return name


@dataclass(frozen=True)
class Linear:
    """``y = W x (+ b)``, ``W`` of shape ``(out_features, in_features)``."""

    in_features: int
    out_features: int
    bias: bool = False
    activation: str = "identity"
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        check_int("in_features", self.in_features)
        check_int("out_features", self.out_features)
        _check_activation(self.activation)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of ``weight`` (and ``bias``)."""
        shapes = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        return shapes

    @property
    def fan_in(self) -> int:
        """Inputs per output unit."""
        return self.in_features

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of ``shape``."""
        if shape != (self.in_features,):
            raise InputError(f"Linear({self.in_features}, {self.out_features}) expects inputs of shape "
                             f"({self.in_features},), got {shape}")
        return (self.out_features,)


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution with square kernels, zero padding, groups 1 and dilation 1."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    bias: bool = False
    activation: str = "identity"
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        for what in ("in_channels", "out_channels", "kernel_size", "stride"):
            check_int(what, getattr(self, what))
        if isinstance(self.padding, bool) or not isinstance(self.padding, int) or self.padding < 0:
            raise InputError(f"padding must be an integer >= 0, got {self.padding!r}")
        _check_activation(self.activation)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of ``weight`` (and ``bias``)."""
        k = self.kernel_size
        shapes = {"weight": (self.out_channels, self.in_channels, k, k)}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    @property
    def fan_in(self) -> int:
        """Inputs per output unit: ``in_channels * k * k``."""
        return self.in_channels * self.kernel_size ** 2

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(C_out, H_out, W_out)`` for an input of shape ``(C_in, H, W)``."""
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise InputError(f"Conv2d({self.in_channels}, {self.out_channels}) expects inputs of shape "
                             f"({self.in_channels}, H, W), got {shape}")
        h, w = (_conv_len(s, self.kernel_size, self.stride, self.padding) for s in shape[1:])
        if h < 1 or w < 1:
            raise InputError(f"Conv2d kernel {self.kernel_size} does not fit an input of shape {shape}")
        return (self.out_channels, h, w)


@dataclass(frozen=True)
class Flatten:
    """Flattens every dimension after the batch dimension."""

    activation: str = "identity"
    kind: ClassVar[str] = "flatten"

    def __post_init__(self) -> None:
        _check_activation(self.activation)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """No parameters."""
        return {}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(prod(shape),)``."""
        return (math.prod(shape),)


@dataclass(frozen=True)
class Pool:
    """Max or average pooling (``mode`` is ``"max"`` or ``"avg"``), square windows, no padding."""

    mode: str = "max"
    kernel_size: int = 2
    stride: int = 2
    activation: str = "identity"
    kind: ClassVar[str] = "pool"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "avg"):
            raise InputError(f"pool mode must be 'max' or 'avg', got {self.mode!r}")
        check_int("kernel_size", self.kernel_size)
        check_int("stride", self.stride)
        _check_activation(self.activation)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """No parameters."""
        return {}

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(C, H_out, W_out)`` for an input of shape ``(C, H, W)``."""
        if len(shape) != 3:
            raise InputError(f"Pool expects inputs of shape (C, H, W), got {shape}")
        h, w = (_conv_len(s, self.kernel_size, self.stride, 0) for s in shape[1:])
        if h < 1 or w < 1:
            raise InputError(f"pool window {self.kernel_size} does not fit an input of shape {shape}")
        return (shape[0], h, w)


Layer = Linear | Conv2d | Flatten | Pool
_LAYER_TYPES: dict[str, type] = {t.kind: t for t in (Linear, Conv2d, Flatten, Pool)}
SUPPORTED_LAYERS = "Linear, Conv2d (groups=1, dilation=1, zero padding), Flatten, MaxPool2d, AvgPool2d"


def _conv_len(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


@dataclass(frozen=True)
class NetSpec:
    """A feed-forward network: ``layers`` applied in order, each followed by its activation.

    Attributes
    ----------
    layers : tuple of Layer
        ``Linear``, ``Conv2d``, ``Flatten`` and ``Pool`` layers.
    input_shape : tuple of int, optional
        Shape of one input sample (``(d,)`` or ``(C, H, W)``); inferred for a leading ``Linear``.
    input_constant : bool
        When True the network appends one coordinate fixed to 1 to its (flattened) input before the first
        layer; constructions use it to realise a target's biases with bias-free random layers.
    input_constant_channel : bool
        When True the network appends one channel of ones to its image input ``(C, H, W) -> (C + 1, H, W)``:
        the constant of a CNN construction, which convolutions must see as an image channel.
    """

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...] | None = None
    input_constant: bool = False
    input_constant_channel: bool = False
    _shapes: tuple[tuple[int, ...], ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise InputError("a NetSpec needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Linear, Conv2d, Flatten, Pool)):
                raise InputError(f"layer {i} must be one of {SUPPORTED_LAYERS}, got {type(layer).__name__}")
        object.__setattr__(self, "layers", layers)
        if self.input_constant and self.input_constant_channel:
            raise InputError("a NetSpec takes input_constant (one flattened coordinate) or input_constant_channel "
                             "(a channel of ones beside an image), not both")
        shape = self.input_shape
        if shape is None and isinstance(layers[0], Linear):
            shape = (layers[0].in_features - (1 if self.input_constant else 0),)
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            object.__setattr__(self, "input_shape", shape)
            object.__setattr__(self, "_shapes", self._infer_shapes(shape))

    def _infer_shapes(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        if self.input_constant:
            shape = (math.prod(shape) + 1,)
        if self.input_constant_channel:
            if len(shape) != 3:
                raise InputError(f"input_constant_channel needs an image input shape (C, H, W), got {shape}")
            shape = (shape[0] + 1, *shape[1:])
        out = [shape]
        for i, layer in enumerate(self.layers):
            try:
                shape = layer.output_shape(shape)
            except InputError as exc:
                raise InputError(f"layer {i}: {exc}") from None
            out.append(shape)
        return tuple(out)

    # ----- shapes and parameters -------------------------------------------------------------
    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """Shape of one output sample (None when the input shape is unknown)."""
        return None if self._shapes is None else self._shapes[-1]

    def layer_shapes(self) -> tuple[tuple[int, ...], ...] | None:
        """Input shape of every layer plus the output shape (length ``len(layers) + 1``)."""
        return self._shapes

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` of every parameter, in layer order (the ``state_dict`` of :meth:`build`)."""
        out: dict[str, tuple[int, ...]] = {}
        for i, layer in enumerate(self.layers):
            for pname, shape in layer.parameter_shapes().items():
                out[f"layers.{i}.{pname}"] = shape
        return out

    def fan_in(self, name: str) -> int:
        """Fan-in of the layer that owns parameter ``name``."""
        layer = self.layers[_layer_index(name)]
        return int(layer.fan_in)

    @property
    def num_params(self) -> int:
        """Total number of parameters."""
        return sum(math.prod(s) for s in self.parameter_shapes().values())

    @property
    def linear_layers(self) -> tuple[int, ...]:
        """Indices of the ``Linear`` layers."""
        return tuple(i for i, layer in enumerate(self.layers) if isinstance(layer, Linear))

    # ----- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (every layer's type, shapes, stride, padding, activation)."""
        return {
            "input_shape": None if self.input_shape is None else list(self.input_shape),
            "input_constant": self.input_constant,
            "input_constant_channel": self.input_constant_channel,
            "layers": [{"type": layer.kind, **asdict(layer)} for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetSpec:
        """Inverse of :meth:`to_dict`; an :class:`InputError` naming the bad field otherwise."""
        if not isinstance(data, Mapping) or not isinstance(data.get("layers"), list):
            raise InputError(f"a NetSpec must be a mapping with a 'layers' list, got {type(data).__name__}")
        layers = []
        for i, entry in enumerate(data["layers"]):
            if not isinstance(entry, Mapping) or entry.get("type") not in _LAYER_TYPES:
                got = entry.get("type") if isinstance(entry, Mapping) else entry
                raise InputError(f"layer {i}: type must be one of {sorted(_LAYER_TYPES)}, got {got!r}")
            kind = _LAYER_TYPES[entry["type"]]
            kwargs = {k: v for k, v in entry.items() if k != "type"}
            known = [f.name for f in dataclasses.fields(kind)]
            required = [f.name for f in dataclasses.fields(kind)
                        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
            unknown = sorted(set(kwargs) - set(known))
            missing = [k for k in required if k not in kwargs]
            if unknown or missing:
                what = "; ".join(([f"missing field(s) {missing}"] if missing else [])
                                 + ([f"unknown field(s) {unknown}"] if unknown else []))
                raise InputError(f"layer {i} ({entry['type']}): {what}; its fields are {known}")
            try:
                layers.append(kind(**kwargs))
            except TypeError as exc:
                raise InputError(f"layer {i} ({entry['type']}): {exc}") from None
        shape = data.get("input_shape")
        return cls(tuple(layers), input_shape=None if shape is None else tuple(shape),
                   input_constant=bool(data.get("input_constant", False)),
                   input_constant_channel=bool(data.get("input_constant_channel", False)))

    # ----- modules ---------------------------------------------------------------------------
    def build(self, dtype: torch.dtype = torch.float32) -> SpecNet:
        """An ``nn.Module`` computing this spec; parameters zero-initialised (load or regenerate them)."""
        return SpecNet(self, dtype=dtype)


def _layer_index(name: str) -> int:
    parts = name.split(".")
    if len(parts) != 3 or parts[0] != "layers" or not parts[1].isdigit():
        raise InputError(f"parameter names look like 'layers.<i>.weight', got {name!r}")
    return int(parts[1])


class SpecNet(nn.Module):
    """The module a :class:`NetSpec` describes: its layers in a ``ModuleList``, activations applied after each."""

    def __init__(self, spec: NetSpec, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.spec = spec
        mods: list[nn.Module] = []
        for layer in spec.layers:
            if isinstance(layer, Linear):
                m: nn.Module = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias, dtype=dtype)
            elif isinstance(layer, Conv2d):
                m = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                              padding=layer.padding, bias=layer.bias, dtype=dtype)
            elif isinstance(layer, Flatten):
                m = nn.Flatten(1)
            else:
                pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
                m = pool(layer.kernel_size, stride=layer.stride)
            mods.append(m)
        self.layers = nn.ModuleList(mods)
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
        self._acts = [activation(layer.activation).fn for layer in spec.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every layer and its activation (appending the constant input coordinate first if asked)."""
        if self.spec.input_constant:
            x = x.flatten(1)
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
        elif self.spec.input_constant_channel:
            x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        for layer, act in zip(self.layers, self._acts):
            x = act(layer(x))
        return x
