"""A physically smaller dense module with the same function as a ticket of univariate 2L pairs.

In a ticket of the 2L CNN constructions (:mod:`strongticket.construct.cnn2l`, :mod:`strongticket.construct.structured`)
every kept intermediate channel (or hidden neuron) of a pair reads one input channel through one weight ``u``
(the univariate first layer). :func:`compact_module` removes every intermediate channel the masks prune (no
kept first-layer weight or no kept second-layer weight), gathers the input channel each kept one reads,
applies the first layer as a grouped 1x1 convolution (``groups`` = kept channels: one weight per channel; a
gather and a scale for a fully connected pair) and the second layer on the kept channels only: a kxk
convolution, the Linear after a Flatten (the columns of the kept channels), or a Linear. A constant input
(biases carried by a channel or coordinate of ones) becomes a first layer that appends it. Pruned weights
inside kept slices (kernel granularity) stay as zeros of a dense kernel. The result computes the ticket's
function up to float rounding and has fewer parameters whenever channels disappear (filter granularity
removes most; see ``docs/formats.md`` for the directory written by :func:`save_compact`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strongticket import __version__
from strongticket.errors import InputError, TicketFormatError
from strongticket.files import atomic_directory, check_writable_directory, has_format, read_json_object, \
    save_tensors_atomic, write_json_atomic
from strongticket.nets.activations import activation
from strongticket.nets.spec import Conv2d, Flatten, Linear, NetSpec, Pool

COMPACT_FORMAT = "strongticket-compact"
COMPACT_VERSION = 1
COMPACT_JSON = "compact.json"
COMPACT_WEIGHTS = "weights.safetensors"


class Univariate(nn.Module):
    """``act(u_h * x[:, index_h])`` per kept channel ``h``: a gather and a grouped 1x1 convolution."""

    def __init__(self, index: torch.Tensor, weight: torch.Tensor, act: str) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.long))
        m = int(index.numel())
        self.conv = nn.Conv2d(m, m, 1, groups=max(m, 1), bias=False, dtype=weight.dtype)
        with torch.no_grad():
            self.conv.weight.copy_(weight.reshape(m, 1, 1, 1))
        self.act_name = act
        self._act = activation(act).fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._act(self.conv(x.index_select(1, self.index)))


class CompactNet(nn.Module):
    """The layers of a compacted ticket, applied in order (each with its activation)."""

    def __init__(self, layers: list[nn.Module], acts: list[str], description: list[dict[str, Any]]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.acts = list(acts)
        self._fns = [activation(a).fn for a in acts]
        self.description = description

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer, fn in zip(self.layers, self._fns):
            x = fn(layer(x))
        return x


class UnivariateLinear(nn.Module):
    """``relu(u_h * x[:, index_h])`` per kept hidden neuron ``h`` of a fully connected pair: a gather and a scale."""

    def __init__(self, index: torch.Tensor, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.to(torch.long))
        self.weight = nn.Parameter(weight.reshape(-1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x.index_select(1, self.index) * self.weight)


class AppendConstant(nn.Module):
    """The random network's constant input: a channel of ones beside an image (``"channel"``) or one coordinate
    of value 1 after the flattened input (``"flat"``), as :class:`strongticket.nets.spec.SpecNet` adds it."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        if mode not in ("channel", "flat"):
            raise InputError(f"constant mode must be 'channel' or 'flat', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "flat":
            x = x.flatten(1)
            return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], dim=1)
        return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


def _is_univariate_conv(layer: Any) -> bool:
    return isinstance(layer, Conv2d) and layer.kernel_size == 1 and layer.activation == "relu" and not layer.bias


