"""Measurement: GEM-MINER against random sparse masks at the same per-layer densities, LeNet-300-100 / MNIST.

GEM-MINER (Sreenivasan et al. 2022, "Rare Gems: Finding Lottery Tickets at Initialization") was written to beat
the random-sparse baseline: a network pruned at random to the same per-layer densities and trained. One
``strongticket train --method gem-miner`` run per density holds the whole comparison: the score search with
iterative freezing on signed-constant weights (phase ``search``), the found mask on the random weights (a
strong ticket, no weight trained), its weights fine-tuned (phase ``finetune``) and random masks with the found
mask's per-layer counts trained from a fresh signed-constant draw (phase ``random-control``). Every phase lasts
``--epochs`` epochs on a ``--train-subset`` of MNIST (``--optimizer`` at ``--lr``, cosine per phase, batch 128,
no weight decay, seed 0); the search freezes every ``--period`` epochs, regulariser l2 with ``--reg``.

Why Adam by default: the paper's search is SGD at lr 0.1 for 150 epochs. A score p in [0, 1] must move by about
0.5 to change its rounded mask entry, and its gradient is the weight's gradient times the weight (about
sqrt(2/784) = 0.05 in LeNet-300-100's first layer), so a few hundred SGD steps at lr 0.1 barely move it and
the freezing ranks the U(0, 1) initial scores: measured on 20 000 images, 4 epochs, period 1, density 0.037,
the strong ticket scored 10.3 % (chance). Adam's step does not scale with the gradient's size; one optimiser
serves all three phases, so fine-tuning and the random control use it too (the comparison stays fair).

Reported per density: the search's own accuracy (rounded scores), the strong ticket's, the fine-tuned
ticket's and the random control's test accuracy (full 10 000 test images), the active weights the rounding
had switched off, and the wall time of each phase (``summary.json``'s seconds; on a shared machine they follow
the load).

    python experiments/gem_miner.py --data-dir DATA --runs RUNS [--densities 0.037 0.014] [--epochs 4]
        [--period 1] [--train-subset 5000] [--optimizer adam] [--lr 0.01] [--reg 1e-4]
        [--out experiments/results/gem_miner.json]

Runs are ordinary run directories under ``RUNS`` (``gem-miner-0.037``, ...); a finished one is read back, not
retrained, so a killed measurement resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from strongticket.train.config import DataConfig, ModelConfig, OptimConfig, PruneConfig, RunConfig
from strongticket.train.run import train_run


def run_config(density: float, args: argparse.Namespace) -> RunConfig:
    """The short schedule of the measurement at ``density``."""
    return RunConfig(data=DataConfig(dataset="mnist", batch_size=128, train_subset=args.train_subset),
                     model=ModelConfig(model="lenet300100", init="signed_constant"),
                     optim=OptimConfig(optimizer=args.optimizer, lr=args.lr,
                                       momentum=0.9 if args.optimizer == "sgd" else 0.0, epochs=args.epochs,
                                       schedule="cosine"),
                     prune=PruneConfig(method="gem-miner", density=density, gem_period=args.period, gem_reg=args.reg,
                                       gem_regulariser="l2", gem_finetune=True),
                     seed=args.seed, eval_every=args.epochs)


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """The figures of one finished run."""
    phases = summary["phases"]
    info = summary["gem_miner"]
    return {"density": summary["density"], "kept": summary["kept"], "prunable": summary["prunable"],
            "search_accuracy": info["search_accuracy"], "strong_ticket": summary["strong_ticket_test_accuracy"],
            "finetuned": summary["finetuned_test_accuracy"], "random_control": summary["random_control_test_accuracy"],
            "rounded_out": info["rounded_out"], "freezings": info["freezings"],
            "layers": {r["name"]: round(r["density"], 5) for r in summary["layers"]},
            "seconds": {k: round(v.get("seconds", 0.0), 1) for k, v in phases.items()},
            "wall_time_s": summary["wall_time_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="folder holding mnist/ (default: $STRONGTICKET_DATA)")
    ap.add_argument("--runs", required=True, help="folder for the run directories")
    ap.add_argument("--densities", type=float, nargs="+", default=[0.037, 0.014])
    ap.add_argument("--epochs", type=int, default=4, help="epochs of each phase (search, finetune, control)")
    ap.add_argument("--period", type=int, default=1, help="epochs between two freezings")
    ap.add_argument("--train-subset", type=int, default=5000)
    ap.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="sgd: with momentum 0.9")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--reg", type=float, default=1e-4, help="l2 coefficient on the scores")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()

    rows = []
    for d in args.densities:
        s = train_run(run_config(d, args), Path(args.runs) / f"gem-miner-{d:g}", data_dir=args.data_dir,
                      device=args.device)
        rows.append(row(s))
        print(json.dumps(rows[-1]), flush=True)
    print("| density | search (rounded) | strong ticket | GEM-MINER fine-tuned | random sparse | rounded out | "
          "search s | finetune s | control s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sec = r["seconds"]
        print(f"| {r['density']:.4f} | {r['search_accuracy']:.4f} | {r['strong_ticket']:.4f} | {r['finetuned']:.4f} | "
              f"{r['random_control']:.4f} | {r['rounded_out']} | {sec.get('search', 0):.1f} | "
              f"{sec.get('finetune', 0):.1f} | {sec.get('random-control', 0):.1f} |")
    if args.out:
        settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "runs", "out")}
        Path(args.out).write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
