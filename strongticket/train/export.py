"""Training runs as :class:`~strongticket.ticket.Ticket` objects: edge-popup and GEM-MINER runs are strong tickets.

Edge-popup (Ramanujan et al. 2020, §3) never changes a weight: it learns which edges of a frozen random network
to keep. GEM-MINER's search (Sreenivasan et al. 2022, §3) does the same with its rounded scores and iterative
freezing: the mask it finds on the frozen random weights, before any fine-tuning, is a strong ticket. For both
the trainer draws that random network exactly as a construction does, ``WeightDistribution.generate(spec,
seed)`` with the spec of the zoo model, the law of the run's init scheme and the run's seed
(:func:`strongticket.train.masking.init_regenerable`), and records it in ``summary.json``. So
:func:`run_to_ticket` returns the Ticket a construction would: the zoo model's ``NetSpec``, that distribution
and seed, and the run's masks renamed from the zoo model's state_dict keys (``1.weight``) to the spec's
(``layers.1.weight``). Parameters the run did not prune (biases unless ``prune_bias``, the output layer if
not ``prune_output``) are kept whole, with an all-True mask.

Before returning, the export regenerates the random weights and checks them bit for bit against weights the
run saved while they were still the random ones: for edge-popup, every kept entry of ``model.safetensors``
(every pruned one is 0) and every entry of the final ``train`` checkpoint when it is there; for GEM-MINER, the
kept entries of the final ``search`` checkpoint (which must be there: with ``gem_finetune`` the run's
``model.safetensors`` holds the fine-tuned weights) and, without fine-tuning, of ``model.safetensors`` too. A
run whose weights were not drawn that way (one made before the trainer drew them from the seed) is refused with
the number of differing entries. The exported GEM-MINER ticket is the search's mask on the random weights; its
recorded accuracy is the run's ``strong_ticket_test_accuracy``, not the fine-tuned network's. The fine-tuned
network itself (``variant="finetuned"``) is refused: its weights were trained.

Other methods are refused, by design. IMP, magnitude, SNIP, GraSP, SynFlow, GMP, random and dense runs train
the weights, so their kept weights are not the random ones, and their init is drawn from a ``torch.Generator``
stream, not per parameter from ``(seed, name)``. A Ticket for them would claim what the Ticket contract
forbids ("its surviving weights are, bit for bit, the random weights regenerated from the seed"), and
``verify`` would measure a network the run never trained. Their masks are already in the format the
constructions use: ``mask.safetensors`` in the run directory, keyed by state_dict name (docs/formats.md).

A model no ``NetSpec`` describes (ResNet-20: BatchNorm, residual additions) is refused with the unsupported
layer named. Errors are one-line :class:`~strongticket.errors.InputError` messages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from strongticket import __version__
from strongticket.errors import InputError
from strongticket.files import read_json_object
from strongticket.nets.zoo import build_model
from strongticket.ticket import Ticket
from strongticket.train.config import RunConfig
from strongticket.train.masking import INIT_DISTRIBUTIONS, RandomNetwork, spec_names
from strongticket.train.rundir import CheckpointError, RunDir

@dataclass(frozen=True)
class StrongRun:
    """How the runs of one method are strong tickets.

    Attributes
    ----------
    paper : str
        The method's paper, for the ticket's provenance.
    phase : str
        The training phase whose final checkpoint holds the random weights (kept entries checked).
    full_checkpoint : bool
        Whether every entry of that checkpoint must equal the random weights (edge-popup never zeroes one;
        GEM-MINER's freezing zeroes the frozen ones).
    accuracy : str
        The ``summary.json`` key of the strong ticket's test accuracy.
    """

    paper: str
    phase: str
    full_checkpoint: bool
    accuracy: str


#: The training methods whose runs are strong tickets (an explicit registry: nothing registers itself).
STRONG_METHODS: dict[str, StrongRun] = {
    "edge-popup": StrongRun("Ramanujan et al. 2020, What's hidden in a randomly weighted neural network?, §3",
                            "train", True, "test_accuracy"),
    "gem-miner": StrongRun("Sreenivasan et al. 2022, Rare Gems: Finding Lottery Tickets at Initialization, §3",
                           "search", False, "strong_ticket_test_accuracy"),
}
#: What a run can be exported as: its strong ticket, or (always refused) a fine-tuned network.
VARIANTS = ("strong", "finetuned")


def _finetuned(method: str, config: RunConfig) -> bool:
    """Whether the run's final network (``model.safetensors``) has trained weights."""
    return method == "gem-miner" and config.prune.gem_finetune


def run_to_ticket(run_dir: str | os.PathLike[str], variant: str = "strong") -> Ticket:
    """Return the strong ticket found by the edge-popup or GEM-MINER run in ``run_dir``.

    Parameters
    ----------
    run_dir : path
        A finished run directory of ``strongticket train --method edge-popup`` or ``--method gem-miner``.
    variant : str
        ``strong`` (the mask on the random weights; for GEM-MINER the search's mask, before any fine-tuning).
        ``finetuned`` is refused: a fine-tuned network's weights were trained, so it is not a strong ticket.

    Returns
    -------
    Ticket
        Random ``NetSpec`` of the zoo model, the run's ``WeightDistribution`` and seed, bool masks named by
        spec parameter; provenance ``kind`` = the method, with the run's config, the strong ticket's accuracy
        and the name mapping.

    Raises
    ------
    InputError
        Not a (finished) run directory, a missing or unreadable file, a method whose runs are not strong
        tickets, the fine-tuned variant, a model the NetSpec cannot describe, or saved weights that differ from
        the regenerated random weights.
    """
    if variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    path = Path(run_dir)
    where = repr(str(path))
    meta = _read_json(path, "config.json", "is not a run directory")
    config = RunConfig.from_dict(meta.get("config", {}))
    method = config.prune.method
    strong = STRONG_METHODS.get(method)
    if strong is None:
        raise InputError(f"run {where} used method {method!r}, which trains the weights: its subnetwork is not a "
                         f"strong ticket (the kept weights are not the random ones); only "
                         f"{' and '.join(STRONG_METHODS)} runs export as tickets. Its mask is in mask.safetensors, "
                         "keyed by state_dict name")
    if variant == "finetuned":
        if _finetuned(method, config):
            raise InputError(f"run {where}: the fine-tuned {method} network is not a strong ticket (its weights were "
                             "trained in phase 'finetune'); export the strong ticket, the search's mask on the "
                             "random weights, with --variant strong; the fine-tuned weights are in "
                             "model.safetensors")
        raise InputError(f"run {where} ({method}) has no fine-tuned network: its final weights are the random "
                         "ones; export it with --variant strong")
    summary = _read_json(path, "summary.json", "has not finished (rerun the same `strongticket train` to finish it)")
    record = summary.get("random_network")
    if not isinstance(record, dict):
        raise InputError(f"run {where} records no random network in summary.json: it was made before {method} "
                         "drew its weights from the seed; train it again to export it")
    if "unsupported" in record:
        raise InputError(f"run {where} ({config.model.model}) cannot be a Ticket: {record['unsupported']}")
    random_net = RandomNetwork.from_dict(record)
    _check_record(random_net, config, where)

    run_masks = _read_tensors(path, "mask.safetensors")
    saved = _read_tensors(path, "model.safetensors")
    zoo_to_spec = {k: s for s, k in random_net.names.items()}
    unknown = sorted(set(run_masks) - set(zoo_to_spec))
    if unknown:
        raise InputError(f"mask.safetensors in {where} names {unknown}, which are not parameters of "
                         f"{config.model.model}: {sorted(zoo_to_spec)}")
    shapes = random_net.spec.parameter_shapes()
    masks = {}
    for s, k in random_net.names.items():
        m = run_masks.get(k)
        if m is None:
            masks[s] = torch.ones(shapes[s], dtype=torch.bool)
        elif m.dtype != torch.bool or tuple(m.shape) != shapes[s]:
            raise InputError(f"mask {k!r} in {where} must be bool of shape {shapes[s]}, got {m.dtype} "
                             f"{tuple(m.shape)}")
        else:
            masks[s] = m
    weights = random_net.distribution.generate(random_net.spec, random_net.seed)
    _check_weights(path, random_net, weights, masks, None if _finetuned(method, config) else saved, strong)

    provenance: dict[str, Any] = {
        "kind": method,
        "method": method,
        "paper": strong.paper,
        "run_dir": str(path.resolve()),
        "run_config": meta["config"],
        "run_versions": meta.get("versions", {}),
        "zoo_model": config.model.model,
        "dataset": config.data.dataset,
        "init": config.model.init,
        "names": dict(random_net.names),
        "run_density": summary.get("density"),
        "test_accuracy": summary.get(strong.accuracy),
        "exported_by": {"strongticket": __version__, "torch": torch.__version__},
    }
    if method == "gem-miner":
        provenance["ticket_phase"] = "search"  # the mask before any fine-tuning, on the random weights
        provenance["finetuned_test_accuracy"] = summary.get("finetuned_test_accuracy")
    return Ticket(random_net.spec, random_net.distribution, random_net.seed, masks, provenance)


def _check_record(random_net: RandomNetwork, config: RunConfig, where: str) -> None:
    """The recorded random network must be the zoo model's spec, the init's law and the run's seed."""
    expected = INIT_DISTRIBUTIONS.get(config.model.init)
    if random_net.distribution != expected:
        raise InputError(f"run {where}: recorded distribution {random_net.distribution.to_dict()} is not the law "
                         f"of init {config.model.init!r}")
    if random_net.seed != config.seed:
        raise InputError(f"run {where}: recorded seed {random_net.seed} is not the run's seed {config.seed}")
    spec = random_net.spec
    if spec.input_shape is None or len(spec.input_shape) != 3 or spec.output_shape is None:
        raise InputError(f"run {where}: recorded spec has input shape {spec.input_shape}, expected (C, H, W)")
    m = config.model
    with torch.device("meta"):  # no global random state is read
        net = build_model(m.model, num_classes=spec.output_shape[0], in_channels=spec.input_shape[0],
                          image_size=spec.input_shape[1], width=m.width, bias=m.bias)
    zoo_spec, names = spec_names(net, spec.input_shape)
    if zoo_spec != spec or names != random_net.names:
        raise InputError(f"run {where}: the recorded spec or names differ from those of {m.model} at width "
                         f"{m.width}: {names} vs {random_net.names}")


def _check_weights(path: Path, random_net: RandomNetwork, weights: dict[str, torch.Tensor],
                   masks: dict[str, torch.Tensor], saved: dict[str, torch.Tensor] | None, strong: StrongRun) -> None:
    """Regenerated weights equal the run's, bit for bit: kept entries of ``model.safetensors`` (``saved``; None
    when the run's final weights were trained), pruned ones 0, and the final checkpoint of ``strong.phase``:
    every entry (``strong.full_checkpoint``) or the kept ones. That checkpoint may be missing only when
    ``saved`` was checked."""
    where = repr(str(path))
    why = (f"the weights regenerated from seed {random_net.seed} ({random_net.distribution.name}); the run's "
           "random network is not WeightDistribution.generate(spec, seed)")
    for s, k in random_net.names.items() if saved is not None else ():
        v, w, m = saved.get(k), weights[s], masks[s]
        if v is None or v.dtype != w.dtype or tuple(v.shape) != tuple(w.shape):
            got = "missing" if v is None else f"{v.dtype} {tuple(v.shape)}"
            raise InputError(f"model.safetensors in {where}: {k!r} must be {w.dtype} {tuple(w.shape)}, got {got}")
        bad = int((v[m] != w[m]).sum())
        if bad:
            raise InputError(f"model.safetensors in {where}: {bad} of {int(m.sum())} kept entries of {k!r} differ "
                             f"from {why}")
        if bool((v[~m] != 0).any()):
            raise InputError(f"model.safetensors in {where}: pruned entries of {k!r} are not 0")
    phase = strong.phase
    try:
        loaded = RunDir(path).load_checkpoint(phase)
    except CheckpointError as exc:
        raise InputError(str(exc)) from None
    if loaded is None:
        if saved is None:
            raise InputError(f"run {where} has no final checkpoint of phase {phase!r}, the only record of its "
                             "random weights (model.safetensors holds the fine-tuned ones): they cannot be "
                             "checked against the seed")
        return
    tensors = loaded[0]
    for s, k in random_net.names.items():
        full, w, m = tensors.get(f"net.{k}"), weights[s], masks[s]
        if full is None or full.shape != w.shape:
            raise InputError(f"checkpoint of phase {phase!r} in {where}: {k!r} is missing or has another shape")
        full = full.cpu()
        same = torch.equal(full, w) if strong.full_checkpoint else torch.equal(full[m], w[m])
        if not same:
            raise InputError(f"checkpoint of phase {phase!r} in {where}: {k!r} "
                             f"{'differs' if strong.full_checkpoint else 'has kept entries that differ'} from {why}")


def _read_json(path: Path, name: str, otherwise: str) -> dict[str, Any]:
    f = path / name
    if not path.is_dir():
        what = "is a file, not a run directory" if path.exists() else "does not exist"
        raise InputError(f"run directory {str(path)!r} {what}")
    if not f.is_file():
        raise InputError(f"{str(path)!r} {otherwise}: {name} is missing")
    return read_json_object(f, InputError)


def _read_tensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    f = path / name
    if not f.is_file():
        raise InputError(f"run directory {str(path)!r} has no {name}: the run did not finish or the file was "
                         "removed; rerun the same `strongticket train` command")
    try:
        return dict(load_file(str(f)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name} in {str(path)!r} is not a valid safetensors file: {exc}") from None


__all__ = ["STRONG_METHODS", "VARIANTS", "StrongRun", "run_to_ticket"]
