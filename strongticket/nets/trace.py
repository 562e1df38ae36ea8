"""Reading a :class:`~strongticket.nets.spec.NetSpec` and its weights out of a target module with ``torch.fx``.

:func:`trace_module` follows the graph of a module's ``forward`` (an ``nn.Sequential`` or a custom
``forward``) and turns each node into a spec layer or an activation of the registry
(:mod:`strongticket.nets.activations`), so that a target defined by a custom ``forward`` works as well as an
``nn.Sequential``.

Supported: ``Linear``, ``Conv2d`` (groups 1, dilation 1, zero padding), ``Flatten`` (from dim 1) and its
``view``/``reshape`` forms, ``MaxPool2d``/``AvgPool2d`` (no padding), and every registered activation as a
module, a functional call or a tensor method, with the registry's fixed parameters (LeakyReLU's slope 0.01,
...); ``Dropout`` and ``Identity`` are dropped (evaluation semantics). Anything else (residual additions,
batch norm, concatenation) is named in an :class:`~strongticket.errors.InputError` that lists what is
supported.
"""

from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.activations import REGISTRY, Activation
from strongticket.nets.spec import SUPPORTED_LAYERS, Conv2d, Flatten, Layer, Linear, NetSpec, Pool

@dataclass(frozen=True, eq=False)
class TracedNet:
    """A target read by :func:`trace_module`: its spec and its parameters under the spec's names.

    ``spec.build().load_state_dict(state)`` reproduces the module's function (in evaluation mode).
    """

    spec: NetSpec
    state: dict[str, torch.Tensor]
    source_names: dict[str, str]


# Indexes of the registry by what the tracer sees (the identity is no activation to attach: nn.Identity is dropped).
_ACT_BY_MODULE: dict[type, Activation] = {a.module_type: a for a in REGISTRY.values() if a.name != "identity"}
_ACT_BY_FUNCTION: dict[Any, Activation] = {f: a for a in REGISTRY.values() for f in a.torch_functions}
_ACT_BY_METHOD: dict[str, Activation] = {m: a for a in REGISTRY.values() for m in a.tensor_methods}
_SKIP_MODULES = (nn.Dropout, nn.Identity)


def _describe(act: Activation) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in act.parameters.items())
    return f"{act.module_type.__name__}({args})" if args else act.module_type.__name__


SUPPORTED_ACTIVATIONS = ", ".join(_describe(a) for a in _ACT_BY_MODULE.values())


def _unsupported(what: str) -> InputError:
    return InputError(f"unsupported {what} in the target; supported layers: {SUPPORTED_LAYERS}; "
                      f"activations: {SUPPORTED_ACTIVATIONS} (Dropout and Identity are ignored)")


def _pair(v: Any, what: str) -> int:
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise _unsupported(f"non-square {what} {tuple(v)}")
        v = v[0]
    return int(v)


def _check_parameters(act: Activation, given: dict[str, Any], where: str) -> None:
    """Refuse an activation whose arguments differ from the registry's fixed ones (a NetSpec cannot carry them)."""
    bad = {k: v for k, v in given.items() if k in act.parameters and v != act.parameters[k]}
    if bad:
        got = ", ".join(f"{k}={v!r}" for k, v in bad.items())
        raise _unsupported(f"{where} with {got} (only {_describe(act)})")


def _function_parameters(act: Activation, node: Any) -> dict[str, Any]:
    """The registry parameters a functional call passes, positional (after the input) or by keyword."""
    given = dict(zip(act.parameters, node.args[1:]))  # positional arguments beyond these are ``inplace``
    given.update({k: v for k, v in node.kwargs.items() if k in act.parameters})
    return given


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
    if isinstance(mod, _SKIP_MODULES):
        return None
    for cls, act in _ACT_BY_MODULE.items():
        if isinstance(mod, cls):
            _check_parameters(act, {k: getattr(mod, k) for k in act.parameters}, f"{cls.__name__} {target!r}")
            return act.name
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
            if target in _ACT_BY_FUNCTION:
                act = _ACT_BY_FUNCTION[target]
                _check_parameters(act, _function_parameters(act, node), f"{act.name} ({where})")
                attach(act.name, where)
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
            if node.target in _ACT_BY_METHOD:
                attach(_ACT_BY_METHOD[node.target].name, where)
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