def _pairs(spec: NetSpec) -> dict[int, tuple[str, int]]:
    """The pairs of the 2L constructions, by the index of their first layer: ``(kind, index of the second)``.

    * ``"conv"``: a 1x1 conv + ReLU, then a kxk conv reading its channels;
    * ``"flatten"``: a 1x1 conv + ReLU, a Flatten, then a Linear reading ``m S`` inputs (the Linear after a
      Flatten realised before it, :mod:`strongticket.construct.flatten_linear`);
    * ``"linear"``: a Linear ``d -> H d`` + ReLU, then a Linear reading its ``H d`` outputs.
    """
    out: dict[int, tuple[str, int]] = {}
    layers = spec.layers
    i = 0
    while i < len(layers):
        a = layers[i]
        b = layers[i + 1] if i + 1 < len(layers) else None
        c = layers[i + 2] if i + 2 < len(layers) else None
        if _is_univariate_conv(a) and isinstance(b, Conv2d) and b.in_channels == a.out_channels and not b.bias:
            out[i] = ("conv", i + 1)
            i += 2
        elif (_is_univariate_conv(a) and isinstance(b, Flatten) and b.activation == "identity"
              and isinstance(c, Linear) and not c.bias and c.in_features % a.out_channels == 0):
            out[i] = ("flatten", i + 2)
            i += 3
        elif (isinstance(a, Linear) and a.activation == "relu" and not a.bias and isinstance(b, Linear)
              and not b.bias and b.in_features == a.out_features and a.out_features % a.in_features == 0):
            out[i] = ("linear", i + 1)
            i += 2
        else:
            i += 1
    return out


