"""``strongticket essential``: essential sparsity of a trained dense model (Jaiswal et al. 2023), unstructured and
N:M, and how it emerges over the epochs of one dense training run (see :mod:`strongticket.essential` and
docs/training.md).

Thin: check every argument and the output directory, call :func:`strongticket.essential.essential_sparsity`,
write ``essential.json``, ``essential.md`` and ``essential.png`` into ``--out`` (whole, atomically), print the
table or one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongticket.cli.common import JsonOption, emit_json, stderr, stdout
from strongticket.errors import InputError

#: The file that marks an ``essential`` output directory (``--overwrite`` replaces only such a directory).
MARKER = "essential.json"


def _is_marker(path: Path) -> bool:
    from strongticket.files import has_format

    return has_format(path, "strongticket-essential")


def essential(
    out: Annotated[Path, typer.Option("--out", help="Directory to write: essential.json, essential.md, "
                                                    "essential.png.", show_default=False)],
    run: Annotated[Path | None, typer.Option("--run", help="A finished dense run directory (strongticket train "
                                                           "--method dense): its final weights are swept.",
                                             show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML of a dense run (strongticket train's "
                                                                 "format): trained here, every snapshot swept.",
                                                show_default=False)] = None,
    pattern: Annotated[list[str] | None, typer.Option("--pattern", help="N:M pattern beside unstructured, N kept of "
                                                                        "every M (repeatable; default 2:4 and "
                                                                        "4:8).", show_default=False)] = None,
    sparsities: Annotated[str, typer.Option("--sparsities", help="Unstructured grid: numbers in [0, 1) and "
                                                                 "START:STOP:STEP ranges, comma-separated.")
                          ] = "0:0.98:0.02,0.99",
    max_drop: Annotated[float, typer.Option("--max-drop", help="Essential sparsity: the largest sparsity up to "
                                                               "which accuracy stays within this many points of "
                                                               "dense.")] = 1.0,
    min_knee_distance: Annotated[float, typer.Option("--min-knee-distance", help="A knee must lie this far above "
                                                                                 "the chord of the [0, 1]-scaled "
                                                                                 "curve.")] = 0.05,
    epochs: Annotated[int | None, typer.Option("--epochs", help="With --config: epochs to train (default the "
                                                                "config's).", show_default=False)] = None,
    snapshots_per_epoch: Annotated[int, typer.Option("--snapshots-per-epoch", help="With --config: weight "
                                                                                   "snapshots swept per epoch.")
                                   ] = 1,
    keep_output: Annotated[bool, typer.Option("--keep-output", help="Never prune the output layer (default: "
                                                                    "pruned with the others).")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with mnist/, fashion-mnist/, "
                                                                     "cifar-10-batches-bin/ (default "
                                                                     "$STRONGTICKET_DATA).", show_default=False)
                        ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, auto, cuda or cuda:N.")] = "cpu",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if an earlier essential run wrote "
                                                                "it (never anything else).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Essential sparsity (Jaiswal et al. 2023): one-shot global magnitude pruning of a trained dense model over a
    sparsity sweep, no retraining; unstructured beside N:M; the sharp dropping point found two ways.

    With --config the dense run is trained here with the one training loop and its weights are swept after every
    epoch (or --snapshots-per-epoch times an epoch), to show whether the essential sparsity emerges abruptly.
    """
    from strongticket.essential import essential_sparsity, parse_pattern, parse_sparsities
    from strongticket.files import atomic_directory, check_writable_directory, write_bytes_atomic, write_json_atomic
    from strongticket.jsonio import jsonable
    from strongticket.report.essential_plot import plot_essential
    from strongticket.train.config import RunConfig

    # every argument and the destination before any work
    if (run is None) == (config is None):
        raise InputError("pass exactly one of --run RUN_DIR (a finished dense run) or --config FILE (a dense run "
                         f"to train), got {'both' if run is not None else 'neither'}")
    if run is not None and epochs is not None:
        raise InputError(f"--epochs applies to --config only (a --run is already trained), got --epochs {epochs}")
    if run is not None and snapshots_per_epoch != 1:
        raise InputError("--snapshots-per-epoch applies to --config only (a --run keeps only its final weights), "
                         f"got {snapshots_per_epoch}")
    if isinstance(snapshots_per_epoch, bool) or snapshots_per_epoch < 1:
        raise InputError(f"--snapshots-per-epoch must be a positive integer, got {snapshots_per_epoch}")
    if epochs is not None and epochs < 1:
        raise InputError(f"--epochs must be a positive integer, got {epochs}")
    if not 0 <= max_drop < 100:
        raise InputError(f"--max-drop must be in [0, 100) accuracy points, got {max_drop:g}")
    if not min_knee_distance >= 0:
        raise InputError(f"--min-knee-distance must be >= 0, got {min_knee_distance:g}")
    patterns = [parse_pattern(p) for p in (pattern or ["2:4", "4:8"])]
    grid = parse_sparsities(sparsities)
    cfg = None
    if config is not None:
        cfg = RunConfig.from_toml(config)
        if epochs is not None:
            cfg = cfg.with_updates(optim={"epochs": epochs})
    check_writable_directory(out, overwrite=overwrite, marker=MARKER, what="--out", is_marker=_is_marker)

    def note(message: str) -> None:
        if not json_out:
            stderr.print(message, highlight=False, markup=False)

    result = essential_sparsity(run_dir=run, config=cfg, data_dir=data_dir, device=device, sparsities=grid,
                                patterns=patterns, max_drop=max_drop / 100, min_knee_distance=min_knee_distance,
                                per_epoch=snapshots_per_epoch, prune_output=not keep_output, note=note)
    record = result.to_dict()
    markdown = result.to_markdown()
    with atomic_directory(out, overwrite=overwrite, marker=MARKER, what="--out", is_marker=_is_marker) as tmp:
        write_json_atomic(tmp / MARKER, jsonable(record))
        write_bytes_atomic(tmp / "essential.md", markdown.encode())
        plot_essential(result, tmp / "essential.png")
    if json_out:
        emit_json({"out": str(out), **{k: v for k, v in record.items() if k != "snapshots"},
                   "epochs": [{"epoch": s.epoch, "step": s.step, "dense_accuracy": s.dense_accuracy,
                               **{f"essential_{c.pattern.replace(':', '_')}": c.essential for c in s.curves},
                               **{f"knee_{c.pattern.replace(':', '_')}": c.knee for c in s.curves}}
                              for s in result.snapshots]})
        return
    stdout.print(markdown, highlight=False, markup=False)
    stdout.print(f"wrote {out}/essential.json, essential.md, essential.png", highlight=False, markup=False)


__all__ = ["essential"]
