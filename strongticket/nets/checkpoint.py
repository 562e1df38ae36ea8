"""Trained weights in, a target module out: safetensors checkpoints loaded into a zoo model or a NetSpec.

Only ``.safetensors`` state_dicts are read: a pickled ``.pt`` checkpoint executes code when loaded. Every
mismatch (missing file, wrong format, keys or shapes that do not fit the architecture) is an
:class:`~strongticket.errors.InputError` of one line naming the file and what does not fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.nets.spec import NetSpec


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a ``.safetensors`` file (pickled checkpoints are refused: they execute code).

    Parameters
    ----------
    path : Path
        The checkpoint file.

    Returns
    -------
    dict of str to Tensor
        Parameter name to tensor, as stored.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        what = "is a directory, expected a .safetensors file" if path.is_dir() else "does not exist"
        raise InputError(f"--checkpoint {str(path)!r} {what}")
    if path.suffix != ".safetensors":
        raise InputError(f"--checkpoint must be a .safetensors state_dict (pickled .pt files are not loaded), "
                         f"got {path.name!r}")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"--checkpoint {str(path)!r} is not a valid safetensors file: {exc}") from None


def load_state_into(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``module`` (in its dtypes); an :class:`InputError` saying which keys or shapes do not fit.

    A ``module.`` prefix (``DataParallel`` checkpoints) is stripped. ``what`` names the architecture in the
    message (``"zoo model 'fc2'"``).
    """
    own = module.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(f"checkpoint does not fit {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise InputError(f"checkpoint does not fit {what}: {k!r} has shape {tuple(state[k].shape)}, "
                             f"expected {tuple(v.shape)}")
    module.load_state_dict({k: state[k].to(v.dtype) for k, v in own.items()})


def read_spec_file(path: Path) -> NetSpec:
    """The :class:`~strongticket.nets.spec.NetSpec` stored as JSON in ``path`` (``NetSpec.to_dict`` format).

    Every failure (unreadable file, not JSON, not a valid spec) is one :class:`InputError` naming ``--spec``.
    """
    where = f"--spec {str(path)!r}"
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where} is not a JSON file: {exc}") from None
    try:
        spec = NetSpec.from_dict(data)
        spec.build()  # a spec whose layers cannot be built is as invalid as one that does not parse
    except (InputError, TypeError, ValueError, KeyError) as exc:
        raise InputError(f"{where} is not a valid network spec: {exc}") from None
    return spec


@dataclass(frozen=True)
class Target:
    """A trained target: the module (eval mode) and the shape of one input when known (``(C, H, W)``, ...)."""

    module: nn.Module
    input_shape: tuple[int, ...] | None


def load_target(checkpoint: Path, *, model: str | None = None, spec: Path | None = None, num_classes: int = 10,
                in_channels: int = 1, image_size: int = 28, width: float = 1.0, bias: bool = False) -> Target:
    """The trained target of a construction: a zoo model (``model``) or a spec file (``spec``), with its weights.

    Parameters
    ----------
    checkpoint : Path
        The target's state_dict (``.safetensors``).
    model : str, optional
        Zoo name (see :func:`strongticket.nets.zoo.model_names`); exactly one of ``model`` and ``spec``.
    spec : Path, optional
        JSON :class:`~strongticket.nets.spec.NetSpec` of the target.
    num_classes, in_channels, image_size, width, bias
        The zoo model's shape (ignored with ``spec``).

    Returns
    -------
    Target
        The module in eval mode and its input shape: ``(in_channels, image_size, image_size)`` for a zoo
        model, the spec's ``input_shape`` (None when it records none) for a spec.
    """
    if (model is None) == (spec is None):
        got = "both" if model is not None else "neither"
        raise InputError(f"give the target as --model NAME or --spec SPEC.json (exactly one), got {got}")
    if model is not None:
        from strongticket.nets.zoo import build_model

        target = build_model(model, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                             width=width, bias=bias, seed=0)  # initial weights: all replaced by the checkpoint
        what, shape = f"zoo model {model!r}", (in_channels, image_size, image_size)
    else:
        net_spec = read_spec_file(spec)
        target = net_spec.build()
        what, shape = f"spec {spec.name!r}", net_spec.input_shape
    load_state_into(target, load_checkpoint(checkpoint), what)
    return Target(target.eval(), None if shape is None else tuple(shape))


__all__ = ["Target", "load_checkpoint", "load_state_into", "load_target", "read_spec_file"]
