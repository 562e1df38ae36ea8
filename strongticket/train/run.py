"""A training run end to end: config → data → method → run directory (resumable, DDP-aware).

:func:`train_run` is the library entry point behind ``strongticket train``; it resolves the configuration
(:func:`resolve_config`), checks the output, loads the data, and runs the method against a
:class:`~strongticket.train.context.RunContext` (which owns the side effects and makes resuming exact).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from strongticket.errors import InputError
from strongticket.nets.zoo import model_entry
from strongticket.train.config import RunConfig, derive_seed, versions
from strongticket.train.context import RunContext, _barrier
from strongticket.train.data import Dataset, dataset_entry, load_dataset
from strongticket.train.loop import evaluate
from strongticket.train.masking import Masks, density_report
from strongticket.train.methods import method_entry
from strongticket.train.pretrained import check_pretrained_fits, read_pretrained
from strongticket.train.rundir import RunDir


# files a finished run holds; summary.json records their sizes and digests, checked when the run is rerun
RUN_FILES = ("config.json", "metrics.jsonl", "mask.safetensors", "model.safetensors")


def resolve_device(device: str) -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise InputError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def init_distributed(device: str = "auto") -> tuple[int, int, torch.device]:
    """Join the process group ``torchrun`` describes (NCCL on GPUs, gloo on CPU); return (rank, world, device).

    Without ``torchrun`` (no ``WORLD_SIZE`` > 1 in the environment) this is a single process: (0, 1, device).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return 0, 1, dev
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), dev


# ------------------------------------------------------------------------------------------- entry point


def resolve_config(config: RunConfig, data: Dataset | None = None) -> RunConfig:
    """Return ``config`` with every "unset: the method's (dataset's) own" field resolved, once, where a run starts.

    Looks the dataset, model and method up in their registries (an unknown name is an :class:`InputError`
    listing the valid ones) and fills ``prune.density`` (1 for ``dense``; required by every pruning method),
    ``prune.scope`` and ``model.init`` (the method's defaults) and, given the loaded ``data``, ``data.augment``
    (the dataset's standard augmentation). The result is what ``config.json`` records.
    """
    dataset_entry(config.data.dataset)
    model_entry(config.model.model)
    entry = method_entry(config.prune.method)
    p = config.prune
    density = p.density
    if density is None:
        if entry.name != "dense":
            raise InputError(f"method {entry.name} needs a density: pass --density D (or density = D in [prune]) "
                             "with D in (0, 1], got none")
        density = 1.0
    config = replace(config, prune=replace(p, density=density, scope=p.scope or entry.default_scope),
                     model=replace(config.model, init=config.model.init or entry.default_init))
    if data is not None and config.data.augment is None:
        config = replace(config, data=replace(config.data, augment=data.augment))
    return config


def meta_model(config: RunConfig, data: Dataset) -> torch.nn.Module:
    """The run's zoo model on the meta device (shapes and modules, no values): what :meth:`Method.check_run`
    inspects before anything is written."""
    from strongticket.nets.zoo import build_model

    m, c = config.model, data.input_shape
    with torch.device("meta"):
        return build_model(m.model, num_classes=data.num_classes, in_channels=c[0], image_size=c[1],
                           width=m.width, bias=m.bias)


