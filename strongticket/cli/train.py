"""``strongticket train`` (one training run → run directory) and ``strongticket report`` (runs → table + plot)."""

from __future__ import annotations

import inspect
import os
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from strongticket.cli.common import JsonOption, emit_json, print_table, progress, stderr, stdout
from strongticket.errors import InputError
from strongticket.train.config import SECTIONS, RunConfig, field_default, flag_name, setting_fields


def _flag_type(tp: Any) -> Any:
    """The command-line type of a config annotation: lists are typed as comma-separated text."""
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_args(tp) and \
        typing.get_origin(tp) is not tuple else [tp]
    base = args[0]
    return str if typing.get_origin(base) is tuple else base


def _config_parameters() -> list[inspect.Parameter]:
    """One ``--flag`` per setting of the config dataclasses (open_lth's hparams habit): name, type, help and
    choices come from the declarations in :mod:`strongticket.train.config`, and every default is None ("not
    given": the TOML's value, else the dataclass default), so no default is written twice."""
    out = []
    for section, cls in [*SECTIONS.items(), ("run", RunConfig)]:
        hints = typing.get_type_hints(cls)
        for f in setting_fields(cls):
            tp = _flag_type(hints[f.name])
            flag = flag_name(f)
            names = (f"{flag}/--no-{flag[2:]}",) if tp is bool else (flag, *f.metadata.get("aliases", ()))
            default = field_default(f)
            shown = "" if default is None or default == () else f" [default: {_show(default)}]"
            option = typer.Option(*names, help=escape(f.metadata["help"] + shown), show_default=False,
                                  rich_help_panel=f"{section} settings" if section != "run" else "run settings")
            out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                         annotation=Annotated[tp | None, option]))
    return out


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _parse_list(flag: str, text: str, item: type) -> tuple[Any, ...]:
    try:
        return tuple(item(x) for x in text.split(",") if x.strip())
    except ValueError:
        kind = "integers" if item is int else "numbers"
        raise InputError(f"{flag} must be comma-separated {kind}, got {text!r}") from None


def config_from_flags(config: Path | None, flags: dict[str, Any]) -> RunConfig:
    """The run's configuration: the TOML file (if any), then every flag that was given."""
    cfg = RunConfig.from_toml(config) if config else RunConfig()
    updates: dict[str, dict[str, Any]] = {}
    for section, cls in [*SECTIONS.items(), ("run", RunConfig)]:
        hints = typing.get_type_hints(cls)
        for f in setting_fields(cls):
            value = flags.get(f.name)
            if value is not None and typing.get_origin(_flag_type(hints[f.name])) is None and \
                    typing.get_origin(hints[f.name]) is tuple:
                value = _parse_list(flag_name(f), value, typing.get_args(hints[f.name])[0])
            updates.setdefault(section, {})[f.name] = value
    return cfg.with_updates(**updates)


def train(
    config: Path | None = None,
    out: Path | None = None,
    data_dir: Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
    json_out: bool = False,
    **settings: Any,
) -> None:
    """Train (dense or with a pruning method) into a run directory; re-running the same command resumes it.

    Every setting of the run configuration has a flag; flags override the --config TOML file, which overrides
    the defaults. A setting left unset takes the method's own value (scope, init) or the dataset's (augment),
    resolved when the run starts and recorded in config.json.
    """
    from strongticket.train.run import resolve_config, train_run

    cfg = config_from_flags(config, settings)
    if out is None:
        d = cfg.prune.density if cfg.prune.density is not None else 1.0
        out = Path("runs") / f"{cfg.model.model}-{cfg.data.dataset}-{cfg.prune.method}-d{d:g}-s{cfg.seed}"
    resolve_config(cfg)  # names and density checked before the progress bar starts
    try:
        with progress(not json_out) as bar:
            summary = train_run(cfg, out, data_dir=data_dir, device=device, overwrite=overwrite, bar=bar,
                                note=lambda m: stderr.print(m, highlight=False))
    except KeyboardInterrupt:
        if (Path(out) / "config.json").is_file():
            stderr.print(f"interrupted: run {str(out)!r} can be resumed with the same command "
                         f"({_resume_command(out)})", highlight=False)
        raise
    if int(os.environ.get("RANK", "0")) != 0:
        return
    for w in summary.get("warnings", []):
        stderr.print(f"warning: {w}", highlight=False)
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



def _resume_command(out: Path) -> str:
    import shlex
    import sys

    argv = [a for a in sys.argv[1:] if a != "--overwrite"]
    return "strongticket " + " ".join(shlex.quote(a) for a in argv) if argv else f"strongticket train --out {out}"


train.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Path | None, typer.Option("--config", help=escape("TOML file with [data] [model] [optim] [prune] tables "
                                                          "and top-level seed, eval_every, checkpoint_every; flags "
                                                          "override it."),
                                  show_default=False)]),
    inspect.Parameter("out", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Path | None, typer.Option("--out", help="Run directory (default runs/MODEL-DATASET-METHOD-dD-sSEED).",
                                  show_default=False)]),
    inspect.Parameter("data_dir", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Path | None, typer.Option("--data-dir", help="Folder with mnist/, fashion-mnist/, cifar-10-batches-bin/ "
                                                     "(default $STRONGTICKET_DATA).", show_default=False)]),
    inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default="auto", annotation=Annotated[
        str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")]),
    inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run directory (never anything else).")]),
    inspect.Parameter("json_out", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption),
    *_config_parameters(),
])


