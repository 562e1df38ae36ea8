"""``NetSpec``: a feed-forward network as data (layers, shapes, one activation per layer), and back.

A spec is what a ticket stores instead of a module: the random network's architecture, from which
:meth:`NetSpec.build` makes an ``nn.Module`` and :mod:`strongticket.nets.distributions` regenerates the
weights. :func:`trace_module` reads a spec (and the weights, renamed to the spec's parameter names) out of a
supported target module with ``torch.fx``, so a target defined by a custom ``forward`` works as well as an
``nn.Sequential``.

Parameter names are ``layers.{i}.weight`` and ``layers.{i}.bias``, ``i`` the index of the layer in
``NetSpec.layers`` (layers without parameters keep their index); they are the ``state_dict`` keys of
:meth:`NetSpec.build` and the names the random weights are seeded by.

Supported: ``Linear``, ``Conv2d`` (groups 1, dilation 1, zero padding), ``Flatten`` (from dim 1),
``Pool`` (max or average, no padding); activations :data:`ACTIVATIONS`; ``Dropout`` and ``Identity`` are
dropped (evaluation semantics). Anything else (residual additions, batch norm, concatenation) is named in an
:class:`~strongticket.errors.InputError` that lists what is supported.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError

#: Activation names a layer may carry (applied after the layer).
ACTIVATIONS: tuple[str, ...] = ("identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu", "elu",
                                "softplus")

_ACT_FN = {
    "identity": lambda x: x,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "softplus": F.softplus,
}

#: Lipschitz constant of each activation (used by error propagation).
LIPSCHITZ: dict[str, float] = {"identity": 1.0, "relu": 1.0, "leaky_relu": 1.0, "tanh": 1.0, "sigmoid": 0.25,
                               "gelu": 1.13, "silu": 1.1, "elu": 1.0, "softplus": 1.0}


def _check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise InputError(f"activation must be one of {ACTIVATIONS}, got {name!r}")
    return name


def _positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Linear:
    """``y = W x (+ b)``, ``W`` of shape ``(out_features, in_features)``."""

    in_features: int
    out_features: int
    bias: bool = False
    activation: str = "identity"
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        _positive_int("in_features", self.in_features)
        _positive_int("out_features", self.out_features)
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
            _positive_int(what, getattr(self, what))
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
        _positive_int("kernel_size", self.kernel_size)
        _positive_int("stride", self.stride)
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
    """

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...] | None = None
    input_constant: bool = False
    _shapes: tuple[tuple[int, ...], ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        if not layers:
            raise InputError("a NetSpec needs at least one layer, got none")
        for i, layer in enumerate(layers):
            if not isinstance(layer, (Linear, Conv2d, Flatten, Pool)):
                raise InputError(f"layer {i} must be one of {SUPPORTED_LAYERS}, got {type(layer).__name__}")
        object.__setattr__(self, "layers", layers)
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
            kwargs = {k: v for k, v in entry.items() if k != "type"}
            try:
                layers.append(_LAYER_TYPES[entry["type"]](**kwargs))
            except TypeError as exc:
                raise InputError(f"layer {i} ({entry['type']}): {exc}") from None
        shape = data.get("input_shape")
        return cls(tuple(layers), input_shape=None if shape is None else tuple(shape),
                   input_constant=bool(data.get("input_constant", False)))

    @classmethod
    def from_module(cls, module: nn.Module, input_shape: tuple[int, ...] | None = None) -> NetSpec:
        """The spec of a supported target ``module`` (see :func:`trace_module`)."""
        return trace_module(module, input_shape).spec

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
        self._acts = [_ACT_FN[layer.activation] for layer in spec.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every layer and its activation (appending the constant input coordinate first if asked)."""
        if self.spec.input_constant:
            x = x.flatten(1)
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
        for layer, act in zip(self.layers, self._acts):
            x = act(layer(x))
        return x


# ----- reading a spec out of a module ------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class TracedNet:
    """A target read by :func:`trace_module`: its spec and its parameters under the spec's names.

    ``spec.build().load_state_dict(state)`` reproduces the module's function (in evaluation mode).
    """

    spec: NetSpec
    state: dict[str, torch.Tensor]
    source_names: dict[str, str]


_ACT_MODULES: dict[type, str] = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.GELU: "gelu",
                                 nn.SiLU: "silu", nn.ELU: "elu", nn.Softplus: "softplus", nn.LeakyReLU: "leaky_relu"}
_ACT_FUNCS: dict[Any, str] = {F.relu: "relu", torch.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid",
                              F.gelu: "gelu", F.silu: "silu", F.elu: "elu", F.softplus: "softplus",
                              F.leaky_relu: "leaky_relu", F.tanh: "tanh", F.sigmoid: "sigmoid"}
_ACT_METHODS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
_SKIP_MODULES = (nn.Dropout, nn.Identity)
SUPPORTED_ACTIVATIONS = "ReLU, LeakyReLU(0.01), Tanh, Sigmoid, GELU, SiLU, ELU, Softplus"


def _unsupported(what: str) -> InputError:
    return InputError(f"unsupported {what} in the target; supported layers: {SUPPORTED_LAYERS}; "
                      f"activations: {SUPPORTED_ACTIVATIONS} (Dropout and Identity are ignored)")


def _pair(v: Any, what: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise _unsupported(f"non-square {what} {tuple(v)}")
        v = v[0]
    return int(v)


def _spec_layer_of_module(mod: nn.Module, target: str) -> Layer | str | None:
    """The spec layer for a leaf module, an activation name, or None for a module to skip."""
    if isinstance(mod, nn.Linear):
        return Linear(mod.in_features, mod.out_features, bias=mod.bias is not None)
    if isinstance(mod, nn.Conv2d):
        if mod.groups != 1 or _pair(mod.dilation, "dilation") != 1 or mod.padding_mode != "zeros" \
                or isinstance(mod.padding, str):
            raise _unsupported(f"Conv2d {target!r} (groups={mod.groups}, dilation={mod.dilation}, "
                               f"padding={mod.padding!r}, padding_mode={mod.padding_mode!r})")
        return Conv2d(mod.in_channels, mod.out_channels, _pair(mod.kernel_size, "kernel"),
                      stride=_pair(mod.stride, "stride"), padding=_pair(mod.padding, "padding"),
                      bias=mod.bias is not None)
    if isinstance(mod, nn.Flatten):
        if mod.start_dim != 1 or mod.end_dim != -1:
            raise _unsupported(f"Flatten {target!r} with start_dim={mod.start_dim}, end_dim={mod.end_dim}")
        return Flatten()
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        if _pair(mod.padding, "padding") != 0 or getattr(mod, "ceil_mode", False) \
                or _pair(getattr(mod, "dilation", 1), "dilation") != 1:
            raise _unsupported(f"pooling {target!r} with padding/ceil_mode/dilation")
        k = _pair(mod.kernel_size, "kernel")
        s = _pair(mod.stride if mod.stride is not None else k, "stride")
        return Pool("max" if isinstance(mod, nn.MaxPool2d) else "avg", k, s)
    for cls, name in _ACT_MODULES.items():
        if isinstance(mod, cls):
            if cls is nn.LeakyReLU and mod.negative_slope != 0.01:
                raise _unsupported(f"LeakyReLU {target!r} with negative_slope={mod.negative_slope}")
            return name
    if isinstance(mod, _SKIP_MODULES):
        return None
    raise _unsupported(f"layer {target!r} of type {type(mod).__name__}")


def trace_module(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> TracedNet:
    """Read a :class:`NetSpec` and its weights out of a feed-forward ``module`` with ``torch.fx``.

    Parameters
    ----------
    module : nn.Module
        A chain of supported layers and activations (``nn.Sequential`` or a custom ``forward``).
    input_shape : tuple of int, optional
        Shape of one input sample; needed when the first layer is not ``Linear``.

    Returns
    -------
    TracedNet

    Raises
    ------
    InputError
        Naming the first unsupported layer, function or activation, and listing what is supported.
    """
    import torch.fx as fx

    if not isinstance(module, nn.Module):
        raise InputError(f"target must be an nn.Module, got {type(module).__name__}")
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # fx raises many types for dynamic control flow
        raise InputError(f"cannot trace the target {type(module).__name__} as a feed-forward chain "
                         f"({type(exc).__name__}: {exc}); supported layers: {SUPPORTED_LAYERS}") from None
    modules = dict(module.named_modules())
    layers: list[Layer] = []
    sources: list[str | None] = []
    current = None
    aux: set[Any] = set()  # nodes that only describe shapes (x.size(0), x.shape)

    def attach(act: str, where: str) -> None:
        if not layers:
            raise _unsupported(f"activation {act!r} before any layer ({where})")
        last = layers[-1]
        if last.activation != "identity":
            raise _unsupported(f"two activations in a row ({last.activation!r} then {act!r} at {where})")
        layers[-1] = type(last)(**{**asdict(last), "activation": act})

    for node in graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise _unsupported(f"second input {node.name!r}")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise _unsupported("output that is not the last layer's result (several outputs or a tuple)")
            break
        data_args = [a for a in list(node.args) + list(node.kwargs.values()) if isinstance(a, fx.Node)
                     and a not in aux]
        if node.op == "call_method" and node.target in ("size", "dim") or \
                node.op == "call_function" and node.target is getattr:
            aux.add(node)
            continue
        if current not in data_args:
            if node.op == "get_attr":
                raise _unsupported(f"direct use of parameter {node.target!r} in forward")
            raise _unsupported(f"operation {node.format_node()!r} that does not act on the layer chain")
        if len(data_args) > 1:
            what = "residual addition" if node.target in (operator.add, torch.add) else f"{node.target}"
            raise _unsupported(f"{what} combining several tensors ({node.name!r})")
        where = node.name
        if node.op == "call_module":
            result = _spec_layer_of_module(modules[node.target], node.target)
            if isinstance(result, str):
                attach(result, node.target)
            elif result is not None:
                layers.append(result)
                sources.append(node.target if result.parameter_shapes() else None)
        elif node.op == "call_function":
            target = node.target
            if target in _ACT_FUNCS:
                if target is F.leaky_relu and (len(node.args) > 1 or "negative_slope" in node.kwargs):
                    slope = node.args[1] if len(node.args) > 1 else node.kwargs["negative_slope"]
                    if slope != 0.01:
                        raise _unsupported(f"leaky_relu with negative_slope={slope}")
                attach(_ACT_FUNCS[target], where)
            elif target is torch.flatten:
                start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
                if start != 1:
                    raise _unsupported(f"torch.flatten with start_dim={start} (only 1)")
                layers.append(Flatten())
                sources.append(None)
            elif target in (F.max_pool2d, F.avg_pool2d):
                k = _pair(node.args[1] if len(node.args) > 1 else node.kwargs["kernel_size"], "kernel")
                s = node.args[2] if len(node.args) > 2 else node.kwargs.get("stride")
                s = k if s is None else _pair(s, "stride")
                layers.append(Pool("max" if target is F.max_pool2d else "avg", k, s))
                sources.append(None)
            elif target in (F.dropout,):
                continue
            else:
                raise _unsupported(f"function {getattr(target, '__name__', target)!r} ({where})")
        elif node.op == "call_method":
            if node.target in _ACT_METHODS:
                attach(_ACT_METHODS[node.target], where)
            elif node.target in ("view", "reshape", "flatten"):
                args = node.args[1:]
                if node.target == "flatten":
                    start = args[0] if args else node.kwargs.get("start_dim", 0)
                    if start != 1:
                        raise _unsupported(f"x.flatten({start}) (only flatten from dim 1)")
                elif len(args) == 1 and isinstance(args[0], (tuple, list)):
                    args = tuple(args[0])
                if node.target != "flatten" and (len(args) != 2 or args[1] != -1 and not isinstance(args[1], int)):
                    raise _unsupported(f"x.{node.target}{tuple(a if not isinstance(a, fx.Node) else 'N' for a in args)}"
                                       " (only a flatten to (N, -1) or (N, features))")
                layers.append(Flatten())
                sources.append(None)
            elif node.target in ("contiguous",):
                continue
            else:
                raise _unsupported(f"method x.{node.target}() ({where})")
        else:
            raise _unsupported(f"graph node {node.format_node()!r}")
        current = node
    # consecutive Flatten layers (e.g. x.view(N, -1) on an already flat tensor) collapse to one
    merged: list[Layer] = []
    merged_src: list[str | None] = []
    for layer, src in zip(layers, sources):
        if isinstance(layer, Flatten) and merged and isinstance(merged[-1], Flatten) \
                and merged[-1].activation == "identity":
            merged[-1] = layer
            continue
        merged.append(layer)
        merged_src.append(src)
    if not merged:
        raise InputError("the target has no layers")
    spec = NetSpec(tuple(merged), input_shape=input_shape)
    params = dict(module.named_parameters())
    state: dict[str, torch.Tensor] = {}
    source_names: dict[str, str] = {}
    for i, (layer, src) in enumerate(zip(merged, merged_src)):
        for pname in layer.parameter_shapes():
            key = f"{src}.{pname}"
            state[f"layers.{i}.{pname}"] = params[key].detach().clone()
            source_names[f"layers.{i}.{pname}"] = key
    return TracedNet(spec=spec, state=state, source_names=source_names)


def spec_from_module(module: nn.Module, input_shape: tuple[int, ...] | None = None) -> NetSpec:
    """The :class:`NetSpec` of a supported ``module`` (see :func:`trace_module`)."""
    return trace_module(module, input_shape).spec