def train_run(config: RunConfig, out: str | os.PathLike[str], *, data_dir: str | os.PathLike[str] | None = None,
              device: str = "auto", overwrite: bool = False, bar: Any = None,
              note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the training run ``config`` in directory ``out``; return its summary.

    Everything is validated, the unset fields resolved (:func:`resolve_config`) and the data loaded before
    the directory is touched, so bad input leaves no half-made run behind. Under ``torchrun`` the processes share the work (DDP) and rank 0 writes.

    Raises
    ------
    InputError
        Invalid configuration, or ``out`` holds a run of another configuration (the differing fields are
        named).
    DataError
        Missing or damaged dataset files.
    CheckpointError
        A damaged checkpoint in ``out``.
    """
    rank, world, dev = init_distributed(device)
    rundir = RunDir(out)
    if rank == 0:
        rundir.check_writable(overwrite=overwrite)
    resolve_config(config)  # registry names and the density, before the data is read
    data = load_dataset(config.data.dataset, data_dir, "cpu")
    config = resolve_config(config, data)
    method = method_entry(config.prune.method)(config.prune)
    method.check()
    shapes = meta_model(config, data)
    method.check_run(config, shapes)
    if config.model.init_from is not None:
        if method.keeps_random_weights:
            raise InputError(f"--init-from does not apply to --method {method.name}: its weights stay the random "
                             "initialisation (a strong ticket), so pre-trained weights would never be used")
        # a run that is not finished, or of another architecture, fails before the directory is made
        check_pretrained_fits(shapes, read_pretrained(config.model.init_from)[0], config.model.init_from)
    d = config.data
    if d.train_subset or d.test_subset:
        data = data.subset(d.train_subset, d.test_subset, seed=derive_seed(config.seed, "subset"))
    # a subset larger than the set is the whole set (old runs asked for such sizes and must still resume):
    # the summary records the sizes used, and the user is told
    examples = {"train_examples": len(data.train_y), "test_examples": len(data.test_y)}
    for split, asked in (("train", d.train_subset), ("test", d.test_subset)):
        if asked is not None and asked > examples[f"{split}_examples"] and note is not None:
            note(f"data.{split}_subset {asked} is more than the {examples[f'{split}_examples']} {split} examples "
                 f"of {d.dataset}: all of them are used (summary.json: {split}_examples)")
    method.check_data(config, len(data.train_y))
    data = data.to(dev)
    meta = {"versions": versions(), "device": str(dev), "world_size": world, "host": platform.node()}
    if rank == 0:
        resumed = rundir.open(config, meta=meta, overwrite=overwrite)
    _barrier(world)
    if rank != 0:
        resumed = True
    done = rundir.read_summary()
    if resumed and done is not None:
        rundir.verify_files(done)
        return done
    started = time.perf_counter()
    ctx = RunContext(config, data, rundir, rank=rank, world_size=world, bar=bar, note=note)
    model = method.run(ctx)
    final = evaluate(model, data.test_x, data.test_y, amp=config.optim.amp)
    names = ctx.prunable(model.net)
    params = model.params
    masks = model.masks or {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    rep = density_report(masks)
    total_params = sum(p.numel() for p in model.net.parameters())
    nonzero = sum(int((v != 0).sum()) for k, v in model.effective_state_dict().items()
                  if k in dict(model.net.named_parameters()))
    summary = {
        "warnings": layer_warnings(rep["layers"], sorted(set(rep["collapsed"]) | ctx.collapsed)),
        "method": config.prune.method, "model": config.model.model, "dataset": d.dataset, **examples,
        "target_density": config.prune.density, "density": rep["density"], "sparsity": 1 - rep["density"],
        "prunable": rep["prunable"], "kept": rep["kept"], "params": total_params, "nonzero_params": nonzero,
        "test_accuracy": final["accuracy"], "test_loss": final["loss"],
        "collapsed": sorted(set(rep["collapsed"]) | ctx.collapsed), "layers": rep["layers"],
        "phases": ctx.phases, "wall_time_s": sum(p.get("seconds", 0.0) for p in ctx.phases.values()),
        "train_steps": sum(p.get("steps", 0) for p in ctx.phases.values()),
        "run_seconds": time.perf_counter() - started, "device": str(dev), "world_size": world,
        "prunable_names": names, "scope": config.prune.scope, **ctx.extras,
    }
    if rank == 0:
        rundir.save_tensors("mask.safetensors", masks, {"format": "strongticket-mask"})
        rundir.save_tensors("model.safetensors", model.effective_state_dict())
        summary["files"] = {name: rundir.file_record(name) for name in RUN_FILES if (rundir.path / name).is_file()}
        rundir.write_summary(summary)
    _barrier(world)
    return summary


def layer_warnings(layers: list[dict[str, Any]], collapsed: list[str]) -> list[str]:
    """One warning per layer the mask (nearly) disconnects: nothing kept (layer collapse, Tanaka et al. 2020),
    or fewer weights kept than the layer has outputs, so that some outputs receive no input at all."""
    out = [f"layer collapse: nothing kept in {name}" for name in collapsed]
    for r in layers:
        rows = r["shape"][0] if r["shape"] else 0
        if r["name"] not in collapsed and len(r["shape"]) > 1 and r["kept"] < rows:
            out.append(f"{r['name']} keeps {r['kept']} of {r['numel']} weights, fewer than its {rows} outputs: "
                       f"at least {rows - r['kept']} outputs receive no input")
    return out


def load_mask(path: str | os.PathLike[str]) -> Masks:
    """Load ``mask.safetensors`` (from a run directory or a path to the file) as bool tensors."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_dir():
        p = p / "mask.safetensors"
    if not p.is_file():
        raise InputError(f"no mask file at {str(p)!r}")
    return {k: v.bool() for k, v in load_file(str(p)).items()}
