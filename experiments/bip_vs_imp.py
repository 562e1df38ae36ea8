"""Measurement: BiP against IMP on LeNet-300-100 (or LeNet-5) / MNIST at the same densities, with the cost of each.

BiP (Zhang et al. 2022, "Advancing Model Pruning via Bi-level Optimization") claims winning tickets at least as
good as IMP's (Frankle & Carbin 2019) with a "2-7x speedup over IMP". Both methods run here under one short
schedule (every training phase ``--epochs`` epochs on a ``--train-subset`` of MNIST, SGD lr 0.05 momentum 0.9
weight decay 1e-4, cosine per phase, batch 128, kaiming-normal init, global scope, seed 0; ``--model``
LeNet-300-100 by default), so the cost comparison is the number of phases each needs:

* IMP: a dense round 0, then one round per pruning step at ``--imp-rate`` of the remaining weights (the last
  clipped to the target), each round reset to the initial weights and retrained;
* BiP: a dense phase (the same training as IMP's round 0), the bi-level phase, and with ``--bip-finetune`` a
  fine-tuning phase;
* with ``--channel-densities``, also BiP's channel variant (``--bip-granularity channel``: whole conv filters
  and linear neurons) at those *channel* densities, reported with the weight density they imply (no ratio
  against IMP: the densities do not match), under ``--channel-scope``: ``layerwise`` by default (every layer
  keeps that fraction of its channels): one global ranking of LeNet-5's 570 channels by mean |w| favours the
  layers with the largest weights (under Kaiming init, the conv layers with their small fan-in), and at 10 %
  (57 channels, fewer than the 70 conv channels) it can leave the fc layer none (layer collapse).

Reported per run: test accuracy (full 10 000 test images), training wall time (the sum of the phases' seconds
recorded in ``summary.json``), optimiser steps (the sum over phases), milliseconds per step (wall time over
steps, which also counts the evaluations), phases; and per density the ratio of IMP's wall time and steps to
BiP's. On a shared machine the wall time follows the load, so the step ratio is the load-independent figure;
``--step-cost`` also times a dense and a BiP training step in alternating blocks in one process (a BiP step
also ranks all scores and updates them, so it costs more than a dense step).

    python experiments/bip_vs_imp.py --data-dir DATA --runs RUNS [--model lenet5] [--densities 0.1 0.02]
        [--channel-densities 0.5 0.25] [--imp-rate 0.5] [--epochs 2] [--train-subset 20000] [--bip-finetune]
        [--step-cost 50] [--out experiments/results/bip_vs_imp.json]

Runs are ordinary run directories under ``RUNS`` (``imp-0.1``, ``bip-0.1``, ``bip-ft-0.1`` with fine-tuning, ...); a
finished one is read back, not retrained, so a killed measurement resumes and the IMP runs are shared between
measurements with and without ``--bip-finetune``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import statistics
import time

import torch

from strongticket.nets.zoo import build_model
from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.data import load_dataset
from strongticket.train.loop import Trainer
from strongticket.train.masking import MaskedModel, init_weights, prunable_names
from strongticket.train.methods.bip import Bilevel
from strongticket.train.run import train_run


def run_config(method: str, density: float, args: argparse.Namespace, granularity: str = "weight") -> RunConfig:
    """The shared short schedule with ``method`` at ``density`` (a channel density for BiP's channel variant)."""
    extra: dict[str, Any] = ({"rate": args.imp_rate} if method == "imp"
                             else {"bip_finetune": args.bip_finetune, "bip_granularity": granularity})
    scope = args.channel_scope if granularity == "channel" else "global"
    return RunConfig(data=DataConfig(dataset="mnist", batch_size=128, train_subset=args.train_subset),
                     model=ModelConfig(model=args.model, init="kaiming_normal"),
                     optim=OptimConfig(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4,
                                       epochs=args.epochs, schedule="cosine"),
                     prune=PruneConfig(method=method, density=density, scope=scope, **extra),
                     seed=0, checkpoint_every=args.epochs)


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of one finished run."""
    phases = summary["phases"]
    out = {"method": summary["method"], "density": summary["density"], "test_accuracy": summary["test_accuracy"],
           "wall_time_s": summary["wall_time_s"], "steps": sum(int(p.get("step", 0)) for p in phases.values()),
           "phases": len(phases)}
    out["ms_per_step"] = 1000 * out["wall_time_s"] / max(1, out["steps"])
    if "bip" in summary:
        out["kept_from_magnitude"] = summary["bip"]["kept_from_magnitude"]
        out["granularity"] = summary["bip"].get("granularity", "weight")
        if out["granularity"] == "channel":
            out["channel_density"] = summary["bip"]["channel_density"]
            out["layer_channels_kept"] = summary["bip"]["layer_channels_kept"]
    return out


def step_cost(data_dir: str | None, steps: int, repeats: int, density: float = 0.1) -> dict[str, float]:
    """Median milliseconds per training step (no evaluation) of a dense step and of a BiP step, timed in
    alternating blocks of ``steps`` steps in one process, so that a changing load hits both alike."""
    data = load_dataset("mnist", data_dir).subset(steps * 128, 128, seed=0)
    cfg = OptimConfig(lr=0.05, momentum=0.9, weight_decay=1e-4, epochs=1)

    def trainer(kind: str) -> Trainer:
        net = build_model("lenet300100", seed=0)
        init_weights(net, "kaiming_normal", torch.Generator().manual_seed(0))
        if kind == "dense":
            return Trainer(MaskedModel(net), data, cfg, list(net.parameters()), seed=0, batch_size=128)
        params = dict(net.named_parameters())
        names = prunable_names(net)
        model = MaskedModel(net, scores={n: params[n].detach().clone() for n in names}, score_density=density,
                            score_rule="global-topk")
        scores = {n: model.scores[n.replace(".", "__")] for n in names}
        network = list(net.parameters())
        groups = [{"params": network}, {"params": list(scores.values()), "lr_scale": 2.0}]
        return Trainer(model, data, cfg, groups, seed=0, batch_size=128,
                       callbacks=[Bilevel(network, scores, {n: params[n] for n in names}, 1e-4)])

    times: dict[str, list[float]] = {"dense": [], "bip": []}
    for _ in range(repeats):
        for kind in times:
            t = trainer(kind)
            start = time.perf_counter()
            t.run()
            times[kind].append(1000 * (time.perf_counter() - start) / t.step)
    return {f"{k}_ms_per_step": statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $STRONGTICKET_DATA)")
    ap.add_argument("--runs", required=True, help="folder for the run directories")
    ap.add_argument("--model", default="lenet300100", help="zoo model (lenet300100 or lenet5)")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.02])
    ap.add_argument("--channel-densities", type=float, nargs="*", default=[],
                    help="also BiP's channel variant at these channel densities")
    ap.add_argument("--channel-scope", default="layerwise", choices=("layerwise", "global"),
                    help="scope of the channel variant's ranking")
    ap.add_argument("--imp-rate", type=float, default=0.5, help="IMP: fraction of the remaining weights per round")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per training phase")
    ap.add_argument("--train-subset", type=int, default=20000)
    ap.add_argument("--bip-finetune", action="store_true", help="BiP: fine-tune the found mask's weights")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the rows and ratios as JSON here")
    ap.add_argument("--step-cost", type=int, default=0, metavar="STEPS",
                    help="also time dense and BiP training steps in alternating blocks of STEPS steps (5 each)")
    args = ap.parse_args()

    rows = []
    for d in args.densities:
        for method in ("imp", "bip"):
            name = f"{method}-ft-{d:g}" if method == "bip" and args.bip_finetune else f"{method}-{d:g}"
            s = train_run(run_config(method, d, args), Path(args.runs) / name, data_dir=args.data_dir,
                          device=args.device)
            rows.append(row(s))
            print(json.dumps(rows[-1]), flush=True)
    for d in args.channel_densities:
        tag = "ch" if args.channel_scope == "layerwise" else "chg"
        name = f"bip-{tag}-ft-{d:g}" if args.bip_finetune else f"bip-{tag}-{d:g}"
        s = train_run(run_config("bip", d, args, "channel"), Path(args.runs) / name, data_dir=args.data_dir,
                      device=args.device)
        rows.append(row(s))
        print(json.dumps(rows[-1]), flush=True)
    ratios = []
    for d in args.densities:
        imp = next(r for r in rows if r["method"] == "imp" and abs(r["density"] - d) < 1e-9)
        bip = next(r for r in rows if r["method"] == "bip" and r.get("granularity") == "weight"
                   and abs(r["density"] - d) < 1e-9)
        ratios.append({"density": d, "imp_over_bip_wall": imp["wall_time_s"] / bip["wall_time_s"],
                       "imp_over_bip_steps": imp["steps"] / bip["steps"],
                       "accuracy_bip_minus_imp": bip["test_accuracy"] - imp["test_accuracy"]})
    print("| method | density | channel density | test acc | wall s | steps | ms/step | phases |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        method = r["method"] + (" (channel)" if r.get("granularity") == "channel" else "")
        channel = f"{r['channel_density']:.3f}" if "channel_density" in r else ""
        print(f"| {method} | {r['density']:.4f} | {channel} | {r['test_accuracy']:.4f} | {r['wall_time_s']:.1f} | "
              f"{r['steps']} | {r['ms_per_step']:.0f} | {r['phases']} |")
    for q in ratios:
        print(f"density {q['density']:g}: IMP/BiP wall {q['imp_over_bip_wall']:.2f}x, steps "
              f"{q['imp_over_bip_steps']:.2f}x, accuracy BiP - IMP {q['accuracy_bip_minus_imp']:+.4f}")
    cost = {}
    if args.step_cost:
        cost = step_cost(args.data_dir, args.step_cost, repeats=5)
        print(f"training step (no evaluation): dense {cost['dense_ms_per_step']:.1f} ms, BiP "
              f"{cost['bip_ms_per_step']:.1f} ms (median of 5 alternating blocks of {args.step_cost} steps)")
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "runs", "out")}
        Path(args.out).write_text(json.dumps({"settings": settings, "rows": rows, "ratios": ratios, "step_cost": cost},
                                              indent=1) + "\n")


if __name__ == "__main__":
    main()
