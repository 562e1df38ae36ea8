"""``strongticket demo``: the whole pipeline on scikit-learn's digits, as one table.

Thin: parse, call :func:`strongticket.demo.run_demo`, print its summary as a table or one JSON object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from strongticket.cli.common import JsonOption, SeedOption, emit_json, print_table, stdout
from strongticket.ticket import human_count

#: ``--quick``: a small target, short training and a short attack (seconds instead of a minute).
QUICK = {"hidden": 8, "steps": 150, "count": 200, "restarts": 1, "attack_steps": 15, "cnn_channels": 2}


def demo(
    out: Annotated[Path, typer.Option("--out", help="Directory for demo.png and the ticket (a previous demo's "
                                                    "are replaced).")] = Path("strongticket-demo"),
    per_weight_eps: Annotated[float, typer.Option("--per-weight-eps", help="Error per target weight, in "
                                                                           "(0, 1).")] = 0.01,
    samples: Annotated[int, typer.Option("--samples", help="Random products per weight (candidates per "
                                                           "instance).")] = 21,
    hidden: Annotated[int, typer.Option("--hidden", help="Hidden width of the digits target (>= 1).")] = 32,
    quick: Annotated[bool, typer.Option("--quick", help="Small target (hidden 8), short training and "
                                                        "attack.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing demo.png in --out that no "
                                                                "previous demo wrote (never a directory).")] = False,
    seed: SeedOption = 0,
    json_out: JsonOption = False,
) -> None:
    """Train small MLPs and a CNN on scikit-learn's digits, prune random 2L and L+1 networks into them, verify."""
    from strongticket.demo import run_demo

    kw: dict[str, Any] = dict(QUICK) if quick else {"hidden": hidden}
    summary = run_demo(out, per_weight_eps=per_weight_eps, samples=samples, seed=seed, overwrite=overwrite, **kw)
    if json_out:
        emit_json(summary)
        return
    r = summary["tickets"]
    tgt = summary["target"]
    rows = [
        [f"test accuracy (target {tgt['test_accuracy']:.4f})"] + [r[k]["ticket_accuracy"] for k in r],
        [f"max per-weight error (eps' = {summary['per_weight_eps']:g})"] + [r[k]["max_per_weight_error"] for k in r],
        ["weights above eps'"] + [f"{r[k]['weights_above_eps']} of {r[k]['weights']}" for k in r],
        ["output error, sampled |x| = 1"] + [r[k]["empirical_sphere"] for k in r],
        ["output error, adversarial |x| <= 1"] + [r[k]["adversarial"] for k in r],
        ["output error, certified bound |x| <= 1"] + [r[k]["certified"] for k in r],
        ["params kept / random"] + [f"{human_count(r[k]['kept'])} / {human_count(r[k]['params'])}" for k in r],
        ["mean subset size"] + [r[k]["mean_subset_size"] for k in r],
        ["construct + verify seconds"] + [f"{r[k]['seconds']['construct']:.2f} + {r[k]['seconds']['verify']:.2f}"
                                          for k in r],
    ]
    rn = summary["random_network"]
    print_table(f"digits MLP {tgt['architecture']} ({tgt['weights']} weights, trained in "
                f"{tgt['train_seconds']:.1f} s) pruned from a random 2L net: n = {rn['samples_per_weight']} "
                f"products per weight, block size {rn['block_size']}, widths {rn['widths']}",
                ["check", *r], rows)
    above = sum(r[k]["weights_above_eps"] for k in r)
    if above:
        stdout.print(f"[bold yellow]{above} weights miss eps' at this seed: raise --samples or try another --seed[/]")
    c = summary["cnn"]
    print_table(f"digits CNN ({c['architecture']}, {c['target_weights']} weights) pruned from a random 2L CNN "
                f"(da Cunha et al. 2022): every layer, biases included, n = {rn['samples_per_weight']}, block size "
                f"{c['block_size']}", ["check", "value"], [
                    [f"test accuracy (target {c['target_accuracy']:.4f})", c["ticket_accuracy"]],
                    [f"max per-weight error (eps' = {summary['per_weight_eps']:g})", c["max_per_weight_error"]],
                    ["weights above eps'", c["weights_above_eps"]],
                    ["output error |f - g|_inf, test digits", c["empirical_data_linf"]],
                    ["output error |f - g|_inf, certified bound over the digits' box",
                     c["certified_data_linf"]],
                    ["params kept / random", f"{human_count(c['kept'])} / {human_count(c['params'])}"],
                    ["train + construct + verify seconds", f"{c['seconds']['train']:.2f} + "
                     f"{c['seconds']['construct']:.2f} + {c['seconds']['verify']:.2f}"]])
    d = summary["lplus1"]
    print_table(f"digits MLP {d['architecture']} pruned from a random network of depth L+1 = {d['depth']} "
                f"(Burkholz 2022; 2L would be {2 * d['target_depth']}): rho = {d['rho']} copies per neuron",
                ["check", "value"], [
                    [f"test accuracy (target {d['target_accuracy']:.4f})", d["ticket_accuracy"]],
                    [f"subset-sum instances above eps = {d['per_weight_eps']:g}", d["instances_above_eps"]],
                    ["output error |f - g|_inf, test digits", d["empirical_data_linf"]],
                    ["output error |f - g|_inf, certified bound over the digits' box", d["certified_data_linf"]],
                    ["params kept / random", f"{human_count(d['kept'])} / {human_count(d['params'])}"],
                    ["train + construct + verify seconds", f"{d['seconds']['train']:.2f} + "
                     f"{d['seconds']['construct']:.2f} + {d['seconds']['verify']:.2f}"]])
    stdout.print(f"plot: {summary['plot']}; ticket: {summary['ticket']} "
                 f"(check it with: strongticket verify {summary['ticket']}); {summary['seconds']:.1f} s in all")
