"""``strongticket compare``: constructed and found tickets on one task -> one directory, one table, three figures.

Thin: read the configuration, call :func:`strongticket.compare.compare` (or :func:`~strongticket.compare.merge`),
print the table or one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from strongticket.cli.common import JsonOption, emit_json, stderr, stdout


def compare(
    config: Annotated[Path, typer.Argument(help=escape("Comparison TOML: name, seeds, [train] (the task's training "
                                                       "run), [[construct]] and [[find]] entries (see "
                                                       "docs/compare.md)."))],
    out: Annotated[Path | None, typer.Option("--out", help="Comparison directory (default runs/compare-<config "
                                                           "name>); rerunning the command resumes it.",
                                             show_default=False)] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="Run only slice I/K of the units (e.g. 2/3; one "
                                                              "directory per shard, then --merge).",
                                              show_default=False)] = None,
    merge: Annotated[list[Path] | None, typer.Option("--merge", metavar="DIR",
                                                     help="A shard directory to assemble into --out (repeat the "
                                                          "option for each shard); runs nothing.",
                                                     show_default=False)] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Folder with mnist/, fashion-mnist/ ... "
                                                                     "(default $STRONGTICKET_DATA).",
                                                  show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="Training device: auto, cpu, cuda or cuda:N "
                                                         "(constructions run on the CPU).")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a comparison directory of another "
                                                                "configuration (never anything else).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Compare strong tickets constructed with no training against tickets found by training, on one task.

    Writes one result file per (method, setting, seed) as each finishes, so a kill loses at most the unit in
    flight and rerunning the same command resumes; then table.md, table.csv, rows.json and three figures
    (accuracy vs remaining parameters, error vs width, wall time vs accuracy).
    """
    from strongticket.compare import CompareConfig
    from strongticket.compare import compare as run_compare
    from strongticket.compare import merge as run_merge
    from strongticket.compare.units import parse_shard
    from strongticket.errors import InputError
    from strongticket.train.run import resolve_device

    cfg = CompareConfig.from_toml(config)
    spec = parse_shard(shard) if shard is not None else None
    if out is None:
        from strongticket.compare.config import slug

        suffix = f"-shard{spec[0]}of{spec[1]}" if spec else ""
        out = Path("runs") / f"compare-{slug(config.stem)}{suffix}"
    if merge:
        if spec is not None:
            raise InputError("--merge assembles finished shards and runs nothing: do not combine it with --shard")
        report = run_merge(cfg, out, merge, overwrite=overwrite)
    else:
        resolve_device(device)
        note = None if json_out else (lambda m: stderr.print(m, highlight=False, markup=False))
        report = run_compare(cfg, out, shard=spec, data_dir=data_dir, device=device, overwrite=overwrite, note=note)
    if json_out:
        emit_json(report)
        return
    stdout.print(Path(report["files"]["table"]).read_text(), highlight=False, markup=False)
    stdout.print(f"{report['done']} of {report['units']} units have results in {report['out']}; figures: "
                 f"{', '.join(report['files']['figures']) or 'none yet'}", highlight=False, markup=False)


__all__ = ["compare"]
