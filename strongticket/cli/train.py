"""``strongticket train`` (one training run → run directory) and ``strongticket report`` (runs → table + plot)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from strongticket.cli.common import JsonOption, emit_json, print_table, progress, stdout
from strongticket.errors import InputError
from strongticket.train.config import RunConfig


def _opt(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


def train(
    model: Annotated[str | None, _opt("--model", help="Zoo model: fc2, lenet300100, lenet5, conv2/4/6, "
                                                      "resnet20.")] = None,
    dataset: Annotated[str | None, _opt("--dataset", help="digits, mnist, fashion-mnist or cifar10.")] = None,
    method: Annotated[str | None, _opt("--method", help="dense, random, random-erk, magnitude, gmp, imp, imp-rewind, "
                                                        "edge-popup, snip, grasp, synflow.")] = None,
    density: Annotated[float | None, _opt("--density", help="Fraction of prunable weights kept, in (0, 1].")] = None,
    config: Annotated[Path | None, _opt("--config", help="TOML file with [data] [model] [optim] [prune] tables; "
                                                         "flags override it.")] = None,
    out: Annotated[Path | None, _opt("--out", help="Run directory (default "
                                                   "runs/MODEL-DATASET-METHOD-dD-sSEED).")] = None,
    data_dir: Annotated[Path | None, _opt("--data-dir", help="Folder with mnist/, fashion-mnist/, cifar-10-batches-bin/"
                                                             " (default $STRONGTICKET_DATA).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    epochs: Annotated[int | None, _opt("--epochs", help="Epochs per training phase (each IMP round).")] = None,
    batch_size: Annotated[int | None, _opt("--batch-size", help="Global batch size.")] = None,
    optimizer: Annotated[str | None, _opt("--optimizer", help="sgd or adam.")] = None,
    lr: Annotated[float | None, _opt("--lr", help="Learning rate.")] = None,
    momentum: Annotated[float | None, _opt("--momentum", help="SGD momentum.")] = None,
    weight_decay: Annotated[float | None, _opt("--weight-decay", help="Weight decay.")] = None,
    schedule: Annotated[str | None, _opt("--schedule", help="constant, step or cosine.")] = None,
    warmup_steps: Annotated[int | None, _opt("--warmup-steps", help="Linear warm-up steps.")] = None,
    milestones: Annotated[str | None, _opt("--milestones", help="Step schedule: comma-separated epochs.")] = None,
    gamma: Annotated[float | None, _opt("--gamma", help="Step schedule: factor at each milestone.")] = None,
    augment: Annotated[str | None, _opt("--augment", help="none or flip_crop (default: the dataset's own).")] = None,
    amp: Annotated[bool | None, _opt("--amp/--no-amp", help="bfloat16 autocast on CUDA.")] = None,
    early_stop: Annotated[int | None, _opt("--early-stop", help="Stop after N evaluations without "
                                                                "improvement.")] = None,
    scope: Annotated[str | None, _opt("--scope", help="global or layerwise (default: the method's own).")] = None,
    init: Annotated[str | None, _opt("--init", help="default, kaiming_normal, kaiming_uniform, signed_constant "
                                                    "(default: the method's own).")] = None,
    width: Annotated[float | None, _opt("--width", help="Hidden width multiplier.")] = None,
    rate: Annotated[float | None, _opt("--rate", help="IMP: fraction of remaining weights pruned per round.")] = None,
    rewind_step: Annotated[int | None, _opt("--rewind-step", help="imp-rewind: step whose weights are "
                                                                  "restored.")] = None,
    reinit_control: Annotated[bool | None, _opt("--reinit-control/--no-reinit-control",
                                                help="IMP/magnitude: also train the mask from a fresh init.")] = None,
    prune_output: Annotated[bool | None, _opt("--prune-output/--no-prune-output",
                                              help="Whether the output layer is prunable.")] = None,
    prune_bias: Annotated[bool | None, _opt("--prune-bias/--no-prune-bias", help="Whether biases are prunable.")] = None,
    eval_every: Annotated[int | None, _opt("--eval-every", help="Evaluate every N epochs.")] = None,
    checkpoint_every: Annotated[int | None, _opt("--checkpoint-every", help="Checkpoint every N epochs.")] = None,
    train_subset: Annotated[int | None, _opt("--train-subset", help="Use a seeded subset of N training "
                                                                    "images.")] = None,
    test_subset: Annotated[int | None, _opt("--test-subset", help="Use a seeded subset of N test images.")] = None,
    seed: Annotated[int | None, _opt("--seed", help="Seed of every random draw (init, data order, scores).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete an existing run directory first.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Train (dense or with a pruning method) into a run directory; re-running the same command resumes it."""
    from strongticket.train.run import train_run

    cfg = RunConfig.from_toml(config) if config else RunConfig()
    try:
        ms = tuple(int(x) for x in milestones.split(",") if x.strip()) if milestones is not None else None
    except ValueError:
        raise InputError(f"--milestones must be comma-separated integers (epochs), got {milestones!r}") from None
    cfg = cfg.with_updates(
        data={"dataset": dataset, "batch_size": batch_size, "augment": augment, "train_subset": train_subset, "test_subset": test_subset},
        model={"model": model, "width": width, "init": init},
        optim={"optimizer": optimizer, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
               "epochs": epochs, "schedule": schedule, "warmup_steps": warmup_steps, "amp": amp,
               "milestones": ms, "gamma": gamma,
               "early_stop_patience": early_stop},
        prune={"method": method, "density": density,
               "scope": scope,
               "rate": rate, "rewind_step": rewind_step, "reinit_control": reinit_control,
               "prune_output": prune_output, "prune_bias": prune_bias},
        run={"seed": seed, "eval_every": eval_every, "checkpoint_every": checkpoint_every},
    ).validate()
    if out is None:
        out = Path("runs") / (f"{cfg.model.model}-{cfg.data.dataset}-{cfg.prune.method}-d{cfg.prune.density:g}"
                              f"-s{cfg.seed}")
    with progress(not json_out) as bar:
        summary = train_run(cfg, out, data_dir=data_dir, device=device, overwrite=overwrite, bar=bar)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if json_out:
        emit_json({"run_dir": str(out), **{k: v for k, v in summary.items() if k != "layers"}})
        return
    print_table(f"run {out}", ["name", "shape", "kept", "density"],
                [(r["name"], "x".join(map(str, r["shape"])), r["kept"], r["density"]) for r in summary["layers"]])
    stdout.print(f"{summary['method']} {summary['model']}/{summary['dataset']}: test accuracy "
                 f"{100 * summary['test_accuracy']:.2f}% at density {summary['density']:.4g} "
                 f"({summary['wall_time_s']:.1f} s training on {summary['device']})", highlight=False)
    if summary.get("reinit_test_accuracy") is not None:
        stdout.print(f"random-reinit control, same mask: {100 * summary['reinit_test_accuracy']:.2f}%", highlight=False)
    if summary["collapsed"]:
        stdout.print(f"warning: layer collapse, nothing kept in {', '.join(summary['collapsed'])}", style="bold red")


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders holding them.")],
    fmt: Annotated[str, typer.Option("--format", help="markdown or csv.")] = "markdown",
    out: Annotated[Path | None, typer.Option("--out", help="Write the table here (else print it).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write an accuracy-vs-density PNG here.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Tabulate finished runs (density, sparsity, accuracy, params, wall time) and plot accuracy vs density."""
    from strongticket.files import write_bytes_atomic
    from strongticket.report.runs import collect, plot_accuracy_vs_density, to_csv, to_markdown

    if fmt not in ("markdown", "csv"):
        raise InputError(f"--format must be markdown or csv, got {fmt!r}")
    rows = collect(runs)
    text = to_markdown(rows) if fmt == "markdown" else to_csv(rows)
    if out is not None:
        write_bytes_atomic(out, text.encode())
    if plot is not None:
        plot_accuracy_vs_density(rows, plot)
    if json_out:
        emit_json({"runs": rows, "table": str(out) if out else None, "plot": str(plot) if plot else None})
    elif out is None:
        typer.echo(text, nl=False)
