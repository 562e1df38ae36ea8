"""A physically smaller dense module with the same function as a ticket of 1x1 + kxk pairs.

In a ticket of the 2L CNN constructions (:mod:`strongticket.construct.conv`, :mod:`strongticket.construct.structured`)
every kept intermediate channel of a pair reads one input channel through one weight ``u`` (the univariate
1x1 layer). :func:`compact_module` removes every intermediate channel the masks prune (no kept 1x1 weight or
no kept kxk weight), gathers the input channel each kept one reads, applies the 1x1 layer as a grouped
convolution (``groups`` = kept channels: one weight per channel) and the kxk convolution on the kept
channels only. Pruned weights inside kept kxk slices (kernel granularity) stay as zeros of a dense kernel.
The result computes the ticket's function up to float rounding and has fewer parameters whenever channels
disappear (filter granularity removes most; see ``docs/formats.md`` for the directory written by
:func:`save_compact`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strongticket import __version__
from strongticket.errors import InputError, TicketFormatError
from strongticket.files import atomic_directory, check_writable_directory, read_json_object, save_tensors_atomic, \
    write_json_atomic
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


def _pairs(spec: NetSpec) -> list[tuple[int, int]]:
    """``(i, i + 1)`` for each 1x1 conv + ReLU followed by a kxk conv, the pairs of the 2L CNN constructions."""
    out = []
    i = 0
    while i < len(spec.layers):
        a = spec.layers[i]
        b = spec.layers[i + 1] if i + 1 < len(spec.layers) else None
        if (isinstance(a, Conv2d) and a.kernel_size == 1 and a.activation == "relu" and not a.bias
                and isinstance(b, Conv2d) and b.in_channels == a.out_channels and not b.bias):
            out.append((i, i + 1))
            i += 2
        else:
            i += 1
    return out


def compact_module(ticket: Any, dtype: torch.dtype = torch.float32) -> CompactNet:
    """The compacted dense module of ``ticket`` (a :class:`strongticket.ticket.Ticket`), in eval mode.

    Raises
    ------
    InputError
        When the ticket's network is not a chain of 1x1 + kxk pairs, pooling and Flatten, or a kept
        intermediate channel reads more than one input channel (the univariate structure is then absent).
    """
    spec = ticket.spec
    if spec.input_constant or getattr(spec, "input_constant_channel", False):
        raise InputError("compact: tickets with a constant input channel (biases) are not supported")
    pairs = dict(_pairs(spec))
    weights = ticket.random_weights()
    layers: list[nn.Module] = []
    acts: list[str] = []
    desc: list[dict[str, Any]] = []
    i = 0
    while i < len(spec.layers):
        layer = spec.layers[i]
        if i in pairs:
            second = spec.layers[i + 1]
            n1, n2 = f"layers.{i}.weight", f"layers.{i + 1}.weight"
            m1, m2 = ticket.masks[n1][:, :, 0, 0], ticket.masks[n2]
            if bool((m1.sum(dim=1) > 1).any()):
                raise InputError(f"compact: layer {i}: a kept intermediate channel reads more than one input "
                                 "channel; only univariate 1x1 layers can be compacted")
            kept = torch.nonzero(m1.any(dim=1) & m2.any(dim=(0, 2, 3))).flatten()
            index = m1[kept].to(torch.int64).argmax(dim=1)
            u = weights[n1][kept, index, 0, 0]
            w2 = torch.where(m2, weights[n2], torch.zeros(())).index_select(1, kept)
            if kept.numel() == 0:  # the pair computes 0: one channel with zero weights (torch has no 0-channel conv)
                index, u = torch.zeros(1, dtype=torch.int64), torch.zeros(1)
                w2 = torch.zeros((second.out_channels, 1, second.kernel_size, second.kernel_size))
                kept = index
            layers.append(Univariate(index, u.to(dtype), "relu"))
            acts.append("identity")
            desc.append({"type": "univariate", "channels": int(kept.numel()), "activation": "relu"})
            conv = nn.Conv2d(int(kept.numel()), second.out_channels, second.kernel_size, stride=second.stride,
                             padding=second.padding, bias=False, dtype=dtype)
            with torch.no_grad():
                conv.weight.copy_(w2.to(dtype))
            layers.append(conv)
            acts.append(second.activation)
            desc.append({"type": "conv2d", "in_channels": int(kept.numel()), "out_channels": second.out_channels,
                         "kernel_size": second.kernel_size, "stride": second.stride, "padding": second.padding,
                         "activation": second.activation})
            i += 2
            continue
        if isinstance(layer, Pool):
            layers.append((nn.MaxPool2d if layer.mode == "max" else nn.AvgPool2d)(layer.kernel_size, stride=layer.stride))
            desc.append({"type": "pool", "mode": layer.mode, "kernel_size": layer.kernel_size, "stride": layer.stride,
                         "activation": layer.activation})
        elif isinstance(layer, Flatten):
            layers.append(nn.Flatten(1))
            desc.append({"type": "flatten", "activation": layer.activation})
        else:
            kind = "Linear" if isinstance(layer, Linear) else type(layer).__name__
            raise InputError(f"compact: layer {i} ({kind}) is not part of a 1x1 + kxk pair; compact() takes the "
                             "tickets of the structured and cnn2l constructions on Conv2d targets")
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
        if d["type"] == "conv2d":
            m: nn.Module = nn.Conv2d(d["in_channels"], d["out_channels"], d["kernel_size"], stride=d["stride"],
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
    if not path.is_file():
        return False
    try:
        return read_json_object(path).get("format") == COMPACT_FORMAT
    except (OSError, ValueError):
        return False


__all__ = ["COMPACT_FORMAT", "CompactNet", "Univariate", "check_compact_destination", "compact_module",
           "load_compact", "num_parameters", "save_compact"]