def report(
    paths: Annotated[list[str], typer.Argument(metavar="RUNS", help="Comparison, run or ticket directories, or "
                                                                    "folders holding them.")],
    fmt: Annotated[str, typer.Option("--format", help="markdown or csv.")] = "markdown",
    out: Annotated[Path | None, typer.Option("--out", help="Write the table here (else print it).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write an accuracy-vs-density (runs) or "
                                                             "accuracy-vs-parameters (comparisons) PNG here.")] = None,
    figures: Annotated[Path | None, typer.Option("--figures", help="Comparisons: write the three figures into "
                                                                   "this folder.")] = None,
    page: Annotated[Path | None, typer.Option("--page", help="Comparisons: write a markdown results page (tables "
                                                             "and figures) here, e.g. docs/results.md.")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="One comparison: copy its small files (config, "
                                                                 "results, table; no checkpoints) to this folder, "
                                                                 "to commit them.")] = None,
    view: Annotated[str, typer.Option("--view", help="auto (runs alone: the runs table; with comparisons or "
                                                     "tickets: the comparison table), runs, compare, or transfer "
                                                     "(source/target configuration x ticket kind).")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out or --plot file "
                                                                "(never a directory).")] = False,
    json_out: JsonOption = False,
) -> None:
    """Tabulate results: training runs (density, accuracy, params, wall time), or comparisons, runs and tickets
    together in the comparison's table (mean ± std over seeds) with its figures."""
    from strongticket.compare.sources import _find
    from strongticket.report.runs import report_paths

    runs = report_paths(paths)  # before anything else: an empty path would scan the current folder
    if fmt not in ("markdown", "csv"):
        raise InputError(f"--format must be markdown or csv, got {fmt!r}")
    if view not in ("auto", "runs", "compare", "transfer"):
        raise InputError(f"--view must be auto, runs, compare or transfer, got {view!r}")
    from strongticket.files import check_writable_file

    for path, what in ((out, "--out"), (plot, "--plot")):  # before any work: the user's files stay theirs
        if path is not None:
            check_writable_file(path, overwrite=overwrite, what=what)
    if page is not None:
        from strongticket.compare import check_page_destination

        check_page_destination(page)
    if view == "transfer":
        from strongticket.files import write_bytes_atomic
        from strongticket.report import transfer as tr

        rows = tr.transfer_table(tr.transfer_runs(runs))
        text = tr.to_markdown(rows) if fmt == "markdown" else tr.to_csv(rows)
        if out is not None:
            write_bytes_atomic(out, text.encode())
        if json_out:
            emit_json({"rows": rows, "table": str(out) if out else None})
        elif out is None:
            typer.echo(text, nl=False)
        return
    kinds = {kind for p in runs if Path(p).exists() for kind, _ in _find(Path(p))}
    comparison = kinds - {"run"} or page is not None or export is not None or figures is not None
    if view == "compare" or (view == "auto" and comparison):
        _report_comparison(runs, fmt, out, plot, figures, page, export, json_out)
        return
    from strongticket.files import write_bytes_atomic
    from strongticket.report.runs import collect, plot_accuracy_vs_density, to_csv, to_markdown

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


def _report_comparison(paths: list[Path], fmt: str, out: Path | None, plot: Path | None, figures: Path | None,
                       page: Path | None, export: Path | None, json_out: bool) -> None:
    import shlex
    import sys
    import tempfile

    from strongticket.compare import copy_results, results_page
    from strongticket.compare.sources import collect
    from strongticket.compare.table import aggregate, plot_figures, to_csv, to_markdown
    from strongticket.files import write_bytes_atomic

    # the merged table (one task only); a results page or an export alone keeps each comparison apart
    merged = out is not None or plot is not None or figures is not None or (page is None and export is None)
    rows = aggregate(collect(paths)) if merged else []
    text = (to_markdown(rows) if fmt == "markdown" else to_csv(rows)) if merged else ""
    written: dict[str, Any] = {}
    if export is not None:
        if len(paths) != 1:
            raise InputError(f"--export copies one comparison directory, got {len(paths)} paths")
        copy_results(paths[0], export)
        written["export"] = str(export)
    if page is not None:
        args = [a for a in sys.argv[1:] if a != "--json"]
        command = "strongticket " + " ".join(shlex.quote(a) for a in args) if args else ""
        written.update(results_page(paths, page, command=command))
    if figures is not None:
        written["figures"] = [str(p) for p in plot_figures(rows, figures)]
    if plot is not None:
        with tempfile.TemporaryDirectory() as tmp:
            made = plot_figures(rows, tmp)
            write_bytes_atomic(plot, made[0].read_bytes())
        written["plot"] = str(plot)
    if out is not None:
        write_bytes_atomic(out, text.encode())
        written["table"] = str(out)
    if json_out:
        emit_json({"rows": rows, **written} if merged else written)
    elif not merged:
        typer.echo("; ".join(f"{k}: {v}" for k, v in written.items() if not isinstance(v, list)))
    elif out is None:
        typer.echo(text, nl=False)