def _kept_univariate(m1: torch.Tensor, used: torch.Tensor, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept intermediate channels (a kept first-layer weight and a kept second-layer weight) and the input each
    reads; an :class:`InputError` when some kept channel reads more than one input."""
    if bool((m1.sum(dim=1) > 1).any()):
        raise InputError(f"compact: {where}: a kept intermediate channel reads more than one input channel; only "
                         "univariate first layers can be compacted")
    kept = torch.nonzero(m1.any(dim=1) & used).flatten()
    return kept, m1[kept].to(torch.int64).argmax(dim=1)


def compact_module(ticket: Any, dtype: torch.dtype = torch.float32) -> CompactNet:
    """The compacted dense module of ``ticket`` (a :class:`strongticket.ticket.Ticket`), in eval mode.

    Pairs (``_pairs``): a 1x1 conv + kxk conv becomes a gather + grouped 1x1 conv + a kxk conv on the kept
    channels; a 1x1 conv + Flatten + Linear becomes the same gather + grouped conv, the Flatten and a Linear on
    the kept channels' columns; a univariate Linear + Linear becomes a gather + scale and a Linear on the kept
    hidden neurons. A constant input (biases) becomes an :class:`AppendConstant` first layer. A pair that keeps
    nothing computes 0: one zero channel stands for it (torch has no 0-channel layers).

    Raises
    ------
    InputError
        When the ticket's network has a layer outside these pairs, pooling and Flatten, or a kept
        intermediate channel reads more than one input (the univariate structure is then absent).
    """
    spec = ticket.spec
    pairs = _pairs(spec)
    weights = ticket.random_weights()
    layers: list[nn.Module] = []
    acts: list[str] = []
    desc: list[dict[str, Any]] = []
    if spec.input_constant or getattr(spec, "input_constant_channel", False):
        mode = "flat" if spec.input_constant else "channel"
        layers.append(AppendConstant(mode))
        acts.append("identity")
        desc.append({"type": "constant", "mode": mode, "activation": "identity"})
    i = 0
    while i < len(spec.layers):
        layer = spec.layers[i]
        if i in pairs:
            kind, j = pairs[i]
            second = spec.layers[j]
            n1, n2 = f"layers.{i}.weight", f"layers.{j}.weight"
            w1, w2 = weights[n1], weights[n2]
            m2 = ticket.masks[n2]
            if kind == "linear":
                m1 = ticket.masks[n1]
                kept, index = _kept_univariate(m1, m2.any(dim=0), f"layer {i}")
                u = w1[kept, index]
                v = torch.where(m2, w2, torch.zeros(())).index_select(1, kept)
                if kept.numel() == 0:
                    index, u, v = torch.zeros(1, dtype=torch.int64), torch.zeros(1), torch.zeros(m2.shape[0], 1)
                layers.append(UnivariateLinear(index, u.to(dtype)))
                acts.append("identity")
                desc.append({"type": "univariate_linear", "features": int(index.numel()), "activation": "relu"})
                lin = nn.Linear(int(index.numel()), second.out_features, bias=False, dtype=dtype)
                with torch.no_grad():
                    lin.weight.copy_(v.to(dtype))
                layers.append(lin)
                acts.append(second.activation)
                desc.append({"type": "linear", "in_features": int(index.numel()),
                             "out_features": second.out_features, "activation": second.activation})
                i = j + 1
                continue
            m1 = ticket.masks[n1][:, :, 0, 0]
            mch = m1.shape[0]
            if kind == "conv":
                used = m2.any(dim=(0, 2, 3))
            else:
                used = m2.reshape(m2.shape[0], mch, -1).any(dim=(0, 2))
            kept, index = _kept_univariate(m1, used, f"layer {i}")
            u = w1[kept, index, 0, 0]
            v = torch.where(m2, w2, torch.zeros(()))
            if kind == "conv":
                v = v.index_select(1, kept)
            else:
                v = v.reshape(m2.shape[0], mch, -1).index_select(1, kept).reshape(m2.shape[0], -1)
            if kept.numel() == 0:
                index, u = torch.zeros(1, dtype=torch.int64), torch.zeros(1)
                v = torch.zeros((second.out_channels, 1, second.kernel_size, second.kernel_size)) if kind == "conv" \
                    else torch.zeros((second.out_features, second.in_features // mch))
            width = int(index.numel())
            layers.append(Univariate(index, u.to(dtype), "relu"))
            acts.append("identity")
            desc.append({"type": "univariate", "channels": width, "activation": "relu"})
            if kind == "conv":
                conv = nn.Conv2d(width, second.out_channels, second.kernel_size, stride=second.stride,
                                 padding=second.padding, bias=False, dtype=dtype)
                with torch.no_grad():
                    conv.weight.copy_(v.to(dtype))
                layers.append(conv)
                acts.append(second.activation)
                desc.append({"type": "conv2d", "in_channels": width, "out_channels": second.out_channels,
                             "kernel_size": second.kernel_size, "stride": second.stride, "padding": second.padding,
                             "activation": second.activation})
            else:
                layers.append(nn.Flatten(1))
                acts.append("identity")
                desc.append({"type": "flatten", "activation": "identity"})
                lin = nn.Linear(int(v.shape[1]), second.out_features, bias=False, dtype=dtype)
                with torch.no_grad():
                    lin.weight.copy_(v.to(dtype))
                layers.append(lin)
                acts.append(second.activation)
                desc.append({"type": "linear", "in_features": int(v.shape[1]), "out_features": second.out_features,
                             "activation": second.activation})
            i = j + 1
            continue
        if isinstance(layer, Pool):
            pool = nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d
            layers.append(pool(layer.kernel_size, stride=layer.stride))
            desc.append({"type": "pool", "mode": layer.mode, "kernel_size": layer.kernel_size, "stride": layer.stride,
                         "activation": layer.activation})
        elif isinstance(layer, Flatten):
            layers.append(nn.Flatten(1))
            desc.append({"type": "flatten", "activation": layer.activation})
        else:
            kind = "Linear" if isinstance(layer, Linear) else type(layer).__name__
            raise InputError(f"compact: layer {i} ({kind}) is not part of a univariate pair; compact() takes the "
                             "tickets of the structured and cnn2l constructions")
        acts.append(layer.activation)
        i += 1
    return CompactNet(layers, acts, desc).eval()


def num_parameters(module: nn.Module) -> int:
    """Parameters of ``module`` (buffers such as channel indices not counted)."""
    return sum(p.numel() for p in module.parameters())


def save_compact(module: CompactNet, directory: str | Path, *, input_shape: tuple[int, ...] | None,
                 provenance: dict[str, Any], overwrite: bool = False, what: str = "--out") -> Path:
    """Write ``compact.json`` (format, layers, input shape, provenance) and ``weights.safetensors`` atomically.

    With ``overwrite`` only a directory this function wrote (its ``compact.json`` names the format) is
    replaced, never anything else.
    """
    directory = Path(directory)
    check_compact_destination(directory, overwrite=overwrite, what=what)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    meta = {"format": COMPACT_FORMAT, "format_version": COMPACT_VERSION, "layers": module.description,
            "input_shape": None if input_shape is None else list(input_shape), "provenance": provenance,
            "parameters": num_parameters(module), "strongticket": __version__}
    json.dumps(meta, allow_nan=False)
    with atomic_directory(directory, overwrite=overwrite, marker=COMPACT_JSON, what=what,
                          is_marker=_is_compact_json) as tmp:
        save_tensors_atomic(tmp / COMPACT_WEIGHTS, tensors, metadata={"format": COMPACT_FORMAT})
        write_json_atomic(tmp / COMPACT_JSON, meta)
    return directory


def check_compact_destination(directory: str | Path, *, overwrite: bool, what: str = "--out") -> bool:
    """Before any work: ``directory`` is missing, empty, or (with ``overwrite``) a compacted-ticket directory."""
    return check_writable_directory(directory, overwrite=overwrite, marker=COMPACT_JSON, what=what,
                                    is_marker=_is_compact_json)


def load_compact(directory: str | Path) -> CompactNet:
    """Rebuild the module :func:`save_compact` wrote (JSON and safetensors only, never pickle)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    path = directory / COMPACT_JSON
    if not path.is_file():
        raise TicketFormatError(f"{str(directory)!r} is not a compacted ticket: {COMPACT_JSON} is missing")
    meta = read_json_object(path, TicketFormatError)
    if meta.get("format") != COMPACT_FORMAT or meta.get("format_version") != COMPACT_VERSION:
        raise TicketFormatError(f"{COMPACT_JSON} in {str(directory)!r} is not format {COMPACT_FORMAT} version "
                                f"{COMPACT_VERSION}")
    state = load_file(str(directory / COMPACT_WEIGHTS))
    layers: list[nn.Module] = []
    acts: list[str] = []
    for n, d in enumerate(meta["layers"]):
        if d["type"] == "univariate":
            layers.append(Univariate(state[f"layers.{n}.index"], state[f"layers.{n}.conv.weight"], d["activation"]))
            acts.append("identity")
            continue
        if d["type"] == "univariate_linear":
            layers.append(UnivariateLinear(state[f"layers.{n}.index"], state[f"layers.{n}.weight"]))
            acts.append("identity")
            continue
        if d["type"] == "constant":
            layers.append(AppendConstant(d["mode"]))
            acts.append("identity")
            continue
        if d["type"] == "linear":
            m: nn.Module = nn.Linear(d["in_features"], d["out_features"], bias=False,
                                     dtype=state[f"layers.{n}.weight"].dtype)
            with torch.no_grad():
                m.weight.copy_(state[f"layers.{n}.weight"])
        elif d["type"] == "conv2d":
            m = nn.Conv2d(d["in_channels"], d["out_channels"], d["kernel_size"], stride=d["stride"],
                                     padding=d["padding"], bias=False, dtype=state[f"layers.{n}.weight"].dtype)
            with torch.no_grad():
                m.weight.copy_(state[f"layers.{n}.weight"])
        elif d["type"] == "pool":
            m = (nn.MaxPool2d if d["mode"] == "max" else nn.AvgPool2d)(d["kernel_size"], stride=d["stride"])
        elif d["type"] == "flatten":
            m = nn.Flatten(1)
        else:
            raise TicketFormatError(f"{COMPACT_JSON} in {str(directory)!r}: unknown layer type {d['type']!r}")
        layers.append(m)
        acts.append(d["activation"])
    return CompactNet(layers, acts, meta["layers"]).eval()


def _is_compact_json(path: Path) -> bool:
    return has_format(path, COMPACT_FORMAT)


__all__ = ["AppendConstant", "COMPACT_FORMAT", "CompactNet", "Univariate", "UnivariateLinear",
           "check_compact_destination", "compact_module",
           "load_compact", "num_parameters", "save_compact"]
