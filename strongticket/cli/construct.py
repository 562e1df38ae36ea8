"""``strongticket construct``: a target (zoo name or spec, with its checkpoint) -> a ticket directory.

Thin: parse the options, call :func:`strongticket.nets.checkpoint.load_target` and the construction, save,
print a table or one JSON object. ``--shard I/K`` writes slice I of K of a 2L construction into OUT instead
(:func:`strongticket.construct.shard.run_shard`); ``--merge DIR ...`` assembles the K slice directories into
the ticket OUT (:func:`strongticket.construct.shard.merge`), as ``strongticket compare`` does with its shards:
one command, one output, so that a job array runs the same line with another ``--shard``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, fmt, print_table, status_line, stderr, stdout
from strongticket.construct import CONSTRUCTIONS, build, check_options
from strongticket.construct.distribution import distribution_for
from strongticket.errors import InputError
from strongticket.nets.checkpoint import load_target
from strongticket.ticket import check_ticket_destination

def _opt(*names: str, help: str, show_default: bool = True) -> Any:
    return typer.Option(*names, help=help, show_default=show_default)


def construct(
    out: Annotated[Path, typer.Argument(help="Ticket directory to write (missing, empty, or a ticket with "
                                             "--overwrite).")],
    model: Annotated[str | None, _opt("--model", help="Zoo name of the target (with --checkpoint).")] = None,
    spec: Annotated[Path | None, _opt("--spec", help="JSON NetSpec of the target (with --checkpoint).")] = None,
    checkpoint: Annotated[Path | None, _opt("--checkpoint", help="Target state_dict (.safetensors).")] = None,
    # unset (None) rather than "pensia", so that --merge can refuse a --method given beside it
    method: Annotated[str | None, _opt("--method", help=f"Construction: {', '.join(CONSTRUCTIONS)}. "
                                                        "\\[default: pensia]", show_default=False)] = None,
    eps: Annotated[float | None, _opt("--eps", help="Network error in (0, 1); gives the per-weight eps "
                                                    "(or give --per-weight-eps).")] = None,
    per_weight_eps: Annotated[float | None, _opt("--per-weight-eps", help="Error per target weight in (0, 1) "
                                                                          "(or give --eps).")] = None,
    delta: Annotated[float | None, _opt("--delta", help="Failure probability for the theorem's width (default "
                                                        "0.01).")] = None,
    samples: Annotated[int | None, _opt("--samples", help="Random products per weight, n (default: theorem).")] = None,
    block_size: Annotated[int | None, _opt("--block-size", help="Hidden neurons per input (default: from n and "
                                                                 "--delta by a binomial union bound).")] = None,
    distribution: Annotated[str | None, _opt("--distribution", help="Law of the random weights: uniform (default), "
                                                                    "normal, ..., or target-range.")] = None,
    granularity: Annotated[str | None, _opt("--granularity", help="structured: what is kept or removed whole: "
                                                                  "kernel (default), group or filter.")] = None,
    group: Annotated[int | None, _opt("--group", help="structured, --granularity group: outputs that share one "
                                                      "subset (must divide the layer's output channels).")] = None,
    rho: Annotated[int | None, _opt("--rho", help="lplus1: copies of every target neuron (default: the "
                                                  "theorem's, from --eps and --delta).")] = None,
    reference_first_layer: Annotated[bool | None, _opt("--reference-first-layer", help="lplus1: the first "
                                                       "layer as Burkholz's released code builds it (no LeakyReLU "
                                                       "1/(1+alpha) rescale, no linearisation for tanh/sigmoid), to "
                                                       "measure the difference.", show_default=False)] = None,
    nonneg_input: Annotated[bool | None, _opt("--nonneg-input/--signed-input", help="The target's inputs are >= 0 "
                                              "(images in [0, 1]): build only the positive side of the first "
                                              "layer's split (default: signed inputs).")] = None,
    objective: Annotated[str | None, _opt("--objective", help="pensia, cnn2l: min_error (default) or "
                                                              "sparsest.")] = None,
    solver: Annotated[str | None, _opt("--solver", help="pensia, cnn2l: subset-sum method (default "
                                                        "auto; exact, ...).")] = None,
    num_classes: Annotated[int, _opt("--num-classes", help="Zoo model outputs.")] = 10,
    in_channels: Annotated[int, _opt("--in-channels", help="Zoo model input channels.")] = 1,
    image_size: Annotated[int, _opt("--image-size", help="Zoo model input size.")] = 28,
    width: Annotated[float, _opt("--width", help="Zoo width multiplier.")] = 1.0,
    bias: Annotated[bool, _opt("--bias/--no-bias", help="Zoo model with biases.")] = False,
    strict: Annotated[bool, _opt("--strict/--no-strict", help="Fail if a weight misses its eps (--no-strict: "
                                                               "warn and write the ticket).")] = True,
    include_weights: Annotated[bool, _opt("--include-weights", help="Also write weights.safetensors.")] = False,
    overwrite: Annotated[bool, _opt("--overwrite", help="Replace an existing ticket directory (never anything "
                                                        "else).")] = False,
    shard: Annotated[str | None, typer.Option("--shard", metavar="I/K",
                                              help="Run only slice I/K of the work units (e.g. 2/3) into the "
                                                   "directory OUT (pensia, malach, cnn2l; one directory per slice, "
                                                   "then --merge); a rerun resumes it.", show_default=False)] = None,
    merge: Annotated[list[Path] | None, typer.Option("--merge", metavar="DIR",
                                                     help="A slice directory to assemble into the ticket OUT (repeat "
                                                          "for each slice); takes the configuration from the "
                                                          "slices and runs nothing else.",
                                                     show_default=False)] = None,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Construct a strong ticket for a target (zoo name + checkpoint, or spec + checkpoint) into OUT."""
    if merge:
        return _merge(out, merge, locals(), include_weights=include_weights, overwrite=overwrite, json_out=json_out)
    method = method or "pensia"
    given = {"eps": eps, "per_weight_eps": per_weight_eps, "samples": samples, "block_size": block_size,
             "solver": solver, "objective": objective, "delta": delta, "distribution": distribution,
             "granularity": granularity, "group": group, "nonneg_input": nonneg_input, "rho": rho,
             "reference_first_layer": reference_first_layer}
    options: dict[str, Any] = {"seed": seed, "strict": strict, **{k: v for k, v in given.items() if v is not None}}
    entry = check_options(method, options)
    shard_spec = None
    if shard is not None:
        from strongticket.compare.units import parse_shard
        from strongticket.construct.shard import check_shardable, check_writable_shard

        shard_spec = parse_shard(shard)
        check_shardable(method)
        if include_weights:
            raise InputError("--include-weights is an option of the ticket: give it to the --merge that writes it, "
                             "not to a --shard slice")
    if checkpoint is None:
        raise InputError("--checkpoint (the target's trained weights, .safetensors) is required, got none")
    if shard_spec is None:
        check_ticket_destination(out, overwrite=overwrite, what="OUT")
    else:
        check_writable_shard(out)
    target = load_target(checkpoint, model=model, spec=spec, num_classes=num_classes, in_channels=in_channels,
                         image_size=image_size, width=width, bias=bias)
    if target.input_shape is not None and "input_shape" in entry.options:
        options["input_shape"] = target.input_shape
    if distribution is not None:
        options["distribution"] = distribution_for(distribution, target.module)
    if shard_spec is not None:
        return _shard(method, target.module, options, shard_spec, out, overwrite=overwrite, json_out=json_out)
    start = time.perf_counter()
    with status_line(not json_out, f"constructing the {method} ticket") as log:
        if "log" in entry.options:
            options["log"] = log
        ticket = build(method, target.module, **options)
    seconds = time.perf_counter() - start
    ticket.save(out, include_weights=include_weights, overwrite=overwrite, what="OUT")
    prov = ticket.provenance
    summary = {"ticket": str(out), "method": prov["method"], "seconds": round(seconds, 2),
               "max_per_weight_error": prov.get("max_error"),
               "per_weight_eps": prov.get("per_weight_eps", prov.get("eps")),
               "weights_above_eps": prov.get("weights_above_eps", prov.get("instances_above_eps")),
               "samples_per_weight": prov.get("samples_per_weight"), "block_size": prov.get("block_size"),
               "random_width": prov.get("random_width"), "warnings": prov.get("warnings", []),
               "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density}
    for w in summary["warnings"]:  # on stderr, so that --json output stays one object and warnings still show
        stderr.print(f"warning: {w}", style="bold yellow", highlight=False, markup=False)
    if json_out:
        emit_json(summary)
        return
    print_table(f"ticket written to {out}", ["name", "params", "kept", "density"],
                [[r["name"], r["params"], r["kept"], r["density"]] for r in ticket.density_table()])
    parts = [f"{label} {fmt(summary[key])}" for key, label in (
        ("max_per_weight_error", "max per-weight error"), ("per_weight_eps", "eps'"),
        ("samples_per_weight", "products per weight n ="), ("block_size", "block size"),
        ("weights_above_eps", "instances above eps':")) if summary[key] is not None]
    stdout.print(", ".join(parts + [f"{seconds:.1f} s"]))

#: Options that configure a construction: with --merge they come from the slices, so giving one is an error.
_MERGE_REFUSES = ("model", "spec", "checkpoint", "method", "eps", "per_weight_eps", "delta", "samples", "block_size",
                  "distribution", "granularity", "group", "rho", "nonneg_input", "objective", "solver", "shard",
                  "reference_first_layer")


def _merge(out: Path, dirs: list[Path], given: dict[str, Any], *, include_weights: bool, overwrite: bool,
           json_out: bool) -> None:
    from strongticket.construct.shard import merge

    extra = [k for k in _MERGE_REFUSES if given.get(k) is not None]
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise InputError(f"--merge takes the construction and its target from the slice directories: do not give "
                         f"{flag} (got {given[extra[0]]!r})")
    start = time.perf_counter()
    with status_line(not json_out, f"merging {len(dirs)} slices") as log:
        ticket = merge(dirs, out, overwrite=overwrite, include_weights=include_weights, log=log)
    seconds = time.perf_counter() - start
    prov = ticket.provenance
    summary = {"ticket": str(out), "method": prov["method"], "merged": [str(d) for d in dirs],
               "seconds": round(seconds, 2), "max_per_weight_error": prov.get("max_error"),
               "weights_above_eps": prov.get("weights_above_eps"), "warnings": prov.get("warnings", []),
               "params": ticket.num_params, "kept": ticket.num_kept, "density": ticket.density}
    for w in summary["warnings"]:
        stderr.print(f"warning: {w}", style="bold yellow", highlight=False, markup=False)
    if json_out:
        emit_json(summary)
        return
    stdout.print(f"ticket of {len(dirs)} slices written to {out}: {ticket.num_kept} of {ticket.num_params} weights "
                 f"kept, max per-weight error {fmt(summary['max_per_weight_error'])}, {seconds:.1f} s")


def _shard(method: str, module: Any, options: dict[str, Any], spec: tuple[int, int], out: Path, *,
           overwrite: bool, json_out: bool) -> None:
    from strongticket.construct import construction
    from strongticket.construct.shard import run_shard

    with status_line(not json_out, f"constructing slice {spec[0]}/{spec[1]} of the {method} ticket") as log:
        if "log" in construction(method).options:
            options["log"] = log
        report = run_shard(method, module, options, spec[0], spec[1], out, overwrite=overwrite, log=log)
    summary = {"shard": f"{spec[0]}/{spec[1]}", "out": report.out, "method": method, "units": report.units,
               "ran": report.ran, "skipped": report.skipped, "total_units": report.total, "digest": report.digest,
               "seconds": report.seconds}
    if json_out:
        emit_json(summary)
        return
    stdout.print(f"slice {spec[0]}/{spec[1]} written to {out}: {report.units} of {report.total} units "
                 f"({report.ran} run, {report.skipped} already done), {report.seconds:.1f} s; merge the {spec[1]} "
                 f"slices with: strongticket construct TICKET --merge DIR ...")


__all__ = ["construct"]
