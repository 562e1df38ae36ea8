"""Starting a run from another run's final weights (fine-tuning a pre-trained model on another task).

:func:`load_pretrained` copies a finished run's ``model.safetensors`` into a freshly built network of the same
architecture. The classifier (the network's last linear layer) is kept at its fresh initialisation when the
class count differs, and the transfer says so; any other difference (a layer missing on either side, or a
shape that differs: another width, another number of input channels) is refused with the layers named.
BatchNorm running statistics travel with the weights. The comparison protocol this serves is Jaiswal et al.
2023 (Instant Soup Pruning, §4): a pre-trained dense model fine-tuned and pruned on a downstream task.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from strongticket.errors import InputError
from strongticket.train.rundir import RunDir

MAX_NAMED = 5  # layers named in an error message before "and N more"


@dataclass(frozen=True)
class Transfer:
    """What :func:`load_pretrained` did.

    Attributes
    ----------
    source : str
        The run directory the weights came from.
    source_method, source_density : str, float
        That run's pruning method and final density (1 for a dense run; below 1 its pruned weights are zeros).
    loaded : tuple of str
        State-dict names copied from the source.
    replaced : tuple of str
        Classifier tensors kept at their fresh initialisation because the class count differs.
    """

    source: str
    source_method: str
    source_density: float
    loaded: tuple[str, ...]
    replaced: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (for ``summary.json``)."""
        return {"source": self.source, "source_method": self.source_method, "source_density": self.source_density,
                "loaded": len(self.loaded), "replaced": list(self.replaced)}

    def describe(self) -> str:
        """One line for the user."""
        text = f"initialised from {self.source} ({self.source_method}, density {self.source_density:g})"
        if self.replaced:
            text += f"; the classifier ({', '.join(self.replaced)}) was replaced: the class count differs"
        return text


def classifier_names(net: nn.Module) -> tuple[str, ...]:
    """State-dict names of the last linear layer's weight (and bias): the classifier of a zoo network."""
    last = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not last:
        return ()
    prefix = last[-1]
    return tuple(f"{prefix}.{p}" for p, _ in dict(net.named_modules())[prefix].named_parameters(recurse=False))


def read_pretrained(run_dir: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return a finished run's final weights and summary.

    Raises
    ------
    InputError
        ``run_dir`` is not a finished run (no ``summary.json``) or holds no ``model.safetensors``.
    """
    from safetensors.torch import load_file

    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"--init-from must be a run directory, got {str(run_dir)!r} (not a directory)")
    summary = RunDir(path).read_summary()
    if summary is None:
        raise InputError(f"--init-from {str(run_dir)!r} is not a finished run (no summary.json); finish or rerun it")
    model = path / "model.safetensors"
    if not model.is_file():
        raise InputError(f"--init-from {str(run_dir)!r} has no model.safetensors")
    return load_file(str(model)), summary


def load_pretrained(net: nn.Module, run_dir: str | os.PathLike[str]) -> Transfer:
    """Copy the final weights of the finished run ``run_dir`` into ``net`` (in place) and return the record.

    Parameters
    ----------
    net : nn.Module
        A freshly initialised network; its classifier keeps its initialisation when the source's has another
        number of outputs.
    run_dir : path
        A finished ``strongticket train`` run directory.

    Raises
    ------
    InputError
        One line naming the layers whose names or shapes differ (other than a classifier's output count),
        or a ``run_dir`` that is not a finished run.
    """
    source, summary = read_pretrained(run_dir)
    replaced = check_pretrained_fits(net, source, run_dir)
    own = net.state_dict()
    loaded = [n for n in own if n not in replaced]
    with torch.no_grad():
        for n in loaded:
            own[n].copy_(source[n].to(own[n].device, own[n].dtype))
    return Transfer(source=str(run_dir), source_method=str(summary.get("method")),
                    source_density=float(summary.get("density", 1.0)), loaded=tuple(loaded),
                    replaced=tuple(replaced))


def check_pretrained_fits(net: nn.Module, source: Mapping[str, torch.Tensor],
                          run_dir: str | os.PathLike[str]) -> list[str]:
    """The classifier entries of ``net`` that keep their initialisation (the source has another number of
    outputs); every other entry of ``net`` must be in ``source`` with its shape. ``net`` may live on the meta
    device: only shapes are read, so a run checks this before its directory is made.

    Raises
    ------
    InputError
        One line naming the layers whose names or shapes differ.
    """
    own = net.state_dict()
    head = set(classifier_names(net))
    replaced = [n for n in sorted(head) if n in source and source[n].shape[1:] == own[n].shape[1:]
                and source[n].shape[0] != own[n].shape[0]]
    problems = [f"{n} missing in the source" for n in own if n not in source]
    problems += [f"{n} only in the source" for n in source if n not in own]
    problems += [f"{n} {tuple(source[n].shape)} vs {tuple(own[n].shape)}" for n in own
                 if n in source and n not in replaced and source[n].shape != own[n].shape]
    if problems:
        more = f" and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
        raise InputError(f"--init-from {str(run_dir)!r}: the architecture does not fit: "
                         f"{'; '.join(problems[:MAX_NAMED])}{more}")
    return replaced
